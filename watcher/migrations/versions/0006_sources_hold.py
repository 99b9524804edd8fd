"""sources can be held: a page that balloons is not announced (held_count, accept_held)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

A page that suddenly lists far more promotions than it used to (5, then 10,000) is
held: nobody is alerted and what is known is kept until the page looks normal again,
or the admin accepts it with ``watcher sources accept SOURCE_ID`` (issue 12).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("held_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("accept_held", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("accept_held")
        batch.drop_column("held_count")
