"""Planning (``reminders.planner.plan_due``): due slots into outbox rows, on SQLite and
PostgreSQL, checked against the pure rule it implements."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.conftest import AliceConfig, Plan, Sync
from watcher.db import Database, OutboxRow, ScheduleRow, SimRow, UserRow
from watcher.reminders.planner import plan_due
from watcher.reminders.rules import select_due, slots_for
from watcher.reminders.slots import sim_dates

ALMATY = ZoneInfo("Asia/Almaty")
START = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 08:00 in Almaty


def at_almaty(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ALMATY).astimezone(UTC)


def test_each_due_slot_is_planned_once_per_channel(
    plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    assert plan(at_almaty(date(2026, 11, 24), 9)) == []
    first = plan(at_almaty(date(2026, 11, 24), 11))
    assert first == [("s1", "-7d", "a"), ("s1", "-7d", "b")]
    assert plan(at_almaty(date(2026, 11, 24), 12)) == first  # nothing doubled


def test_plan_due_returns_the_number_of_rows_it_wrote(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    # The daemon wakes delivery when a pass planned something: PostgreSQL must count too.
    sync(alice_config())
    with database.session() as session:
        assert plan_due(session, at_almaty(date(2026, 11, 24), 9)) == 0  # nothing due yet
    with database.session() as session:
        assert plan_due(session, at_almaty(date(2026, 11, 24), 11)) == 2  # -7d, two channels
    with database.session() as session:
        assert plan_due(session, at_almaty(date(2026, 11, 24), 12)) == 0


def test_after_downtime_only_the_most_urgent_reminder_is_planned(
    plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    assert plan(at_almaty(date(2026, 12, 5))) == [("s1", "+3d", "a"), ("s1", "+3d", "b")]
    # Later nags still come at their own time.
    assert plan(at_almaty(date(2026, 12, 8)))[-2:] == [
        ("s1", "+7d", "a"),
        ("s1", "+7d", "b"),
    ]


def test_removed_channel_gets_no_new_messages(
    plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config(notify="[a]"))
    assert plan(at_almaty(date(2026, 11, 24), 11)) == [("s1", "-7d", "a")]


def test_slots_of_a_date_since_changed_are_never_planned(
    plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    sync(alice_config(expires="2027-01-10"))  # the old target's slots stay, under the old key
    # 2026-12-01 passed with all its nags; 2027-01-10 is a month away.
    assert plan(at_almaty(date(2026, 12, 9))) == []


def test_planned_rows_carry_the_slot_and_a_key_naming_it(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config(notify="[a]"))
    with database.session() as session:
        plan_due(session, at_almaty(date(2026, 11, 24), 11))
    with database.session() as session:
        row = session.scalars(select(OutboxRow)).one()
    assert (row.user_name, row.sim_id, row.kind, row.target, row.offset) == (
        "alice",
        "s1",
        "expiry",
        date(2026, 12, 1),
        "-7d",
    )
    assert (row.status, row.attempts, row.title) == ("pending", 0, None)  # rendered when sent
    assert row.dedup_key == "s1:expiry:2026-12-01:-7d"
    assert row.next_attempt_at == at_almaty(date(2026, 11, 24), 11)


def test_planned_slots_leave_the_schedule(
    database: Database, plan: Plan, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    plan(at_almaty(date(2026, 12, 20)))
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRow)) == 0


@pytest.mark.parametrize(
    ("seed", "zone", "start", "hours"),
    [
        *((seed, "Asia/Almaty", START, (24, 240)) for seed in range(5)),  # passes days apart
        *((seed, "Asia/Almaty", START, (1, 30)) for seed in range(5, 8)),  # hours apart
        # Across Berlin's DST changes (2026-10-25, 2027-03-28): 23- and 25-hour days.
        (8, "Europe/Berlin", datetime(2026, 10, 18, tzinfo=UTC), (1, 30)),
        (9, "Europe/Berlin", datetime(2027, 3, 21, tzinfo=UTC), (1, 30)),
        (10, "Europe/Berlin", datetime(2027, 3, 21, tzinfo=UTC), (24, 120)),
    ],
)
def test_sql_planner_agrees_with_the_pure_rule(
    database: Database, sync: Sync, seed: int, zone: str, start: datetime, hours: tuple[int, int]
) -> None:
    """The planner's SQL is checked against select_due, the specification, on random SIMs.

    Passes hours apart take the path without superseding (nothing can be superseded);
    passes days apart take the one that sorts the backlog.
    """
    rng = random.Random(seed)
    sims = []
    first = start.date() - timedelta(days=5)
    for i in range(12):
        expires = first + timedelta(days=rng.randint(0, 30))
        balance = first - timedelta(days=20) + timedelta(days=rng.randint(0, 30))
        sims.append(
            f"""      - id: x{i}
        operator: activ
        number: "+7701000{i:04d}"
        expires: {expires}
        balance_check_every: {rng.choice(["7d", "14d", "1mo"])}
        last_balance_check: {balance}
        remind_before: [{", ".join(rng.sample(["14d", "7d", "3d", "1d", "0d"], 3))}]
"""
        )
    sync(
        f'timezone: {zone}\nchannels: {{a: "console://"}}\n'
        "users:\n  - name: u\n    notify: [a]\n    sims:\n" + "".join(sims),
        now=start,
    )
    with database.session() as session:
        rows = {row.id: row for row in session.scalars(select(SimRow))}
        user = session.get(UserRow, "u")
        assert user is not None
        pending = {sim_id: slots_for(sim_dates(row, user)) for sim_id, row in rows.items()}
    now = start
    for _ in range(6 if hours[0] >= 24 else 40):
        now += timedelta(hours=rng.randint(*hours))
        expected = set()
        for sim_id, slots in pending.items():
            due = select_due(slots, now)
            expected |= {(sim_id, s.kind, s.target, s.offset) for s in due}
            pending[sim_id] = [s for s in slots if s.due_at > now]
        with database.session() as session:
            before = session.scalar(select(func.max(OutboxRow.id))) or 0
            written = plan_due(session, now)  # counted on PostgreSQL too (never -1)
        with database.session() as session:
            got = {
                (r.sim_id, r.kind, r.target, r.offset)
                for r in session.execute(
                    select(
                        OutboxRow.sim_id, OutboxRow.kind, OutboxRow.target, OutboxRow.offset
                    ).where(OutboxRow.id > before)
                )
            }
        assert got == expected
        assert written == len(got)  # one channel: a row per slot
