"""Reading promotions out of a fetched page, as its :class:`~scrapers._models.Source` says.

:func:`extract` turns page text into :class:`~scrapers._models.Promotion` objects for the
three kinds of source:

``html``
    ``source.items`` is a CSS selector for one promotion (parsed by selectolax's lexbor
    backend); each of ``source.fields`` is a CSS selector relative to the item (the item
    itself included), ``"sel@attr"`` for an attribute of what it selects, ``"@attr"`` for
    an attribute of the item. Without a ``title`` field the item's whole text is the title.
    ``<script>``, ``<style>``, ``<noscript>`` and ``<template>`` never contribute text,
    and ``<base href>`` is honoured when making links absolute.
``feed``
    RSS 2.0, RSS 1.0 or Atom; ``items`` and ``fields`` are not used. Title, link
    (Atom's alternate link, or an RSS permalink guid), summary (description, summary or
    content, tags stripped) and an image (enclosure or media:content/thumbnail) are read.
    The publication date is *not* a promotion date; dates come from the title and summary.
``json``
    The page is JSON, or ``source.script`` selects the ``<script>`` elements holding it
    (``script#__NEXT_DATA__``, ``script[type="application/ld+json"]``; with several
    matches, items are taken from every one where the path exists). ``source.items`` is
    a dotted path to the list of items (``props.pageProps.promotions``): a number
    indexes a list (``sections.0.cards``) and ``*`` takes every element of a list or
    value of an object, flattening one level (``sections.*.cards``). Without ``items``
    the document itself is the list. Fields are dotted paths inside an item (``"."`` is
    the item itself). A list gives its first usable element; an object gives, for price,
    its ``price``/``amount``/``value`` and ``priceCurrency``/``currency``; for date, its
    start and end (``validFrom``/``validThrough``, ``startDate``/``endDate``,
    ``from``/``to``...) as "from X to Y"; for link and image its ``url``; otherwise its
    ``name``, ``title``, ``text`` or ``label``. Strings holding markup are reduced to text.

Every promotion's text is whitespace-normalised and clipped (title 300 characters,
summary 1000, date and price texts 200). Links and images are absolute and only http(s):
``javascript:``, ``data:``, ``mailto:`` and the like are dropped, never passed on. Dates,
prices and a data allowance are parsed from the date and price fields (:mod:`scrapers._parse`).
Without a date field the title and then the summary are searched, and a date field that
gives only a start or only an end is completed from them; without a price field only the
title is (teasers quote prizes and thresholds); a data allowance comes from the title,
then the summary.

Identity (``Promotion.key``) is the canonical link (:func:`canonical_link`); without a
link, or when the link only points back at the page itself (``href="#"``), it is
``"title:"`` and a hash of the normalised title (:func:`title_key`). Within one page the
first item with a key wins.

Errors: a bad CSS selector, a bad or missing JSON path, invalid JSON, a malformed feed or
markup nested absurdly deep raise :class:`~scrapers._errors.ExtractError` with the
library's error translated. A page that reads fine but holds no items gives ``[]``: the
caller decides whether that is suspicious.

Work is bounded on hostile input. Lexbor's tree builder is quadratic in nesting depth
(each block start tag scans the stack of open elements; 100,000 nested ``<div>`` take
minutes), so a linear scan first estimates the depth and pages deeper than
:data:`MAX_DEPTH` are refused. Below that, every step is linear in the page size times
at most ``MAX_DEPTH``. Feeds are read by expat event by event (no recursion, no tree),
and a document type with an internal subset, the only place entities can be declared,
is refused, so entity expansion ("billion laughs") cannot start and no external entity
is ever fetched (expat reads none unless asked; an RSS 0.91 ``<!DOCTYPE rss PUBLIC ...>``
is still accepted). JSON nested deeper than Python's recursion limit is an
ExtractError, not a crash.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from xml.parsers import expat

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from scrapers._errors import ExtractError
from scrapers._models import Promotion, Source
from scrapers._parse import normalise_space, parse_data_gb, parse_dates, parse_price

__all__ = ["MAX_DEPTH", "canonical_link", "extract", "safe_link", "title_key"]

logger = logging.getLogger(__name__)

# Blink stops nesting at 512 levels too, so no page that renders in a browser needs more.
MAX_DEPTH = 512
TITLE_LIMIT = 300
SUMMARY_LIMIT = 1000
TEXT_LIMIT = 200
URL_LIMIT = 2048
_FEED_TEXT_LIMIT = 64 * 1024  # characters kept per feed element while reading

_Raw = dict[str, str | None]  # field name -> raw text, before normalisation


def extract(source: Source, page_text: str, page_url: str, today: date) -> list[Promotion]:
    """The promotions on a page, in page order, deduplicated by key (first wins).

    ``page_url`` is the page's final URL (relative links resolve against it); ``today``
    anchors year inference for dates written without a year. Raises
    :class:`~scrapers._errors.ExtractError` when the page cannot be read as configured.
    """
    if source.kind == "html":
        raws, base = _html_items(source, page_text, page_url)
    elif source.kind == "feed":
        raws, base = _feed_items(page_text, page_url), page_url
    else:
        raws, base = _json_items(source, page_text, page_url), page_url
    page_key = _page_key(page_url)
    promotions: list[Promotion] = []
    seen: set[str] = set()
    skipped = 0
    for raw in raws:
        promotion = build_promotion(source.id, raw, base, today, page_key)
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
    return promotions


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


# --- links and keys -------------------------------------------------------------------

# Query parameters that say who sent the visitor, not what the page is (plus utm_*).
_TRACKING = frozenset(
    {
        *("fbclid", "gclid", "dclid", "gbraid", "wbraid", "yclid", "msclkid", "igshid"),
        *("_openstat", "mc_cid", "mc_eid"),
    }
)
_URL_NOISE = re.compile(r"[\t\n\r]")  # browsers delete these anywhere in a URL
# http(s), a lowercase host name without user info or port, then anything: such a URL
# needs neither validation nor host normalisation. Groups: scheme, host, path, query,
# fragment.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(/[^?#]*)?(?:\?([^#]*))?(?:#(.*))?", re.S
)
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_DEFAULT_PORTS = {"http": 80, "https": 443}


def safe_link(href: str | None, base_url: str) -> str | None:
    """``href`` made absolute against ``base_url`` if the result is an http(s) URL.

    Everything else is None: ``javascript:`` (however spelled: ``JaVaScRiPt:``,
    ``java\\tscript:``, with leading control characters), ``data:``, ``mailto:``,
    ``tel:``, ``file:``, URLs without a host, malformed and over-long ones.
    """
    if not href:
        return None
    # What a browser does before parsing: strip C0 controls and spaces, drop tabs/newlines.
    cleaned = _URL_NOISE.sub("", href).strip(_C0_AND_SPACE)
    if not cleaned or len(cleaned) > URL_LIMIT:
        return None
    if cleaned[0] == "/" and cleaned[1:2] != "/" and "/." not in cleaned:
        origin = _origin(base_url)  # the common "/ru/promo/a": no parsing needed
        return origin + cleaned if origin else None
    if _PLAIN_URL.fullmatch(cleaned):
        return cleaned  # the common "https://host/path": valid as it is
    try:
        if cleaned[:8].lower().startswith(("http://", "https://")):
            absolute = cleaned
        else:
            absolute = urljoin(base_url, cleaned)
        parts = urlsplit(absolute)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return absolute


@functools.lru_cache(maxsize=64)
def _origin(base_url: str) -> str | None:
    """``https://host[:port]`` of an http(s) base URL, or None."""
    try:
        parts = urlsplit(base_url)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc}"


