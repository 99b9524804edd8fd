"""schedule slots carry their SIM's schedule key; no index by SIM

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

The schedule is derived data: every slot can be recomputed from the SIM's dates and
the outbox (which says what was already planned). So the table is rebuilt empty and
every SIM's ``schedule_key`` cleared; the first sync after the upgrade (every command
and the daemon sync on start, before they plan) writes the slots again, leaving out
what the outbox shows as planned, exactly as after any reschedule.
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
        sa.ForeignKeyConstraint(
            ["sim_id"], ["sims.id"], name=op.f("fk_schedule_sim_id_sims"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "due_at", "sim_id", "kind", "target", "offset", name=op.f("pk_schedule")
        ),
    ]
    if keyed:
        columns.append(sa.Column("key", sa.String(length=64), nullable=False))
    else:
        constraints.append(
            sa.UniqueConstraint(
                "sim_id",
                "kind",
                "target",
                "offset",
                name=op.f("uq_schedule_sim_id_kind_target_offset"),
            )
        )
    op.create_table("schedule", *columns, *constraints, sqlite_with_rowid=False)


def upgrade() -> None:
    op.drop_table("schedule")
    _schedule(keyed=True)
    op.execute("UPDATE sims SET schedule_key = ''")


def downgrade() -> None:
    op.drop_table("schedule")
    _schedule(keyed=False)
    op.execute("UPDATE sims SET schedule_key = ''")
