"""What ``watcher status`` shows: every active SIM's effective dates and last message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from watcher import outbox
from watcher.db.models import SimRow, UserRow
from watcher.reminders.rules import balance_target, idle_deadline
from watcher.reminders.slots import sim_dates

__all__ = ["SimStatus", "sim_statuses"]


@dataclass(frozen=True)
class SimStatus:
    """One SIM as stored, with the dates its reminders are about."""

    user: str
    sim_id: str
    number: str  # as stored: mask it before showing it
    operator: str  # the operator id
    zone: ZoneInfo  # the user's
    today: date  # in the user's time zone
    expires: date | None
    next_balance_check: date | None
    balance: Decimal | None
    idle_deadline: date | None
    last_message: outbox.LastMessage | None

    @property
    def days_left(self) -> int | None:
        return None if self.expires is None else (self.expires - self.today).days


def sim_statuses(
    session: Session, now: datetime, *, user_name: str | None = None
) -> list[SimStatus]:
    """Every active SIM (of ``user_name`` only, if given), by user then id."""
    users = {user.name: user for user in session.scalars(select(UserRow))}
    last = outbox.last_messages(session, user_name=user_name)
    statuses = []
    query = select(SimRow).where(SimRow.active).order_by(SimRow.user_name, SimRow.id)
    if user_name is not None:
        query = query.where(SimRow.user_name == user_name)
    sims = session.scalars(query)
    for sim in sims:
        user = users[sim.user_name]
        zone = ZoneInfo(user.timezone)
        next_check, deadline = _due_dates(sim, user)
        statuses.append(
            SimStatus(
                user=sim.user_name,
                sim_id=sim.id,
                number=sim.number,
                operator=sim.operator,
                zone=zone,
                today=now.astimezone(zone).date(),
                expires=sim.expires,
                next_balance_check=next_check,
                balance=sim.balance,
                idle_deadline=deadline,
                last_message=last.get(sim.id),
            )
        )
    return statuses


def _due_dates(sim: SimRow, user: UserRow) -> tuple[date | None, date | None]:
    """The next balance check and the idle deadline; None where the dates leave the calendar.

    (Sync pauses such a SIM and tells the admin; the status still lists it.)
    """
    dates = sim_dates(sim, user)
    try:
        check = balance_target(dates) if dates.balance_check_every else None
    except ValueError:
        check = None
    try:
        deadline = idle_deadline(dates)
    except ValueError:
        deadline = None
    return check, deadline