def canonical_link(url: str) -> str:
    """The identity of a link: scheme and host lowercased; default port, user info and
    fragment (unless it is a ``#/route``) dropped; tracking parameters (``utm_*``,
    ``fbclid``, ``gclid``...) removed; an empty path made ``/`` and a trailing slash
    removed from any other path.

    The order of the remaining query parameters is kept: sites render their own links
    consistently, and some servers give order a meaning.
    """
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:  # the usual case, without urllib's overhead
        scheme, netloc, path, query, fragment = plain.groups(default="")
    else:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return url
        scheme, path, query, fragment = (
            parts.scheme.lower(),
            parts.path,
            parts.query,
            parts.fragment,
        )
        host = (parts.hostname or "").rstrip(".")
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != _DEFAULT_PORTS.get(scheme):
            netloc += f":{port}"
    path = path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    if query:
        query = "&".join(
            pair for pair in query.split("&") if pair and not _is_tracking(pair.split("=")[0])
        )
    # A fragment is dropped unless it is a client-side route ("#/promo/12", "#!/promo/12"):
    # there it is the only thing telling one promotion from the next.
    if not fragment.startswith(("/", "!/")):
        fragment = ""
    return urlunsplit((scheme, netloc, path, query, fragment))


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in _TRACKING


def title_key(title: str) -> str:
    """``"title:"`` and 16 hex digits of the SHA-1 of the normalised, case-folded title."""
    folded = unicodedata.normalize("NFKC", normalise_space(title)).casefold()
    return "title:" + hashlib.sha1(folded.encode("utf-8")).hexdigest()[:16]


