"""promotion alerts: which user is to hear of which change; forgotten promotions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("forgotten", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "promotion_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("message_key", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["promotion_changes.id"],
            name=op.f("fk_promotion_alerts_change_id_promotion_changes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_alerts")),
        sa.UniqueConstraint(
            "user_name", "change_id", name=op.f("uq_promotion_alerts_user_name_change_id")
        ),
    )
    with op.batch_alter_table("promotion_alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_promotion_alerts_pending",
            ["user_name"],
            unique=False,
            sqlite_where=sa.text("message_key IS NULL"),
            postgresql_where=sa.text("message_key IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("promotion_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_promotion_alerts_pending")
    op.drop_table("promotion_alerts")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_column("forgotten")
