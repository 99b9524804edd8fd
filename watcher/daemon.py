"""The long-running daemon: APScheduler drives planning and delivery.

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

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.app import App
from watcher.delivery import release_claims

log = logging.getLogger(__name__)

PLAN_EVERY_SECONDS = 30
DELIVER_EVERY_SECONDS = 15
SCRAPE_CHECK_SECONDS = 60  # how often due sources are looked for (MIN_EVERY is 5 min)
SHUTDOWN_GRACE_SECONDS = 10.0


def run_once(app: App) -> int:
    """Plan, deliver everything due, exit: 0 if all went out, 1 if a delivery still fails."""
    from watcher.outbox import failing_count

    release_claims(app.database)
    app.sync()
    results = app.scrape(every_source=True)
    if results:
        failed = sum(1 for result in results if result.error is not None)
        log.info("once: scraped %d promotion sources, %d failed", len(results), failed)
    app.flush_promotions()
    app.plan()
    report = app.deliver()
    with app.database.session() as session:
        failing = failing_count(session)
    log.info(
        "once: %d sent, %d failed, %d dead, %d held for quiet hours",
        report.sent,
        report.failed,
        report.dead,
        report.held,
    )
    return 1 if failing else 0


def run_daemon(app: App, *, grace: float = SHUTDOWN_GRACE_SECONDS) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing in-flight sends", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    released = release_claims(app.database)
    if released:
        log.warning("%d messages were in flight when the last run stopped; resending", released)
    app.sync()

    scheduler = BackgroundScheduler(timezone=UTC)

    def wake_delivery() -> None:
        job = scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def plan() -> None:
        try:
            app.reload_if_changed()
            if app.plan() + app.flush_promotions():
                wake_delivery()
        except Exception:
            log.exception("planning failed; will retry")

    def scrape() -> None:
        try:
            if any(result.alerts or result.error for result in app.scrape()):
                wake_delivery()
        except Exception:
            log.exception("scraping failed; will retry")

    def deliver() -> None:
        try:
            app.deliver()
        except Exception:
            log.exception("delivery failed; will retry")

    now = datetime.now(UTC)
    common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    scheduler.add_job(
        plan,
        IntervalTrigger(seconds=PLAN_EVERY_SECONDS, jitter=2),
        id="plan",
        next_run_time=now,
        **common,
    )
    scheduler.add_job(
        deliver,
        IntervalTrigger(seconds=DELIVER_EVERY_SECONDS),
        id="deliver",
        next_run_time=now,
        **common,
    )
    scheduler.add_job(
        scrape,
        IntervalTrigger(seconds=SCRAPE_CHECK_SECONDS, jitter=5),
        id="scrape",
        next_run_time=now,
        **common,
    )
    scheduler.start()
    log.info(
        "watching %d SIMs of %d users and %d promotion sources; database %s",
        len(app.loaded.config.sims()),
        len(app.loaded.config.users),
        len(app.loaded.config.watched_sources()),
        app.database.display_url,
    )
    stop.wait()

    app.stopping.set()
    finished = threading.Event()

    def shut_down() -> None:
        scheduler.shutdown(wait=True)
        app.close()
        finished.set()

    threading.Thread(target=shut_down, name="shutdown", daemon=True).start()
    if not finished.wait(grace):
        log.warning("in-flight sends did not finish within %.0f s; they will be retried", grace)
        logging.shutdown()
        os._exit(0)
    log.info("stopped")
    return 0