def _page_key(page_url: str) -> str:
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


# --- html -----------------------------------------------------------------------------

_SILENT_TAGS = ["script", "style", "noscript", "template"]
_ATTR_SPEC = re.compile(r"^(?P<selector>.*?)\s*@(?P<attr>[A-Za-z_:][-A-Za-z0-9_:.]*)$", re.S)


@dataclass(frozen=True)
class FieldSpec:
    """A field's CSS selector (None: the item itself) and attribute (None: its text)."""

    selector: str | None
    attr: str | None


def parse_field_spec(name: str, spec: str) -> FieldSpec:
    """Split ``"a@href"`` / ``"@href"`` / ``".title"`` and check the selector compiles."""
    match = _ATTR_SPEC.match(spec.strip())
    selector, attr = (match["selector"], match["attr"]) if match else (spec.strip(), None)
    if not selector and attr is None:
        raise ExtractError(f"field {name}: empty selector")
    check_selector(selector or None, f"field {name}")
    return FieldSpec(selector or None, attr)


def check_selector(selector: str | None, what: str) -> None:
    """Raise ExtractError if ``selector`` is not a CSS selector lexbor can compile.

    Checked up front, on a tiny document, so a bad field selector is reported even on a
    page where no item matched (where it would never have been used)."""
    if selector is None:
        return
    problem = _selector_problem(selector)
    if problem is not None:
        raise ExtractError(f"{what}: invalid CSS selector {selector!r} ({problem})")


@functools.lru_cache(maxsize=256)
def _selector_problem(selector: str) -> str | None:
    try:
        LexborHTMLParser("<p></p>").css_first(selector)  # a parser of its own: no sharing
    except SelectolaxError as exc:
        return str(exc)
    return None


def html_tree(page_text: str) -> LexborHTMLParser:
    """The page parsed by lexbor, after the nesting-depth check (see the module docstring)."""
    check_depth(page_text)
    return LexborHTMLParser(page_text)


def _html_items(source: Source, page_text: str, page_url: str) -> tuple[list[_Raw], str]:
    assert source.items is not None  # Source requires it for html
    specs = {name: parse_field_spec(name, spec) for name, spec in source.fields.items()}
    check_selector(source.items, "items")
    tree = html_tree(page_text)
    base_url = page_url
    base = tree.css_first("base[href]")
    if base is not None:
        base_url = safe_link(base.attributes.get("href"), page_url) or page_url
    tree.strip_tags(_SILENT_TAGS)
    raws: list[_Raw] = []
    for item in tree.css(source.items):
        raw: _Raw = {name: _node_value(item, spec) for name, spec in specs.items()}
        if "title" not in specs:
            raw["title"] = item.text(separator=" ")
        raws.append(raw)
    return raws, base_url


def _node_value(item: LexborNode, spec: FieldSpec) -> str | None:
    node = item if spec.selector is None else item.css_first(spec.selector)
    if node is None:
        return None
    if spec.attr is not None:
        return node.attributes.get(spec.attr)
    return node.text(separator=" ")


def _markup_text(text: str) -> str:
    """The visible text of an HTML snippet (feed descriptions, JSON strings with tags)."""
    if "<" not in text and "&" not in text:
        return text
    tree = html_tree(text)
    tree.strip_tags(_SILENT_TAGS)
    root = tree.root
    return root.text(separator=" ") if root is not None else ""


