"""Bring the database in line with the config file.

Precedence: a value edited in the config file wins over recorded state; recorded
state (``watcher renew``, ``watcher balance``) wins over an unchanged config value.
A SIM removed from the config stops its reminders but keeps its history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, and_, delete, select, update
from sqlalchemy.orm import Session

from watcher.catalogue import Catalogue
from watcher.config import Config, SimConfig, UserConfig
from watcher.db.models import Event, OutboxRow, ScheduleRow, SimRow, UserChannel, UserRow
from watcher.durations import Duration
from watcher.outbox import dialect_insert
from watcher.schedule import (
    KINDS,
    SimDates,
    format_offsets,
    not_yet_planned,
    parse_offsets,
    slots_for,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncReport:
    added: int = 0
    updated: int = 0
    deactivated: int = 0
    rescheduled: int = 0


def channel_targets(config: Config, name: str) -> list[str]:
    """Delivery targets of a channel: ``name`` for its first URL, ``name#2``... for more."""
    urls = config.channels.get(name, [])
    return [name if i == 0 else f"{name}#{i + 1}" for i in range(len(urls))]


def sync_config(
    session: Session, config: Config, catalogue: Catalogue, now: datetime
) -> SyncReport:
    """Write users, channels and SIMs from ``config``; reschedule SIMs whose dates changed."""
    users = _sync_users(session, config)
    existing = {row.id: row for row in session.scalars(select(SimRow))}
    added = updated = rescheduled = 0
    seen: dict[str, tuple[SimRow, str, bool]] = {}
    for user, sim in config.sims():
        row = existing.get(sim.id)
        fresh = row is None
        if row is None:
            row = _new_row(sim, user, now)
            session.add(row)
            added += 1
            session.add(Event(sim_id=sim.id, at=now, kind="config", detail="added"))
        elif _apply(row, sim, user, session, now):
            updated += 1
        idle_limit = sim.idle_limit or catalogue.get(sim.operator).idle_limit
        row.idle_limit = str(idle_limit) if idle_limit else None
        seen[sim.id] = (row, user.name, fresh)
    session.flush()  # SIM rows first: their slots refer to them
    batch: list[dict[str, object]] = []
    for row, user_name, fresh in seen.values():
        if reschedule(session, row, users[user_name], fresh=fresh, batch=batch):
            rescheduled += 1
    insert_slots(session, batch)
    deactivated = 0
    for sim_id, row in existing.items():
        if sim_id not in seen and row.active:
            row.active = False
            deactivated += 1
            stop_reminders(session, sim_id)
            session.add(Event(sim_id=sim_id, at=now, kind="config", detail="removed from config"))
    if added or updated or deactivated:
        log.info(
            "config synced: %d SIMs added, %d changed, %d removed", added, updated, deactivated
        )
    return SyncReport(added, updated, deactivated, rescheduled)


def _sync_users(session: Session, config: Config) -> dict[str, UserRow]:
    rows = {row.name: row for row in session.scalars(select(UserRow))}
    for user in config.users:
        row = rows.get(user.name)
        if row is None:
            row = rows[user.name] = UserRow(name=user.name)
            session.add(row)
        row.timezone = str(config.user_timezone(user))
        row.language = user.language
        row.remind_at = config.user_remind_at(user).strftime("%H:%M")
        row.quiet_hours = str(user.quiet_hours) if user.quiet_hours else None
        row.active = True
    listed = {user.name for user in config.users}
    for name, row in rows.items():
        if name not in listed:
            row.active = False
    session.flush()
    wanted = {
        (user.name, target)
        for user in config.users
        for name in user.notify
        for target in channel_targets(config, name)
    }
    stored = {
        (user_name, channel)
        for user_name, channel in session.execute(
            select(UserChannel.user_name, UserChannel.channel)
        )
    }
    for user_name, channel in stored - wanted:
        session.execute(
            delete(UserChannel).where(
                UserChannel.user_name == user_name, UserChannel.channel == channel
            )
        )
    session.add_all(UserChannel(user_name=u, channel=c) for u, c in wanted - stored)
    return rows


