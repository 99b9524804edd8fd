"""Plain value objects passed between the fetcher, the extractors and change detection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Literal

SourceKind = Literal["auto", "html", "feed", "json"]
Render = Literal["http", "browser"]
FIELD_NAMES = ("title", "link", "summary", "date", "price", "image")


@dataclass(frozen=True)
class Source:
    """Where promotions come from and how to read them.

    ``auto`` (the default) finds the promotions on the page by itself: a feed, schema.org
    JSON-LD, the app state embedded in the page, or the page's repeated blocks
    (:mod:`scrapers._auto`). The other kinds say how: ``items`` is a CSS selector (html)
    or a dotted JSON path to the item list (json); feeds need neither. ``fields`` maps a
    field name (title, link, summary, date, price, image) to a CSS selector relative to
    the item, with ``@attr`` to read an attribute (``"a@href"``), or, for json, a dotted
    path inside the item. ``render`` is ``browser`` for a page whose list is drawn by
    scripts: it is rendered in a headless browser before it is read.
    """

    id: str
    url: str
    kind: SourceKind = "auto"
    items: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    operator: str | None = None
    # For json sources embedded in a page: a CSS selector for the <script> holding it
    # (e.g. 'script#__NEXT_DATA__' or 'script[type="application/ld+json"]').
    script: str | None = None
    render: Render = "http"

    def __post_init__(self) -> None:
        if self.kind == "auto" and self.items:
            # Selectors win when given: an items selector without a kind means html.
            object.__setattr__(self, "kind", "html")
        unknown = set(self.fields) - set(FIELD_NAMES)
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))}; use {', '.join(FIELD_NAMES)}"
            )
        if self.kind not in ("auto", "html", "feed", "json"):
            raise ValueError(f"unknown kind {self.kind!r}; use auto, html, feed or json")
        if self.render not in ("http", "browser"):
            raise ValueError(f"unknown render {self.render!r}; use http or browser")
        if self.kind == "html" and not self.items:
            raise ValueError("an html source needs an items selector")


@dataclass(frozen=True)
class Validators:
    """What makes the next request conditional (kept between runs by the caller)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Page:
    """A fetched page. ``text`` is None when the server said 304 Not Modified."""

    url: str  # the final URL after redirects
    status: int
    text: str | None
    validators: Validators
    content_type: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Promotion:
    """One promotion as extracted; text already whitespace-normalised, links absolute."""

    source_id: str
    key: str  # identity: canonical link, or "title:<hash>" of the normalised title
    title: str
    link: str | None = None
    summary: str | None = None
    image: str | None = None
    date_text: str | None = None
    starts: date | None = None
    ends: date | None = None
    price_text: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    data_gb: Decimal | None = None  # a data allowance when obvious ("50 ГБ")

    def to_json(self) -> dict[str, str | None]:
        """Every field as JSON-ready text (dates as YYYY-MM-DD, numbers as exact text)."""
        return {item.name: _json_text(getattr(self, item.name)) for item in fields(self)}


def _json_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # exact, never a float; 4990.00 is 4990
    return str(value)
