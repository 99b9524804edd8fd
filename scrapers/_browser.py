"""Rendering pages whose promotion list is drawn by scripts, in headless Chromium.

A :class:`Renderer` turns a URL into a :class:`~scrapers._models.Page` whose text is
the DOM after the page's scripts ran, so the same extractors read it. It drives
Chromium through Playwright (imported only when a page is rendered, so the library
works without it) and keeps the fetcher's rules, because these pages are written by
strangers too:

* robots.txt is asked through the :class:`~scrapers._fetch.Fetcher` it is given (one
  cache for both), before the page and again for every redirect of the page itself.
* The private-network rule (:func:`~scrapers._fetch.address_refusal`, the fetcher's)
  covers the page and every request it makes: when the page's URL is on a public
  address, a request (or redirect hop) whose host resolves to loopback, private,
  link-local, CGNAT or other non-public addresses is aborted before it is sent; cloud
  metadata addresses are refused for every page. Requests off http(s) are aborted;
  web sockets are closed unopened; service workers are blocked. Playwright's routes
  see each request's first URL, and a DevTools ``Fetch`` session on the page its
  redirect hops, with a reason to report; underneath, the browser reaches the network
  only through a :class:`~scrapers._proxy.GuardProxy` of the page's own, which looks
  each host up itself, judges the addresses by the same rule and connects to one of
  them, so a DNS answer that turns private after the check (rebinding) reaches
  nothing either. With a proxy of the user's own (``FetchSettings.proxy`` or the
  standard variables) or a remote browser (``browser_url``), the browser's
  connections cannot pass through ours: the routes and the DevTools session guard
  alone, and rebinding is not caught there.
* Images, fonts, media and stylesheets are never loaded.
* Bounds: one browser process per renderer (launched on the first render, killed on
  close), one page per host at a time, in turn with the fetcher's own requests and
  after the same gap (``min_gap``, or robots.txt's ``Crawl-delay``), and ``max_pages``
  in all, ``timeout`` seconds
  per page, ``max_bytes`` of rendered HTML. A page that overruns is closed and
  raises :class:`FetchTimeout`; if the browser does not answer the close, its process
  is killed and a new one launched for the next page.

Chromium is the system's (``executable_path``, else ``/usr/bin/chromium``...), run
with ``--no-sandbox`` (the daemon runs as root in its container); or a remote one
reached over the DevTools protocol at ``browser_url`` (``ws://browser:3000``).
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from scrapers._errors import (
    FetchError,
    FetchForbidden,
    FetchRedirect,
    FetchStatus,
    FetchTimeout,
    FetchTooLarge,
)
from scrapers._fetch import Fetcher, _first_refusal, _host_key, _parse_url, _where
from scrapers._models import Page, Validators
from scrapers._proxy import Dial, GuardProxy, open_tcp
from scrapers._settings import RenderSettings, find_chromium, render_unavailable

if TYPE_CHECKING:
    from playwright.async_api import Browser, CDPSession, Playwright, Route, WebSocketRoute

__all__ = ["RenderSettings", "Renderer", "find_chromium", "render_unavailable"]

log = logging.getLogger(__name__)

# Playwright's names for what a promotion list never needs.
_BLOCKED_TYPES = frozenset({"image", "font", "media", "stylesheet"})
_CLOSE_GRACE = 5.0  # seconds a closing page (or browser) gets before its process is killed
_LAUNCH_POLL = 0.05
# Quiet, headless, and nothing of Chromium's own fetched in the background; WebRTC
# kept off the local network (its UDP bypasses every route).
_CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-features=Translate,MediaRouter,OptimizationHints,InterestFeedContentSuggestions",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--mute-audio",
    "--hide-scrollbars",
)


class _Guard:
    """One render's request policy: the private-network rule, robots.txt for the page's
    own redirects, and no bytes spent on images, fonts, media or styles."""

    def __init__(self, fetcher: Fetcher, url: str, private_ok: bool) -> None:
        self.fetcher = fetcher
        self.url = url
        self.private_ok = private_ok
        self.document_refusal: FetchError | None = None
        self._verdicts: dict[str, str | None] = {}  # host:port -> why refused

    async def refusal(self, url: str) -> str | None:
        """Why the page may not request ``url``, or None if it may."""
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            return "not http(s)"
        try:
            key = _host_key(_parse_url(url))
        except FetchError:
            return "not a valid URL"
        if key not in self._verdicts:
            # The fetcher's rule, so both refuse the same addresses (cloud metadata always).
            refusal = await self.fetcher.address_refusal(url, private_ok=self.private_ok)
            self._verdicts[key] = refusal
        return self._verdicts[key]

    async def judge(self, host: str, port: int) -> tuple[list[str], str | None]:
        """The guarding proxy's question: the addresses ``host`` may be reached at, or
        why it may not be. The proxy connects to these very addresses."""
        try:
            addresses = await self.fetcher.addresses(host, port)
        except OSError:
            return [], "it does not resolve"
        refusal = _first_refusal(addresses, private_ok=self.private_ok)
        return ([], refusal) if refusal else (addresses, None)

    async def route(self, route: Route) -> None:
        """Every request's first URL, in every frame and worker of the context."""
        request = route.request
        try:
            reason = await self.refusal(request.url)
            if reason is None and request.resource_type in _BLOCKED_TYPES:
                await route.abort("blockedbyclient")
                return
            if reason is not None:
                log.debug("refused %s from %s: %s", _short(request.url), _short(self.url), reason)
                if request.is_navigation_request() and request.frame.parent_frame is None:
                    self.document_refusal = FetchRedirect(
                        f"refused {_short(request.url)}: {reason}", self.url
                    )
                await route.abort("addressunreachable")
                return
            await route.continue_()
        except Exception as exc:  # the page went away mid-request: nothing to answer
            log.debug("route for %s ended: %s", _short(request.url), _first_line(exc))

    async def paused(self, session: CDPSession, event: dict[str, Any]) -> None:
        """Every request of the page's own frames, redirect hops included (DevTools
        ``Fetch.requestPaused``): routes never see where a redirect leads."""
        request_id = event["requestId"]
        url = event["request"]["url"]
        try:
            reason = await self.refusal(url)
            hop = "redirectedRequestId" in event
            if reason is None and hop and event.get("resourceType") == "Document":
                robots = await self.fetcher.robots_refusal(url)
                if robots:
                    self.document_refusal = FetchForbidden(f"{robots}: {_short(url)}", self.url)
                    reason = robots
            elif reason is not None and event.get("resourceType") == "Document":
                what = "a redirect to" if hop else ""
                self.document_refusal = FetchRedirect(
                    f"refused {what} {_short(url)}: {reason}".replace("  ", " "), self.url
                )
            if reason is not None:
                log.debug("refused %s from %s: %s", _short(url), _short(self.url), reason)
                params = {"requestId": request_id, "errorReason": "AddressUnreachable"}
                await session.send("Fetch.failRequest", params)
            else:
                await session.send("Fetch.continueRequest", {"requestId": request_id})
        except Exception as exc:  # the page (or its session) went away mid-request
            log.debug("paused request %s ended: %s", _short(url), _first_line(exc))


