"""Opening the database: URL resolution, SQLite pragmas and migrations on start."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from watcher.db.faults import database_error_line, remember_url
from watcher.db.plain import MIGRATIONS, connect_readonly, default_database_url
from watcher.db.plain import head_revision as _head_revision
from watcher.errors import DatabaseError

__all__ = [
    "MIGRATIONS",
    "Database",
    "default_database_url",
    "dialect_insert",
    "open_database",
    "open_database_readonly",
    "resolve_database_url",
]

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5157_4154  # PostgreSQL advisory lock taken while migrating ("SWAT")


def dialect_insert(dialect: str) -> Any:
    """The dialect's own INSERT, which has ON CONFLICT (SQLite and PostgreSQL only)."""
    # Imported here: the PostgreSQL dialect's modules cost a SQLite user 30 ms a command.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def resolve_database_url(
    configured: str | None, config_dir: Path | None, env: Mapping[str, str] | None = None
) -> str:
    """``$WATCHER_DATABASE_URL`` wins, then the config's ``database``, then the default.

    A relative SQLite path is taken relative to the config file, so the daemon and the
    CLI find the same database whatever directory they start in.
    """
    env = os.environ if env is None else env
    url = env.get("WATCHER_DATABASE_URL") or configured or default_database_url(env)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database URL {_safe(url)} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "")
        if not path.is_absolute() and config_dir is not None:
            parsed = parsed.set(database=str(config_dir / path))
        return parsed.render_as_string(hide_password=False)
    return url


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"


class Database:
    """An engine and a session factory; disposes the engine only if it created it."""

    def __init__(self, url_or_engine: str | URL | Engine, *, owns_engine: bool = False) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = owns_engine
        else:
            self.engine = _create_engine(url_or_engine)
            self._owns_engine = True
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision (what ``watcher db upgrade`` does).

        Cheap when already there (one SELECT), so every command can call it. Processes
        starting together (the daemon and a CLI command, two containers) take turns:
        PostgreSQL through an advisory lock, SQLite through its write lock, and a
        loser of the first-creation race on SQLite re-checks instead of failing.
        """
        try:
            for attempt in range(3):
                try:
                    self._upgrade()
                    return
                except (OperationalError, IntegrityError):
                    if attempt == 2 or not self.is_sqlite:
                        raise
                    time.sleep(0.2 * (attempt + 1))  # another process was creating tables
        except OperationalError as exc:
            raise DatabaseError(database_error_line(exc, self.engine.url)) from None
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"cannot migrate database {self.display_url}: {type(exc).__name__}: {exc.orig}"
                if isinstance(exc, DBAPIError)
                else f"cannot migrate database {self.display_url}: {type(exc).__name__}"
            ) from exc

    def _upgrade(self) -> None:
        head = _head_revision()
        if head is not None and self._revision() == head:
            return  # the usual case, answered without importing Alembic (~0.1 s a command)

        from alembic import command
        from alembic.config import Config as AlembicConfig
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from alembic.util.exc import CommandError

        try:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            head = ScriptDirectory.from_config(cfg).get_current_head()
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                    )
                if MigrationContext.configure(connection).get_current_revision() == head:
                    return
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except CommandError as exc:
            # Typically a database migrated by a newer SIM Watcher than this one.
            raise DatabaseError(
                f"cannot migrate database {self.display_url}: {exc}; "
                "is it used by a newer version of SIM Watcher?"
            ) from None

    def _revision(self) -> str | None:
        """The revision the database is at, or None if that cannot be read simply."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        except SQLAlchemyError:
            return None  # no table yet, or busy: Alembic's own path decides
        return str(rows[0][0]) if len(rows) == 1 else None

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


def _create_engine(url: str | URL) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database URL {_safe(str(url))} is not valid") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"cannot use database {_safe(str(url))}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    remember_url(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI write while the daemon reads (and the reverse); a busy timeout
    # makes the rare write-write overlap wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_database(url: str) -> Database:
    """Open and migrate: what the daemon and every CLI command do first."""
    database = Database(url)
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    log.debug("database ready: %s", database.display_url)
    return database


def open_database_readonly(url: str) -> Database:
    """Open for reading only, as ``watcher status`` does: no migration, nothing created.

    SQLite is opened ``mode=ro`` (a missing file is an error, not a new empty database);
    PostgreSQL sessions run in read-only transactions. A schema older than this
    version's shows up as an error when it is read; ``watcher db upgrade`` fixes it.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database URL {_safe(url)} is not valid") from None
    if parsed.get_backend_name() != "sqlite":
        try:
            engine = create_engine(
                parsed, pool_pre_ping=True, execution_options={"postgresql_readonly": True}
            )
        except (ArgumentError, ImportError) as exc:
            raise DatabaseError(f"cannot use database {_safe(url)}: {exc}") from None
        remember_url(engine)
        return Database(engine, owns_engine=True)
    if parsed.database in (None, "", ":memory:"):
        raise DatabaseError("an in-memory SQLite database has nothing to read")
    path = Path(parsed.database or "").resolve()
    if not path.is_file():
        raise DatabaseError(
            f"no database at {path} yet: the daemon creates it when it starts (watcher run)"
        )
    # The real path in the URL (the creator opens it read-only): errors name the file.
    engine = create_engine(f"sqlite:///{path}", creator=lambda: connect_readonly(path))
    remember_url(engine)
    return Database(engine, owns_engine=True)
