"""The guarding proxy on its own, over real sockets on loopback.

The browser's tests (test_browser.py) show it under Chromium; here each of its answers
is pinned down: forwarding, tunnels, refusals, and the address it connects to being
the one it judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from scrapers._proxy import GuardProxy, Judge, _Request

T = TypeVar("T")


def run(job: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(job(), 10))


class Origin:
    """A loopback server that records what it was sent and answers ``reply``."""

    def __init__(self, reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") -> None:
        self.reply = reply
        self.received: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Origin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readuntil(b"\r\n\r\n")
        self.received.append(data)
        writer.write(self.reply)
        await writer.drain()
        writer.close()


def judge_by(table: dict[str, list[str] | str]) -> Judge:
    """A judge from a table: host -> the addresses it may use, or why it may not."""

    async def judge(host: str, port: int) -> tuple[list[str], str | None]:
        verdict = table.get(host, "unknown host")
        return ([], verdict) if isinstance(verdict, str) else (verdict, None)

    return judge


async def exchange(proxy: GuardProxy, request: bytes) -> bytes:
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


def test_a_plain_http_request_is_forwarded_in_origin_form_and_closed_after_it() -> None:
    async def job() -> tuple[bytes, list[bytes]]:
        async with Origin() as origin, GuardProxy(judge_by({"shop.test": ["127.0.0.1"]})) as proxy:
            answer = await exchange(
                proxy,
                f"GET http://shop.test:{origin.port}/offers?page=2 HTTP/1.1\r\n"
                f"Host: shop.test:{origin.port}\r\nProxy-Connection: keep-alive\r\n"
                "Proxy-Authorization: Basic c2VjcmV0\r\nAccept: text/html\r\n\r\n".encode(),
            )
            return answer, origin.received

    answer, received = run(job)

    assert answer.endswith(b"\r\n\r\nok")
    head = received[0].decode()
    assert head.startswith("GET /offers?page=2 HTTP/1.1\r\n")
    assert "Accept: text/html" in head and "Connection: close" in head
    assert "Proxy-" not in head


def test_a_refused_host_is_never_connected_to() -> None:
    dialed: list[str] = []

    async def dial(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        dialed.append(address)
        raise AssertionError("a refused host must not be dialled")

    async def job() -> tuple[bytes, bytes, list[str]]:
        table: dict[str, list[str] | str] = {"router.test": "a private address (192.168.0.1)"}
        async with GuardProxy(judge_by(table), dial=dial) as proxy:
            tunnel = await exchange(proxy, b"CONNECT router.test:443 HTTP/1.1\r\n\r\n")
            plain = await exchange(proxy, b"GET http://router.test/admin HTTP/1.1\r\n\r\n")
            return tunnel, plain, proxy.refused

    tunnel, plain, refused = run(job)

    assert tunnel.startswith(b"HTTP/1.1 403 ") and plain.startswith(b"HTTP/1.1 403 ")
    assert dialed == []
    assert refused == ["router.test:443", "router.test:80"]


def test_a_tunnel_carries_bytes_both_ways_to_the_judged_address() -> None:
    dialed: list[tuple[str, int]] = []

    async def dial(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        dialed.append((address, port))
        return await asyncio.open_connection("127.0.0.1", port)

    async def job() -> tuple[bytes, list[bytes]]:
        origin = Origin(reply=b"tls bytes back")
        async with origin, GuardProxy(judge_by({"shop.test": ["93.184.215.14"]}), dial=dial) as p:
            host, port = p.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"CONNECT shop.test:{origin.port} HTTP/1.1\r\n\r\n".encode())
            established = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"tls bytes out\r\n\r\n")
            back = await reader.read()
            writer.close()
            return established + back, origin.received

    answer, received = run(job)

    assert answer == b"HTTP/1.1 200 Connection Established\r\n\r\ntls bytes back"
    assert received == [b"tls bytes out\r\n\r\n"]
    assert dialed[0][0] == "93.184.215.14"  # the address judged, not a new lookup


def test_the_next_judged_address_is_tried_and_none_answering_is_a_bad_gateway() -> None:
    dialed: list[str] = []

    async def dial(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        dialed.append(address)
        raise ConnectionRefusedError(address)

    async def job() -> bytes:
        table: dict[str, list[str] | str] = {"shop.test": ["2a04:4e42::313", "151.101.1.57"]}
        async with GuardProxy(judge_by(table), dial=dial) as proxy:
            return await exchange(proxy, b"CONNECT shop.test:443 HTTP/1.1\r\n\r\n")

    assert run(job).startswith(b"HTTP/1.1 502 ")
    assert dialed == ["2a04:4e42::313", "151.101.1.57"]


def test_what_is_not_a_proxy_request_is_a_bad_request() -> None:
    async def job() -> list[bytes]:
        async with GuardProxy(judge_by({})) as proxy:
            return [
                await exchange(proxy, request)
                for request in (
                    b"GET /relative HTTP/1.1\r\n\r\n",
                    b"GET ftp://shop.test/x HTTP/1.1\r\n\r\n",
                    b"CONNECT shop.test HTTP/1.1\r\n\r\n",
                    b"CONNECT shop.test:99999 HTTP/1.1\r\n\r\n",
                    b"nonsense\r\n\r\n",
                )
            ]

    assert all(answer.startswith(b"HTTP/1.1 400 ") for answer in run(job))


def test_closing_the_proxy_cuts_an_open_tunnel() -> None:
    async def job() -> bytes:
        async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await r.read()  # never answers
            finally:
                w.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = GuardProxy(judge_by({"shop.test": ["127.0.0.1"]}))
        await proxy.__aenter__()
        host, proxy_port = proxy.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(proxy_port))
        writer.write(f"CONNECT shop.test:{port} HTTP/1.1\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        await proxy.aclose()
        rest = await reader.read()  # ends instead of hanging
        writer.close()
        server.close()
        await server.wait_closed()
        return rest

    assert run(job) == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_request_head_parses_or_is_refused_without_raising(head: bytes) -> None:
    request = _Request.parse(head + b"\r\n\r\n")

    if request is not None:
        assert request.host and 0 < request.port < 65536
        assert request.method == b"CONNECT" or request.target.startswith(b"/")
