"""Time as an injected dependency: nothing else in SIM Watcher asks the OS for the time."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """Tells the current instant, always as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to; for tests and benchmarks."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``at`` o'clock on ``day`` in ``zone``, as UTC.

    A wall time skipped by a DST jump resolves forward (fold=0 gives the pre-jump
    offset, which lands after the gap), so a reminder is never lost to a jump.
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def zoned_text(instant: datetime, zone: tzinfo | None = None, *, seconds: bool = False) -> str:
    """``2026-12-04 09:00 +05``: ``instant`` in ``zone`` (the process's own if None),
    with its UTC offset, so times printed in different zones can be matched up."""
    local = instant.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    zone_text = f"{sign}{minutes // 60:02d}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
    return f"{local:%Y-%m-%d %H:%M:%S}"[: 19 if seconds else 16] + " " + zone_text


class ZonedLogFormatter(logging.Formatter):
    """Log lines stamped as the CLI prints times: ``2026-12-04 09:00:05 +05``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return zoned_text(datetime.fromtimestamp(record.created, UTC), seconds=True)
