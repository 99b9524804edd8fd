"""``kind: auto``: finding the promotions on a page nobody wrote selectors for.

:func:`detect` tries every strategy and ranks what each found, from the strongest
evidence down:

``feed``
    The page is RSS or Atom itself. (A page that *names* a feed with
    ``<link rel="alternate">`` is the fetcher's business: :func:`discover_feed` gives the
    address, and the caller reads that feed instead.)
``jsonld``
    schema.org JSON-LD: an ``ItemList``, or things of the types offers, events, products
    and news are (``Offer``, ``AggregateOffer``, ``Event``, ``Product``, ``NewsArticle``...)
    with their names, URLs, prices and validity dates. ``Organization``, ``WebSite``,
    ``BreadcrumbList`` and the like are never promotions.
``state``
    The app state a script framework embeds (``<script id="__NEXT_DATA__">``, any
    ``<script type="application/json">``, ``window.__INITIAL_STATE__ = {...}``): the
    arrays of objects carrying a title-like field with a link, slug, id or date beside it.
    Arrays under menu, navigation, footer or settings keys, and arrays of one- or
    two-word labels, are menus, not promotions.
``dom``
    Groups of repeated sibling blocks with the same tag and classes, each with
    heading-like text, scored by how many there are, how much they say, whether they
    hold dates and prices, and where they sit (``main`` over ``header``, ``nav``,
    ``footer``, ``aside``, whose lists are never taken, nor menus, pagers, breadcrumbs
    and cookie banners). A generic link text ("Подробнее", "Толығырақ", "Read more") is
    never a title: the title comes from the block's heading.

The first strategy whose best candidate is good enough wins; the others are kept as
runners-up with the reason they lost, for ``watcher scrape --explain``. A page without a
list gives none, with a hint saying why ("no promotion list found on this page", or that
the list may be drawn by scripts). Items come out as :data:`~scrapers._build.Raw`, and
:func:`~scrapers._build.build_promotion` does the rest exactly as for selector sources.

Work is bounded: the page goes through the same depth check as any HTML, JSON is walked
iteratively with a cap on the values visited, and only the first items of a group are
examined for scoring.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from scrapers._build import Raw
from scrapers._feed import feed_items
from scrapers._html import html_tree
from scrapers._links import safe_link
from scrapers._parse import normalise_space, parse_dates, parse_price

__all__ = ["Candidate", "Detection", "detect", "discover_feed", "looks_like_feed"]

MAX_JSON_VALUES = 200_000  # values walked per JSON document
MAX_JSON_DEPTH = 64  # levels walked: no promotion list sits deeper
SAMPLE = 40  # items of a group examined for scoring
MAX_ITEMS = 1000  # items read from one list: no promotions page lists more
COMPANION_SHARE = 0.35  # of the winner's score, for a list beside it to join it
MIN_DOM_SCORE = 4.0

_SILENT = ["script", "style", "noscript", "template", "svg"]
GENERIC_LINK_TEXTS = frozenset(
    {
        "подробнее",
        "узнать больше",
        "узнать подробнее",
        "читать далее",
        "читать",
        "далее",
        "ещё",
        "еще",
        "перейти",
        "подключить",
        "купить",
        "заказать",
        "оформить",
        "смотреть",
        "толығырақ",
        "көбірек білу",
        "толық",
        "қосу",
        "read more",
        "learn more",
        "more",
        "details",
        "see more",
        "view",
        "view more",
        "buy",
        "order",
        "get it",
        "connect",
        "show more",
        "показать ещё",
        "показать еще",
    }
)
_CHROME_TAGS = frozenset({"header", "nav", "footer", "aside", "form", "dialog"})
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "menu"})
_CHROME_WORDS = re.compile(
    r"(?<![a-z])(?:nav|navbar|menu|megamenu|footer|header|breadcrumbs?|pagination|pager|"
    r"cookies?|consent|gdpr|sidebar|social|share|lang|language|langs|locale|tabs?|"
    r"toolbar|topbar|search|login|auth|modal|popup|subscribe)(?![a-z])"
)
_MAIN_WORDS = re.compile(r"(?<![a-z])(?:main|content|promo|promos|offers?|actions?|news)(?![a-z])")
# A class naming one block: post-799, item_12, card-3f2a (a number of 2+ digits, or hex).
_ITEM_CLASS = re.compile(r"\d{2,}|[-_](?:[0-9a-f]{6,})$")
# Utility-CSS headings (Tailwind and the like): large or bold text; small caps are labels.
_BIG_TEXT = re.compile(
    r"(?:^|\s)(?:text-(?:lg|xl|[2-9]xl)|font-(?:bold|semibold|extrabold|black))(?=\s|$)"
)
_SMALL_TEXT = re.compile(
    r"(?:^|\s)(?:text-(?:xs|sm)|uppercase|badge|tag|label|chip|category)", re.I
)
_LETTER = re.compile(r"[^\W\d_]")
_DOCUMENT = re.compile(r"\.(?:pdf|docx?|xlsx?|pptx?|zip|rar)(?:$|[?#])", re.I)
# Offices, shops and contacts repeat like offers: a phone to call, or opening hours at
# an address, is what such a card is for.
_OPENING_HOURS = re.compile(r"\b\d{1,2}[:.]\d{2}\s*[-–—]\s*\d{1,2}[:.]\d{2}\b")
_ADDRESS = re.compile(
    r"адрес|\bул\.|\bпр\.|просп|проспект|мкр|мекенжай|көш\.|даңғыл|address|\bstreet\b|\bst\.|\bave\b",
    re.I,
)
# Words that make a block read as an offer rather than a contact card or a document.
_PROMO_WORDS = re.compile(
    r"акци|скидк|бонус|бесплат|подар|кэшбэк|кешбэк|тариф|роуминг|безлимит|выгод|"
    r"предложени|розыгрыш|пакет|интернет|минут|смс|рассрочк|"
    r"жеңілдік|сыйлық|тегін|ұтыс|"
    r"esim|\b[45]g\b|\bгб\b|\bgb\b|\bмб\b|₸|\bтг\b|тенге|теңге|kzt|%|"
    r"\boffer|\bfree\b|discount|bonus|\bgift|\bdeal|\bsave\b|\bsale\b|promo|unlimited|"
    r"roaming|\bdata\b|\bplan\b|cashback|instal",
    re.I,
)
_TITLE_CLASS = re.compile(r"title|heading|header|name|caption|headline|subject", re.I)
# A promotion's period, not a news card's publication date (<time>, .date), which would
# read as the promotion's start: the title and summary are searched for the period too.
_DATE_CLASS = re.compile(r"period|valid|срок|deadline|until|expir|duration|dates|term", re.I)
_PRICE_CLASS = re.compile(r"price|cost|tariff|amount|sum", re.I)
_SUMMARY_CLASS = re.compile(r"lead|desc|text|summary|teaser|excerpt|subtitle|intro", re.I)
# Classes that vary between blocks of one list: states, and BEM modifiers (card--promo).
# Carousels (Slick, Swiper, Owl, Splide, Glide) mark the shown slide and their clones.
_STATE_CLASSES = re.compile(
    r"^(?:active|is-|has-|js-|selected|current|first|last|odd|even|show|hidden|cloned)|--|"
    r"^(?:slick|swiper-slide|owl|splide__slide|glide__slide)-?(?:cloned|current|active|center|"
    r"visible|duplicate|next|prev)"
)
_PAGER_TEXT = re.compile(r"^(?:\d{1,3}|[«»‹›<>←→…]|next|prev(?:ious)?|далее|назад|вперёд)$", re.I)
_STATE_ASSIGN = re.compile(
    r"(?:window\.)?(__[A-Z][A-Z0-9_]*__|__NUXT__|__APOLLO_STATE__|__PRELOADED_STATE__)\s*=\s*"
)
_MENU_KEYS = re.compile(
    r"menu|nav|navigation|footer|header|breadcrumb|social|links|settings|config|i18n|"
    r"locale|translations|seo|meta|tabs|filters|categories|cookie|languages",
    re.I,
)
_TITLE_KEYS = ("title", "headline", "name", "heading", "caption", "label")
_LINK_KEYS = ("url", "href", "link", "permalink", "path", "uri", "canonical")
_ID_KEYS = ("id", "uuid", "slug", "code", "key", "_id")
_SUMMARY_KEYS = ("description", "summary", "subtitle", "lead", "teaser", "excerpt", "text", "body")
_START_KEYS = ("validFrom", "startDate", "start", "dateFrom", "date_from", "startsAt", "from")
_END_KEYS = ("validThrough", "endDate", "end", "dateTo", "date_to", "endsAt", "to", "until")
_DATE_KEYS = ("date", "period", "publishedAt", "published_at", "createdAt", "datePublished")
_PRICE_KEYS = ("price", "cost", "amount", "fee")
_CURRENCY_KEYS = ("priceCurrency", "currency")
_IMAGE_KEYS = ("image", "img", "picture", "cover", "thumbnail", "banner", "preview")
_LD_PROMOTIONS = frozenset(
    {
        "Offer",
        "AggregateOffer",
        "Event",
        "SaleEvent",
        "Product",
        "Service",
        "NewsArticle",
        "Article",
        "BlogPosting",
        "CreativeWork",
        "SpecialAnnouncement",
        "Trip",
    }
)


@dataclass(frozen=True)
class Candidate:
    """One list a strategy found on the page, with how strongly it looks like promotions."""

    strategy: str  # feed, jsonld, state, dom
    where: str  # what it is on the page, for people
    score: float
    raws: list[Raw] = field(repr=False)
    reason: str = ""  # why it lost, if it did
    selectors: Mapping[str, Any] | None = None  # dom: items and fields that pin it down
    # dom: the list's parent element and its ancestors (lexbor node ids), to tell lists
    # nested in one another from lists side by side.
    path: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def titles(self) -> list[str]:
        return [normalise_space(raw.get("title") or "") for raw in self.raws]


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` decided: the winning list (if any), the rest, and a hint."""

    chosen: Candidate | None
    runners_up: list[Candidate]
    base_url: str
    hint: str | None = None

    @property
    def raws(self) -> list[Raw]:
        return self.chosen.raws if self.chosen is not None else []


