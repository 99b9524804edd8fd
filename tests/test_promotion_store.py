"""Promotion storage, the same suite on SQLite and PostgreSQL.

The contract: what ``save_outcome`` stores, ``load_state`` gives back unchanged, so a
daemon restarted between any two scrapes alerts exactly as one that kept running.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.orm import Session

from scrapers import (
    FetchTimeout,
    Outcome,
    Promotion,
    ScraperError,
    Source,
    SourceState,
    Validators,
    observe,
)
from watcher.db import Database, PromotionChangeRow, PromotionRow, SourceRow, open_database
from watcher.db.engine import MIGRATIONS
from watcher.promotions.store import (
    key_hash,
    list_promotions,
    load_state,
    load_validators,
    save_outcome,
)

SRC = "kcell-promo"
URL = "https://www.kcell.kz/ru/promo"
T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
ERROR = FetchTimeout("read timed out", url=URL)

Result = Sequence[Promotion] | ScraperError


def source_of(source_id: str = SRC, *, url: str = URL, operator: str | None = "kcell") -> Source:
    return Source(id=source_id, url=url, kind="html", items="li", operator=operator)


SOURCE = source_of()


def promo(slug: str, source_id: str = SRC, **fields: Any) -> Promotion:
    fields.setdefault("title", f"Акция {slug}")
    return Promotion(source_id=source_id, key=f"{URL}/{slug}", link=f"{URL}/{slug}", **fields)


A = promo("a", title="eSIM бесплатно", image="https://www.kcell.kz/a.png", data_gb=Decimal(50))
B = promo(
    "b",
    title="Роуминг за 990 ₸",
    summary="Турция, ОАЭ",
    date_text="до 31 декабря",
    ends=date(2026, 12, 31),
    price_text="990 ₸",
    price=Decimal(990),
    currency="KZT",
)
B2 = promo(
    "b",
    title="Роуминг за 1 490 ₸",
    summary="Турция, ОАЭ",
    date_text="до 31 января",
    ends=date(2027, 1, 31),
    price_text="1 490 ₸",
    price=Decimal(1490),
    currency="KZT",
)
C = promo("c", title="Безлимит на соцсети", date_text="с 1 по 15 декабря")


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = open_database(db_url)
    yield db
    db.close()


def scrape(
    database: Database,
    result: Result,
    now: datetime,
    *,
    source_id: str = SRC,
    operator: str | None = "kcell",
    validators: Validators | None = None,
) -> tuple[Outcome, list[tuple[str, str, str]]]:
    """What the daemon does for one scrape: load, observe, save (each in its own transaction).

    Returns the outcome and the change rows as (kind, key, changed fields).
    """
    with database.session() as session:
        state = load_state(session, source_of(source_id, operator=operator))
    outcome = observe(source_id, state, result, ended_after=2, fail_after=2)
    with database.session() as session:
        rows = save_outcome(
            session,
            source_of(source_id, operator=operator),
            outcome,
            now=now,
            validators=validators,
            promotions=() if isinstance(result, ScraperError) else result,
        )
        keys = {
            row.id: row.key for row in session.execute(select(PromotionRow.id, PromotionRow.key))
        }
        changes = [(row.kind, keys[row.promotion_id], row.changed_fields) for row in rows]
    return outcome, changes


def promotion(database: Database, slug: str) -> PromotionRow:
    with database.session() as session:
        row = session.scalar(select(PromotionRow).where(PromotionRow.key == f"{URL}/{slug}"))
    assert row is not None
    return row


def source(database: Database, source_id: str = SRC) -> SourceRow:
    with database.session() as session:
        row = session.get(SourceRow, source_id)
    assert row is not None
    return row


# --- the state round trip ---------------------------------------------------------------


def test_a_source_never_saved_loads_as_a_new_one(database: Database) -> None:
    with database.session() as session:
        assert load_state(session, SOURCE) == SourceState()
        assert load_validators(session, SOURCE) == Validators()


def test_a_restarted_daemon_behaves_like_one_that_kept_running(database: Database) -> None:
    """Every scrape of a promotion's life, through the database and purely in memory."""
    life: list[Result] = [
        [A, B],  # baseline
        [A, B2, C],  # C new, B changed
        [B2, C],  # A missing once
        ERROR,  # a failure neither ends A nor resets anything
        ERROR,  # second failure: the admin is told
        [B2, C],  # recovered; A missing twice: ended
        [A, B2, C],  # A is back
    ]
    remembered = SourceState()
    for step, result in enumerate(life):
        outcome, _ = scrape(database, result, T0 + timedelta(hours=step))
        expected = observe(SRC, remembered, result, ended_after=2, fail_after=2)
        assert outcome == expected, f"scrape {step + 1}"
        remembered = expected.state
        with database.session() as session:
            loaded = load_state(session, SOURCE)
        assert loaded == remembered, f"scrape {step + 1}"
        assert list(loaded.known) == list(remembered.known)  # the order "ended" comes in


