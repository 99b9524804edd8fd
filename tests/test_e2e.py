"""End to end: the real ``watcher`` process against a real SMTP server and webhook receiver.

Every test starts ``python -m watcher`` as a subprocess, on SQLite and on PostgreSQL
(``WATCHER_DATABASE_URL``; the last two tests run on SQLite only: what they pin down
lives above the database). The process reads the real clock, so configs are
written relative to today in UTC with ``remind_at: "00:00"``: a slot due today is
already due when the process starts. Nothing is slept on: the tests poll real I/O with
a bound.

The processes log at the default level (INFO), the level a daemon runs at, because
the tests also check that no channel secret and no raw phone number is ever printed;
a separate test runs the daemon with -v and checks the same at DEBUG.
Each process's stdout and stderr go to files in ``tmp_path``, printed when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tests.servers import SmtpSink, WebhookReceiver, wait_for
from watcher.db import Database, Heartbeat, OutboxRow, ScheduleRow
from watcher.reminders.slots import current_slots

pytestmark = pytest.mark.e2e

PHONE = "+77011234567"
MASKED_PHONE = "+7 701 *** ** 67"
SECRET = "s3cr3t-token-value"  # the token part of a webhook URL: must never be printed
STOP_WITHIN = 15.0  # seconds a signalled daemon may take to exit
# The daemons here send with this many workers (delivery.workers), fewer than the
# messages, so a kill catches a few in flight and leaves the rest claimed and unsent.
IN_FLIGHT_MAX = 8
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def today() -> date:
    """Today where the configs below live (UTC), as the daemon will see it."""
    return datetime.now(UTC).date()


def sim(
    sim_id: str, expires: date, *, before: Sequence[str] = ("3d",), after: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "id": sim_id,
        "operator": "kcell",
        "number": PHONE,
        "expires": expires.isoformat(),
        "remind_before": list(before),
        "remind_after": list(after),
    }


# --- the harness -------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


class Daemon:
    """A ``watcher`` process running in the background, its output going to files."""

    def __init__(self, process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.process = process
        self.stdout = stdout
        self.stderr = stderr

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int | None, float]:
        """Signal the daemon; its exit code (None if still running) and seconds taken."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code: int | None = self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is finished or released."""
        self.process.kill()
        self.process.wait(timeout=10)


