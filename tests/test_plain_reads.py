"""`watcher status` and `watcher health` read without SQLAlchemy, and say the same.

watcher.db.plain is a second way into five tables, through sqlite3 or psycopg. These
tests hold it to the first: each read gives what its SQLAlchemy twin gives on the same
database (for any stored values, not just the usual ones; on SQLite, and on PostgreSQL
when WATCHER_TEST_POSTGRES_URL is set), its columns are the models' columns of the types
it converts, it connects where SQLAlchemy would, a server it cannot reach is said in the
same words, and anything it is not sure of is handed back to the SQLAlchemy path.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import typing
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Date, Numeric, String, delete, make_url, text

from tests.conftest import NO_POSTGRES, POSTGRES_URL, WriteConfig, reset_postgres
from watcher import outbox
from watcher.cli import main
from watcher.clock import SystemClock
from watcher.db import Database, open_database, plain
from watcher.db.engine import resolve_database_url
from watcher.db.faults import _where
from watcher.db.models import Event, Heartbeat, OutboxRow, SimRow, UserRow, UTCDateTime
from watcher.heartbeat import PLANNER, last_beat
from watcher.reminders.status import plain_sim_statuses, sim_statuses
from watcher.sync import LOADED_KIND, last_loaded

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    path = tmp_path / "watcher.db"
    database = open_database(f"sqlite:///{path}")
    yield database, path
    database.close()


ON_POSTGRES = pytest.mark.skipif(not POSTGRES_URL, reason=NO_POSTGRES)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=ON_POSTGRES)])
def any_db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Database, Path | plain.Server]]:
    """A migrated database and what plain.read reads it as: a file, or a server."""
    if request.param == "sqlite":
        path = tmp_path / "watcher.db"
        database = open_database(f"sqlite:///{path}")
        yield database, path
    else:
        assert POSTGRES_URL is not None
        reset_postgres(POSTGRES_URL)
        server = plain.postgres_server(POSTGRES_URL)
        assert server is not None, "the test URL is not a plain postgresql+psycopg:// one"
        database = open_database(POSTGRES_URL)
        yield database, server
    database.close()


def both_ways(database: Database, path: Path | plain.Server) -> tuple[object, object]:
    """Everything status and health read, through SQLAlchemy and through the driver."""
    with database.session() as session:
        orm = (
            sim_statuses(session, NOW),
            last_loaded(session),
            last_beat(session, PLANNER),
            outbox.last_messages(session),
        )
    quick = plain.read(
        path,
        lambda db: (
            plain_sim_statuses(db, NOW),
            plain.last_loaded(db),
            plain.last_beat(db, plain.PLANNER),
            plain.last_messages(db),
        ),
    )
    return orm, quick


# --- the same answer -------------------------------------------------------------------------

ZONES = ("Asia/Almaty", "UTC", "America/St_Johns", "Pacific/Kiritimati")
OFFSETS = st.lists(st.sampled_from(["0d", "1d", "3d", "7d", "14d", "1m"]), max_size=3, unique=True)
EVERY = st.none() | st.sampled_from(["14d", "30d", "90d", "1m", "3m", "12m"])
DAY = st.dates(date(2000, 1, 1), date(2099, 12, 31))
INSTANT = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
MONEY = st.decimals(
    min_value=Decimal("-999999999999.99"),
    max_value=Decimal("999999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)


@st.composite
def sims(draw: st.DrawFn, index: int) -> SimRow:
    return SimRow(
        id=f"sim-{index}",
        user_name=draw(st.sampled_from(["alice", "bob"])),
        operator=draw(st.sampled_from(["kcell", "tele2"])),
        number=f"+7701{index:07d}",
        active=draw(st.booleans()),
        expires=draw(st.none() | DAY),
        remind_before=",".join(draw(OFFSETS)),
        remind_after=",".join(draw(OFFSETS)),
        balance_check_every=draw(EVERY),
        last_balance_check=draw(st.none() | DAY),
        balance=draw(st.none() | MONEY),
        idle_limit=draw(EVERY),
        last_paid_activity=draw(st.none() | DAY),
        first_seen_at=draw(INSTANT),
    )


@st.composite
def messages(draw: st.DrawFn, index: int) -> OutboxRow:
    created = draw(INSTANT)
    return OutboxRow(
        dedup_key=f"key-{index}",
        channel="hook",
        sim_id=draw(st.none() | st.sampled_from(["sim-0", "sim-1", "sim-2", "gone"])),
        kind=draw(st.sampled_from(["expiry", "balance", "idle", "admin"])),
        status=draw(st.sampled_from(["pending", "sent", "failed", "dead", "cancelled"])),
        created_at=created,
        next_attempt_at=created,
        sent_at=draw(st.none() | INSTANT),
    )


@st.composite
def contents(draw: st.DrawFn) -> list[object]:
    rows: list[object] = [
        UserRow(
            name=name,
            timezone=draw(st.sampled_from(ZONES)),
            language="en",
            remind_at=draw(st.sampled_from(["00:00", "09:30", "23:59"])),
        )
        for name in ("alice", "bob")
    ]
    rows += [draw(sims(index)) for index in range(draw(st.integers(0, 3)))]
    rows += [draw(messages(index)) for index in range(draw(st.integers(0, 6)))]
    for _ in range(draw(st.integers(0, 3))):
        digest = draw(st.sampled_from(["aaa", "bbb"]))
        at = draw(st.sampled_from([NOW, NOW - timedelta(microseconds=1), draw(INSTANT)]))
        rows.append(Event(sim_id="", at=at, kind=LOADED_KIND, detail=f"{digest} /etc/w.yaml"))
    if draw(st.booleans()):
        rows.append(Heartbeat(name=PLANNER, at=draw(INSTANT)))
    return rows


def test_each_plain_read_gives_what_its_sqlalchemy_twin_gives(
    any_db: tuple[Database, Path | plain.Server],
) -> None:
    database, path = any_db

    @settings(max_examples=60, deadline=None)
    @given(contents())
    def check(rows: list[object]) -> None:
        with database.session() as session:
            for model in (OutboxRow, Event, Heartbeat, SimRow, UserRow):
                session.execute(delete(model))
            for row in rows:  # in order: users before their SIMs
                session.add(row)
                session.flush()
        orm, quick = both_ways(database, path)
        assert repr(quick) == repr(orm)  # repr: Decimal("1.50") == Decimal("1.5"), yet prints apart

    check()


# --- the same columns ------------------------------------------------------------------------

CONVERTED = {date: Date, datetime: UTCDateTime, Decimal: Numeric, str: String}


@pytest.mark.parametrize(
    ("record", "model"), [(plain.PlainSim, SimRow), (plain.PlainUser, UserRow)]
)
def test_plain_records_are_model_columns_of_the_types_they_convert(
    record: type, model: type
) -> None:
    columns = model.__table__.columns  # type: ignore[attr-defined]
    hints = typing.get_type_hints(record)
    for field in dataclasses.fields(record):
        assert field.name in columns, f"{model.__name__} has no column {field.name}"
        column = columns[field.name]
        python = next(
            t
            for t in typing.get_args(hints[field.name]) or (hints[field.name],)
            if t is not type(None)
        )
        assert isinstance(column.type, CONVERTED[python]), (field.name, column.type)
        assert column.nullable == (type(None) in typing.get_args(hints[field.name])), field.name
    numeric = [c for c in columns if isinstance(c.type, Numeric) and c.name in hints]
    assert all(column.type.scale == 2 for column in numeric)  # what plain._money assumes


# --- the same file ---------------------------------------------------------------------------

URLS = [
    "sqlite:///watcher.db",
    "sqlite:///data/w.db",
    "sqlite:////abs/w.db",
    "sqlite+pysqlite:///w.db",
    "sqlite:///with space/w.db",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///w.db?mode=ro",
    "sqlite:///w%20x.db",
    "sqlite+aiosqlite:///w.db",
    "postgresql+psycopg://u:p@127.0.0.1:5432/db",
    None,
]


@pytest.mark.parametrize("url", URLS)
def test_the_plain_file_is_the_one_sqlalchemy_opens_or_none(
    url: str | None, tmp_path: Path
) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    found = plain.sqlite_file(url, tmp_path, env)
    if found is None:
        assert (
            url is None
            or not url.startswith(("sqlite:///", "sqlite+pysqlite:///"))
            or any(mark in url for mark in ("?", "%", ":memory:"))
        )
        return
    resolved = make_url(resolve_database_url(url, tmp_path, env))
    assert resolved.get_backend_name() == "sqlite"
    assert found.resolve() == Path(resolved.database or "").resolve()


def test_the_environment_url_wins_as_it_does_for_sqlalchemy(tmp_path: Path) -> None:
    env = {"WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    assert plain.sqlite_file("sqlite:///config.db", tmp_path, env) == tmp_path / "env.db"
    env = {"WATCHER_DATABASE_URL": "postgresql://127.0.0.1/db"}
    assert plain.sqlite_file("sqlite:///config.db", tmp_path, env) is None


POSTGRES_URLS = [
    "postgresql+psycopg://u:p@127.0.0.1:5432/db",
    "postgresql+psycopg://u@db.example/watcher",
    "postgresql+psycopg://127.0.0.1/db",
    "postgresql+psycopg:///db",
    "postgresql+psycopg://",
    "postgresql+psycopg://u:p%40ss%2Fw%3Ard@host:6543/my%20db",
    "postgresql+psycopg://u:@host/db",
    "postgresql+psycopg://u:p@host/db?options=-csearch_path%3Dwatcher",
    "postgresql+psycopg://u:p@host/db?sslmode=require&connect_timeout=3&application_name=w",
    "postgresql+psycopg://u:p@host/db?options=-c%20statement_timeout%3D5s+-cjit%3Doff",
    "postgresql+psycopg://u:p@host/db?sslmode=",
]
UNUSUAL_POSTGRES_URLS = [
    "postgresql://u:p@127.0.0.1/db",  # psycopg2, which SQLAlchemy would look for
    "postgres://u:p@127.0.0.1/db",
    "postgresql+psycopg2://u:p@127.0.0.1/db",
    "postgresql+asyncpg://u:p@127.0.0.1/db",
    "postgresql+psycopg_async://u:p@127.0.0.1/db",
    "postgresql+psycopg://u:p@[::1]:5432/db",
    "postgresql+psycopg://u:p@h/db?host=a:1&host=b:2",  # several hosts
    "postgresql+psycopg://u:p@h/db?port=1",
    "postgresql+psycopg://u:p@h/db?sslmode=require&sslmode=disable",
    "postgresql+psycopg://u:p@h/db?plugin=x",
    "postgresql+psycopg://u:p@h:port/db",
    "postgresql+psycopg://u:p@h/db#x",
    "postgresql+psycopg://u:p@q@h/db",
]


def connect_args(url: str) -> dict[str, object]:
    """What SQLAlchemy's psycopg dialect passes to ``psycopg.connect`` for ``url``."""
    parsed = make_url(url)
    _args, params = parsed.get_dialect()().create_connect_args(parsed)
    params.pop("context", None)  # its type adapters: for columns status does not read
    return dict(params)


