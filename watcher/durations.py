"""Durations as users write them: one grammar for SIM fields and source intervals.

A duration is a whole number and one unit: ``30min``, ``6h``, ``7d``, ``2w``, ``1mo``
(a calendar month). Units are unambiguous on purpose: a bare ``m`` (a month for SIMs
and a minute for sources in earlier versions) is refused with a line naming what to
write instead. SIM fields count whole days (``d``, ``w``, ``mo``); source intervals
are clock time (``min``, ``h``, ``d``, ``w``) — :meth:`Duration.whole_days` and
:meth:`Duration.timedelta` refuse the other units with one line each.

The database keeps the form earlier versions wrote (:attr:`Duration.stored`, ``1m``
for a month), so reminder keys already queued or sent keep matching without a
migration; :meth:`Duration.from_stored` reads both forms back.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

UNITS: tuple[str, ...] = ("min", "h", "d", "w", "mo")
"""Every unit, shortest span first."""
DAY_UNITS: tuple[str, ...] = ("d", "w", "mo")
CLOCK_UNITS: tuple[str, ...] = ("min", "h", "d", "w")
PATTERN = r"^\s*[0-9]{1,4}\s*([mM][iI][nN]|[hH]|[dD]|[wW]|[mM][oO])\s*$"
"""The grammar as a regular expression (JSON Schema ``pattern``; case as in :meth:`parse`)."""
DAYS_PATTERN = r"^\s*[0-9]{1,4}\s*([dD]|[wW]|[mM][oO])\s*$"
"""The same for whole days only (SIM fields)."""
EXAMPLES = "30min, 6h, 7d, 2w, 1mo"

_SHAPE = re.compile(r"^\s*([0-9]+)\s*([^\W\d_]*)\s*$")  # any letters: 3д is a unit, if unknown
_MINUTES = {"min": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
_STORED = {"mo": "m"}  # unit -> what the database holds, where it differs


@dataclass(frozen=True, order=True)
class Duration:
    """A non-negative whole number of minutes, hours, days, weeks or calendar months."""

    amount: int
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; write {_units_text()}")
        if self.amount < 0:
            raise ValueError("a duration cannot be negative")

    @classmethod
    def parse(cls, text: object) -> Duration:
        """Parse ``30min``, ``6h``, ``7d``, ``2w`` or ``1mo``; raise a one-line ValueError."""
        if isinstance(text, Duration):
            return text
        if not isinstance(text, str):
            raise ValueError(f"expected a duration such as {EXAMPLES}, got {text!r}")
        match = _SHAPE.match(text)
        if match is None or not match.group(2):
            raise ValueError(
                f"`{_shown(text)}` is not a duration; write a whole number and a unit ({EXAMPLES})"
            )
        digits, unit = match.group(1), match.group(2).lower()
        if unit == "m":
            raise ValueError(
                f"`{_shown(text)}` is ambiguous: write `{digits}min` for minutes "
                f"or `{digits}mo` for months"
            )
        if unit not in UNITS:
            raise ValueError(
                f"`{_shown(text)}` has an unknown unit `{unit}`; write {_units_text()} ({EXAMPLES})"
            )
        if len(digits) > 4:
            raise ValueError(f"`{_shown(text)}` is too long a duration; at most 9999{unit}")
        return cls(int(digits), unit)

    @classmethod
    def from_stored(cls, text: str) -> Duration:
        """The duration a database column holds (``1m`` there is a month, as it always was)."""
        match = re.fullmatch(r"([0-9]+)m", text.strip())
        if match is not None:
            return cls(int(match.group(1)), "mo")
        return cls.parse(text)

    @classmethod
    def of_minutes(cls, minutes: int) -> Duration:
        """A number of minutes in the largest unit that holds it whole (90 -> 90min, 120 -> 2h)."""
        for unit in ("w", "d", "h"):
            if minutes and minutes % _MINUTES[unit] == 0:
                return cls(minutes // _MINUTES[unit], unit)
        return cls(minutes, "min")

    @property
    def stored(self) -> str:
        """The form the database holds: stable across versions, so keys keep matching."""
        return f"{self.amount}{_STORED.get(self.unit, self.unit)}"

    def whole_days(self) -> Duration:
        """This duration if it counts whole days (d, w, mo); else a one-line ValueError."""
        if self.unit not in DAY_UNITS:
            raise ValueError(f"`{self}` is not whole days; write d, w or mo (7d, 2w, 1mo)")
        return self

    def timedelta(self) -> timedelta:
        """This duration as clock time; a month has no fixed length and is refused."""
        if self.unit not in _MINUTES:
            raise ValueError(
                f"`{self}` is calendar months, which have no fixed length; "
                f"write min, h, d or w (30min, 6h, 1d, 1w)"
            )
        return timedelta(minutes=self.amount * _MINUTES[self.unit])

    def add_to(self, day: date) -> date:
        """``day`` moved forward; months clamp to the month's end (Jan 31 + 1mo = Feb 28/29)."""
        return self._shift(day, 1)

    def subtract_from(self, day: date) -> date:
        """``day`` moved back; months clamp the same way."""
        return self._shift(day, -1)

    def _shift(self, day: date, sign: int) -> date:
        self.whole_days()
        if self.unit in ("d", "w"):
            days = self.amount * (7 if self.unit == "w" else 1)
            try:
                return day + timedelta(days=sign * days)
            except OverflowError:
                raise ValueError(f"{day} moved by {self} is out of range") from None
        months = day.year * 12 + (day.month - 1) + sign * self.amount
        year, month = divmod(months, 12)
        month += 1
        if not 1 <= year <= 9999:
            raise ValueError(f"{day} moved by {self} is out of range")
        last = calendar.monthrange(year, month)[1]
        return date(year, month, min(day.day, last))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def _units_text() -> str:
    return ", ".join(UNITS[:-1]) + f" or {UNITS[-1]}"


def _shown(text: str) -> str:
    # The text as one short line: a newline or a megabyte of input never reaches the
    # terminal whole.
    compact = " ".join(text.split())
    return compact if len(compact) <= 20 else compact[:19] + "…"
