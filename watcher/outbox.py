"""The outbox: every message SIM Watcher sends is a row here first, and only here.

This module owns the rows. Everything that reads or writes them is below: enqueueing
(with the dedup keys that make a replay harmless), claiming due rows for a sender,
marking them sent, recording a failure or a death, cancelling what no longer applies,
releasing or taking over the claims of senders that died, and reporting to the admin.
Delivery decides *when* and *how* to send; this module keeps the bookkeeping consistent.

A row is unique on ``(dedup_key, channel)``: whatever queues the same message twice
(a planner replay, two processes racing, a rerun after a crash) queues it once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Select,
    String,
    Table,
    and_,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from watcher import heartbeat
from watcher.db.engine import Database, dialect_insert
from watcher.db.models import OutboxRow
from watcher.db.plain import LastMessage  # defined there: status reads it without SQLAlchemy

if TYPE_CHECKING:
    from watcher.messages import Message

log = logging.getLogger(__name__)

__all__ = [
    "CLAIM_LEASE",
    "SENDER_DEAD",
    "Kind",
    "LastMessage",
    "NewMessage",
    "Status",
    "admin_messages",
    "cancel_pending",
    "cancel_stale",
    "claim",
    "claim_owner",
    "config_invalid_key",
    "config_mismatch_key",
    "dead_letter_key",
    "due_rows",
    "enqueue",
    "failing_count",
    "hold",
    "insert_planned",
    "last_messages",
    "low_balance_key",
    "mark_sent",
    "planned_columns",
    "planned_offsets",
    "promotion_key",
    "record_failure",
    "release_claims",
    "release_own_claims",
    "reminder_key",
    "reminder_key_sql",
    "renew_claims",
    "report_to_admin",
    "selectors_stale_key",
    "source_event_key",
    "unplannable_key",
]


class Status(StrEnum):
    """Where a row is in its life: pending until sent, or until it is given up."""

    PENDING = "pending"
    SENT = "sent"
    CANCELLED = "cancelled"  # no longer applies (renewed, superseded, SIM removed)
    DEAD = "dead"  # failed for too long; the admin was told


class Kind(StrEnum):
    """What a message is about."""

    EXPIRY = "expiry"
    BALANCE = "balance"
    IDLE = "idle"
    LOW_BALANCE = "low_balance"
    PROMOTION = "promotion"
    ADMIN = "admin"


REMINDER_KINDS = (Kind.EXPIRY, Kind.BALANCE, Kind.IDLE)
"""The kinds the planner writes from schedule slots."""

# A claimed row is left alone by other senders for this long; claims of a sender
# that died on this host are released at once by the next start (release_claims).
CLAIM_LEASE = timedelta(minutes=5)
# A daemon beats its replica heartbeat row every 10 s. One whose newest beat is older
# than this has missed several beats in a row: it died (or is cut off from the database,
# where it can record nothing anyway), and due_rows hands its claims to the others.
# Several beats, not one: a slow commit or a few seconds of clock skew between hosts
# must not make a live daemon's rows go out twice.
SENDER_DEAD = timedelta(seconds=60)


# --- dedup keys: one builder per kind of message ----------------------------------------


def reminder_key(sim_id: str, kind: str, target: date, offset: str) -> str:
    """A reminder slot's message: one per (SIM, kind, target date, offset)."""
    return f"{sim_id}:{kind}:{target.isoformat()}:{offset}"


def reminder_key_sql(
    sim_id: ColumnElement[Any],
    kind: ColumnElement[Any],
    target: ColumnElement[Any],
    offset: ColumnElement[Any],
) -> ColumnElement[str]:
    """:func:`reminder_key` as SQL, for the planner's set-based INSERT."""
    return (
        sim_id
        + literal(":")
        + kind
        + literal(":")
        + sql_cast(target, String)
        + literal(":")
        + offset
    )


def low_balance_key(sim_id: str, day: date, amount: Decimal) -> str:
    """A low-balance alert, named by the check that began its episode (one per episode)."""
    return f"{sim_id}:low_balance:{day.isoformat()}:{amount}"