class Watcher:
    """Runs the ``watcher`` command on one config file and one database, as a user would."""

    def __init__(self, directory: Path, db_url: str) -> None:
        self.directory = directory
        self.db_url = db_url
        self.config = directory / "watcher.yaml"
        self.env = _child_env(db_url, directory)
        self.daemons: list[Daemon] = []
        self._outputs: list[Path] = []

    def write_config(self, channels: dict[str, str], sims: list[dict[str, Any]]) -> Path:
        document = {
            "timezone": "UTC",
            "remind_at": "00:00",
            "channels": channels,
            "delivery": {"workers": IN_FLIGHT_MAX},
            "users": [{"name": "alice", "language": "en", "notify": list(channels), "sims": sims}],
        }
        self.config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return self.config

    def _files(self, label: str) -> tuple[Path, Path]:
        stem = f"{len(self._outputs) // 2 + 1:02d}-{label}"
        out, err = self.directory / f"{stem}.stdout", self.directory / f"{stem}.stderr"
        self._outputs += [out, err]
        return out, err

    def _command(self, args: Sequence[str], config: Path | None) -> list[str]:
        return [sys.executable, "-m", "watcher", *args, "-c", str(config or self.config)]

    def cli(self, *args: str, config: Path | None = None) -> Result:
        """Run one command to completion (killed if it takes over a minute)."""
        out, err = self._files(args[0])
        with out.open("wb") as stdout, err.open("wb") as stderr:
            completed = subprocess.run(
                self._command(args, config),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=self.env,
                cwd=self.directory,
                timeout=60,
                check=False,
            )
        return Result(completed.returncode, _read(out), _read(err))

    def start(self, *args: str) -> Daemon:
        """Start the daemon, ``watcher run``, in the background."""
        return self.spawn("run", *args)

    def spawn(self, *args: str) -> Daemon:
        """Start any ``watcher`` command in the background."""
        out, err = self._files("daemon" if args == ("run",) else args[0])
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                self._command(args, None),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=self.env,
                cwd=self.directory,
            )
        daemon = Daemon(process, out, err)
        self.daemons.append(daemon)
        return daemon

    def all_output(self) -> str:
        """Everything every process of this test printed so far."""
        return "\n".join(_read(path) for path in self._outputs if path.exists())

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.process.poll() is None:
                daemon.kill()

    def dump(self) -> None:
        for path in self._outputs:
            if path.exists() and path.stat().st_size:
                print(f"----- {path.name} -----\n{_read(path)}")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _child_env(db_url: str, directory: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WATCHER_") and key.lower() not in _PROXY_VARIABLES
    }
    env.update(
        WATCHER_DATABASE_URL=db_url,
        XDG_DATA_HOME=str(directory / "data"),  # never the developer's own database
        NO_PROXY="127.0.0.1,localhost",  # loopback only, whatever the machine's proxy says
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def watcher(tmp_path: Path, db_url: str) -> Iterator[Watcher]:
    harness = Watcher(tmp_path, db_url)
    try:
        yield harness
    finally:
        harness.close()
        harness.dump()  # pytest shows a fixture's output only for a failed test


@contextmanager
def database(db_url: str) -> Iterator[Session]:
    """A session on the daemon's database, for looking at (or nudging) its rows."""
    db = Database(db_url)
    try:
        with db.session() as session:
            yield session
    finally:
        db.close()


def outbox(db_url: str) -> list[OutboxRow]:
    with database(db_url) as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def statuses(db_url: str) -> list[str]:
    return [row.status for row in outbox(db_url)]


def has_planned(db_url: str) -> bool:
    """True once the daemon finished a planning pass (False while it is still migrating)."""
    try:
        with database(db_url) as session:
            return session.get(Heartbeat, "planner") is not None
    except SQLAlchemyError:
        return False


def webhook_texts(webhook: WebhookReceiver) -> list[str]:
    """Title and body of each webhook message received, as one string each."""
    return [
        f"{r.payload.get('title', '')}\n{r.payload.get('message', '')}"
        for r in list(webhook.received)
    ]


def reminded(webhook: WebhookReceiver) -> Counter[str]:
    """How many reminders each SIM got; a title starts with the SIM's id (it has no plan)."""
    return Counter(title.split(":")[0] for title in webhook.titles())


def assert_nothing_leaked(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, "a channel secret was printed or sent"
        assert PHONE not in text, "a raw phone number was printed or sent"
        assert PHONE.lstrip("+") not in text, "a raw phone number was printed or sent"


# --- the scenarios -----------------------------------------------------------------


def test_due_reminder_reaches_each_channel_once_and_sigterm_exits_0(
    watcher: Watcher, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    watcher.write_config(
        {"hook": webhook.url(SECRET), "mail": smtp.url()},
        [sim("alice-kcell", today() + timedelta(days=3))],
    )

    daemon = watcher.start()
    assert wait_for(lambda: len(webhook.received) >= 1 and len(smtp.subjects()) >= 1, 30)
    assert wait_for(lambda: statuses(watcher.db_url) == ["sent", "sent"], 10, interval=0.2)
    # Another planning and delivery pass on the same database while the daemon runs
    # finds nothing left to send; meanwhile any duplicate from the daemon has time to show.
    again = watcher.spawn("run", "--once")
    assert not wait_for(lambda: len(webhook.received) > 1 or len(smtp.subjects()) > 1, 3)
    assert again.wait() == 0
    code, took = daemon.stop(signal.SIGTERM)

    assert code == 0, f"exit code {code} after {took:.1f} s"
    assert "stopped" in daemon.log()
    assert len(webhook.received) == 1
    assert len(smtp.subjects()) == 1
    assert webhook.titles() == ["alice-kcell: expires in 3 days"]
    assert smtp.subjects() == ["alice-kcell: expires in 3 days"]
    assert MASKED_PHONE in webhook_texts(webhook)[0]
    assert MASKED_PHONE in smtp.bodies()[0]
    assert all(row.attempts == 1 for row in outbox(watcher.db_url))
    assert_nothing_leaked(watcher.all_output(), *webhook_texts(webhook), *smtp.bodies())


def test_channel_down_is_retried_after_backoff_without_resending_the_other(
    watcher: Watcher, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    watcher.write_config(
        {"hook": webhook.url(SECRET), "mail": smtp.url()},
        [sim("alice-kcell", today() + timedelta(days=3))],
    )
    webhook.status = 500

    down = watcher.cli("run", "--once")

    assert down.code == 1
    assert webhook.requests == 1
    assert webhook.received == []
    assert len(smtp.subjects()) == 1
    rows = {row.channel: row for row in outbox(watcher.db_url)}
    assert (rows["hook"].status, rows["hook"].attempts) == ("pending", 1)
    assert (rows["mail"].status, rows["mail"].attempts) == ("sent", 1)
    assert rows["hook"].first_attempt_at is not None
    backoff = rows["hook"].next_attempt_at - rows["hook"].first_attempt_at
    assert timedelta(seconds=47) <= backoff <= timedelta(seconds=73)  # 1 min ±20 %
    assert rows["hook"].last_error is not None
    assert "500" in rows["hook"].last_error
    assert SECRET not in rows["hook"].last_error

    # The channel is back. Simulates the backoff elapsing (about a minute of real time)
    # without waiting for it.
    webhook.status = 200
    with database(watcher.db_url) as session:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == "pending")
            .values(next_attempt_at=datetime.now(UTC))
        )
    up = watcher.cli("run", "--once")

    assert up.code == 0
    assert webhook.requests == 2
    assert webhook.titles() == ["alice-kcell: expires in 3 days"]
    assert len(smtp.subjects()) == 1
    rows = {row.channel: row for row in outbox(watcher.db_url)}
    assert (rows["hook"].status, rows["hook"].attempts) == ("sent", 2)
    assert (rows["mail"].status, rows["mail"].attempts) == ("sent", 1)
    assert_nothing_leaked(watcher.all_output(), *webhook_texts(webhook), *smtp.bodies())


def test_sigkill_mid_delivery_then_restart_loses_nothing_and_resends_only_unrecorded(
    watcher: Watcher, webhook: WebhookReceiver
) -> None:
    sim_ids = [f"sim-{n:02d}" for n in range(1, 31)]
    watcher.write_config(
        {"hook": webhook.url(SECRET)},
        [sim(sim_id, today() + timedelta(days=3)) for sim_id in sim_ids],
    )
    webhook.delay = 0.3  # 30 slow sends, a few at a time: over a second of delivery to cut

    first = watcher.start()
    assert wait_for(lambda: len(webhook.received) >= 1, 30)
    first.kill()
    assert 0 < len(webhook.received) < len(sim_ids)
    with database(watcher.db_url) as session:
        query = select(OutboxRow.sim_id).where(OutboxRow.status == "sent")
        recorded_before_kill = set(session.scalars(query))

    second = watcher.start()
    assert wait_for(lambda: set(reminded(webhook)) == set(sim_ids), 30), sorted(
        set(sim_ids) ^ set(reminded(webhook))
    )
    assert wait_for(lambda: set(statuses(watcher.db_url)) == {"sent"}, 10, interval=0.2)
    code, _ = second.stop(signal.SIGTERM)

    assert code == 0
    claimed = re.search(r"with (\d+) messages claimed; .*at most (\d+) of them", second.log())
    assert claimed is not None, second.log()
    assert int(claimed[2]) == min(int(claimed[1]), IN_FLIGHT_MAX)
    counts = reminded(webhook)
    assert set(counts) == set(sim_ids)  # none lost
    assert max(counts.values()) <= 2, counts  # the restart sends each message once
    assert all(counts[sim_id] == 1 for sim_id in recorded_before_kill), counts
    assert sum(count - 1 for count in counts.values()) <= IN_FLIGHT_MAX, counts
    assert len(outbox(watcher.db_url)) == len(sim_ids)
    assert_nothing_leaked(watcher.all_output(), *webhook_texts(webhook))


def test_renew_for_30_days_stops_the_overdue_nags(
    watcher: Watcher, webhook: WebhookReceiver
) -> None:
    expired = today() - timedelta(days=2)
    watcher.write_config(
        {"hook": webhook.url(SECRET)},
        [sim("alice-kcell", expired, before=("3d",), after=("1d", "3d"))],
    )

    first = watcher.cli("run", "--once")

    assert first.code == 0
    assert webhook.titles() == ["alice-kcell: expired 2 days ago"]

    def scheduled() -> list[tuple[date, str]]:
        with database(watcher.db_url) as session:
            query = current_slots().where(ScheduleRow.sim_id == "alice-kcell")
            return sorted((slot.target, slot.offset) for slot in session.scalars(query))

    assert scheduled() == [(expired, "+3d")]  # tomorrow's nag, were nothing to happen

    renewed = watcher.cli("renew", "alice-kcell", "--for", "30d")

    new_expiry = today() + timedelta(days=30)
    assert renewed.code == 0
    assert f"renewed until {new_expiry}" in renewed.stdout
    assert all(target == new_expiry for target, _ in scheduled())
    assert "-3d" in {offset for _, offset in scheduled()}
    after = watcher.cli("run", "--once")
    assert after.code == 0
    assert len(webhook.received) == 1
    status = watcher.cli("status", "--json")
    assert status.code == 0
    [row] = json.loads(status.stdout)
    assert row["sim"] == "alice-kcell"
    assert row["expires"] == new_expiry.isoformat()
    assert row["days_left"] == 30
    assert row["number"] == MASKED_PHONE
    assert_nothing_leaked(watcher.all_output(), *webhook_texts(webhook))


BAD_CONFIG = """\
timezone: UTC
channels:
  hook: "json://127.0.0.1:9/s3cr3t-token-value"
users:
  - name: alice
    notify: [hook]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2026-13-45
"""


@pytest.mark.parametrize("command", ["run", "check"])
def test_bad_config_exits_2_naming_the_field(watcher: Watcher, command: str) -> None:
    bad = watcher.directory / "bad.yaml"
    bad.write_text(BAD_CONFIG, encoding="utf-8")

    result = watcher.cli(command, config=bad)

    assert result.code == 2
    assert f"{bad}: users[0].sims[0].expires" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_leaked(result.stdout, result.stderr)


def test_idle_daemon_stops_promptly_on_sigterm(watcher: Watcher, webhook: WebhookReceiver) -> None:
    watcher.write_config(
        {"hook": webhook.url(SECRET)}, [sim("alice-kcell", today() + timedelta(days=100))]
    )
    daemon = watcher.start()
    assert wait_for(lambda: "watching 1 SIMs" in daemon.log(), 30)
    assert wait_for(lambda: has_planned(watcher.db_url), 10, interval=0.2)

    code, took = daemon.stop(signal.SIGTERM)

    assert code == 0, f"exit code {code} after {took:.1f} s"
    assert took < STOP_WITHIN
    assert "stopped" in daemon.log()
    assert webhook.requests == 0
    assert_nothing_leaked(watcher.all_output())


# --- above the database, so on SQLite only --------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_verbose_logging_keeps_channel_secrets_out(
    watcher: Watcher, webhook: WebhookReceiver
) -> None:
    watcher.write_config(
        {"hook": webhook.url(SECRET)}, [sim("alice-kcell", today() + timedelta(days=3))]
    )

    result = watcher.cli("-v", "run", "--once")

    assert result.code == 0
    assert len(webhook.received) == 1
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_kill_repeats_no_more_than_the_sends_in_flight_even_if_recording_lags(
    watcher: Watcher, webhook: WebhookReceiver, db_url: str
) -> None:
    sim_ids = [f"sim-{n:02d}" for n in range(1, 31)]
    watcher.write_config(
        {"hook": webhook.url(SECRET)},
        [sim(sim_id, today() + timedelta(days=3)) for sim_id in sim_ids],
    )
    webhook.delay = 0.3
    daemon = watcher.start()
    assert wait_for(lambda: "watching 30 SIMs" in daemon.log(), 30)
    lock = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        claimed = "SELECT count(*) FROM outbox WHERE claimed_at IS NOT NULL"
        assert wait_for(lambda: lock.execute(claimed).fetchone()[0] > 0, 10, interval=0.01)
        # Stall the daemon's writes (as a busy database would) before its first send
        # returns (0.3 s): nothing it sends from now on can be marked sent. A sender
        # that went on sending regardless would have sent over 8 within 1.5 s.
        lock.execute("BEGIN IMMEDIATE")
        wait_for(lambda: len(webhook.received) > IN_FLIGHT_MAX, 1.5)
        daemon.kill()
    finally:
        lock.close()  # rolls back: the write lock is gone

    restarted = watcher.start()
    assert wait_for(lambda: set(reminded(webhook)) == set(sim_ids), 30)
    assert wait_for(lambda: set(statuses(db_url)) == {"sent"}, 10, interval=0.2)
    assert restarted.stop(signal.SIGTERM)[0] == 0

    duplicates = sum(count - 1 for count in reminded(webhook).values())
    assert duplicates <= IN_FLIGHT_MAX, reminded(webhook)
