"""Promotion scrapers: page in, promotions out.

A library for the daemon to wire in. It imports nothing from ``watcher``, opens no
database and reads no clock: fetching (:class:`Fetcher`, or :class:`Renderer` for pages
drawn by scripts), extraction (:func:`extract`), the date/price parsers, the built-in
source profiles and change detection (:func:`observe`) are all usable on their own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from scrapers._errors import (
    ExtractError,
    FetchError,
    FetchForbidden,
    FetchRedirect,
    FetchStatus,
    FetchTimeout,
    FetchTooLarge,
    ProfileError,
    ScraperError,
)
from scrapers._html import MAX_DEPTH
from scrapers._links import canonical_link, safe_link
from scrapers._models import FIELD_NAMES, Page, Promotion, Source, Validators
from scrapers._profiles import (
    BUILTIN_PROFILES,
    CHECKABLE,
    DEFAULT_EVERY,
    MIN_EVERY,
    Profile,
    load_profiles,
    parse_every,
    profile_from_dict,
)
from scrapers._settings import (
    DEFAULT_USER_AGENT,
    FetchSettings,
    RenderSettings,
    find_chromium,
    render_unavailable,
)

if TYPE_CHECKING:
    from scrapers._auto import Candidate, Detection, detect, discover_feed, looks_like_feed
    from scrapers._browser import Renderer
    from scrapers._build import title_key
    from scrapers._changes import (
        CHANGE_FIELDS,
        AdminEvent,
        Change,
        Known,
        Outcome,
        SourceState,
        changed_fields,
        fingerprint,
        matches,
        observe,
    )
    from scrapers._extract import Extraction, extract, extract_explained
    from scrapers._fetch import Fetcher, address_refusal, decode_text, embedded_ipv4, jittered
    from scrapers._parse import (
        RECENT_PAST,
        normalise_space,
        parse_data_gb,
        parse_dates,
        parse_price,
    )
    from scrapers._proxy import Dial, GuardProxy

# The fetcher (httpx), the renderer, the extractors, the parsers, change detection and
# the proxy (asyncio) load on first use: checking a config, or any command that
# scrapes nothing (`watcher status`, `watcher health`), must not pay for them.
_LAZY = {
    **dict.fromkeys(
        (
            "CHANGE_FIELDS",
            "AdminEvent",
            "Change",
            "Known",
            "Outcome",
            "SourceState",
            "changed_fields",
            "fingerprint",
            "matches",
            "observe",
        ),
        "scrapers._changes",
    ),
    **dict.fromkeys(("Dial", "GuardProxy"), "scrapers._proxy"),
    **dict.fromkeys(
        ("RECENT_PAST", "normalise_space", "parse_data_gb", "parse_dates", "parse_price"),
        "scrapers._parse",
    ),
    "title_key": "scrapers._build",
    **dict.fromkeys(
        ("Candidate", "Detection", "detect", "discover_feed", "looks_like_feed"), "scrapers._auto"
    ),
    **dict.fromkeys(("Extraction", "extract", "extract_explained"), "scrapers._extract"),
    "Fetcher": "scrapers._fetch",
    "address_refusal": "scrapers._fetch",
    "embedded_ipv4": "scrapers._fetch",
    "decode_text": "scrapers._fetch",
    "jittered": "scrapers._fetch",
    "Renderer": "scrapers._browser",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BUILTIN_PROFILES",
    "CHANGE_FIELDS",
    "CHECKABLE",
    "DEFAULT_EVERY",
    "DEFAULT_USER_AGENT",
    "FIELD_NAMES",
    "MAX_DEPTH",
    "MIN_EVERY",
    "RECENT_PAST",
    "AdminEvent",
    "Candidate",
    "Change",
    "Detection",
    "Dial",
    "ExtractError",
    "Extraction",
    "FetchError",
    "FetchForbidden",
    "FetchRedirect",
    "FetchSettings",
    "FetchStatus",
    "FetchTimeout",
    "FetchTooLarge",
    "Fetcher",
    "GuardProxy",
    "Known",
    "Outcome",
    "Page",
    "Profile",
    "ProfileError",
    "Promotion",
    "RenderSettings",
    "Renderer",
    "ScraperError",
    "Source",
    "SourceState",
    "Validators",
    "address_refusal",
    "canonical_link",
    "changed_fields",
    "decode_text",
    "detect",
    "discover_feed",
    "embedded_ipv4",
    "extract",
    "extract_explained",
    "find_chromium",
    "fingerprint",
    "jittered",
    "load_profiles",
    "looks_like_feed",
    "matches",
    "normalise_space",
    "observe",
    "parse_data_gb",
    "parse_dates",
    "parse_every",
    "parse_price",
    "profile_from_dict",
    "render_unavailable",
    "safe_link",
    "title_key",
]