# --- entry points ------------------------------------------------------------------------


def looks_like_feed(page_text: str) -> bool:
    """True if the text is RSS or Atom rather than HTML."""
    head = page_text[:1024].lstrip("\ufeff \t\r\n").lower()
    if head.startswith("<?xml"):
        head = head[head.find("?>") + 2 :].lstrip() if "?>" in head else head
        while head.startswith("<!--") and "-->" in head:
            head = head[head.find("-->") + 3 :].lstrip()
    return head.startswith(("<rss", "<feed", "<rdf:rdf"))


def discover_feed(page_text: str, page_url: str) -> str | None:
    """The absolute URL of the RSS or Atom feed a page names with ``<link rel=alternate>``."""
    if "alternate" not in page_text:
        return None
    tree = html_tree(page_text)
    for node in tree.css("link[href]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        kind = (node.attributes.get("type") or "").lower().strip()
        if "alternate" in rel and kind in ("application/rss+xml", "application/atom+xml"):
            link = safe_link(node.attributes.get("href"), page_url)
            if link:
                return link
    return None


def detect(page_text: str, page_url: str) -> Detection:
    """Find the promotion list on a page (see the module docstring)."""
    if looks_like_feed(page_text):
        raws = feed_items(page_text, page_url)
        feed = Candidate("feed", "the page is a feed", 1000.0 + len(raws), raws)
        return Detection(feed, [], page_url)
    tree = html_tree(page_text)
    base_url = page_url
    base = tree.css_first("base[href]")
    if base is not None:
        base_url = safe_link(base.attributes.get("href"), page_url) or page_url
    scripts = _scripts(tree)
    found = [
        *_jsonld_candidates(scripts),
        *_state_candidates(scripts, page_text),
    ]
    tree.strip_tags(_SILENT)
    found.extend(_dom_candidates(tree))
    ranked = sorted(found, key=lambda c: (_RANK[c.strategy], -c.score))
    chosen: Candidate | None = None
    losers: list[Candidate] = []
    for candidate in ranked:
        problem = _good_enough(candidate)
        if chosen is None and problem is None:
            chosen = candidate
            continue
        if problem is None and chosen is not None:
            problem = f"weaker than the {chosen.strategy} list ({chosen.where})"
        reason = "; ".join(part for part in (candidate.reason, problem) if part)
        losers.append(_lost(candidate, reason))
    if chosen is not None and chosen.strategy == "dom":
        chosen, losers = _with_companions(chosen, losers)
    hint = None
    if chosen is None:
        hint = "no promotion list found on this page"
        if _drawn_by_scripts(tree, page_text):
            hint += "; the list may be drawn by scripts: try `render: browser`"
    losers.sort(key=lambda c: -c.score)
    return Detection(chosen, losers, base_url, hint)


_RANK = {"feed": 0, "jsonld": 1, "state": 2, "dom": 3}


def _good_enough(candidate: Candidate) -> str | None:
    count = len(candidate.raws)
    if candidate.strategy == "jsonld":
        return None if count >= 1 else "no items"
    if candidate.strategy == "state":
        if count < 2:
            return "fewer than 2 items"
        return None if candidate.score >= 6.0 else f"score {candidate.score:.1f} below 6.0"
    if count < 2:
        return "fewer than 2 items"
    if candidate.score < MIN_DOM_SCORE:
        return f"score {candidate.score:.1f} below {MIN_DOM_SCORE:.1f}"
    return None


def _with_companions(
    chosen: Candidate, losers: list[Candidate]
) -> tuple[Candidate, list[Candidate]]:
    """The DOM list with the other clean lists beside it: a hero slider over a card
    grid, or offers in two sections, are one page's promotions. A companion lost only
    for being weaker, scores at least COMPANION_SHARE of the winner, and is neither
    inside the winner nor around it; its items are added once (carousels clone slides).
    """
    companions = [
        loser
        for loser in losers
        if loser.strategy == "dom"
        and loser.reason.startswith("weaker than the dom list")
        and loser.score >= COMPANION_SHARE * chosen.score
        and loser.path
        and chosen.path
        and loser.path[0] not in chosen.path
        and chosen.path[0] not in loser.path
    ]
    companions = [
        c
        for c in companions
        if not any(o is not c and (o.path[0] in c.path) for o in companions)  # outermost only
    ]
    if not companions:
        return chosen, losers
    raws: list[Raw] = []
    seen: set[str] = set()
    for raw in (raw for candidate in (chosen, *companions) for raw in candidate.raws):
        identity = raw.get("link") or normalise_space(raw.get("title") or "").casefold()
        if identity not in seen:
            seen.add(identity)
            raws.append(raw)
    merged = Candidate(
        "dom",
        " + ".join(candidate.where for candidate in (chosen, *companions)),
        chosen.score,
        raws,
        path=chosen.path,
    )
    return merged, [loser for loser in losers if loser not in companions]


def _lost(candidate: Candidate, reason: str) -> Candidate:
    return Candidate(
        candidate.strategy,
        candidate.where,
        candidate.score,
        candidate.raws,
        reason,
        candidate.selectors,
        candidate.path,
    )


def _drawn_by_scripts(tree: LexborHTMLParser, page_text: str) -> bool:
    body = tree.body
    text = normalise_space(body.text(separator=" ")) if body is not None else ""
    loads_scripts = page_text.count("<script") >= 1
    return loads_scripts and (len(text) < 2000 or "fetch(" in page_text or "XMLHttp" in page_text)


# --- JSON: JSON-LD and app state ----------------------------------------------------------


@dataclass(frozen=True)
class _Script:
    kind: str  # ld, next, json, assign
    name: str
    document: Any


def _scripts(tree: LexborHTMLParser) -> list[_Script]:
    found: list[_Script] = []
    for node in tree.css("script"):
        kind = (node.attributes.get("type") or "").lower().strip()
        text = node.text()
        if not text or not text.strip():
            continue
        ident = node.attributes.get("id") or ""
        if kind == "application/ld+json":
            document = _loads(text)
            if document is not None:
                found.append(_Script("ld", "JSON-LD", document))
        elif kind == "application/json" or ident == "__NEXT_DATA__":
            document = _loads(text)
            if ident == "__NUXT_DATA__" and isinstance(document, list):
                document = _unflatten(document)
            if document is not None:
                found.append(
                    _Script("json", f"script#{ident}" if ident else "JSON script", document)
                )
        elif kind in ("", "text/javascript", "application/javascript", "module"):
            for match in _STATE_ASSIGN.finditer(text):
                document = _raw_decode(text, match.end())
                if document is not None:
                    found.append(_Script("assign", f"window.{match.group(1)}", document))
    return found


def _loads(text: str) -> Any:
    text = text.strip().lstrip("\ufeff")
    if text.startswith("<!--") and text.endswith("-->"):
        text = text[4:-3].strip()
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None


# devalue's stand-ins for values JSON cannot hold (undefined, holes, NaN, infinities, -0).
_DEVALUE_SPECIAL = {-1: None, -2: None, -3: None, -4: None, -5: None, -6: 0}
_DEVALUE_WRAPPERS = frozenset(
    {"Reactive", "ShallowReactive", "Ref", "ShallowRef", "EmptyRef", "EmptyShallowRef"}
)


def _unflatten(values: list[Any]) -> Any:
    """Nuxt 3's payload (``__NUXT_DATA__``, devalue's flat form) as the nested data it is.

    Every object and array holds indices into ``values``; a list starting with a type
    name (``["Reactive", 5]``, ``["Date", "..."]``, ``["Set", ...]``) is a tagged value.
    Shared and cyclic references are resolved once each; at most
    :data:`MAX_JSON_VALUES` values are built and nesting stops at 200 levels.
    """
    built: dict[int, Any] = {}
    budget = [MAX_JSON_VALUES]

    def hydrate(index: Any, depth: int) -> Any:
        if not isinstance(index, int) or isinstance(index, bool):
            return None
        if index < 0:
            return _DEVALUE_SPECIAL.get(index)
        if index >= len(values) or depth > 200 or budget[0] <= 0:
            return None
        if index in built:
            return built[index]
        budget[0] -= 1
        value = values[index]
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            built[index] = result
            result.update((key, hydrate(item, depth + 1)) for key, item in value.items())
            return result
        if not isinstance(value, list):
            built[index] = value
            return value
        if value and isinstance(value[0], str):
            tag, rest = value[0], value[1:]
            if tag in _DEVALUE_WRAPPERS:
                return hydrate(rest[0], depth + 1) if rest else None
            if tag in ("Date", "RegExp", "BigInt"):
                return rest[0] if rest else None
            if tag in ("null", "Object") and len(rest) % 2 == 0:
                pairs = zip(rest[::2], rest[1::2], strict=True)
                return {str(k): hydrate(v, depth + 1) for k, v in pairs}
            if tag == "Set":
                return [hydrate(item, depth + 1) for item in rest]
            return None  # Map, custom reducers: nothing a promotion list is made of
        items: list[Any] = []
        built[index] = items
        items.extend(hydrate(item, depth + 1) for item in value)
        return items

    return hydrate(0, 0)


def _raw_decode(text: str, start: int) -> Any:
    while start < len(text) and text[start].isspace():
        start += 1
    if start >= len(text) or text[start] not in "{[":
        return None
    try:
        document, _ = json.JSONDecoder(parse_float=Decimal).raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    return document


def _walk(document: Any) -> Iterator[tuple[str, Any]]:
    """Every value of a JSON document with its dotted path, iteratively and bounded.

    At most :data:`MAX_JSON_VALUES` values, :data:`MAX_JSON_DEPTH` levels down, and each
    object or array once (an unflattened Nuxt payload may refer to itself).
    """
    stack: list[tuple[str, int, Any]] = [("", 0, document)]
    seen: set[int] = set()
    visited = 0
    while stack and visited < MAX_JSON_VALUES:
        path, depth, value = stack.pop()
        visited += 1
        yield path, value
        if not isinstance(value, dict | list) or depth >= MAX_JSON_DEPTH or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            children = [
                (f"{path}.{key}" if path else str(key), depth + 1, item)
                for key, item in value.items()
            ]
        else:
            children = [(f"{path}.{index}", depth + 1, item) for index, item in enumerate(value)]
        stack.extend(reversed(children))


def _jsonld_candidates(scripts: Sequence[_Script]) -> list[Candidate]:
    things: list[Mapping[str, Any]] = []
    lists: list[list[Mapping[str, Any]]] = []
    for script in scripts:
        if script.kind != "ld":
            continue
        for _, value in _walk(script.document):
            if not isinstance(value, dict):
                continue
            types = _types(value)
            if "ItemList" in types:
                elements = value.get("itemListElement")
                members = [
                    _list_member(element)
                    for element in (elements if isinstance(elements, list) else [])
                ]
                lists.append([member for member in members if member is not None])
            elif types & _LD_PROMOTIONS and _text(value, ("name", "headline")):
                things.append(value)
    candidates = [
        Candidate("jsonld", "JSON-LD ItemList", 100.0 + len(members), _ld_raws(members))
        for members in lists
        if members
    ]
    listed = {id(member) for members in lists for member in members}
    loose = [thing for thing in things if id(thing) not in listed]
    if loose:
        kinds = sorted({kind for thing in loose for kind in _types(thing) & _LD_PROMOTIONS})
        where = f"JSON-LD {', '.join(kinds)}"
        candidates.append(Candidate("jsonld", where, 50.0 + len(loose), _ld_raws(loose)))
    return candidates


def _types(value: Mapping[str, Any]) -> set[str]:
    kind = value.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(k).rsplit("/", 1)[-1] for k in kinds if isinstance(k, str)}


