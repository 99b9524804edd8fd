"""Stopping the daemon while a job is waking delivery: it stops, it does not hang.

APScheduler's shutdown(wait=True) waits for running jobs while holding its job store
lock, and a planning pass that queued messages wakes delivery through that lock. The
interleaving is forced here: the planning pass is held until the stop has begun.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from tests.conftest import MakeApp, WriteConfig
from watcher.clock import FixedClock
from watcher.daemon import Daemon

CONFIG = """
timezone: Asia/Almaty
channels:
  me: "json://127.0.0.1:9/me"
users:
  - name: alice
    notify: [me]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2027-06-01
"""


def test_a_stop_while_planning_wakes_delivery_finishes_within_the_grace(
    write_config: WriteConfig, make_app: MakeApp
) -> None:
    app = make_app(write_config(CONFIG), clock=FixedClock(datetime(2026, 12, 1, tzinfo=UTC)))
    planning, release = threading.Event(), threading.Event()

    def plan() -> int:
        planning.set()
        release.wait(10)
        return 1  # as if it queued a message: the job then wakes delivery

    app.plan = plan  # type: ignore[method-assign]
    daemon = Daemon(app, grace=8)
    daemon.start()
    assert planning.wait(10)

    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(daemon.stop()))
    stopper.start()
    time.sleep(0.5)  # the shutdown is under way before the planning pass goes on
    release.set()
    stopper.join(15)

    assert stopped == [True]


def test_a_job_handed_out_before_the_stop_but_started_after_it_does_nothing(
    write_config: WriteConfig, make_app: MakeApp
) -> None:
    # shutdown(wait=False) leaves a job already given to the executor to start later,
    # after the stop found no job running and closed the app: it must not run then.
    app = make_app(write_config(CONFIG), clock=FixedClock(datetime(2026, 12, 1, tzinfo=UTC)))
    daemon = Daemon(app, grace=5)
    ran: list[str] = []
    late = daemon._tracked(lambda: ran.append("ran"))
    assert daemon.stop()
    late()
    assert ran == []


def test_a_reload_asked_for_during_a_planning_pass_is_done_when_the_pass_ends(
    write_config: WriteConfig, make_app: MakeApp
) -> None:
    # The plan job runs one at a time: a SIGHUP while it runs cannot start another,
    # and the scheduler would skip it until the next interval (30 s).
    app = make_app(write_config(CONFIG), clock=FixedClock(datetime(2026, 12, 1, tzinfo=UTC)))
    daemon = Daemon(app, grace=5)
    planning, release = threading.Event(), threading.Event()
    real_plan = app.plan
    forced: list[bool] = []
    real_reload = daemon.reload

    def plan() -> int:
        planning.set()
        release.wait(10)
        return real_plan()

    def reload() -> bool:
        forced.append(daemon._force_reload.is_set())
        return real_reload()

    app.plan = plan  # type: ignore[method-assign]
    daemon.reload = reload  # type: ignore[method-assign]
    daemon.start()
    try:
        assert planning.wait(10)
        daemon.request_reload()  # what SIGHUP does
        release.set()
        deadline = time.monotonic() + 10
        while True not in forced and time.monotonic() < deadline:
            time.sleep(0.05)
        assert forced[:1] == [False] and True in forced
    finally:
        assert daemon.stop()