# Elements that never deepen the stack of open elements: void ones, and ones the parser
# closes implicitly when a sibling starts (so sloppy <p>, <li>, <td> markup is not deep).
_FLAT = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "param",
        "keygen",
        "frame",
        "basefont",
        "bgsound",
        "image",
        "p",
        "li",
        "dt",
        "dd",
        "option",
        "optgroup",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "caption",
        "rb",
        "rt",
        "rp",
        "rtc",
        "html",
        "head",
        "body",
    }
)
# An HTML element in <svg>/<math> ends the foreign content (the HTML standard's list).
_BREAKOUT = frozenset(
    {
        "b",
        "big",
        "blockquote",
        "body",
        "br",
        "center",
        "code",
        "dd",
        "div",
        "dl",
        "dt",
        "em",
        "embed",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "hr",
        "i",
        "img",
        "li",
        "listing",
        "menu",
        "meta",
        "nobr",
        "ol",
        "p",
        "pre",
        "ruby",
        "s",
        "small",
        "span",
        "strong",
        "strike",
        "sub",
        "sup",
        "table",
        "tt",
        "u",
        "ul",
        "var",
        "font",
    }
)
_FOREIGN = ("svg", "math")
_NO_SELF_NESTING = ("a", "button", "nobr")  # a second one closes the first
_SKIPPED = (
    r"<!--.*?(?:-->|\Z)"  # comments, up to the end of the page if unclosed
    r"|<(?:script|style)\b.*?(?:</(?:script|style)\s*>|\Z)"  # raw text holds no tags
)
# Names only ("div", "/div"): cheap, but blind to "/>".
_NAME_SCAN = re.compile(_SKIPPED + r"|<(/?[A-Za-z][A-Za-z0-9:-]*)", re.S | re.I)
# Names and a self-closing slash; a stray '<' stops a tag (each scan ends at the next '<').
_TAG_SCAN = re.compile(
    _SKIPPED + r"|<(/?[A-Za-z][A-Za-z0-9:-]*)[^<>/]*(?:/(?!>)[^<>/]*)*(/?)>", re.S | re.I
)


# Up to this many tags, the first scan lists them (a few MB at most) rather than
# generating them one by one, which is slower.
_LISTED_TAGS = 50_000


def check_depth(page_text: str, limit: int = MAX_DEPTH) -> None:
    """Raise ExtractError if the markup nests elements more than ``limit`` deep.

    An estimate, by a linear pass of a regex over the tags, of the depth lexbor's tree
    builder will reach: void and implicitly closed elements (``<br>``, ``<p>``, ``<li>``,
    ``<td>``...) do not count, an end tag closes everything opened after its element, a
    second ``<a>`` closes the first, an HTML element ends ``<svg>``/``<math>`` content,
    and ``/>`` closes only inside ``<svg>``/``<math>``. Unclosed elements can only make
    the estimate higher than the real depth. The first pass ignores ``/>`` (which can
    only overestimate); only a page it finds too deep is scanned again, precisely.
    """
    tags = page_text.count("<")
    if tags <= limit:
        return  # not enough tags to get that deep
    names: Iterable[str]
    if tags <= _LISTED_TAGS:
        names = _NAME_SCAN.findall(page_text)  # fast: the list is built in C
    else:
        # Generated, not listed: a list of every tag of a page of 200,000 tags would
        # cost more memory than the page itself.
        names = (match.group(1) or "" for match in _NAME_SCAN.finditer(page_text))
    if not _too_deep(names, limit):
        return
    tokens = (
        (match.group(1) or "") + (match.group(2) or "") for match in _TAG_SCAN.finditer(page_text)
    )
    if _too_deep(tokens, limit):
        raise ExtractError(
            f"the page nests elements more than {limit} deep; broken or hostile markup, not parsed"
        )