def _list_member(element: Any) -> Mapping[str, Any] | None:
    if not isinstance(element, dict):
        return None
    item = element.get("item")
    if isinstance(item, dict) and _text(item, ("name", "headline")):
        return item
    return element if _text(element, ("name", "headline")) else None


def _ld_raws(things: Sequence[Mapping[str, Any]]) -> list[Raw]:
    raws = []
    for thing in things:
        offers = thing.get("offers")
        offer = offers[0] if isinstance(offers, list) and offers else offers
        offer = offer if isinstance(offer, dict) else {}
        raws.append(
            {
                "title": _text(thing, ("name", "headline")),
                "link": _link(thing) or _link(offer),
                "summary": _text(thing, ("description", "abstract")),
                "date": _period(thing) or _period(offer),
                "price": _price(thing) or _price(offer),
                "image": _image(thing),
            }
        )
    return raws


def _state_candidates(scripts: Sequence[_Script], page_text: str) -> list[Candidate]:
    candidates = []
    for script in scripts:
        if script.kind == "ld":
            continue
        for path, value in _walk(script.document):
            if not isinstance(value, list) or len(value) < 2:
                continue
            objects = [item for item in value[:SAMPLE] if isinstance(item, dict)]
            if len(objects) < 2:
                continue
            candidate = _state_list(script.name, path, value, objects)
            if candidate is not None:
                candidates.append(candidate)
    return candidates


