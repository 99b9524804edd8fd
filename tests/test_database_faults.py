"""A database that fails under a command: one line naming it, exit 1, never a traceback.

Each command runs as a subprocess, as a user runs it. Tests run as root, and root
writes read-only files regardless, so the read-only SQLite commands run with the
capability that lets root do so dropped (``setpriv``).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.conftest import NO_POSTGRES, POSTGRES_URL, MakeApp, WriteConfig, reset_postgres
from tests.servers import free_port
from watcher.clock import FixedClock
from watcher.daemon import Daemon
from watcher.db import open_database
from watcher.db.faults import database_error_line, is_database_fault

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "+77011234567"
PASSWORD = "hunter2-s3cret"
NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)

Watcher = Callable[..., subprocess.CompletedProcess[str]]


def config(database: str) -> str:
    return f"""
timezone: Asia/Almaty
database: {database}
channels: {{a: "json://127.0.0.1:9/a"}}
users:
  - name: alice
    notify: [a]
    sims:
      - id: s1
        operator: kcell
        number: "{NUMBER}"
        expires: 2026-12-30
        renew_every: 30d
"""


@pytest.fixture
def watcher() -> Watcher:
    """Run ``watcher ARGS`` in a subprocess; ``unprivileged`` drops root's file override."""

    def run(
        *argv: str, env: dict[str, str] | None = None, unprivileged: bool = False
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "watcher", *argv]
        if unprivileged and os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: cannot make a file read-only")
            command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        environment.pop("WATCHER_DATABASE_URL", None)
        environment.update(env or {})
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, env=environment, check=False
        )

    return run


def assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [f"error: {expected}"]
    assert "Traceback" not in result.stderr
    for secret in (NUMBER, PASSWORD, "INSERT", "UPDATE", "[SQL"):
        assert secret not in result.stdout + result.stderr


@pytest.fixture
def read_only_sqlite(write_config: WriteConfig, watcher: Watcher) -> Iterator[Path]:
    """A config whose SQLite database was written once, then made read-only."""
    path = write_config(config("sqlite:///watcher.db"))
    created = watcher("balance", "s1", "500", "-c", str(path))
    assert created.returncode == 0, created.stderr
    files = list(path.parent.glob("watcher.db*"))
    for file in files:
        file.chmod(0o444)
    yield path
    for file in files:
        file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.parent.chmod(0o755)


@pytest.mark.parametrize("command", [["renew", "s1"], ["balance", "s1", "600"]])
@pytest.mark.parametrize("directory_too", [False, True], ids=["file", "file-and-directory"])
def test_a_read_only_sqlite_file_is_one_line_naming_it(
    read_only_sqlite: Path, watcher: Watcher, command: list[str], directory_too: bool
) -> None:
    # Only the file read-only: the command opens the database and fails at its first
    # write. The directory too: SQLite cannot even set up its write-ahead log.
    if directory_too:
        read_only_sqlite.parent.chmod(0o555)
    result = watcher(*command, "-c", str(read_only_sqlite), unprivileged=True)
    database = read_only_sqlite.parent / "watcher.db"
    assert_one_line(result, f"cannot write the database at {database}: read-only")


def test_reading_a_read_only_sqlite_file_still_works(
    read_only_sqlite: Path, watcher: Watcher
) -> None:
    result = watcher("status", "-c", str(read_only_sqlite), unprivileged=True)
    assert result.returncode == 0, result.stderr
    assert "s1" in result.stdout


@pytest.mark.parametrize("command", [["renew", "s1"], ["balance", "s1", "600"], ["status"]])
def test_an_unreachable_postgresql_is_one_line_without_the_password(
    write_config: WriteConfig, watcher: Watcher, command: list[str]
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://watcher:{PASSWORD}@127.0.0.1:{port}/watcher"
    path = write_config(config(url))
    result = watcher(*command, "-c", str(path))
    assert_one_line(
        result,
        f"cannot reach the database at 127.0.0.1:{port}: connection failed: connection to "
        f'server at "127.0.0.1", port {port} failed: Connection refused',
    )


@pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)
@pytest.mark.parametrize("command", [["renew", "s1"], ["balance", "s1", "600"]])
def test_a_read_only_postgresql_is_one_line(
    write_config: WriteConfig, watcher: Watcher, command: list[str]
) -> None:
    # A hot standby, or a database set read-only: reads work, the first write fails.
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    path = write_config(config(POSTGRES_URL))
    assert watcher("balance", "s1", "500", "-c", str(path)).returncode == 0
    read_only = make_url(POSTGRES_URL).update_query_dict(
        {"options": "-c default_transaction_read_only=on"}
    )
    env = {"WATCHER_DATABASE_URL": read_only.render_as_string(hide_password=False)}
    result = watcher(*command, "-c", str(path), env=env)
    where = f"{read_only.host}:{read_only.port or 5432}"
    assert_one_line(result, f"cannot write the database at {where}: read-only")


def test_errors_that_are_bugs_keep_their_traceback(tmp_path: Path) -> None:
    # A broken constraint is our SQL's fault, not the database's: not hidden.
    database = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with pytest.raises(IntegrityError) as caught, database.engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO users (name) VALUES (NULL)")
    finally:
        database.close()
    assert not is_database_fault(caught.value)


def test_an_error_names_the_database_it_came_from_without_sql_or_password(
    tmp_path: Path,
) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with pytest.raises(OperationalError) as caught, database.engine.begin() as connection:
            connection.exec_driver_sql("SELECT secret_column FROM no_such_table")
    finally:
        database.close()
    assert is_database_fault(caught.value)
    line = database_error_line(caught.value)
    assert line == f"database error at {tmp_path / 'w.db'}: no such table: no_such_table"


def test_the_daemon_logs_a_database_outage_as_one_line_per_job(
    make_app: MakeApp, write_config: WriteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(write_config(config("sqlite:///unused.db")), clock=FixedClock(NOW))
    app.sync()

    def refuse(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        raise OperationalError(statement, parameters, Exception("the server is restarting"))

    event.listen(app.database.engine, "before_cursor_execute", refuse)
    Daemon(app)._deliver()
    [record] = [r for r in caplog.records if r.name == "watcher.daemon"]
    assert record.exc_info is None  # no traceback
    assert record.getMessage().startswith("delivery failed; will retry: database error at ")
    assert record.getMessage().endswith(": the server is restarting")
