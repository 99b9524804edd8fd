"""``watcher export`` / ``watcher import``: everything recorded survives the trip, on both
databases, and a bad file changes nothing.

The record is made the real way: a config synced, reminders planned into the outbox,
a renewal and a balance recorded, a promotion page on loopback scraped twice (so there
are promotions, changes and alerts), a calendar token made.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from scrapers import FetchSettings
from tests.conftest import POSTGRES_URL, WriteConfig, reset_postgres
from tests.servers import PromoSite
from watcher.app import App
from watcher.calendar import calendar_token
from watcher.clock import FixedClock
from watcher.config import load_config
from watcher.db import OutboxRow, open_database
from watcher.db.engine import Database
from watcher.reminders.records import record_balance, record_renewal
from watcher.transfer import TransferError, _dump_row, _tables, export_state, import_state

NOW = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)
FAST = FetchSettings(min_gap=0, retries=0, backoff=0, connect_timeout=2, read_timeout=5)

CONFIG = """
timezone: Asia/Almaty
channels:
  me: "json://127.0.0.1:9/me"
sources:
  - id: kcell-promo
    operator: kcell
    url: "{url}"
    items: ".card"
    fields: {{title: "h2", link: "a@href", price: ".price"}}
users:
  - name: alice
    notify: [me]
    promotions: {{operators: [kcell]}}
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2026-12-04
        remind_before: [3d]
        balance_check_every: 14d
