"""The slot store (``reminders.slots``): each SIM's upcoming reminders under its key,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from tests.conftest import AliceConfig, Plan, Sync
from watcher.db import Database, OutboxRow, ScheduleRow, SimRow, UserRow
from watcher.durations import Duration
from watcher.reminders.slots import (
    current_slots,
    insert_slots,
    reschedule,
    sim_dates,
    stop_reminders,
)

ALMATY = ZoneInfo("Asia/Almaty")


def at_almaty(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ALMATY).astimezone(UTC)


def statuses(database: Database) -> list[tuple[str, str | None]]:
    with database.session() as session:
        rows = session.execute(
            select(OutboxRow.status, OutboxRow.last_error).order_by(OutboxRow.id)
        )
        return [(status, error) for status, error in rows]


def test_a_new_expiry_replaces_the_old_targets_slots(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    sync(alice_config(expires="2027-01-10"))
    with database.session() as session:
        targets = {slot.target for slot in session.scalars(current_slots())}
        stale = set(session.scalars(select(ScheduleRow.target))) - targets
    assert targets == {date(2027, 1, 10)}
    assert stale == {date(2026, 12, 1)}  # written under the old key: never planned


def test_reschedule_writes_slots_only_when_the_schedule_inputs_change(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    with database.session() as session:
        sim, user = session.get(SimRow, "s1"), session.get(UserRow, "alice")
        assert sim is not None and user is not None
        key = sim.schedule_key
        assert reschedule(session, sim, user) is False  # nothing changed
        assert sim.schedule_key == key
        sim.expires = date(2027, 3, 1)
        assert reschedule(session, sim, user) is True
        assert sim.schedule_key != key
    with database.session() as session:
        targets = {slot.target for slot in session.scalars(current_slots())}
    assert targets == {date(2027, 3, 1)}


def test_a_reschedule_cancels_waiting_reminders_of_a_date_that_no_longer_applies(
    database: Database, plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    plan(at_almaty(date(2026, 11, 24), 11))  # -7d waits for channels a and b
    sync(alice_config(expires="2027-01-10"))
    superseded = ("cancelled", "superseded: the date it reminded of changed")
    assert statuses(database) == [superseded, superseded]


def test_a_superseded_reminder_is_not_sent_after_a_reschedule(
    database: Database, plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    caught_up = plan(at_almaty(date(2026, 11, 29)))  # -7d and -3d due: -3d sent
    assert {offset for _, offset, _ in caught_up} == {"-3d"}
    sync(alice_config(remind_at="09:00"))  # new slot times for the same target
    later = plan(at_almaty(date(2026, 11, 29), 11))
    assert later == caught_up  # neither -7d nor -3d again


def test_a_reschedule_keeps_a_waiting_message_whose_target_still_applies(
    database: Database, plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    last_offset_only = "        remind_after: []"
    sync(alice_config(extra=last_offset_only))
    plan(at_almaty(date(2026, 12, 1)))  # 0d, the last offset of the target
    # Another schedule input changes (a balance check is added); the expiry does not.
    sync(alice_config(extra=last_offset_only + "\n        balance_check_every: 14d"))
    with database.session() as session:
        statuses = session.scalars(select(OutboxRow.status).where(OutboxRow.kind == "expiry")).all()
    assert statuses == ["pending", "pending"]  # still to be sent, to both channels


def test_a_slot_written_again_takes_the_new_key_instead_of_failing(database: Database) -> None:
    slot = {
        "due_at": at_almaty(date(2026, 11, 24)),
        "sim_id": "s1",
        "kind": "expiry",
        "target": date(2026, 12, 1),
        "offset": "-7d",
    }
    with database.session() as session:
        insert_slots(session, [{**slot, "key": "old"}])
    with database.session() as session:
        insert_slots(session, [{**slot, "key": "new"}])
        insert_slots(session, [])  # nothing to write is no statement, not an error
    with database.session() as session:
        assert session.execute(select(ScheduleRow.sim_id, ScheduleRow.key)).all() == [("s1", "new")]


def test_stopping_a_sims_reminders_cancels_what_waits_and_unmatches_its_slots(
    database: Database, plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    plan(at_almaty(date(2026, 11, 24), 11))  # -7d waits for channels a and b
    with database.session() as session:
        stop_reminders(session, "s1")
    with database.session() as session:
        assert session.scalars(current_slots()).all() == []
        assert session.scalar(select(func.count()).select_from(ScheduleRow)) > 0  # left to expire
    removed = ("cancelled", "SIM removed from the config")
    assert statuses(database) == [removed, removed]


def test_sim_dates_reads_a_stored_sim_in_its_users_zone_and_hour(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(
        alice_config(
            remind_at="09:30",
            extra="        remind_before: [7d, 1d]\n"
            "        remind_after: [2d]\n"
            "        balance_check_every: 14d\n"
            "        last_balance_check: 2026-11-20\n"
            "        idle_limit: 90d\n"
            "        last_paid_activity: 2026-10-01",
        )
    )
    with database.session() as session:
        sim, user = session.get(SimRow, "s1"), session.get(UserRow, "alice")
        assert sim is not None and user is not None
        dates = sim_dates(sim, user)
    assert dates.timezone == ALMATY
    assert dates.remind_at == time(9, 30)
    assert dates.expires == date(2026, 12, 1)
    assert dates.remind_before == (Duration.parse("7d"), Duration.parse("1d"))
    assert dates.remind_after == (Duration.parse("2d"),)
    assert dates.balance_check_every == Duration.parse("14d")
    assert dates.last_balance_check == date(2026, 11, 20)
    assert dates.idle_limit == Duration.parse("90d")
    assert dates.last_paid_activity == date(2026, 10, 1)