@pytest.mark.parametrize("url", POSTGRES_URLS)
def test_a_plain_postgres_url_connects_as_sqlalchemy_would(url: str) -> None:
    server = plain.postgres_server(url)
    assert server is not None
    assert dict(server.params) == connect_args(url)
    assert server.where == _where(make_url(url))
    assert server.password == (make_url(url).password or None)
    assert "p@ss" not in repr(server) and ":p@" not in repr(server)


@pytest.mark.parametrize("url", UNUSUAL_POSTGRES_URLS)
def test_an_unusual_postgres_url_is_left_to_sqlalchemy(url: str, tmp_path: Path) -> None:
    assert plain.postgres_server(url) is None
    assert plain.plain_source(url, tmp_path, {}) is None


NAME = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    user=NAME,
    password=NAME,
    host=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
    port=st.none() | st.integers(1, 65535),
    database=NAME,
    options=NAME,
)
def test_any_encoded_parts_reach_psycopg_as_sqlalchemy_passes_them(
    user: str, password: str, host: str, port: int | None, database: str, options: str
) -> None:
    url = (
        f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}@{host}"
        f"{'' if port is None else f':{port}'}/{quote(database, safe='')}"
        f"?options={quote(options, safe='')}"
    )
    server = plain.postgres_server(url)
    assert server is not None
    assert dict(server.params) == connect_args(url)
    assert server.where == _where(make_url(url))


