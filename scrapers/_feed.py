"""The ``feed`` kind: items of an RSS 2.0, RSS 1.0 or Atom feed, read by expat.

``items`` and ``fields`` are not used. Title, link (Atom's alternate link, or an RSS
permalink guid), summary (description, summary or content, tags stripped) and an image
(enclosure or media:content/thumbnail) are read. The publication date is *not* a
promotion date; dates come from the title and summary.

Feeds are read by expat event by event (no recursion, no tree), and a document type
with an internal subset, the only place entities can be declared, is refused, so entity
expansion ("billion laughs") cannot start and no external entity is ever fetched (expat
reads none unless asked; an RSS 0.91 ``<!DOCTYPE rss PUBLIC ...>`` is still accepted).
An empty or malformed feed, or an HTML page, is an :class:`~scrapers._errors.ExtractError`.
"""

from __future__ import annotations

from xml.parsers import expat

from scrapers._build import Raw
from scrapers._errors import ExtractError
from scrapers._html import markup_text

__all__: list[str] = []  # nothing public: extract() is the way in

_FEED_TEXT_LIMIT = 64 * 1024  # characters kept per feed element while reading

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


def feed_items(page_text: str, page_url: str) -> list[Raw]:
    """The title, link, summary and image of every item or entry of the feed."""
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
    raws: list[Raw] = []
    for item in reader.items:
        link = item.get("link", "").strip() or _guid_link(item.get("guid", ""))
        summary = item.get("summary") or item.get("content")
        raws.append(
            {
                "title": markup_text(item.get("title", "")),
                "link": link or None,
                "summary": markup_text(summary) if summary else None,
                "image": item.get("image") or None,
            }
        )
    return raws


def _guid_link(guid: str) -> str:
    guid = guid.strip()
    return guid if guid.lower().startswith(("http://", "https://")) else ""