"""

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def site() -> Iterator[PromoSite]:
    served = PromoSite()
    served.cards = [{"title": "eSIM за 0 ₸", "href": "/p/esim", "price": "0 ₸"}]
    yield served
    served.stop()


def url_for(backend: str, tmp_path: Path, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    if POSTGRES_URL is None:
        pytest.skip("set WATCHER_TEST_POSTGRES_URL to run the PostgreSQL variant")
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


def recorded(path: Path, url: str, site: PromoSite) -> App:
    """An app whose database holds one of everything."""
    env = {"WATCHER_DATABASE_URL": url}
    clock = FixedClock(NOW)
    app = App(load_config(path, env), clock=clock, env=env, fetch_settings=FAST)
    app.sync()
    app.plan()
    app.scrape(every_watched=True)
    site.cards.append({"title": "Роуминг 10 ГБ", "href": "/p/roaming", "price": "2 990 ₸"})
    clock.advance(timedelta(hours=2))
    app.scrape(every_watched=True)
    with app.database.session() as session:
        record_balance(session, "alice-kcell", Decimal("1234.50"), clock.now(), source="test")
        record_renewal(
            session, "alice-kcell", clock.now(), until=date(2027, 1, 4), period=None, source="t"
        )
        calendar_token(session, "alice", clock.now())
        # A message a sender held when the export was taken.
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == select(OutboxRow.id).limit(1).scalar_subquery())
            .values(claimed_by="host:1:run", claimed_at=clock.now())
        )
    return app


def dump(database: Database) -> dict[str, list[dict[str, Any]]]:
    with database.engine.connect() as connection:
        return {
            table.name: [
                _dump_row(table, row._mapping)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in _tables()
        }


def exported(database: Database) -> str:
    out = io.StringIO()
    export_state(database, out)
    return out.getvalue()


@pytest.mark.parametrize("target", BACKENDS)
def test_everything_recorded_survives_sqlite_to_either_database(
    write_config: WriteConfig, site: PromoSite, tmp_path: Path, target: str
) -> None:
    path = write_config(CONFIG.format(url=site.url))
    source = recorded(path, f"sqlite:///{tmp_path / 'old.db'}", site)
    before = dump(source.database)
    assert all(before[name] for name in ("sims", "outbox", "events", "promotions"))
    assert before["promotion_changes"] and before["calendar_tokens"]
    text = exported(source.database)
    source.close()

    target_db = open_database(url_for(target, tmp_path, "new.db"))
    try:
        counts = import_state(target_db, io.StringIO(text), name="state.json")
        after = dump(target_db)
        for row in before["outbox"]:
            row.update(claimed_by=None, claimed_at=None)  # their sender is gone
        assert after == before
        assert counts == {name: len(rows) for name, rows in before.items()}
        # Ids continue after the imported ones (PostgreSQL sequences were moved on).
        with target_db.session() as session:
            row = OutboxRow(
                dedup_key="after-import",
                channel="me",
                kind="admin",
                created_at=NOW,
                next_attempt_at=NOW,
            )
            session.add(row)
            session.flush()
            assert row.id > max(r["id"] for r in before["outbox"])
    finally:
        target_db.close()


def test_postgresql_back_to_sqlite_round_trips(
    write_config: WriteConfig, site: PromoSite, tmp_path: Path
) -> None:
    pg = url_for("postgresql", tmp_path, "")
    source = recorded(write_config(CONFIG.format(url=site.url)), pg, site)
    before = dump(source.database)
    text = exported(source.database)
    source.close()

    back = open_database(f"sqlite:///{tmp_path / 'back.db'}")
    try:
        import_state(back, io.StringIO(text), name="state.json")
        for row in before["outbox"]:
            row.update(claimed_by=None, claimed_at=None)
        assert dump(back) == before
    finally:
        back.close()


@pytest.fixture
def export_text(write_config: WriteConfig, site: PromoSite, tmp_path: Path) -> str:
    app = recorded(
        write_config(CONFIG.format(url=site.url)), f"sqlite:///{tmp_path / 'a.db'}", site
    )
    try:
        return exported(app.database)
    finally:
        app.close()


def test_a_database_that_holds_data_is_refused_and_left_alone(
    export_text: str, tmp_path: Path
) -> None:
    target = open_database(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        import_state(target, io.StringIO(export_text), name="state.json")
        before = dump(target)
        with pytest.raises(TransferError, match="it already holds data"):
            import_state(target, io.StringIO(export_text), name="state.json")
        assert dump(target) == before
    finally:
        target.close()


def _edit(text: str, change: Any) -> str:
    document = json.loads(text)
    change(document)
    return json.dumps(document)


def _bad_last_row(document: dict[str, Any]) -> None:
    document["tables"]["calendar_tokens"][-1]["created_at"] = "yesterday"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), 'not a SIM Watcher export (no "format"'),
        (lambda d: d.update(version=99), "export format version 99"),
        (lambda d: d.update(schema="0001"), "written at schema revision 0001"),
        (lambda d: d["tables"].update(nosuch=[]), "unknown tables nosuch"),
        (_bad_last_row, "tables.calendar_tokens[0].created_at: 'yesterday' is not a valid"),
        (lambda d: d["tables"]["sims"][0].update(colour="red"), "unknown columns colour"),
        (lambda d: d["tables"]["sims"][0].update(user_name=None), "user_name: missing"),
        (
            lambda d: d["tables"]["sims"].append(dict(d["tables"]["sims"][0])),
            "tables.sims does not fit the database",
        ),
    ],
)
def test_a_bad_file_is_one_line_and_imports_nothing(
    export_text: str, tmp_path: Path, change: Any, message: str
) -> None:
    target = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with pytest.raises(TransferError) as raised:
            import_state(target, io.StringIO(_edit(export_text, change)), name="state.json")
        assert message in str(raised.value)
        assert "\n" not in str(raised.value)
        assert not any(dump(target).values())
    finally:
        target.close()


def test_not_json_at_all_is_one_line(tmp_path: Path) -> None:
    target = open_database(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        with pytest.raises(TransferError, match=r"state.json: not a SIM Watcher export \(line 1"):
            import_state(target, io.StringIO("{nope"), name="state.json")
    finally:
        target.close()


def test_the_cli_exports_to_stdout_and_imports_into_a_new_database(
    write_config: WriteConfig, site: PromoSite, tmp_path: Path
) -> None:
    path = write_config(CONFIG.format(url=site.url))
    recorded(path, f"sqlite:///{tmp_path / 'from.db'}", site).close()

    def cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / db}"}
        return subprocess.run(
            [sys.executable, "-m", "watcher", *args, "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    out = cli("from.db", "export")
    assert out.returncode == 0, out.stderr
    (tmp_path / "state.json").write_text(out.stdout, encoding="utf-8")
    loaded = cli("to.db", "import", str(tmp_path / "state.json"))
    again = cli("to.db", "import", str(tmp_path / "state.json"))
    missing = cli("to.db", "import", str(tmp_path / "nope.json"))

    assert loaded.returncode == 0, loaded.stderr
    assert "imported into" in loaded.stdout and "alice" not in loaded.stdout
    assert again.returncode == 1 and "it already holds data" in again.stderr
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot read")
    for result in (again, missing):
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
