"""Planning: turn due schedule slots into outbox rows, in two set-based statements.

The rule is :func:`watcher.schedule.select_due`: for each (SIM, kind, target) only
the most urgent due slot becomes a message; older due slots of the same target are
superseded. Only slots written under the SIM's current ``schedule_key`` count (the
others belong to dates since changed). Then every due slot is deleted, a range of
the clustered table. Both statements run in one transaction, so a crash leaves either
nothing planned or everything planned, and the outbox's unique key on
(dedup_key, channel) makes a replay harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased

from watcher.db.models import OutboxRow, ScheduleRow, SimRow, UserChannel
from watcher.outbox import dialect_insert

log = logging.getLogger(__name__)


_OUTBOX = cast(Table, OutboxRow.__table__)
_SCHEDULE = cast(Table, ScheduleRow.__table__)
_COLUMNS = [
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
]


@cache
def _statements(dialect: str) -> tuple[Executable, Executable]:
    """The two planning statements, built once per dialect; ``:now`` is bound per pass."""
    now = bindparam("now", type_=OutboxRow.created_at.type)
    slot = aliased(ScheduleRow, name="slot")
    # The due slots of current keys, numbered from the most urgent (the latest due)
    # within each (SIM, kind, target): number 1 is the one to send.
    due = (
        select(
            slot.sim_id,
            slot.kind,
            slot.target,
            slot.offset,
            SimRow.user_name,
            func.row_number()
            .over(
                partition_by=(slot.sim_id, slot.kind, slot.target),
                order_by=slot.due_at.desc(),
            )
            .label("urgency"),
        )
        .join(
            SimRow,
            and_(SimRow.id == slot.sim_id, SimRow.active, SimRow.schedule_key == slot.key),
        )
        .where(slot.due_at <= now)
        .subquery("due")
    )
    dedup_key = (
        due.c.sim_id
        + literal(":")
        + due.c.kind
        + literal(":")
        + sql_cast(due.c.target, String)
        + literal(":")
        + due.c.offset
    )
    rows = (
        select(
            dedup_key,
            UserChannel.channel,
            due.c.user_name,
            due.c.sim_id,
            due.c.kind,
            due.c.target,
            due.c.offset,
            literal("pending"),
            literal(0),
            now,
            now,
        )
        .select_from(due)
        .join(UserChannel, UserChannel.user_name == due.c.user_name)
        .where(due.c.urgency == 1)
    )
    insert = dialect_insert(dialect)
    # Core tables, not ORM entities: the session would take ``{now: ...}`` for an ORM
    # bulk insert's rows.
    plan = insert(_OUTBOX).from_select(_COLUMNS, rows).on_conflict_do_nothing()
    # Planned, superseded and stale slots leave the schedule; the outbox is the record.
    done = delete(_SCHEDULE).where(_SCHEDULE.c.due_at <= now)
    return plan, done


def plan_due(session: Session, now: datetime) -> int:
    """Write an outbox row per channel for every slot due at ``now``; return rows written."""
    plan, done = _statements(session.get_bind().dialect.name)
    written = cast(CursorResult[Any], session.execute(plan, {"now": now})).rowcount
    taken = cast(CursorResult[Any], session.execute(done, {"now": now})).rowcount
    if taken:
        log.info("planned %d reminder slots into %d messages", taken, written)
    return written
