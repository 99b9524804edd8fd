"""The Alembic migrations, on SQLite and PostgreSQL: they build the schema the models
declare, run once however often and however many processes open the database, and
upgrade a database in use without losing or repeating a reminder."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select, text

from tests.conftest import AliceConfig, Plan, Sync
from watcher.db import Base, Database, ScheduleRow, open_database
from watcher.db.engine import MIGRATIONS, _head_revision
from watcher.errors import DatabaseError
from watcher.reminders.slots import current_slots

ALMATY = ZoneInfo("Asia/Almaty")


def at_almaty(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ALMATY).astimezone(UTC)


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def built_schema(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each table the database has: its columns (with nullability), primary key, named
    indexes, unique constraints and foreign keys, as read back from the database."""
    inspector = inspect(engine)
    return {
        table: {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table)},
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            # PostgreSQL also lists the index behind each unique constraint: those are
            # compared as constraints below.
            "indexes": {
                ix["name"]: list(ix["column_names"])
                for ix in inspector.get_indexes(table)
                if not ix.get("duplicates_constraint")
            },
            "unique": {tuple(uq["column_names"]) for uq in inspector.get_unique_constraints(table)},
            "foreign keys": {
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            },
        }
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def declared_schema() -> dict[str, dict[str, Any]]:
    """The same, as the models declare it."""
    return {
        table.name: {
            "columns": {c.name: c.nullable for c in table.columns},
            "primary key": [c.name for c in table.primary_key.columns],
            "indexes": {str(ix.name): [c.name for c in ix.columns] for ix in table.indexes},
            "unique": {
                tuple(c.name for c in uq.columns)
                for uq in table.constraints
                if type(uq).__name__ == "UniqueConstraint"
            },
            "foreign keys": {
                (tuple(c.name for c in fk.columns), fk.referred_table.name)
                for fk in table.foreign_key_constraints
            },
        }
        for table in Base.metadata.sorted_tables
    }


def test_migrations_are_idempotent_and_build_the_schema_the_models_declare(
    db_url: str,
) -> None:
    open_database(db_url).close()
    database = open_database(db_url)  # the second start finds the schema at head
    try:
        assert built_schema(database.engine) == declared_schema()
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with database.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head,)]
    finally:
        database.close()


def test_processes_starting_together_migrate_without_tripping_over_each_other(
    db_url: str,
) -> None:
    code = "import sys; from watcher.db.engine import open_database; open_database(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors


def test_a_database_from_a_newer_version_is_a_clean_error(db_url: str) -> None:
    open_database(db_url).close()
    database = Database(db_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(DatabaseError, match="newer version of SIM Watcher"):
            database.migrate()
    finally:
        database.close()


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    # Every command checks the database against it without importing Alembic.
    assert _head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_an_older_database_is_upgraded_although_the_quick_check_is_skipped(db_url: str) -> None:
    open_database(db_url).close()
    database = Database(db_url)
    try:
        alembic = alembic_config()
        with database.engine.begin() as connection:
            alembic.attributes["connection"] = connection
            command.downgrade(alembic, "0004")
        database.engine.dispose()
        assert database._revision() == "0004"
        database.migrate()
        assert database._revision() == _head_revision()
    finally:
        database.close()


def test_upgrading_through_the_schedule_rebuild_loses_and_repeats_nothing(
    database: Database, sync: Sync, plan: Plan, alice_config: AliceConfig
) -> None:
    sync(alice_config())
    first = plan(at_almaty(date(2026, 11, 28)))  # -3d sent (as a catch-up)

    alembic = alembic_config()
    with database.engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0003")  # the old layout, every slot rebuilt
        command.upgrade(alembic, "head")  # and the new one again
    database.engine.dispose()  # no pooled connection remembers the old tables
    database.migrate()  # what the next start does

    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRow)) == 0
    sync(alice_config(), now=at_almaty(date(2026, 11, 28), 12))
    with database.session() as session:
        offsets = {slot.offset for slot in session.scalars(current_slots())}
    assert offsets == {"-1d", "0d", "+1d", "+3d", "+7d"}  # -7d and -3d were planned
    later = plan(at_almaty(date(2026, 11, 30)))
    assert later[: len(first)] == first
    assert {offset for _, offset, _ in later[len(first) :]} == {"-1d"}


def test_the_migrations_build_exactly_the_tables_the_models_describe(database: Database) -> None:
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
