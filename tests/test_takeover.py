"""A replica that dies and is not restarted: the others take its claims over once its
heartbeat has stopped for SENDER_DEAD, not after the whole claim lease; a live replica's
claims and a heartbeat-less sender's (``run --once``) keep the lease. Silence only counts
while some replica beat steadily: after a database outage, nobody is judged dead until
one has. SQLite and PostgreSQL, with the clock moved by hand.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import MakeApp, WriteConfig
from tests.servers import WebhookReceiver, wait_for
from watcher import heartbeat, outbox
from watcher.app import App
from watcher.clock import FixedClock
from watcher.daemon import Daemon, release_dead_claims, run_once
from watcher.db import Database, Heartbeat, OutboxRow
from watcher.outbox import CLAIM_LEASE, SENDER_DEAD, Kind, NewMessage

T0 = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
BEAT = timedelta(seconds=10)  # the daemon's heartbeat interval


# --- the outbox's rule, on rows and heartbeat rows written by hand ---------------------


def queue_claimed(database: Database, keys: list[str], owner: str, at: datetime = T0) -> None:
    with database.session() as session:
        outbox.enqueue(session, [NewMessage(key, "a", Kind.ADMIN) for key in keys], at)
        for row in session.scalars(select(OutboxRow).where(OutboxRow.dedup_key.in_(keys))):
            row.claimed_at, row.claimed_by = at, owner


def beat_as(
    database: Database,
    replica: str,
    at: datetime,
    digest: str = "d1gest00",
    since: datetime | None = None,
) -> None:
    """A beat of ``replica`` at ``at``, beating without a gap since ``since`` (else ``at``)."""
    with database.session() as session:
        heartbeat.beat_replica(session, replica, digest, at, since or at)


WITNESS = "0123456789ab"  # a replica beating steadily all along


def witness(database: Database, at: datetime) -> None:
    beat_as(database, WITNESS, at, since=T0 - timedelta(hours=1))


def keys_due(database: Database, now: datetime) -> list[str]:
    with database.session() as session:
        rows = outbox.due_rows(session, now, limit=100, skip_locked=not database.is_sqlite)
        return [row.dedup_key for row in rows]


def test_a_replica_that_stopped_beating_loses_its_claims_after_sender_dead(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queue_claimed(database, ["x1", "x2"], "secret-host:7:aaaaaaaaaaaa")
    beat_as(database, "aaaaaaaaaaaa", T0)  # then it dies: no more beats
    witness(database, T0 + SENDER_DEAD)

    assert keys_due(database, T0 + SENDER_DEAD) == []
    with caplog.at_level(logging.WARNING, logger="watcher.outbox"):
        assert keys_due(database, T0 + SENDER_DEAD + SECOND) == ["x1", "x2"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "aaaaaaaaaaaa" in line and "2 messages" in line and "may arrive twice" in line
    assert "secret-host" not in line
    assert SENDER_DEAD < CLAIM_LEASE


def test_after_a_database_outage_silence_counts_only_once_a_replica_beat_steadily(
    database: Database,
) -> None:
    # Both replicas were cut off for two minutes; b's heartbeat got through first. a may
    # have sent rows it could not mark yet: it gets SENDER_DEAD to come back and say so.
    queue_claimed(database, ["cut-off"], "host:7:aaaaaaaaaaaa")
    beat_as(database, "aaaaaaaaaaaa", T0)
    back = T0 + timedelta(minutes=2)
    for step in range(7):
        beat_as(database, "bbbbbbbbbbbb", back + step * BEAT, since=back)
    assert keys_due(database, back + SENDER_DEAD - SECOND) == []
    assert keys_due(database, back + SENDER_DEAD) == ["cut-off"]


def test_a_beating_replica_keeps_its_claims_until_the_lease_caps_them(database: Database) -> None:
    queue_claimed(database, ["live"], "host:7:bbbbbbbbbbbb")
    # It reloaded once: its old digest's row is stale, its newest row is what counts.
    beat_as(database, "bbbbbbbbbbbb", T0 - timedelta(hours=1), digest="0ld0ld00")
    now = T0
    while now < T0 + timedelta(minutes=4):
        beat_as(database, "bbbbbbbbbbbb", now)
        now += BEAT
    assert keys_due(database, T0 + timedelta(minutes=4)) == []
    beat_as(database, "bbbbbbbbbbbb", T0 + CLAIM_LEASE)
    assert keys_due(database, T0 + CLAIM_LEASE + SECOND) == ["live"]


def test_a_sender_without_a_heartbeat_row_keeps_the_claim_lease(database: Database) -> None:
    # A `watcher run --once` or a CLI send: nothing says whether it still runs.
    queue_claimed(database, ["once"], "host:7:cccccccccccc")
    beat_as(database, "dddddddddddd", T0 - timedelta(hours=1))  # some other, dead replica
    assert keys_due(database, T0 + timedelta(minutes=4)) == []
    assert keys_due(database, T0 + CLAIM_LEASE) == []
    assert keys_due(database, T0 + CLAIM_LEASE + SECOND) == ["once"]


def test_old_replica_rows_are_pruned_and_nothing_else(database: Database) -> None:
    now = T0 + timedelta(days=30)
    with database.session() as session:
        heartbeat.beat(session, heartbeat.PLANNER, T0)
        heartbeat.beat(session, heartbeat.replica_name("eeeeeeeeeeee", "d1gest00"), T0)
        heartbeat.beat_replica(session, "eeeeeeeeeeee", "d1gest00", T0, T0)
        kept = now - heartbeat.REPLICA_KEEP + SECOND
        heartbeat.beat_replica(session, "ffffffffffff", "d1gest00", kept, T0)  # steady for long
    with database.session() as session:
        assert heartbeat.prune_replicas(session, now) == 1
    with database.session() as session:
        names = set(session.scalars(select(Heartbeat.name)))
    kept_rows = {heartbeat.replica_name("ffffffffffff", "d1gest00"), "steady:ffffffffffff"}
    assert names == {heartbeat.PLANNER, *kept_rows}


def test_owners_made_by_this_process_are_alive_and_earlier_runs_with_its_pid_dead(
    database: Database,
) -> None:
    first, second = outbox.claim_owner("111111111111"), outbox.claim_owner("222222222222")
    assert first.rsplit(":", 2) == [socket.gethostname(), str(os.getpid()), "111111111111"]
    queue_claimed(database, ["first"], first)
    queue_claimed(database, ["second"], second)
    queue_claimed(database, ["default"], outbox.claim_owner())
    # A restarted container's daemon is pid 1 again, with another replica id.
    queue_claimed(database, ["earlier"], f"{socket.gethostname()}:{os.getpid()}:333333333333")
    assert outbox.release_claims(database) == 1
    with database.session() as session:
        claimed = set(
            session.scalars(select(OutboxRow.dedup_key).where(OutboxRow.claimed_by.is_not(None)))
        )
    assert claimed == {"first", "second", "default"}


# --- two Apps on one database, as two daemons ---------------------------------------------


CONFIG = """
timezone: Asia/Almaty
channels:
  hook: "{url}"
