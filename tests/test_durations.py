from datetime import date

import pytest

from watcher.durations import Duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", Duration(7, "d")),
        ("2w", Duration(2, "w")),
        ("1m", Duration(1, "m")),
        (" 30D ", Duration(30, "d")),
        ("0d", Duration(0, "d")),
    ],
)
def test_parses_days_weeks_and_months(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "-1d", "1y", "1.5d", "7 days", "99999d", None, 7])
def test_rejects_what_is_not_a_duration(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        Duration.parse(text)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (date(2026, 1, 31), "1m", date(2026, 2, 28)),  # month end clamps
        (date(2028, 1, 31), "1m", date(2028, 2, 29)),  # leap year
        (date(2028, 2, 29), "12m", date(2029, 2, 28)),  # leap day, a year on
        (date(2026, 3, 31), "1m", date(2026, 4, 30)),
        (date(2026, 12, 15), "1m", date(2027, 1, 15)),  # year boundary
        (date(2026, 11, 25), "30d", date(2026, 12, 25)),
        (date(2026, 11, 25), "2w", date(2026, 12, 9)),
        (date(2028, 2, 28), "1d", date(2028, 2, 29)),
    ],
)
def test_adds_calendar_aware_periods(start: date, duration: str, expected: date) -> None:
    assert Duration.parse(duration).add_to(start) == expected


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (date(2026, 3, 31), "1m", date(2026, 2, 28)),
        (date(2028, 3, 1), "1d", date(2028, 2, 29)),
        (date(2026, 12, 1), "7d", date(2026, 11, 24)),
    ],
)
def test_subtracts_calendar_aware_periods(start: date, duration: str, expected: date) -> None:
    assert Duration.parse(duration).subtract_from(start) == expected


def test_out_of_range_arithmetic_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Duration.parse("9999m").add_to(date(9990, 1, 1))