def _new_row(sim: SimConfig, user: UserConfig, now: datetime) -> SimRow:
    row = SimRow(
        id=sim.id,
        first_seen_at=now,
        expires=sim.expires,
        cfg_expires=sim.expires,
        last_balance_check=sim.last_balance_check,
        cfg_last_balance_check=sim.last_balance_check,
        last_paid_activity=sim.last_paid_activity,
        cfg_last_paid_activity=sim.last_paid_activity,
        schedule_key="",
    )
    _copy_settings(row, sim, user)
    return row


def _copy_settings(row: SimRow, sim: SimConfig, user: UserConfig) -> None:
    row.user_name = user.name
    row.operator = sim.operator
    row.number = sim.number
    row.plan = sim.plan
    row.active = True
    row.renew_every = _text(sim.renew_every)
    row.remind_before = format_offsets(sim.remind_before)
    row.remind_after = format_offsets(sim.remind_after)
    row.balance_check_every = _text(sim.balance_check_every)
    row.low_balance = sim.low_balance


def _apply(row: SimRow, sim: SimConfig, user: UserConfig, session: Session, now: datetime) -> bool:
    """Update an existing row; True if a date the user edited in the config took effect."""
    changed = False
    for field in ("expires", "last_balance_check", "last_paid_activity"):
        configured: date | None = getattr(sim, field)
        if configured != getattr(row, f"cfg_{field}"):
            # Edited in the config file since we last read it: the edit wins.
            old = getattr(row, field)
            setattr(row, f"cfg_{field}", configured)
            setattr(row, field, configured)
            changed = True
            session.add(
                Event(
                    sim_id=row.id, at=now, kind="config", detail=f"{field}: {old} -> {configured}"
                )
            )
    if not row.active:
        session.add(Event(sim_id=row.id, at=now, kind="config", detail="back in config"))
        changed = True
    _copy_settings(row, sim, user)
    return changed


def _text(value: Duration | None) -> str | None:
    return None if value is None else str(value)


def sim_dates(row: SimRow, user: UserRow) -> SimDates:
    """The schedule inputs of a stored SIM, in its user's time zone and hour."""
    hour, minute = (int(part) for part in user.remind_at.split(":"))
    return SimDates(
        timezone=ZoneInfo(user.timezone),
        remind_at=time(hour, minute),
        first_seen=row.first_seen_at,
        expires=row.expires,
        remind_before=parse_offsets(row.remind_before),
        remind_after=parse_offsets(row.remind_after),
        balance_check_every=_duration(row.balance_check_every),
        last_balance_check=row.last_balance_check,
        idle_limit=_duration(row.idle_limit),
        last_paid_activity=row.last_paid_activity,
    )


def _duration(text: str | None) -> Duration | None:
    return None if text is None else Duration.parse(text)


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
    """
    if not row.active:
        return False
    dates = sim_dates(row, user)
    key = dates.fingerprint()
    if key == row.schedule_key:
        return False
    row.schedule_key = key
    slots = slots_for(dates)
    if not fresh:
        planned = {
            (kind, target, offset)
            for kind, target, offset in session.execute(
                select(OutboxRow.kind, OutboxRow.target, OutboxRow.offset).where(
                    OutboxRow.sim_id == row.id, OutboxRow.kind.in_(KINDS)
                )
            )
            if target is not None and offset is not None
        }
        # The targets the SIM's dates still have, planned to the last offset or not.
        _cancel_stale_outbox(session, row.id, {(slot.kind, slot.target) for slot in slots})
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


def _cancel_stale_outbox(session: Session, sim_id: str, current: set[tuple[str, date]]) -> None:
    pending = session.execute(
        select(OutboxRow.id, OutboxRow.kind, OutboxRow.target).where(
            OutboxRow.sim_id == sim_id,
            OutboxRow.status == "pending",
            OutboxRow.kind.in_(("expiry", "balance", "idle")),
        )
    ).all()
    stale = [row_id for row_id, kind, target in pending if (kind, target) not in current]
    if stale:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(stale))
            .values(status="cancelled", last_error="superseded: the date it reminded of changed")
        )


def stop_reminders(session: Session, sim_id: str) -> None:
    """A removed SIM: its slots stop matching, its unsent messages are cancelled; its
    history stays."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.sim_id == sim_id, OutboxRow.status == "pending")
        .values(status="cancelled", last_error="SIM removed from the config")
    )
    session.execute(update(SimRow).where(SimRow.id == sim_id).values(schedule_key=""))
