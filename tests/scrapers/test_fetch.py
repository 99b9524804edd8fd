"""The fetcher against a real HTTP server on loopback that serves scripted replies.

Time is moved, never slept on: every Fetcher here gets a FakeTime whose sleep records
the wait and advances the clock. The only real waits are the server's own delays in
the timeout and concurrency tests (tenths of a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import logging
import random
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from scrapers._errors import (
    FetchError,
    FetchForbidden,
    FetchRedirect,
    FetchStatus,
    FetchTimeout,
    FetchTooLarge,
)
from scrapers._fetch import (
    DEFAULT_USER_AGENT,
    Fetcher,
    FetchSettings,
    Resolve,
    decode_text,
    jittered,
)
from scrapers._models import Page, Validators
from tests.servers import free_port

T = TypeVar("T")
KIB = 1024
MIB = 1024 * KIB

# Env proxies are off (trust_env=False) so no test depends on, or leaks through, the
# machine's proxy variables; min_gap is 0 unless a test is about the gap.
BASE = FetchSettings(
    trust_env=False, connect_timeout=2.0, read_timeout=2.0, total_timeout=10.0, min_gap=0.0
)


# -- the loopback server --------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``stream=(chunk, n)`` sends chunk n times with no length."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream: tuple[bytes, int] | None = None
    pause: float = 0.0  # between streamed chunks


def html(text: str, charset: str = "utf-8", **headers: str) -> Reply:
    return Reply(body=text.encode(charset), headers={"Content-Type": "text/html", **headers})


@dataclass(frozen=True)
class Seen:
    target: str  # the request target as sent: absolute-form when we are the proxy
    path: str
    headers: dict[str, str]


class Gauge:
    """Requests in flight, shared by every server of a test: peak 1 means never overlapped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


Route = list[Reply] | Callable[[Seen], Reply]