def _too_deep(tokens: Iterable[str], limit: int) -> bool:
    """Whether the stack of open elements grows past ``limit``. Tokens: ``"div"``,
    ``"/div"``, ``"path/"`` (self-closing), ``""`` (a comment or script)."""
    stack: list[str] = []
    counts: dict[str, int] = {}
    for token in tokens:
        if not token:
            continue
        if token[0] == "/":
            name = token[1:].lower()
            if stack and stack[-1] == name:  # the usual case: the innermost element
                stack.pop()
                counts[name] -= 1
            elif counts.get(name):
                _pop_to(stack, counts, name)
            continue
        self_closing = token[-1] == "/"
        name = (token[:-1] if self_closing else token).lower()
        if name in _FLAT:
            continue
        foreign = counts.get("svg", 0) or counts.get("math", 0)
        if foreign and name in _BREAKOUT:
            _pop_foreign(stack, counts)
        elif self_closing and (foreign or name in _FOREIGN):
            continue
        if name in _NO_SELF_NESTING and counts.get(name):
            _pop_to(stack, counts, name)
        stack.append(name)
        counts[name] = counts.get(name, 0) + 1
        if len(stack) > limit:
            return True
    return False


def _pop_to(stack: list[str], counts: dict[str, int], name: str) -> None:
    """Pop up to and including the innermost open ``name`` (which must be open)."""
    while stack:
        top = stack.pop()
        counts[top] -= 1
        if top == name:
            return


def _pop_foreign(stack: list[str], counts: dict[str, int]) -> None:
    """Pop until no <svg> or <math> is open: an HTML element ended the foreign content."""
    while stack and (counts.get("svg", 0) or counts.get("math", 0)):
        counts[stack.pop()] -= 1


# --- feeds ----------------------------------------------------------------------------

_ATOM = "http://www.w3.org/2005/Atom"
_RSS1 = "http://purl.org/rss/1.0/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_MEDIA = "http://search.yahoo.com/mrss/"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_CORE = ("", _ATOM, _RSS1)
_ROOTS = {("", "rss"), (_RDF, "RDF"), (_ATOM, "feed")}
_ITEMS = {("", "item"), (_RSS1, "item"), (_ATOM, "entry")}
# Element (namespace-less for RSS 2.0, Atom and RSS 1.0) -> field it fills, best first.
_TEXT_FIELDS = {
    "title": "title",
    "link": "link",
    "guid": "guid",
    "id": "guid",
    "description": "summary",
    "summary": "summary",
    "content": "content",
}


class _FeedError(Exception):
    """Raised inside expat callbacks to stop parsing."""


