"""Writing messages to the outbox: the only way anything gets sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from watcher.db.models import OutboxRow


@dataclass(frozen=True)
class NewMessage:
    """A message for one delivery target. Without a title it is rendered when first sent."""

    dedup_key: str
    channel: str
    kind: str
    user_name: str | None = None
    sim_id: str | None = None
    target: date | None = None
    offset: str | None = None
    title: str | None = None
    body: str | None = None


def dialect_insert(dialect: str) -> Any:
    """The dialect's own INSERT, which has ON CONFLICT (SQLite and PostgreSQL only)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def enqueue(session: Session, messages: Sequence[NewMessage], now: datetime) -> None:
    """Add messages unless already there (same dedup key and channel)."""
    if not messages:
        return
    insert = dialect_insert(session.get_bind().dialect.name)
    statement: Insert = insert(OutboxRow).on_conflict_do_nothing(
        index_elements=["dedup_key", "channel"]
    )
    values = [
        {
            "dedup_key": message.dedup_key,
            "channel": message.channel,
            "kind": message.kind,
            "user_name": message.user_name,
            "sim_id": message.sim_id,
            "target": message.target,
            "offset": message.offset,
            "title": message.title,
            "body": message.body,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for message in messages
    ]
    session.execute(statement, values)


def failing_count(session: Session) -> int:
    """Messages still waiting after at least one failed attempt."""
    query = (
        select(func.count())
        .select_from(OutboxRow)
        .where(OutboxRow.status == "pending", OutboxRow.attempts > 0)
    )
    return session.scalar(query) or 0
