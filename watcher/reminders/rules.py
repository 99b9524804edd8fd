"""What is due when: pure functions over plain data, no database and no clock.

A SIM yields *slots*: (kind, target date, offset) due at ``remind_at`` local time on
``target ± offset``. The slot store (:mod:`watcher.reminders.slots`) writes them to the
database and the planner picks the due ones with SQL; :func:`select_due` is the same
rule in Python, the specification the SQL is tested against.

Importing this module pulls in no pydantic, SQLAlchemy or HTTP library: only the
standard library and SIM Watcher's plain value types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from watcher.clock import local_instant
from watcher.durations import Duration

Kind = Literal["expiry", "balance", "idle"]
KINDS: tuple[Kind, ...] = ("expiry", "balance", "idle")
ZERO = Duration(0, "d")


@dataclass(frozen=True)
class SimDates:
    """The inputs of a SIM's schedule, with the effective (not merely configured) dates."""

    timezone: ZoneInfo
    remind_at: time
    first_seen: datetime  # when SIM Watcher first saw the SIM (UTC)
    expires: date | None = None
    remind_before: tuple[Duration, ...] = ()
    remind_after: tuple[Duration, ...] = ()
    balance_check_every: Duration | None = None
    last_balance_check: date | None = None
    idle_limit: Duration | None = None
    last_paid_activity: date | None = None

    def fingerprint(self) -> str:
        """Changes whenever the slots would; lets sync skip SIMs whose plan is unchanged."""
        parts = [
            str(self.timezone),
            self.remind_at.isoformat(),
            str(self.expires),
            format_offsets(self.remind_before),
            format_offsets(self.remind_after),
            _stored(self.balance_check_every),
            str(self.last_balance_check),
            _stored(self.idle_limit),
            str(self.last_paid_activity),
            self.first_seen.date().isoformat() if self.last_balance_check is None else "",
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, order=True)
class Slot:
    """One reminder: sent at most once per channel, keyed by (kind, target, offset)."""

    due_at: datetime
    kind: str
    target: date
    offset: str  # "-7d" before the target, "+1d" after it, "0d" on the day

    @property
    def group(self) -> tuple[str, date]:
        return (self.kind, self.target)


def offset_label(offset: Duration, sign: int) -> str:
    if offset.amount == 0:
        return "0d"
    return f"{'-' if sign < 0 else '+'}{offset.stored}"


def slots_for(sim: SimDates) -> list[Slot]:
    """Every slot of the SIM's current targets, in due order."""
    slots: list[Slot] = []

    def instant(day: date) -> datetime:
        try:
            return local_instant(day, sim.remind_at, sim.timezone)
        except OverflowError:
            raise ValueError(
                f"{day} at {sim.remind_at:%H:%M} in {sim.timezone} is out of range"
            ) from None

    def add(
        kind: Kind, target: date, before: Iterable[Duration], after: Iterable[Duration]
    ) -> None:
        for offset in before:
            day = offset.subtract_from(target)
            slots.append(Slot(instant(day), kind, target, offset_label(offset, -1)))
        for offset in after:
            if offset.amount == 0 and ZERO in sim.remind_before:
                continue  # "0d" after is the same slot as "0d" before
            day = offset.add_to(target)
            slots.append(Slot(instant(day), kind, target, offset_label(offset, +1)))

    if sim.expires is not None:
        add("expiry", sim.expires, sim.remind_before, sim.remind_after)
    if sim.balance_check_every is not None:
        target = balance_target(sim)
        add("balance", target, [ZERO], sim.remind_after)
    if sim.idle_limit is not None and sim.last_paid_activity is not None:
        add("idle", sim.idle_limit.add_to(sim.last_paid_activity), sim.remind_before, [])
    return sorted(set(slots))


