"""Benchmark 4: the extraction stage alone on a ~250 KB page, selectolax vs BeautifulSoup.

The page is the reconstructed Kcell news listing (``tests/fixtures/pages/kcell_news.html``)
with its cards repeated, each copy linking to its own page, until the page is about
250 KB; it is read with the selectors written for it, and with ``kind: auto``. Nothing
is fetched: the page is a string in memory, and both contenders start from it.

- **selectolax**: :func:`scrapers._extract.extract`, everything it does (the nesting-depth
  scan, lexbor parsing, CSS selection, link and text handling, date/price parsing).
- **BeautifulSoup**: the same pipeline with bs4's ``html.parser``: the same
  ``<base href>`` handling and script/style removal, the same selectors through
  ``.select`` / ``.select_one`` (the item itself included, as lexbor does, via
  soupsieve's ``match``), ``get_text(" ")`` for text, and the same
  :func:`scrapers._extract.build_promotion` for normalisation, links, keys and parsing.

Both run in the same process on the same page, alternating, after one warm-up each;
the times are the medians of the rounds and the ratio the median of the rounds' ratios.
Both must produce identical promotions, which is checked and reported. Target (from the
issue): selectolax at least 10x faster.

A second, informational ratio times only what differs: parsing the page and reading
the fields (``_html_items`` against :func:`soup_items`), without the shared
:func:`~scrapers._extract.build_promotion` work, which no parser can speed up.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from benchmarks._common import NOW, Options, Result, median, ms

if TYPE_CHECKING:
    from bs4 import Tag

    from scrapers._models import Promotion, Source

Raw = dict[str, str | None]

NAME = "extraction"
TITLE = "Extraction of a ~250 KB page: selectolax vs BeautifulSoup"

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pages" / "kcell_news.html"
PROFILE = "kcell-promo"
PAGE_URL = "https://www.kcell.kz/ru/news/"
TARGET_BYTES = 250_000
FULL_ROUNDS = 15
QUICK_ROUNDS = 5
MIN_RATIO = 10.0
MAX_AUTO_RATIO = 3.0

T = TypeVar("T")

_CARD = re.compile(r'<article class="news-card[^"]*">.*?</article>', re.S)
_SLUG = re.compile(r'href="([^"?#]*/ru/news/[^"?#/]+)')


def build_page(target_bytes: int = TARGET_BYTES) -> tuple[str, int]:
    """The fixture with its cards repeated to about ``target_bytes``; (page, card count)."""
    text = FIXTURE.read_text(encoding="utf-8")
    start = text.index('<section class="news-list">')
    end = text.index("</section>", start)
    cards = _CARD.findall(text, start, end)  # (the fixture also has a card inside a script)
    head, tail = text[:start] + '<section class="news-list">\n', text[end:]
    body: list[str] = []
    size = len((head + tail).encode("utf-8"))
    copy = 0
    while size < target_bytes:
        card = cards[copy % len(cards)]
        card = _SLUG.sub(rf'href="\g<1>-{copy}', card)  # titles stay as written
        body.append(card)
        size += len(card.encode("utf-8")) + 1
        copy += 1
    return head + "\n".join(body) + tail, copy


def soup_items(source: Source, page_text: str, page_url: str) -> tuple[list[Raw], str]:
    """What ``scrapers._extract._html_items`` does, with bs4 + soupsieve: (raw fields, base)."""
    import soupsieve
    from bs4 import BeautifulSoup

    from scrapers._extract import parse_field_spec, safe_link

    assert source.items is not None
    specs = {name: parse_field_spec(name, spec) for name, spec in source.fields.items()}
    soup = BeautifulSoup(page_text, "html.parser")
    base_url = page_url
    base = soup.select_one("base[href]")
    if base is not None:
        href = base.get("href")
        base_url = safe_link(href if isinstance(href, str) else None, page_url) or page_url
    for tag in soup.find_all(["script", "style", "noscript", "template"]):
        tag.decompose()
    raws: list[Raw] = []
    for item in soup.select(source.items):
        raw: Raw = {}
        for name, spec in specs.items():
            node: Tag | None = item
            if spec.selector is not None and not soupsieve.match(spec.selector, item):
                node = item.select_one(spec.selector)
            if node is None:
                raw[name] = None
            elif spec.attr is not None:
                value = node.get(spec.attr)
                raw[name] = " ".join(value) if isinstance(value, list) else value
            else:
                raw[name] = node.get_text(" ")
        if "title" not in specs:
            raw["title"] = item.get_text(" ")
        raws.append(raw)
    return raws, base_url


def soup_extract(source: Source, page_text: str, page_url: str, today: date) -> list[Promotion]:
    """The BeautifulSoup pipeline: :func:`soup_items`, then what extract() does after."""
    from scrapers._extract import build_promotion, canonical_link, safe_link

    raws, base_url = soup_items(source, page_text, page_url)
    page_link = safe_link(page_url, page_url)
    page_key = canonical_link(page_link) if page_link else ""
    promotions: list[Promotion] = []
    seen: set[str] = set()
    for raw in raws:
        promotion = build_promotion(source.id, raw, base_url, today, page_key)
        if promotion is not None and promotion.key not in seen:
            seen.add(promotion.key)
            promotions.append(promotion)
    return promotions


def _time(function: Callable[[], T]) -> tuple[float, T]:
    # A soup is a web of reference cycles: collect the last one now, or the collector
    # runs in the middle of whichever contender comes next.
    gc.collect()
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def run(options: Options) -> Result:
    """Build the page, time both pipelines on it alternately, compare their medians."""
    from scrapers._extract import _html_items, extract
    from scrapers._models import Source

    # The selectors written for the reconstructed page (the built-in source itself is
    # kind auto now, which is timed below against these).
    source = Source(
        id=PROFILE,
        url=PAGE_URL,
        kind="html",
        items="article.news-card",
        fields={
            "title": ".news-card__title",
            "link": "a.news-card__link@href",
            "summary": ".news-card__text",
            "image": "img@src",
        },
    )
    today = NOW.date()
    page, cards = build_page()
    size = len(page.encode("utf-8"))
    rounds = QUICK_ROUNDS if options.quick else FULL_ROUNDS
    options.log(f"page: {size / 1000:,.0f} KB, {cards:,} cards; {rounds} rounds each")

    def ours() -> list[Promotion]:
        return extract(source, page, PAGE_URL, today)

    def theirs() -> list[Promotion]:
        return soup_extract(source, page, PAGE_URL, today)

    # kind: auto on the same page: no selectors, every strategy tried.
    unpinned = replace(source, kind="auto", items=None, fields={})

    def auto() -> list[Promotion]:
        return extract(unpinned, page, PAGE_URL, today)

    _, ours_result = _time(ours)  # warm-up, and the outputs to compare
    _, theirs_result = _time(theirs)
    _, auto_result = _time(auto)
    auto_times: list[float] = []
    fast: list[float] = []
    slow: list[float] = []
    fast_items: list[float] = []
    slow_items: list[float] = []
    for _ in range(rounds):
        fast.append(_time(ours)[0])
        slow.append(_time(theirs)[0])
        fast_items.append(_time(lambda: _html_items(source, page, PAGE_URL))[0])
        slow_items.append(_time(lambda: soup_items(source, page, PAGE_URL))[0])
        auto_times.append(_time(auto)[0])
    if not ours_result:
        raise RuntimeError("the generated page yields no promotions: the benchmark is broken")
    same = ours_result == theirs_result
    count = len(ours_result)
    # Each round times both back to back; the median of the rounds' ratios is steadier on
    # a shared machine than the ratio of two medians taken minutes apart.
    ratio = median([theirs_s / ours_s for ours_s, theirs_s in zip(fast, slow, strict=True)])

    result = Result(NAME, TITLE)
    result.add("page", f"{size / 1000:,.0f} KB, {cards:,} cards -> {count:,} promotions")
    result.add("selectolax (lexbor) pipeline, median", ms(median(fast)))
    result.add("BeautifulSoup (html.parser) pipeline, median", ms(median(slow)))
    result.add(
        "ratio BeautifulSoup / selectolax",
        f"{ratio:.1f}x",
        f">= {MIN_RATIO:.0f}x",
        ratio >= MIN_RATIO,
    )
    result.add("  same promotions from both", "yes" if same else "NO", "yes", same)
    items_ratio = median([b / a for a, b in zip(fast_items, slow_items, strict=True)])
    result.add(
        "parse + select only (no shared post-processing)",
        f"{ms(median(fast_items))} vs {ms(median(slow_items))}: {items_ratio:.1f}x",
    )
    auto_ratio = median([a / f for f, a in zip(fast, auto_times, strict=True)])
    result.add("kind auto pipeline (no selectors), median", ms(median(auto_times)))
    result.add(
        "ratio auto / selectors",
        f"{auto_ratio:.2f}x",
        f"<= {MAX_AUTO_RATIO:.0f}x",
        auto_ratio <= MAX_AUTO_RATIO,
    )
    same_titles = [p.title for p in auto_result] == [p.title for p in ours_result]
    result.add(
        "  auto finds the same promotions", "yes" if same_titles else "NO", "yes", same_titles
    )
    result.notes.append(f"selectolax rounds: {', '.join(ms(s) for s in fast)}")
    result.notes.append(f"BeautifulSoup rounds: {', '.join(ms(s) for s in slow)}")
    result.notes.append(
        f"selectolax parse + select rounds: {', '.join(ms(s) for s in fast_items)}; "
        f"BeautifulSoup: {', '.join(ms(s) for s in slow_items)}"
    )
    result.notes.append(
        "Both pipelines end in the same build_promotion (normalisation, links, keys, date, "
        "price and data parsing), about the same time in each; it bounds the first ratio. "
        "The second ratio leaves it out. Each timed call starts after gc.collect()."
    )
    return result