class Site:
    """A threaded HTTP server on 127.0.0.1 that answers each path from a script.

    A list of replies is served in order, the last one repeating; a function gets the
    request. Unknown paths (robots.txt included) are 404 with an empty body.
    """

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.sent = 0  # body bytes the server managed to write
        self.release = threading.Event()  # set on stop: cuts every delay short
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def route(self, path: str, *replies: Reply, fn: Callable[[Seen], Reply] | None = None) -> None:
        self.routes[path] = fn if fn is not None else list(replies)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for s in self.seen if s.path == path)

    def paths(self) -> list[str]:
        with self._lock:
            return [s.path for s in self.seen]

    def last(self, path: str) -> Seen:
        with self._lock:
            return [s for s in self.seen if s.path == path][-1]

    def _reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            route = self.routes.get(seen.path)
            if route is None:
                return Reply(status=404)
            if callable(route):
                return route(seen)
            return route.pop(0) if len(route) > 1 else route[0]

    def start(self) -> Site:
        site = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a stuck client cannot hold a server thread (or teardown) for long

            def do_GET(self) -> None:
                seen = Seen(self.path, urlsplit(self.path).path or "/", dict(self.headers))
                site.gauge.enter()
                try:
                    reply = site._reply(seen)
                    if reply.delay:
                        site.release.wait(reply.delay)
                finally:
                    # Leave before writing: the client cannot have the response before
                    # this point, so a well-behaved client never overlaps two requests.
                    site.gauge.leave()
                with contextlib.suppress(OSError):  # the client hung up (cap, timeout)
                    self._send(reply)

            def _send(self, reply: Reply) -> None:
                self.send_response_only(reply.status)
                headers = {"Connection": "close", **reply.headers}
                if reply.stream is None:
                    headers.setdefault("Content-Length", str(len(reply.body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                chunks = [reply.body] if reply.stream is None else _repeat(*reply.stream)
                for chunk in chunks:
                    if reply.pause and site.release.wait(reply.pause):
                        return
                    self.wfile.write(chunk)
                    with site._lock:
                        site.sent += len(chunk)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits up to one of them, in every test.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads


def _repeat(chunk: bytes, times: int) -> Iterator[bytes]:
    for _ in range(times):
        yield chunk


@pytest.fixture
def gauge() -> Gauge:
    return Gauge()


@pytest.fixture
def new_site(gauge: Gauge) -> Iterator[Callable[[], Site]]:
    sites: list[Site] = []

    def make() -> Site:
        site = Site(gauge).start()
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.stop()


@pytest.fixture
def site(new_site: Callable[[], Site]) -> Site:
    return new_site()


# -- moving time ----------------------------------------------------------------------


class FakeTime:
    """An injected monotonic clock that only moves when the fetcher sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def run(
    job: Callable[[Fetcher], Awaitable[T]],
    clock: FakeTime | None = None,
    client: httpx.AsyncClient | None = None,
    resolve: Resolve | None = None,
    **overrides: Any,
) -> T:
    """Run ``job`` with a fresh Fetcher (BASE settings plus overrides) on a fresh loop."""
    clock = clock or FakeTime()
    settings = dataclasses.replace(BASE, **overrides)

    async def main() -> T:
        async with Fetcher(
            settings, client=client, monotonic=clock.monotonic, sleep=clock.sleep, resolve=resolve
        ) as fetcher:
            return await job(fetcher)

    return asyncio.run(main())


def fetch(
    url: str, validators: Validators | None = None, clock: FakeTime | None = None, **overrides: Any
) -> Page:
    return run(lambda f: f.fetch(url, validators), clock, **overrides)


# -- pages, validators, conditional requests ------------------------------------------


def test_a_page_is_fetched_with_our_user_agent_and_decoded(site: Site) -> None:
    site.route(
        "/promo", html("<h1>Скидка 50%</h1>", **{"Content-Type": "text/html; charset=utf-8"})
    )

    page = fetch(site.url("/promo"))

    assert page.status == 200
    assert page.text == "<h1>Скидка 50%</h1>"
    assert page.url == site.url("/promo")
    assert page.content_type == "text/html"
    assert site.last("/promo").headers["User-Agent"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith("SIMWatcher/")


def test_an_etag_comes_back_and_the_conditional_request_gets_304(site: Site) -> None:
    def promo(seen: Seen) -> Reply:
        if seen.headers.get("If-None-Match") == '"v1"':
            return Reply(status=304, headers={"ETag": '"v1"'})
        return html("<p>акция</p>", ETag='"v1"')

    site.route("/promo", fn=promo)

    first = fetch(site.url("/promo"))
    assert first.validators == Validators(etag='"v1"')
    assert "If-None-Match" not in site.last("/promo").headers

    second = fetch(site.url("/promo"), first.validators)
    assert site.last("/promo").headers["If-None-Match"] == '"v1"'
    assert second.status == 304
    assert second.not_modified
    assert second.text is None
    assert second.validators == first.validators


def test_last_modified_comes_back_and_the_conditional_request_gets_304(site: Site) -> None:
    stamp = "Wed, 21 Oct 2026 07:28:00 GMT"

    def promo(seen: Seen) -> Reply:
        if seen.headers.get("If-Modified-Since") == stamp:
            return Reply(status=304)
        return html("<p>акция</p>", **{"Last-Modified": stamp})

    site.route("/promo", fn=promo)

    first = fetch(site.url("/promo"))
    assert first.validators == Validators(last_modified=stamp)

    second = fetch(site.url("/promo"), first.validators)
    assert site.last("/promo").headers["If-Modified-Since"] == stamp
    assert second.not_modified
    assert second.validators == Validators(last_modified=stamp)  # kept though 304 had none


def test_a_changed_page_without_validators_drops_the_old_ones(site: Site) -> None:
    site.route("/promo", html("<p>новая</p>"))

    page = fetch(site.url("/promo"), Validators(etag='"old"', last_modified="yesterday"))

    assert page.status == 200
    assert page.validators == Validators()


# -- retries --------------------------------------------------------------------------


def test_500s_then_success_are_retried_with_exponential_backoff(site: Site) -> None:
    site.route("/promo", Reply(500), Reply(502), html("ok"))
    clock = FakeTime()

    page = fetch(site.url("/promo"), clock=clock)

    assert page.text == "ok"
    assert site.count("/promo") == 3
    assert clock.sleeps == [1.0, 2.0]


def test_500_forever_raises_fetch_status_after_the_retries(site: Site) -> None:
    site.route("/promo", Reply(500))
    clock = FakeTime()

    with pytest.raises(FetchStatus) as caught:
        fetch(site.url("/promo"), clock=clock)

    assert caught.value.status == 500
    assert site.count("/promo") == 4  # the first try and three retries
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_a_404_is_not_retried(site: Site) -> None:
    with pytest.raises(FetchStatus) as caught:
        fetch(site.url("/gone"))

    assert caught.value.status == 404
    assert site.count("/gone") == 1


def test_429_retry_after_in_seconds_is_honoured(site: Site) -> None:
    site.route("/promo", Reply(429, headers={"Retry-After": "7"}), html("ok"))
    clock = FakeTime()

    assert fetch(site.url("/promo"), clock=clock).text == "ok"
    assert clock.sleeps == [7.0]


def test_429_retry_after_as_a_date_is_measured_against_the_servers_date(site: Site) -> None:
    headers = {
        "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
        "Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
    }
    site.route("/promo", Reply(429, headers=headers), html("ok"))
    clock = FakeTime()

    assert fetch(site.url("/promo"), clock=clock).text == "ok"
    assert clock.sleeps == [30.0]


def test_a_retry_after_beyond_max_wait_gives_up_at_once(site: Site) -> None:
    site.route("/promo", Reply(429, headers={"Retry-After": "3600"}), html("ok"))
    clock = FakeTime()

    with pytest.raises(FetchStatus) as caught:
        fetch(site.url("/promo"), clock=clock)

    assert caught.value.status == 429
    assert site.count("/promo") == 1
    assert clock.sleeps == []


def test_a_refused_connection_is_retried_then_raises_fetch_error() -> None:
    clock = FakeTime()
    url = f"http://127.0.0.1:{free_port()}/promo"

    with pytest.raises(FetchError) as caught:
        fetch(url, clock=clock)

    assert type(caught.value) is FetchError
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert clock.sleeps == [1.0, 2.0, 4.0]


# -- timeouts -------------------------------------------------------------------------


def test_a_server_slower_than_the_read_timeout_raises_fetch_timeout(site: Site) -> None:
    site.route("/slow", Reply(delay=2.0, body=b"late"))

    with pytest.raises(FetchTimeout) as caught:
        fetch(site.url("/slow"), read_timeout=0.2)

    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert site.count("/slow") == 1  # a slow server is not asked again in the same run


def test_a_server_trickling_bytes_hits_the_total_timeout(site: Site) -> None:
    site.route(
        "/trickle", Reply(headers={"Content-Type": "text/html"}, stream=(b"x", 200), pause=0.02)
    )

    with pytest.raises(FetchTimeout):
        fetch(site.url("/trickle"), read_timeout=1.0, total_timeout=0.3)


# -- redirects ------------------------------------------------------------------------


def test_relative_redirects_are_followed_and_the_page_url_is_the_final_one(site: Site) -> None:
    site.route("/old", Reply(301, headers={"Location": "/ru/promo"}))
    site.route("/ru/promo", Reply(302, headers={"Location": "list?x=1"}))
    site.route("/ru/list", html("ok"))

    page = fetch(site.url("/old"))

    assert page.text == "ok"
    assert page.url == site.url("/ru/list?x=1")


def test_a_redirect_loop_raises_fetch_redirect(site: Site) -> None:
    site.route("/a", Reply(302, headers={"Location": "/b"}))
    site.route("/b", Reply(302, headers={"Location": "/a"}))

    with pytest.raises(FetchRedirect, match="loop"):
        fetch(site.url("/a"))

    assert (site.count("/a"), site.count("/b")) == (1, 1)


def test_more_than_max_redirects_raises_fetch_redirect(site: Site) -> None:
    for n in range(10):
        site.route(f"/r{n}", Reply(302, headers={"Location": f"/r{n + 1}"}))

    with pytest.raises(FetchRedirect, match="more than 3"):
        fetch(site.url("/r0"), max_redirects=3)

    assert [p for p in site.paths() if p != "/robots.txt"] == ["/r0", "/r1", "/r2", "/r3"]


@pytest.mark.parametrize(
    "target",
    ["file:///etc/passwd", "javascript:alert(1)", "ftp://127.0.0.1/x", "data:text/html,<b>hi</b>"],
)
def test_a_redirect_off_http_is_refused(site: Site, target: str) -> None:
    site.route("/promo", Reply(302, headers={"Location": target}))

    with pytest.raises(FetchRedirect, match="refused"):
        fetch(site.url("/promo"))

    assert site.paths() == ["/robots.txt", "/promo"]


def test_a_url_that_is_not_http_is_refused_without_any_request() -> None:
    with pytest.raises(FetchError, match="only http"):
        fetch("file:///etc/passwd")


# -- redirects into private networks (SSRF) ------------------------------------------
#
# No public host can be reached from here, so two stand-ins play the internet: a fake
# DNS that gives the names below public or private addresses, and a transport that
# delivers every request, whatever its host, to the loopback site (which records the
# Host header). Nothing leaves 127.0.0.1.

FAKE_DNS = {
    "promo.example": ["93.184.215.14"],
    "cdn.example": ["151.101.1.57", "2a04:4e42::313"],
    "intranet.example": ["10.1.2.3"],
    "router.example": ["192.168.0.1"],
    "metadata.example": ["169.254.169.254"],
    "cgnat.example": ["100.64.0.9"],
    "split.example": ["93.184.215.20", "172.16.5.5"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "ula.example": ["fd12:3456::1"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
    "sixtofour.example": ["2002:0a00:0001::1"],  # 6to4 of 10.0.0.1
    "compatible.example": ["::7f00:1"],  # IPv4-compatible 127.0.0.1
    "translated.example": ["::ffff:0:7f00:1"],  # IPv4-translated 127.0.0.1
    "aws-v6.example": ["fd00:ec2::254"],
    "alibaba.example": ["100.100.100.200"],
}


LOOKED_UP: list[str] = []


async def fake_resolve(host: str, port: int) -> list[str]:
    LOOKED_UP.append(host)
    if host not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_DNS[host]


class ToLoopback(httpx.AsyncBaseTransport):
    """Delivers every request to the site on 127.0.0.1, keeping its Host header."""

    def __init__(self, site: Site) -> None:
        self.port = site.port
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def fetch_via_internet(site: Site, url: str) -> Page:
    async def main() -> Page:
        async with (
            httpx.AsyncClient(transport=ToLoopback(site)) as client,
            Fetcher(BASE, client=client, resolve=fake_resolve) as fetcher,
        ):
            return await fetcher.fetch(url)

    return asyncio.run(main())


def hosts_asked(site: Site, path: str) -> list[str]:
    return [s.headers.get("Host", "") for s in site.seen if s.path == path]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/admin",
        "http://[::1]:{port}/admin",
        "http://10.0.0.1/admin",
        "http://169.254.169.254/admin",
        "http://intranet.example/admin",
        "http://router.example/admin",
        "http://metadata.example/admin",
        "http://cgnat.example/admin",
        "http://split.example/admin",  # one private address among public ones is enough
        "http://mapped.example/admin",  # IPv4-mapped IPv6 loopback
        "http://ula.example/admin",  # IPv6 unique local
        "http://nat64.example/admin",
        "http://sixtofour.example/admin",
        "http://compatible.example/admin",
        "http://translated.example/admin",
        "http://[64:ff9b::a9fe:a9fe]/admin",
        "http://[2002:a9fe:a9fe::1]/admin",
        "http://[::a9fe:a9fe]/admin",
        "http://[::ffff:0:7f00:1]/admin",
    ],
)
def test_a_public_page_cannot_redirect_into_a_private_network(site: Site, target: str) -> None:
    site.route("/promo", Reply(302, headers={"Location": target.format(port=site.port)}))
    site.route("/admin", html("the router's admin page"))

    with pytest.raises(FetchRedirect, match=r"a private address|a cloud metadata address"):
        fetch_via_internet(site, "http://promo.example/promo")

    assert site.count("/admin") == 0
    assert hosts_asked(site, "/promo") == ["promo.example"]


def test_a_public_page_may_redirect_to_another_public_host(site: Site) -> None:
    site.route("/promo", Reply(301, headers={"Location": "https://cdn.example/ru/promo"}))
    site.route("/ru/promo", html("moved"))

    page = fetch_via_internet(site, "http://promo.example/promo")

    assert (page.text, page.url) == ("moved", "https://cdn.example/ru/promo")
    assert hosts_asked(site, "/ru/promo") == ["cdn.example"]


def test_a_page_fetched_without_redirects_costs_one_lookup_of_ours(site: Site) -> None:
    # One, to refuse cloud metadata, which no URL may reach (private or not).
    site.route("/promo", html("ok"))
    LOOKED_UP.clear()

    assert fetch_via_internet(site, "http://promo.example/promo").text == "ok"
    assert LOOKED_UP == ["promo.example"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.example/latest/meta-data/",
        "http://aws-v6.example/latest/meta-data/",
        "http://alibaba.example/latest/meta-data/",
        "http://nat64.example/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
def test_a_url_on_cloud_metadata_is_refused_without_any_request(site: Site, url: str) -> None:
    site.route("/latest/meta-data/", html("iam credentials"))

    with pytest.raises(FetchForbidden, match="a cloud metadata address"):
        fetch_via_internet(site, url)

    assert site.seen == []  # not even robots.txt


@pytest.mark.parametrize(
    "target", ["http://metadata.example/x", "http://[fd00:ec2::254]/x", "http://nat64.example/x"]
)
def test_a_page_on_a_private_address_cannot_redirect_to_cloud_metadata(
    site: Site, target: str
) -> None:
    site.route("/promo", Reply(302, headers={"Location": target}))
    site.route("/x", html("iam credentials"))

    with pytest.raises(FetchRedirect, match="a cloud metadata address"):
        fetch_via_internet(site, site.url("/promo"))

    assert site.count("/x") == 0


def test_a_page_on_a_private_address_may_redirect_within_private_networks(site: Site) -> None:
    # The user pointed a source at their own network: that is their choice to make.
    site.route("/promo", Reply(302, headers={"Location": "http://intranet.example/list"}))
    site.route("/list", html("lan page"))

    page = fetch_via_internet(site, site.url("/promo"))

    assert page.text == "lan page"
    assert hosts_asked(site, "/list") == ["intranet.example"]


def test_a_public_sites_robots_txt_cannot_redirect_into_a_private_network(site: Site) -> None:
    site.route("/robots.txt", Reply(301, headers={"Location": "http://intranet.example/rules"}))
    site.route("/rules", Reply(body=b"User-agent: *\nDisallow: /\n"))
    site.route("/promo", html("ok"))

    assert fetch_via_internet(site, "http://promo.example/promo").text == "ok"
    assert site.count("/rules") == 0  # not fetched, so read as "no robots.txt"


# -- size, encoding, binary -----------------------------------------------------------


@dataclass
class Measured:
    error: Exception | None = None
    bytes_received: int = 0
    peak_memory: int = 0


def measure(site: Site, path: str, **overrides: Any) -> Measured:
    """Fetch ``path`` and measure it: what was read off the wire and the peak of
    Python memory, traced after a warm-up fetch so that first-use imports don't count."""
    site.route("/warm-up", html("ok"))
    measured = Measured()

    async def job(f: Fetcher) -> None:
        await f.fetch(site.url("/warm-up"))
        before = f.bytes_received
        tracemalloc.start()
        try:
            await f.fetch(site.url(path))
        except FetchError as exc:
            measured.error = exc
        finally:
            measured.peak_memory = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            measured.bytes_received = f.bytes_received - before

    run(job, **overrides)
    return measured


def test_a_50_mb_body_is_cut_at_max_bytes_in_bounded_memory(site: Site) -> None:
    chunk = b"<p>" + b"x" * (64 * KIB - 7) + b"</p>"
    site.route("/huge", Reply(headers={"Content-Type": "text/html"}, stream=(chunk, 800)))

    measured = measure(site, "/huge", max_bytes=1 * MIB)

    assert isinstance(measured.error, FetchTooLarge)
    assert measured.bytes_received <= 1 * MIB + 64 * KIB  # the cap and at most one chunk
    assert measured.peak_memory < 3 * MIB
    assert site.sent < 25 * MIB  # cut off long before 50 MB (the rest sat in socket buffers)


def test_a_declared_length_over_the_cap_is_refused_before_reading(site: Site) -> None:
    headers = {"Content-Type": "text/html", "Content-Length": str(50 * MIB)}
    site.route("/huge", Reply(headers=headers, stream=(b"x" * 64 * KIB, 800)))

    measured = measure(site, "/huge", max_bytes=1 * MIB)

    assert isinstance(measured.error, FetchTooLarge)
    assert measured.bytes_received == 0


def test_a_gzip_bomb_is_cut_at_max_bytes_in_bounded_memory(site: Site) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    bomb = b"".join(packer.compress(zeros) for _ in range(50)) + packer.flush()
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    site.route("/bomb", Reply(body=bomb, headers=headers))

    measured = measure(site, "/bomb", max_bytes=1 * MIB)

    assert len(bomb) < 100 * KIB  # 50 MB once inflated
    assert isinstance(measured.error, FetchTooLarge)
    assert measured.peak_memory < 3 * MIB


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw, as some servers send
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_compressed_pages_are_decompressed(
    site: Site, coding: str, pack: Callable[[bytes], bytes]
) -> None:
    body = pack("<p>Тариф 2 990 ₸</p>".encode())
    site.route("/promo", Reply(body=body, headers={"Content-Encoding": coding}))

    assert fetch(site.url("/promo")).text == "<p>Тариф 2 990 ₸</p>"
    assert site.last("/promo").headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, br", "compress"])
def test_a_coding_we_did_not_ask_for_is_a_clear_fetch_error(site: Site, coding: str) -> None:
    # We ask for gzip and deflate only, the codings we can inflate in bounded steps; a
    # server sending brotli or zstd anyway gets an error naming it, not garbage text.
    site.route("/promo", Reply(body=b"\x8b\x03\x80binary", headers={"Content-Encoding": coding}))

    with pytest.raises(FetchError, match="unsupported Content-Encoding"):
        fetch(site.url("/promo"))
    assert site.count("/promo") == 1  # not retried: it would answer the same


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "image/png", "application/zip"]
)
def test_binary_content_types_are_refused(site: Site, content_type: str) -> None:
    site.route(
        "/file",
        Reply(body=random.Random(1).randbytes(4096), headers={"Content-Type": content_type}),
    )

    with pytest.raises(FetchError, match="not a page"):
        fetch(site.url("/file"))


def test_binary_garbage_without_a_content_type_is_refused(site: Site) -> None:
    site.route("/file", Reply(body=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(500)))

    with pytest.raises(FetchError, match="looks binary"):
        fetch(site.url("/file"))


def test_cp1251_declared_in_the_header_is_decoded(site: Site) -> None:
    site.route(
        "/promo",
        html(
            "<p>Акция до 31 декабря</p>",
            "cp1251",
            **{"Content-Type": "text/html; charset=windows-1251"},
        ),
    )

    assert fetch(site.url("/promo")).text == "<p>Акция до 31 декабря</p>"


def test_cp1251_declared_only_in_meta_is_decoded(site: Site) -> None:
    page = '<html><head><meta charset="windows-1251"></head><body>Акция</body></html>'
    site.route("/promo", html(page, "cp1251"))

    assert fetch(site.url("/promo")).text == page


def test_invalid_utf8_without_a_declaration_becomes_replacement_characters(site: Site) -> None:
    site.route("/promo", Reply(body=b"<p>\xff\xfe\xc3(</p>"))

    text = fetch(site.url("/promo")).text

    assert text is not None
    assert text.startswith("<p>") and text.endswith("</p>")
    assert "\ufffd" in text


CP1251 = "Акция до 31.12.2026".encode("cp1251")


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (CP1251, "text/html; charset=windows-1251", "Акция до 31.12.2026"),
        (CP1251, 'text/html; charset="CP1251"', "Акция до 31.12.2026"),
        (
            b'<meta charset="windows-1251">' + CP1251,
            "text/html",
            '<meta charset="windows-1251">Акция до 31.12.2026',
        ),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">' + CP1251,
            None,
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
            "Акция до 31.12.2026",
        ),
        (
            b'<?xml version="1.0" encoding="windows-1251"?><rss>' + CP1251,
            "application/rss+xml",
            '<?xml version="1.0" encoding="windows-1251"?><rss>Акция до 31.12.2026',
        ),
        ("\ufeffАкция".encode(), "text/html; charset=windows-1251", "Акция"),  # BOM wins
        ("\ufeffАкция".encode("utf-16-le"), None, "Акция"),
        ("\ufeffАкция".encode("utf-16-be"), None, "Акция"),
        ("Акция".encode(), "text/html; charset=x-no-such-charset", "Акция"),
        ("Акция".encode(), "text/html; charset=base64", "Акция"),  # a codec, not a charset
        ("Акция".encode(), "text/html; charset=undefined", "Акция"),
        (b"caf\xe9", "text/html; charset=iso-8859-1", "café"),  # latin-1 means cp1252
        (b"\x93quoted\x94", "text/html; charset=latin1", "\u201cquoted\u201d"),
        (b"<p>\xff</p>", None, "<p>\ufffd</p>"),
        (b"", None, ""),
    ],
    ids=[
        "header",
        "header-quoted-alias",
        "meta-charset",
        "meta-http-equiv",
        "xml-declaration",
        "utf8-bom-beats-header",
        "utf16le-bom",
        "utf16be-bom",
        "unknown-label",
        "non-text-codec",
        "undefined-codec",
        "latin1-as-cp1252",
        "latin1-smart-quotes",
        "bad-utf8",
        "empty",
    ],
)
def test_decode_text(body: bytes, content_type: str | None, expected: str) -> None:
    assert decode_text(body, content_type) == expected