class Renderer:
    """Renders pages in headless Chromium; ``async with Renderer(fetcher=f) as r:``.

    ``fetcher`` answers robots.txt and resolves hosts for the private-network rule
    (its ``resolve`` is used, so tests can stand in for public DNS); its User-Agent
    and proxy are the browser's too. It is not closed here. ``browser_args`` are
    added to Chromium's command line (tests map names with ``--host-resolver-rules``).
    """

    def __init__(
        self,
        settings: RenderSettings | None = None,
        *,
        fetcher: Fetcher,
        browser_args: Sequence[str] = (),
        dial: Dial = open_tcp,
    ) -> None:
        self._settings = settings or RenderSettings()
        self._fetcher = fetcher
        self._browser_args = tuple(browser_args)
        self._dial = dial
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._profile_dir: str | None = None
        self._start_lock = asyncio.Lock()
        self._pages = asyncio.Semaphore(self._settings.max_pages)
        self._launches = 0

    @property
    def settings(self) -> RenderSettings:
        return self._settings

    @property
    def launches(self) -> int:
        """Browsers started (or connected to) so far: 1 unless one had to be killed."""
        return self._launches

    @property
    def browser_pid(self) -> int | None:
        """The process id of the Chromium this renderer launched and runs now, if any."""
        return self._process.pid if self._process is not None else None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the browser (killing the process launched) and stop Playwright."""
        await self._discard_browser()
        if self._playwright is not None:
            playwright, self._playwright = self._playwright, None
            with contextlib.suppress(Exception, TimeoutError):
                async with asyncio.timeout(_CLOSE_GRACE):
                    await playwright.stop()

    async def render(self, url: str) -> Page:
        """The page at ``url`` after its scripts ran, or a :class:`FetchError`.

        ``Page.text`` is the rendered DOM as HTML, ``Page.url`` the URL the page ended
        on; there are no validators (a rendered page cannot be asked for conditionally).
        """
        target = _parse_url(url)
        # As in Fetcher.fetch: a page the user put on a private address may stay there,
        # but no page reaches cloud metadata, not even for its robots.txt.
        refusal = await self._fetcher.address_refusal(url, private_ok=True)
        if refusal:
            raise FetchForbidden(f"refused {target.host}: {refusal}", url)
        private_ok = await self._fetcher.private_address(url) is not None
        refusal = await self._fetcher.robots_refusal(url)
        if refusal:
            raise FetchForbidden(f"{refusal}: {_where(target)}", url)
        guard = _Guard(self._fetcher, url, private_ok=private_ok)
        # The fetcher's turn at the host: one request at a time, the gap and robots.txt's
        # Crawl-delay kept between the renderer's pages and the fetcher's own requests.
        async with self._fetcher.host_turn(url), self._pages:
            return await self._render(guard, _where(target))

    async def _render(self, guard: _Guard, where: str) -> Page:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        url = guard.url
        settings = self._settings
        started = time.monotonic()
        outcome = "error"
        size = 0
        context = None
        proxy: GuardProxy | None = None
        try:
            # Starting the browser is bounded on its own: it is not the page's time.
            async with asyncio.timeout(settings.start_timeout):
                browser = await self._ready()
        except TimeoutError as exc:
            await self._discard_browser()
            raise FetchTimeout(
                f"the browser did not start in {settings.start_timeout:g} s", url
            ) from exc
        except PlaywrightError as exc:
            await self._discard_browser()
            raise FetchError(f"could not start the browser: {_first_line(exc)}", url) from exc
        try:
            async with asyncio.timeout(settings.timeout) as deadline:
                options = self._context_options()
                if "proxy" not in options and settings.browser_url is None:
                    # Every connection of the page goes through the guard, which
                    # connects to the addresses it judged (see scrapers/_proxy.py).
                    proxy = GuardProxy(
                        guard.judge,
                        dial=self._dial,
                        connect_timeout=self._fetcher.settings.connect_timeout,
                    )
                    await proxy.__aenter__()
                    options["proxy"] = {"server": proxy.url}
                context = await browser.new_context(**options)
                context.set_default_timeout(settings.timeout * 1000)
                await context.route("**/*", guard.route)
                await context.route_web_socket(lambda _url: True, _refuse_socket)
                page = await context.new_page()
                session = await context.new_cdp_session(page)
                session.on("Fetch.requestPaused", lambda event: guard.paused(session, event))
                await session.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
                try:
                    response = await page.goto(url, wait_until="load")
                except PlaywrightError:
                    if guard.document_refusal is not None:
                        raise guard.document_refusal from None
                    raise
                status = response.status if response is not None else 200
                outcome = str(status)
                if not 200 <= status < 300:
                    raise FetchStatus(f"HTTP {status} from {where}", url, status=status)
                # Within the page's bound, leaving a second to read the DOM.
                left = (deadline.when() or 0.0) - asyncio.get_running_loop().time() - 1.0
                settle = min(settings.settle, left)
                if settle > 0:
                    try:
                        await page.wait_for_load_state("networkidle", timeout=settle * 1000)
                    except PlaywrightTimeout:
                        log.debug("%s: the network did not go quiet; reading it as it is", where)
                text = await page.content()
                size = len(text.encode("utf-8"))
                if size > settings.max_bytes:
                    raise FetchTooLarge(
                        f"{where} renders to {size} bytes; the cap is {settings.max_bytes}", url
                    )
                return Page(
                    url=page.url,
                    status=status,
                    text=text,
                    validators=Validators(),
                    content_type="text/html",
                )
        except TimeoutError as exc:
            outcome = "Timeout"
            if context is None:  # the browser did not even open a page: it is not answering
                log.warning("the browser did not open a page in time; killing it")
                await self._discard_browser()
            raise FetchTimeout(
                f"{where} took longer than {settings.timeout:g} s to render", url
            ) from exc
        except PlaywrightTimeout as exc:
            outcome = "Timeout"
            raise FetchTimeout(f"timed out rendering {where}", url) from exc
        except PlaywrightError as exc:
            outcome = type(exc).__name__
            raise FetchError(f"could not render {where}: {_first_line(exc)}", url) from exc
        except FetchError as exc:
            outcome = f"{outcome} {type(exc).__name__}"
            raise
        finally:
            if context is not None:
                await self._close_context(context)
            if proxy is not None:
                await proxy.aclose()
            elapsed = (time.monotonic() - started) * 1000
            log.info("RENDER %s -> %s, %d bytes, %.0f ms", where, outcome, size, elapsed)

    def _context_options(self) -> dict[str, Any]:
        fetch = self._fetcher.settings
        options: dict[str, Any] = {
            "user_agent": fetch.user_agent,
            "service_workers": "block",  # their requests pass no route
            "accept_downloads": False,
        }
        proxy, bypass = fetch.proxy, None
        if proxy is None and fetch.trust_env:
            # As the fetcher's client does: the standard HTTP(S)_PROXY / NO_PROXY variables.
            found = urllib.request.getproxies()
            proxy, bypass = found.get("https") or found.get("http"), found.get("no")
        if proxy:
            parts = urlsplit(proxy)
            scheme = "socks5" if parts.scheme.startswith("socks5") else parts.scheme
            port = f":{parts.port}" if parts.port else ""
            options["proxy"] = {"server": f"{scheme}://{parts.hostname}{port}"}
            if parts.username:
                options["proxy"]["username"] = parts.username
                options["proxy"]["password"] = parts.password or ""
            if bypass:
                options["proxy"]["bypass"] = bypass
        return options

    async def _close_context(self, context: Any) -> None:
        """Close a page's context; a browser that does not answer is killed."""
        try:
            async with asyncio.timeout(min(_CLOSE_GRACE, self._settings.timeout)):
                await context.close()
        except TimeoutError:
            log.warning("the browser did not close a page in time; killing it")
            await self._discard_browser()
        except Exception as exc:  # already gone with its browser
            log.debug("closing a page: %s", _first_line(exc))

    # -- the one browser ------------------------------------------------------------------

    async def _ready(self) -> Browser:
        async with self._start_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            await self._discard_browser()
            if self._playwright is None:
                from playwright.async_api import async_playwright

                self._playwright = await async_playwright().start()
            chromium = self._playwright.chromium
            timeout = self._settings.start_timeout * 1000
            if self._settings.browser_url is not None:
                self._browser = await chromium.connect_over_cdp(
                    self._settings.browser_url, timeout=timeout
                )
            else:
                endpoint = await self._launch()
                self._browser = await chromium.connect_over_cdp(endpoint, timeout=timeout)
            self._launches += 1
            return self._browser

    async def _launch(self) -> str:
        """Start Chromium and return its DevTools endpoint.

        Launched here, not by Playwright, so the renderer holds the process and can
        kill it (with its renderers: it leads its own process group) when it hangs.
        """
        executable = find_chromium(self._settings.executable_path)
        if executable is None:
            raise FetchError(f"cannot render pages: {render_unavailable(self._settings)}")
        self._profile_dir = tempfile.mkdtemp(prefix="simwatcher-chromium-")
        args = [
            *_CHROMIUM_ARGS,
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile_dir}",
            *self._browser_args,
            "about:blank",
        ]
        self._process = await asyncio.create_subprocess_exec(
            executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        # Chromium writes the port it chose, and the browser's path, to this file.
        active = Path(self._profile_dir, "DevToolsActivePort")
        while True:
            if self._process.returncode is not None:
                raise FetchError(f"Chromium ({executable}) exited at start")
            with contextlib.suppress(OSError):
                lines = active.read_text(encoding="ascii").split()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            await asyncio.sleep(_LAUNCH_POLL)

    async def _discard_browser(self) -> None:
        """Forget the browser: disconnect, kill the process launched, remove its profile."""
        browser, self._browser = self._browser, None
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if browser is not None:
            with contextlib.suppress(Exception, TimeoutError):
                async with asyncio.timeout(_CLOSE_GRACE):
                    await browser.close()
        if process is not None:
            await process.wait()
        if self._profile_dir is not None:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None


async def _refuse_socket(socket: WebSocketRoute) -> None:
    # Not connected to any server: a promotion list is never drawn from a web socket.
    with contextlib.suppress(Exception):
        await socket.close()


def _short(url: str) -> str:
    """host[:port]/path of a URL, for logs: never its query."""
    parts = urlsplit(url)
    return f"{parts.netloc.rpartition('@')[2]}{parts.path}" if parts.netloc else url[:60]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
