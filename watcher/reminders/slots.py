"""The slot store: each SIM's upcoming reminders, as rows of the ``schedule`` table.

A SIM's slots are written under a *key*, the fingerprint of its schedule inputs.
When the inputs change (a renewal, an edited date), new slots are written under the
new key and the old ones simply stop matching: the planner only takes slots whose key
is the SIM's current one, and drops every slot once it comes due.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Select, Table, and_, select, update
from sqlalchemy.orm import Session

from watcher import outbox
from watcher.db.engine import dialect_insert
from watcher.db.models import ScheduleRow, SimRow, UserRow
from watcher.errors import WatcherError
from watcher.reminders.rules import not_yet_planned, sim_dates, slots_for

__all__ = [
    "UnplannableSim",
    "current_slots",
    "insert_slots",
    "reschedule",
    "sim_dates",
    "stop_reminders",
]


class UnplannableSim(WatcherError):
    """A SIM's stored dates give reminders outside the calendar (or cannot be read)."""

    def __init__(self, sim_id: str, reason: str) -> None:
        self.sim_id = sim_id
        self.reason = reason
        super().__init__(f"cannot plan the reminders of SIM {sim_id}: {reason}")


def reschedule(
    session: Session,
    row: SimRow,
    user: UserRow,
    *,
    fresh: bool = False,
    batch: list[dict[str, object]] | None = None,
) -> bool:
    """Write the SIM's slots under a new key if its schedule inputs changed; True if so.

    The slots written under the old key stay where they are and stop matching the SIM
    (the planner only takes slots whose key is the SIM's current one). An offset
    already planned (it has an outbox row) is never planned again, nor is any earlier
    offset of the same target; messages still waiting for targets that no longer
    apply are cancelled. ``fresh`` says the SIM is new, with nothing planned yet. New
    slots are appended to ``batch`` when given (the caller writes them all at once),
    else written here.

    Raises :class:`UnplannableSim`, having changed nothing, when a reminder would fall
    outside the calendar (``expires: 9999-12-31`` and a day after it) or the stored
    dates cannot be read.
    """
    if not row.active:
        return False
    # Everything that can fail comes before the first write: a SIM that cannot be
    # planned is left as it was.
    try:
        dates = sim_dates(row, user)
        key = dates.fingerprint()
        if key == row.schedule_key:
            return False
        slots = slots_for(dates)
    except (ValueError, OverflowError, LookupError) as exc:  # dates or stored text unusable
        raise UnplannableSim(row.id, str(exc)) from None
    row.schedule_key = key
    if not fresh:
        planned = outbox.planned_offsets(session, row.id)
        # The targets the SIM's dates still have, planned to the last offset or not.
        outbox.cancel_stale(session, row.id, {(slot.kind, slot.target) for slot in slots})
        slots = not_yet_planned(slots, planned)
    rows = [
        {
            "due_at": slot.due_at,
            "sim_id": row.id,
            "kind": slot.kind,
            "target": slot.target,
            "offset": slot.offset,
            "key": key,
        }
        for slot in slots
    ]
    if batch is not None:
        batch.extend(rows)
    else:
        session.flush()  # the SIM's new key before its slots
        insert_slots(session, rows)
    return True


def current_slots() -> Select[ScheduleRow]:
    """The slots written under their SIM's current key: the ones that can still be sent."""
    return select(ScheduleRow).join(
        SimRow, and_(SimRow.id == ScheduleRow.sim_id, SimRow.schedule_key == ScheduleRow.key)
    )


def insert_slots(session: Session, rows: list[dict[str, object]]) -> None:
    """Write schedule rows in one executemany; a slot already there takes the new key.

    (A slot of an earlier key can have the same primary key: the same due time for
    the same offset of the same target.)
    """
    if not rows:
        return
    table = cast(Table, ScheduleRow.__table__)
    upsert = dialect_insert(session.get_bind().dialect.name)(table)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=[column.name for column in table.primary_key],
            set_={"key": upsert.excluded.key},
        ),
        rows,
    )


def stop_reminders(session: Session, sim_id: str) -> None:
    """A removed SIM: its slots stop matching, its unsent messages are cancelled; its
    history stays."""
    outbox.cancel_pending(session, sim_id, "SIM removed from the config")
    session.execute(update(SimRow).where(SimRow.id == sim_id).values(schedule_key=""))
