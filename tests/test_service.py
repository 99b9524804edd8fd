"""Health and metrics over HTTP, JSON logs and SIGHUP: what the person on call sees.

Real pieces throughout: the daemon's own HTTP server on a loopback port, a real
database (SQLite file, and PostgreSQL where WATCHER_TEST_POSTGRES_URL is set), a real
webhook receiver behind a real Apprise URL, and a real `watcher run` process for the
signal and the log lines.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeApp, WriteConfig
from tests.servers import WebhookReceiver, free_port, wait_for
from watcher.app import App
from watcher.clock import FixedClock
from watcher.logs import JsonFormatter
from watcher.masking import hide_in_logs
from watcher.service import HttpService, check_health, parse_listen

NOW = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)  # 09:30 in Almaty (UTC+5)
ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
timezone: Asia/Almaty
channels:
  me: "{hook}"
users:
  - name: alice
    notify: [me]
    remind_at: "09:00"
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2026-12-04
        remind_before: [3d]
"""


@pytest.fixture
def hook() -> WebhookReceiver:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def app(write_config: WriteConfig, make_app: MakeApp, hook: WebhookReceiver) -> App:
    made = make_app(write_config(CONFIG.format(hook=hook.url())), clock=FixedClock(NOW))
    made.sync()
    return made


@pytest.fixture
def served(app: App) -> HttpService:
    service = HttpService(
        ("127.0.0.1", 0),
        health=lambda: check_health(app.database, app.clock, 180),
        metrics=app.metrics,
    )
    service.start()
    yield service
    service.stop()


def get(service: HttpService, path: str) -> tuple[int, str]:
    host, port = service.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# --- /healthz -------------------------------------------------------------------------------


