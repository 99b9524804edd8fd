"""Config sync (``watcher.sync``): the config's users, channels and SIMs in the database,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from tests.conftest import AliceConfig, Plan, Sync
from watcher.db import Database, Event, OutboxRow, SimRow
from watcher.sync import SyncReport

ALMATY = ZoneInfo("Asia/Almaty")


def at_almaty(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ALMATY).astimezone(UTC)


def test_editing_the_config_date_wins_over_recorded_state(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    with database.session() as session:
        sim = session.get(SimRow, "s1")
        assert sim is not None
        sim.expires = date(2027, 1, 1)  # as `watcher renew` records it
    sync(alice_config())  # unchanged config: the recorded date stays
    with database.session() as session:
        assert session.get(SimRow, "s1").expires == date(2027, 1, 1)  # type: ignore[union-attr]
    sync(alice_config(expires="2027-02-01"))  # edited config: the edit wins
    with database.session() as session:
        assert session.get(SimRow, "s1").expires == date(2027, 2, 1)  # type: ignore[union-attr]


def test_syncing_an_unchanged_config_again_changes_nothing(
    sync: Sync, alice_config: AliceConfig
) -> None:
    assert sync(alice_config()) == SyncReport(added=1, rescheduled=1)
    assert sync(alice_config()) == SyncReport()
    assert sync(alice_config(expires="2027-02-01")) == SyncReport(updated=1, rescheduled=1)


def test_removing_a_sim_stops_reminders_and_keeps_history(
    database: Database, sync: Sync, plan: Plan, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    plan(at_almaty(date(2026, 11, 24), 11))
    report = sync(
        'timezone: Asia/Almaty\nchannels: {a: "console://"}\nusers: [{name: alice, notify: [a]}]\n'
    )
    assert report.deactivated == 1
    assert len(plan(at_almaty(date(2026, 12, 20)))) == 2  # no new rows
    with database.session() as session:
        sim = session.get(SimRow, "s1")
        assert sim is not None and not sim.active
        assert session.scalar(select(func.count()).select_from(Event)) >= 2
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 2


def test_a_channel_dropped_from_notify_gets_no_new_messages(
    sync: Sync, plan: Plan, alice_config: AliceConfig
) -> None:
    sync(alice_config(notify="[a, b]"))
    sync(alice_config(notify="[a]"))
    assert plan(at_almaty(date(2026, 11, 24), 11)) == [("s1", "-7d", "a")]
