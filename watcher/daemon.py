"""The long-running daemon: APScheduler drives planning, scraping and delivery.

Three jobs, each ``coalesce=True`` and ``max_instances=1``: *plan* (re-read the config
if it changed, write due reminders and promotion digests to the outbox), *deliver*
(send what is pending, respecting backoff) and *scrape* (fetch the promotion sources
whose ``every`` has come round; each source's next time carries its own jitter).
Planning and scraping wake delivery at once; between runs the process sleeps, so an
idle daemon costs next to no CPU.

SIGTERM/SIGINT: stop taking new work, let in-flight sends finish (bounded), exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher import outbox
from watcher.app import App
from watcher.config_diagnostics import log_warnings

log = logging.getLogger(__name__)

PLAN_EVERY_SECONDS = 30
DELIVER_EVERY_SECONDS = 15
SCRAPE_CHECK_SECONDS = 60  # how often due sources are looked for (MIN_EVERY is 5 min)
SHUTDOWN_GRACE_SECONDS = 10.0


def run_once(app: App) -> int:
    """Plan, deliver everything due, exit: 0 if all went out, 1 if a delivery still fails."""
    outbox.release_claims(app.database)
    app.sync()
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

    def __init__(self, app: App, *, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        self.app = app
        self.grace = grace
        self.stop_requested = threading.Event()
        self._scheduler = BackgroundScheduler(timezone=UTC)

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
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
        released = outbox.release_claims(app.database)
        if released:
            log.warning("%d messages were in flight when the last run stopped; resending", released)
        app.sync()
        app.deliverer  # noqa: B018 -- built here, before the jobs' threads race to build it
        now = datetime.now(UTC)
        common: dict[str, Any] = {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": None,
            "next_run_time": now,
        }
        self._scheduler.add_job(
            self._plan, IntervalTrigger(seconds=PLAN_EVERY_SECONDS, jitter=2), id="plan", **common
        )
        self._scheduler.add_job(
            self._deliver, IntervalTrigger(seconds=DELIVER_EVERY_SECONDS), id="deliver", **common
        )
        self._scheduler.add_job(
            self._scrape,
            IntervalTrigger(seconds=SCRAPE_CHECK_SECONDS, jitter=5),
            id="scrape",
            **common,
        )
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
        """Take up the config file if it changed and is valid; True if it did."""
        return self.app.reload_if_changed()

    def stop(self) -> bool:
        """Stop the jobs and let in-flight sends finish; False if they outlast the grace."""
        self.stop_requested.set()
        self.app.stopping.set()
        finished = threading.Event()

        def shut_down() -> None:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=True)
            self.app.close()
            finished.set()

        threading.Thread(target=shut_down, name="shutdown", daemon=True).start()
        return finished.wait(self.grace)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing in-flight sends", signal.Signals(signum).name)
        self.stop_requested.set()

    def _wake_delivery(self) -> None:
        job = self._scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def _plan(self) -> None:
        try:
            self.reload()
            if self.app.plan() + self.app.flush_promotions():
                self._wake_delivery()
        except Exception:
            log.exception("planning failed; will retry")

    def _scrape(self) -> None:
        try:
            if any(result.alerts or result.error for result in self.app.scrape()):
                self._wake_delivery()
        except Exception:
            log.exception("scraping failed; will retry")

    def _deliver(self) -> None:
        try:
            self.app.deliver()
        except Exception:
            log.exception("delivery failed; will retry")
