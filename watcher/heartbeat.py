"""Heartbeats: the daemon's jobs record when they last ran, for ``watcher health``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from watcher.db.engine import dialect_insert
from watcher.db.models import Heartbeat

PLANNER = "planner"
REPLICA_PREFIX = "replica:"  # + a daemon's id: one row per running daemon


def beat(session: Session, name: str, now: datetime) -> None:
    """Record that ``name`` ran at ``now``."""
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(
        insert(Heartbeat)
        .values(name=name, at=now)
        .on_conflict_do_update(index_elements=["name"], set_={"at": now})
    )


def last_beat(session: Session, name: str) -> datetime | None:
    """When ``name`` last ran, or None if it never did."""
    row = session.get(Heartbeat, name)
    return None if row is None else row.at