# -- robots.txt -----------------------------------------------------------------------


def test_a_robots_disallow_is_forbidden_and_the_page_never_requested(site: Site) -> None:
    site.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
    site.route("/private/promo", html("secret"))
    site.route("/promo", html("ok"))

    async def job(f: Fetcher) -> str | None:
        with pytest.raises(FetchForbidden):
            await f.fetch(site.url("/private/promo"))
        return (await f.fetch(site.url("/promo"))).text

    assert run(job) == "ok"
    assert site.paths() == ["/robots.txt", "/promo"]  # robots.txt once, per Fetcher


def test_a_robots_group_for_our_product_token_applies(site: Site) -> None:
    site.route(
        "/robots.txt",
        Reply(body=b"User-agent: *\nAllow: /\n\nUser-agent: SIMWatcher\nDisallow: /\n"),
    )

    with pytest.raises(FetchForbidden):
        fetch(site.url("/promo"))
    assert site.count("/promo") == 0


def test_a_missing_robots_txt_allows_everything(site: Site) -> None:
    site.route("/promo", html("ok"))

    assert fetch(site.url("/promo")).text == "ok"
    assert site.paths() == ["/robots.txt", "/promo"]


def test_a_robots_txt_5xx_disallows_everything_as_rfc_9309_says(site: Site) -> None:
    site.route("/robots.txt", Reply(503))
    site.route("/promo", html("ok"))

    with pytest.raises(FetchForbidden, match="answered 503"):
        fetch(site.url("/promo"), retries=1)

    assert site.paths() == ["/robots.txt", "/robots.txt"]


