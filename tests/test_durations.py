import re
import string
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scrapers import MIN_EVERY, parse_every
from watcher.durations import DAYS_PATTERN, PATTERN, UNITS, Duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", Duration(7, "d")),
        ("2w", Duration(2, "w")),
        ("1mo", Duration(1, "mo")),
        ("30min", Duration(30, "min")),
        ("6h", Duration(6, "h")),
        (" 30D ", Duration(30, "d")),
        ("3 MO", Duration(3, "mo")),
        ("0d", Duration(0, "d")),
    ],
)
def test_parses_minutes_hours_days_weeks_and_months(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3m", "`3m` is ambiguous: write `3min` for minutes or `3mo` for months"),
        ("12M", "`12M` is ambiguous: write `12min` for minutes or `12mo` for months"),
        ("1y", "`1y` has an unknown unit `y`; write min, h, d, w or mo"),
        ("7 days", "unknown unit `days`"),
        ("3д", "unknown unit `д`"),
        ("1мес", "unknown unit `мес`"),
        ("300s", "unknown unit `s`"),
        ("", "is not a duration"),
        ("7", "is not a duration"),
        ("d", "is not a duration"),
        ("-1d", "is not a duration"),
        ("1.5d", "is not a duration"),
        ("1h30min", "is not a duration"),
        ("99999d", "too long"),
        (None, "expected a duration"),
        (7, "expected a duration"),
    ],
)
def test_refuses_with_one_line_naming_what_to_write(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        Duration.parse(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (date(2026, 1, 31), "1mo", date(2026, 2, 28)),  # month end clamps
        (date(2028, 1, 31), "1mo", date(2028, 2, 29)),  # leap year
        (date(2028, 2, 29), "12mo", date(2029, 2, 28)),  # leap day, a year on
        (date(2026, 3, 31), "1mo", date(2026, 4, 30)),
        (date(2026, 12, 15), "1mo", date(2027, 1, 15)),  # year boundary
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
        (date(2026, 3, 31), "1mo", date(2026, 2, 28)),
        (date(2028, 3, 1), "1d", date(2028, 2, 29)),
        (date(2026, 12, 1), "7d", date(2026, 11, 24)),
    ],
)
def test_subtracts_calendar_aware_periods(start: date, duration: str, expected: date) -> None:
    assert Duration.parse(duration).subtract_from(start) == expected


def test_out_of_range_arithmetic_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Duration.parse("9999mo").add_to(date(9990, 1, 1))


def test_sim_dates_take_whole_days_and_intervals_take_clock_time() -> None:
    with pytest.raises(ValueError, match="`12h` is not whole days; write d, w or mo"):
        Duration.parse("12h").add_to(date(2026, 1, 1))
    with pytest.raises(ValueError, match="`1mo` is calendar months"):
        Duration.parse("1mo").timedelta()
    assert Duration.parse("90min").timedelta() == timedelta(minutes=90)


def test_the_database_keeps_months_as_earlier_versions_wrote_them() -> None:
    # Reminder keys already queued or sent hold "-1m": they must keep matching.
    assert Duration.parse("1mo").stored == "1m"
    assert Duration.from_stored("1m") == Duration(1, "mo")
    assert Duration.from_stored("1mo") == Duration(1, "mo")
    assert Duration.from_stored("14d") == Duration(14, "d")


# --- the grammar, as a class ----------------------------------------------------------

durations = st.builds(Duration, st.integers(0, 9999), st.sampled_from(UNITS))
spaces = st.sampled_from(["", " ", "  ", "\t"])


def _respell(text: str, data: st.DataObject) -> str:
    """The same duration as a user might type it: other case, spaces around and between."""
    digits = text.rstrip(string.ascii_letters)
    unit = text[len(digits) :]
    unit = "".join(c.upper() if data.draw(st.booleans()) else c for c in unit)
    return data.draw(spaces) + digits + data.draw(spaces) + unit + data.draw(spaces)


@given(durations, st.data())
def test_format_and_parse_round_trip(duration: Duration, data: st.DataObject) -> None:
    text = str(duration)
    assert Duration.parse(text) == duration
    assert Duration.parse(_respell(text, data)) == duration
    assert Duration.from_stored(duration.stored) == duration
    assert re.match(PATTERN, text)
    assert bool(re.match(DAYS_PATTERN, text)) == (duration.unit in ("d", "w", "mo"))


letters = st.one_of(
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=6),
    st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=6),
)


@given(st.integers(0, 99999), letters)
def test_every_bad_unit_is_refused_in_one_line_naming_the_units(amount: int, unit: str) -> None:
    text = f"{amount}{unit}"
    if unit.isascii() and unit.lower() in UNITS:
        if amount <= 9999:
            assert Duration.parse(text) == Duration(amount, unit.lower())
        else:  # a good unit: only the number is wrong, and the message says so
            with pytest.raises(ValueError, match=r"is too long a duration; at most 9999"):
                Duration.parse(text)
        return
    with pytest.raises(ValueError, match=r"`") as caught:
        Duration.parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert not re.match(PATTERN, text)
    assert "write" in message
    if unit.lower() == "m":
        assert f"write `{amount}min` for minutes or `{amount}mo` for months" in message


@given(st.one_of(st.text(max_size=12), st.builds(str, durations), st.from_regex(PATTERN)))
def test_source_intervals_follow_the_same_grammar(text: str) -> None:
    # scrapers may not import watcher, so parse_every has its own copy: keep them equal.
    try:
        clock: timedelta | None = Duration.parse(text).timedelta()
        refusal = ""
    except ValueError as exc:
        clock, refusal = None, str(exc)
    if clock is not None and clock >= MIN_EVERY:
        assert parse_every(text) == clock
        return
    with pytest.raises(ValueError, match=r"`|interval") as caught:
        parse_every(text)
    message = str(caught.value)
    assert "\n" not in message
    if clock is not None:
        assert "too often; the minimum is 5min" in message
    elif "ambiguous" in refusal or "calendar months" in refusal:
        assert message == refusal


def test_minutes_in_the_largest_unit_that_holds_them() -> None:
    assert [str(Duration.of_minutes(m)) for m in (5, 90, 120, 1440, 10080, 0)] == [
        "5min",
        "90min",
        "2h",
        "1d",
        "1w",
        "0min",
    ]


@given(st.integers(0, 9999 * 60))
def test_of_minutes_round_trips(minutes: int) -> None:
    duration = Duration.of_minutes(minutes)
    assert duration.timedelta() == timedelta(minutes=minutes)
    if duration.amount <= 9999:
        assert Duration.parse(str(duration)) == duration