def out_of_calendar(sim: SimDates) -> dict[Kind, str]:
    """Why each kind's reminders cannot be placed before 9999-12-31 (or after 0001-01-01).

    :func:`slots_for` raises ValueError for such a SIM; this names the kind (so a
    config error can name the date's field), one kind at a time.
    """
    alone: dict[Kind, SimDates] = {
        "expiry": replace(sim, balance_check_every=None, idle_limit=None),
        "balance": replace(sim, expires=None, idle_limit=None),
        "idle": replace(sim, expires=None, balance_check_every=None),
    }
    problems: dict[Kind, str] = {}
    for kind, dates in alone.items():
        try:
            slots_for(dates)
        except ValueError as exc:
            problems[kind] = str(exc)
    return problems


def balance_target(sim: SimDates) -> date:
    """The next balance check: ``every`` after the last one, or at once if none is known."""
    assert sim.balance_check_every is not None
    if sim.last_balance_check is None:
        return sim.first_seen.astimezone(sim.timezone).date()
    return sim.balance_check_every.add_to(sim.last_balance_check)


def idle_deadline(sim: SimDates) -> date | None:
    if sim.idle_limit is None or sim.last_paid_activity is None:
        return None
    return sim.idle_limit.add_to(sim.last_paid_activity)


def select_due(pending: Iterable[Slot], now: datetime) -> list[Slot]:
    """The slots to send at ``now``: for each (kind, target), the most urgent due one.

    When the daemon was down or the SIM is new, several offsets of one target may be
    due at once; only the latest-due (most urgent) is sent, and the others are
    superseded — never a burst of stale reminders, never nothing.
    """
    best: dict[tuple[str, date], Slot] = {}
    for slot in pending:
        if slot.due_at <= now and (slot.group not in best or slot.due_at > best[slot.group].due_at):
            best[slot.group] = slot
    return sorted(best.values())


def not_yet_planned(slots: Iterable[Slot], planned: set[tuple[str, date, str]]) -> list[Slot]:
    """The slots still to come after ``planned`` (kind, target, offset) ones went out.

    A planned offset is never planned again, and neither is an earlier offset of the
    same target: catch-up skipped those on purpose, and a reminder less urgent than
    one already sent would only confuse.
    """
    slots = list(slots)
    cutoff: dict[tuple[str, date], datetime] = {}
    for slot in slots:
        if (slot.kind, slot.target, slot.offset) in planned:
            cutoff[slot.group] = max(slot.due_at, cutoff.get(slot.group, slot.due_at))
    return [slot for slot in slots if slot.group not in cutoff or slot.due_at > cutoff[slot.group]]


def renewed_expiry(
    old: date | None, today: date, *, until: date | None, period: Duration | None
) -> date:
    """The expiry after a renewal: ``until`` if given, else max(old, today) + period."""
    if until is not None:
        return until
    if period is None:
        raise ValueError("no renewal period: pass --for or --until, or set renew_every")
    start = today if old is None or old < today else old
    return period.add_to(start)


class StoredUser(Protocol):
    """What :func:`sim_dates` reads of a stored user (a ``UserRow``, or status's plain row)."""

    @property
    def timezone(self) -> str: ...
    @property
    def remind_at(self) -> str: ...


class StoredSim(Protocol):
    """What :func:`sim_dates` reads of a stored SIM (a ``SimRow``, or status's plain row)."""

    @property
    def first_seen_at(self) -> datetime: ...
    @property
    def expires(self) -> date | None: ...
    @property
    def remind_before(self) -> str: ...
    @property
    def remind_after(self) -> str: ...
    @property
    def balance_check_every(self) -> str | None: ...
    @property
    def last_balance_check(self) -> date | None: ...
    @property
    def idle_limit(self) -> str | None: ...
    @property
    def last_paid_activity(self) -> date | None: ...


def sim_dates(row: StoredSim, user: StoredUser) -> SimDates:
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
    return None if text is None else Duration.from_stored(text)


def parse_offsets(text: str) -> tuple[Duration, ...]:
    """The stored form of an offset list (``"7d,3d"``) back into durations."""
    return tuple(Duration.from_stored(part) for part in text.split(",") if part)


def format_offsets(offsets: Sequence[Duration]) -> str:
    """The stored form of an offset list; months stay ``1m`` as earlier versions wrote."""
    return ",".join(offset.stored for offset in offsets)


def _stored(value: Duration | None) -> str:
    return "None" if value is None else value.stored
