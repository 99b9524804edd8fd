"""Planning: turn due schedule slots into outbox rows, in two set-based statements.

The rule is :func:`watcher.schedule.select_due`: for each (SIM, kind, target) only
the most urgent due slot becomes a message; older due slots of the same target are
superseded. Then every due slot is deleted. Both statements run in one transaction,
so a crash leaves either nothing planned or everything planned, and the outbox's
unique key on (dedup_key, channel) makes a replay harmless.
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
    exists,
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
    later = aliased(ScheduleRow, name="later")
    superseded = exists().where(
        later.sim_id == slot.sim_id,
        later.kind == slot.kind,
        later.target == slot.target,
        later.due_at <= now,
        later.due_at > slot.due_at,
    )
    dedup_key = (
        slot.sim_id
        + literal(":")
        + slot.kind
        + literal(":")
        + sql_cast(slot.target, String)
        + literal(":")
        + slot.offset
    )
    rows = (
        select(
            dedup_key,
            UserChannel.channel,
            SimRow.user_name,
            slot.sim_id,
            slot.kind,
            slot.target,
            slot.offset,
            literal("pending"),
            literal(0),
            now,
            now,
        )
        .select_from(slot)
        .join(SimRow, and_(SimRow.id == slot.sim_id, SimRow.active))
        .join(UserChannel, UserChannel.user_name == SimRow.user_name)
        .where(slot.due_at <= now, ~superseded)
    )
    insert = dialect_insert(dialect)
    # Core tables, not ORM entities: the session would take ``{now: ...}`` for an ORM
    # bulk insert's rows.
    plan = insert(_OUTBOX).from_select(_COLUMNS, rows).on_conflict_do_nothing()
    # Planned (or superseded) slots leave the schedule; the outbox is their record.
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