users:
  - name: alice
    notify: [hook]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2027-06-01
"""


@pytest.fixture
def two_apps(
    make_app: MakeApp, write_config: WriteConfig, webhook: WebhookReceiver
) -> tuple[App, App, FixedClock]:
    clock = FixedClock(T0)
    path: Path = write_config(CONFIG.format(url=webhook.url("hook")))
    a, b = make_app(path, clock=clock), make_app(path, clock=clock)
    a.sync()
    return a, b, clock


def claim_as(app: App, count: int) -> list[int]:
    """Queue ``count`` messages and claim them as ``app``'s deliverer does, sending none
    (as if its channel hung, then the process died)."""
    now = app.clock.now()
    with app.database.session() as session:
        keys = [f"m{n}" for n in range(count)]
        outbox.enqueue(
            session, [NewMessage(k, "hook", Kind.ADMIN, title=k, body=k) for k in keys], now
        )
    with app.database.session() as session:
        rows = outbox.due_rows(session, now, limit=count, skip_locked=not app.database.is_sqlite)
        for row in rows:
            outbox.claim(row, now, row.title or "", row.body or "", owner=app.deliverer.owner)
        return [row.id for row in rows]


def test_a_dead_replicas_batch_is_sent_by_another_a_minute_later(
    two_apps: tuple[App, App, FixedClock], webhook: WebhookReceiver
) -> None:
    a, b, clock = two_apps
    a.beat_replica()
    b.beat_replica()
    assert len(claim_as(a, 5)) == 5
    assert a.deliverer.owner.endswith(f":{a.replica}")
    for _ in range(6):  # a is dead; b beats on
        clock.advance(BEAT)
        b.beat_replica()
        assert b.deliver().sent == 0
    clock.advance(SECOND)
    b.beat_replica()
    assert b.deliver().sent == 5  # before: only after the 5-minute lease
    assert wait_for(lambda: len(webhook.received) == 5)


def test_a_live_replicas_batch_is_left_to_it(
    two_apps: tuple[App, App, FixedClock], webhook: WebhookReceiver
) -> None:
    a, b, clock = two_apps
    a.beat_replica()
    claim_as(a, 3)
    for _ in range(24):  # four minutes; a is sending slowly but alive
        clock.advance(BEAT)
        a.beat_replica()
        b.beat_replica()
        assert b.deliver().sent == 0
    assert webhook.received == []


def test_a_run_once_has_no_heartbeat_row_so_its_claims_keep_the_lease(
    two_apps: tuple[App, App, FixedClock],
) -> None:
    a, b, clock = two_apps
    assert run_once(a) == 0  # nothing due; it plans and delivers, but never beats
    with a.database.session() as session:
        assert heartbeat.live_replicas(session, clock.now(), heartbeat.REPLICA_LIVE) == {}
    claim_as(a, 2)
    clock.advance(timedelta(minutes=4))
    b.beat_replica()
    assert b.deliver().sent == 0
    clock.advance(CLAIM_LEASE - timedelta(minutes=4) + SECOND)
    assert b.deliver().sent == 2


def test_two_apps_in_one_process_never_free_each_others_claims_at_start(
    two_apps: tuple[App, App, FixedClock],
) -> None:
    a, b, _clock = two_apps
    ids = claim_as(a, 2)
    assert release_dead_claims(b) == 0
    with b.database.session() as session:
        owners = session.scalars(select(OutboxRow.claimed_by).where(OutboxRow.id.in_(ids)))
        assert set(owners) == {a.deliverer.owner}


def test_beating_prunes_replica_rows_older_than_a_week(
    two_apps: tuple[App, App, FixedClock],
) -> None:
    a, _b, clock = two_apps
    old = heartbeat.replica_name("999999999999", "d1gest00")
    with a.database.session() as session:
        heartbeat.beat(session, old, clock.now() - heartbeat.REPLICA_KEEP - SECOND)
    a.beat_replica()
    with a.database.session() as session:
        assert heartbeat.last_beat(session, old) is None
        assert set(heartbeat.live_replicas(session, clock.now(), heartbeat.REPLICA_LIVE)) == {
            a.replica
        }


def test_a_replica_back_from_an_outage_keeps_its_claims_from_one_back_first(
    two_apps: tuple[App, App, FixedClock], webhook: WebhookReceiver
) -> None:
    a, b, clock = two_apps
    a.beat_replica()
    b.beat_replica()
    claim_as(a, 3)  # say a sent them, and the database went before it could mark them
    clock.advance(timedelta(minutes=2))  # nobody beats while it is away
    b.beat_replica()  # b is back first
    assert b.deliver().sent == 0
    for _ in range(12):  # a is back too within a beat; both beat on
        clock.advance(BEAT)
        a.beat_replica()
        b.beat_replica()
        assert b.deliver().sent == 0
    assert webhook.received == []


# --- the daemon's heartbeat job -------------------------------------------------------------


def beat_of(app: App, name: str) -> datetime | None:
    with app.database.session() as session:  # a new session each time: no cached row
        return heartbeat.last_beat(session, name)


def test_the_daemon_beats_while_planning_hangs_and_retires_its_row_at_stop(
    two_apps: tuple[App, App, FixedClock],
) -> None:
    a, b, clock = two_apps
    planning, release = threading.Event(), threading.Event()

    def plan() -> int:
        planning.set()
        release.wait(10)
        return 0

    a.plan = plan  # type: ignore[method-assign]
    daemon = Daemon(a, grace=8, beat_every=0.05)
    daemon.start()
    try:
        assert planning.wait(10)
        name = heartbeat.replica_name(a.replica, a.loaded.digest)
        clock.advance(timedelta(minutes=1))  # a long planning pass
        assert wait_for(lambda: beat_of(b, name) == clock.now())
    finally:
        release.set()
        assert daemon.stop()
    with b.database.session() as session:
        live = heartbeat.live_replicas(session, clock.now(), heartbeat.REPLICA_LIVE)
        assert a.replica not in live
        [beaten] = heartbeat.newest_replica_beats(session, [a.replica]).values()
        assert beaten < clock.now() - SENDER_DEAD  # what it left claimed is free at once
    assert beat_of(b, f"{heartbeat.STEADY_PREFIX}{a.replica}") is None
