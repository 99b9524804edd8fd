"""The ``html`` kind, CSS selectors, and the HTML parsing every kind shares.

``source.items`` is a CSS selector for one promotion (parsed by selectolax's lexbor
backend); each of ``source.fields`` is a CSS selector relative to the item (the item
itself included), ``"sel@attr"`` for an attribute of what it selects, ``"@attr"`` for
an attribute of the item. Without a ``title`` field the item's whole text is the title.
``<script>``, ``<style>``, ``<noscript>`` and ``<template>`` never contribute text,
and ``<base href>`` is honoured when making links absolute.

Selectors are checked up front (:func:`check_selector`, :func:`parse_field_spec`), so a
bad one is an :class:`~scrapers._errors.ExtractError` even on a page where nothing
matched; profile validation uses the same checks. The other kinds parse HTML here too,
through :func:`html_tree` (a ``<script>`` holding JSON) and :func:`markup_text` (feed
descriptions, JSON strings with tags), so the depth check below guards every page
lexbor sees.

Lexbor's tree builder is quadratic in nesting depth (each block start tag scans the
stack of open elements; 100,000 nested ``<div>`` take minutes), so a linear scan first
estimates the depth (:func:`check_depth`) and pages deeper than :data:`MAX_DEPTH` are
refused with an ExtractError. Below that, every step is linear in the page size times
at most ``MAX_DEPTH``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from scrapers._errors import ExtractError
from scrapers._links import safe_link
from scrapers._models import Source

if TYPE_CHECKING:
    from scrapers._build import Raw  # only a type: _build loads the parsers (0.02 s)

__all__ = ["MAX_DEPTH"]

# Blink stops nesting at 512 levels too, so no page that renders in a browser needs more.
MAX_DEPTH = 512

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


def html_items(source: Source, page_text: str, page_url: str) -> tuple[list[Raw], str]:
    """The fields of every element ``source.items`` selects, and the URL their links
    resolve against (the ``<base href>``, else the page's)."""
    assert source.items is not None  # Source requires it for html
    specs = {name: parse_field_spec(name, spec) for name, spec in source.fields.items()}
    check_selector(source.items, "items")
    tree = html_tree(page_text)
    base_url = page_url
    base = tree.css_first("base[href]")
    if base is not None:
        base_url = safe_link(base.attributes.get("href"), page_url) or page_url
    tree.strip_tags(_SILENT_TAGS)
    raws: list[Raw] = []
    for item in tree.css(source.items):
        raw: Raw = {name: _node_value(item, spec) for name, spec in specs.items()}
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


def markup_text(text: str) -> str:
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