def test_health_is_503_until_a_planning_pass_then_200_then_503_when_planning_stalls(
    app: App, served: HttpService
) -> None:
    status, body = get(served, "/healthz")
    assert status == 503
    assert json.loads(body)["reason"] == "no planning pass has finished yet"

    app.plan()
    status, body = get(served, "/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"

    assert isinstance(app.clock, FixedClock)
    app.clock.advance(timedelta(minutes=10))
    status, body = get(served, "/healthz")
    assert status == 503
    assert "last planning pass finished 600 s ago" in json.loads(body)["reason"]


def test_health_is_503_when_the_database_does_not_answer(app: App, served: HttpService) -> None:
    app.plan()
    app.database.engine.dispose()
    app.database.engine.pool._creator = _refuse  # type: ignore[attr-defined]

    status, body = get(served, "/healthz")

    assert status == 503
    assert json.loads(body)["reason"].startswith("the database does not answer")


def _refuse() -> object:
    raise OSError("connection refused")


def test_unknown_paths_are_404(served: HttpService) -> None:
    assert get(served, "/nothing")[0] == 404


# --- /metrics -------------------------------------------------------------------------------


def test_metrics_count_outbox_depth_replicas_and_messages_by_outcome(
    app: App, served: HttpService, hook: WebhookReceiver
) -> None:
    app.beat_replica()  # the daemon's heartbeat job: one replica live
    app.plan()
    before = samples(get(served, "/metrics")[1])
    assert before[("watcher_outbox_messages", (("status", "pending"),))] == 1
    assert before[("watcher_outbox_oldest_pending_age_seconds", ())] == 0
    assert before[("watcher_replicas", ())] == 1
    assert before[("watcher_database_up", ())] == 1
    assert ("watcher_build_info", (("version", _version()),)) in before

    app.deliver()
    assert wait_for(lambda: len(hook.titles()) == 1)
    after = samples(get(served, "/metrics")[1])

    assert after[("watcher_outbox_messages", (("status", "pending"),))] == 0
    assert after[("watcher_outbox_messages", (("status", "sent"),))] == 1
    sent = ("watcher_messages_total", (("channel", "me"), ("kind", "expiry"), ("outcome", "sent")))
    assert after[sent] == 1
    assert after[("watcher_planning_duration_seconds_count", ())] == 1
    assert all(name.startswith("watcher_") for name, _ in after)


def test_the_oldest_pending_message_ages_with_the_clock(app: App, served: HttpService) -> None:
    app.plan()
    assert isinstance(app.clock, FixedClock)
    app.clock.advance(timedelta(seconds=90))

    found = samples(get(served, "/metrics")[1])

    assert found[("watcher_outbox_oldest_pending_age_seconds", ())] == 90


def test_metrics_answer_with_the_database_down(app: App, served: HttpService) -> None:
    app.database.engine.dispose()
    app.database.engine.pool._creator = _refuse  # type: ignore[attr-defined]

    status, text = get(served, "/metrics")

    assert status == 200
    assert samples(text)[("watcher_database_up", ())] == 0


def _version() -> str:
    from watcher import __version__

    return __version__


# --- --http HOST:PORT -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        (":9100", ("0.0.0.0", 9100)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9100", "host:", "host:0", "host:70000", "host:http", ""])
def test_bad_listen_addresses_are_one_line_errors(text: str) -> None:
    with pytest.raises(ValueError, match="--http wants HOST:PORT"):
        parse_listen(text)


def test_a_taken_port_is_a_one_line_error_not_a_traceback(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    port = free_port()
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        path = write_config(CONFIG.format(hook="json://127.0.0.1:9/x"))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "watcher",
                "run",
                "-c",
                str(path),
                "--http",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"},
        )

    assert result.returncode == 1
    assert f"error: cannot serve HTTP on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# --- JSON logs ------------------------------------------------------------------------------


def test_json_log_lines_are_one_object_each_with_fields_and_no_secrets() -> None:
    secret_url = "tgram://123456789:AAHsecretTOKENvalue/42"
    hide_in_logs([secret_url])
    logger = logging.getLogger("watcher.test")
    record = logger.makeRecord(
        "watcher.test",
        logging.WARNING,
        __file__,
        1,
        "sending to %s failed",
        (secret_url,),
        None,
        extra={"channel": "me", "attempt": 2, "url": secret_url},
    )
    try:
        raise RuntimeError(f"boom at {secret_url}")
    except RuntimeError:
        record.exc_info = sys.exc_info()

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "watcher.test"
    assert entry["channel"] == "me" and entry["attempt"] == 2
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert "AAHsecretTOKENvalue" not in line
    assert "RuntimeError" in entry["exception"]
    hide_in_logs([])


def test_the_daemon_logs_json_and_reloads_on_sighup(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config(CONFIG.format(hook="json://127.0.0.1:9/x"))
    port = free_port()
    log_file = (tmp_path / "log").open("w+")
    command = [sys.executable, "-m", "watcher", "--log-format", "json", "run", "-c", str(path)]
    daemon = subprocess.Popen(
        [*command, "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        env={**os.environ, "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"},
    )
    try:

        def lines() -> list[dict[str, object]]:
            text = Path(log_file.name).read_text()
            # Whole lines only: the daemon may be halfway through writing the last one.
            complete = text[: text.rfind("\n") + 1]
            return [json.loads(line) for line in complete.splitlines() if line.strip()]

        assert wait_for(lambda: any("watching" in str(e["message"]) for e in lines()), 30)
        assert wait_for(lambda: _status(port) == 200, 30)

        # Same size, same second: only SIGHUP makes it read the file again.
        text = path.read_text().replace("2026-12-04", "2027-01-04")
        stat = path.stat()
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        daemon.send_signal(signal.SIGHUP)

        assert wait_for(lambda: any("config reloaded" in str(e["message"]) for e in lines()), 30)
        assert all({"time", "level", "logger", "message"} <= set(e) for e in lines())
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
        log_file.close()


def _status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_an_unknown_log_format_is_a_one_line_error(write_config: WriteConfig) -> None:
    path = write_config(CONFIG.format(hook="json://127.0.0.1:9/x"))
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WATCHER_LOG_FORMAT": "xml"},
    )

    assert result.returncode == 2
    assert result.stderr == (
        "error: WATCHER_LOG_FORMAT='xml' is not a log format; use one of text, json\n"
    )


def test_health_over_http_asks_the_daemon_and_needs_no_config(
    app: App, served: HttpService, tmp_path: Path
) -> None:
    host, port = served.address

    def health(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watcher", "health", "--http", f"{host}:{port}", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,  # no watcher.yaml here, and none is needed
            env={**os.environ, "WATCHER_CONFIG": str(tmp_path / "missing.yaml")},
        )

    before = health()
    app.plan()
    after = health("--json")

    assert before.returncode == 1
    assert before.stdout == "unhealthy: no planning pass has finished yet\n"
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["answer"]["status"] == "ok"


def test_health_over_http_without_a_daemon_is_unhealthy_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "health", "--http", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: no answer from http://127.0.0.1:")
    assert result.stdout.count("\n") == 1 and not result.stderr