def test_the_database_records_each_promotions_history(database: Database) -> None:
    hour = timedelta(hours=1)
    assert scrape(database, [A, B], T0)[1] == []  # the baseline alerts nobody
    assert scrape(database, [A, B2, C], T0 + hour)[1] == [
        ("changed", B.key, "title,dates,price"),
        ("new", C.key, ""),
    ]
    assert scrape(database, [B2, C], T0 + 2 * hour)[1] == []
    _, changes = scrape(database, ERROR, T0 + 3 * hour)
    assert changes == []
    assert source(database).last_error == "read timed out (https://www.kcell.kz/ru/promo)"
    assert source(database).last_success_at == T0 + 2 * hour
    assert [event.kind for event in scrape(database, ERROR, T0 + 4 * hour)[0].admin] == ["failing"]
    recovered, changes = scrape(database, [B2, C], T0 + 5 * hour)
    assert [event.kind for event in recovered.admin] == ["recovered"]
    assert changes == [("ended", A.key, "")]
    assert promotion(database, "a").ended_at == T0 + 5 * hour
    assert scrape(database, [A, B2, C], T0 + 6 * hour)[1] == [("new", A.key, "")]

    a, b = promotion(database, "a"), promotion(database, "b")
    assert (a.first_seen_at, a.first_seen_run, a.last_seen_at, a.last_seen_run) == (
        T0,
        1,
        T0 + 6 * hour,
        7,
    )
    assert (a.ended, a.ended_at, a.missing_runs) == (False, None, 0)
    assert (a.image, a.data_gb) == ("https://www.kcell.kz/a.png", Decimal(50))
    assert (b.title, b.price, b.currency, b.ends) == (B2.title, Decimal(1490), "KZT", B2.ends)
    with database.session() as session:
        history = session.execute(
            select(
                PromotionChangeRow.run,
                PromotionChangeRow.kind,
                PromotionChangeRow.before_title,
                PromotionChangeRow.before_price_text,
                PromotionChangeRow.before_date_text,
                PromotionChangeRow.at,
            ).order_by(PromotionChangeRow.id)
        ).all()
    assert [tuple(row) for row in history] == [
        (2, "changed", B.title, "990 ₸", "до 31 декабря", T0 + hour),
        (2, "new", None, None, None, T0 + hour),
        (6, "ended", A.title, None, None, T0 + 5 * hour),
        (7, "new", A.title, None, None, T0 + 6 * hour),  # "before": the ended one
    ]
    row = source(database)
    assert (row.run, row.failures, row.last_error, row.alerted_failure) == (7, 0, None, False)
    assert (row.baseline_done, row.last_item_count, row.url, row.kind, row.operator) == (
        True,
        3,
        URL,
        "html",
        "kcell",
    )


def test_an_empty_page_streak_survives_a_restart(database: Database) -> None:
    scrape(database, [A, B], T0)
    scrape(database, [], T0 + timedelta(hours=1))
    emptied, _ = scrape(database, [], T0 + timedelta(hours=2))
    assert [event.kind for event in emptied.admin] == ["empty"]
    refilled, changes = scrape(database, [A, B], T0 + timedelta(hours=3))
    assert [event.kind for event in refilled.admin] == ["refilled"]
    assert changes == []  # an empty page never ended anything