def promotion_key(user: str, first_alert_id: int) -> str:
    """A user's promotion message (an alert or a digest), named by its first alert."""
    return f"promo:{user}:{first_alert_id}"


def source_event_key(source_id: str, event: str, run: int) -> str:
    """An admin message about a promotion source (failing, recovered...) in one run."""
    return f"source:{source_id}:{event}:{run}"


def selectors_stale_key(source_id: str, spec: str) -> str:
    """The admin message that a source's selectors (this version of them) stopped matching."""
    return f"source:{source_id}:selectors-stale:{spec[:16]}"


def dead_letter_key(row_id: int) -> str:
    """The admin message saying that row ``row_id`` was given up."""
    return f"dead:{row_id}"


def unplannable_key(sim_id: str, reason: str) -> str:
    """The admin message that a SIM's reminders are paused, once per SIM and reason."""
    return f"unplannable:{sim_id}:{hashlib.sha256(reason.encode()).hexdigest()[:16]}"


def config_mismatch_key(digests: Sequence[str]) -> str:
    """The admin message that replicas run different config files, once per set."""
    return f"config-mismatch:{'-'.join(sorted(digests))}"[:200]


def config_invalid_key(version: str) -> str:
    """The admin message about one bad version of the config file (its digest)."""
    return f"config-invalid:{version[:16]}"


# --- writing new messages ----------------------------------------------------------------


@dataclass(frozen=True)
class NewMessage:
    """A message for one delivery target. Without a title it is rendered when first sent."""

    dedup_key: str
    channel: str
    kind: Kind
    user_name: str | None = None
    sim_id: str | None = None
    target: date | None = None
    offset: str | None = None
    title: str | None = None
    body: str | None = None


