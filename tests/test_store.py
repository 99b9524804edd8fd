"""Sync and planning against a real database, the same suite on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from watcher.config import LoadedConfig, parse_config
from watcher.db import Database, Event, OutboxRow, ScheduleRow, SimRow
from watcher.db.engine import open_database
from watcher.reminders.planner import plan_due
from watcher.reminders.rules import select_due, slots_for
from watcher.reminders.slots import current_slots, sim_dates
from watcher.sync import sync_config

ALMATY = ZoneInfo("Asia/Almaty")
START = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 08:00 in Almaty


def config(expires: str = "2026-12-01", extra: str = "", channels: str = "[a, b]") -> LoadedConfig:
    return parse_config(
        f"""
timezone: Asia/Almaty
channels: {{a: "json://127.0.0.1:9/a", b: "json://127.0.0.1:9/b"}}
users:
  - name: alice
    notify: {channels}
    sims:
      - id: s1
        operator: kcell
        number: "+77011234567"
        expires: {expires}
        renew_every: 30d
{extra}
""",
        "cfg.yaml",
        {},
    )


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = open_database(db_url)
    yield db
    db.close()


def sync(database: Database, loaded: LoadedConfig, now: datetime = START) -> None:
    with database.session() as session:
        sync_config(session, loaded, now)


def plan(database: Database, now: datetime) -> list[tuple[str, str, str]]:
    with database.session() as session:
        plan_due(session, now)
    with database.session() as session:
        rows = session.execute(
            select(OutboxRow.sim_id, OutboxRow.offset, OutboxRow.channel).order_by(
                OutboxRow.created_at, OutboxRow.sim_id, OutboxRow.channel
            )
        ).all()
    return [(r.sim_id or "", r.offset or "", r.channel) for r in rows]


def at_almaty(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ALMATY).astimezone(UTC)


def test_migrations_are_idempotent(db_url: str) -> None:
    open_database(db_url).close()
    open_database(db_url).close()


def test_each_due_slot_is_planned_once_per_channel(database: Database) -> None:
    sync(database, config())
    assert plan(database, at_almaty(date(2026, 11, 24), 9)) == []
    first = plan(database, at_almaty(date(2026, 11, 24), 11))
    assert first == [("s1", "-7d", "a"), ("s1", "-7d", "b")]
    assert plan(database, at_almaty(date(2026, 11, 24), 12)) == first  # nothing doubled


def test_after_downtime_only_the_most_urgent_reminder_is_planned(database: Database) -> None:
    sync(database, config())
    assert plan(database, at_almaty(date(2026, 12, 5))) == [("s1", "+3d", "a"), ("s1", "+3d", "b")]
    # Later nags still come at their own time.
    assert plan(database, at_almaty(date(2026, 12, 8)))[-2:] == [
        ("s1", "+7d", "a"),
        ("s1", "+7d", "b"),
    ]


def test_editing_the_config_date_wins_over_recorded_state(database: Database) -> None:
    sync(database, config())
    with database.session() as session:
        sim = session.get(SimRow, "s1")
        assert sim is not None
        sim.expires = date(2027, 1, 1)  # as `watcher renew` records it
    sync(database, config())  # unchanged config: the recorded date stays
    with database.session() as session:
        assert session.get(SimRow, "s1").expires == date(2027, 1, 1)  # type: ignore[union-attr]
    sync(database, config(expires="2027-02-01"))  # edited config: the edit wins
    with database.session() as session:
        assert session.get(SimRow, "s1").expires == date(2027, 2, 1)  # type: ignore[union-attr]


def test_a_new_expiry_replaces_the_old_targets_slots(database: Database) -> None:
    sync(database, config())
    sync(database, config(expires="2027-01-10"))
    with database.session() as session:
        targets = {slot.target for slot in session.scalars(current_slots())}
        stale = set(session.scalars(select(ScheduleRow.target))) - targets
    assert targets == {date(2027, 1, 10)}
    assert stale == {date(2026, 12, 1)}  # written under the old key: never planned


def test_removing_a_sim_stops_reminders_and_keeps_history(database: Database) -> None:
    sync(database, config())
    plan(database, at_almaty(date(2026, 11, 24), 11))
    empty = parse_config(
        'timezone: Asia/Almaty\nchannels: {a: "console://"}\nusers: [{name: alice, notify: [a]}]\n',
        "cfg.yaml",
        {},
    )
    sync(database, empty)
    assert len(plan(database, at_almaty(date(2026, 12, 20)))) == 2  # no new rows
    with database.session() as session:
        sim = session.get(SimRow, "s1")
        assert sim is not None and not sim.active
        assert session.scalar(select(func.count()).select_from(Event)) >= 2
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 2


def test_removed_channel_gets_no_new_messages(database: Database) -> None:
    sync(database, config(channels="[a]"))
    assert plan(database, at_almaty(date(2026, 11, 24), 11)) == [("s1", "-7d", "a")]


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
    database: Database, seed: int, zone: str, start: datetime, hours: tuple[int, int]
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
        balance_check_every: {rng.choice(["7d", "14d", "1m"])}
        last_balance_check: {balance}
        remind_before: [{", ".join(rng.sample(["14d", "7d", "3d", "1d", "0d"], 3))}]
"""
        )
    cfg = parse_config(
        f'timezone: {zone}\nchannels: {{a: "console://"}}\n'
        "users:\n  - name: u\n    notify: [a]\n    sims:\n" + "".join(sims),
        "cfg.yaml",
        {},
    )
    sync(database, cfg, now=start)
    with database.session() as session:
        rows = {row.id: row for row in session.scalars(select(SimRow))}
        from watcher.db import UserRow

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
            plan_due(session, now)
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


