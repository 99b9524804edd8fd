"""Fetching promotion pages politely and defensively.

One :class:`Fetcher` holds one shared ``httpx.AsyncClient`` and turns a URL into a
:class:`~scrapers._models.Page`, or raises one of the :mod:`scrapers._errors` types.
What it guarantees, because pages are written by strangers:

* Redirects are followed by hand, so every hop is checked: http(s) only, no loops,
  at most ``max_redirects`` hops, and robots.txt is asked again for each new URL.
* A page on the public internet cannot redirect us into a private network (SSRF):
  when the URL we were given is on a public address, every hop must resolve to
  public addresses only; loopback, private, link-local, CGNAT and other reserved
  addresses are refused before any request. An IPv6 address that carries an IPv4 one
  (IPv4-mapped, -compatible and -translated, NAT64, 6to4, Teredo) is judged by the
  IPv4 address it carries: :func:`address_refusal` is the one rule, which the
  browser renderer applies too. A URL that is itself on a private address was put
  there by the user, so it may redirect within private networks; cloud metadata
  services (169.254.169.254, fd00:ec2::254, 100.100.100.200...) are refused for
  every URL and hop, private or not. The check resolves the name itself before the
  request; a name that does not resolve here is left to the connection (or to the
  proxy) to fail or reach, and a DNS answer that changes between the check and the
  connection is not caught.
* The body is streamed and abandoned at ``max_bytes`` (counted after decompression,
  which we do ourselves in bounded steps, so a gzip bomb costs no more than a big page).
* Text is decoded the way browsers do (BOM, then the Content-Type charset, then a
  ``<meta>`` or XML declaration, then UTF-8) and never raises on bad bytes.
* At most one request at a time per host (``host:port``), ``min_gap`` seconds apart;
  different hosts run concurrently.
* robots.txt is fetched once per origin and cached for ``robots_ttl``, read as
  RFC 9309 says: 4xx allows everything, and 5xx disallows everything (not the
  common "treat it as missing" shortcut) for ten minutes, so a transient outage
  blocks a host for one run, not for a day. If robots.txt cannot be reached at all,
  the page fails with that network error and nothing is cached.

Time is injected: a ``monotonic`` function and an async ``sleep`` (defaults
``time.monotonic`` and ``asyncio.sleep``), so tests move time instead of sleeping.
Only the I/O guards run on real time: httpx's connect/read timeouts and the
per-attempt ``total_timeout`` against servers that trickle bytes.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ipaddress
import logging
import math
import random
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego

from scrapers._errors import (
    FetchError,
    FetchForbidden,
    FetchRedirect,
    FetchStatus,
    FetchTimeout,
    FetchTooLarge,
)
from scrapers._models import Page, Validators
from scrapers._settings import DEFAULT_USER_AGENT, FetchSettings

__all__ = [
    "DEFAULT_USER_AGENT",
    "FetchSettings",
    "Fetcher",
    "address_refusal",
    "decode_text",
    "embedded_ipv4",
    "jittered",
]

log = logging.getLogger(__name__)


_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,"
    "application/json;q=0.9,application/rss+xml;q=0.9,application/atom+xml;q=0.9,*/*;q=0.5"
)
# Only codings we can inflate in bounded steps ourselves (see _Inflate).
_ACCEPT_ENCODING = "gzip, deflate"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PIECE = 64 * 1024  # the most one decompression step may produce
_ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB
_ROBOTS_MAX_REDIRECTS = 5  # RFC 9309: follow at least five
# A robots.txt that answered 5xx means "disallow everything" (RFC 9309), but only for
# a while: a transient outage must not block a host's sources for a whole day.
_ROBOTS_ERROR_TTL = 600.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Resolves a host name to its addresses (as text); injected so tests can stand in
# for public DNS, which this machine cannot reach.
Resolve = Callable[[str, int], Awaitable[Iterable[str]]]
# Retried: the connection failed or broke. Not retried: a read timeout (the server is
# slow, and retrying would hold the host for several timeouts) or a protocol misuse.
_RETRYABLE_ERRORS = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)

_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/", "model/")
_BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/x-msdownload",
        "application/java-archive",
        "application/wasm",
        "application/x-shockwave-flash",
    }
)

_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([a-z0-9_.:+-]+)", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([a-z0-9_.:+-]+)", re.IGNORECASE)
_SNIFF_BYTES = 4096
# WHATWG Encoding: these labels mean windows-1252 on the web; utf-16 declared inside
# an ASCII-readable document cannot be true, so it means utf-8.
_LABEL_ALIASES = {
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "utf-16": "utf-8",
    "utf-16le": "utf-8",
    "utf-16be": "utf-8",
}
# Python codecs that are not character encodings a web page could be in.
_NOT_PAGE_CODECS = frozenset(
    {"undefined", "idna", "punycode", "unicode_escape", "raw_unicode_escape", "utf-7"}
)


def jittered(every: timedelta, rng: random.Random, spread: float = 0.1) -> timedelta:
    """``every`` moved by a random fraction in ``[-spread, +spread]``.

    Used for schedules, so sources sharing an interval don't fire in lockstep.
    """
    if not 0 <= spread < 1:
        raise ValueError(f"spread must be in [0, 1), not {spread!r}")
    if every < timedelta(0):
        raise ValueError(f"every must not be negative, not {every}")
    return every * (1 + rng.uniform(-spread, spread))


# A page with at least this many undecodable characters, over 1 % of its text, is refused.
_UNDECODABLE_MIN = 8


def decode_text(body: bytes, content_type: str | None = None) -> str:
    """Bytes of a page as text, as a browser would decode them; never raises.

    Order (WHATWG): a byte-order mark, then the Content-Type ``charset``, then a
    ``<meta charset>`` / ``http-equiv`` or ``<?xml encoding?>`` in the first 4 KiB,
    then UTF-8. Unknown labels are skipped; bad bytes become U+FFFD. The BOM wins
    over the header because it cannot be there by accident.
    """
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")):
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    if body.startswith(codecs.BOM_UTF16_BE):
        return body[2:].decode("utf-16-be", errors="replace")
    labels: list[str] = []
    if content_type:
        charset = _content_type(content_type)[1]
        if charset:
            labels.append(charset)
    head = body[:_SNIFF_BYTES]
    for pattern in (_META_CHARSET, _XML_ENCODING):
        match = pattern.search(head)
        if match:
            labels.append(match.group(1).decode("ascii"))
    for label in labels:
        text = _decode_as(body, label)
        if text is not None:
            return text
    return body.decode("utf-8", errors="replace")


def _decode_as(body: bytes, label: str) -> str | None:
    label = label.strip().lower()
    label = _LABEL_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
        if name in _NOT_PAGE_CODECS:
            return None
        return body.decode(name, errors="replace")
    except (LookupError, ValueError):  # unknown label, or a codec that isn't text
        return None


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    """(media type, charset) from a Content-Type header value."""
    if not value:
        return None, None
    media, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return media.strip().lower() or None, charset


def _is_binary(media: str | None) -> bool:
    return media is not None and (media.startswith(_BINARY_PREFIXES) or media in _BINARY_TYPES)


def _where(url: httpx.URL) -> str:
    """host[:port]/path for logs and messages: never the query, which may hold secrets."""
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}{url.path}"


def _host_key(url: httpx.URL) -> str:
    return f"{url.host}:{url.port or _DEFAULT_PORTS.get(url.scheme, 0)}"


class _Inflate:
    """Decompresses in steps of at most ``_PIECE`` bytes, so memory stays bounded."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._zlib = None if coding == "identity" else self._new(coding)
        self._started = False

    @staticmethod
    def _new(coding: str) -> zlib._Decompress:
        return zlib.decompressobj(zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            yield data
            return
        if not self._started and self._coding == "deflate" and data:
            self._started = True
            # "deflate" is zlib-wrapped by the spec but raw from some servers.
            if not _zlib_header(data):
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        while True:
            out = self._zlib.decompress(data, _PIECE)
            if out:
                yield out
            data = self._zlib.unconsumed_tail
            if not data and len(out) < _PIECE:
                return

    def flush(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


def _inflater(header: str | None) -> _Inflate:
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _Inflate("identity")
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflate("deflate" if codings[0] == "deflate" else "gzip")
    raise FetchError(f"unsupported Content-Encoding {header!r}")


@dataclass
class _Reply:
    """One HTTP exchange: the body is read only for 2xx."""

    url: httpx.URL
    status: int
    headers: httpx.Headers
    body: bytes = b""


@dataclass(frozen=True)
class _Robots:
    parser: Protego | None
    expires: float
    # Without a parser: None allows everything, a reason disallows everything.
    refusal: str | None = None

    def refuses(self, url: str, token: str) -> str | None:
        """Why ``url`` may not be fetched, or None if it may."""
        if self.parser is not None:
            return None if self.parser.can_fetch(url, token) else "robots.txt disallows it"
        return self.refusal


class Fetcher:
    """Fetches pages over one shared client; ``async with Fetcher() as f: await f.fetch(url)``.

    A ``client`` handed in is used as is (its proxy and pool settings are the
    caller's) and left open; one the fetcher creates is closed by :meth:`aclose`.
    Timeouts, the User-Agent and redirect handling are set on every request, so they
    apply either way. Per-host politeness and the robots.txt cache live as long as
    the fetcher: share one across a whole scrape cycle.
    """

    def __init__(
        self,
        settings: FetchSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        resolve: Resolve | None = None,
    ) -> None:
        self._settings = settings = settings or FetchSettings()
        self._resolve = resolve or _resolve
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            proxy=settings.proxy,
            trust_env=settings.trust_env,
            headers={"User-Agent": settings.user_agent},
        )
        self._monotonic = monotonic
        self._sleep = sleep
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._last_request: dict[str, float] = {}
        self._crawl_delay: dict[str, float] = {}
        self._robots: dict[tuple[str, str], _Robots] = {}
        self._robots_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._bytes = 0

    @property
    def settings(self) -> FetchSettings:
        return self._settings

    @property
    def bytes_received(self) -> int:
        """Body bytes read off the wire so far (before decompression)."""
        return self._bytes

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
        """Close the client if this fetcher created it."""
        if self._owns_client:
            await self._client.aclose()

    async def fetch(self, url: str, validators: Validators | None = None) -> Page:
        """GET ``url`` and return the page, or raise a :class:`FetchError`.

        With ``validators`` the request is conditional; a 304 returns
        ``Page(status=304, text=None)`` with the validators kept (updated if the
        server sent new ones). ``Page.url`` is the URL after redirects;
        ``Page.content_type`` is the media type without parameters.
        """
        current = _parse_url(url)
        headers = {"User-Agent": self._settings.user_agent, "Accept": _ACCEPT}
        headers["Accept-Encoding"] = _ACCEPT_ENCODING
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        seen = {str(current)}
        hops = 0
        # Whether redirects may go into private networks: only if the URL itself points
        # there (the user chose that network). Cloud metadata is refused either way.
        addresses = await self._addresses(current)
        private_ok = any(not _is_public(address) for address in addresses)
        refusal = _first_refusal(addresses, private_ok=True)
        if refusal:
            raise FetchForbidden(f"refused {current.host}: {refusal}", url)
        while True:
            refusal = await self._robots_refusal(current) if self._settings.respect_robots else None
            if refusal:
                raise FetchForbidden(f"{refusal}: {_where(current)}", url)
            reply = await self._exchange(current, headers, page=True)
            if reply.status not in _REDIRECT_STATUSES:
                break
            target = _redirect_target(reply, url)
            hops += 1
            if hops > self._settings.max_redirects:
                raise FetchRedirect(
                    f"more than {self._settings.max_redirects} redirects from {_where(current)}",
                    url,
                )
            if str(target) in seen:
                raise FetchRedirect(f"redirect loop at {_where(target)}", url)
            seen.add(str(target))
            refusal = _first_refusal(await self._addresses(target), private_ok=private_ok)
            if refusal:
                raise FetchRedirect(
                    f"refused a redirect from {_where(current)} to {target.host}, {refusal}",
                    url,
                )
            log.debug("redirect %s -> %s", _where(current), _where(target))
            current = target
        return self._page(reply, url, validators)

    async def robots_refusal(self, url: str) -> str | None:
        """Why robots.txt forbids fetching ``url``, or None if it may be fetched.

        The same cached verdict :meth:`fetch` acts on, for callers that fetch the page
        another way (the browser renderer). None when ``respect_robots`` is off.
        """
        if not self._settings.respect_robots:
            return None
        return await self._robots_refusal(_parse_url(url))

    @contextlib.asynccontextmanager
    async def host_turn(self, url: str) -> AsyncIterator[None]:
        """A turn at ``url``'s host, as :meth:`fetch` takes one, for callers that request
        it another way (the browser renderer): one at a time per host, after the gap
        (``min_gap``, or robots.txt's longer ``Crawl-delay``) since the last request."""
        key = _host_key(_parse_url(url))
        async with self._host_locks.setdefault(key, asyncio.Lock()):
            await self._keep_gap(key)
            try:
                yield
            finally:
                self._last_request[key] = self._monotonic()

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` stands for (itself if it is one); OSError if it does
        not resolve. The same lookup the private-network rule judges."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            return list(await self._resolve(host, port))

    async def private_address(self, url: str) -> str | None:
        """The first non-public address ``url``'s host stands for, or None if all are
        public (or it does not resolve here): whether :meth:`fetch` lets its redirects
        into private networks."""
        for address in await self._addresses(_parse_url(url)):
            if not _is_public(address):
                return address
        return None

    async def address_refusal(self, url: str, *, private_ok: bool) -> str | None:
        """Why ``url``'s host may not be requested (:func:`address_refusal` of each of
        its addresses), or None: the test :meth:`fetch` puts every URL and hop to."""
        return _first_refusal(await self._addresses(_parse_url(url)), private_ok=private_ok)

    async def _addresses(self, url: httpx.URL) -> list[str]:
        """The addresses ``url``'s host stands for: the host itself if it is an address.

        A name that cannot be resolved here yields none: the request itself will then
        fail to connect, or go through a proxy that resolves it on its side.
        """
        host = url.host
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            return list(await self._resolve(host, url.port or _DEFAULT_PORTS[url.scheme]))
        except OSError as exc:
            log.debug("could not resolve %s (%s); leaving it to the connection", host, exc)
            return []

    def _page(self, reply: _Reply, url: str, validators: Validators | None) -> Page:
        status = reply.status
        etag = reply.headers.get("etag")
        last_modified = reply.headers.get("last-modified")
        if status == 304:
            kept = validators or Validators()
            return Page(
                url=str(reply.url),
                status=304,
                text=None,
                validators=Validators(
                    etag=etag or kept.etag, last_modified=last_modified or kept.last_modified
                ),
            )
        if not 200 <= status < 300:
            raise FetchStatus(f"HTTP {status} from {_where(reply.url)}", url, status=status)
        content_type = reply.headers.get("content-type")
        text = decode_text(reply.body, content_type)
        undecodable = text.count("\ufffd")
        if undecodable >= _UNDECODABLE_MIN and undecodable * 100 > len(text):
            # A page in another charset than it declares: its titles would be garbage,
            # and garbage titles would read as new promotions.
            raise FetchError(
                f"{_where(reply.url)} is not readable text: {undecodable} characters could "
                "not be decoded (a wrong charset?)",
                url,
            )
        return Page(
            url=str(reply.url),
            status=status,
            text=text,
            validators=Validators(etag=etag, last_modified=last_modified),
            content_type=_content_type(content_type)[0],
        )

    # -- one host, one request at a time ------------------------------------------------

    async def _exchange(self, url: httpx.URL, headers: dict[str, str], *, page: bool) -> _Reply:
        """One request with retries, holding the host's lock and keeping its gap."""
        key = _host_key(url)
        lock = self._host_locks.setdefault(key, asyncio.Lock())
        retries = self._settings.retries
        async with lock:
            attempt = 0
            while True:
                await self._keep_gap(key)
                try:
                    reply = await self._attempt(url, headers, page=page)
                except FetchError as exc:
                    if attempt >= retries or not isinstance(exc.__cause__, _RETRYABLE_ERRORS):
                        raise
                    delay = self._backoff(attempt)
                    log.debug("retrying %s in %.1f s: %s", _where(url), delay, exc)
                else:
                    if attempt >= retries or not _retryable_status(reply.status):
                        return reply
                    asked = self._retry_delay(reply, attempt)
                    if asked is None:
                        log.debug("%s asks to wait too long; giving up", _where(url))
                        return reply
                    delay = asked
                    log.debug("retrying %s in %.1f s after %d", _where(url), delay, reply.status)
                finally:
                    self._last_request[key] = self._monotonic()
                attempt += 1
                await self._sleep(delay)

    async def _keep_gap(self, key: str) -> None:
        last = self._last_request.get(key)
        if last is None:
            return
        gap = max(self._settings.min_gap, self._crawl_delay.get(key, 0.0))
        wait = last + gap - self._monotonic()
        if wait > 0:
            log.debug("waiting %.2f s before the next request to %s", wait, key)
            await self._sleep(wait)

    def _backoff(self, attempt: int) -> float:
        return float(min(self._settings.max_wait, self._settings.backoff * 2**attempt))

    def _retry_delay(self, reply: _Reply, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to give up now."""
        asked = _retry_after(reply.headers)
        if asked is None:
            return self._backoff(attempt)
        return asked if asked <= self._settings.max_wait else None

    async def _attempt(self, url: httpx.URL, headers: dict[str, str], *, page: bool) -> _Reply:
        started = self._monotonic()
        received = [0]
        outcome = "error"
        request = self._client.build_request("GET", url, headers=headers, timeout=self._timeout)
        log.debug("GET %s headers=%s", _where(url), sorted(headers))
        try:
            async with asyncio.timeout(self._settings.total_timeout):
                response = await self._client.send(request, stream=True, follow_redirects=False)
                try:
                    outcome = str(response.status_code)
                    reply = _Reply(url, response.status_code, response.headers)
                    if 200 <= reply.status < 300:
                        reply.body = await self._read_body(response, received, page=page)
                finally:
                    await response.aclose()
            return reply
        except FetchError as exc:
            outcome = f"{outcome} {type(exc).__name__}"
            raise
        except httpx.TimeoutException as exc:
            outcome = type(exc).__name__
            raise FetchTimeout(f"timed out fetching {_where(url)} ({outcome})", str(url)) from exc
        except TimeoutError as exc:
            outcome = "TotalTimeout"
            raise FetchTimeout(
                f"{_where(url)} took longer than {self._settings.total_timeout:g} s", str(url)
            ) from exc
        except httpx.InvalidURL as exc:
            # httpx parses a redirect's Location even when not following it, and
            # raises for ones like "javascript:alert(1)" before we get to see them.
            outcome = "redirect to an invalid URL"
            raise FetchRedirect(
                f"refused a redirect from {_where(url)} to an invalid URL", str(url)
            ) from exc
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
            raise FetchError(f"could not fetch {_where(url)}: {outcome}: {exc}", str(url)) from exc
        finally:
            self._bytes += received[0]
            elapsed = (self._monotonic() - started) * 1000
            log.info("GET %s -> %s, %d bytes, %.0f ms", _where(url), outcome, received[0], elapsed)

    async def _read_body(
        self, response: httpx.Response, received: list[int], *, page: bool
    ) -> bytes:
        """The decoded body, streamed; over the cap a page fails, robots.txt is cut."""
        url = str(response.request.url)
        where = _where(response.request.url)
        limit = self._settings.max_bytes if page else _ROBOTS_MAX_BYTES
        media = _content_type(response.headers.get("content-type"))[0]
        if page and _is_binary(media):
            raise FetchError(f"{where} is {media}, not a page", url)
        declared = response.headers.get("content-length", "")
        if page and declared.isdigit() and int(declared) > limit:
            raise FetchTooLarge(f"{where} is {declared} bytes; the cap is {limit}", url)
        inflate = _inflater(response.headers.get("content-encoding"))
        body = bytearray()

        def add(piece: bytes) -> bool:
            """Append within the cap; False when the cap is reached (robots.txt is cut)."""
            if len(body) + len(piece) <= limit:
                body.extend(piece)
                return True
            if page:
                raise FetchTooLarge(f"{where} is larger than the cap of {limit} bytes", url)
            body.extend(piece[: limit - len(body)])
            return False

        try:
            async for raw in response.aiter_raw():
                received[0] += len(raw)
                for piece in inflate.feed(raw):
                    if not add(piece):
                        return bytes(body)
            add(inflate.flush())
        except zlib.error as exc:
            raise FetchError(f"{where}: the compressed body is corrupt", url) from exc
        if page and media is None and b"\x00" in body[:1024] and not _has_utf16_bom(body):
            raise FetchError(f"{where} has no content type and looks binary", url)
        return bytes(body)

    # -- robots.txt -----------------------------------------------------------------------

    async def _robots_refusal(self, url: httpx.URL) -> str | None:
        origin = (url.scheme, _host_key(url))
        robots = self._robots.get(origin)
        if robots is None or self._monotonic() >= robots.expires:
            lock = self._robots_locks.setdefault(origin, asyncio.Lock())
            async with lock:
                robots = self._robots.get(origin)
                if robots is None or self._monotonic() >= robots.expires:
                    robots = await self._load_robots(url)
                    self._robots[origin] = robots
                    self._note_crawl_delay(url, robots)
        return robots.refuses(str(url), self._settings.robots_token)

    async def _load_robots(self, page_url: httpx.URL) -> _Robots:
        """RFC 9309: 2xx → the rules; 4xx → allow all; 5xx (and 429) → disallow all.

        A network failure is not turned into a verdict: it is raised as the page's
        own fetch error (it could not have been fetched either) and nothing is cached.
        """
        now = self._monotonic()
        ttl = self._settings.robots_ttl
        target = page_url.copy_with(path="/robots.txt", query=None, fragment=None)
        headers = {"User-Agent": self._settings.user_agent, "Accept": "text/plain,*/*;q=0.5"}
        headers["Accept-Encoding"] = _ACCEPT_ENCODING
        seen = {str(target)}
        private_ok: bool | None = None
        for _ in range(_ROBOTS_MAX_REDIRECTS + 1):
            try:
                reply = await self._exchange(target, headers, page=False)
            except FetchRedirect:  # a Location httpx cannot even parse
                break
            if reply.status in _REDIRECT_STATUSES:
                try:
                    target = _redirect_target(reply, str(target))
                except FetchRedirect:
                    break
                if str(target) in seen:
                    break
                seen.add(str(target))
                if private_ok is None:  # as in fetch(): by where the page's URL points
                    private_ok = await self.private_address(str(page_url)) is not None
                if await self.address_refusal(str(target), private_ok=private_ok):
                    break  # a public site's robots.txt cannot send us into a private network
                continue
            if 200 <= reply.status < 300:
                text = reply.body.decode("utf-8", errors="replace")
                return _Robots(Protego.parse(text), expires=now + ttl)
            if reply.status == 429 or reply.status >= 500:
                refusal = (
                    f"robots.txt answered {reply.status}, which RFC 9309 reads as disallow-all"
                )
                return _Robots(None, now + min(ttl, _ROBOTS_ERROR_TTL), refusal)
            return _Robots(None, expires=now + ttl)
        # Unavailable (a redirect loop, too many hops, or off http(s)): RFC 9309 4xx rule.
        return _Robots(None, expires=now + ttl)

    def _note_crawl_delay(self, url: httpx.URL, robots: _Robots) -> None:
        delay = robots.parser.crawl_delay(self._settings.robots_token) if robots.parser else None
        key = _host_key(url)
        if delay is not None and math.isfinite(delay) and delay > 0:
            self._crawl_delay[key] = min(float(delay), self._settings.max_wait)
        else:
            self._crawl_delay.pop(key, None)


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# Cloud instance metadata services hand out the machine's credentials: no source may
# reach them, not even one the user put on a private network.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS Pod Identity
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS, over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity, over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052, well-known
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291, deprecated IPv4-compatible
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765, IPv4-translated
_LOW32 = 0xFFFFFFFF
# Not globally reachable (IANA special-purpose registry) though older Pythons' is_global
# says otherwise: it knows only 192.0.0.0/29 and 192.0.0.170/31 of the first.
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries, or None if it is no such form.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``, but not ``::`` and ``::1``), NAT64
    (``64:ff9b::/96``, and ``64:ff9b:1::/48`` read at every RFC 6052 prefix length it
    may be used with), 6to4 (``2002::/16``) and
    Teredo (``2001::/32``: its server and its client, whose bits are inverted). The
    IPv6 address reaches what these reach, whatever ``is_global`` says of it.
    """
    value = int(ip)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _TRANSLATED or ip in _NAT64 or (ip in _COMPATIBLE and value > 1):
        return [ipaddress.IPv4Address(value & _LOW32)]
    if ip in _NAT64_LOCAL:
        return _nat64_local(value)
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return None


def _nat64_local(value: int) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a ``64:ff9b:1::/48`` address may carry (RFC 6052, 2.2).

    The operator's prefix length is not in the address: /96 puts the IPv4 address in
    the last 32 bits; /48, /56 and /64 split it around the "u" octet (bits 64-71),
    which is zero in them, so those readings count only when it is.
    """
    readings = [ipaddress.IPv4Address(value & _LOW32)]
    if (value >> 56) & 0xFF == 0:  # the u octet
        for prefix in (48, 56, 64):
            before_u = 64 - prefix  # IPv4 bits in [prefix, 64), the rest in [72, ...)
            after_u = 32 - before_u
            high = (value >> 64) & ((1 << before_u) - 1)
            low = (value >> (56 - after_u)) & ((1 << after_u) - 1)
            readings.append(ipaddress.IPv4Address((high << after_u) | low))
    return readings


def address_refusal(address: str, *, private_ok: bool = False) -> str | None:
    """Why a connection to ``address`` is refused, or None: the private-network rule.

    A cloud metadata address (:data:`CLOUD_METADATA`) is refused always; any other
    address that is not globally routable unicast (loopback, private, link-local,
    shared CGNAT, reserved, multicast, unparsable) unless ``private_ok``. An IPv6
    address that carries IPv4 ones (:func:`embedded_ipv4`) is judged by those.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return f"{address!r} is not an IP address"
    judged: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        judged = list(embedded_ipv4(ip) or judged)
        carried = "" if judged == [ip] else f", carrying {', '.join(map(str, judged))}"
    else:
        carried = ""
    if ip in CLOUD_METADATA or any(each in CLOUD_METADATA for each in judged):
        return f"a cloud metadata address ({address}{carried})"
    if not private_ok and not all(map(_is_global, judged)):
        return f"a private address ({address}{carried})"
    return None


def _is_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address) and any(ip in net for net in _NOT_GLOBAL):
        return False
    return ip.is_global and not ip.is_multicast


def _is_public(address: str) -> bool:
    """True for a globally routable unicast address, judged as :func:`address_refusal`."""
    return address_refusal(address) is None


def _first_refusal(addresses: Iterable[str], *, private_ok: bool) -> str | None:
    for address in addresses:
        refusal = address_refusal(address, private_ok=private_ok)
        if refusal:
            return refusal
    return None


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"not a valid URL: {exc}", url) from exc
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise FetchError("only http:// and https:// URLs can be fetched", url)
    return parsed.copy_with(fragment=None)


def _redirect_target(reply: _Reply, original: str) -> httpx.URL:
    location = reply.headers.get("location", "").strip()
    if not location:
        raise FetchRedirect(f"{_where(reply.url)} redirects nowhere", original)
    joined = urljoin(str(reply.url), location)
    scheme = urlsplit(joined).scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise FetchRedirect(f"refused a redirect to a {scheme or 'schemeless'}: URL", original)
    try:
        return _parse_url(joined)
    except FetchError as exc:
        raise FetchRedirect(f"refused a redirect to an invalid URL: {exc}", original) from exc


def _retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date measured against the response's
    own Date header (no local clock, and immune to clock skew); None if unusable."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return max(0.0, (when - sent).total_seconds())


def _has_utf16_bom(body: bytes | bytearray) -> bool:
    return body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
