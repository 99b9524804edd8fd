"""Bring the database in line with the config file.

Precedence: a value edited in the config file wins over recorded state; recorded
state (``watcher renew``, ``watcher balance``) wins over an unchanged config value.
A SIM removed from the config stops its reminders but keeps its history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from watcher import outbox
from watcher.config import LoadedConfig, SimConfig, UserConfig
from watcher.db.models import Event, SimRow, UserChannel, UserRow
from watcher.db.plain import LOADED_KIND, NO_SIM, LoadedRecord  # status reads them there too
from watcher.durations import Duration
from watcher.leases import hold_for_sync
from watcher.masking import mask_phone
from watcher.messages import Message
from watcher.reminders.rules import format_offsets
from watcher.reminders.slots import UnplannableSim, insert_slots, reschedule, stop_reminders

log = logging.getLogger(__name__)


def record_loaded(session: Session, loaded: LoadedConfig, now: datetime) -> None:
    """Note that the daemon now runs on ``loaded`` (compared by ``watcher status``)."""
    session.add(
        Event(sim_id=NO_SIM, at=now, kind=LOADED_KIND, detail=f"{loaded.digest} {loaded.path}")
    )


def last_loaded(session: Session) -> LoadedRecord | None:
    """What :func:`record_loaded` wrote last; None if no daemon has run on this database."""
    event = session.scalars(
        select(Event)
        .where(Event.sim_id == NO_SIM, Event.kind == LOADED_KIND)
        .order_by(Event.at.desc(), Event.id.desc())
        .limit(1)
    ).first()
    if event is None:
        return None
    digest, _, path = event.detail.partition(" ")
    return LoadedRecord(digest=digest, at=event.at, path=path)


@dataclass(frozen=True)
class SyncReport:
    added: int = 0
    updated: int = 0
    deactivated: int = 0
    rescheduled: int = 0
    unplannable: int = 0  # SIMs whose dates cannot be planned: paused, the admin told


def sync_config(session: Session, loaded: LoadedConfig, now: datetime) -> SyncReport:
    """Write users, channels and SIMs from ``loaded``; reschedule SIMs whose dates changed."""
    config, catalogue = loaded.config, loaded.catalogue
    hold_for_sync(session)  # replicas starting together sync one after the other
    users = _sync_users(session, loaded)
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
        row.idle_limit = idle_limit.stored if idle_limit else None
        seen[sim.id] = (row, user.name, fresh)
    session.flush()  # SIM rows first: their slots refer to them
    batch: list[dict[str, object]] = []
    unplannable = 0
    for row, user_name, fresh in seen.values():
        try:
            if reschedule(session, row, users[user_name], fresh=fresh, batch=batch):
                rescheduled += 1
        except UnplannableSim as exc:  # one SIM's dates never stop the others (or the daemon)
            unplannable += 1
            _pause(session, loaded, row, exc, now)
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
    return SyncReport(added, updated, deactivated, rescheduled, unplannable)


def _pause(
    session: Session, loaded: LoadedConfig, row: SimRow, exc: UnplannableSim, now: datetime
) -> None:
    """A SIM whose dates cannot be planned: no reminders for it, logged, the admin told once.

    Its slots stop matching (they were for dates it no longer has); the next sync tries
    again, and a change of its dates (an edit, ``watcher renew``) plans it as usual.
    """
    row.schedule_key = ""
    number = mask_phone(row.number)
    log.error("SIM %s (%s): reminders paused: %s", row.id, number, exc.reason)
    message = Message(
        f"SIM Watcher: reminders of SIM {row.id} are paused",
        f"SIM {row.id} ({number}) of {row.user_name}: {exc.reason}. No reminders are planned "
        "for it until its dates are fixed (edit the config file, or run watcher renew).",
    )
    targets = loaded.admin_targets()
    if targets:
        key = outbox.unplannable_key(row.id, exc.reason)
        outbox.enqueue(session, outbox.admin_messages(key, targets, message), now)


def _sync_users(session: Session, loaded: LoadedConfig) -> dict[str, UserRow]:
    config = loaded.config
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
        for target in loaded.channels.targets(name)
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
    return None if value is None else value.stored
