"""Three `watcher run` processes on one PostgreSQL, one of them killed mid-run.

5,000 messages are due to a loopback webhook that answers each in 20 ms. Three
daemons share them out; one is SIGKILLed in the middle of its deliveries and started
again at once, as `restart: unless-stopped` would. Every message arrives; the only
duplicates are what the killed daemon had in flight (at most its delivery
concurrency). The counts are printed (pytest -s).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import POSTGRES_URL, reset_postgres
from tests.servers import WebhookReceiver, wait_for
from tests.test_e2e import IN_FLIGHT_MAX, Watcher
from watcher.db import Database, OutboxRow
from watcher.outbox import CLAIM_LEASE, SENDER_DEAD, Kind, NewMessage, enqueue

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not POSTGRES_URL, reason="set WATCHER_TEST_POSTGRES_URL: replicas need it"),
]

MESSAGES = 5_000
LATENCY = 0.020
REPLICAS = 3


def sent_count(database: Database) -> int:
    with database.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
            )
            or 0
        )


@pytest.fixture
def harness(tmp_path: Path) -> Any:
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    watcher = Watcher(tmp_path, POSTGRES_URL)
    yield watcher
    watcher.close()


def queue_messages(count: int) -> tuple[Database, list[str]]:
    database = Database(str(POSTGRES_URL))
    titles = [f"message {n:05d}" for n in range(count)]
    with database.session() as session:
        enqueue(
            session,
            [
                NewMessage(f"replica-test:{n}", "hook", Kind.ADMIN, title=title, body=title)
                for n, title in enumerate(titles)
            ],
            datetime.now(UTC),
        )
    return database, titles


def test_three_replicas_one_killed_and_restarted_deliver_every_message(
    harness: Watcher,
) -> None:
    webhook = WebhookReceiver(delay=LATENCY).start()
    try:
        harness.write_config({"hook": webhook.url()}, [])
        assert harness.cli("db", "upgrade").code == 0
        database, titles = queue_messages(MESSAGES)

        daemons = [harness.start() for _ in range(REPLICAS)]
        assert wait_for(lambda: len(webhook.received) >= MESSAGES // 3, 120)
        victim = daemons[1]
        assert victim.process.poll() is None, victim.log()
        victim.kill()
        at_kill = len(webhook.received)
        daemons[1] = harness.start()  # restarted at once

        assert wait_for(lambda: sent_count(database) == MESSAGES, 180, interval=0.5), (
            f"{sent_count(database)} of {MESSAGES} recorded sent"
        )
        for daemon in daemons:
            code, _ = daemon.stop(signal.SIGTERM)
            assert code == 0, daemon.log()[-3000:]
        database.close()

        counts = Counter(r.payload.get("title") for r in list(webhook.received))
        duplicates = sum(count - 1 for count in counts.values())
        print(
            f"\n{MESSAGES} messages, {REPLICAS} replicas, one SIGKILLed after {at_kill} "
            f"arrived and restarted: {len(counts)} distinct arrived, {duplicates} duplicates "
            f"(bound: {IN_FLIGHT_MAX}, the killed replica's delivery concurrency)"
        )
        assert set(counts) == set(titles)  # none lost
        assert duplicates <= IN_FLIGHT_MAX, counts.most_common(10)
        logs = "".join(daemon.log() for daemon in harness.daemons)
        assert "UniqueViolation" not in logs and "Traceback" not in logs, logs[-3000:]
    finally:
        webhook.stop()


def test_a_replica_killed_and_not_restarted_has_its_batch_sent_by_the_other_within_a_minute(
    harness: Watcher,
) -> None:
    # Its claims used to wait out the 5-minute lease; now its heartbeat stops and the
    # survivor takes them over once it is SENDER_DEAD old.
    messages = 2_000
    webhook = WebhookReceiver(delay=LATENCY).start()
    try:
        harness.write_config({"hook": webhook.url()}, [])
        assert harness.cli("db", "upgrade").code == 0
        database, titles = queue_messages(messages)

        survivor, victim = harness.start(), harness.start()
        assert wait_for(lambda: len(webhook.received) >= messages // 4, 120)
        victim.kill()  # and left dead
        killed = time.monotonic()
        # Well before the lease could free anything the victim claimed before it died.
        deadline = (CLAIM_LEASE - timedelta(seconds=30)).total_seconds()
        assert wait_for(lambda: sent_count(database) == messages, deadline, interval=0.5), (
            f"{sent_count(database)} of {messages} recorded sent"
        )
        took = time.monotonic() - killed
        code, _ = survivor.stop(signal.SIGTERM)
        assert code == 0, survivor.log()[-3000:]
        database.close()

        counts = Counter(r.payload.get("title") for r in list(webhook.received))
        duplicates = sum(count - 1 for count in counts.values())
        takeover = [line for line in survivor.log().splitlines() if "taking over" in line]
        print(
            f"\n{messages} messages, 2 replicas, one SIGKILLed and not restarted: all sent "
            f"{took:.0f} s after the kill (SENDER_DEAD {SENDER_DEAD.total_seconds():.0f} s, "
            f"lease {CLAIM_LEASE.total_seconds():.0f} s), {duplicates} duplicates; {takeover}"
        )
        assert set(counts) == set(titles)
        assert duplicates <= IN_FLIGHT_MAX, counts.most_common(10)
        assert takeover, survivor.log()[-3000:]
    finally:
        webhook.stop()
