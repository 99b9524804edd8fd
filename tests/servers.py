"""Real servers on loopback for tests: a webhook receiver, an SMTP sink, a promotion page."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    path: str
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """Accepts Apprise ``json://`` posts; can be told to fail, and counts every request."""

    received: list[Received] = field(default_factory=list)
    requests: int = 0
    status: int = 200
    delay: float = 0.0
    on_post: Callable[[], None] | None = None  # runs while a request waits for its answer
    peak: int = 0  # the most requests it was answering at once
    started: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, path)
    _open: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with receiver._lock:
                    receiver._open += 1
                    receiver.peak = max(receiver.peak, receiver._open)
                    receiver.started.append((time.monotonic(), self.path))
                try:
                    self._answer()
                finally:
                    with receiver._lock:
                        receiver._open -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.on_post is not None:
                    receiver.on_post()
                with receiver._lock:
                    receiver.requests += 1
                    status = receiver.status
                    if len(body) < length or not body:
                        # The sender died mid-request (a test kills it): nothing arrived.
                        status = 400
                    elif status < 300:
                        receiver.received.append(Received(self.path, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # A deliverer connects with all its workers at once: a real service's accept
        # queue, not the standard library's 5 (whose overflow is refused connections).
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256})
        self._server = server_class(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def titles(self) -> list[str]:
        with self._lock:
            return [r.payload.get("title", "") for r in self.received]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.fail = False
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds each message takes to be accepted
        self.peak = 0  # the most messages it was accepting at once
        self._open = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self._open += 1
            self.peak = max(self.peak, self._open)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            with self.lock:
                self._open -= 1
        if self.fail:
            return "451 try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self._handler = _Sink()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=free_port())

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def url(self, to: str = "alice@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=watcher@example.com&to={to}&mode=insecure"

    @property
    def fail(self) -> bool:
        return self._handler.fail

    @fail.setter
    def fail(self, value: bool) -> None:
        self._handler.fail = value

    @property
    def handler(self) -> _Sink:
        return self._handler

    def subjects(self) -> list[str]:
        with self._handler.lock:
            return [str(m["Subject"]) for m in self._handler.messages]

    def bodies(self) -> list[str]:
        with self._handler.lock:
            out = []
            for m in self._handler.messages:
                part = m.get_body(preferencelist=("plain", "html"))
                out.append(part.get_content() if part else "")
            return out

    def stop(self) -> None:
        self._controller.stop()


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    """Poll a condition that another process or thread will make true (real I/O, not time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


CARD = (
    '<div class="card"><h2>{title}</h2><a href="{href}">more</a>'
    '<span class="price">{price}</span><p class="date">{date}</p></div>'
)


class PromoSite:
    """Serves one page of promotion cards that a test changes between scrapes.

    ``cards`` are dicts with title, href, price and optionally date. ``status`` makes
    the page answer with that error code instead; ``etags`` answers a matching
    If-None-Match with 304; ``robots`` is served as /robots.txt (404 when None).
    ``raw`` = (status, headers, body) replaces the page with exactly that answer, and
    ``delay`` stalls every page answer, for hostile-server tests.
    """

    def __init__(self) -> None:
        self.cards: list[dict[str, str]] = []
        self.etags = False
        self.status = 200
        self.robots: str | None = None
        self.not_modified = 0
        self.hits = 0  # requests for the page
        self.raw: tuple[int, dict[str, str], bytes] | None = None
        self.delay = 0.0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/robots.txt" and site.robots is not None:
                    self._answer(200, site.robots.encode(), "text/plain")
                    return
                if self.path != "/offers":
                    self._answer(404, b"", "text/plain")
                    return
                site.hits += 1
                if site.delay:
                    time.sleep(site.delay)
                if site.raw is not None:
                    status, headers, body = site.raw
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if site.status != 200:
                    self._answer(site.status, b"unavailable", "text/plain")
                    return
                cards = "".join(CARD.format(**{"date": "", **c}) for c in site.cards)
                data = f"<html><body>{cards}</body></html>".encode()
                etag = f'"{hashlib.sha1(data).hexdigest()}"'
                if site.etags and self.headers.get("If-None-Match") == etag:
                    site.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self._answer(200, data, "text/html; charset=utf-8", etag if site.etags else None)

            def _answer(self, status: int, data: bytes, kind: str, etag: str | None = None) -> None:
                self.send_response(status)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/offers"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
