"""Replicas on one database that run different config files: admin is told, once.

Two Apps on one database (a SQLite file, or PostgreSQL) stand for two daemons; each
beats its heartbeat row with its config's digest (the daemon's heartbeat job) and plans.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.conftest import MakeApp
from watcher.app import MISMATCH_GRACE, App
from watcher.clock import FixedClock
from watcher.db import OutboxRow

NOW = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)

CONFIG = """
timezone: Asia/Almaty
channels:
  me: "json://127.0.0.1:9/me"
  ops: "json://127.0.0.1:9/ops"
admin: [ops]
users:
  - name: alice
    notify: [me]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: {expires}
"""


def two(make_app: MakeApp, tmp_path: Path, first: str, second: str) -> tuple[App, App, FixedClock]:
    clock = FixedClock(NOW)
    apps = []
    for name, expires in (("a.yaml", first), ("b.yaml", second)):
        path = tmp_path / name
        path.write_text(CONFIG.format(expires=expires), encoding="utf-8")
        apps.append(make_app(path, clock=clock))
    apps[0].sync()
    return apps[0], apps[1], clock


def mismatch_reports(app: App) -> list[OutboxRow]:
    with app.database.session() as session:
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.dedup_key.like("config-mismatch:%"))
        ).all()
        return list(rows)


def passes(apps: tuple[App, ...], clock: FixedClock, minutes: int) -> None:
    """Heartbeats and planning passes of every app every 30 s for ``minutes``."""
    for _ in range(minutes * 2):
        for app in apps:
            app.beat_replica()
            app.plan()
        clock.advance(timedelta(seconds=30))


def test_replicas_on_different_configs_are_reported_to_admin_once(
    make_app: MakeApp, tmp_path: Path
) -> None:
    a, b, clock = two(make_app, tmp_path, "2027-01-01", "2027-02-01")

    passes((a, b), clock, 10)

    [report] = mismatch_reports(a)  # one per admin channel: ops only
    assert report.channel == "ops"
    assert "2 daemons share this database but run 2 versions" in (report.body or "")
    assert a.loaded.digest[:8] in (report.body or "") and b.loaded.digest[:8] in (report.body or "")


def test_a_reload_that_reaches_every_replica_in_time_is_not_reported(
    make_app: MakeApp, tmp_path: Path
) -> None:
    a, b, clock = two(make_app, tmp_path, "2027-01-01", "2027-01-01")
    passes((a, b), clock, 2)
    # b is edited; a takes the same file a minute later (well within the grace).
    (tmp_path / "b.yaml").write_text(CONFIG.format(expires="2027-03-01"), encoding="utf-8")
    assert b.reload_if_changed()
    passes((a, b), clock, 1)
    (tmp_path / "a.yaml").write_text(CONFIG.format(expires="2027-03-01"), encoding="utf-8")
    assert a.reload_if_changed()
    passes((a, b), clock, 10)

    assert mismatch_reports(a) == []
    assert timedelta(minutes=1) < MISMATCH_GRACE


def test_one_daemon_alone_is_never_a_mismatch(make_app: MakeApp, tmp_path: Path) -> None:
    a, _b, clock = two(make_app, tmp_path, "2027-01-01", "2027-02-01")
    (tmp_path / "a.yaml").write_text(CONFIG.format(expires="2027-05-01"), encoding="utf-8")

    passes((a,), clock, 2)
    assert a.reload_if_changed()  # its old row, with the old digest, is still fresh
    passes((a,), clock, 10)

    assert mismatch_reports(a) == []
