"""Durations as users write them: ``30d``, ``2w``, ``1m`` (a calendar month)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

_PATTERN = re.compile(r"^\s*(\d{1,4})\s*([dwm])\s*$")
_UNITS = {"d": "day", "w": "week", "m": "month"}


@dataclass(frozen=True, order=True)
class Duration:
    """A non-negative count of days, weeks or calendar months."""

    amount: int
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in _UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; use d, w or m")
        if self.amount < 0:
            raise ValueError("a duration cannot be negative")

    @classmethod
    def parse(cls, text: object) -> Duration:
        """Parse ``7d``, ``2w`` or ``1m``; raise ValueError saying what is wrong."""
        if isinstance(text, Duration):
            return text
        if not isinstance(text, str):
            raise ValueError(f"expected a duration such as 7d, 2w or 1m, got {text!r}")
        match = _PATTERN.match(text.lower())
        if match is None:
            raise ValueError(
                f"{text!r} is not a duration; write a number and d, w or m (7d, 2w, 1m)"
            )
        return cls(int(match.group(1)), match.group(2))

    def add_to(self, day: date) -> date:
        """``day`` moved forward; months clamp to the month's last day (Jan 31 + 1m = Feb 28/29)."""
        return self._shift(day, 1)

    def subtract_from(self, day: date) -> date:
        """``day`` moved back; months clamp the same way."""
        return self._shift(day, -1)

    def _shift(self, day: date, sign: int) -> date:
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