def enqueue(session: Session, messages: Sequence[NewMessage], now: datetime) -> None:
    """Add messages unless already there (same dedup key and channel)."""
    if not messages:
        return
    insert = dialect_insert(session.get_bind().dialect.name)
    statement: Insert = insert(OutboxRow).on_conflict_do_nothing(
        index_elements=["dedup_key", "channel"]
    )
    values = [
        {
            "dedup_key": message.dedup_key,
            "channel": message.channel,
            "kind": str(message.kind),
            "user_name": message.user_name,
            "sim_id": message.sim_id,
            "target": message.target,
            "offset": message.offset,
            "title": message.title,
            "body": message.body,
            "status": Status.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for message in messages
    ]
    session.execute(statement, values)


def admin_messages(key: str, targets: Sequence[str], message: Message) -> list[NewMessage]:
    """One admin message per target, all under one key."""
    return [
        NewMessage(key, target, Kind.ADMIN, title=message.title, body=message.body)
        for target in targets
    ]


def report_to_admin(
    database: Database, admin_targets: Sequence[str], key: str, message: Message, now: datetime
) -> None:
    """Queue a message about the daemon's own trouble for the admin channels, once per key."""
    if not admin_targets:
        log.error("%s (no admin channel configured)", message.title)
        return
    with database.session() as session:
        enqueue(session, admin_messages(key, admin_targets, message), now)


_PLANNED_COLUMNS = (
    "dedup_key",
    "channel",
    "user_name",
    "sim_id",
    "kind",
    "target",
    "offset",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
)


def planned_columns(due: Any, channel: Any, now: Any) -> list[Any]:
    """The columns of a pending reminder row, for a SELECT feeding :func:`insert_planned`.

    ``due`` has the columns sim_id, kind, target, offset and user_name (a subquery's
    ``.c``); ``channel`` is the channel column joined to it; ``now`` a bound parameter.
    """
    return [
        reminder_key_sql(due.sim_id, due.kind, due.target, due.offset),
        channel,
        due.user_name,
        due.sim_id,
        due.kind,
        due.target,
        due.offset,
        literal(Status.PENDING.value),
        literal(0),
        now,
        now,
    ]


def insert_planned(dialect: str, rows: Select[Any]) -> Insert:
    """INSERT the rows a SELECT of :func:`planned_columns` gives; replays add nothing."""
    # Core table, not the ORM entity: the session would take ``{now: ...}`` for an ORM
    # bulk insert's rows.
    table = cast(Table, OutboxRow.__table__)
    statement: Insert = (
        dialect_insert(dialect)(table)
        .from_select(list(_PLANNED_COLUMNS), rows)
        .on_conflict_do_nothing()
    )
    return statement


# --- claiming and recording -------------------------------------------------------------

# Tells this process from an earlier one with the same pid (a restarted container's
# daemon is pid 1 every time): the tokens of every owner made in this process.
_RUN_TOKEN = uuid.uuid4().hex[:8]
_OWN_TOKENS = {_RUN_TOKEN}


def claim_owner(replica: str | None = None) -> str:
    """Who claims rows: ``host:pid:token``, so a later start can tell dead senders' claims.

    The token is a daemon's replica id (its heartbeat row says whether it still runs),
    else one per process (a ``run --once``, a CLI send: no heartbeat, the lease applies).
    """
    token = replica or _RUN_TOKEN
    _OWN_TOKENS.add(token)
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def due_rows(
    session: Session,
    now: datetime,
    *,
    limit: int,
    skip_locked: bool,
    skip_channels: Collection[str] = (),
) -> Sequence[OutboxRow]:
    """Pending rows due at ``now`` and not claimed by a live sender, oldest first.

    A claim holds for CLAIM_LEASE, or until its owner's replica heartbeat is SENDER_DEAD
    old, whichever comes first. ``skip_locked`` (PostgreSQL) lets concurrent senders
    each take different rows. Rows for ``skip_channels`` (a sender's backlog for them
    is long enough already) are left for later.
    """
    dead = _dead_owners(session, now)
    free = [OutboxRow.claimed_at.is_(None), OutboxRow.claimed_at < now - CLAIM_LEASE]
    if dead:
        free.append(OutboxRow.claimed_by.in_(list(dead)))
    query = (
        select(OutboxRow)
        .where(OutboxRow.status == Status.PENDING, OutboxRow.next_attempt_at <= now, or_(*free))
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if skip_channels:
        query = query.where(OutboxRow.channel.not_in(sorted(skip_channels)))
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rows = session.scalars(query).all()
    if dead:
        _log_takeover(rows, dead, now)
    return rows


@dataclass(frozen=True)
class _DeadReplica:
    replica: str
    last_beat: datetime


def _dead_owners(session: Session, now: datetime) -> dict[str, _DeadReplica]:
    """The owners of claims still within their lease whose replica stopped beating.

    Two small queries: the distinct owners of pending claimed rows (one per sender),
    then the newest beats of their replicas. An owner without a heartbeat row is not
    here: nothing says it stopped, so its lease runs out instead. Nor is anyone while no
    replica has beaten steadily for SENDER_DEAD: after a database outage every beat is
    old, and a replica back later than this one may hold rows it sent but could not
    mark yet; it gets SENDER_DEAD to beat again.
    """
    owners = session.scalars(
        select(OutboxRow.claimed_by)
        .where(
            OutboxRow.status == Status.PENDING,
            OutboxRow.next_attempt_at <= now,
            OutboxRow.claimed_at >= now - CLAIM_LEASE,
            OutboxRow.claimed_by.is_not(None),
        )
        .distinct()
    ).all()
    replica_of = {owner: owner.rsplit(":", 1)[-1] for owner in owners if owner}
    beats = heartbeat.newest_replica_beats(session, set(replica_of.values()))
    dead = {
        owner: _DeadReplica(replica, beats[replica])
        for owner, replica in replica_of.items()
        if replica in beats and beats[replica] < now - SENDER_DEAD
    }
    if dead and not heartbeat.steady_replica(session, now, SENDER_DEAD):
        log.debug("%d senders look dead, but no replica has beaten steadily: waiting", len(dead))
        return {}
    return dead


def _log_takeover(rows: Sequence[OutboxRow], dead: dict[str, _DeadReplica], now: datetime) -> None:
    taken = Counter(dead[row.claimed_by] for row in rows if row.claimed_by in dead)
    for gone, count in taken.items():
        # Its delivery concurrency is not recorded anywhere: how many were really on
        # their way when it stopped is not known here, only that it is a few at most.
        log.warning(
            "replica %s has not beaten for %d s; taking over the %d messages it had "
            "claimed (some of them may arrive twice: those it was sending when it stopped)",
            gone.replica,
            (now - gone.last_beat).total_seconds(),
            count,
        )


def hold(row: OutboxRow, until: datetime) -> None:
    """Leave a due row for later (quiet hours) without counting an attempt."""
    row.next_attempt_at = until


def claim(
    row: OutboxRow, now: datetime, title: str, body: str, *, owner: str | None = None
) -> None:
    """Take a row for sending by ``owner`` (default: this process), text rendered and kept."""
    row.title, row.body = title, body
    row.claimed_at = now
    row.claimed_by = owner or claim_owner()


def mark_sent(connection: Connection, row_ids: Sequence[int], now: datetime) -> None:
    """Mark rows sent, in one statement.

    A row cancelled while a sender held it (``watcher renew`` during the send) went
    out all the same, so the sent mark wins and the history stays true. Rows cancelled
    before anyone claimed them, and rows already sent or dead, are left as they are.
    """
    connection.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id.in_(row_ids),
            or_(
                OutboxRow.status == Status.PENDING,
                and_(OutboxRow.status == Status.CANCELLED, OutboxRow.claimed_by.is_not(None)),
            ),
        )
        .values(
            status=Status.SENT.value,
            sent_at=now,
            attempts=OutboxRow.attempts + 1,
            claimed_at=None,
            claimed_by=None,
            last_error=None,
        )
    )


