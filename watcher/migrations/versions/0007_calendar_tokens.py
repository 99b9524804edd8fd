"""calendar feed tokens, one per user

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

``/calendar/<user>.ics`` of ``watcher run --http`` answers only with the user's token,
a random secret made once and kept so a subscribed calendar app keeps working.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_tokens",
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_name", name=op.f("pk_calendar_tokens")),
    )


def downgrade() -> None:
    op.drop_table("calendar_tokens")
