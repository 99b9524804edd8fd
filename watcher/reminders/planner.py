"""Planning: turn due schedule slots into outbox rows, in two set-based statements.

The rule is :func:`watcher.reminders.rules.select_due`: for each (SIM, kind, target) only
the most urgent due slot becomes a message; older due slots of the same target are
superseded. Only slots written under the SIM's current ``schedule_key`` count (the
others belong to dates since changed). Then every due slot is deleted, a range of
the clustered table. Both statements run in one transaction, so a crash leaves either
nothing planned or everything planned, and the outbox's unique key on
(dedup_key, channel) makes a replay harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from watcher.db.models import OutboxRow, ScheduleRow, SimRow, UserChannel
from watcher.outbox import insert_planned, planned_columns

log = logging.getLogger(__name__)


_SCHEDULE = cast(Table, ScheduleRow.__table__)


# Two slots of one target are due at the same wall time on different local days, so
# normally 23 hours or more apart (a day with a DST jump is 23 hours long); the margin
# covers rarer zone changes. A backlog younger than this cannot hold two of them.
SAME_TARGET_APART = timedelta(hours=12)


@dataclass(frozen=True)
class _Statements:
    plan_backlog: Executable  # only the most urgent due slot of each target
    plan_recent: Executable  # every due slot: none can supersede another
    done: Executable
    lock: Executable  # deletes nothing; begins the write transaction on SQLite


@cache
def _statements(dialect: str) -> _Statements:
    """The planning statements, built once per dialect; ``:now`` is bound per pass."""
    now = bindparam("now", type_=OutboxRow.created_at.type)
    slot = aliased(ScheduleRow, name="slot")
    current = and_(SimRow.id == slot.sim_id, SimRow.active, SimRow.schedule_key == slot.key)
    # The due slots of current keys, numbered from the most urgent (the latest due)
    # within each (SIM, kind, target): number 1 is the one to send.
    ranked = (
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
        .join(SimRow, current)
        .where(slot.due_at <= now)
        .subquery("due")
    )
    backlog = _outbox_rows(ranked.c, now).where(ranked.c.urgency == 1)
    recent = (
        select(slot.sim_id, slot.kind, slot.target, slot.offset, SimRow.user_name)
        .join(SimRow, current)
        .where(slot.due_at <= now)
        .subquery("due")
    )
    return _Statements(
        plan_backlog=insert_planned(dialect, backlog),
        plan_recent=insert_planned(dialect, _outbox_rows(recent.c, now)),
        # Planned, superseded and stale slots leave the schedule; the outbox is the record.
        done=delete(_SCHEDULE).where(_SCHEDULE.c.due_at <= now),
        lock=delete(_SCHEDULE).where(false()),
    )


def _outbox_rows(due: Any, now: Any) -> Select[Any]:
    """One outbox row per (due slot, channel of its user)."""
    return select(*planned_columns(due, UserChannel.channel, now)).join(
        UserChannel, UserChannel.user_name == due.user_name
    )


def plan_due(session: Session, now: datetime) -> int:
    """Write an outbox row per channel for every slot due at ``now``; return rows written.

    Superseding needs a sort of the due slots by target; it is only done when the oldest
    slot is old enough for two slots of one target to be due together (after downtime,
    or slots written already due by a sync). A daemon running every 30 s never needs it.
    """
    dialect = session.get_bind().dialect.name
    statements = _statements(dialect)
    # Hold off other writers of the schedule first: a slot another process commits
    # between the statements below could be deleted unplanned (PostgreSQL reads each
    # statement afresh), or be planned by the path that does not supersede.
    if dialect == "postgresql":
        session.execute(text("LOCK TABLE schedule IN SHARE ROW EXCLUSIVE MODE"))
    else:
        session.execute(statements.lock)  # SQLite's write lock, by a write of no rows
    oldest = session.scalar(select(func.min(ScheduleRow.due_at)))
    if oldest is None or oldest > now:
        return 0
    plan = statements.plan_recent
    if oldest <= now - SAME_TARGET_APART:
        plan = statements.plan_backlog
    # psycopg keeps no row count for an INSERT ... SELECT unless SQLAlchemy is asked to.
    counted = {"preserve_rowcount": True}
    written = cast(
        CursorResult[Any], session.execute(plan, {"now": now}, execution_options=counted)
    ).rowcount
    taken = cast(CursorResult[Any], session.execute(statements.done, {"now": now})).rowcount
    if taken:
        log.info("planned %d reminder slots into %d messages", taken, written)
    return written