def _state_list(
    name: str, path: str, items: list[Any], sample: list[dict[str, Any]]
) -> Candidate | None:
    key = next((k for k in _TITLE_KEYS if sum(_is_text(o.get(k)) for o in sample) >= 2), None)
    if key is None:
        return None
    titled = [o for o in sample if _is_text(o.get(key))]
    words = sum(len(str(o[key]).split()) for o in titled) / len(titled)
    linked = sum(1 for o in titled if _link(o) or any(o.get(k) for k in _ID_KEYS)) / len(titled)
    dated = sum(1 for o in titled if _period(o) or _date_text(o)) / len(titled)
    rich = sum(1 for o in titled if _text(o, _SUMMARY_KEYS) or _price(o)) / len(titled)
    nested = sum(
        1
        for o in titled
        if any(isinstance(o.get(k), list) for k in ("children", "items", "submenu"))
    ) / len(titled)
    score = len(titled) * min(words / 2.5, 2.0) * (1 + linked) * (1 + dated + rich)
    reasons = []
    if _MENU_KEYS.search(path.rsplit(".", 2)[-1] if path else ""):
        score *= 0.05
        reasons.append("under a menu or settings key")
    elif _MENU_KEYS.search(path):
        score *= 0.3
    if nested > 0.3:
        score *= 0.1
        reasons.append("items have sub-items, like a menu")
    if words < 2:
        reasons.append("one-word labels, like a menu")
    if key == "label":
        score *= 0.5
    raws = [_state_raw(item, key) for item in items[:MAX_ITEMS] if isinstance(item, dict)]
    where = f"{name} {path or '(top)'}"
    reason = "; ".join(reasons)
    return Candidate("state", where, round(score, 2), raws, reason)


