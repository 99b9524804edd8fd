"""Tables at 80 columns: no line longer, no id, time or number ever cut or folded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import WriteConfig
from tests.servers import PromoSite
from watcher.cli import main
from watcher.clock import zoned_text
from watcher.tables import Column, Kind, render_table

WIDTH = 80
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TODAY = date.today()  # the CLI runs on the real clock

# Long on purpose: a 40-character SIM id, a 48-character source id, long labels.
SIM_ID = "aigerim-kcell-unlimited-family-plan-2026"
OTHER_SIM = "aigerim.beeline_work.phone-number-second"
SOURCE_ID = "kcell-promotions-and-special-offers-page-almaty"
USER = "aigerim-nurlanovna-the-accountant"

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=64)
whens = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%d %H:%M +05")
)
numbers = st.decimals(min_value=-(10**9), max_value=10**9, places=2).map(str)
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("C", "Z")) | st.just(" "),
    max_size=200,
)


def lines_of(text: str) -> list[str]:
    return ANSI.sub("", text).splitlines()


def assert_fits_and_whole(text: str, whole: list[str]) -> None:
    lines = lines_of(text)
    too_long = [line for line in lines if len(line) > WIDTH]
    assert not too_long, f"lines over {WIDTH}: {too_long}"
    assert "…" not in text
    for value in whole:
        assert any(value in line for line in lines), f"{value!r} is not whole in:\n{text}"


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[Column], list[list[str | None]]]:
    kinds = draw(
        st.lists(st.sampled_from(list(Kind)), min_size=1, max_size=8).map(
            lambda k: [Kind.ID, *k]  # tables lead with an id
        )
    )
    columns = [
        Column(draw(st.text("abcdefgh ", min_size=1, max_size=14)).strip() or "x", kind)
        for kind in kinds
    ]
    by_kind = {Kind.ID: ids, Kind.WHEN: whens, Kind.NUMBER: numbers, Kind.TEXT: texts}
    rows = draw(
        st.lists(
            st.tuples(*(st.none() | by_kind[kind] for kind in kinds)).map(list),
            max_size=6,
        )
    )
    return columns, rows


@settings(max_examples=150, deadline=None)
@given(table=tables(), terminal=st.booleans())
def test_any_table_fits_80_columns_with_every_id_time_and_number_whole(
    table: tuple[list[Column], list[list[str | None]]], terminal: bool
) -> None:
    columns, rows = table
    text = render_table("title", columns, rows, width=WIDTH, terminal=terminal)
    whole = [
        cell
        for row in rows
        for column, cell in zip(columns, row, strict=True)
        if cell and column.kind is not Kind.TEXT
    ]
    assert_fits_and_whole(text, whole)
    if not terminal:
        assert not set("─│┃━┏┓└┘") & set(text), "box characters in plain output"
        assert all(line == line.rstrip() for line in text.splitlines())
    # Free text may fold, never be dropped: every character is printed somewhere.
    printed = set(ANSI.sub("", text))
    for row in rows:
        for column, cell in zip(columns, row, strict=True):
            if cell and column.kind is Kind.TEXT:
                assert set(cell) - set(" ") <= printed


def test_plain_output_has_no_box_characters_and_the_terminal_one_a_header_rule() -> None:
    columns = [Column("SIM", Kind.ID), Column("expires", Kind.WHEN), Column("note")]
    rows: list[list[str | None]] = [["alice-kcell", "2026-12-04", "fine"]]
    plain = render_table("SIM Watcher", columns, rows, terminal=False)
    assert plain.splitlines() == ["SIM          expires     note", "alice-kcell  2026-12-04  fine"]
    boxed = render_table("SIM Watcher", columns, rows, terminal=True)
    assert "SIM Watcher" in boxed and "─" in boxed


def test_wide_adds_its_columns() -> None:
    columns = [Column("SIM", Kind.ID), Column("operator", Kind.ID, wide=True)]
    rows: list[list[str | None]] = [["alice-kcell", "Kcell"]]
    assert "Kcell" not in render_table("t", columns, rows)
    assert "Kcell" in render_table("t", columns, rows, wide=True)


# --- every table command, on a real database ----------------------------------------


@pytest.fixture
def site() -> Iterator[PromoSite]:
    served = PromoSite()
    served.cards = [
        {
            "title": "Безлимитный интернет и звонки по всему Казахстану на целый месяц за "
            "полцены для новых абонентов Kcell",
            "href": "/p/very-long-link-to-the-promotion-page-with-many-words-in-its-path",
            "price": "2 990 ₸",
        },
        {"title": "eSIM", "href": "/p/esim", "price": "0 ₸"},
    ]
    yield served
    served.stop()


@pytest.fixture
def long_config(write_config: WriteConfig, db_url: str, site: PromoSite) -> Path:
    return write_config(
        f"""