def test_a_robots_txt_redirect_is_followed(site: Site) -> None:
    site.route("/robots.txt", Reply(301, headers={"Location": "/static/robots.txt"}))
    site.route("/static/robots.txt", Reply(body=b"User-agent: *\nDisallow: /promo\n"))

    with pytest.raises(FetchForbidden, match="disallows"):
        fetch(site.url("/promo"))
    assert site.count("/promo") == 0


def test_a_robots_txt_redirect_off_http_counts_as_no_robots_txt(site: Site) -> None:
    site.route("/robots.txt", Reply(301, headers={"Location": "javascript:alert(1)"}))
    site.route("/promo", html("ok"))

    assert fetch(site.url("/promo")).text == "ok"


def test_robots_txt_is_fetched_again_after_its_ttl(site: Site) -> None:
    site.route("/promo", html("ok"))
    clock = FakeTime()

    async def job(f: Fetcher) -> None:
        await f.fetch(site.url("/promo"))
        await f.fetch(site.url("/promo"))
        clock.now += 24 * 3600 + 1
        await f.fetch(site.url("/promo"))

    run(job, clock)
    assert site.paths() == ["/robots.txt", "/promo", "/promo", "/robots.txt", "/promo"]


def test_a_redirect_to_a_disallowed_path_is_forbidden(site: Site) -> None:
    site.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
    site.route("/promo", Reply(302, headers={"Location": "/private/x"}))

    with pytest.raises(FetchForbidden):
        fetch(site.url("/promo"))
    assert site.count("/private/x") == 0


