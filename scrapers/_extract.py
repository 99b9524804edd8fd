"""Reading promotions out of a fetched page, as its :class:`~scrapers._models.Source` says.

:func:`extract` turns page text into :class:`~scrapers._models.Promotion` objects in two
steps. A reader chosen by ``source.kind`` finds the items on the page and gives each as
raw field texts (:data:`~scrapers._build.Raw`):

``html``
    CSS selectors for the items and their fields (:mod:`scrapers._html`).
``feed``
    RSS 2.0, RSS 1.0 or Atom; ``items`` and ``fields`` are not used
    (:mod:`scrapers._feed`).
``json``
    Dotted paths into the page's JSON, or into the JSON of its ``<script>`` elements
    (:mod:`scrapers._json`).
``auto``
    No selectors: :func:`scrapers._auto.detect` finds the list itself (a feed, JSON-LD,
    app state or repeated blocks) and says how (:func:`extract_explained`).

Then :func:`~scrapers._build.build_promotion` turns every item into a Promotion the same
way whichever reader found it: text normalised and clipped, links made absolute and
http(s) only, dates, prices and a data allowance parsed, and an identity
(``Promotion.key``) given. Within one page the first item with a key wins. A new way of
finding items on a page is one more reader beside these, chosen here.

Errors: a bad CSS selector, a bad or missing JSON path, invalid JSON, a malformed feed or
markup nested absurdly deep raise :class:`~scrapers._errors.ExtractError` with the
library's error translated. A page that reads fine but holds no items gives ``[]``: the
caller decides whether that is suspicious.

Work is bounded on hostile input: markup nested deeper than
:data:`~scrapers._html.MAX_DEPTH` is refused before lexbor builds a tree, feeds are read
event by event with entity declarations refused, and JSON nested too deeply is an
ExtractError, not a crash; each reader's module says how.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from scrapers._auto import Detection, detect
from scrapers._build import build_promotion as build_promotion
from scrapers._build import page_key
from scrapers._feed import feed_items
from scrapers._html import html_items
from scrapers._html import parse_field_spec as parse_field_spec
from scrapers._json import json_items
from scrapers._links import canonical_link as canonical_link
from scrapers._links import safe_link as safe_link
from scrapers._models import Promotion, Source

# benchmarks/extraction.py imports build_promotion, parse_field_spec, canonical_link,
# safe_link and _html_items from here, as from before the split by kind; the aliases
# above mark those imports as re-exports.
_html_items = html_items

__all__ = ["Extraction", "extract", "extract_explained"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extraction:
    """The promotions of a page, and for ``kind: auto`` how they were found."""

    promotions: list[Promotion]
    detection: Detection | None = None


def extract(source: Source, page_text: str, page_url: str, today: date) -> list[Promotion]:
    """The promotions on a page, in page order, deduplicated by key (first wins).

    ``page_url`` is the page's final URL (relative links resolve against it); ``today``
    anchors year inference for dates written without a year. Raises
    :class:`~scrapers._errors.ExtractError` when the page cannot be read as configured.
    """
    return extract_explained(source, page_text, page_url, today).promotions


def extract_explained(source: Source, page_text: str, page_url: str, today: date) -> Extraction:
    """:func:`extract`, with what ``kind: auto`` detected (strategy, score, runners-up)."""
    detection: Detection | None = None
    if source.kind == "auto":
        detection = detect(page_text, page_url)
        raws, base = detection.raws, detection.base_url
    elif source.kind == "html":
        raws, base = html_items(source, page_text, page_url)
    elif source.kind == "feed":
        raws, base = feed_items(page_text, page_url), page_url
    else:
        raws, base = json_items(source, page_text, page_url), page_url
    listing_key = page_key(page_url)
    promotions: list[Promotion] = []
    seen: set[str] = set()
    skipped = 0
    for raw in raws:
        promotion = build_promotion(source.id, raw, base, today, listing_key)
        if promotion is None or promotion.key in seen:
            skipped += 1
            continue
        seen.add(promotion.key)
        promotions.append(promotion)
    logger.debug(
        "%s: %d promotions from %d items (%d untitled or repeated)",
        source.id,
        len(promotions),
        len(raws),
        skipped,
    )
    return Extraction(promotions, detection)
