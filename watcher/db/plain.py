"""The database without SQLAlchemy: what ``watcher status`` and ``watcher health`` read.

Importing SQLAlchemy costs about 0.18 s, most of a command that prints a few lines
(issue 11). On a plain ``sqlite:///PATH`` database at the newest revision these two
commands read through :mod:`sqlite3` instead: the few queries below, on a read-only
connection, with each value converted as the SQLAlchemy column type it was stored
by converts it. Anything else -- PostgreSQL, an unusual URL, a missing file, an older
or newer schema, any SQLite error -- raises :class:`Unsupported`, and the caller takes
the SQLAlchemy path, which answers (or says what is wrong) exactly as before.

Each read here has a twin in the module that owns its table (``outbox.last_messages``,
``sync.last_loaded``, ``heartbeat.last_beat``, ``reminders.status``);
tests/test_plain_reads.py checks that both give the same answer on the same database,
and that the columns read here are the models' columns, of the types converted here.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

__all__ = [
    "LOADED_KIND",
    "MIGRATIONS",
    "NO_SIM",
    "PLANNER",
    "LastMessage",
    "LoadedRecord",
    "PlainSim",
    "PlainUser",
    "Unsupported",
    "active_sims",
    "connect_readonly",
    "default_database_url",
    "head_revision",
    "last_beat",
    "last_loaded",
    "last_messages",
    "read",
    "sqlite_file",
    "users",
]

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
PLANNER = "planner"  # the heartbeat of the planning pass (watcher.heartbeat)
LOADED_KIND = "config-loaded"  # an event with no SIM: the daemon took a config in force
NO_SIM = ""


class Unsupported(Exception):
    """The plain path cannot answer for this database: use SQLAlchemy."""


# --- records shared with the SQLAlchemy path -------------------------------------------


@dataclass(frozen=True)
class LastMessage:
    """The latest message queued for a SIM, for ``watcher status``."""

    kind: str
    status: str
    at: datetime  # when it was sent, else when it was queued (UTC)


@dataclass(frozen=True)
class LoadedRecord:
    """Which config file version the daemon last put in force, and when."""

    digest: str
    at: datetime
    path: str


@dataclass(frozen=True)
class PlainUser:
    """The columns of ``users`` that status reads (names as in ``UserRow``)."""

    name: str
    timezone: str
    remind_at: str


@dataclass(frozen=True)
class PlainSim:
    """The columns of ``sims`` that status reads (names as in ``SimRow``)."""

    id: str
    user_name: str
    operator: str
    number: str
    expires: date | None
    remind_before: str
    remind_after: str
    balance_check_every: str | None
    last_balance_check: date | None
    balance: Decimal | None
    idle_limit: str | None
    last_paid_activity: date | None
    first_seen_at: datetime


# --- where the database is ---------------------------------------------------------------


def default_database_url(env: Mapping[str, str] | None = None) -> str:
    """A SQLite file in the user's data directory (``$XDG_DATA_HOME/sim-watcher``)."""
    env = os.environ if env is None else env
    base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'sim-watcher' / 'watcher.db'}"


# Only the URLs whose meaning is plain: no query string, nothing percent-encoded.
_PLAIN_SQLITE = re.compile(r"^sqlite(?:\+pysqlite)?:///([^?#%]+)$")


