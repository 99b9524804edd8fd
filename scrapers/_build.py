"""From raw field texts to a :class:`~scrapers._models.Promotion`: where every kind ends.

A reader (:mod:`scrapers._html`, :mod:`scrapers._feed`, :mod:`scrapers._json`) gives one
:data:`Raw` dict per item, field name to text as found on the page; :func:`build_promotion`
does everything after that, the same way whichever reader found the item.

Every promotion's text is whitespace-normalised and clipped (title 300 characters,
summary 1000, date and price texts 200). Links and images are absolute and only http(s)
(:func:`~scrapers._links.safe_link`). Dates, prices and a data allowance are parsed from
the date and price fields (:mod:`scrapers._parse`). Without a date field the title and
then the summary are searched, and a date field that gives only a start or only an end
is completed from them; without a price field only the title is (teasers quote prizes
and thresholds); a data allowance comes from the title, then the summary.

Identity (``Promotion.key``) is the canonical link
(:func:`~scrapers._links.canonical_link`); without a link, or when the link only points
back at the page itself (``href="#"``, or the page's own URL: :func:`page_key`), it is
the item's own id where a reader found one (``"id:"`` and the id of an app state's
object), else ``"title:"`` and a hash of the normalised title (:func:`title_key`). So the
same promotion keeps its key whichever way the page was read.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from scrapers._links import canonical_link, safe_link
from scrapers._models import Promotion
from scrapers._parse import normalise_space, parse_data_gb, parse_dates, parse_price

__all__ = ["title_key"]

TITLE_LIMIT = 300
SUMMARY_LIMIT = 1000
TEXT_LIMIT = 200

# One item as a reader found it: field name -> raw text, before normalisation.
Raw = dict[str, str | None]


def build_promotion(
    source_id: str, raw: Mapping[str, str | None], base_url: str, today: date, page_key: str = ""
) -> Promotion | None:
    """One Promotion from raw field texts, or None without a title.

    Shared by every kind of source (and by the BeautifulSoup baseline in the benchmarks),
    so normalisation, link handling and parsing are the same whichever parser read the
    page. ``page_key`` is the canonical page URL: a link back to it identifies nothing.
    """
    title = _clip(_tidy(raw.get("title")), TITLE_LIMIT)
    if not title:
        return None
    href = raw.get("link")
    # href="#", "#top": a card without a page of its own (the key falls back to the title).
    link = None if not href or href.strip().startswith("#") else safe_link(href, base_url)
    key = canonical_link(link) if link else None
    if key is not None and key == page_key:
        key = None  # a link back to the listing itself identifies nothing
    ident = _tidy(raw.get("id"))
    if key is None and ident:
        key = "id:" + ident[:200]  # an app state's own id, when it gives no link
    summary = _clip(_tidy(raw.get("summary")), SUMMARY_LIMIT) or None
    date_text = _clip(_tidy(raw.get("date")), TEXT_LIMIT) or None
    price_text = _clip(_tidy(raw.get("price")), TEXT_LIMIT) or None
    texts = [title, summary or ""]

    # The date field first; the title and summary fill in what it leaves open (a news
    # card's date is its publication date, the deadline is in its title).
    starts, ends = parse_dates(date_text, today) if date_text else (None, None)
    for text in texts:
        if starts is not None and ends is not None:
            break
        more_starts, more_ends = parse_dates(text, today)
        starts, ends = starts or more_starts, ends or more_ends
    if starts is not None and ends is not None and starts > ends:
        starts = None  # pieces from different texts that contradict: keep the deadline
    # Without a price field only the title is searched: teasers quote prizes and top-up
    # thresholds ("розыгрыш 100 000 ₸", "пополните от 1 000 тг") far more than prices.
    if price_text:
        price, currency = parse_price(price_text, bare_ok=True)
    else:
        price, currency = parse_price(title)
    data_gb: Decimal | None = None
    for text in texts:
        data_gb = parse_data_gb(text)
        if data_gb is not None:
            break
    return Promotion(
        source_id=source_id,
        key=key or title_key(title),
        title=title,
        link=link,
        summary=summary,
        image=safe_link(raw.get("image"), base_url),
        date_text=date_text,
        starts=starts,
        ends=ends,
        price_text=price_text,
        price=price,
        currency=currency,
        data_gb=data_gb,
    )


def title_key(title: str) -> str:
    """``"title:"`` and 16 hex digits of the SHA-1 of the normalised, case-folded title."""
    folded = unicodedata.normalize("NFKC", normalise_space(title)).casefold()
    return "title:" + hashlib.sha1(folded.encode("utf-8")).hexdigest()[:16]


def page_key(page_url: str) -> str:
    """The canonical URL of the page itself (a link back to it identifies no item)."""
    link = safe_link(page_url, page_url)
    return canonical_link(link) if link else ""


# Text read with a separator between nodes gets a space before punctuation that followed
# an inline element ("<b>за полцены</b>: ..." -> "за полцены :"); take it out again.
_NO_SPACE_BEFORE = tuple(" " + char for char in ",.:;!?)]»”")
_NO_SPACE_AFTER = tuple(char + " " for char in "([«“")


def _tidy(text: str | None) -> str:
    if not text:
        return ""
    text = normalise_space(text)
    for pair in _NO_SPACE_BEFORE:
        if pair in text:
            text = text.replace(pair, pair[1])
    for pair in _NO_SPACE_AFTER:
        if pair in text:
            text = text.replace(pair, pair[0])
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
