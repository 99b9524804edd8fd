"""Heartbeats: the daemon's jobs record when they last ran, for ``watcher health``; each
daemon (replica) beats a row of its own, by which the others tell it is alive."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from watcher.db.engine import dialect_insert
from watcher.db.models import Heartbeat
from watcher.db.plain import PLANNER as PLANNER  # there for `watcher health`'s plain read

REPLICA_PREFIX = "replica:"  # + a daemon's id and its config's digest: a row per daemon
REPLICA_LIVE = timedelta(minutes=2)  # a daemon that beat within this is counted live
# Every start and every config reload leaves a row; gone daemons' rows go after this.
REPLICA_KEEP = timedelta(days=7)
# A stopped daemon's row is set this far back: neither counted live nor holding claims.
RETIRED_AGO = timedelta(hours=1)
# + a daemon's id: since when it has beaten with no gap longer than STEADY_GAP. A gap
# means the database was away from it (an outage): its streak starts again.
STEADY_PREFIX = "steady:"
STEADY_GAP = timedelta(seconds=30)


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


def beat_replica(
    session: Session, replica: str, digest: str, now: datetime, steady_since: datetime
) -> None:
    """Record that daemon ``replica`` (running ``digest``) is alive at ``now`` and has
    beaten steadily since ``steady_since``."""
    beat(session, replica_name(replica, digest), now)
    beat(session, f"{STEADY_PREFIX}{replica}", steady_since)


def steady_replica(session: Session, now: datetime, for_at_least: timedelta) -> bool:
    """Whether some daemon has beaten with no gap for ``for_at_least`` up to ``now``.

    Its beats prove that the database answered all that while, so a daemon silent that
    long was not merely cut off by an outage all of them shared.
    """
    since = session.scalars(
        select(Heartbeat.name).where(
            Heartbeat.name.like(f"{STEADY_PREFIX}%"), Heartbeat.at <= now - for_at_least
        )
    ).all()
    replicas = {name.removeprefix(STEADY_PREFIX) for name in since}
    beats = newest_replica_beats(session, replicas)
    return any(at >= now - STEADY_GAP for at in beats.values())


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
    """Delete the rows of daemons that have not beaten for REPLICA_KEEP; how many went.

    A steady row goes with the last of its daemon's rows (its time is when the streak
    began, which may be long ago for a daemon that is still beating).
    """
    gone = session.execute(
        delete(Heartbeat)
        .where(Heartbeat.name.like(f"{REPLICA_PREFIX}%"), Heartbeat.at < now - REPLICA_KEEP)
        .returning(Heartbeat.name)
    ).all()
    if gone:
        names = session.scalars(
            select(Heartbeat.name).where(
                or_(
                    Heartbeat.name.like(f"{REPLICA_PREFIX}%"),
                    Heartbeat.name.like(f"{STEADY_PREFIX}%"),
                )
            )
        ).all()
        beating = {
            name.removeprefix(REPLICA_PREFIX).partition(":")[0]
            for name in names
            if name.startswith(REPLICA_PREFIX)
        }
        orphans = [
            name
            for name in names
            if name.startswith(STEADY_PREFIX) and name.removeprefix(STEADY_PREFIX) not in beating
        ]
        if orphans:
            session.execute(delete(Heartbeat).where(Heartbeat.name.in_(orphans)))
    return len(gone)


def retire_replica(session: Session, replica: str, now: datetime) -> None:
    """Mark a daemon that stops cleanly as gone: its rows are set RETIRED_AGO back, so it
    is no longer counted live and whatever it could not give back is free at once."""
    session.execute(delete(Heartbeat).where(Heartbeat.name == f"{STEADY_PREFIX}{replica}"))
    session.execute(
        update(Heartbeat)
        .where(Heartbeat.name.startswith(f"{REPLICA_PREFIX}{replica}:", autoescape=True))
        .values(at=now - RETIRED_AGO)
    )
