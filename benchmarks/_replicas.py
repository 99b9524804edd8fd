"""Replicas for the delivery benchmark: sender processes sharing one PostgreSQL outbox.

**Which database.** ``$WATCHER_BENCH_POSTGRES_URL``, else ``$WATCHER_TEST_POSTGRES_URL``
(the test suite's throwaway database); neither set, the replicas are skipped.

**What it may wipe: only a schema of its own.** The benchmark makes the schema
``watcher_bench`` with a comment that marks it as the benchmark's, and the URL it hands
to ``open_database`` and to the senders puts that schema alone on the search path
(``options=-csearch_path=watcher_bench``), so the migrations, the outbox and every
statement of the Deliverer land there. Each run drops and recreates it, and drops it
at the end (kept with ``--keep-work``). A ``watcher_bench`` schema without the mark is
never dropped: the run refuses instead. Nothing else in the database is touched, so a
URL that points at a database with real data in it costs that data nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks._common import NOW
from benchmarks._sender import URL_VARIABLE

URL_VARIABLES = ("WATCHER_BENCH_POSTGRES_URL", "WATCHER_TEST_POSTGRES_URL")
SCHEMA = "watcher_bench"
MARK = "Scratch schema of the SIM Watcher benchmarks (python -m benchmarks): dropped by each run"


class Refused(RuntimeError):
    """The database holds something the benchmark did not make and must not drop."""


def postgres_url(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The database to run replicas on and the variable that named it, if any."""
    env = os.environ if env is None else env
    for name in URL_VARIABLES:
        if env.get(name):
            return env[name], name
    return None


def scoped_url(url: str) -> str:
    """``url`` with the benchmark's schema alone on the search path (other options kept)."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    options = parsed.query.get("options")
    if isinstance(options, tuple):
        options = " ".join(options)
    scope = f"-csearch_path={SCHEMA}"
    parsed = parsed.update_query_dict({"options": f"{options} {scope}" if options else scope})
    return parsed.render_as_string(hide_password=False)


class Scratch:
    """The benchmark's schema on one PostgreSQL database: made, filled, counted, dropped."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, make_url

        from watcher.db.engine import open_database

        self.display = make_url(url).render_as_string(hide_password=True)
        self.url = scoped_url(url)
        self._admin = create_engine(url)
        try:
            self._recreate()
            self.database = open_database(self.url)  # migrates into the new schema
        except BaseException:
            self._admin.dispose()
            raise

    def _recreate(self) -> None:
        from sqlalchemy import text

        with self._admin.begin() as connection:
            self._check_ours(connection)
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            connection.execute(text(f"COMMENT ON SCHEMA {SCHEMA} IS '{MARK}'"))

    def _check_ours(self, connection: Any) -> None:
        from sqlalchemy import text

        found = connection.execute(
            text(
                "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = :s"
            ),
            {"s": SCHEMA},
        ).first()
        if found is not None and found[0] != MARK:
            raise Refused(
                f"schema {SCHEMA} in {self.display} was not made by the benchmarks "
                "(no mark on it); not dropping it"
            )

    def fill(self, titles: Sequence[str]) -> None:
        """An outbox holding exactly these messages for ``hook``, all due at NOW."""
        from sqlalchemy import text

        from watcher.outbox import Kind, NewMessage, enqueue

        with self.database.session() as session:
            session.execute(text("TRUNCATE outbox RESTART IDENTITY"))
            enqueue(
                session,
                [
                    NewMessage(f"bench:{i}", "hook", Kind.ADMIN, title=title, body=f"message {i}")
                    for i, title in enumerate(titles)
                ],
                NOW,
            )
        with self.database.engine.connect() as connection:
            # Fresh statistics, so autovacuum's ANALYZE does not land in the middle of a run.
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("ANALYZE outbox")
            )

    def marked_sent(self) -> int:
        from sqlalchemy import func, select

        from watcher.db.models import OutboxRow

        with self.database.session() as session:
            return (
                session.scalar(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
                )
                or 0
            )

    def close(self, *, drop: bool) -> None:
        from sqlalchemy import text

        self.database.close()
        try:
            if drop:
                with self._admin.begin() as connection:
                    self._check_ours(connection)
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        finally:
            self._admin.dispose()


def run_senders(count: int, url: str, channel: str) -> tuple[float, list[dict[str, Any]]]:
    """Start ``count`` sender processes, let them go together; the go's monotonic time
    and each sender's JSON report.

    Each one imports, connects and warms up first and says ``ready``; the go is given
    only when all have, so none of that start-up is timed.
    """
    env = {**os.environ, URL_VARIABLE: url}
    senders: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            senders.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchmarks._sender", channel],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for sender in senders:
            _expect_ready(sender)
        go = time.monotonic()
        for sender in senders:
            assert sender.stdin is not None
            sender.stdin.write("go\n")
            sender.stdin.flush()
        reports = [_report(sender) for sender in senders]
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
            sender.wait()
            for pipe in (sender.stdin, sender.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):  # a "go" unsent to a dead sender
                        pipe.close()
    return go, reports


def _expect_ready(sender: subprocess.Popen[str]) -> None:
    assert sender.stdout is not None
    line = sender.stdout.readline()  # a sender that dies closes its stdout: "" here
    if line.strip() != "ready":
        raise RuntimeError(
            f"a sender process did not start (said {line.strip()!r}, "
            f"exit status {sender.poll()}); its error is above"
        )


def _report(sender: subprocess.Popen[str]) -> dict[str, Any]:
    assert sender.stdout is not None
    line = sender.stdout.readline()
    try:
        report: dict[str, Any] = json.loads(line)
    except ValueError:
        raise RuntimeError(
            f"a sender process failed (said {line.strip()!r}, exit status {sender.wait()}); "
            "its error is above"
        ) from None
    sender.wait()
    return report
