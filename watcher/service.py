"""What the person on call sees of a running daemon: health and metrics over HTTP.

``watcher run --http HOST:PORT`` serves, from a thread beside the scheduler:

* ``/healthz``: 200 and a JSON body when the database answers and a planning pass
  finished within ``max_age`` seconds; 503 and the reason otherwise.
* ``/metrics``: Prometheus text (prometheus-client), every name starting ``watcher_``.
  The daemon's own counters (messages by outcome, scrapes, reloads, planning time)
  count what this process did; the gauges read from the database (outbox depth, the
  oldest pending message, failing sources, live replicas) say what all replicas share.

Requests are logged at DEBUG without their query string: a calendar token is a secret.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from watcher import __version__
from watcher.clock import Clock
from watcher.db.engine import Database
from watcher.db.models import OutboxRow, SourceRow
from watcher.heartbeat import PLANNER, REPLICA_LIVE, last_beat, live_replicas

if TYPE_CHECKING:
    from watcher.delivery import DeliveryState

__all__ = ["Health", "HttpService", "Metrics", "check_health", "parse_listen"]

log = logging.getLogger(__name__)

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_MAX_AGE = 180  # seconds since the last planning pass, as `watcher health`


# --- health -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str
    last_plan: datetime | None = None
    age_seconds: float | None = None

    def body(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "reason": self.reason,
            "last_planning_pass": self.last_plan.isoformat() if self.last_plan else None,
            "age_seconds": round(self.age_seconds, 1) if self.age_seconds is not None else None,
        }


def check_health(database: Database, clock: Clock, max_age: float = DEFAULT_MAX_AGE) -> Health:
    """Healthy when the database answers and a planning pass finished within ``max_age``."""
    try:
        with database.session() as session:
            last = last_beat(session, PLANNER)  # a query: it also proves the database answers
    except Exception as exc:  # any database failure is the answer, not a crash
        return Health(False, f"the database does not answer: {type(exc).__name__}")
    if last is None:
        return Health(False, "no planning pass has finished yet")
    age = (clock.now() - last).total_seconds()
    if age > max_age:
        return Health(False, f"the last planning pass finished {age:.0f} s ago", last, age)
    return Health(True, "planning and the database are working", last, age)


# --- metrics ------------------------------------------------------------------------------


class Metrics:
    """The daemon's metrics, in a registry of its own (so tests can make several)."""

    def __init__(self, database: Callable[[], Database], clock: Clock) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "watcher_messages",
            "Messages handed to a channel, by kind, channel and outcome (sent, failed, dead)",
            ["kind", "channel", "outcome"],
            registry=self.registry,
        )
        self.planning = Histogram(
            "watcher_planning_duration_seconds",
            "Time of one planning pass",
            registry=self.registry,
        )
        self.scrapes = Counter(
            "watcher_scrapes",
            "Promotion source scrapes, by source and result (ok, not_modified, error)",
            ["source", "result"],
            registry=self.registry,
        )
        self.scrape_duration = Histogram(
            "watcher_scrape_duration_seconds",
            "Time to fetch and read one promotion source",
            ["source"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.reloads = Counter(
            "watcher_config_reloads",
            "Config file changes taken up (accepted) or refused as invalid (rejected)",
            ["result"],
            registry=self.registry,
        )
        Info("watcher_build", "The running version", registry=self.registry).info(
            {"version": __version__}
        )
        self.registry.register(_DatabaseCollector(database, clock))
        self._delivery: Callable[[], DeliveryState] | None = None
        self.registry.register(_DeliveryCollector(lambda: self._delivery))

    def watch_delivery(self, state: Callable[[], DeliveryState]) -> None:
        """Report what ``state`` says delivery is doing (the daemon's Deliverer)."""
        self._delivery = state

    def message(self, kind: str, channel: str, outcome: str) -> None:
        self.messages.labels(kind=kind, channel=channel, outcome=outcome).inc()

    def scraped(self, source: str, result: str, seconds: float) -> None:
        self.scrapes.labels(source=source, result=result).inc()
        self.scrape_duration.labels(source=source).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _DeliveryCollector(Collector):
    """Sends in flight and claimed messages waiting, by what holds them back: when the
    outbox grows, whether a service's limit (and which kind) or the workers are why."""

    def __init__(self, state: Callable[[], Callable[[], DeliveryState] | None]) -> None:
        self._state = state

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        read = self._state()
        if read is None:
            return
        state = read()
        flying = GaugeMetricFamily("watcher_delivery_in_flight", "Messages being sent now")
        flying.add_metric([], state.in_flight)
        waiting = GaugeMetricFamily(
            "watcher_delivery_waiting",
            "Claimed messages waiting their turn, by what holds them back (a kind of "
            "service limit: telegram bot, telegram chat, smtp, host, target; or workers)",
            labels=["reason"],
        )
        for reason in ("workers", "telegram bot", "telegram chat", "smtp", "host", "target"):
            waiting.add_metric([reason], state.waiting.get(reason, 0))
        yield flying
        yield waiting


class _DatabaseCollector(Collector):
    """Gauges read from the database at each scrape of ``/metrics``."""

    def __init__(self, database: Callable[[], Database], clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def describe(self) -> list[Any]:
        return []  # not known before the first read; collected afresh each time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("watcher_database_up", "1 if the database answered /metrics")
        try:
            families = self._read()
        except Exception as exc:  # a scrape must answer even with the database down
            log.debug("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        now = self._clock.now()
        with self._database().session() as session:
            by_status = dict(
                session.execute(
                    select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(OutboxRow.created_at)).where(OutboxRow.status == "pending")
            )
            failing = session.scalar(
                select(func.count())
                .select_from(SourceRow)
                .where(SourceRow.active.is_(True), SourceRow.failures > 0)
            )
            replicas = len(live_replicas(session, now, REPLICA_LIVE))
        depth = GaugeMetricFamily(
            "watcher_outbox_messages", "Outbox rows by status", labels=["status"]
        )
        for status in ("pending", "sent", "failed", "dead", "cancelled"):
            depth.add_metric([status], by_status.pop(status, 0))
        for status, count in sorted(by_status.items()):
            depth.add_metric([status], count)
        age = GaugeMetricFamily(
            "watcher_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending message (0 when none is pending)",
        )
        age.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        sources = GaugeMetricFamily(
            "watcher_sources_failing", "Watched promotion sources whose last fetch failed"
        )
        sources.add_metric([], failing or 0)
        live = GaugeMetricFamily(
            "watcher_replicas", "Daemons on this database that planned in the last 2 minutes"
        )
        live.add_metric([], replicas or 0)
        return [depth, age, sources, live]


# --- the HTTP server ------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100``, ``0.0.0.0:9100``, ``:9100`` for every address)."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--http wants HOST:PORT (e.g. 127.0.0.1:9100), not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


Route = Callable[[str, dict[str, list[str]]], tuple[int, str, bytes] | None]


class HttpService:
    """A small threaded HTTP server for ``/healthz``, ``/metrics`` and extra ``routes``."""

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        health: Callable[[], Health],
        metrics: Metrics,
        routes: list[Route] | None = None,
    ) -> None:
        self._health = health
        self._metrics = metrics
        self._routes = list(routes or [])
        service = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "sim-watcher"
            sys_version = ""

            def do_GET(self) -> None:
                service._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http %s %s", self.command, urlsplit(self.path).path)

        self._server = ThreadingHTTPServer(listen, Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()
        host, port = self.address
        log.info("serving /healthz and /metrics on http://%s:%d", host, port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        from urllib.parse import parse_qs

        parts = urlsplit(request.path)
        try:
            if parts.path == "/healthz":
                health = self._health()
                status = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
                body = json.dumps(health.body()).encode()
                _reply(request, status, "application/json", body)
                return
            if parts.path == "/metrics":
                _reply(request, HTTPStatus.OK, CONTENT_TYPE_METRICS, self._metrics.text())
                return
            query = parse_qs(parts.query)
            for route in self._routes:
                answer = route(parts.path, query)
                if answer is not None:
                    _reply(request, *answer)
                    return
            _reply(request, HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
        except Exception:
            log.exception("http %s failed", parts.path)
            _reply(request, HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n")


def _reply(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.send_header("Cache-Control", "no-store")
    request.end_headers()
    request.wfile.write(body)