def test_validators_are_kept_until_a_good_fetch_replaces_them(database: Database) -> None:
    first = Validators(etag='"v1"', last_modified="Wed, 25 Nov 2026 06:00:00 GMT")
    scrape(database, [A], T0, validators=first)
    scrape(database, ERROR, T0 + timedelta(hours=1))  # a failure passes none
    with database.session() as session:
        assert load_validators(session, SOURCE) == first
        # Validators of another page would make a moved source look unchanged.
        assert load_validators(session, source_of(url=f"{URL}/new")) == Validators()
        # and so would those of the page read another way (a selector fixed).
        fixed = Source(id=SRC, url=URL, kind="html", items="li.promo", operator="kcell")
        assert load_validators(session, fixed) == Validators()
    second = Validators(etag='"v2"')
    scrape(database, [A], T0 + timedelta(hours=2), validators=second)
    with database.session() as session:
        assert load_validators(session, SOURCE) == second
        state = load_state(session, SOURCE)
        outcome = observe(SRC, state, [A])
        save_outcome(
            session,
            source_of(url=f"{URL}/moved", operator="kcell"),
            outcome,
            now=T0 + timedelta(hours=3),
            validators=None,
        )
    with database.session() as session:
        # The moved page's first fetch failed: the old page's validators are gone.
        assert load_validators(session, source_of(url=f"{URL}/moved")) == Validators()


def test_next_fetch_time_is_stored_for_the_scheduler(database: Database) -> None:
    with database.session() as session:
        outcome = observe(SRC, SourceState(), [A])
        due = T0 + timedelta(hours=6)
        save_outcome(
            session,
            source_of(url=URL, operator=None),
            outcome,
            now=T0,
            validators=None,
            next_fetch_at=due,
        )
    row = source(database)
    assert (row.next_fetch_at, row.last_fetched_at, row.last_success_at) == (due, T0, T0)
    assert row.active


# --- writing safely -----------------------------------------------------------------------


def test_saving_the_same_outcome_twice_writes_it_once(database: Database) -> None:
    scrape(database, [A], T0)
    with database.session() as session:
        state = load_state(session, SOURCE)
    outcome = observe(SRC, state, [A, C])

    def save(session: Session) -> list[int]:
        rows = save_outcome(
            session,
            source_of(url=URL, operator="kcell"),
            outcome,
            now=T0 + timedelta(hours=1),
            validators=None,
        )
        return [row.id for row in rows]

    with database.session() as session:
        ids = [save(session), save(session)]  # in one transaction
    with database.session() as session:
        ids.append(save(session))  # and in the next
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 1
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(PromotionChangeRow)) == 1
        assert session.scalar(select(func.count()).select_from(PromotionRow)) == 2
        assert load_state(session, SOURCE) == outcome.state


def test_an_outcome_older_than_the_stored_state_is_dropped(database: Database) -> None:
    scrape(database, [A], T0)
    with database.session() as session:
        stale_state = load_state(session, SOURCE)
    scrape(database, [A, B], T0 + timedelta(hours=1))
    scrape(database, [A, B, C], T0 + timedelta(hours=2))
    stale = observe(SRC, stale_state, [A, C])  # run 2, while run 3 is stored
    with database.session() as session:
        rows = save_outcome(
            session,
            source_of(url=URL, operator="kcell"),
            stale,
            now=T0 + timedelta(hours=3),
            validators=None,
        )
    assert rows == []
    with database.session() as session:
        assert load_state(session, SOURCE).run == 3


def test_values_a_column_cannot_hold_exactly_are_stored_as_null_without_false_alerts(
    database: Database,
) -> None:
    huge = promo("huge", price_text="10^20 ₸", price=Decimal("1e20"), currency="KZT")
    fine = promo("fine", price_text="2990,555 ₸", price=Decimal("2990.555"), currency="KZT")
    long_link = promo("акция-" + "я" * 2000, data_gb=Decimal("1.23456"))
    scrape(database, [huge, fine, long_link], T0)
    assert promotion(database, "huge").price is None
    assert promotion(database, "fine").price is None
    assert promotion(database, long_link.key.rsplit("/", 1)[1]).data_gb == Decimal("1.235")
    assert scrape(database, [huge, fine, long_link], T0 + timedelta(hours=1))[1] == []