def sqlite_file(
    configured: str | None, config_dir: Path | None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` database, chosen and made absolute as
    ``engine.resolve_database_url`` does; None for any other database URL."""
    env = os.environ if env is None else env
    url = env.get("WATCHER_DATABASE_URL") or configured or default_database_url(env)
    match = _PLAIN_SQLITE.match(url)
    if match is None or match[1] == ":memory:":
        return None
    path = Path(match[1])
    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    return path


def connect_readonly(path: Path) -> sqlite3.Connection:
    """``path`` opened read-only (``mode=ro``: a missing file is an error, never created)."""
    connection = sqlite3.connect(
        f"{path.as_uri()}?mode=ro", uri=True, timeout=30, check_same_thread=False
    )
    connection.execute("PRAGMA query_only=ON")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"']([^\"']+)[\"']\s*$", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=\s*(None|[\"']([^\"']+)[\"'])\s*$", re.M)


@functools.cache
def head_revision() -> str | None:
    """The newest migration's revision, read from the files' ``revision`` and
    ``down_revision`` lines; None unless they form one chain with one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        parent = _DOWN_REVISION.search(source)
        if revision is None or parent is None:
            return None
        revisions.add(revision[1])
        if parent[2]:
            parents.add(parent[2])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def read(file: Path | None, reads: Callable[[sqlite3.Connection], T]) -> T:
    """``reads(connection)`` in one read-only transaction on the SQLite ``file``.

    Raises :class:`Unsupported` unless ``file`` exists and is at the newest revision,
    and on any SQLite error: then the SQLAlchemy path decides what to say.
    """
    if file is None:
        raise Unsupported
    try:
        path = file.resolve()
        if not path.is_file():
            raise Unsupported
        connection = connect_readonly(path)
        try:
            connection.execute("BEGIN")  # one snapshot for every read
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            head = head_revision()
            if head is None or rows != [(head,)]:
                raise Unsupported
            return reads(connection)
        finally:
            connection.close()
    except (sqlite3.Error, OSError, ValueError, TypeError):
        # ValueError, TypeError: a stored value these converters are not sure to read as
        # SQLAlchemy does. Its path reads it again, and fails (or not) as it always did.
        raise Unsupported from None


# --- values as SQLAlchemy's SQLite types store them ---------------------------------------


def _date(value: str | None) -> date | None:
    """``Date``: stored as ``YYYY-MM-DD`` text."""
    return None if value is None else date.fromisoformat(value)


def _utc(value: str | None) -> datetime | None:
    """``UTCDateTime``: naive UTC stored as ``YYYY-MM-DD HH:MM:SS.ffffff`` text."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        raise ValueError(f"an aware timestamp: {value!r}")
    return parsed.replace(tzinfo=UTC)


def _money(value: float | int | None) -> Decimal | None:
    """``Numeric(14, 2)``: stored as a float, read back as a Decimal of two places."""
    return None if value is None else Decimal(f"{value:.2f}")  # as SQLAlchemy: "%.2f" % value


# --- the reads -------------------------------------------------------------------------------


def users(connection: sqlite3.Connection) -> dict[str, PlainUser]:
    """Every user by name (``status.sim_statuses`` reads them all too)."""
    rows = connection.execute("SELECT name, timezone, remind_at FROM users")
    return {name: PlainUser(name, timezone, remind_at) for name, timezone, remind_at in rows}


def active_sims(connection: sqlite3.Connection) -> list[PlainSim]:
    """Every active SIM, by user then id."""
    rows = connection.execute(
        "SELECT id, user_name, operator, number, expires, remind_before, remind_after,"
        " balance_check_every, last_balance_check, balance, idle_limit,"
        " last_paid_activity, first_seen_at"
        " FROM sims WHERE active = 1 ORDER BY user_name, id"
    )
    sims = []
    for row in rows:
        first_seen = _utc(row[12])
        if first_seen is None:
            raise ValueError("a SIM without first_seen_at")
        sims.append(
            PlainSim(
                id=row[0],
                user_name=row[1],
                operator=row[2],
                number=row[3],
                expires=_date(row[4]),
                remind_before=row[5],
                remind_after=row[6],
                balance_check_every=row[7],
                last_balance_check=_date(row[8]),
                balance=_money(row[9]),
                idle_limit=row[10],
                last_paid_activity=_date(row[11]),
                first_seen_at=first_seen,
            )
        )
    return sims


def last_messages(connection: sqlite3.Connection) -> dict[str, LastMessage]:
    """``outbox.last_messages``: the latest message of each SIM that has one."""
    rows = connection.execute(
        "SELECT sim_id, kind, status, sent_at, created_at FROM outbox WHERE id IN"
        " (SELECT max(id) FROM outbox WHERE sim_id IS NOT NULL GROUP BY sim_id)"
    )
    found = {}
    for sim_id, kind, status, sent_at, created_at in rows:
        at = _utc(sent_at) or _utc(created_at)
        if at is None:
            raise ValueError("a message without a time")
        found[sim_id] = LastMessage(kind, status, at)
    return found


def last_loaded(connection: sqlite3.Connection) -> LoadedRecord | None:
    """``sync.last_loaded``: the config version the daemon last put in force."""
    row = connection.execute(
        "SELECT at, detail FROM events WHERE sim_id = ? AND kind = ?"
        " ORDER BY at DESC, id DESC LIMIT 1",
        (NO_SIM, LOADED_KIND),
    ).fetchone()
    if row is None:
        return None
    at = _utc(row[0])
    if at is None:
        raise ValueError("an event without a time")
    digest, _, path = row[1].partition(" ")
    return LoadedRecord(digest=digest, at=at, path=path)


def last_beat(connection: sqlite3.Connection, name: str) -> datetime | None:
    """``heartbeat.last_beat``: when ``name`` last ran, or None if it never did."""
    row = connection.execute("SELECT at FROM heartbeats WHERE name = ?", (name,)).fetchone()
    return None if row is None else _utc(row[0])
