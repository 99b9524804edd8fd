"""The auto-detection corpus (tests/fixtures/auto/corpus.yaml), read with ``kind: auto``.

Each page is read with no selectors at all and measured against what a careful reader
takes from it: overall recall, no trap text (menu, pager, cookie banner, "Подробнее"...)
ever taken as a title, and nothing from a page without promotions. Precision is printed
beside recall; run with ``-s`` to see the table per page.

The fixture checks at the end run today. The detector checks wait for
``scrapers.discover_feed``: until it exists ``kind: auto`` raises, so they are skipped
(the skip lifts by itself when the detectors land).
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import scrapers
from scrapers import ExtractError, Source, extract, normalise_space

AUTO = Path(__file__).parent.parent / "fixtures" / "auto"
CORPUS: list[dict[str, Any]] = yaml.safe_load((AUTO / "corpus.yaml").read_text(encoding="utf-8"))
PAGES = {entry["file"]: entry for entry in CORPUS}
TODAY = date(2026, 12, 3)
MIN_RECALL = 0.95
KINDS = ("feed", "jsonld", "state", "dom", "none")
LANGUAGES = ("ru", "kk", "en")

# Not a module-wide pytestmark: the fixture checks below must run before the detectors
# exist. The condition turns false by itself once scrapers.discover_feed is there.
needs_detectors = pytest.mark.skipif(
    not hasattr(scrapers, "discover_feed"), reason="auto detection not built yet"
)


def entries(predicate: Any = None) -> list[Any]:
    """Corpus entries as pytest params named by file, optionally filtered."""
    return [
        pytest.param(entry, id=entry["file"])
        for entry in CORPUS
        if predicate is None or predicate(entry)
    ]


def read(name: str) -> str:
    return (AUTO / name).read_text(encoding="utf-8")


def same(text: str) -> str:
    """The comparison form of a title: whitespace-normalised and casefolded."""
    return normalise_space(text).casefold()


# --- running the detectors ------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What ``kind: auto`` took from one corpus page."""

    titles: list[str]
    error: str | None = None


@cache
def run(file: str) -> Outcome:
    """Extract one page (for a page naming a feed: the feed, at the feed's URL)."""
    entry = PAGES[file]
    text, url = read(file), entry["url"]
    if "feed" in entry:
        text, url = read(entry["feed"]), entry["feed_url"]
    source = Source(id="corpus", url=url, kind="auto")
    try:
        promotions = extract(source, text, url, TODAY)
    except ExtractError as exc:
        return Outcome([], error=str(exc))
    return Outcome([promotion.title for promotion in promotions])


@dataclass(frozen=True)
class Score:
    """One page's titles against its expectations."""

    file: str
    expected: list[str]  # what counts for recall: nothing for a needs_browser page
    found: list[str]
    missed: list[str]
    extra: list[str]
    error: str | None

    @property
    def correct(self) -> int:
        return len(self.found) - len(self.extra)


def score(entry: dict[str, Any]) -> Score:
    outcome = run(entry["file"])
    # From the raw HTML a script-drawn page has nothing to find; its rendered titles
    # are not held against the detectors, but anything found there is extra.
    expected = [] if entry["needs_browser"] else list(entry["titles"])
    unmatched = Counter(same(title) for title in expected)
    extra = []
    for title in outcome.titles:
        if unmatched[same(title)] > 0:
            unmatched[same(title)] -= 1
        else:
            extra.append(title)
    missed = [title for title in expected if unmatched[same(title)] > 0]
    for title in missed:
        unmatched[same(title)] -= 1
    return Score(entry["file"], expected, outcome.titles, missed, extra, outcome.error)


def table(scores: list[Score]) -> str:
    width = max(len(s.file) for s in scores)
    lines = [f"{'page':<{width}}  {'kind':<6} {'exp':>4} {'found':>5} {'missed':>6} {'extra':>5}"]
    for s in scores:
        kind = PAGES[s.file]["kind_expected"]
        lines.append(
            f"{s.file:<{width}}  {kind:<6} {len(s.expected):>4} {len(s.found):>5}"
            f" {len(s.missed):>6} {len(s.extra):>5}"
        )
        lines.extend(f"    missed: {title}" for title in s.missed)
        lines.extend(f"    extra:  {title}" for title in s.extra)
        if s.error:
            lines.append(f"    error:  {s.error}")
    return "\n".join(lines)


# --- the detectors against the corpus -------------------------------------------------


@needs_detectors
@pytest.mark.parametrize("entry", entries())
def test_no_trap_text_ever_comes_out_as_a_title(entry: dict[str, Any]) -> None:
    traps = {same(text) for text in entry["never"]}
    taken = [title for title in run(entry["file"]).titles if same(title) in traps]
    assert taken == [], f"{entry['file']}: menu/chrome text taken as promotions: {taken}"


@needs_detectors
@pytest.mark.parametrize("entry", entries(lambda entry: not entry["titles"]))
def test_page_without_promotions_yields_nothing(entry: dict[str, Any]) -> None:
    assert run(entry["file"]).titles == []


@needs_detectors
@pytest.mark.parametrize("entry", entries(lambda entry: "feed" in entry))
def test_feed_named_by_the_page_is_discovered_as_an_absolute_url(entry: dict[str, Any]) -> None:
    from scrapers import discover_feed  # lands with the detectors

    assert discover_feed(read(entry["file"]), entry["url"]) == entry["feed_url"]