timezone: Asia/Almaty
database: {db_url}
remind_at: "00:00"
channels:
  dead: "json://127.0.0.1:1/nothing-listens"
sources:
  - id: {SOURCE_ID}
    operator: kcell
    url: "{site.url}"
    items: ".card"
    fields: {{title: "h2", link: "a@href", price: ".price"}}
users:
  - name: {USER}
    notify: [dead]
    promotions: {{sources: [{SOURCE_ID}]}}
    sims:
      - id: {SIM_ID}
        operator: kcell
        number: "+77011234567"
        plan: "Kcell Unlim Family with a very long label for the plan that goes on"
        expires: {TODAY - timedelta(days=2)}
        balance_check_every: 14d
        low_balance: 1500
      - id: {OTHER_SIM}
        operator: beeline
        number: "+77051234567"
        expires: {TODAY + timedelta(days=300)}
        idle_limit: 90d
        last_paid_activity: {TODAY - timedelta(days=10)}
"""
    )


def output(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) in (0, 1)
    return capsys.readouterr().out


def shown(iso: str) -> str:
    instant = datetime.fromisoformat(iso)
    return zoned_text(instant, instant.tzinfo)


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide"])
def test_every_table_command_fits_80_columns_with_long_ids(
    long_config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    terminal: bool,
    wide: bool,
) -> None:
    config = str(long_config)
    output(capsys, "run", "--once", "-c", config)  # stores SIMs, messages, promotions
    status: list[dict[str, Any]] = json.loads(output(capsys, "status", "--json", "-c", config))
    sources = json.loads(output(capsys, "sources", "--json", "-c", config))
    promotions = json.loads(output(capsys, "promotions", "--json", "-c", config))
    scrape = ["scrape", SOURCE_ID, "--dry-run", "-c", config]  # loopback only
    scraped = json.loads(output(capsys, *scrape, "--json"))

    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("NO_COLOR", "1")
    if terminal:
        monkeypatch.setenv("TTY_COMPATIBLE", "1")
    flags = ["--wide"] if wide else []

    whole = [SIM_ID, OTHER_SIM, USER, "+7 701 *** ** 67"]
    for row in status:
        whole += [row["expires"], row["next_balance_check"] or SIM_ID]
        if row["last_message"]:
            whole.append(shown(row["last_message"]["at"]))
        if wide and row["idle_deadline"]:
            whole.append(row["idle_deadline"])
    assert any(row["last_message"] for row in status)
    assert_fits_and_whole(output(capsys, "status", *flags, "-c", config), whole)

    source = next(row for row in sources if row["source"] == SOURCE_ID)
    assert source["last_success"]
    assert_fits_and_whole(
        output(capsys, "sources", *flags, "-c", config),
        [SOURCE_ID, shown(source["last_success"]), shown(source["next_fetch"])],
    )

    assert len(promotions) == 2
    whole = [SOURCE_ID, "2990 KZT"] + [shown(row["first_seen"]) for row in promotions]
    assert_fits_and_whole(output(capsys, "promotions", *flags, "-c", config), whole)

    assert scraped[0]["source"] == SOURCE_ID
    assert_fits_and_whole(output(capsys, *scrape), [SOURCE_ID, "2990 KZT"])
