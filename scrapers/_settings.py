"""The fetcher's and the renderer's settings, and whether a browser is there to render.

Apart from :mod:`scrapers._fetch` and :mod:`scrapers._browser` so that a config can be
checked, and the CLI started, without importing httpx or Playwright.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_USER_AGENT",
    "FetchSettings",
    "RenderSettings",
    "find_chromium",
    "render_unavailable",
]

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _version() -> str:
    try:
        return metadata.version("sim-watcher")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0"


DEFAULT_USER_AGENT = f"SIMWatcher/{_version()} (self-hosted promotion watcher)"


@dataclass(frozen=True, kw_only=True)
class FetchSettings:
    """How the fetcher behaves; validated on construction.

    Times are seconds. ``retries`` counts extra attempts after the first; they are
    made for connection failures, 5xx and 429, waiting ``backoff * 2**n`` or what
    ``Retry-After`` asks. No single wait exceeds ``max_wait``: a longer Retry-After
    means "not this run" and the fetch fails at once; a longer robots.txt
    ``Crawl-delay`` is capped. ``proxy`` and ``trust_env`` (the standard
    ``HTTP(S)_PROXY``/``NO_PROXY`` variables) only apply to a client the fetcher
    creates itself.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0  # one attempt, end to end: stops trickling servers
    user_agent: str = DEFAULT_USER_AGENT
    max_redirects: int = 5
    max_bytes: int = 5 * 1024 * 1024
    retries: int = 3
    backoff: float = 1.0
    max_wait: float = 60.0
    min_gap: float = 2.0
    respect_robots: bool = True
    robots_ttl: float = 24 * 3600.0  # RFC 9309: a cached copy for at most a day
    proxy: str | None = None
    trust_env: bool = True

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            _check_number(name, getattr(self, name), positive=True)
        for name in ("backoff", "max_wait", "min_gap", "robots_ttl"):
            _check_number(name, getattr(self, name), positive=False)
        for name, minimum in (("max_redirects", 0), ("max_bytes", 1), ("retries", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
        ua = self.user_agent
        if not ua.strip() or not ua.isascii() or not ua.isprintable():
            raise ValueError(f"user_agent must be printable ASCII on one line, not {ua!r}")
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
                raise ValueError("proxy must be an http://, https:// or socks5:// URL with a host")

    @property
    def robots_token(self) -> str:
        """The product token robots.txt groups are matched against (``SIMWatcher``)."""
        return self.user_agent.split("/", 1)[0].split()[0]


def _check_number(name: str, value: object, *, positive: bool) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    """How the renderer behaves; validated on construction.

    ``timeout`` bounds one page end to end (seconds). After the page's ``load`` event
    the renderer waits up to ``settle`` seconds for the network to go quiet (the list
    is usually fetched by then) and then reads the DOM as it is. ``start_timeout``
    bounds starting (or reaching) the browser, which is not any page's time: a cold
    first start on a busy machine builds font caches. ``browser_url``, when set, is
    used instead of launching ``executable_path``.
    """

    timeout: float = 30.0
    settle: float = 5.0
    start_timeout: float = 60.0
    max_bytes: int = 5 * 1024 * 1024
    max_pages: int = 2
    executable_path: str | None = None
    browser_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "settle", "start_timeout"):
            value = getattr(self, name)
            positive = name != "settle"
            if not _finite(value) or value < 0 or (positive and value == 0):
                bound = "> 0" if positive else ">= 0"
                raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")
        for name in ("max_bytes", "max_pages"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
        if self.browser_url is not None:
            parts = urlsplit(self.browser_url)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ValueError("browser_url must be a ws:// or wss:// URL with a host")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def find_chromium(path: str | None = None) -> str | None:
    """The Chromium executable to launch: ``path`` if given (and executable), else the
    first of ``/usr/bin/chromium``, ``/usr/bin/chromium-browser``, ``chromium`` on PATH."""
    candidates = [path] if path else [*CHROMIUM_PATHS, shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def render_unavailable(settings: RenderSettings | None = None) -> str | None:
    """Why pages cannot be rendered with these settings, or None if they can.

    Checks what can be checked without starting anything: Playwright is importable,
    and a Chromium executable exists unless a ``browser_url`` is used instead.
    """
    import importlib.util

    settings = settings or RenderSettings()
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed"
    if settings.browser_url is None and find_chromium(settings.executable_path) is None:
        if settings.executable_path:
            return f"no Chromium executable at {settings.executable_path}"
        return f"no Chromium executable found ({', '.join(CHROMIUM_PATHS)}, or on PATH)"
    return None