def test_a_page_of_promotions_costs_a_fixed_number_of_statements(database: Database) -> None:
    def page(source_id: str, size: int, price: int) -> list[Promotion]:
        return [
            promo(str(i), source_id, price_text=f"{price} ₸", price=Decimal(price), currency="KZT")
            for i in range(size)
        ]

    counts = []
    for size in (5, 500):
        source_id = f"src-{size}"
        with statements(database.engine) as executed:
            # baseline, then the same page, then every price changed
            for hour, price in enumerate((990, 990, 1490)):
                result = page(source_id, size, price)
                scrape(database, result, T0 + timedelta(hours=hour), source_id=source_id)
        counts.append(len(executed))
    assert counts[0] == counts[1]
    with database.session() as session:
        changed = session.scalar(
            select(func.count())
            .select_from(PromotionChangeRow)
            .where(PromotionChangeRow.source_id == "src-500")
        )
    assert changed == 500


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements executed in the block (an executemany counts once)."""
    executed: list[str] = []

    def record(*args: Any) -> None:
        executed.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        event.remove(engine, "before_cursor_execute", record)


# --- listing ------------------------------------------------------------------------------


def test_promotions_are_listed_newest_first_and_filtered(database: Database) -> None:
    beeline = [
        promo("x", source_id="beeline-promo", title="Beeline X"),
        promo("y", source_id="beeline-promo", title="Beeline Y", ends=date(2026, 11, 30)),
    ]
    scrape(database, [A, B, C], T0)  # baseline, in page order
    scrape(
        database, beeline, T0 + timedelta(hours=1), source_id="beeline-promo", operator="beeline"
    )
    scrape(database, [B, C], T0 + timedelta(hours=2))
    scrape(database, [B, C], T0 + timedelta(hours=3))  # A ended

    def titles(**filters: Any) -> list[str]:
        with database.session() as session:
            return [row.title for row in list_promotions(session, **filters)]

    assert titles() == ["Beeline X", "Beeline Y", A.title, B.title, C.title]
    assert titles(limit=2) == ["Beeline X", "Beeline Y"]
    assert titles(operator="kcell") == [A.title, B.title, C.title]
    assert titles(operator="tele2") == []
    assert titles(active_only=True) == ["Beeline X", "Beeline Y", B.title, C.title]
    assert titles(active_only=True, today=date(2026, 12, 1)) == ["Beeline X", B.title, C.title]
    assert titles(active_only=True, today=date(2027, 1, 1), operator="kcell") == [C.title]
    with database.session() as session:
        row = session.get(SourceRow, "beeline-promo")
        assert row is not None
        row.active = False  # removed from the config: nothing it says is current
    assert titles(active_only=True) == [B.title, C.title]
    assert len(titles()) == 5  # history stays


# --- schema -------------------------------------------------------------------------------


def test_upgrading_a_database_with_reminders_keeps_them(db_url: str) -> None:
    engine = create_engine(db_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")
        connection.execute(
            text(
                "INSERT INTO users (name, timezone, language, remind_at, active)"
                " VALUES ('alice', 'Asia/Almaty', 'ru', '10:00', :yes)"
            ),
            {"yes": True},
        )
    engine.dispose()
    database = open_database(db_url)
    try:
        with database.session() as session:
            assert session.scalar(text("SELECT name FROM users")) == "alice"
        scrape(database, [A], T0)
        assert promotion(database, "a").key_hash == key_hash(A.key)
    finally:
        database.close()


def test_a_page_read_another_way_than_last_time_is_a_silent_new_baseline(
    database: Database,
) -> None:
    scrape(database, [A], T0)  # the baseline, read_as not recorded: no opinion
    with database.session() as session:
        state = load_state(session, SOURCE)
        save_outcome(
            session,
            SOURCE,
            observe(SRC, state, [A, B]),
            now=T0 + timedelta(hours=1),
            validators=None,
            read_as="auto:dom",
        )
    with database.session() as session:
        assert load_state(session, SOURCE, "auto:dom").baseline_done
        assert load_state(session, SOURCE).baseline_done  # a 304 or a failure: no change
        assert not load_state(session, SOURCE, "auto:state").baseline_done


def test_an_acceptance_given_while_a_held_scrape_runs_outlives_it(database: Database) -> None:
    from watcher.promotions.store import accept_held

    scrape(database, [A], T0)
    many = [promo(f"m{n}", title=f"Акция {n}") for n in range(3)]
    for at in (T0 + timedelta(hours=1), T0 + timedelta(hours=2)):
        with database.session() as session:
            state = load_state(session, SOURCE)  # the daemon reads...
        if at == T0 + timedelta(hours=2):
            with database.session() as session:  # ...the admin accepts...
                assert accept_held(session, SRC, at) == 3
        held = observe(SRC, state, many, hold_cap=1)  # ...the page is held again
        assert held.held
        with database.session() as session:
            save_outcome(session, SOURCE, held, now=at, validators=None)
    with database.session() as session:
        assert load_state(session, SOURCE).accept_held is True
        assert accept_held(session, "no-such-source", T0) is None
