"""What users tell SIM Watcher: renewals and balance checks, with their consequences.

Recording one updates the SIM's effective dates (which then win over the unchanged
config value), writes its history, stops the reminders it answers and reschedules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from watcher import outbox
from watcher.db.models import Event, SimRow, UserChannel, UserRow
from watcher.durations import Duration
from watcher.errors import UsageError
from watcher.outbox import Kind, NewMessage
from watcher.reminders.rules import renewed_expiry
from watcher.reminders.slots import UnplannableSim, reschedule


@dataclass(frozen=True)
class Renewal:
    sim_id: str
    old: date | None
    new: date
    today: date


# What ends a low-balance episode besides a balance at or above the threshold. No
# command records a top-up yet; "topup" is here so that the first one that does counts.
EPISODE_ENDS = ("renew", "topup")


@dataclass(frozen=True)
class BalanceCheck:
    sim_id: str
    amount: Decimal
    today: date
    threshold: Decimal | None
    alerted: bool = False  # False when low, but an earlier check of this episode alerted

    @property
    def low(self) -> bool:
        return self.threshold is not None and self.amount < self.threshold


def find_sim(session: Session, sim_id: str, source: str) -> tuple[SimRow, UserRow]:
    """An active SIM and its user; an unknown id is a UsageError listing the known ones."""
    sim = session.get(SimRow, sim_id)
    user = session.get(UserRow, sim.user_name) if sim is not None else None
    if sim is None or not sim.active or user is None:
        known = session.scalars(select(SimRow.id).where(SimRow.active).order_by(SimRow.id)).all()
        raise UsageError(
            f"no SIM {sim_id!r} in {source}"
            + (f" (known: {', '.join(known)})" if known else " (it defines no SIMs)")
        )
    return sim, user


def record_renewal(
    session: Session,
    sim_id: str,
    now: datetime,
    *,
    until: date | None,
    period: Duration | None,
    source: str,
) -> Renewal:
    """A renewal and a paid activity today; reminders for the old dates stop."""
    sim, user = find_sim(session, sim_id, source)
    today = now.astimezone(ZoneInfo(user.timezone)).date()
    period = period or (Duration.from_stored(sim.renew_every) if sim.renew_every else None)
    if until is None and period is None:
        raise UsageError(
            f"{sim.id} has no renew_every in {source}: "
            "pass --for PERIOD (e.g. --for 30d) or --until DATE"
        )
    old = sim.expires
    try:
        new = renewed_expiry(old, today, until=until, period=period)
    except ValueError as exc:  # past 9999-12-31
        raise UsageError(f"{sim.id}: {exc}") from None
    if new < today:
        raise UsageError(f"--until {new} is in the past (today is {today})")
    sim.expires = new
    sim.last_paid_activity = today
    session.add(Event(sim_id=sim.id, at=now, kind="renew", detail=f"expires {old} -> {new}"))
    outbox.cancel_pending(session, sim.id, "renewed", kinds=(Kind.EXPIRY, Kind.IDLE))
    try:
        reschedule(session, sim, user)
    except UnplannableSim as exc:  # the caller rolls the renewal back
        raise UsageError(
            f"{sim.id}: renewed to {new}, its reminders fall outside the calendar "
            f"({exc.reason}); choose an earlier date"
        ) from None
    return Renewal(sim.id, old, new, today)


def record_balance(
    session: Session, sim_id: str, amount: Decimal, now: datetime, *, source: str
) -> BalanceCheck:
    """A balance check today; the first below the SIM's ``low_balance`` queues an alert.

    One alert per episode below the threshold: further low checks say nothing until a
    balance at or above it, a renewal or a top-up is recorded (see :func:`low_episode`).
    """
    sim, user = find_sim(session, sim_id, source)
    today = now.astimezone(ZoneInfo(user.timezone)).date()
    ongoing = sim.low_balance is not None and low_episode(session, sim.id, sim.low_balance)
    sim.balance = amount
    sim.last_balance_check = today
    session.add(Event(sim_id=sim.id, at=now, kind="balance", detail=str(amount)))
    outbox.cancel_pending(session, sim.id, "balance checked", kinds=(Kind.BALANCE,))
    reschedule(session, sim, user)
    check = BalanceCheck(sim.id, amount, today, sim.low_balance)
    if check.low and not ongoing:
        check = replace(check, alerted=True)
        targets = session.scalars(
            select(UserChannel.channel).where(UserChannel.user_name == user.name)
        ).all()
        key = outbox.low_balance_key(sim.id, today, amount)
        outbox.enqueue(
            session,
            [
                NewMessage(
                    key,
                    target,
                    Kind.LOW_BALANCE,
                    user_name=user.name,
                    sim_id=sim.id,
                    target=sim.expires or today,
                )
                for target in targets
            ],
            now,
        )
    return check


def low_episode(session: Session, sim_id: str, threshold: Decimal) -> bool:
    """Whether the SIM's last recorded balance was below ``threshold``, with no renewal
    or top-up since: an episode whose alert went out with its first low check.

    Read from the SIM's history (the ``events`` table), so it needs no state of its own.
    """
    last = session.execute(
        select(Event.kind, Event.detail)
        .where(Event.sim_id == sim_id, Event.kind.in_(("balance", *EPISODE_ENDS)))
        .order_by(Event.at.desc(), Event.id.desc())
        .limit(1)
    ).first()
    if last is None or last.kind != "balance":
        return False
    try:
        return Decimal(last.detail) < threshold
    except ArithmeticError:  # a hand-edited history: treat as a fresh episode
        return False