def test_robots_txt_is_not_asked_when_respect_robots_is_off(site: Site) -> None:
    site.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /\n"))
    site.route("/promo", html("ok"))

    assert fetch(site.url("/promo"), respect_robots=False).text == "ok"
    assert site.paths() == ["/promo"]


def test_a_robots_crawl_delay_widens_the_gap(site: Site) -> None:
    site.route("/robots.txt", Reply(body=b"User-agent: *\nCrawl-delay: 5\n"))
    site.route("/promo", html("ok"))
    clock = FakeTime()

    async def job(f: Fetcher) -> None:
        await f.fetch(site.url("/promo"))

    run(job, clock, min_gap=1.0)
    assert clock.sleeps == [5.0]  # between robots.txt and the page


# -- politeness: one request at a time per host ---------------------------------------


def test_requests_to_one_host_never_overlap_and_keep_the_gap(site: Site, gauge: Gauge) -> None:
    site.route("/a", Reply(delay=0.2, body=b"a"))
    site.route("/b", Reply(delay=0.2, body=b"b"))
    clock = FakeTime()
    sent_at: dict[str, float] = {}

    async def stamp(request: httpx.Request) -> None:
        sent_at[request.url.path] = clock.monotonic()

    async def main() -> httpx.AsyncClient:
        async with httpx.AsyncClient(trust_env=False, event_hooks={"request": [stamp]}) as client:
            settings = dataclasses.replace(BASE, min_gap=2.0, respect_robots=False)
            async with Fetcher(
                settings, client=client, monotonic=clock.monotonic, sleep=clock.sleep
            ) as f:
                await asyncio.gather(f.fetch(site.url("/a")), f.fetch(site.url("/b")))
            assert not client.is_closed  # a client handed in is left to its owner
            return client

    client = asyncio.run(main())

    assert client.is_closed
    assert gauge.peak == 1
    assert abs(sent_at["/a"] - sent_at["/b"]) == 2.0
    assert clock.sleeps == [2.0]


