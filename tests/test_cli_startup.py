"""How ``watcher`` starts: each command imports only what it uses, in a fresh process.

Start-up time is what a person at a terminal (and the container's health check, every
minute) pays before anything happens; `make bench` measures it, these tests pin down
the imports that decide it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NO_POSTGRES, POSTGRES_URL, WriteConfig, reset_postgres
from watcher.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Delivery, storage, migrations and scraping: none of them is needed to print help.
HEAVY = ("apprise", "sqlalchemy", "alembic", "httpx", "selectolax", "playwright", "apscheduler")

_CHILD = """
import sys
from watcher.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\nMODULES", " ".join(sorted(sys.modules)))
print("EXIT", code)
"""


def modules_after(*argv: str, cwd: Path = ROOT) -> tuple[set[str], str]:
    """The top-level packages imported by ``watcher ARGV`` in a fresh interpreter, and
    what it printed before them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WATCHER_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    out, _, tail = result.stdout.rpartition("\nMODULES ")
    assert tail, result.stderr
    names = tail.splitlines()[0].split()
    return {name.split(".")[0] for name in names}, out


def test_importing_the_cli_loads_nothing_heavy() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys, watcher.cli; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    loaded = {name.split(".")[0] for name in out.split()}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "scrapers" not in loaded


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["status", "--help"], ["scrape", "--help"], ["--version"]],
    ids=" ".join,
)
def test_help_loads_no_delivery_database_or_scraping_module(argv: list[str]) -> None:
    loaded, out = modules_after(*argv)
    assert "watcher" in out
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "pydantic" not in loaded
    assert "rich" not in loaded


SMALL_CONFIG = """
        database: {url}
        channels:
          hook: "json://127.0.0.1:1/hook"
        users:
          - name: alice
            notify: [hook]
            sims:
              - id: alice-kcell
                operator: kcell
                number: "+77011234567"
                expires: 2030-01-01
        """


@pytest.fixture
def small_config(write_config: WriteConfig, tmp_path: Path) -> Path:
    return write_config(SMALL_CONFIG.format(url=f"sqlite:///{tmp_path / 'w.db'}"))


def test_check_loads_neither_the_database_nor_the_fetcher(small_config: Path) -> None:
    loaded, out = modules_after("check", "-c", str(small_config))
    assert "OK" in out, out
    assert loaded.isdisjoint({"sqlalchemy", "alembic", "httpx", "playwright", "apscheduler"}), (
        sorted(loaded & set(HEAVY))
    )


@pytest.mark.parametrize("command", ["status", "health"])
def test_status_and_health_on_a_current_sqlite_database_load_only_what_they_read_with(
    small_config: Path, command: str
) -> None:
    assert main(["db", "upgrade", "-c", str(small_config)]) == 0
    # status shows what a daemon loaded: a recorded renewal syncs the SIM in.
    assert main(["renew", "alice-kcell", "--until", "2030-02-01", "-c", str(small_config)]) == 0
    loaded, out = modules_after(command, "-c", str(small_config))
    assert "alice" in out or "healthy" in out, out
    # Nothing is sent, so Apprise is not asked about the channel URLs either; and
    # SQLAlchemy (ORM or not) is 0.18 s of import: these two read the file with sqlite3.
    unwanted = {"apprise", "alembic", "httpx", "playwright", "apscheduler", "sqlalchemy"}
    assert loaded.isdisjoint(unwanted), sorted(loaded & unwanted)


@pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)
@pytest.mark.parametrize("command", ["status", "health"])
def test_status_and_health_on_a_current_postgres_database_load_no_sqlalchemy(
    write_config: WriteConfig, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL they read through psycopg alone (0.1 s to import, not 0.28 s).
    assert POSTGRES_URL is not None
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    reset_postgres(POSTGRES_URL)
    config = str(write_config(SMALL_CONFIG.format(url=POSTGRES_URL)))
    assert main(["db", "upgrade", "-c", config]) == 0
    assert main(["renew", "alice-kcell", "--until", "2030-02-01", "-c", config]) == 0
    loaded, out = modules_after(command, "-c", config)
    assert "alice" in out or "healthy" in out, out
    assert "sqlalchemy" not in loaded
    assert "psycopg" in loaded
