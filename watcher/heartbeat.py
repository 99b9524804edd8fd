"""Heartbeats: the daemon's jobs record when they last ran, for ``watcher health``."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from watcher.db.engine import dialect_insert
from watcher.db.models import Heartbeat
from watcher.db.plain import PLANNER as PLANNER  # there for `watcher health`'s plain read

REPLICA_PREFIX = "replica:"  # + a daemon's id and its config's digest: a row per daemon
REPLICA_LIVE = timedelta(minutes=2)  # a daemon that beat within this is counted live


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


def live_replicas(session: Session, now: datetime, within: timedelta) -> dict[str, str]:
    """Each daemon that beat within ``within`` of ``now``: its id -> the digest of the
    config it runs (the 8 hex digits its row carries), from its newest row."""
    rows = session.execute(
        select(Heartbeat.name, Heartbeat.at)
        .where(Heartbeat.name.like(f"{REPLICA_PREFIX}%"), Heartbeat.at >= now - within)
        .order_by(Heartbeat.at)
    ).all()
    found: dict[str, str] = {}
    for name, _at in rows:  # oldest first: a reloaded daemon's newest digest wins
        replica, _, digest = name.removeprefix(REPLICA_PREFIX).partition(":")
        found[replica] = digest
    return found