class _FeedReader:
    """Collects items from expat's events; keeps a stack of names, never a tree."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.depth = 0
        self.root: tuple[str, str] | None = None
        self.item: dict[str, str] | None = None
        self.item_depth = 0
        self.capture: str | None = None  # field being read, and at which depth
        self.capture_depth = 0
        self.buffer: list[str] = []
        self.buffered = 0

    @staticmethod
    def split(name: str) -> tuple[str, str]:
        namespace, _, local = name.rpartition(" ")
        return namespace, local

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        qualified = self.split(name)
        if self.root is None:
            self.root = qualified
            if qualified not in _ROOTS:
                raise _FeedError(f"not an RSS or Atom feed (the root element is <{name}>)")
        if self.item is None:
            if qualified in _ITEMS:
                self.item, self.item_depth = {}, self.depth
            return
        if self.depth != self.item_depth + 1 or self.capture is not None:
            return
        namespace, local = qualified
        if namespace in _CORE:
            if local == "link" and "href" in attrs:  # Atom
                rel = attrs.get("rel", "alternate")
                if rel == "alternate":
                    self.item.setdefault("link", attrs["href"])
                elif rel == "enclosure" and attrs.get("type", "").startswith("image/"):
                    self.item.setdefault("image", attrs["href"])
                return
            if local == "enclosure" and attrs.get("type", "").startswith("image/"):
                self.item.setdefault("image", attrs.get("url", ""))
                return
            if local == "guid" and attrs.get("isPermaLink", "true") == "false":
                return
            field = _TEXT_FIELDS.get(local)
        elif namespace == _CONTENT and local == "encoded":
            field = "content"
        elif namespace == _MEDIA and local in ("content", "thumbnail"):
            if (
                local == "thumbnail"
                or attrs.get("medium") == "image"
                or attrs.get("type", "").startswith("image/")
            ):
                self.item.setdefault("image", attrs.get("url", ""))
            return
        else:
            field = None
        if field is not None and field not in self.item:
            self.capture, self.capture_depth = field, self.depth
            self.buffer, self.buffered = [], 0

    def end(self, _name: str) -> None:
        if self.capture is not None and self.depth == self.capture_depth:
            assert self.item is not None
            self.item[self.capture] = "".join(self.buffer)
            self.capture, self.buffer = None, []
        if self.item is not None and self.depth == self.item_depth:
            self.items.append(self.item)
            self.item = None
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.capture is not None and self.buffered < _FEED_TEXT_LIMIT:
            self.buffer.append(data)
            self.buffered += len(data)

    @staticmethod
    def doctype(name: str | None, _system: object, _public: object, internal: bool) -> None:
        if name and name.lower() == "html":
            raise _FeedError("an HTML page, not an RSS or Atom feed")
        if internal:  # only an internal subset can declare entities
            raise _FeedError("the feed declares entities in its document type; refused")

    @staticmethod
    def refuse_entity(*_args: object) -> None:  # pragma: no cover - doctype() refuses first
        raise _FeedError("the feed declares entities; refused")


def _feed_items(page_text: str, page_url: str) -> list[_Raw]:
    text = page_text.lstrip("\ufeff \t\r\n")
    if not text:
        raise ExtractError("the feed is empty", page_url)
    reader = _FeedReader()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    parser.StartDoctypeDeclHandler = reader.doctype
    parser.EntityDeclHandler = reader.refuse_entity
    try:
        parser.Parse(text, True)
    except _FeedError as exc:
        raise ExtractError(str(exc), page_url) from None
    except expat.ExpatError as exc:
        raise ExtractError(f"the feed is not well-formed XML: {exc}", page_url) from None
    raws: list[_Raw] = []
    for item in reader.items:
        link = item.get("link", "").strip() or _guid_link(item.get("guid", ""))
        summary = item.get("summary") or item.get("content")
        raws.append(
            {
                "title": _markup_text(item.get("title", "")),
                "link": link or None,
                "summary": _markup_text(summary) if summary else None,
                "image": item.get("image") or None,
            }
        )
    return raws


def _guid_link(guid: str) -> str:
    guid = guid.strip()
    return guid if guid.lower().startswith(("http://", "https://")) else ""


# --- json -----------------------------------------------------------------------------

_WILDCARD = "*"
_VALUE_DEPTH = 3


def parse_json_path(path: str, what: str) -> tuple[str, ...]:
    """``"props.pageProps.promotions"`` -> its segments (``"."`` is the item itself);
    ExtractError on an empty segment."""
    if path.strip() == ".":
        return ()
    segments = tuple(path.strip().split("."))
    if any(not segment.strip() for segment in segments):
        raise ExtractError(f"{what}: invalid JSON path {path!r} (an empty segment)")
    return tuple(segment.strip() for segment in segments)


def _walk(document: Any, segments: Sequence[str]) -> tuple[list[Any], str | None]:
    """Every value at ``segments`` (``*`` fans out), and why the first dead end ended."""
    values = [document]
    problem: str | None = None
    for depth, segment in enumerate(segments):
        where = ".".join(segments[:depth]) or "the top level"
        following: list[Any] = []
        for value in values:
            if segment == _WILDCARD:
                if isinstance(value, list):
                    following.extend(value)
                elif isinstance(value, dict):
                    following.extend(value.values())
                else:
                    problem = problem or f"'*' at {where} needs a list or an object"
            elif isinstance(value, dict):
                if segment in value:
                    following.append(value[segment])
                else:
                    problem = problem or f"no key {segment!r} at {where}"
            elif isinstance(value, list) and segment.isdigit():
                if int(segment) < len(value):
                    following.append(value[int(segment)])
                else:
                    problem = problem or f"index {segment} is past the end of the list at {where}"
            else:
                kind = type(value).__name__ if value is not None else "null"
                problem = problem or f"{segment!r} at {where}: a {kind} has no such member"
        values = following
    return values, problem


def _json_documents(source: Source, page_text: str, page_url: str) -> list[Any]:
    """The JSON documents of a page: the page itself, or every script the selector matches
    that holds valid JSON (one broken script among several is skipped, not fatal)."""
    if source.script is None:
        return [_load_json(page_text, "the page", page_url)]
    check_selector(source.script, "script")
    nodes = html_tree(page_text).css(source.script)
    if not nodes:
        raise ExtractError(f"no element matches the script selector {source.script!r}", page_url)
    documents: list[Any] = []
    errors: list[ExtractError] = []
    for index, node in enumerate(nodes):
        try:
            documents.append(
                _load_json(node.text(), f"script {index + 1} of {len(nodes)}", page_url)
            )
        except ExtractError as exc:
            errors.append(exc)
    if not documents:
        raise errors[0]
    for error in errors:
        logger.debug("%s: skipped a script: %s", source.id, error)
    return documents


def _load_json(text: str, what: str, page_url: str) -> Any:
    text = text.strip().lstrip("\ufeff")
    if text.startswith("<!--") and text.endswith("-->"):  # old-style script hiding
        text = text[4:-3].strip()
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ExtractError(f"{what} is not valid JSON: {exc}", page_url) from None
    except RecursionError:
        raise ExtractError(f"{what} nests JSON too deeply to read", page_url) from None


def _json_items(source: Source, page_text: str, page_url: str) -> list[_Raw]:
    item_path = parse_json_path(source.items, "items") if source.items else ()
    field_paths = {
        name: parse_json_path(path, f"field {name}") for name, path in source.fields.items()
    }
    items: list[Any] = []
    found = False
    problem: str | None = None
    for document in _json_documents(source, page_text, page_url):
        values, dead_end = _walk(document, item_path)
        if values or dead_end is None:
            found = True  # (an empty list is found too: zero items, not an error)
        problem = problem or dead_end
        for value in values:
            items.extend(value if isinstance(value, list) else [value])
    if not found:
        raise ExtractError(f"items path {source.items!r}: {problem}", page_url)
    return [
        {name: _json_value(item, segments, name) for name, segments in field_paths.items()}
        for item in items
        if isinstance(item, dict)
    ]


def _json_value(item: Mapping[str, Any], segments: Sequence[str], name: str) -> str | None:
    values, _ = _walk(item, segments)
    for value in values:
        text = _scalar(value, name)
        if text is not None:
            return text
    return None


def _scalar(value: Any, name: str, depth: int = 0) -> str | None:
    """A JSON value as field text. Lists give their first usable element, objects what
    :func:`_schema_value` finds in them, at most :data:`_VALUE_DEPTH` levels down."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if name in ("link", "image") else _markup_text(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if depth >= _VALUE_DEPTH:
        return None
    if isinstance(value, list):
        for element in value:
            text = _scalar(element, name, depth + 1)
            if text:
                return text
        return None
    if isinstance(value, dict):
        return _schema_value(value, name, depth + 1)
    return None  # pragma: no cover - json.loads makes nothing else


