"""Quiet hours: a daily window in the user's local time when messages wait.

Plain values and a pure function, no pydantic: the reminder rules and delivery use them,
the config only parses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from watcher.clock import local_instant

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(value: object) -> time:
    """A time of day as written: ``"10:00"``, or the integer 600 YAML 1.1 makes of 10:00."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, str) and (match := _CLOCK.match(value.strip())):
        return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"expected a time of day as HH:MM, got {value!r}")


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time when messages are held; may cross midnight."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @classmethod
    def parse(cls, value: object) -> QuietHours:
        """``"22:00-08:00"``; raises ValueError saying what is wrong."""
        if isinstance(value, QuietHours):
            return value
        if isinstance(value, str) and value.count("-") == 1:
            start, end = (part.strip() for part in value.split("-"))
            try:
                quiet = cls(parse_clock(start), parse_clock(end))
            except ValueError:
                pass
            else:
                if quiet.start == quiet.end:
                    raise ValueError("quiet hours start and end at the same time")
                return quiet
        raise ValueError(f'expected quiet hours as "HH:MM-HH:MM", got {value!r}')


def release_time(instant: datetime, quiet: QuietHours | None, zone: ZoneInfo) -> datetime:
    """When a message due at ``instant`` may go out: the end of quiet hours if inside them."""
    if quiet is None:
        return instant
    local = instant.astimezone(zone)
    now_t = local.time().replace(tzinfo=None)
    start, end = quiet.start, quiet.end
    if start < end:
        inside = start <= now_t < end
        end_day = local.date()
    else:  # crosses midnight, e.g. 22:00-08:00
        inside = now_t >= start or now_t < end
        end_day = local.date() + timedelta(days=1) if now_t >= start else local.date()
    if not inside:
        return instant
    return max(instant, local_instant(end_day, end, zone))
