"""What the benchmarks share: options, results, formatting, timing and memory probes."""

from __future__ import annotations

import resource
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# One instant for every benchmark: 10:00 in Asia/Almaty (UTC+5) on a fixed day, plus a
# minute, as if the daemon's once-a-minute planner had just woken up.
NOW = datetime(2026, 6, 1, 5, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Options:
    """How a benchmark should run."""

    quick: bool
    work_dir: Path  # a directory of its own, already created
    log: Callable[[str], None]  # one progress line
    keep_work: bool = False  # leave what the benchmark made (files, a scratch schema)


@dataclass(frozen=True)
class Line:
    """One reported figure. ``ok`` is None for a figure without a target."""

    label: str
    value: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Result:
    """What one benchmark reports: figures (some with a target) and free-text notes."""

    name: str
    title: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.lines.append(Line(label, value, target, ok))

    @property
    def verdict(self) -> str:
        """PASS if every target was met, MISS if one was not, "-" if there is no target."""
        checked = [line.ok for line in self.lines if line.ok is not None]
        if not checked:
            return "-"
        return "PASS" if all(checked) else "MISS"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    """``0.01234`` -> ``"12.3 ms"``; seconds above ten are shown as seconds."""
    if seconds >= 10:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:,.1f} ms"


def mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def sql_timestamp(instant: datetime) -> str:
    """An aware datetime as SQLAlchemy stores ``UTCDateTime`` in SQLite (naive UTC text).

    Hand-written SQL must use exactly this form: SQLite compares the text, so
    ``2026-06-01 05:00:00`` would sort before ``2026-06-01 05:00:00.000000``.
    """
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


# --- memory: resident set size of this process (Linux /proc, else getrusage) ----------


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_now() -> int | None:
    """Current resident set size in bytes, where the OS tells it."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def rss_peak() -> int:
    """Peak resident set size in bytes since start or since :func:`reset_rss_peak`.

    VmHWM where /proc has it. The ``ru_maxrss`` fallback is cruder: on Linux a child
    started by fork or vfork and exec inherits its parent's peak in it.
    """
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def reset_rss_peak() -> bool:
    """Restart the peak (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``); False if unable."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True
