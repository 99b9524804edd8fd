"""`watcher status` only reads, and says when the config has moved on from the daemon's."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import WriteConfig
from watcher.cli import main
from watcher.db import Database, open_database_readonly

TODAY = date.today()  # the CLI runs on the real clock

CONFIG = """
timezone: Asia/Almaty
database: {db_url}
remind_at: "00:00"
channels:
  dead: "json://127.0.0.1:1/nothing-listens"
users:
  - name: alice
    notify: [dead]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: {expires}
        balance_check_every: 14d
"""

NEW_SIM = """
      - id: alice-new
        operator: tele2
        number: "+77071234567"
        expires: {expires}
"""


@pytest.fixture
def config_file(write_config: WriteConfig, db_url: str) -> Path:
    return write_config(CONFIG.format(db_url=db_url, expires=TODAY - timedelta(days=2)))


def snapshot(db_url: str) -> dict[str, object]:
    """Every row of every table, and for SQLite the main file's bytes and mtime."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
            rows: dict[str, object] = {
                table: sorted(map(repr, connection.execute(text(f'SELECT * FROM "{table}"'))))
                for table in tables
            }
    finally:
        engine.dispose()
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        rows["file"] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return rows


def test_status_writes_nothing_and_says_the_config_changed_since_the_daemon_loaded_it(
    config_file: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--once", "-c", str(config_file)]) in (0, 1)
    capsys.readouterr()
    # A SIM added since: a status that synced would write it, and reschedule.
    config_file.write_text(
        config_file.read_text(encoding="utf-8") + NEW_SIM.format(expires=TODAY), encoding="utf-8"
    )
    before = snapshot(db_url)
    assert main(["status", "--json", "-c", str(config_file)]) == 0
    assert main(["status", "-c", str(config_file)]) == 0
    assert snapshot(db_url) == before
    out, err = capsys.readouterr()
    assert f"note: {config_file} has changed since the daemon loaded it" in err
    assert "alice-new" not in out  # what the daemon works from, not what the file says
    assert "alice-kcell" in out

    # Once the daemon has loaded the edit, the note goes and the new SIM shows.
    assert main(["run", "--once", "-c", str(config_file)]) in (0, 1)
    capsys.readouterr()
    assert main(["status", "--json", "-c", str(config_file)]) == 0
    out, err = capsys.readouterr()
    assert {row["sim"] for row in json.loads(out)} == {"alice-kcell", "alice-new"}
    assert "note:" not in err


def test_status_after_commands_but_before_any_daemon_says_no_daemon_has_run(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["balance", "alice-kcell", "2500", "-c", str(config_file)]) == 0
    capsys.readouterr()
    assert main(["status", "-c", str(config_file)]) == 0
    out, err = capsys.readouterr()
    assert "alice-kcell" in out
    assert "note: no daemon has loaded a config into this database yet" in err


def test_status_without_a_database_creates_none(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "never-made.db"
    config = write_config(CONFIG.format(db_url=f"sqlite:///{db}", expires=TODAY))
    assert main(["status", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"error: no database at {db} yet" in err
    assert "Traceback" not in err
    assert not db.exists()


def test_times_carry_the_users_utc_offset(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["run", "--once", "-c", str(config_file)]) in (0, 1)
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", "--json", "-c", str(config_file)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["last_message"]["at"].endswith("+05:00")  # ISO 8601 in Asia/Almaty
    assert main(["status", "-c", str(config_file)]) == 0
    out = capsys.readouterr().out
    day, clock = row["last_message"]["at"][:16].split("T")
    assert f"{day} {clock} +05" in out


def test_log_lines_carry_the_utc_offset_as_status_and_sources_times_do() -> None:
    import logging
    from datetime import UTC, datetime

    from watcher.clock import ZonedLogFormatter, zoned_text

    instant = datetime(2026, 12, 4, 4, 0, 5, tzinfo=UTC)
    record = logging.makeLogRecord({"created": instant.timestamp(), "msg": "sent"})
    line = ZonedLogFormatter("%(asctime)s %(message)s").format(record)
    assert line == f"{zoned_text(instant, seconds=True)} sent"
    assert zoned_text(instant, ZoneInfo("Asia/Almaty")) == "2026-12-04 09:00 +05"
    kolkata = zoned_text(instant, ZoneInfo("Asia/Kolkata"), seconds=True)
    assert kolkata == "2026-12-04 09:30:05 +05:30"


def test_the_read_only_database_refuses_writes_on_every_backend(
    database: Database, db_url: str
) -> None:
    reader = open_database_readonly(db_url)
    try:
        with pytest.raises(DBAPIError), reader.session() as session:
            session.execute(text("DELETE FROM heartbeats"))
        with reader.session() as session:
            assert session.execute(text("SELECT count(*) FROM sims")).scalar() == 0
    finally:
        reader.close()


def test_status_on_a_database_older_than_the_code_names_the_fix(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    engine.dispose()
    config = write_config(CONFIG.format(db_url=f"sqlite:///{db}", expires=TODAY))
    assert main(["status", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "no such table" in err
    assert "watcher db upgrade" in err
    assert "Traceback" not in err
