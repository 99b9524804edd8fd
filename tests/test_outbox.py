"""The outbox (``watcher.outbox``), which owns every outbox row: queueing without
duplicates, handing due rows to senders, recording what became of them, cancelling
what no longer applies. The same suite on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import literal, select

from tests.conftest import Sync
from watcher import outbox
from watcher.db import Database, OutboxRow
from watcher.outbox import (
    CLAIM_LEASE,
    REMINDER_KINDS,
    Kind,
    NewMessage,
    Status,
    cancel_pending,
    cancel_stale,
    claim,
    claim_owner,
    due_rows,
    enqueue,
    failing_count,
    hold,
    last_messages,
    mark_sent,
    planned_offsets,
    record_failure,
    release_claims,
)
from watcher.reminders import rules
from watcher.reminders.planner import plan_due
from watcher.reminders.records import record_balance

T0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
DEC_1 = date(2026, 12, 1)
JAN_10 = date(2027, 1, 10)


def message(
    key: str,
    channel: str = "a",
    kind: Kind = Kind.EXPIRY,
    *,
    sim_id: str | None = "s1",
    target: date | None = None,
    offset: str | None = None,
) -> NewMessage:
    return NewMessage(key, channel, kind, sim_id=sim_id, target=target, offset=offset)


def queue(database: Database, *messages: NewMessage, now: datetime = T0, **set_: Any) -> None:
    """Enqueue messages, then set columns on their rows (status, claims...) as given."""
    with database.session() as session:
        enqueue(session, messages, now)
        keys = [m.dedup_key for m in messages]
        for row in session.scalars(select(OutboxRow).where(OutboxRow.dedup_key.in_(keys))):
            for column, value in set_.items():
                setattr(row, column, value)


def rows(database: Database) -> dict[str, OutboxRow]:
    """Every row by ``key/channel``."""
    with database.session() as session:
        return {f"{r.dedup_key}/{r.channel}": r for r in session.scalars(select(OutboxRow))}


def keys_due(database: Database, now: datetime, limit: int = 100) -> list[str]:
    with database.session() as session:
        skip_locked = not database.is_sqlite
        return [r.dedup_key for r in due_rows(session, now, limit=limit, skip_locked=skip_locked)]


# --- enqueueing ----------------------------------------------------------------------


def test_the_same_message_is_queued_once_per_channel(database: Database) -> None:
    queue(database, message("k"), message("k", "b"))
    queue(database, message("k"), message("other"))  # a replay, and something new
    queue(database)  # nothing to queue is no statement, not an error
    assert sorted(rows(database)) == ["k/a", "k/b", "other/a"]


def test_a_queued_message_is_pending_and_due_at_once(database: Database) -> None:
    with database.session() as session:
        enqueue(
            session,
            [
                NewMessage(
                    "k",
                    "a",
                    Kind.BALANCE,
                    user_name="alice",
                    sim_id="s1",
                    target=DEC_1,
                    offset="0d",
                    title="t",
                    body="b",
                )
            ],
            T0,
        )
    row = rows(database)["k/a"]
    assert (row.kind, row.user_name, row.sim_id, row.target, row.offset) == (
        "balance",
        "alice",
        "s1",
        DEC_1,
        "0d",
    )
    assert (row.title, row.body, row.status, row.attempts) == ("t", "b", "pending", 0)
    assert row.created_at == row.next_attempt_at == T0
    assert row.claimed_by is None and row.sent_at is None


# --- handing rows to senders -----------------------------------------------------------


def test_due_rows_are_the_pending_unclaimed_ones_due_now_oldest_first(database: Database) -> None:
    minute = timedelta(minutes=1)
    queue(database, message("later"), next_attempt_at=T0 + minute)
    queue(database, message("second"), next_attempt_at=T0 - minute)
    queue(database, message("first"), next_attempt_at=T0 - 2 * minute)
    queue(database, message("third-by-id"), next_attempt_at=T0 - minute)
    queue(database, message("sent"), status=Status.SENT.value, next_attempt_at=T0 - 3 * minute)
    queue(database, message("dead"), status=Status.DEAD.value)
    queue(database, message("claimed"), claimed_at=T0 - minute, claimed_by="x:1:a")
    queue(database, message("lease-over"), claimed_at=T0 - CLAIM_LEASE - minute, claimed_by="x")
    # Ties go by id; "claimed" is another sender's until its lease ends.
    assert keys_due(database, T0) == ["first", "second", "third-by-id", "lease-over"]
    assert keys_due(database, T0, limit=2) == ["first", "second"]


def test_a_held_row_waits_until_then_without_counting_an_attempt(database: Database) -> None:
    queue(database, message("k"))
    until = T0 + timedelta(hours=8)  # the end of quiet hours
    with database.session() as session:
        [row] = due_rows(session, T0, limit=10, skip_locked=False)
        hold(row, until)
    assert keys_due(database, until - timedelta(seconds=1)) == []
    assert keys_due(database, until) == ["k"]
    assert rows(database)["k/a"].attempts == 0


def test_a_claimed_row_is_left_to_its_sender_until_the_lease_ends(database: Database) -> None:
    queue(database, message("k"))
    with database.session() as session:
        [row] = due_rows(session, T0, limit=10, skip_locked=False)
        claim(row, T0, "Title", "Body")
    row = rows(database)["k/a"]
    assert (row.title, row.body, row.claimed_at, row.claimed_by) == (
        "Title",
        "Body",
        T0,
        claim_owner(),
    )
    assert keys_due(database, T0 + CLAIM_LEASE) == []
    assert keys_due(database, T0 + CLAIM_LEASE + timedelta(seconds=1)) == ["k"]


def test_claim_owner_names_this_host_and_process() -> None:
    host, pid, run = claim_owner().rsplit(":", 2)
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert run and claim_owner() == claim_owner()


# --- recording ---------------------------------------------------------------------------


def test_mark_sent_marks_only_rows_still_pending(database: Database) -> None:
    queue(database, message("a1"), message("a2"), claimed_at=T0, claimed_by="me", last_error="x")
    queue(database, message("gone"), status=Status.CANCELLED.value, last_error="renewed")
    ids = [row.id for row in rows(database).values()]
    sent_at = T0 + timedelta(seconds=5)
    with database.session() as session:
        mark_sent(session.connection(), ids, sent_at)
    after = rows(database)
    for key in ("a1/a", "a2/a"):
        row = after[key]
        assert (row.status, row.sent_at, row.attempts) == ("sent", sent_at, 1)
        assert (row.claimed_at, row.claimed_by, row.last_error) == (None, None, None)
    gone = after["gone/a"]
    assert (gone.status, gone.sent_at, gone.attempts, gone.last_error) == (
        "cancelled",
        None,
        0,
        "renewed",
    )


def test_a_row_cancelled_while_a_sender_held_it_is_recorded_as_sent(database: Database) -> None:
    # `watcher renew` cancels a SIM's pending reminders; one a sender had already
    # claimed is going out anyway, and its sent mark wins over the cancellation.
    queue(database, message("in-flight"), claimed_at=T0, claimed_by=claim_owner())
    queue(database, message("waiting"))
    with database.session() as session:
        cancel_pending(session, "s1", "renewed")
    assert {row.status for row in rows(database).values()} == {"cancelled"}
    ids = [row.id for row in rows(database).values()]
    with database.engine.begin() as connection:
        mark_sent(connection, ids, T0)
    status = {key: (row.status, row.last_error) for key, row in rows(database).items()}
    assert status == {"in-flight/a": ("sent", None), "waiting/a": ("cancelled", "renewed")}


def fail(database: Database, key: str, now: datetime, error: str = "boom") -> OutboxRow | None:
    with database.session() as session:
        row_id = session.scalar(select(OutboxRow.id).where(OutboxRow.dedup_key == key))
        assert row_id is not None
        return record_failure(
            session,
            row_id,
            error,
            now,
            give_up_after=timedelta(hours=1),
            retry_delay=lambda attempts: timedelta(minutes=attempts),
        )


def test_a_failure_is_retried_after_the_delay_then_given_up_as_dead(database: Database) -> None:
    queue(database, message("k"), claimed_at=T0, claimed_by="me")
    assert fail(database, "k", T0, "HTTP 500") is not None
    row = rows(database)["k/a"]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
    assert (row.first_attempt_at, row.next_attempt_at) == (T0, T0 + timedelta(minutes=1))
    assert (row.claimed_at, row.claimed_by) == (None, None)  # free for the retry

    half_hour = T0 + timedelta(minutes=30)
    fail(database, "k", half_hour)
    row = rows(database)["k/a"]
    assert (row.status, row.attempts) == ("pending", 2)
    assert row.first_attempt_at == T0  # the give-up clock runs from the first failure
    assert row.next_attempt_at == half_hour + timedelta(minutes=2)

    dead = fail(database, "k", T0 + timedelta(hours=1))
    assert dead is not None and dead.status == "dead"
    assert rows(database)["k/a"].attempts == 3


def test_a_failure_of_a_row_no_longer_pending_changes_nothing(database: Database) -> None:
    queue(database, message("k"), status=Status.CANCELLED.value)
    assert fail(database, "k", T0) is None
    row = rows(database)["k/a"]
    assert (row.status, row.attempts, row.last_error) == ("cancelled", 0, None)


def test_only_claims_of_senders_that_died_are_released(database: Database) -> None:
    host = socket.gethostname()
    dead_pid = 2**22 + 12345  # above the kernel's pid range: no such process
    owners = {
        "live": claim_owner(),  # this process, e.g. a daemon next to `run --once`
        "dead": f"{host}:{dead_pid}:0000aaaa",
        "restarted": f"{host}:{os.getpid()}:0000bbbb",  # same pid, earlier run
        "elsewhere": f"other-host:{dead_pid}:0000cccc",  # can't tell: lease expiry
    }
    for key, owner in owners.items():
        queue(database, message(key, kind=Kind.ADMIN), claimed_at=T0, claimed_by=owner)
    # A dead sender's row that was sent meanwhile keeps its record as it is.
    queue(database, message("sent", kind=Kind.ADMIN), status="sent", claimed_by=owners["dead"])
    assert release_claims(database) == 2
    claimed = {row.dedup_key for row in rows(database).values() if row.claimed_by}
    assert claimed == {"live", "elsewhere", "sent"}
    assert release_claims(database) == 0


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        (["cancel", "claim"], "cancelled"),  # cancelled first: no sender takes it
        (["claim", "cancel", "sent"], "sent"),  # renewed during the send: it arrived
        (["claim", "sent", "cancel"], "sent"),
        (["claim", "cancel", "failed"], "cancelled"),  # it never arrived
        (["claim", "failed", "cancel"], "cancelled"),
        (["claim", "cancel", "released"], "cancelled"),  # a stopped batch gives it back
    ],
)
def test_a_rows_history_says_whether_it_arrived_whatever_the_order(
    database: Database, steps: list[str], status: str
) -> None:
    queue(database, message("k"))
    for step in steps:
        with database.session() as session:
            row = session.scalars(select(OutboxRow)).one()
            if step == "claim":
                if due_rows(session, T0, limit=1, skip_locked=not database.is_sqlite):
                    claim(row, T0, "t", "b")
            elif step == "cancel":
                cancel_pending(session, "s1", "renewed")
            elif step == "sent":
                mark_sent(session.connection(), [row.id], T0)
            elif step == "released":
                outbox.release_own_claims(session.connection(), [row.id])
        if step == "failed":
            fail(database, "k", T0)
    assert rows(database)["k/a"].status == status
    assert keys_due(database, T0 + timedelta(days=1)) == []  # nothing left to send again


def test_a_sender_releases_only_its_own_claims_on_rows_still_pending(database: Database) -> None:
    queue(database, message("mine", kind=Kind.ADMIN), claimed_at=T0, claimed_by=claim_owner())
    queue(database, message("taken", kind=Kind.ADMIN), claimed_at=T0, claimed_by="other:1:x")
    queue(
        database,
        message("sent", kind=Kind.ADMIN),
        status="sent",
        claimed_at=T0,
        claimed_by=claim_owner(),
    )
    ids = [row.id for row in rows(database).values()]
    with database.engine.begin() as connection:
        assert outbox.release_own_claims(connection, ids) == 1
        assert outbox.release_own_claims(connection, []) == 0
    claims = {row.dedup_key: row.claimed_by for row in rows(database).values()}
    assert claims == {"mine": None, "taken": "other:1:x", "sent": claim_owner()}
    assert keys_due(database, T0) == ["mine"]


# --- cancelling --------------------------------------------------------------------------


def test_cancel_pending_stops_a_sims_unsent_messages_of_the_kinds_given(
    database: Database,
) -> None:
    queue(database, message("expiry"), message("idle", kind=Kind.IDLE))
    queue(database, message("balance", kind=Kind.BALANCE))
    queue(database, message("idle-sent", kind=Kind.IDLE), status=Status.SENT.value)
    queue(database, message("other-sim", sim_id="s2"))
    with database.session() as session:
        cancel_pending(session, "s1", "renewed", kinds=(Kind.EXPIRY, Kind.IDLE))
    status = {key: (row.status, row.last_error) for key, row in rows(database).items()}
    assert status == {
        "expiry/a": ("cancelled", "renewed"),
        "idle/a": ("cancelled", "renewed"),
        "balance/a": ("pending", None),
        "idle-sent/a": ("sent", None),
        "other-sim/a": ("pending", None),
    }
    with database.session() as session:
        cancel_pending(session, "s1", "SIM removed")  # no kinds: every kind
    status = {key: (row.status, row.last_error) for key, row in rows(database).items()}
    assert status["balance/a"] == ("cancelled", "SIM removed")
    assert status["idle-sent/a"] == ("sent", None)
    assert status["other-sim/a"] == ("pending", None)


def test_cancel_stale_cancels_waiting_reminders_of_targets_no_longer_current(
    database: Database,
) -> None:
    queue(database, message("dec", target=DEC_1), message("jan", target=JAN_10))
    queue(database, message("balance", kind=Kind.BALANCE, target=DEC_1))
    queue(database, message("low", kind=Kind.LOW_BALANCE, target=DEC_1))  # not a reminder
    queue(database, message("dec-sent", target=DEC_1, offset="-7d"), status=Status.SENT.value)
    queue(database, message("other-sim", sim_id="s2", target=DEC_1))
    with database.session() as session:
        cancel_stale(session, "s1", {(Kind.EXPIRY.value, JAN_10), (Kind.BALANCE.value, DEC_1)})
    status = {key: row.status for key, row in rows(database).items()}
    assert status == {
        "dec/a": "cancelled",
        "jan/a": "pending",
        "balance/a": "pending",
        "low/a": "pending",
        "dec-sent/a": "sent",
        "other-sim/a": "pending",
    }
    assert rows(database)["dec/a"].last_error == "superseded: the date it reminded of changed"


# --- reading -------------------------------------------------------------------------------


def test_planned_offsets_are_a_sims_queued_reminders_sent_or_not(database: Database) -> None:
    queue(database, message("e7", target=DEC_1, offset="-7d"), status=Status.SENT.value)
    queue(database, message("e3", target=DEC_1, offset="-3d"))
    queue(database, message("b0", kind=Kind.BALANCE, target=JAN_10, offset="0d"))
    queue(database, message("c", target=JAN_10, offset="-1d"), status=Status.CANCELLED.value)
    queue(database, message("low", kind=Kind.LOW_BALANCE, target=DEC_1, offset="0d"))
    queue(database, message("s2", sim_id="s2", target=DEC_1, offset="-1d"))
    with database.session() as session:
        assert planned_offsets(session, "s1") == {
            ("expiry", DEC_1, "-7d"),
            ("expiry", DEC_1, "-3d"),
            ("balance", JAN_10, "0d"),
            ("expiry", JAN_10, "-1d"),
        }
        assert planned_offsets(session, "nosuch") == set()


def test_failing_count_counts_waiting_messages_that_failed_at_least_once(
    database: Database,
) -> None:
    queue(database, message("fresh"))
    queue(database, message("retrying"), message("retrying", "b"), attempts=2)
    queue(database, message("dead"), status=Status.DEAD.value, attempts=9)
    queue(database, message("sent"), status=Status.SENT.value, attempts=3)
    with database.session() as session:
        assert failing_count(session) == 2


def test_last_messages_give_each_sims_latest_message(database: Database) -> None:
    later = T0 + timedelta(hours=1)
    queue(database, message("s1-old", kind=Kind.EXPIRY), status="sent", sent_at=T0)
    queue(database, message("s1-new", kind=Kind.BALANCE), now=later)
    queue(database, message("s2", sim_id="s2"), status="sent", sent_at=later + timedelta(1))
    queue(database, message("admin", kind=Kind.ADMIN, sim_id=None), now=later)
    with database.session() as session:
        last = last_messages(session)
    assert last == {
        "s1": outbox.LastMessage("balance", "pending", later),  # not sent: when queued
        "s2": outbox.LastMessage("expiry", "sent", later + timedelta(1)),
    }


# --- dedup keys and kinds ---------------------------------------------------------------

SIMS = ("s1", "s2", "s1:x")
DAYS = (DEC_1, JAN_10)
KEY_INPUTS: dict[str, tuple[Callable[..., str], list[tuple[Any, ...]]]] = {
    "reminder_key": (
        outbox.reminder_key,
        list(itertools.product(SIMS, REMINDER_KINDS, DAYS, ("-7d", "0d", "+1d"))),
    ),
    "low_balance_key": (
        outbox.low_balance_key,
        list(itertools.product(SIMS, DAYS, (Decimal("900"), Decimal("900.50")))),
    ),
    "promotion_key": (outbox.promotion_key, list(itertools.product(("alice", "bob"), (1, 2, 12)))),
    "source_event_key": (
        outbox.source_event_key,
        list(itertools.product(("kcell-promo", "tele2"), ("failing", "recovered"), (1, 2))),
    ),
    "dead_letter_key": (outbox.dead_letter_key, [(1,), (2,), (12,)]),
    "config_invalid_key": (
        outbox.config_invalid_key,
        [("0123456789abcdef" + "0" * 48,), ("fedcba9876543210" + "0" * 48,)],
    ),
}


@pytest.mark.parametrize("builder", sorted(KEY_INPUTS))
def test_each_dedup_key_builder_gives_distinct_inputs_distinct_keys(builder: str) -> None:
    build, inputs = KEY_INPUTS[builder]
    keys = [build(*args) for args in inputs]
    assert len(set(keys)) == len(inputs)
    assert all(len(key) <= OutboxRow.dedup_key.type.length for key in keys)  # type: ignore[attr-defined]


def test_no_two_kinds_of_message_share_a_dedup_key() -> None:
    owners: dict[str, str] = {}
    for builder, (build, inputs) in KEY_INPUTS.items():
        for args in inputs:
            key = build(*args)
            assert owners.setdefault(key, builder) == builder, f"{builder} and {owners[key]}"


def test_the_planners_sql_key_is_the_same_as_the_python_one(database: Database) -> None:
    # The planner writes reminder keys in SQL, records and cancels compare them in Python.
    with database.session() as session:
        for sim_id, kind, target, offset in KEY_INPUTS["reminder_key"][1][:12]:
            sql = outbox.reminder_key_sql(
                literal(sim_id), literal(str(kind)), literal(target), literal(offset)
            )
            assert session.scalar(select(sql)) == outbox.reminder_key(sim_id, kind, target, offset)


def test_kind_names_every_reminder_kind_the_rules_produce() -> None:
    assert set(rules.KINDS) == {str(kind) for kind in REMINDER_KINDS}
    assert set(REMINDER_KINDS) <= set(Kind)
    assert all(len(kind) <= OutboxRow.kind.type.length for kind in Kind)  # type: ignore[attr-defined]


def test_every_kind_the_planner_and_records_write_is_a_kind(database: Database, sync: Sync) -> None:
    sync(
        """
timezone: Asia/Almaty
channels: {a: "console://"}
users:
  - name: alice
    notify: [a]
    sims:
      - id: s1
        operator: kcell
        number: "+77011234567"
        expires: 2026-12-01
        balance_check_every: 14d
        idle_limit: 90d
        last_paid_activity: 2026-09-01
        low_balance: 1000
"""
    )
    with database.session() as session:
        plan_due(session, datetime(2027, 6, 1, tzinfo=UTC))  # every target long past
        record_balance(session, "s1", Decimal("10"), datetime(2027, 6, 1, tzinfo=UTC), source="t")
    with database.session() as session:
        written = set(session.scalars(select(OutboxRow.kind)))
    assert written == {"expiry", "balance", "idle", "low_balance"}
    assert written <= {str(kind) for kind in Kind}