def test_different_hosts_are_fetched_concurrently(
    new_site: Callable[[], Site], gauge: Gauge
) -> None:
    # Per-host means per host:port, so two loopback ports are two hosts.
    one, two = new_site(), new_site()
    for s in (one, two):
        s.route("/slow", Reply(delay=0.3, body=b"ok"))
    clock = FakeTime()

    async def job(f: Fetcher) -> tuple[Page, Page]:
        return await asyncio.gather(f.fetch(one.url("/slow")), f.fetch(two.url("/slow")))

    pages = run(job, clock, min_gap=2.0, respect_robots=False)

    assert [p.text for p in pages] == ["ok", "ok"]
    assert gauge.peak == 2  # both were in flight at once
    assert clock.sleeps == []  # neither waited for the other's gap


# -- proxies --------------------------------------------------------------------------


def test_the_proxy_setting_sends_requests_through_the_proxy(new_site: Callable[[], Site]) -> None:
    proxy = new_site()
    proxy.route("/promo", html("via proxy"))
    target = f"http://127.0.0.1:{free_port()}/promo"  # nothing listens there

    page = fetch(target, proxy=proxy.url(""))

    assert page.text == "via proxy"
    assert [s.target for s in proxy.seen][-1] == target  # absolute-form: a proxy request