def _state_raw(item: Mapping[str, Any], key: str) -> Raw:
    ident = next((item.get(k) for k in _ID_KEYS if isinstance(item.get(k), str | int)), None)
    return {
        "title": _text(item, (key,)),
        "link": _link(item),
        "summary": _text(item, _SUMMARY_KEYS),
        "date": _period(item) or _date_text(item),
        "price": _price(item),
        "image": _image(item),
        "id": None if ident is None or isinstance(ident, bool) else str(ident),
    }


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and 2 <= len(value.strip()) <= 300


def _text(value: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        item = value.get(key)
        if isinstance(item, str) and item.strip():
            return item
        if isinstance(item, dict):  # {"ru": "...", "kk": "..."} or {"rendered": "..."}
            for inner in item.values():
                if isinstance(inner, str) and inner.strip():
                    return inner
    return None


def _link(value: Mapping[str, Any]) -> str | None:
    for key in (*_LINK_KEYS, "@id"):
        item = value.get(key)
        if (
            isinstance(item, str)
            and item.strip()
            and (item.startswith(("/", "http")) or "." in item)
        ):
            return item
    return None


def _period(value: Mapping[str, Any]) -> str | None:
    starts = next((str(value[k]) for k in _START_KEYS if _is_scalar(value.get(k))), None)
    ends = next((str(value[k]) for k in _END_KEYS if _is_scalar(value.get(k))), None)
    if not (starts or ends):
        return None
    parts = (f"from {starts[:10]}" if starts else "", f"to {ends[:10]}" if ends else "")
    return " ".join(part for part in parts if part)


def _date_text(value: Mapping[str, Any]) -> str | None:
    return next((str(value[k]) for k in _DATE_KEYS if isinstance(value.get(k), str)), None)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _price(value: Mapping[str, Any]) -> str | None:
    for key in _PRICE_KEYS:
        item = value.get(key)
        if isinstance(item, dict):
            nested = _price(item)
            if nested:
                return nested
        if isinstance(item, bool) or not isinstance(item, str | int | Decimal):
            continue
        currency = next((value[k] for k in _CURRENCY_KEYS if isinstance(value.get(k), str)), None)
        return f"{item} {currency}" if currency else str(item)
    return None


def _image(value: Mapping[str, Any]) -> str | None:
    for key in _IMAGE_KEYS:
        item = value.get(key)
        if isinstance(item, list) and item:
            item = item[0]
        if isinstance(item, dict):
            item = item.get("url") or item.get("src")
        if isinstance(item, str) and item.strip():
            return item
    return None


# --- the DOM ------------------------------------------------------------------------------


def _dom_candidates(tree: LexborHTMLParser) -> list[Candidate]:
    root = tree.body or tree.root
    if root is None:
        return []
    candidates = []
    for parent in root.traverse(include_text=False):
        groups: dict[str, list[LexborNode]] = {}
        child = parent.child
        while child is not None:
            if child.tag not in ("-text", "_text", "-comment", "_comment", None):
                groups.setdefault(_signature(child), []).append(child)
            child = child.next
        for signature, members in groups.items():
            if len(members) >= 2:
                candidate = _dom_group(parent, signature, members)
                if candidate is not None:
                    candidates.append(candidate)
    return candidates


def _signature(node: LexborNode) -> str:
    """Tag and the first two classes that do not vary between the blocks of one list.

    Left out: states (active, is-open), BEM modifiers (card--promo) and classes with a
    digit (post-799, col-4 stays: it is the same on every block), which name one block.
    """
    classes = [
        name
        for name in (node.attributes.get("class") or "").split()
        if not _STATE_CLASSES.search(name) and not _ITEM_CLASS.search(name)
    ]
    return (node.tag or "") + "".join(f".{name}" for name in classes[:2])


def _dom_group(parent: LexborNode, signature: str, members: list[LexborNode]) -> Candidate | None:
    chrome = _chrome(parent)
    items = [_dom_item(member) for member in members[:SAMPLE]]
    good = [item for item in items if item is not None]
    if len(good) < 2 or len(good) < 0.6 * len(items):
        return None
    titles = [item.raw["title"] or "" for item in good]
    if sum(1 for title in titles if _PAGER_TEXT.match(title)) > len(titles) / 2:
        return None
    words = sum(len(title.split()) for title in titles) / len(good)
    headed = sum(item.headed for item in good) / len(good)
    linked = sum(1 for item in good if item.raw.get("link")) / len(good)
    dated = sum(item.dated for item in good) / len(good)
    priced = sum(item.priced for item in good) / len(good)
    length = sum(item.length for item in good) / len(good)
    distinct = len(set(titles)) / len(titles)
    promotional = sum(item.promotional for item in good) / len(good)
    documents = sum(item.document for item in good) / len(good)
    contacts = sum(item.contact for item in good) / len(good)
    score = (
        math.log2(len(good) + 1)
        * min(words / 2.5, 2.5)
        * (1 + headed)
        * (0.5 + linked)
        * (1 + dated + priced)
        * min(math.log10(length + 10) / 1.5, 2.0)
        * distinct
        # Contact cards, team members and document lists repeat like offers, but say
        # nothing of prices, data, discounts or gifts.
        * (0.1 + promotional)
    )
    reasons = []
    if promotional < 0.3:
        reasons.append("says nothing of offers (no prices, data, discounts...)")
    if documents > 0.5:
        score *= 0.05
        reasons.append("links to documents, not pages")
    if contacts > 0.5:
        score *= 0.05
        reasons.append("contact cards (phones, opening hours at addresses), not offers")
    if chrome:
        score *= 0.02
        reasons.append(f"inside {chrome}")
    elif _in_main(parent):
        score *= 1.5
    if words < 2:
        reasons.append("one-word labels, like a menu")
    rest = (_dom_item(member, signals=False) for member in members[SAMPLE:MAX_ITEMS])
    raws = [item.raw for item in (*items, *rest) if item is not None]
    where = f"{_describe(parent)} > {signature}"
    return Candidate(
        "dom",
        where,
        round(score, 2),
        raws,
        "; ".join(reasons),
        _pin(parent, signature, good),
        _path(parent),
    )


def _path(node: LexborNode) -> tuple[int, ...]:
    ids: list[int] = []
    current: LexborNode | None = node
    while current is not None and len(ids) < 256:
        ids.append(current.mem_id)
        current = current.parent
    return tuple(ids)


@dataclass(frozen=True)
class _Item:
    raw: Raw
    headed: bool
    dated: bool
    priced: bool
    length: int
    title_selector: str | None
    promotional: bool  # says offer things: a price, data, a discount, a gift...
    document: bool  # links to a file (a PDF...) rather than a page
    contact: bool  # a phone to call, or opening hours at an address: an office, a shop


def _dom_item(node: LexborNode, *, signals: bool = True) -> _Item | None:
    """One block's fields, and (with ``signals``, for the blocks that score a group)
    whether it holds dates, prices and offer words."""
    heading, selector = _heading(node)
    links = ([node] if node.tag == "a" else []) + node.css("a[href]")
    hrefs = [a.attributes.get("href") or "" for a in links]
    href = next(
        (
            h
            for h in hrefs
            if h.strip() and not h.strip().startswith(("#", "javascript:", "mailto:", "tel:"))
        ),
        None,
    )
    title = heading
    if not title:
        texts = [normalise_space(a.text(separator=" ")) for a in links]
        title = next(
            (
                t
                for t in texts
                if t and t.casefold() not in GENERIC_LINK_TEXTS and _LETTER.search(t)
            ),
            None,
        )
    if not title and node.tag == "tr":
        cells = [normalise_space(td.text(separator=" ")) for td in node.css("td, th")]
        title = next((c for c in cells if c and not _PAGER_TEXT.match(c)), None)
    if not title or title.casefold() in GENERIC_LINK_TEXTS or len(title) < 3:
        return None
    if not _LETTER.search(title):
        return None
    text = normalise_space(node.text(separator=" "))
    summary_node = next(
        (p for p in node.css("p") if normalise_space(p.text(separator=" ")) not in ("", title)),
        None,
    ) or _by_class(node, _SUMMARY_CLASS)
    date_node = _by_class(node, _DATE_CLASS)
    price_node = _by_class(node, _PRICE_CLASS)
    date_text = None
    if date_node is not None:
        date_text = date_node.attributes.get("datetime") or date_node.text(separator=" ")
    price_text = price_node.text(separator=" ") if price_node is not None else None
    head = text[:600]
    dated = date_text is not None or (signals and parse_dates(head, _TODAY) != (None, None))
    priced = price_text is not None or (signals and parse_price(head)[0] is not None)
    image = node.css_first("img[src]")
    return _Item(
        raw={
            "title": title,
            "link": href,
            "summary": summary_node.text(separator=" ") if summary_node is not None else None,
            "date": date_text,
            "price": price_text,
            "image": image.attributes.get("src") if image is not None else None,
        },
        headed=heading is not None,
        dated=dated,
        priced=priced,
        length=len(text),
        title_selector=selector,
        promotional=priced or (signals and bool(_PROMO_WORDS.search(head))),
        document=bool(href and _DOCUMENT.search(href)),
        contact=any(h.strip().lower().startswith("tel:") for h in hrefs)
        or bool(_OPENING_HOURS.search(head) and _ADDRESS.search(head)),
    )


# Year inference only matters for whether a date is present, not which one it is.
_TODAY = date(2000, 1, 1)


def _heading(node: LexborNode) -> tuple[str | None, str | None]:
    for tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        found = node.css_first(tag)
        if found is not None:
            text = normalise_space(found.text(separator=" "))
            if text and text.casefold() not in GENERIC_LINK_TEXTS:
                return text, tag
    for found in _descendants(node):
        if _title_mark(found) is None:
            continue
        # The innermost marked element: a caption holding a heading and a text is not
        # the title, the heading in it is.
        while (inner := next((d for d in _descendants(found) if _title_mark(d)), None)) is not None:
            found = inner
        text = normalise_space(found.text(separator=" "))
        if text and text.casefold() not in GENERIC_LINK_TEXTS and len(text) <= 300:
            return text, _title_mark(found)
    for found in _descendants(node):
        classes = found.attributes.get("class") or ""
        if not _BIG_TEXT.search(classes) or _SMALL_TEXT.search(classes):
            continue
        text = normalise_space(found.text(separator=" "))
        if _titleish(text):
            return text, None
    for tag in ("strong", "b"):
        found = node.css_first(tag)
        if found is not None:
            text = normalise_space(found.text(separator=" "))
            if _titleish(text):
                return text, tag
    return None, None


# Attributes that name a block's part in component markup (React, Vue, microdata), read
# like classes: <span data-part="name">, <div data-testid="card-title">, itemprop=name.
_PART_ATTRIBUTES = ("data-part", "data-testid", "data-test", "data-field", "data-role", "itemprop")
_NOT_TITLE = re.compile(r"sub-?title|sub-?heading|header-?(?:top|right|meta)|name-?(?:space)", re.I)


def _title_mark(node: LexborNode) -> str | None:
    """A selector for ``node`` if its class or part attribute says it is a title."""
    attributes = node.attributes
    if attributes.get("role") == "heading":
        return f'{node.tag}[role="heading"]'
    classes = attributes.get("class") or ""
    if _TITLE_CLASS.search(classes) and not _NOT_TITLE.search(classes):
        marked = [name for name in classes.split() if _TITLE_CLASS.search(name)]
        return f"{node.tag}.{(marked or classes.split())[0]}"
    for name in _PART_ATTRIBUTES:
        value = attributes.get(name)
        if value and _TITLE_CLASS.search(value) and not _NOT_TITLE.search(value):
            return f'{node.tag}[{name}="{value}"]'
    return None


def _descendants(node: LexborNode) -> Iterator[LexborNode]:
    """The elements inside ``node``, in document order (``traverse`` starts with it)."""
    return itertools.islice(node.traverse(include_text=False), 1, None)


def _titleish(text: str) -> bool:
    """Two words or more, with letters, not a "Read more": what a heading says."""
    return (
        len(text.split()) >= 2
        and bool(_LETTER.search(text))
        and text.casefold() not in GENERIC_LINK_TEXTS
        and len(text) <= 300
    )


def _by_class(node: LexborNode, pattern: re.Pattern[str]) -> LexborNode | None:
    for found in _descendants(node):
        if pattern.search(found.attributes.get("class") or ""):
            return found
    return None


def _chrome(node: LexborNode) -> str | None:
    """What page chrome ``node`` sits in (a nav, a footer, a cookie banner...), if any."""
    current: LexborNode | None = node
    while current is not None and current.tag not in ("body", "html"):
        if current.tag in _CHROME_TAGS:
            return f"<{current.tag}>"
        role = (current.attributes.get("role") or "").lower()
        if role in _CHROME_ROLES:
            return f'role="{role}"'
        marks = " ".join(
            (current.attributes.get(name) or "") for name in ("class", "id", "aria-label")
        ).lower()
        found = _CHROME_WORDS.search(marks.replace("_", "-"))
        if found and not _MAIN_WORDS.search(marks):
            return f"a {found.group()} block"
        current = current.parent
    return None


def _in_main(node: LexborNode) -> bool:
    current: LexborNode | None = node
    while current is not None and current.tag not in ("body", "html"):
        if current.tag in ("main", "article") or current.attributes.get("role") == "main":
            return True
        current = current.parent
    return False


def _describe(node: LexborNode) -> str:
    ident = node.attributes.get("id")
    if ident:
        return f"{node.tag}#{ident}"
    classes = (node.attributes.get("class") or "").split()
    return (node.tag or "") + "".join(f".{name}" for name in classes[:2])


def _pin(parent: LexborNode, signature: str, items: Sequence[_Item]) -> dict[str, Any]:
    """Selectors that select this group, for a user who wants to freeze what auto found."""
    fields: dict[str, str] = {"link": "a@href"}
    selectors = {item.title_selector for item in items}
    if len(selectors) == 1 and None not in selectors:
        fields["title"] = str(selectors.pop())
    return {"items": f"{_css_path(parent)} > {signature}", "fields": fields}


def _css_path(node: LexborNode) -> str:
    parts: list[str] = []
    current: LexborNode | None = node
    while current is not None and current.tag not in ("html", None) and len(parts) < 4:
        ident = current.attributes.get("id")
        if ident and re.fullmatch(r"[A-Za-z][\w-]*", ident):
            parts.append(f"{current.tag}#{ident}")
            break
        parts.append(_signature(current))
        if current.tag == "body":
            break
        current = current.parent
    return " > ".join(reversed(parts))
