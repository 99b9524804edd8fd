"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

The builders are factories: ``write_config`` writes a config file, ``make_app`` wires an
App to it on the test's database, ``database`` and ``sync`` work a level below, on the
database alone. Each closes what it built when the test ends.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, select, text

from tests.servers import SmtpSink, WebhookReceiver
from watcher.app import App
from watcher.clock import Clock
from watcher.config import LoadedConfig, load_config, parse_config
from watcher.db import Database, OutboxRow, open_database
from watcher.reminders.planner import plan_due
from watcher.sync import SyncReport, sync_config

# Property tests explore fresh examples on every local run; CI (.ci/run sets
# HYPOTHESIS_PROFILE=ci) runs the same examples each time, with no per-example deadline
# on a loaded machine, so a landing is never decided by which examples were drawn. A
# failure found locally is replayed from Hypothesis's example database.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

POSTGRES_URL = os.environ.get("WATCHER_TEST_POSTGRES_URL")
NO_POSTGRES = "set WATCHER_TEST_POSTGRES_URL to run the PostgreSQL variant"

# When ``sync`` runs unless told otherwise: 2026-11-25 08:00 in Almaty (UTC+5).
SYNC_AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)

WriteConfig = Callable[..., Path]
MakeApp = Callable[..., App]
Sync = Callable[..., SyncReport]
Plan = Callable[[datetime], list[tuple[str, str, str]]]
AliceConfig = Callable[..., str]


def reset_postgres(url: str) -> None:
    """A clean schema for the next test; the test database is a throwaway."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with nothing in it: a SQLite file, or a wiped PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'watcher.db'}"
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """The test's database, opened and migrated as the daemon opens it."""
    db = open_database(db_url)
    yield db
    db.close()


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write config text (dedented) to ``tmp_path/name``; returns the path.

    Every write gets a later mtime than the one before, even within the file system's
    timestamp granularity, so an App always sees a rewrite as an edit.
    """
    stamp = [1_700_000_000_000_000_000]

    def write(config: str, *, name: str = "watcher.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(config), encoding="utf-8")
        stamp[0] += 1_000_000_000
        os.utime(path, ns=(stamp[0], stamp[0]))
        return path

    return write


@pytest.fixture
def make_app(db_url: str) -> Iterator[MakeApp]:
    """An App on a config file and the test's database, closed when the test ends.

    The database comes as ``WATCHER_DATABASE_URL``, as a container's daemon gets it, so
    configs need no ``database:`` line; the environment holds nothing else.
    """
    apps: list[App] = []

    def make(path: Path, *, clock: Clock, **options: Any) -> App:
        env = {"WATCHER_DATABASE_URL": db_url}
        app = App(load_config(path, env), clock=clock, env=env, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def alice_config() -> AliceConfig:
    """Config text: alice in Asia/Almaty, notified on channels a and b, with SIM s1.

    s1 (kcell) expires on 2026-12-01 and renews every 30d; ``extra`` adds lines to the
    SIM (indented as its fields), ``remind_at`` sets the reminder hour for everyone.
    """

    def config(
        *,
        expires: str = "2026-12-01",
        extra: str = "",
        notify: str = "[a, b]",
        remind_at: str | None = None,
    ) -> str:
        return f"""
timezone: Asia/Almaty
{f'remind_at: "{remind_at}"' if remind_at else ""}
channels: {{a: "json://127.0.0.1:9/a", b: "json://127.0.0.1:9/b"}}
users:
  - name: alice
    notify: {notify}
    sims:
      - id: s1
        operator: kcell
        number: "+77011234567"
        expires: {expires}
        renew_every: 30d
{extra}
"""

    return config


@pytest.fixture
def sync(database: Database) -> Sync:
    """Sync a config (YAML text, or already loaded) into ``database`` at ``now``."""

    def run(config: str | LoadedConfig, now: datetime = SYNC_AT) -> SyncReport:
        loaded = (
            parse_config(textwrap.dedent(config), "watcher.yaml", {})
            if isinstance(config, str)
            else config
        )
        with database.session() as session:
            return sync_config(session, loaded, now)

    return run


@pytest.fixture
def plan(database: Database) -> Plan:
    """Plan at ``now``; then every outbox row so far as (SIM, offset, channel), oldest first."""

    def run(now: datetime) -> list[tuple[str, str, str]]:
        with database.session() as session:
            plan_due(session, now)
        with database.session() as session:
            rows = session.execute(
                select(OutboxRow.sim_id, OutboxRow.offset, OutboxRow.channel).order_by(
                    OutboxRow.created_at, OutboxRow.sim_id, OutboxRow.channel
                )
            ).all()
        return [(r.sim_id or "", r.offset or "", r.channel) for r in rows]

    return run


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()