def test_processes_starting_together_migrate_without_tripping_over_each_other(
    db_url: str,
) -> None:
    import subprocess
    import sys

    code = "import sys; from watcher.db.engine import open_database; open_database(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors


def test_a_superseded_reminder_is_not_sent_after_a_reschedule(database: Database) -> None:
    sync(database, config())
    caught_up = plan(database, at_almaty(date(2026, 11, 29)))  # -7d and -3d due: -3d sent
    assert {offset for _, offset, _ in caught_up} == {"-3d"}
    loaded = config()
    moved = replace(
        loaded,
        config=loaded.config.model_copy(
            update={"remind_at": loaded.config.remind_at.replace(hour=9)}
        ),
    )
    sync(database, moved)  # new slot times for the same target
    later = plan(database, at_almaty(date(2026, 11, 29), 11))
    assert later == caught_up  # neither -7d nor -3d again


def test_planned_slots_leave_the_schedule(database: Database) -> None:
    sync(database, config())
    plan(database, at_almaty(date(2026, 12, 20)))
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRow)) == 0


def test_a_channel_dropped_from_notify_gets_no_new_messages(database: Database) -> None:
    sync(database, config(channels="[a, b]"))
    sync(database, config(channels="[a]"))
    assert plan(database, at_almaty(date(2026, 11, 24), 11)) == [("s1", "-7d", "a")]


def test_a_database_from_a_newer_version_is_a_clean_error(db_url: str) -> None:
    from sqlalchemy import text

    from watcher.errors import DatabaseError

    open_database(db_url).close()
    database = Database(db_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(DatabaseError, match="newer version of SIM Watcher"):
            database.migrate()
    finally:
        database.close()


def test_a_reschedule_keeps_a_waiting_message_whose_target_still_applies(
    database: Database,
) -> None:
    last_offset_only = "        remind_after: []"
    sync(database, config(extra=last_offset_only))
    plan(database, at_almaty(date(2026, 12, 1)))  # 0d, the last offset of the target
    # Another schedule input changes (a balance check is added); the expiry does not.
    sync(database, config(extra=last_offset_only + "\n        balance_check_every: 14d"))
    with database.session() as session:
        statuses = session.scalars(select(OutboxRow.status).where(OutboxRow.kind == "expiry")).all()
    assert statuses == ["pending", "pending"]  # still to be sent, to both channels


def test_upgrading_through_the_schedule_rebuild_loses_and_repeats_nothing(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from watcher.db.engine import MIGRATIONS

    database = open_database(db_url)
    sync(database, config())
    first = plan(database, at_almaty(date(2026, 11, 28)))  # -3d sent (as a catch-up)
    database.close()

    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    from sqlalchemy import create_engine

    engine = create_engine(db_url)
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0003")  # the old layout, every slot rebuilt
        command.upgrade(alembic, "head")  # and the new one again
    engine.dispose()

    database = open_database(db_url)
    try:
        with database.session() as session:
            assert session.scalar(select(func.count()).select_from(ScheduleRow)) == 0
        sync(database, config(), now=at_almaty(date(2026, 11, 28), 12))
        with database.session() as session:
            offsets = {slot.offset for slot in session.scalars(current_slots())}
        assert offsets == {"-1d", "0d", "+1d", "+3d", "+7d"}  # -7d and -3d were planned
        later = plan(database, at_almaty(date(2026, 11, 30)))
    finally:
        database.close()
    assert later[: len(first)] == first
    assert {offset for _, offset, _ in later[len(first) :]} == {"-1d"}
