"""The pure "what is due at time T" rules, as tables."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from watcher.clock import local_instant
from watcher.durations import Duration
from watcher.quiet import QuietHours, release_time
from watcher.reminders.rules import (
    SimDates,
    Slot,
    not_yet_planned,
    renewed_expiry,
    select_due,
    slots_for,
)

ALMATY = ZoneInfo("Asia/Almaty")
TEN = time(10, 0)


def d(*texts: str) -> tuple[Duration, ...]:
    return tuple(Duration.parse(t) for t in texts)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def sim(**overrides: object) -> SimDates:
    values: dict[str, object] = {
        "timezone": ALMATY,
        "remind_at": TEN,
        "first_seen": utc(2026, 11, 1),
        "remind_before": d("7d", "3d", "1d", "0d"),
        "remind_after": d("1d", "3d", "7d"),
    }
    values.update(overrides)
    return SimDates(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "zone", "expected"),
    [
        # Almaty was UTC+6 until 2024-03-01, UTC+5 from then on.
        (date(2024, 2, 29), "Asia/Almaty", utc(2024, 2, 29, 4)),
        (date(2024, 3, 1), "Asia/Almaty", utc(2024, 3, 1, 5)),
        (date(2026, 12, 1), "Asia/Almaty", utc(2026, 12, 1, 5)),
        (date(2026, 12, 1), "UTC", utc(2026, 12, 1, 10)),
        # Berlin: summer time and winter time.
        (date(2026, 7, 1), "Europe/Berlin", utc(2026, 7, 1, 8)),
        (date(2026, 12, 1), "Europe/Berlin", utc(2026, 12, 1, 9)),
    ],
)
def test_reminders_go_out_at_remind_at_local_time(day: date, zone: str, expected: datetime) -> None:
    assert local_instant(day, TEN, ZoneInfo(zone)) == expected


def test_a_wall_time_skipped_by_a_dst_jump_still_yields_an_instant() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; the reminder lands after the jump.
    instant = local_instant(date(2026, 3, 29), time(2, 30), ZoneInfo("Europe/Berlin"))
    assert instant == utc(2026, 3, 29, 1, 30)


def test_expiry_slots_cover_before_and_after_offsets() -> None:
    slots = slots_for(sim(expires=date(2026, 12, 10)))
    assert [(s.offset, s.due_at.astimezone(ALMATY).date()) for s in slots] == [
        ("-7d", date(2026, 12, 3)),
        ("-3d", date(2026, 12, 7)),
        ("-1d", date(2026, 12, 9)),
        ("0d", date(2026, 12, 10)),
        ("+1d", date(2026, 12, 11)),
        ("+3d", date(2026, 12, 13)),
        ("+7d", date(2026, 12, 17)),
    ]
    assert {s.kind for s in slots} == {"expiry"}
    assert all(s.due_at.astimezone(ALMATY).time() == TEN for s in slots)


def test_month_offsets_clamp_to_month_end() -> None:
    slots = slots_for(sim(expires=date(2026, 3, 31), remind_before=d("1mo"), remind_after=()))
    assert [s.due_at.astimezone(ALMATY).date() for s in slots] == [date(2026, 2, 28)]
    # Keyed as earlier versions keyed it ("1m" then meant a month): sent ones still match.
    assert [s.offset for s in slots] == ["-1m"]


def test_balance_check_is_due_every_period_after_the_last_one() -> None:
    slots = slots_for(
        sim(
            balance_check_every=Duration.parse("14d"),
            last_balance_check=date(2026, 11, 20),
            remind_after=d("1d"),
        )
    )
    assert [(s.kind, s.target, s.offset) for s in slots] == [
        ("balance", date(2026, 12, 4), "0d"),
        ("balance", date(2026, 12, 4), "+1d"),
    ]


def test_a_balance_never_checked_is_due_the_day_the_sim_is_first_seen() -> None:
    slots = slots_for(sim(balance_check_every=Duration.parse("14d"), remind_after=()))
    assert [(s.target, s.offset) for s in slots] == [(date(2026, 11, 1), "0d")]


def test_idle_deadline_is_last_paid_activity_plus_limit() -> None:
    slots = slots_for(
        sim(
            idle_limit=Duration.parse("90d"),
            last_paid_activity=date(2026, 10, 1),
            remind_before=d("7d", "0d"),
        )
    )
    assert [(s.kind, s.target, s.offset) for s in slots] == [
        ("idle", date(2026, 12, 30), "-7d"),
        ("idle", date(2026, 12, 30), "0d"),
    ]


def test_no_idle_reminders_without_a_limit() -> None:
    assert slots_for(sim(last_paid_activity=date(2026, 10, 1))) == []


def _slot(offset: str, day: int, kind: str = "expiry", target: int = 10) -> Slot:
    return Slot(
        local_instant(date(2026, 12, day), TEN, ALMATY), kind, date(2026, 12, target), offset
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 12, 2), []),  # nothing due yet
        (utc(2026, 12, 3, 4, 59), []),  # a minute before 10:00 Almaty
        (utc(2026, 12, 3, 5, 0), ["-7d"]),  # exactly on time
        (utc(2026, 12, 8), ["-3d"]),  # -7d and -3d due: only the most urgent
        (utc(2026, 12, 20), ["+7d"]),  # down for weeks: one overdue nag, not seven
    ],
)
def test_catch_up_sends_only_the_most_urgent_due_slot(now: datetime, expected: list[str]) -> None:
    pending = [
        _slot("-7d", 3),
        _slot("-3d", 7),
        _slot("-1d", 9),
        _slot("0d", 10),
        _slot("+1d", 11),
        _slot("+3d", 13),
        _slot("+7d", 17),
    ]
    assert [s.offset for s in select_due(pending, now)] == expected


def test_catch_up_is_per_kind_and_target() -> None:
    pending = [_slot("-7d", 3), _slot("-3d", 7), _slot("0d", 5, kind="balance", target=5)]
    due = select_due(pending, utc(2026, 12, 8))
    assert [(s.kind, s.offset) for s in due] == [("balance", "0d"), ("expiry", "-3d")]


QUIET = QuietHours(time(22, 0), time(8, 0))


@pytest.mark.parametrize(
    ("local_due", "quiet", "local_release"),
    [
        (datetime(2026, 12, 1, 10, 0), QUIET, datetime(2026, 12, 1, 10, 0)),  # outside
        (datetime(2026, 12, 1, 23, 0), QUIET, datetime(2026, 12, 2, 8, 0)),  # before midnight
        (datetime(2026, 12, 2, 3, 0), QUIET, datetime(2026, 12, 2, 8, 0)),  # after midnight
        (datetime(2026, 12, 1, 22, 0), QUIET, datetime(2026, 12, 2, 8, 0)),  # at the start
        (datetime(2026, 12, 2, 8, 0), QUIET, datetime(2026, 12, 2, 8, 0)),  # at the end
        (datetime(2026, 12, 31, 23, 30), QUIET, datetime(2027, 1, 1, 8, 0)),  # year end
        (
            datetime(2026, 12, 1, 13, 0),
            QuietHours(time(12, 0), time(14, 0)),
            datetime(2026, 12, 1, 14, 0),
        ),  # same-day window
        (datetime(2026, 12, 1, 10, 0), None, datetime(2026, 12, 1, 10, 0)),
    ],
)
def test_quiet_hours_hold_a_message_until_they_end(
    local_due: datetime, quiet: QuietHours | None, local_release: datetime
) -> None:
    due = local_due.replace(tzinfo=ALMATY).astimezone(UTC)
    assert release_time(due, quiet, ALMATY) == local_release.replace(tzinfo=ALMATY).astimezone(UTC)


@pytest.mark.parametrize(
    ("old", "today", "until", "period", "expected"),
    [
        (date(2026, 12, 1), date(2026, 11, 25), None, "30d", date(2026, 12, 31)),  # early
        (date(2026, 11, 1), date(2026, 11, 25), None, "30d", date(2026, 12, 25)),  # late
        (date(2026, 1, 31), date(2026, 1, 20), None, "1mo", date(2026, 2, 28)),  # month end
        (date(2028, 1, 31), date(2028, 1, 20), None, "1mo", date(2028, 2, 29)),  # leap
        (None, date(2026, 11, 25), None, "4w", date(2026, 12, 23)),
        (date(2026, 12, 1), date(2026, 11, 25), date(2027, 3, 1), None, date(2027, 3, 1)),
    ],
)
def test_renewal_extends_from_the_later_of_old_expiry_and_today(
    old: date | None, today: date, until: date | None, period: str | None, expected: date
) -> None:
    duration = Duration.parse(period) if period else None
    assert renewed_expiry(old, today, until=until, period=duration) == expected


def test_renewal_without_a_period_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="--for"):
        renewed_expiry(date(2026, 12, 1), date(2026, 11, 25), until=None, period=None)


def test_offsets_already_planned_and_earlier_ones_are_not_planned_again() -> None:
    slots = [_slot("-7d", 3), _slot("-3d", 7), _slot("-1d", 9), _slot("0d", 10)]
    target = date(2026, 12, 10)
    remaining = not_yet_planned(slots, {("expiry", target, "-3d")})
    assert [s.offset for s in remaining] == ["-1d", "0d"]  # -7d was superseded by -3d
    assert not_yet_planned(slots, {("expiry", date(2027, 1, 1), "-3d")}) == slots
