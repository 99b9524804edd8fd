"""Calendar feeds: a user's SIM dates as iCalendar, from the CLI and over HTTP.

The feed is parsed back with icalendar, as a calendar app would read it; the HTTP
feed is fetched from the daemon's own server on a loopback port.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from tests.conftest import MakeApp, WriteConfig
from watcher.app import App
from watcher.calendar import calendar_for, calendar_route, calendar_token, token_matches
from watcher.clock import FixedClock
from watcher.reminders.records import record_renewal
from watcher.service import HttpService, check_health

NOW = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)

CONFIG = """
timezone: Asia/Almaty
channels:
  me: "json://127.0.0.1:9/me"
users:
  - name: alice
    notify: [me]
    language: ru
    remind_at: "10:00"
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2026-12-20
        remind_before: [7d, 1d]
        balance_check_every: 14d
        last_balance_check: 2026-11-25
        idle_limit: 90d
        last_paid_activity: 2026-10-01
  - name: bob
    notify: [me]
    sims:
      - id: bob-beeline
        operator: beeline
        number: "+77051234567"
        expires: 2027-01-10
"""


@pytest.fixture
def app(write_config: WriteConfig, make_app: MakeApp) -> App:
    made = make_app(write_config(CONFIG), clock=FixedClock(NOW))
    made.sync()
    return made


def events(feed: bytes) -> dict[str, Any]:
    calendar = Calendar.from_ical(feed)
    return {str(event["uid"]): event for event in calendar.walk("VEVENT")}


def feed_of(app: App, user: str) -> bytes:
    with app.database.session() as session:
        return calendar_for(session, app.catalogue, user, app.clock.now())


def test_each_sim_date_is_an_all_day_event_with_a_stable_uid(app: App) -> None:
    found = events(feed_of(app, "alice"))

    assert set(found) == {
        "alice-kcell-expiry@sim-watcher",
        "alice-kcell-balance@sim-watcher",
        "alice-kcell-idle@sim-watcher",
    }
    expiry = found["alice-kcell-expiry@sim-watcher"]
    assert expiry.decoded("dtstart") == date(2026, 12, 20)
    assert expiry.decoded("dtend") == date(2026, 12, 21)
    assert found["alice-kcell-balance@sim-watcher"].decoded("dtstart") == date(2026, 12, 9)
    assert found["alice-kcell-idle@sim-watcher"].decoded("dtstart") == date(2026, 12, 30)
    assert "bob" not in feed_of(app, "alice").decode()


def test_the_number_is_masked_and_the_operators_instructions_are_in_the_users_language(
    app: App,
) -> None:
    feed = feed_of(app, "alice").decode()
    expiry = events(feed.encode())["alice-kcell-expiry@sim-watcher"]

    assert "+77011234567" not in feed.replace("\r\n ", "")
    assert "+7 701 *** ** 67" in str(expiry["summary"])
    assert "заканчивается тариф" in str(expiry["summary"])
    operator = app.catalogue.get("kcell")
    assert operator.renew_instructions("ru") in str(expiry["description"])


def test_alarms_ring_at_the_remind_before_offsets_at_the_users_hour(app: App) -> None:
    expiry = events(feed_of(app, "alice"))["alice-kcell-expiry@sim-watcher"]

    triggers = sorted(alarm.decoded("trigger") for alarm in expiry.walk("VALARM"))

    # 10:00 in Almaty (UTC+5) is 05:00 UTC, 7 days and 1 day before Dec 20.
    assert triggers == [
        datetime(2026, 12, 13, 5, 0, tzinfo=UTC),
        datetime(2026, 12, 19, 5, 0, tzinfo=UTC),
    ]


def test_a_renewal_moves_the_event_under_the_same_uid(app: App) -> None:
    with app.database.session() as session:
        record_renewal(
            session, "alice-kcell", NOW, until=date(2027, 1, 20), period=None, source="test"
        )

    expiry = events(feed_of(app, "alice"))["alice-kcell-expiry@sim-watcher"]

    assert expiry.decoded("dtstart") == date(2027, 1, 20)


def test_the_token_is_made_once_and_kept(app: App) -> None:
    with app.database.session() as session:
        first = calendar_token(session, "alice", NOW)
        again = calendar_token(session, "alice", NOW)
        other = calendar_token(session, "bob", NOW)
        assert token_matches(session, "alice", first)
        assert not token_matches(session, "alice", other)
        assert not token_matches(session, "alice", "")
        assert not token_matches(session, "carol", first)

    assert first == again and first != other and len(first) >= 40


def test_the_http_feed_needs_the_users_own_token(app: App) -> None:
    with app.database.session() as session:
        alice, bob = calendar_token(session, "alice", NOW), calendar_token(session, "bob", NOW)
    service = HttpService(
        ("127.0.0.1", 0),
        health=lambda: check_health(app.database, app.clock),
        metrics=app.metrics,
        routes=[calendar_route(lambda: app.database, lambda: app.catalogue, app.clock)],
    )
    service.start()
    host, port = service.address

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as reply:
                assert reply.headers["Content-Type"].startswith("text/calendar")
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    try:
        status, body = get(f"/calendar/alice.ics?token={alice}")
        assert status == 200 and "alice-kcell-expiry@sim-watcher" in events(body)
        assert get("/calendar/alice.ics")[0] == 404
        assert get(f"/calendar/alice.ics?token={bob}")[0] == 404
        assert get(f"/calendar/carol.ics?token={alice}")[0] == 404
        assert get(f"/calendar/alice.ics?token={alice[:-1]}")[0] == 404
    finally:
        service.stop()


def run_cli(path: Path, *args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "calendar", "-c", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"WATCHER_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
    )


def test_the_cli_prints_a_feed_and_a_url_that_stays_the_same(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config(CONFIG)
    db = tmp_path / "w.db"

    feed = run_cli(path, "--user", "bob", db=db)
    first = run_cli(path, "--user", "alice", "--url", "http://watcher.local:9100/", db=db)
    second = run_cli(path, "--user", "alice", "--url", "http://watcher.local:9100", db=db)

    assert feed.returncode == 0, feed.stderr
    assert "bob-beeline-expiry@sim-watcher" in events(feed.stdout.encode())
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("http://watcher.local:9100/calendar/alice.ics?token=")
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: several users: pass --user NAME (alice, bob)"),
        (("--user", "carol"), "error: no user 'carol' in"),
    ],
)
def test_the_cli_says_which_user_in_one_line(
    write_config: WriteConfig, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli(write_config(CONFIG), *args, db=tmp_path / "w.db")

    assert result.returncode == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
