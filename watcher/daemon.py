"""The long-running daemon: APScheduler drives planning, scraping and delivery.

Four jobs, each ``coalesce=True`` and ``max_instances=1``: *plan* (re-read the config
if it changed, write due reminders and promotion digests to the outbox), *deliver*
(send what is pending, respecting backoff), *scrape* (fetch the promotion sources
whose ``every`` has come round; each source's next time carries its own jitter) and
*beat* (this replica's heartbeat row, by which the others know its claims are live).
Planning and scraping wake delivery at once; between runs the process sleeps, so an
idle daemon costs next to no CPU.

SIGTERM/SIGINT: stop taking new work, let in-flight sends finish (bounded), exit 0.
SIGHUP: re-read the config file now (the mtime poll of each planning pass stays).
With ``http``, health and metrics are served beside the jobs (:mod:`watcher.service`).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import DBAPIError

from watcher import outbox
from watcher.app import App
from watcher.calendar import calendar_route
from watcher.config_diagnostics import log_warnings
from watcher.db.faults import database_error_line, is_database_fault
from watcher.errors import WatcherError
from watcher.service import DEFAULT_MAX_AGE, HttpService, check_health

log = logging.getLogger(__name__)

PLAN_EVERY_SECONDS = 30
DELIVER_EVERY_SECONDS = 15
SCRAPE_CHECK_SECONDS = 60  # how often due sources are looked for (MIN_EVERY is 5 min)
# A job of its own, so a long planning pass or delivery batch never delays it: several
# missed beats (outbox.SENDER_DEAD) and the other replicas take this one's claims.
BEAT_EVERY_SECONDS = 10
SHUTDOWN_GRACE_SECONDS = 10.0


def release_dead_claims(app: App) -> int:
    """Free the rows of senders that died on this host, saying how many may be doubled.

    A sender claims a whole batch but sends ``concurrency`` rows at a time, and marks
    each as soon as it is sent: of the rows it left claimed, at most that many were on
    their way when it died. The rest never left; only those few may arrive twice.
    """
    released = outbox.release_claims(app.database)
    if released:
        log.warning(
            "the last run stopped with %d messages claimed; sending them now "
            "(at most %d of them were in flight and may arrive twice)",
            released,
            min(released, app.concurrency),
        )
    return released


def run_once(app: App) -> int:
    """Plan, deliver everything due, exit: 0 if all went out, 1 if a delivery still fails."""
    release_dead_claims(app)
    app.sync(by_daemon=True)
    results = app.scrape(every_watched=True)
    if results:
        failed = sum(1 for result in results if result.error is not None)
        log.info("once: scraped %d promotion sources, %d failed", len(results), failed)
    app.flush_promotions()
    app.plan()
    report = app.deliver()
    with app.database.session() as session:
        failing = outbox.failing_count(session)
    log.info(
        "once: %d sent, %d failed, %d dead, %d held for quiet hours",
        report.sent,
        report.failed,
        report.dead,
        report.held,
    )
    return 1 if failing else 0


class Daemon:
    """An :class:`App` run by a scheduler until told to stop.

    :meth:`run` is the whole life (signals, start, wait, stop); :meth:`start`,
    :meth:`reload` and :meth:`stop` are its steps, for tests and for whatever else a
    service needs to hang on it (an HTTP endpoint, another signal).
    """

    def __init__(
        self,
        app: App,
        *,
        grace: float = SHUTDOWN_GRACE_SECONDS,
        http: tuple[str, int] | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        beat_every: float = BEAT_EVERY_SECONDS,
    ) -> None:
        self.app = app
        self.grace = grace
        self.beat_every = beat_every
        self._beaten = False  # its heartbeat row exists: stop() retires it
        self.stop_requested = threading.Event()
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._force_reload = threading.Event()
        self._http_listen = http
        self._max_age = max_age
        self.http: HttpService | None = None
        # Jobs running now. The scheduler's own shutdown(wait=True) waits for them while
        # holding its job store lock, which a job waking delivery (job.modify) needs:
        # a deadlock. So stop() shuts it down without waiting and waits here instead.
        self._running = 0
        self._closing = False
        self._idle = threading.Condition()

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)
        self.start()
        self.stop_requested.wait()
        if not self.stop():
            log.warning(
                "in-flight sends did not finish within %.0f s; they will be retried", self.grace
            )
            logging.shutdown()
            os._exit(0)
        log.info("stopped")
        return 0

    def start(self) -> None:
        """Release dead senders' claims, sync the config, and start the jobs."""
        app = self.app
        release_dead_claims(app)
        app.sync(by_daemon=True)
        app.beat_replica()  # before its first claim: a claim without a beat keeps the lease
        self._beaten = True
        app.deliverer  # noqa: B018 -- built here, before the jobs' threads race to build it
        now = datetime.now(UTC)
        common: dict[str, Any] = {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": None,
            "next_run_time": now,
        }
        self._scheduler.add_job(
            self._tracked(self._plan),
            IntervalTrigger(seconds=PLAN_EVERY_SECONDS, jitter=2),
            id="plan",
            **common,
        )
        self._scheduler.add_job(
            self._tracked(self._deliver),
            IntervalTrigger(seconds=DELIVER_EVERY_SECONDS),
            id="deliver",
            **common,
        )
        self._scheduler.add_job(
            self._tracked(self._beat),
            IntervalTrigger(seconds=self.beat_every),
            id="beat",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # first run one interval on: start() just beat
        )
        self._scheduler.add_job(
            self._tracked(self._scrape),
            IntervalTrigger(seconds=SCRAPE_CHECK_SECONDS, jitter=5),
            id="scrape",
            **common,
        )
        if self._http_listen is not None:
            self.http = self._serve(self._http_listen)  # before the jobs: a taken port stops here
        self._scheduler.start()
        config = app.loaded.config
        log.info(
            "watching %d SIMs of %d users and %d promotion sources; database %s",
            len(config.sims()),
            len(config.users),
            len(config.watched_sources()),
            app.database.display_url,
        )
        log_warnings(config, str(app.loaded.path))

    def reload(self) -> bool:
        """Take up the config file if it changed and is valid; True if it did.

        After SIGHUP (:meth:`request_reload`) the file is read whatever its mtime."""
        force = self._force_reload.is_set()
        self._force_reload.clear()
        return self.app.reload_if_changed(force=force)

    def request_reload(self) -> None:
        """Re-read the config file at once, in the planning job (as SIGHUP does)."""
        self._force_reload.set()
        job = self._scheduler.get_job("plan")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def _serve(self, listen: tuple[str, int]) -> HttpService:
        app = self.app
        try:
            service = HttpService(
                listen,
                health=lambda: check_health(app.database, app.clock, self._max_age),
                metrics=app.metrics,
                routes=[calendar_route(lambda: app.database, lambda: app.catalogue, app.clock)],
            )
        except OSError as exc:
            host, port = listen
            raise WatcherError(
                f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        service.start()
        return service

    def stop(self) -> bool:
        """Stop the jobs and let in-flight sends finish; False if they outlast the grace."""
        self.stop_requested.set()
        self.app.stopping.set()
        finished = threading.Event()

        def shut_down() -> None:
            if self.http is not None:
                self.http.stop()
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)  # see _idle: waiting here could deadlock
            with self._idle:
                self._closing = True  # a job the scheduler already handed out won't run
                self._idle.wait_for(lambda: self._running == 0)
            self._retire()
            self.app.close()
            finished.set()

        threading.Thread(target=shut_down, name="shutdown", daemon=True).start()
        return finished.wait(self.grace)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing in-flight sends", signal.Signals(signum).name)
        self.stop_requested.set()

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP: reloading the config")
        # Not from the handler itself: the scheduler takes locks.
        threading.Thread(target=self.request_reload, name="sighup", daemon=True).start()

    def _tracked(self, job: Callable[[], None]) -> Callable[[], None]:
        """``job``, counted in :attr:`_running` while it runs (for :meth:`stop`)."""

        @functools.wraps(job)
        def run() -> None:
            with self._idle:
                if self._closing:
                    return  # started after the stop took stock: the app is closing
                self._running += 1
            try:
                job()
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        return run

    def _wake_delivery(self) -> None:
        job = self._scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def _beat(self) -> None:
        try:
            self.app.beat_replica()
        except Exception as exc:
            _log_failure("the heartbeat", exc)

    def _retire(self) -> None:
        # Its claims were given back as delivery stopped; no longer counted live either.
        if not self._beaten:
            return
        try:
            self.app.retire_replica()
        except Exception as exc:
            line = database_error_line(exc) if isinstance(exc, DBAPIError) else repr(exc)
            log.warning(
                "could not mark this replica stopped (%s); the others see its heartbeat "
                "stop instead",
                line,
            )

    def _plan(self) -> None:
        while True:
            try:
                if self.reload():
                    self._beat()  # the new config's digest, before the mismatch check
                if self.app.plan() + self.app.flush_promotions():
                    self._wake_delivery()
            except Exception as exc:
                _log_failure("planning", exc)
            # A SIGHUP during this pass could not start another (one at a time): the
            # scheduler would skip it and the reload would wait for the next interval.
            if not self._force_reload.is_set() or self.stop_requested.is_set():
                return

    def _scrape(self) -> None:
        try:
            if any(result.alerts or result.error for result in self.app.scrape()):
                self._wake_delivery()
        except Exception as exc:
            _log_failure("scraping", exc)

    def _deliver(self) -> None:
        try:
            self.app.deliver()
        except Exception as exc:
            _log_failure("delivery", exc)


def _log_failure(what: str, exc: Exception) -> None:
    # The database down for a moment (a restart, a full disk) is one line per job, not a
    # traceback; anything else is a bug and keeps its traceback.
    if isinstance(exc, DBAPIError) and is_database_fault(exc):
        log.error("%s failed; will retry: %s", what, database_error_line(exc))
    else:
        log.exception("%s failed; will retry", what)
