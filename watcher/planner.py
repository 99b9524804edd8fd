"""Planning: turn due schedule slots into outbox rows, in two set-based statements.

The rule is :func:`watcher.schedule.select_due`: for each (SIM, kind, target) only
the most urgent due slot becomes a message; older due slots of the same target are
superseded. Both statements run in one transaction, so a crash leaves either
nothing planned or everything planned, and the outbox's unique key on
(dedup_key, channel) makes a replay harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, String, and_, exists, literal, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased

from watcher.db.models import OutboxRow, ScheduleRow, SimRow, UserChannel
from watcher.outbox import insert_ignoring_duplicates

log = logging.getLogger(__name__)


def plan_due(session: Session, now: datetime) -> int:
    """Write an outbox row per channel for every slot due at ``now``; return rows written."""
    slot = aliased(ScheduleRow, name="slot")
    later = aliased(ScheduleRow, name="later")
    due = and_(slot.status == "scheduled", slot.due_at <= now)
    superseded = exists().where(
        later.sim_id == slot.sim_id,
        later.kind == slot.kind,
        later.target == slot.target,
        later.status == "scheduled",
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
            literal(now, OutboxRow.created_at.type),
            literal(now, OutboxRow.next_attempt_at.type),
        )
        .select_from(slot)
        .join(SimRow, and_(SimRow.id == slot.sim_id, SimRow.active))
        .join(UserChannel, UserChannel.user_name == SimRow.user_name)
        .where(due, ~superseded)
    )
    columns = [
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
    insert = insert_ignoring_duplicates(session)
    statement = insert(OutboxRow).from_select(columns, rows).on_conflict_do_nothing()
    written = cast(CursorResult[Any], session.execute(statement)).rowcount
    marked_result = session.execute(
        update(ScheduleRow)
        .where(ScheduleRow.status == "scheduled", ScheduleRow.due_at <= now)
        .values(status="done")
        .execution_options(synchronize_session=False)
    )
    marked = cast(CursorResult[Any], marked_result).rowcount
    if marked:
        log.info("planned %d reminder slots into %d messages", marked, written)
    return written
