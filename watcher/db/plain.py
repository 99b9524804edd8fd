"""The database without SQLAlchemy: what ``watcher status`` and ``watcher health`` read.

Importing SQLAlchemy costs about 0.18 s, most of a command that prints a few lines
(issue 11). On a plain ``sqlite:///PATH`` database at the newest revision these two
commands read through :mod:`sqlite3` instead, and on a plain
``postgresql+psycopg://`` URL through psycopg itself: the few queries below, in one
read-only transaction, with each value converted as the SQLAlchemy column type it was
stored by converts it. Anything else -- another driver, an unusual URL, a missing
file, an older or newer schema, any driver error once connected -- raises
:class:`Unsupported`, and the caller takes the SQLAlchemy path, which answers (or says
what is wrong) exactly as before. A PostgreSQL server that took long to fail (a
connect timeout) is said here, in the SQLAlchemy path's words, rather than waited for
a second time there; one that refuses at once is left to that path too.

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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote

from watcher.errors import DatabaseError

__all__ = [
    "LOADED_KIND",
    "MIGRATIONS",
    "NO_SIM",
    "PLANNER",
    "LastMessage",
    "LoadedRecord",
    "PlainSim",
    "PlainUser",
    "Reader",
    "Server",
    "Unsupported",
    "active_sims",
    "connect_readonly",
    "default_database_url",
    "head_revision",
    "last_beat",
    "last_loaded",
    "last_messages",
    "plain_source",
    "postgres_server",
    "read",
    "sqlite_file",
    "users",
]

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# A connection that took this long to fail is not tried again through SQLAlchemy.
SLOW_CONNECT = 1.0  # seconds
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


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server to read through psycopg: ``params`` are what SQLAlchemy's
    psycopg dialect would pass to ``psycopg.connect`` for the same URL."""

    where: str  # host:port, as watcher.db.faults names a server in its errors
    params: Mapping[str, Any] = field(repr=False)  # holds the password
    password: str | None = field(default=None, repr=False)


# SQLAlchemy's URL grammar (sqlalchemy.engine.url._parse_url) narrowed to the plain cases:
# the psycopg driver, at most one "@", a host name or IPv4 address, a numeric port.
_PLAIN_POSTGRES = re.compile(
    r"^postgresql\+psycopg://"
    r"(?:(?P<user>[^:/@?#\[\]]*)(?::(?P<password>[^@/?#\[\]]*))?@)?"
    r"(?P<host>[^/:@?#\[\]]*)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:/(?P<database>[^?#@]*))?"
    r"(?:\?(?P<query>[^#@]*))?$"
)
# Query keys SQLAlchemy reads itself (several hosts, plugins) or that would overrule
# the URL's own parts: left to it.
_SPECIAL_KEYS = frozenset({"host", "port", "user", "password", "dbname", "plugin"})


def postgres_server(url: str) -> Server | None:
    """The connection a plain ``postgresql+psycopg://`` URL means, else None.

    As SQLAlchemy does: user, password and database are percent-decoded, the empty
    ones left out, and each query parameter (``options=-csearch_path=...``,
    ``sslmode``, ``connect_timeout``...) is passed to ``psycopg.connect`` as it is.
    """
    match = _PLAIN_POSTGRES.match(url)
    if match is None:
        return None
    params: dict[str, str | int] = {}
    for key, value in parse_qsl(match["query"] or ""):
        if key in params or key in _SPECIAL_KEYS:
            return None
        params[key] = value
    parts = {
        "host": match["host"],
        "dbname": unquote(match["database"] or ""),
        "user": unquote(match["user"] or ""),
        "password": unquote(match["password"] or ""),
    }
    params.update({key: value for key, value in parts.items() if value})
    port = int(match["port"]) if match["port"] else None
    if port:
        params["port"] = port
    return Server(
        where=f"{match['host'] or 'localhost'}:{port or 5432}",
        params=params,
        password=parts["password"] or None,
    )


def plain_source(
    configured: str | None, config_dir: Path | None, env: Mapping[str, str] | None = None
) -> Path | Server | None:
    """What :func:`read` reads for the database URL in force: a SQLite file, a
    PostgreSQL server, or None when only SQLAlchemy may open it."""
    env = os.environ if env is None else env
    url = env.get("WATCHER_DATABASE_URL") or configured or default_database_url(env)
    return sqlite_file(url, config_dir, env) or postgres_server(url)


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


class _Rows(Protocol):
    def __iter__(self) -> Iterator[Any]: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Reader:
    """A read-only transaction on either driver. Each query is written once, with
    ``?`` placeholders; psycopg gets them as its ``%s``."""

    def __init__(self, connection: Any, *, psycopg: bool) -> None:
        self._connection = connection
        self._psycopg = psycopg

    def execute(self, sql: str, params: Sequence[object] = ()) -> _Rows:
        if self._psycopg:
            sql = sql.replace("?", "%s")
        rows: _Rows = self._connection.execute(sql, params)
        return rows