def record_failure(
    session: Session,
    row_id: int,
    error: str | None,
    now: datetime,
    *,
    give_up_after: timedelta,
    retry_delay: Callable[[int], timedelta],
) -> OutboxRow | None:
    """Count a failed attempt: retry after ``retry_delay(attempts)``, or mark the row dead.

    A row is dead once its first attempt is ``give_up_after`` old. Returns the row, or
    None if it is no longer pending (cancelled or sent meanwhile).
    """
    row = session.get(OutboxRow, row_id)
    if row is None or row.status != Status.PENDING:
        return None
    row.attempts += 1
    row.claimed_at = None
    row.claimed_by = None
    row.first_attempt_at = row.first_attempt_at or now
    row.last_error = error
    if now - row.first_attempt_at >= give_up_after:
        row.status = Status.DEAD.value
    else:
        row.next_attempt_at = now + retry_delay(row.attempts)
    return row


def release_claims(database: Database) -> int:
    """Free the rows held by senders on this host that are no longer running.

    Their messages may or may not have gone out before the sender died; they are
    sent again (the "at most the messages in flight" duplicates). Claims of live
    senders (a daemon next to a ``run --once``) are left alone, and claims from
    other hosts simply expire after CLAIM_LEASE.
    """
    host = socket.gethostname()
    with database.session() as session:
        owners = session.scalars(
            select(OutboxRow.claimed_by)
            .where(OutboxRow.status == Status.PENDING, OutboxRow.claimed_by.is_not(None))
            .distinct()
        ).all()
        dead = [owner for owner in owners if owner and _is_dead(owner, host)]
        if not dead:
            return 0
        # Counted by RETURNING: a driver may report -1 as a row count.
        released = session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == Status.PENDING, OutboxRow.claimed_by.in_(dead))
            .values(claimed_at=None, claimed_by=None)
            .returning(OutboxRow.id)
        )
        return len(released.all())


def release_own_claims(
    connection: Connection, row_ids: Sequence[int], *, owner: str | None = None
) -> int:
    """Give back rows ``owner`` (default: this process) claimed but did not send, so any
    sender takes them now.

    Only rows still pending and still claimed by that owner are touched: one whose
    lease ran out and that another sender took, or one sent meanwhile, stays as it is.
    Returns how many were released.
    """
    return _update_own_claims(
        connection, row_ids, owner or claim_owner(), claimed_at=None, claimed_by=None
    )


