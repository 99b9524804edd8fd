"""``watcher export`` and ``watcher import``: everything recorded, as one JSON document.

For backups and for moving a watcher from SQLite to PostgreSQL. The document holds
every table the daemon keeps (users and their channels, SIMs with their renewals,
balance checks and paid activity, the reminder schedule, the outbox with its pending
rows, the event history, promotion sources, promotions, their changes and alerts,
calendar tokens), row by row, with the schema revision it was written at. Heartbeats
are left out: they describe a running process, not the record.

Import goes into an empty database at the same schema revision, in one transaction:
either all of it is there afterwards, or nothing is. Messages that were being sent
when the export was taken come back as pending (their sender is not coming back), so
they are sent; at most those can arrive twice, as after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from sqlalchemy import Boolean, Date, Integer, Numeric, Table, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from watcher.db.engine import Database
from watcher.db.models import Base, UTCDateTime
from watcher.errors import WatcherError

__all__ = ["FORMAT", "TransferError", "export_state", "import_state"]

FORMAT = "sim-watcher-state"
VERSION = 1
SKIPPED = frozenset({"heartbeats"})


class TransferError(WatcherError):
    """An export file that cannot be imported here, or a database that cannot take it."""

    exit_code = 1


def _tables() -> list[Table]:
    return [table for table in Base.metadata.sorted_tables if table.name not in SKIPPED]


def schema_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


# --- export -------------------------------------------------------------------------------


def export_state(database: Database, out: IO[str]) -> dict[str, int]:
    """Write the whole record to ``out`` as JSON; returns the row count per table.

    Read in one transaction (a consistent snapshot on PostgreSQL; SQLite's WAL gives
    the reader a snapshot too), streamed table by table.
    """
    counts: dict[str, int] = {}
    engine = database.engine
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")  # one snapshot
    with engine.connect() as connection, connection.begin():
        head = {"format": FORMAT, "version": VERSION, "schema": schema_revision(connection)}
        out.write(json.dumps(head)[:-1] + ', "tables": {')
        for index, table in enumerate(_tables()):
            out.write(("," if index else "") + f"\n{json.dumps(table.name)}: [")
            count = 0
            order = list(table.primary_key.columns)
            for row in connection.execute(select(table).order_by(*order)):
                out.write(
                    ("," if count else "")
                    + "\n  "
                    + json.dumps(_dump_row(table, row._mapping), ensure_ascii=False)
                )
                count += 1
            out.write("]")
            counts[table.name] = count
        out.write("\n}}\n")
    return counts


def _dump_row(table: Table, row: Any) -> dict[str, Any]:
    values = {}
    for column in table.columns:
        value = row[column.name]
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        values[column.name] = value
    return values


# --- import -------------------------------------------------------------------------------


def import_state(database: Database, source: IO[str], *, name: str) -> dict[str, int]:
    """Load an export into ``database`` (migrated, empty); returns rows per table.

    One transaction: a bad row anywhere leaves the database as it was.
    """
    try:
        document = json.load(source)
    except json.JSONDecodeError as exc:
        raise TransferError(
            f"{name}: not a SIM Watcher export (line {exc.lineno}: {exc.msg})"
        ) from None
    except UnicodeDecodeError:
        raise TransferError(f"{name}: not a SIM Watcher export (not UTF-8 text)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TransferError(f'{name}: not a SIM Watcher export (no "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise TransferError(
            f"{name}: export format version {document.get('version')!r};"
            f" this SIM Watcher reads {VERSION}"
        )
    tables = document.get("tables")
    if not isinstance(tables, dict):
        raise TransferError(f'{name}: "tables" must be an object of table name to rows')
    known = {table.name: table for table in _tables()}
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise TransferError(
            f"{name}: unknown tables {', '.join(unknown)}: was it written by a newer SIM Watcher?"
        )
    database.migrate()
    counts: dict[str, int] = {}
    with database.engine.begin() as connection:
        here = schema_revision(connection)
        if document.get("schema") != here:
            raise TransferError(
                f"{name}: written at schema revision {document.get('schema')}, this database is "
                f"at {here}: import with the SIM Watcher version that exported it, then upgrade"
            )
        busy = [
            table.name
            for table in known.values()
            if connection.scalar(select(func.count()).select_from(table))
        ]
        if busy:
            raise TransferError(
                f"cannot import into {database.display_url}: it already holds data "
                f"({', '.join(busy)}); import into a new, empty database"
            )
        for table in _tables():
            rows = tables.get(table.name, [])
            if not isinstance(rows, list):
                raise TransferError(f"{name}: tables.{table.name} must be a list of rows")
            loaded = [_load_row(table, row, name, index) for index, row in enumerate(rows)]
            try:
                for chunk in _chunks(loaded, 500):
                    connection.execute(table.insert(), chunk)
            except IntegrityError as exc:
                raise TransferError(
                    f"{name}: tables.{table.name} does not fit the database "
                    f"({type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]})"
                ) from None
            counts[table.name] = len(loaded)
        if connection.dialect.name == "postgresql":
            _advance_sequences(connection)
    return counts


def _load_row(table: Table, row: Any, name: str, index: int) -> dict[str, Any]:
    where = f"{name}: tables.{table.name}[{index}]"
    if not isinstance(row, dict):
        raise TransferError(f"{where}: a row must be an object")
    extra = sorted(set(row) - set(table.columns.keys()))
    if extra:
        raise TransferError(f"{where}: unknown columns {', '.join(extra)}")
    values: dict[str, Any] = {}
    for column in table.columns:
        value = row.get(column.name)
        if value is None:
            if not column.nullable:
                raise TransferError(f"{where}.{column.name}: missing")
            values[column.name] = None
            continue
        try:
            values[column.name] = _load_value(column.type, value)
        except (ValueError, TypeError, InvalidOperation):
            raise TransferError(
                f"{where}.{column.name}: {value!r} is not a valid {column.type}"
            ) from None
    if table.name == "outbox" and values.get("claimed_by") is not None:
        # Its sender is gone with the old database: send it again (at most a duplicate).
        values["claimed_by"] = None
        values["claimed_at"] = None
    return values


def _load_value(kind: Any, value: Any) -> Any:
    if isinstance(kind, UTCDateTime):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed
    if isinstance(kind, Date):
        return date.fromisoformat(value)
    if isinstance(kind, Numeric):
        return Decimal(str(value))
    if isinstance(kind, Boolean):
        if not isinstance(value, bool):
            raise TypeError("not a boolean")
        return value
    if isinstance(kind, Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        return value
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _advance_sequences(connection: Connection) -> None:
    """Rows came with their ids: move each id sequence past them, or the next insert
    would collide."""
    for table in _tables():
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                        f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                    )
                )