@needs_detectors
def test_corpus_recall_and_precision() -> None:
    scores = [score(entry) for entry in CORPUS]
    expected = sum(len(s.expected) for s in scores)
    found = sum(len(s.found) for s in scores)
    correct = sum(s.correct for s in scores)
    recall = correct / expected
    precision = correct / found if found else 1.0
    totals = (
        f"recall {recall:.3f} ({correct}/{expected}), "
        f"precision {precision:.3f} ({correct}/{found}) over {len(scores)} pages"
    )
    print()
    print(table(scores))
    print(totals)
    assert recall >= MIN_RECALL, f"{totals}; recall must be at least {MIN_RECALL}"


# --- the corpus itself (runs today) ---------------------------------------------------


def searchable(text: str) -> tuple[str, str]:
    """A page's text two ways, whitespace-normalised and casefolded: its markup as
    written with entities decoded (attributes such as alt texts count), and with the
    tags stripped (CDATA sections and feeds' escaped HTML included)."""
    raw = html.unescape(html.unescape(text))
    stripped = text.replace("<![CDATA[", " ").replace("]]>", " ")
    stripped = re.sub(r"<[^>]*>", " ", stripped)
    stripped = re.sub(r"<[^>]*>", " ", html.unescape(stripped))  # escaped HTML in feeds
    stripped = html.unescape(stripped)
    return same(raw), same(stripped)


def appears(text: str, haystacks: tuple[str, ...]) -> bool:
    return any(same(text) in haystack for haystack in haystacks)


def test_corpus_covers_what_auto_detection_must_handle() -> None:
    files = [entry["file"] for entry in CORPUS]
    assert len(files) == len(set(files)), "a page is listed twice"
    assert len(CORPUS) >= 18
    assert {entry["kind_expected"] for entry in CORPUS} == set(KINDS)
    assert {entry["language"] for entry in CORPUS} == set(LANGUAGES)
    assert sum(entry["language"] == "kk" for entry in CORPUS) >= 2
    assert any(entry["needs_browser"] for entry in CORPUS)
    assert any("feed" in entry for entry in CORPUS)
    assert any(entry["file"].endswith(".xml") for entry in CORPUS), "a feed as the page itself"


@pytest.mark.parametrize("entry", entries())
def test_corpus_entry_is_well_formed(entry: dict[str, Any]) -> None:
    allowed = {"file", "url", "language", "kind_expected", "titles", "needs_browser", "never"}
    allowed |= {"feed", "feed_url", "data"}
    assert set(entry) - allowed == set(), "unknown keys (a typo?)"
    assert entry["url"].startswith("https://")
    assert entry["language"] in LANGUAGES
    assert entry["kind_expected"] in KINDS
    assert isinstance(entry["needs_browser"], bool)
    assert all(isinstance(title, str) and title for title in entry["titles"])
    assert all(isinstance(text, str) and text for text in entry["never"])
    assert entry["never"], "every page has traps"
    assert [normalise_space(title) for title in entry["titles"]] == entry["titles"]
    assert (entry["kind_expected"] == "none") == (not entry["titles"])
    names_a_feed = entry["kind_expected"] == "feed" and not entry["file"].endswith(".xml")
    assert ("feed" in entry) == ("feed_url" in entry) == names_a_feed
    assert ("data" in entry) == entry["needs_browser"]
    titles = {same(title) for title in entry["titles"]}
    assert not titles & {same(text) for text in entry["never"]}, "a title is also a trap"


@pytest.mark.parametrize("entry", entries())
def test_corpus_files_exist_and_are_utf8(entry: dict[str, Any]) -> None:
    for name in (entry["file"], entry.get("feed"), entry.get("data")):
        if name is not None:
            (AUTO / name).read_bytes().decode("utf-8")  # strict: raises on a bad byte


@pytest.mark.parametrize("entry", entries())
def test_every_trap_is_really_on_the_page(entry: dict[str, Any]) -> None:
    texts = searchable(read(entry["file"]))
    if "feed" in entry:
        texts += searchable(read(entry["feed"]))
    absent = [text for text in entry["never"] if not appears(text, texts)]
    assert absent == [], f"{entry['file']}: 'never' texts not on the page: {absent}"


@pytest.mark.parametrize("entry", entries())
def test_every_expected_title_is_really_on_the_page(entry: dict[str, Any]) -> None:
    # The feed's or script's data, when the page names one, is where the titles are.
    source = entry.get("feed") or entry.get("data") or entry["file"]
    texts = searchable(read(source))
    absent = [title for title in entry["titles"] if not appears(title, texts)]
    assert absent == [], f"{source}: expected titles not in it: {absent}"


EMBEDDED_JSON = re.compile(
    r'<script[^>]*type="application/(?:ld\+)?json"[^>]*>(.*?)</script>', re.S
)
STATE_ASSIGNMENT = re.compile(r"window\.__\w+__\s*=\s*(\{.*?\});?\s*</script>", re.S)


@pytest.mark.parametrize("entry", entries(lambda entry: entry["file"].endswith(".html")))
def test_embedded_json_on_the_page_parses(entry: dict[str, Any]) -> None:
    # The corpus chose JSON-parsable forms (no Nuxt function-call payloads): a block that
    # does not parse would test the fixture, not the detectors.
    text = read(entry["file"])
    for block in EMBEDDED_JSON.findall(text) + STATE_ASSIGNMENT.findall(text):
        json.loads(block)
