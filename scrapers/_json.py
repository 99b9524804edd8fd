"""The ``json`` kind: items found by dotted paths in JSON, and what a field makes of a value.

The page is JSON, or ``source.script`` selects the ``<script>`` elements holding it
(``script#__NEXT_DATA__``, ``script[type="application/ld+json"]``; with several
matches, items are taken from every one where the path exists). ``source.items`` is a
dotted path to the list of items (``props.pageProps.promotions``): a number indexes a
list (``sections.0.cards``) and ``*`` takes every element of a list or value of an
object, flattening one level (``sections.*.cards``). Without ``items`` the document
itself is the list. Fields are dotted paths inside an item (``"."`` is the item itself).

A list gives its first usable element; an object gives, for price, its
``price``/``amount``/``value`` and ``priceCurrency``/``currency``; for date, its start
and end (``validFrom``/``validThrough``, ``startDate``/``endDate``, ``from``/``to``...)
as "from X to Y"; for link and image its ``url``; otherwise its ``name``, ``title``,
``text`` or ``label`` (schema.org's Offer, ImageObject and Thing, and the like:
:func:`_schema_value`). Strings holding markup are reduced to text.

A bad or missing path and invalid JSON are an :class:`~scrapers._errors.ExtractError`;
so is JSON nested deeper than Python's recursion limit, rather than a crash.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from scrapers._errors import ExtractError
from scrapers._html import check_selector, html_tree, markup_text
from scrapers._models import Source

if TYPE_CHECKING:
    from scrapers._build import Raw  # only a type: _build loads the parsers (0.02 s)

__all__: list[str] = []  # nothing public: extract() is the way in

logger = logging.getLogger(__name__)

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


def json_items(source: Source, page_text: str, page_url: str) -> list[Raw]:
    """The fields of every object at the items path, from every JSON document of the page."""
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
        return value if name in ("link", "image") else markup_text(value)
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
