"""schedule slots carry their SIM's schedule key; no index or foreign key by SIM;
sims WITHOUT ROWID

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

The schedule is derived data: every slot can be recomputed from the SIM's dates and
the outbox (which says what was already planned). So the table is rebuilt empty and
every SIM's ``schedule_key`` cleared; the first sync after the upgrade (every command
and the daemon sync on start, before they plan) writes the slots again, leaving out
what the outbox shows as planned, exactly as after any reschedule.

On SQLite, ``sims`` is rebuilt as a WITHOUT ROWID table: planning looks up every due
slot's SIM by id, and a table clustered by its text key answers in one B-tree descent
instead of two (the key's index, then the row). It is rebuilt while no table refers to
it (the schedule is dropped first), so the foreign keys, which stay on, are not in the
way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _schedule(*, keyed: bool) -> None:
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("sim_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Date(), nullable=False),
        sa.Column("offset", sa.String(length=8), nullable=False),
    ]
    constraints: list[sa.schema.SchemaItem] = [
        sa.PrimaryKeyConstraint(
            "due_at", "sim_id", "kind", "target", "offset", name=op.f("pk_schedule")
        ),
    ]
    if keyed:
        # No foreign key to sims either (see ScheduleRow): it made each pass's DELETE
        # four times slower on SQLite and guarded nothing the planner's join does not.
        columns.append(sa.Column("key", sa.String(length=64), nullable=False))
    else:
        constraints += [
            sa.ForeignKeyConstraint(
                ["sim_id"], ["sims.id"], name=op.f("fk_schedule_sim_id_sims"), ondelete="CASCADE"
            ),
            sa.UniqueConstraint(
                "sim_id",
                "kind",
                "target",
                "offset",
                name=op.f("uq_schedule_sim_id_kind_target_offset"),
            ),
        ]
    op.create_table("schedule", *columns, *constraints, sqlite_with_rowid=False)


_SIM_COLUMNS = (
    ("id", sa.String(length=64), False),
    ("user_name", sa.String(length=64), False),
    ("operator", sa.String(length=64), False),
    ("number", sa.String(length=20), False),
    ("plan", sa.String(length=200), True),
    ("active", sa.Boolean(), False),
    ("expires", sa.Date(), True),
    ("cfg_expires", sa.Date(), True),
    ("renew_every", sa.String(length=8), True),
    ("remind_before", sa.String(length=200), False),
    ("remind_after", sa.String(length=200), False),
    ("balance_check_every", sa.String(length=8), True),
    ("last_balance_check", sa.Date(), True),
    ("cfg_last_balance_check", sa.Date(), True),
    ("balance", sa.Numeric(precision=14, scale=2), True),
    ("low_balance", sa.Numeric(precision=14, scale=2), True),
    ("idle_limit", sa.String(length=8), True),
    ("last_paid_activity", sa.Date(), True),
    ("cfg_last_paid_activity", sa.Date(), True),
    ("first_seen_at", sa.DateTime(), False),
    ("schedule_key", sa.String(length=64), False),
)


def _rebuild_sims(*, with_rowid: bool) -> None:
    """Copy ``sims`` into a new table with or without a rowid (SQLite only)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "_sims_new",
        *(sa.Column(name, kind, nullable=nullable) for name, kind, nullable in _SIM_COLUMNS),
        sa.ForeignKeyConstraint(
            ["user_name"], ["users.name"], name=op.f("fk_sims_user_name_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sims")),
        sqlite_with_rowid=with_rowid,
    )
    names = ", ".join(f'"{name}"' for name, _, _ in _SIM_COLUMNS)
    op.execute(f"INSERT INTO _sims_new ({names}) SELECT {names} FROM sims")
    op.drop_index("ix_sims_user_name", table_name="sims")
    op.drop_table("sims")
    op.rename_table("_sims_new", "sims")
    op.create_index("ix_sims_user_name", "sims", ["user_name"], unique=False)


def upgrade() -> None:
    op.drop_table("schedule")
    _rebuild_sims(with_rowid=False)
    _schedule(keyed=True)
    op.execute("UPDATE sims SET schedule_key = ''")


def downgrade() -> None:
    op.drop_table("schedule")
    _rebuild_sims(with_rowid=True)
    _schedule(keyed=False)
    op.execute("UPDATE sims SET schedule_key = ''")
