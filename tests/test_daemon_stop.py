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
