"""Several daemons on one PostgreSQL database do the work of one.

Each "replica" here is an App with its own engine (its own connections), as a separate
`watcher run` process would have; they start together behind a barrier. PostgreSQL
only: that is where replicas run (SQLite is one machine, one writer at a time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text

from scrapers import FetchSettings
from tests.conftest import POSTGRES_URL, WriteConfig, reset_postgres
from tests.servers import PromoSite
from watcher.app import App
from watcher.clock import FixedClock
from watcher.config import load_config
from watcher.db import OutboxRow, SimRow, UserRow, open_database
from watcher.leases import LOCKS, exclusive

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="set WATCHER_TEST_POSTGRES_URL to run the replica tests"
)

T = TypeVar("T")
NOW = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)  # 10:30 in Almaty, after remind_at
FAST = FetchSettings(min_gap=0, retries=0, backoff=0, connect_timeout=2, read_timeout=5)


def config_text(users: int, url: str) -> str:
    lines = [
        "timezone: Asia/Almaty",
        "channels:",
        '  me: "json://127.0.0.1:9/me"',
        "sources:",
        "  - id: kcell-promo",
        "    operator: kcell",
        f'    url: "{url}"',
        '    items: ".card"',
        '    fields: {title: "h2", link: "a@href", price: ".price"}',
        "users:",
    ]
    for n in range(users):
        lines += [
            f"  - name: user{n}",
            "    notify: [me]",
            "    promotions: {operators: [kcell]}",
            "    sims:",
            f"      - id: sim{n}",
            "        operator: kcell",
            f'        number: "+7701{n:07d}"',
            "        expires: 2026-12-04",
            "        remind_before: [3d]",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def site() -> Iterator[PromoSite]:
    served = PromoSite()
    served.cards = [{"title": "eSIM за 0 ₸", "href": "/p/esim", "price": "0 ₸"}]
    yield served
    served.stop()


@pytest.fixture
def replicas(write_config: WriteConfig, site: PromoSite) -> Iterator[Callable[[int], list[App]]]:
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    made: list[App] = []

    def make(count: int, users: int = 50) -> list[App]:
        path: Path = write_config(config_text(users, site.url))
        env = {"WATCHER_DATABASE_URL": str(POSTGRES_URL)}
        for _ in range(count):
            loaded = load_config(path, env)
            made.append(App(loaded, clock=FixedClock(NOW), env=env, fetch_settings=FAST))
        return made[-count:]

    yield make
    for app in made:
        app.close()


def together(jobs: list[Callable[[], T]]) -> list[T]:
    """Run the jobs in threads released at the same instant; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    results: list[T | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[index] = job()
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return [result for result in results if result is not None]


def test_replicas_starting_together_sync_the_config_without_tripping(
    replicas: Callable[[int], list[App]],
) -> None:
    apps = replicas(3)
    for app in apps:
        app.database  # noqa: B018 -- migrate first, as each daemon does before its sync

    together([app.sync for app in apps])

    with apps[0].database.session() as session:
        assert session.scalar(select(func.count()).select_from(UserRow)) == 50
        assert session.scalar(select(func.count()).select_from(SimRow)) == 50


def test_replicas_planning_together_queue_each_reminder_once(
    replicas: Callable[[int], list[App]],
) -> None:
    apps = replicas(3)
    apps[0].sync()

    written = together([app.plan for app in apps])

    with apps[0].database.session() as session:
        rows = session.scalar(select(func.count()).select_from(OutboxRow))
    assert rows == 50
    assert sum(written) == 50  # one replica planned; the others skipped the round


def test_one_replica_scrapes_the_due_sources_the_others_skip(
    replicas: Callable[[int], list[App]], site: PromoSite
) -> None:
    apps = replicas(3)
    apps[0].sync()
    site.delay = 0.5  # the pages answer slowly: the passes overlap

    results = together([app.scrape for app in apps])

    assert site.hits == 1
    assert sorted(len(result) for result in results) == [0, 0, 1]
    # Then it is not due for anyone until its interval has passed.
    assert all(app.scrape() == [] for app in apps)
    assert site.hits == 1


def test_a_replica_that_dies_mid_pass_frees_the_pass_at_once() -> None:
    assert POSTGRES_URL is not None
    database = open_database(POSTGRES_URL)
    try:
        with database.engine.connect() as holder, database.engine.connect() as killer:
            # A replica in the middle of its pass: it holds the lock on its connection.
            pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCKS["scrape"]})
            holder.commit()
            with exclusive(database, "scrape") as mine:
                assert mine is False
            # It is killed: its session ends with it, and so does the lock.
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killer.commit()
            with exclusive(database, "scrape") as mine:
                assert mine is True
            holder.invalidate()
    finally:
        database.close()
