"""PostgreSQL restarting under a delivering daemon: it logs it, waits, and carries on.

The test starts a PostgreSQL of its own (initdb and pg_ctl, as the postgres user, on a
spare port), puts messages in the outbox, starts `watcher run`, restarts the server in
the middle of the deliveries, and checks that every message arrives, the daemon is
still running, and what it logged about the outage is one line per failure, not a
traceback. Skipped where initdb, pg_ctl or runuser are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.servers import WebhookReceiver, free_port, wait_for
from tests.test_e2e import IN_FLIGHT_MAX, Watcher
from watcher.db import Database, OutboxRow
from watcher.outbox import Kind, NewMessage, enqueue

TOOLS = ("initdb", "pg_ctl", "runuser")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS) or os.geteuid() != 0,
        reason="needs initdb, pg_ctl and runuser (as root) to run a PostgreSQL of its own",
    ),
]

MESSAGES = 400
LATENCY = 0.05  # 400 messages, 8 at a time, 50 ms each: about 2.5 s of delivery


class Server:
    """A throwaway PostgreSQL cluster owned by the postgres user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.log = root / "server.log"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def init(self) -> Server:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    cluster = Server(Path(f"/tmp/simwatcher-pg-{os.getpid()}-{time.monotonic_ns()}")).init()
    cluster.start()
    yield cluster
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "pg_ctl",
            "-D",
            str(cluster.data),
            "-m",
            "immediate",
            "stop",
        ],
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(cluster.root, ignore_errors=True)


def sent(url: str) -> int:
    database = Database(url)
    try:
        with database.session() as session:
            query = select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
            return int(session.scalar(query) or 0)
    except Exception:  # the server is restarting: not yet
        return -1
    finally:
        database.close()


def statuses(url: str) -> dict[str, int]:
    database = Database(url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(OutboxRow.status, OutboxRow.claimed_by.is_(None), func.count()).group_by(
                    OutboxRow.status, OutboxRow.claimed_by.is_(None)
                )
            ).all()
            return {f"{status} unclaimed={free}": count for status, free, count in rows}
    finally:
        database.close()


def test_a_postgresql_restart_mid_delivery_loses_nothing_and_the_daemon_carries_on(
    server: Server, tmp_path: Path
) -> None:
    webhook = WebhookReceiver(delay=LATENCY).start()
    harness = Watcher(tmp_path / "work", server.url)
    (tmp_path / "work").mkdir()
    try:
        harness.write_config({"hook": webhook.url()}, [])
        assert harness.cli("db", "upgrade").code == 0
        titles = [f"message {n:04d}" for n in range(MESSAGES)]
        database = Database(server.url)
        with database.session() as session:
            enqueue(
                session,
                [
                    NewMessage(f"restart-test:{n}", "hook", Kind.ADMIN, title=t, body=t)
                    for n, t in enumerate(titles)
                ],
                datetime.now(UTC),
            )
        database.close()

        daemon = harness.start()
        assert wait_for(lambda: len(webhook.received) >= 40, 60), daemon.log()[-2000:]
        server.stop()  # mid-delivery: connections cut, new ones refused
        time.sleep(3)
        server.start()

        assert wait_for(lambda: sent(server.url) == MESSAGES, 90, interval=0.5), (
            f"{sent(server.url)} of {MESSAGES} recorded sent; {statuses(server.url)}\n"
            + "\n".join(line for line in daemon.log().splitlines() if "sent #" not in line)
        )
        assert daemon.process.poll() is None, daemon.log()[-3000:]  # it carried on
        code, _ = daemon.stop(signal.SIGTERM)
        assert code == 0

        counts = Counter(r.payload.get("title") for r in list(webhook.received))
        duplicates = sum(count - 1 for count in counts.values())
        print(f"\n{MESSAGES} messages across a PostgreSQL restart: {duplicates} duplicates")
        assert set(counts) == set(titles)
        assert duplicates <= IN_FLIGHT_MAX, counts.most_common(10)
        log = daemon.log()
        assert "Traceback" not in log, log[-3000:]
        assert "delivery failed; will retry: " in log or "failed; will retry" in log, log[-3000:]
    finally:
        harness.close()
        webhook.stop()