def test_env_proxies_apply_only_with_trust_env(
    new_site: Callable[[], Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, origin = new_site(), new_site()
    for s in (proxy, origin):
        s.route("/promo", html("ok"))
    for name in ("HTTP_PROXY", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url(""))

    fetch(origin.url("/promo"))  # BASE has trust_env=False
    assert (proxy.count("/promo"), origin.count("/promo")) == (0, 1)

    fetch(origin.url("/promo"), trust_env=True)
    assert (proxy.count("/promo"), origin.count("/promo")) == (1, 1)


# -- settings, logging, jitter --------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"max_bytes": 0},
        {"retries": -1},
        {"max_redirects": True},
        {"connect_timeout": 0},
        {"read_timeout": -1.0},
        {"min_gap": float("nan")},
        {"max_wait": float("inf")},
        {"user_agent": "SIMWatcher\r\nX-Evil: 1"},
        {"user_agent": " "},
        {"proxy": "ftp://127.0.0.1:21"},
        {"proxy": "http://"},
    ],
)
def test_settings_are_validated_on_construction(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        FetchSettings(**bad)


def test_one_info_line_per_request_and_never_the_query(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.route("/promo", html("ok"))
    caplog.set_level(logging.DEBUG, logger="scrapers._fetch")

    fetch(site.url("/promo?token=s3cret"))

    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2  # robots.txt and the page
    assert lines[1].startswith(f"GET 127.0.0.1:{site.port}/promo -> 200, 2 bytes")
    assert not any("s3cret" in r.getMessage() for r in caplog.records)


def test_jittered_stays_within_the_spread_and_varies() -> None:
    every = timedelta(hours=6)
    values = {jittered(every, random.Random(seed)) for seed in range(200)}

    assert all(every * 0.9 <= v <= every * 1.1 for v in values)
    assert len(values) > 150
    assert min(values) < every * 0.95 and max(values) > every * 1.05


def test_jittered_is_reproducible_and_zero_spread_is_exact() -> None:
    every = timedelta(minutes=5)

    assert jittered(every, random.Random(7)) == jittered(every, random.Random(7))
    assert jittered(every, random.Random(7), spread=0) == every


@pytest.mark.parametrize(
    ("every", "spread"),
    [(timedelta(hours=1), 1.0), (timedelta(hours=1), -0.1), (timedelta(-1), 0.1)],
)
def test_jittered_rejects_nonsense(every: timedelta, spread: float) -> None:
    with pytest.raises(ValueError, match="must"):
        jittered(every, random.Random(1), spread)


def test_a_page_mostly_undecodable_in_its_declared_charset_is_refused(site: Site) -> None:
    page = "<h2>Роуминг по миру</h2><p>Подключите eSIM бесплатно</p>".encode("cp1251")
    site.route("/promo", Reply(body=page, headers={"Content-Type": "text/html; charset=utf-8"}))

    with pytest.raises(FetchError, match=r"not readable text: .* \(a wrong charset\?\)"):
        fetch(site.url("/promo"))