def renew_claims(
    connection: Connection, row_ids: Sequence[int], now: datetime, *, owner: str
) -> int:
    """Renew ``owner``'s claims on ``row_ids`` (rows waiting their turn under a slow
    service's limit), so no sender takes them for a lapsed lease. Returns how many."""
    return _update_own_claims(connection, row_ids, owner, claimed_at=now)


def _update_own_claims(
    connection: Connection, row_ids: Sequence[int], owner: str, **values: object
) -> int:
    """Set ``values`` on those of ``row_ids`` still pending and claimed by ``owner``;
    how many (counted by RETURNING: a driver may report -1 as a row count)."""
    if not row_ids:
        return 0
    updated = connection.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id.in_(row_ids),
            OutboxRow.status == Status.PENDING,
            OutboxRow.claimed_by == owner,
        )
        .values(**values)
        .returning(OutboxRow.id)
    )
    return len(updated.all())


def _is_dead(owner: str, host: str) -> bool:
    owner_host, pid_text, token = [*owner.rsplit(":", 2), "", ""][:3]
    if owner_host != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token not in _OWN_TOKENS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


# --- cancelling what no longer applies ---------------------------------------------------


def cancel_pending(
    session: Session, sim_id: str, reason: str, kinds: Sequence[str] | None = None
) -> None:
    """Stop a SIM's unsent messages (of ``kinds``, else all): renewed, checked, removed.

    A row a sender is sending right now is cancelled too; if it goes out all the
    same, :func:`mark_sent` records it as sent.
    """
    statement = update(OutboxRow).where(
        OutboxRow.sim_id == sim_id, OutboxRow.status == Status.PENDING
    )
    if kinds is not None:
        statement = statement.where(OutboxRow.kind.in_(kinds))
    session.execute(statement.values(status=Status.CANCELLED.value, last_error=reason))


def cancel_stale(session: Session, sim_id: str, current: set[tuple[str, date]]) -> None:
    """Cancel a SIM's pending reminders whose (kind, target) is not in ``current``."""
    pending = session.execute(
        select(OutboxRow.id, OutboxRow.kind, OutboxRow.target).where(
            OutboxRow.sim_id == sim_id,
            OutboxRow.status == Status.PENDING,
            OutboxRow.kind.in_(REMINDER_KINDS),
        )
    ).all()
    stale = [row_id for row_id, kind, target in pending if (kind, target) not in current]
    if stale:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(stale))
            .values(
                status=Status.CANCELLED.value,
                last_error="superseded: the date it reminded of changed",
            )
        )


# --- reading -----------------------------------------------------------------------------


def planned_offsets(session: Session, sim_id: str) -> set[tuple[str, date, str]]:
    """The (kind, target, offset) reminders already queued for a SIM, sent or not."""
    return {
        (kind, target, offset)
        for kind, target, offset in session.execute(
            select(OutboxRow.kind, OutboxRow.target, OutboxRow.offset).where(
                OutboxRow.sim_id == sim_id, OutboxRow.kind.in_(REMINDER_KINDS)
            )
        )
        if target is not None and offset is not None
    }


def failing_count(session: Session) -> int:
    """Messages still waiting after at least one failed attempt."""
    query = (
        select(func.count())
        .select_from(OutboxRow)
        .where(OutboxRow.status == Status.PENDING, OutboxRow.attempts > 0)
    )
    return session.scalar(query) or 0


def last_messages(session: Session, *, user_name: str | None = None) -> dict[str, LastMessage]:
    """The latest message of each SIM that has one (of ``user_name``'s SIMs, if given)."""
    query = select(func.max(OutboxRow.id)).where(OutboxRow.sim_id.is_not(None))
    if user_name is not None:
        query = query.where(OutboxRow.user_name == user_name)
    latest = query.group_by(OutboxRow.sim_id).scalar_subquery()
    rows = session.execute(
        select(
            OutboxRow.sim_id,
            OutboxRow.kind,
            OutboxRow.status,
            OutboxRow.sent_at,
            OutboxRow.created_at,
        ).where(OutboxRow.id.in_(latest))
    )
    return {
        row.sim_id: LastMessage(row.kind, row.status, row.sent_at or row.created_at)
        for row in rows
        if row.sim_id is not None
    }
