"""What users tell SIM Watcher (``reminders.records``): renewals and balance checks, and
what each stops, reschedules and queues. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.conftest import AliceConfig, Plan, Sync
from watcher.db import Database, Event, OutboxRow, ScheduleRow, SimRow
from watcher.durations import Duration
from watcher.errors import UsageError
from watcher.reminders.records import record_balance, record_renewal
from watcher.reminders.slots import current_slots

ALMATY = ZoneInfo("Asia/Almaty")
# Alice's SIM with all three kinds of reminder, each with one due on 2026-11-25.
EVERY_KIND = """\
        balance_check_every: 14d
        idle_limit: 60d
        last_paid_activity: 2026-10-01
        low_balance: 1000"""


def at_almaty(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ALMATY).astimezone(UTC)


NOON = at_almaty(date(2026, 11, 25), 12)


def outbox(database: Database) -> list[tuple[str, str, str | None]]:
    """(kind, status, last_error) of each row, in order."""
    with database.session() as session:
        rows = session.execute(
            select(OutboxRow.kind, OutboxRow.status, OutboxRow.last_error).order_by(
                OutboxRow.kind, OutboxRow.id
            )
        )
        return [(kind, status, error) for kind, status, error in rows]


def sim(database: Database) -> SimRow:
    with database.session() as session:
        row = session.get(SimRow, "s1")
        assert row is not None
        return row


def events(database: Database) -> list[tuple[str, str]]:
    with database.session() as session:
        rows = session.execute(
            select(Event.kind, Event.detail).where(Event.kind != "config").order_by(Event.id)
        )
        return [(kind, detail) for kind, detail in rows]


# --- renewals ----------------------------------------------------------------------------


def test_a_renewal_extends_the_expiry_by_the_sims_period_and_reschedules(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())  # expires 2026-12-01, renew_every 30d
    with database.session() as session:
        renewal = record_renewal(session, "s1", NOON, until=None, period=None, source="cfg")
    assert (renewal.old, renewal.new, renewal.today) == (
        date(2026, 12, 1),
        date(2026, 12, 31),
        date(2026, 11, 25),
    )
    stored = sim(database)
    assert (stored.expires, stored.last_paid_activity) == (date(2026, 12, 31), date(2026, 11, 25))
    assert events(database) == [("renew", "expires 2026-12-01 -> 2026-12-31")]
    with database.session() as session:
        targets = set(
            session.scalars(
                current_slots()
                .where(ScheduleRow.kind == "expiry")
                .with_only_columns(ScheduleRow.target)
            )
        )
    assert targets == {date(2026, 12, 31)}


def test_a_renewal_until_a_date_or_for_a_period_given_wins_over_renew_every(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    with database.session() as session:
        renewal = record_renewal(
            session, "s1", NOON, until=None, period=Duration.parse("1mo"), source="cfg"
        )
    assert renewal.new == date(2027, 1, 1)
    with database.session() as session:
        renewal = record_renewal(
            session, "s1", NOON, until=date(2027, 6, 30), period=None, source="cfg"
        )
    assert (renewal.old, renewal.new) == (date(2027, 1, 1), date(2027, 6, 30))


def test_months_are_stored_as_earlier_versions_stored_them_and_read_back(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    # A database older versions wrote holds "1m" for a month; no migration rewrites it.
    sync(alice_config(expires="2027-01-31").replace("renew_every: 30d", "renew_every: 1mo"))
    assert sim(database).renew_every == "1m"
    with database.session() as session:
        renewal = record_renewal(session, "s1", NOON, until=None, period=None, source="cfg")
    assert renewal.new == date(2027, 2, 28)  # a calendar month on, clamped


def test_a_renewal_stops_waiting_expiry_and_idle_reminders_but_not_balance_ones(
    database: Database, sync: Sync, plan: Plan, alice_config: AliceConfig
) -> None:
    sync(alice_config(extra=EVERY_KIND))
    plan(at_almaty(date(2026, 11, 25), 11))
    assert {kind for kind, status, _ in outbox(database) if status == "pending"} == {
        "expiry",
        "balance",
        "idle",
    }
    with database.session() as session:
        record_renewal(session, "s1", NOON, until=None, period=None, source="cfg")
    renewed = ("cancelled", "renewed")
    assert outbox(database) == [
        ("balance", "pending", None),
        ("balance", "pending", None),
        ("expiry", *renewed),
        ("expiry", *renewed),
        ("idle", *renewed),
        ("idle", *renewed),
    ]


def test_a_renewal_without_a_period_says_what_to_pass_and_changes_nothing(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    with database.session() as session:
        session.get(SimRow, "s1").renew_every = None  # type: ignore[union-attr]
    with database.session() as session, pytest.raises(UsageError, match="--for PERIOD"):
        record_renewal(session, "s1", NOON, until=None, period=None, source="cfg")
    assert sim(database).expires == date(2026, 12, 1)


def test_a_renewal_until_a_past_date_is_refused(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    with database.session() as session, pytest.raises(UsageError, match="in the past"):
        record_renewal(session, "s1", NOON, until=date(2026, 11, 24), period=None, source="cfg")
    assert sim(database).expires == date(2026, 12, 1)
    assert events(database) == []


def test_an_unknown_or_removed_sim_is_refused_naming_the_known_ones(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    with database.session() as session, pytest.raises(UsageError, match=r"\(known: s1\)"):
        record_balance(session, "s9", Decimal(5), NOON, source="cfg")
    sync('timezone: Asia/Almaty\nchannels: {a: "console://"}\nusers: [{name: alice, notify: [a]}]')
    with database.session() as session, pytest.raises(UsageError, match="defines no SIMs"):
        record_renewal(session, "s1", NOON, until=None, period=None, source="cfg")


# --- balance checks ----------------------------------------------------------------------


def test_a_balance_check_is_recorded_and_stops_only_waiting_balance_reminders(
    database: Database, sync: Sync, plan: Plan, alice_config: AliceConfig
) -> None:
    sync(alice_config(extra=EVERY_KIND))
    plan(at_almaty(date(2026, 11, 25), 11))
    with database.session() as session:
        check = record_balance(session, "s1", Decimal("1500.50"), NOON, source="cfg")
    assert (check.amount, check.today, check.low) == (Decimal("1500.50"), date(2026, 11, 25), False)
    stored = sim(database)
    assert (stored.balance, stored.last_balance_check) == (Decimal("1500.50"), date(2026, 11, 25))
    assert events(database) == [("balance", "1500.50")]
    checked = ("cancelled", "balance checked")
    assert outbox(database) == [
        ("balance", *checked),
        ("balance", *checked),
        ("expiry", "pending", None),
        ("expiry", "pending", None),
        ("idle", "pending", None),
        ("idle", "pending", None),
    ]
    with database.session() as session:
        targets = set(
            session.scalars(
                current_slots()
                .where(ScheduleRow.kind == "balance")
                .with_only_columns(ScheduleRow.target)
            )
        )
    assert targets == {date(2026, 12, 9)}  # the next check, 14 days on


def low_alerts(database: Database) -> list[tuple[str, str, date | None, str]]:
    with database.session() as session:
        alerts = session.execute(
            select(OutboxRow.dedup_key, OutboxRow.channel, OutboxRow.target, OutboxRow.status)
            .where(OutboxRow.kind == "low_balance")
            .order_by(OutboxRow.id)
        ).all()
    return [(key, channel, target, status) for key, channel, target, status in alerts]


def record(database: Database, amount: str, when: datetime = NOON) -> tuple[bool, bool]:
    with database.session() as session:
        check = record_balance(session, "s1", Decimal(amount), when, source="cfg")
    return check.low, check.alerted


def test_a_low_balance_is_alerted_on_every_channel_once_per_episode(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config(extra="        low_balance: 1000"))
    day = date(2026, 11, 25)
    # Three balances under the threshold, on three days: one alert.
    assert [
        record(database, a, at_almaty(day.replace(day=25 + i)))
        for i, a in enumerate(("900", "850", "900"))
    ] == [(True, True), (True, False), (True, False)]
    assert low_alerts(database) == [
        ("s1:low_balance:2026-11-25:900", "a", date(2026, 12, 1), "pending"),
        ("s1:low_balance:2026-11-25:900", "b", date(2026, 12, 1), "pending"),
    ]
    # At the threshold ends the episode; below again is a new one.
    assert record(database, "1000", at_almaty(date(2026, 11, 28))) == (False, False)
    assert record(database, "700", at_almaty(date(2026, 11, 29))) == (True, True)
    assert record(database, "600", at_almaty(date(2026, 11, 30))) == (True, False)
    assert [key for key, channel, _, _ in low_alerts(database) if channel == "a"] == [
        "s1:low_balance:2026-11-25:900",
        "s1:low_balance:2026-11-29:700",
    ]


def test_a_renewal_ends_a_low_balance_episode(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config(extra="        low_balance: 1000"))
    assert record(database, "900", at_almaty(date(2026, 11, 25))) == (True, True)
    with database.session() as session:
        record_renewal(
            session,
            "s1",
            at_almaty(date(2026, 11, 26)),
            until=None,
            period=Duration(1, "mo"),
            source="cfg",
        )
    assert record(database, "900", at_almaty(date(2026, 11, 27))) == (True, True)
    assert len({key for key, _, _, _ in low_alerts(database)}) == 2


def test_a_low_balance_under_a_lowered_threshold_is_a_new_episode(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config(extra="        low_balance: 1000"))
    assert record(database, "900", at_almaty(date(2026, 11, 25))) == (True, True)
    sync(alice_config(extra="        low_balance: 800"))
    # 900 is not below 800: the old episode is over, and 700 starts a new one.
    assert record(database, "700", at_almaty(date(2026, 11, 26))) == (True, True)


@pytest.mark.parametrize(("threshold", "amount"), [(None, "5"), ("1000", "1000")])
def test_a_balance_not_below_the_threshold_is_not_alerted(
    database: Database, sync: Sync, alice_config: AliceConfig, threshold: str | None, amount: str
) -> None:
    sync(alice_config(extra=f"        low_balance: {threshold}" if threshold else ""))
    with database.session() as session:
        assert not record_balance(session, "s1", Decimal(amount), NOON, source="cfg").low
    assert [kind for kind, _, _ in outbox(database)] == []


def test_records_are_dated_in_the_users_time_zone(
    database: Database, sync: Sync, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    late = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)  # 01:00 on the 26th in Almaty
    with database.session() as session:
        assert record_balance(session, "s1", Decimal(5), late, source="cfg").today == date(
            2026, 11, 26
        )
        renewal = record_renewal(session, "s1", late, until=None, period=None, source="cfg")
    assert renewal.today == date(2026, 11, 26)
    stored = sim(database)
    assert stored.last_balance_check == stored.last_paid_activity == date(2026, 11, 26)