def test_the_source_is_the_file_or_the_server_sqlalchemy_opens(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u:p@127.0.0.1/db"
    assert plain.plain_source(url, tmp_path, {}) == plain.postgres_server(url)
    assert plain.plain_source("sqlite:///w.db", tmp_path, {}) == tmp_path / "w.db"
    env = {"WATCHER_DATABASE_URL": url}
    assert plain.plain_source("sqlite:///w.db", tmp_path, env) == plain.postgres_server(url)


# --- handed back when unsure ---------------------------------------------------------------


def test_no_file_a_missing_file_and_an_older_schema_are_left_to_sqlalchemy(
    sqlite_db: tuple[Database, Path], tmp_path: Path
) -> None:
    _, path = sqlite_db
    for absent in (None, tmp_path / "missing.db"):
        with pytest.raises(plain.Unsupported):
            plain.read(absent, plain.users)
    assert not (tmp_path / "missing.db").exists()  # read-only: nothing created
    older = tmp_path / "older.db"
    with sqlite3.connect(path) as connection:
        connection.execute("VACUUM INTO ?", (str(older),))
    connection.close()
    with sqlite3.connect(older) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    connection.close()
    with pytest.raises(plain.Unsupported):
        plain.read(older, plain.users)
    assert plain.read(path, plain.users) == {}


@pytest.mark.parametrize("stored", ["yesterday", 1764840600, "2026-12-04T09:30:00+05:00"])
def test_a_value_sqlalchemy_may_read_differently_is_left_to_it(
    sqlite_db: tuple[Database, Path], stored: object
) -> None:
    _, path = sqlite_db
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO heartbeats (name, at) VALUES ('planner', ?)", (stored,))
    connection.close()
    with pytest.raises(plain.Unsupported):
        plain.read(path, lambda db: plain.last_beat(db, plain.PLANNER))


@ON_POSTGRES
def test_an_older_schema_or_an_unreadable_value_on_postgres_is_left_to_sqlalchemy() -> None:
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    server = plain.postgres_server(POSTGRES_URL)
    assert server is not None
    with pytest.raises(plain.Unsupported):  # no tables at all
        plain.read(server, plain.users)
    database = open_database(POSTGRES_URL)
    try:
        assert plain.read(server, plain.users) == {}
        with database.engine.begin() as connection:
            # psycopg cannot load an infinite timestamp: SQLAlchemy fails on it its own way.
            connection.execute(text("INSERT INTO heartbeats VALUES ('planner', 'infinity')"))
        with pytest.raises(plain.Unsupported):
            plain.read(server, lambda db: plain.last_beat(db, plain.PLANNER))
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0001_initial'"))
        with pytest.raises(plain.Unsupported):
            plain.read(server, plain.users)
    finally:
        database.close()


@ON_POSTGRES
def test_plain_reads_on_postgres_are_read_only_and_one_snapshot() -> None:
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    server = plain.postgres_server(POSTGRES_URL)
    assert server is not None
    database = open_database(POSTGRES_URL)
    try:
        with pytest.raises(plain.Unsupported):
            plain.read(server, lambda db: db.execute("CREATE TABLE t (x integer)"))
        settings = plain.read(
            server,
            lambda db: db.execute(
                "SELECT current_setting('transaction_read_only'),"
                " current_setting('transaction_isolation')"
            ).fetchone(),
        )
        assert tuple(settings) == ("on", "repeatable read")
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT to_regclass('t')")).scalar() is None
    finally:
        database.close()


def test_plain_reads_write_nothing(sqlite_db: tuple[Database, Path]) -> None:
    _, path = sqlite_db
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    with pytest.raises(plain.Unsupported):
        plain.read(path, lambda db: db.execute("CREATE TABLE t (x INTEGER)"))
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


# --- the same output -------------------------------------------------------------------------

CONFIG = """
timezone: Asia/Almaty
database: {db}
channels:
  hook: "json://127.0.0.1:1/hook"
users:
  - name: alice
    notify: [hook]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: 2030-01-01
        balance_check_every: 30d
      - id: alice-tele2
        operator: tele2
        number: "+77071234567"
        expires: 2030-02-01
        idle_limit: 90d
"""


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "--wide"], ["status", "--json"], ["health"], ["health", "--json"]],
    ids=" ".join,
)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=ON_POSTGRES)])
def test_status_and_health_print_the_same_through_either_path(
    argv: list[str],
    backend: str,
    write_config: WriteConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both runs at one instant: health prints its age in whole seconds.
    monkeypatch.setattr(SystemClock, "now", lambda self: NOW)
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    if backend == "postgresql":
        assert POSTGRES_URL is not None
        reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    config = write_config(CONFIG.format(db=url))
    args = ["-c", str(config)]
    assert main(["db", "upgrade", *args]) == 0
    assert main(["renew", "alice-kcell", "--until", "2030-02-01", *args]) == 0
    assert main(["balance", "alice-kcell", "1500.5", *args]) == 0
    database = open_database(url)
    with database.session() as session:
        session.add(Heartbeat(name=PLANNER, at=NOW - timedelta(seconds=5)))
        session.add(Event(sim_id="", at=NOW, kind=LOADED_KIND, detail=f"old {config}"))
        session.add(
            OutboxRow(
                dedup_key="k",
                channel="hook",
                sim_id="alice-tele2",
                kind="idle",
                status="sent",
                created_at=NOW,
                next_attempt_at=NOW,
                sent_at=NOW + timedelta(minutes=1),
            )
        )
    database.close()
    capsys.readouterr()

    reads, quick, orm = through_both([*argv, *args], monkeypatch, capsys)
    assert reads == ["answered"]  # the plain path did answer
    assert quick == orm
    assert "alice" in quick[1] or "healthy" in quick[1]


UNREACHABLE = [
    # Refused at once: nothing listens on port 1 of the loopback.
    "postgresql+psycopg://watcher:s3cret%2Fpw@127.0.0.1:1/watcher",
    "postgresql+psycopg://watcher:s3cret@127.0.0.1:1/watcher?connect_timeout=2",
]


@pytest.mark.parametrize("url", UNREACHABLE)
@pytest.mark.parametrize("argv", [["status"], ["health"]], ids=" ".join)
@pytest.mark.parametrize("slow", [False, True], ids=["refused", "as-if-timed-out"])
def test_a_server_that_cannot_be_reached_is_said_as_before(
    url: str,
    argv: list[str],
    slow: bool,
    write_config: WriteConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A refusal is quick: the SQLAlchemy path says it. A failure that took its time (here
    # any, with the bound at 0 s) is said by the plain path, in the same words, once.
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    if slow:
        monkeypatch.setattr(plain, "SLOW_CONNECT", 0.0)
    config = write_config(CONFIG.format(db=url))
    reads, quick, orm = through_both([*argv, "-c", str(config)], monkeypatch, capsys)
    assert reads == ["said it" if slow else "handed back"]
    assert quick == orm
    assert quick[0] == 1
    assert quick[2].startswith("error: cannot reach the database at 127.0.0.1:1: ")
    assert quick[2].count("\n") == 1
    assert "s3cret" not in quick[2]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_a_connect_timeout_is_waited_for_once_and_said_as_before(
    silent_server: int,
    write_config: WriteConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    url = f"postgresql+psycopg://w:s3cret@127.0.0.1:{silent_server}/w?connect_timeout=2"
    args = ["status", "-c", str(write_config(CONFIG.format(db=url)))]
    reads, quick, orm = through_both(args, monkeypatch, capsys)
    assert reads == ["said it"]  # and SQLAlchemy never tried
    assert quick == orm
    assert quick[2] == (
        f"error: cannot reach the database at 127.0.0.1:{silent_server}: "
        "connection timeout expired\n"
    )


@ON_POSTGRES
@pytest.mark.parametrize("argv", [["status"], ["health"]], ids=" ".join)
@pytest.mark.parametrize("slow", [False, True], ids=["at-once", "as-if-slowly"])
def test_a_missing_postgres_database_is_said_as_before(
    argv: list[str],
    slow: bool,
    write_config: WriteConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert POSTGRES_URL is not None
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    if slow:
        monkeypatch.setattr(plain, "SLOW_CONNECT", 0.0)
    parsed = make_url(POSTGRES_URL)
    url = parsed.set(password="s3cret", database=f"{parsed.database}_missing")
    config = write_config(CONFIG.format(db=url.render_as_string(hide_password=False)))
    _, quick, orm = through_both([*argv, "-c", str(config)], monkeypatch, capsys)
    assert quick == orm
    assert "_missing" in quick[2] and "s3cret" not in quick[2]


Outcome = tuple[int, str, str]  # exit code, stdout, stderr


def through_both(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], Outcome, Outcome]:
    """``watcher ARGS`` through the plain path (noting what it did), then with every
    plain read handed back to SQLAlchemy: (what the plain path did, both outcomes)."""
    reads: list[str] = []
    with monkeypatch.context() as patch:
        patch.setattr(plain, "read", counted(reads))
        quick = (main(args), *capsys.readouterr())
    with monkeypatch.context() as patch:
        patch.setattr(plain, "read", unsupported)
        orm = (main(args), *capsys.readouterr())
    return reads, quick, orm


def counted(calls: list[str]) -> typing.Callable[..., object]:
    """plain.read, noting whether it answered, handed back, or said an error itself."""
    real = plain.read

    def read(*args: typing.Any) -> object:
        try:
            answer = real(*args)
        except plain.Unsupported:
            calls.append("handed back")
            raise
        except Exception:
            calls.append("said it")
            raise
        calls.append("answered")
        return answer

    return read


def unsupported(*_args: object) -> typing.NoReturn:
    raise plain.Unsupported
