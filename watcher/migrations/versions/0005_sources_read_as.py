"""sources remember how their page was last read (read_as)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A ``kind: auto`` source may be read by a feed, JSON-LD, the app state or the page's
blocks, and a source whose selectors stopped matching is read by auto for a while. When
the way changes, the next good scrape is a silent new baseline: the same promotions may
come out under other keys, and must not be announced as new.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("read_as", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("read_as")
