"""A guarding forward proxy between the browser and the network, for one rendered page.

Playwright's routes and the DevTools ``Fetch`` domain see requests by URL, before the
browser looks the host up, and not every request of a cross-site frame or a worker. A
proxy sees every connection the browser opens, redirects and all frames included, and
it is the one that looks the host up: it judges the addresses it resolved and connects
to one of those very addresses. So neither a redirect hop out of sight of the routes
nor a DNS answer that changes between the check and the connection (DNS rebinding)
reaches a private address.

It speaks what Chromium sends a plain HTTP proxy: ``CONNECT host:port`` for https
(tunnelled untouched, so TLS stays end to end) and absolute-form requests for http
(forwarded in origin form, one request per connection). It listens on 127.0.0.1 only
and lives as long as one page's render.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

__all__ = ["Dial", "GuardProxy"]

log = logging.getLogger(__name__)

# (address, port) -> a connection to exactly that address.
Dial = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
# (host, port) -> (the addresses that may be connected to, in order; why not, or None).
Judge = Callable[[str, int], Awaitable[tuple[list[str], str | None]]]

_HEAD_LIMIT = 64 * 1024  # a request head longer than this is not a browser's
_CHUNK = 64 * 1024
_HOP_HEADERS = frozenset(
    {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive", b"te"}
)


async def open_tcp(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(address, port)


class GuardProxy:
    """``async with GuardProxy(judge) as proxy:`` and point the browser at ``proxy.url``.

    ``judge`` resolves a host and says which of its addresses may be used (or why
    none may); ``dial`` connects to one address (tests send it to loopback);
    ``connect_timeout`` bounds each connection attempt. Closing the proxy cuts every
    connection still open.
    """

    def __init__(
        self, judge: Judge, *, dial: Dial = open_tcp, connect_timeout: float = 10.0
    ) -> None:
        self._judge = judge
        self._dial = dial
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.refused: list[str] = []  # host:port of each connection refused, for the log

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> GuardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception, TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            request = _Request.parse(head)
            if request is None:
                await _answer(writer, 400, "Bad Request")
                return
            addresses, refusal = await self._judge(request.host, request.port)
            if refusal is not None:
                self.refused.append(f"{request.host}:{request.port}")
                log.debug("proxy refused %s:%d: %s", request.host, request.port, refusal)
                await _answer(writer, 403, "Forbidden")
                return
            connection = await self._connect(addresses, request.port)
            if connection is None:
                await _answer(writer, 502, "Bad Gateway")
                return
            upstream_reader, upstream = connection
            if request.method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                upstream.write(request.origin_form())
            await _pipe_both(reader, writer, upstream_reader, upstream)
        except (ConnectionError, OSError) as exc:
            log.debug("proxy connection ended: %s", exc)
        finally:
            self._handlers.discard(handler)
            for end in (upstream, writer):
                if end is not None:
                    end.close()

    async def _connect(
        self, addresses: list[str], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the first of ``addresses`` that answers: the very addresses
        that were judged, never a fresh lookup."""
        for address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    return await self._dial(address, port)
            except (OSError, TimeoutError) as exc:
                log.debug("proxy could not connect to %s:%d: %s", address, port, exc)
        return None


class _Request:
    """A request head as a browser sends it to an HTTP proxy."""

    def __init__(self, method: bytes, host: str, port: int, target: bytes, rest: bytes) -> None:
        self.method = method
        self.host = host
        self.port = port
        self.target = target  # origin form: /path?query
        self.rest = rest  # the header lines after the request line

    @classmethod
    def parse(cls, head: bytes) -> _Request | None:
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return None
        method, target, _version = parts
        try:
            text = target.decode("ascii")
        except UnicodeDecodeError:
            return None
        if method == b"CONNECT":
            host, colon, port = text.rpartition(":")
            if not colon or not port.isdigit():
                return None
            return cls._checked(method, host.strip("[]"), int(port), b"", rest)
        url = urlsplit(text)
        if url.scheme != "http" or not url.hostname:
            return None  # http only: https arrives as CONNECT
        try:
            port_number = url.port or 80
        except ValueError:
            return None
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        return cls._checked(method, url.hostname, port_number, path.encode("ascii"), rest)

    @classmethod
    def _checked(
        cls, method: bytes, host: str, port: int, target: bytes, rest: bytes
    ) -> _Request | None:
        if not host or not 0 < port < 65536:
            return None
        return cls(method, host, port, target, rest)

    def origin_form(self) -> bytes:
        """The request as the origin server expects it, closed after one response."""
        kept = [
            line
            for line in self.rest.split(b"\r\n")
            if line and line.partition(b":")[0].strip().lower() not in _HOP_HEADERS
        ]
        lines = [b" ".join((self.method, self.target, b"HTTP/1.1")), *kept, b"Connection: close"]
        return b"\r\n".join(lines) + b"\r\n\r\n"


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


async def _pipe_both(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side is done."""
    tasks = [
        asyncio.create_task(_pipe(client_reader, upstream_writer)),
        asyncio.create_task(_pipe(upstream_reader, client_writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
