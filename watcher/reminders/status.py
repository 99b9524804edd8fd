"""What ``watcher status`` shows: every active SIM's effective dates and last message.

Two ways in, one answer: :func:`sim_statuses` reads through a SQLAlchemy session,
:func:`plain_sim_statuses` through :mod:`watcher.db.plain` (a SQLite file or a
PostgreSQL server read without importing SQLAlchemy, which would cost a short command
most of its time).
Both hand their rows to :func:`_statuses`. Importing this module imports no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from watcher.db import plain
from watcher.db.plain import LastMessage
from watcher.reminders.rules import StoredSim, StoredUser, balance_target, idle_deadline, sim_dates

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["SimStatus", "plain_sim_statuses", "sim_statuses"]


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
    last_message: LastMessage | None

    @property
    def days_left(self) -> int | None:
        return None if self.expires is None else (self.expires - self.today).days


class _User(StoredUser, Protocol):
    @property
    def name(self) -> str: ...


class _Sim(StoredSim, Protocol):
    @property
    def id(self) -> str: ...
    @property
    def user_name(self) -> str: ...
    @property
    def operator(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def balance(self) -> Decimal | None: ...


def sim_statuses(
    session: Session, now: datetime, *, user_name: str | None = None
) -> list[SimStatus]:
    """Every active SIM (of ``user_name`` only, if given), by user then id."""
    from sqlalchemy import select

    from watcher import outbox
    from watcher.db.models import SimRow, UserRow

    users = {user.name: user for user in session.scalars(select(UserRow))}
    last = outbox.last_messages(session, user_name=user_name)
    query = select(SimRow).where(SimRow.active).order_by(SimRow.user_name, SimRow.id)
    if user_name is not None:
        query = query.where(SimRow.user_name == user_name)
    return _statuses(users, session.scalars(query), last, now)


def plain_sim_statuses(connection: plain.Reader, now: datetime) -> list[SimStatus]:
    """:func:`sim_statuses` (of every user) on a :func:`watcher.db.plain.read` connection."""
    users = plain.users(connection)
    last = plain.last_messages(connection)
    return _statuses(users, plain.active_sims(connection), last, now)


def _statuses(
    users: Mapping[str, _User],
    sims: Iterable[_Sim],
    last: Mapping[str, LastMessage],
    now: datetime,
) -> list[SimStatus]:
    statuses = []
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


def _due_dates(sim: StoredSim, user: StoredUser) -> tuple[date | None, date | None]:
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