def read(source: Path | Server | None, reads: Callable[[Reader], T]) -> T:
    """``reads(reader)`` in one read-only transaction, one snapshot, on ``source``.

    Raises :class:`Unsupported` unless ``source`` exists and is at the newest revision,
    and on any driver error: then the SQLAlchemy path decides what to say.
    """
    if isinstance(source, Server):
        return _read_server(source, reads)
    if source is None:
        raise Unsupported
    try:
        path = source.resolve()
        if not path.is_file():
            raise Unsupported
        connection = connect_readonly(path)
        try:
            connection.execute("BEGIN")  # one snapshot for every read
            return _read_current(Reader(connection, psycopg=False), reads)
        finally:
            connection.close()
    except (sqlite3.Error, OSError, ValueError, TypeError):
        # ValueError, TypeError: a stored value these converters are not sure to read as
        # SQLAlchemy does. Its path reads it again, and fails (or not) as it always did.
        raise Unsupported from None


def _read_current(reader: Reader, reads: Callable[[Reader], T]) -> T:
    rows = reader.execute("SELECT version_num FROM alembic_version").fetchall()
    head = head_revision()
    if head is None or [tuple(row) for row in rows] != [(head,)]:
        raise Unsupported
    return reads(reader)


def _read_server(server: Server, reads: Callable[[Reader], T]) -> T:
    """:func:`read` on PostgreSQL: connected as SQLAlchemy connects (same parameters,
    so the same timeout), in a read-only REPEATABLE READ transaction."""
    try:
        import psycopg
    except ImportError:
        raise Unsupported from None
    started = time.monotonic()
    try:
        connection = psycopg.connect(**server.params)
    except psycopg.OperationalError as exc:
        # Refused at once: the SQLAlchemy path fails as fast, and says it in its words.
        # Timed out: say it as that path would, rather than have it wait as long again.
        line = _unreachable(server, exc)
        if line is None or time.monotonic() - started < SLOW_CONNECT:
            raise Unsupported from None
        raise DatabaseError(line) from None
    except (psycopg.Error, OSError, ValueError, TypeError):
        raise Unsupported from None  # e.g. an unknown query parameter: SQLAlchemy says it
    try:
        connection.read_only = True
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return _read_current(Reader(connection, psycopg=True), reads)
    except (psycopg.Error, OSError, ValueError, TypeError):
        raise Unsupported from None
    finally:
        connection.close()  # rolls back: nothing was written


def _unreachable(server: Server, exc: Exception) -> str | None:
    """``watcher.db.faults.database_error_line`` for a connection that failed: "cannot
    reach ...", or None for the reasons the SQLAlchemy path words otherwise (read-only,
    disk full; for status a missing database or table), which are left to it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if server.password:
        reason = reason.replace(server.password, "***")
    lowered = reason.lower()
    worded_otherwise = ("readonly", "read-only", "disk is full", "no space left")
    if (
        any(word in lowered for word in worded_otherwise)
        or getattr(exc, "sqlstate", None) == "25006"
        or re.search(r"no such (table|column)|does not exist", reason)
    ):
        return None
    return f"cannot reach the database at {server.where}: {reason}"


# --- values as SQLAlchemy's types store them ---------------------------------------------


# SQLite stores these as text or floats; psycopg hands over the Python values, which
# SQLAlchemy's psycopg dialect passes on as they are (``Date``, ``DateTime``, ``Numeric``).


def _date(value: str | date | None) -> date | None:
    """``Date``: ``YYYY-MM-DD`` text on SQLite, a date from psycopg."""
    if value is None or type(value) is date:
        return value
    if not isinstance(value, str):
        raise TypeError(f"a date stored as {type(value).__name__}")
    return date.fromisoformat(value)


def _utc(value: str | datetime | None) -> datetime | None:
    """``UTCDateTime``: naive UTC, stored as ``YYYY-MM-DD HH:MM:SS.ffffff`` text on
    SQLite, a ``timestamp without time zone`` on PostgreSQL."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        raise ValueError(f"an aware timestamp: {value!r}")
    return parsed.replace(tzinfo=UTC)


def _money(value: float | int | Decimal | None) -> Decimal | None:
    """``Numeric(14, 2)``: a float on SQLite, read back as a Decimal of two places
    (as SQLAlchemy: ``"%.2f" % value``); a Decimal from psycopg, kept as it is."""
    if value is None or type(value) is Decimal:
        return value
    return Decimal(f"{value:.2f}")


# --- the reads -------------------------------------------------------------------------------


def users(connection: Reader) -> dict[str, PlainUser]:
    """Every user by name (``status.sim_statuses`` reads them all too)."""
    rows = connection.execute("SELECT name, timezone, remind_at FROM users")
    return {name: PlainUser(name, timezone, remind_at) for name, timezone, remind_at in rows}


def active_sims(connection: Reader) -> list[PlainSim]:
    """Every active SIM, by user then id."""
    rows = connection.execute(
        "SELECT id, user_name, operator, number, expires, remind_before, remind_after,"
        " balance_check_every, last_balance_check, balance, idle_limit,"
        " last_paid_activity, first_seen_at"
        " FROM sims WHERE active = TRUE ORDER BY user_name, id"
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


def last_messages(connection: Reader) -> dict[str, LastMessage]:
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


def last_loaded(connection: Reader) -> LoadedRecord | None:
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


def last_beat(connection: Reader, name: str) -> datetime | None:
    """``heartbeat.last_beat``: when ``name`` last ran, or None if it never did."""
    row = connection.execute("SELECT at FROM heartbeats WHERE name = ?", (name,)).fetchone()
    return None if row is None else _utc(row[0])
