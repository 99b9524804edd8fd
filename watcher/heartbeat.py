"""Heartbeats: the daemon's jobs record when they last ran, for ``watcher health``; each
daemon (replica) beats a row of its own, by which the others tell it is alive."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from watcher.db.engine import dialect_insert
from watcher.db.models import Heartbeat

PLANNER = "planner"
REPLICA_PREFIX = "replica:"  # + a daemon's id and its config's digest: a row per daemon
REPLICA_LIVE = timedelta(minutes=2)  # a daemon that beat within this is counted live
# Every start and every config reload leaves a row; gone daemons' rows go after this.
REPLICA_KEEP = timedelta(days=7)
# A stopped daemon's row is set this far back: neither counted live nor holding claims.
RETIRED_AGO = timedelta(hours=1)


def replica_name(replica: str, digest: str) -> str:
    """The heartbeat row of daemon ``replica`` running the config of ``digest``."""
    return f"{REPLICA_PREFIX}{replica}:{digest[:8]}"  # at most 8 + 12 + 1 + 8 of 32


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


def newest_replica_beats(session: Session, replicas: Collection[str]) -> dict[str, datetime]:
    """The newest beat of each of ``replicas`` that has a row (any digest); one query."""
    if not replicas:
        return {}
    rows = session.execute(
        select(Heartbeat.name, Heartbeat.at).where(
            or_(
                *(
                    Heartbeat.name.startswith(f"{REPLICA_PREFIX}{replica}:", autoescape=True)
                    for replica in replicas
                )
            )
        )
    ).all()
    newest: dict[str, datetime] = {}
    for name, at in rows:
        replica = name.removeprefix(REPLICA_PREFIX).partition(":")[0]
        if replica in replicas and (replica not in newest or at > newest[replica]):
            newest[replica] = at
    return newest


def prune_replicas(session: Session, now: datetime) -> int:
    """Delete the rows of daemons that have not beaten for REPLICA_KEEP; how many went."""
    gone = session.execute(
        delete(Heartbeat)
        .where(Heartbeat.name.like(f"{REPLICA_PREFIX}%"), Heartbeat.at < now - REPLICA_KEEP)
        .returning(Heartbeat.name)
    )
    return len(gone.all())


def retire_replica(session: Session, replica: str, now: datetime) -> None:
    """Mark a daemon that stops cleanly as gone: its rows are set RETIRED_AGO back, so it
    is no longer counted live and whatever it could not give back is free at once."""
    session.execute(
        update(Heartbeat)
        .where(Heartbeat.name.startswith(f"{REPLICA_PREFIX}{replica}:", autoescape=True))
        .values(at=now - RETIRED_AGO)
    )