def _schema_value(value: Mapping[str, Any], name: str, depth: int) -> str | None:
    """An object as the text a field wants: an Offer's or API's price and currency, a
    period's start and end, an ImageObject's url, a Thing's name."""
    if name == "price":
        amount = _first(value, _AMOUNT_KEYS, name, depth)
        if amount is not None:
            currency = _first(value, _CURRENCY_KEYS, name, depth)
            return f"{amount} {currency}" if currency else amount
    if name == "date":
        starts = _first(value, _START_KEYS, name, depth)
        ends = _first(value, _END_KEYS, name, depth)
        if starts or ends:
            parts = (f"from {starts}" if starts else "", f"to {ends}" if ends else "")
            return " ".join(part for part in parts if part)
    return _first(value, _URL_KEYS if name in ("link", "image") else _TEXT_KEYS, name, depth)


_AMOUNT_KEYS = ("price", "amount", "value")
_CURRENCY_KEYS = ("priceCurrency", "currency")
_START_KEYS = ("validFrom", "startDate", "start", "from", "dateFrom", "start_date", "begin")
_END_KEYS = ("validThrough", "endDate", "end", "to", "until", "dateTo", "end_date", "expires")
_URL_KEYS = ("url", "href", "contentUrl", "@id")
_TEXT_KEYS = ("name", "title", "text", "label")


def _first(value: Mapping[str, Any], keys: Sequence[str], name: str, depth: int) -> str | None:
    for key in keys:
        if key in value:
            text = _scalar(value[key], name, depth)
            if text:
                return text
    return None
