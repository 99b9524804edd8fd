"""The delivery benchmark runs end to end at tiny sizes (its figures are not checked here).

`make bench` is where the numbers are; these tests only make sure the benchmark still
works after a change to the Deliverer or to the benchmark: the receiver and sender
processes start, every contender delivers every message exactly once, the replicas
part runs on PostgreSQL (or says why not), and it drops only the schema it made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from benchmarks import delivery
from benchmarks._common import Options, Result
from benchmarks._replicas import SCHEMA, Refused, Scratch, scoped_url
from tests.conftest import NO_POSTGRES, POSTGRES_URL

# 240 rows for the replicas: two claims (of at most 200), so at least two processes can
# have some to send (whether they do is up to the scheduler, and not checked).
TINY = delivery.Setting(0.001, 10.0, deliverer=(30, 30), sequential=(5, 5), replicas=(240, 240))


def run_tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres: str | None) -> Result:
    monkeypatch.setattr(delivery, "SETTINGS", (TINY,))
    monkeypatch.setattr(delivery, "REPLICA_COUNTS", (1, 3))  # one, and several: 4 processes
    monkeypatch.delenv("WATCHER_BENCH_POSTGRES_URL", raising=False)
    if postgres is None:
        monkeypatch.delenv("WATCHER_TEST_POSTGRES_URL", raising=False)
    else:
        monkeypatch.setenv("WATCHER_TEST_POSTGRES_URL", postgres)
    return delivery.run(Options(quick=True, work_dir=tmp_path, log=lambda _: None))


def lines(result: Result, start: str) -> dict[str, tuple[str, bool | None]]:
    return {
        line.label.strip(): (line.value, line.ok)
        for line in result.lines
        if line.label.strip().startswith(start)
    }


def test_without_postgres_the_replicas_are_skipped_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = run_tiny(monkeypatch, tmp_path, None)
    value, ok = lines(result, "replicas on PostgreSQL")["replicas on PostgreSQL"]
    assert value.startswith("skipped: ") and "WATCHER_BENCH_POSTGRES_URL" in value
    assert ok is None  # not a MISS
    assert lines(result, "exactly once") == {
        "exactly once, 1 ms, Deliverer": ("30/30; missing 0, doubled 0, stray 0", True),
        "exactly once, 1 ms, sequential": ("5/5; missing 0, doubled 0, stray 0", True),
    }
    assert [line.target for line in result.lines if line.label.strip().startswith("ratio")] == [
        ">= 10x"
    ]


@pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)
def test_one_and_three_replicas_deliver_every_message_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert POSTGRES_URL is not None
    result = run_tiny(monkeypatch, tmp_path, POSTGRES_URL)
    assert lines(result, "replicas on PostgreSQL")["replicas on PostgreSQL"] == (
        f"schema {SCHEMA}, from WATCHER_TEST_POSTGRES_URL",
        None,
    )
    once = lines(result, "exactly once, 1 ms, ")
    for replicas in ("1 replica", "3 replicas"):
        assert once[f"exactly once, 1 ms, {replicas}"] == (
            "240/240; missing 0, doubled 0, stray 0",
            True,
        )
    shares = [
        line.value.split(" in ")[0]
        for line in result.lines
        if line.label.strip() == "sent (by each), time"
    ]
    assert [share.split(" (")[0] for share in shares] == ["240"] * 2
    assert [share.count("+") for share in shares] == [0, 2]  # one figure per process
    assert not _schema_exists(POSTGRES_URL)  # dropped afterwards


@pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)
def test_a_schema_it_did_not_make_is_never_dropped() -> None:
    assert POSTGRES_URL is not None
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            connection.execute(text(f"CREATE TABLE {SCHEMA}.precious (id integer)"))
        with pytest.raises(Refused, match=f"schema {SCHEMA} .* not made by the benchmarks"):
            Scratch(POSTGRES_URL)
        with engine.connect() as connection:
            assert connection.execute(text(f"SELECT count(*) FROM {SCHEMA}.precious")).scalar() == 0
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()


def test_the_scoped_url_keeps_the_given_options_and_password() -> None:
    url = "postgresql+psycopg://bench:s3cret@127.0.0.1/db?options=-cstatement_timeout%3D5000"
    scoped = scoped_url(url)
    assert scoped.startswith("postgresql+psycopg://bench:s3cret@127.0.0.1/db?options=")
    assert "statement_timeout" in scoped and f"search_path%3D{SCHEMA}" in scoped


def _schema_exists(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": SCHEMA}
            ).first()
    finally:
        engine.dispose()
    return found is not None
