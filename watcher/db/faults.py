"""Database errors said in one line: what could not be done, where, and the driver's reason.

The engines :func:`watcher.db.engine.Database` creates tag each error they raise with
their URL (``handle_error``), so the CLI, which only sees the exception, can still
name the database: a SQLite file by its path, a server by host and port. Neither the
SQL nor its parameters nor a password ever appear.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)

__all__ = [
    "database_error_line",
    "describe_database_error",
    "is_database_fault",
    "remember_url",
]

_URL_ATTRIBUTE = "watcher_database_url"
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
# SQLSTATE 25006 (PostgreSQL read_only_sql_transaction: a standby, or read-only mode).
_READ_ONLY_SQLSTATE = "25006"
_NO_PRIVILEGE_SQLSTATE = "42501"  # the database user may not write (or read) a table
# Errors that mean our SQL or our data is wrong: a bug, which keeps its traceback.
_BUGS = (IntegrityError, ProgrammingError, DataError, NotSupportedError)


def remember_url(engine: Engine) -> None:
    """Tag every error ``engine`` raises with its URL, for :func:`database_error_line`."""
    event.listen(engine, "handle_error", _tag)


def _tag(context: ExceptionContext) -> None:
    url = context.engine.url if context.engine is not None else None
    if url is not None and context.sqlalchemy_exception is not None:
        setattr(context.sqlalchemy_exception, _URL_ATTRIBUTE, url)


def is_database_fault(exc: DBAPIError) -> bool:
    """True if the database is at fault (unreachable, read-only, full, refusing us),
    False if the error is a bug of ours (a broken constraint, bad SQL)."""
    return not isinstance(exc, _BUGS) or _sqlstate(exc) == _NO_PRIVILEGE_SQLSTATE


def describe_database_error(exc: BaseException) -> str:
    """The driver's reason on one line: no SQL, no parameters, no password."""
    orig: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    url: URL | None = getattr(exc, _URL_ATTRIBUTE, None)
    if url is not None and url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def database_error_line(exc: BaseException, url: URL | None = None) -> str:
    """One line for the user: "cannot write the database at PATH: read-only" and the like.

    ``url`` defaults to the one the engine tagged the error with (see :func:`remember_url`).
    """
    url = url or getattr(exc, _URL_ATTRIBUTE, None)
    reason = describe_database_error(exc)
    lowered = reason.lower()
    where = _where(url)
    if "readonly" in lowered or "read-only" in lowered or _sqlstate(exc) == _READ_ONLY_SQLSTATE:
        return f"cannot write the database at {where}: read-only"
    if "disk is full" in lowered or "no space left" in lowered:
        return f"cannot write the database at {where}: the disk is full"
    connecting = isinstance(exc, DBAPIError) and (
        exc.statement is None or exc.connection_invalidated
    )
    if connecting:
        verb = "open" if url is not None and url.get_backend_name() == "sqlite" else "reach"
        return f"cannot {verb} the database at {where}: {reason}"
    return f"database error at {where}: {reason}"


def _where(url: URL | None) -> str:
    if url is None:
        return "(unknown)"
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.database or ":memory:"
    port = url.port or _DEFAULT_PORTS.get(backend)
    host = url.host or "localhost"
    return f"{host}:{port}" if port else host


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None
