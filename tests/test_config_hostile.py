"""Hostile and careless config files: each is one line of error and exit 2, within bounds.

Every case runs the real ``watcher check`` in a subprocess with its address space
capped, so a case that blows up memory fails here rather than taking the machine.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.conftest import SYNC_AT, MakeApp, WriteConfig
from tests.servers import WebhookReceiver
from watcher import yamlload
from watcher.cli import main as cli_main
from watcher.clock import FixedClock
from watcher.config import MAX_CONFIG_BYTES, parse_config
from watcher.daemon import run_once
from watcher.db import Database, OutboxRow, SimRow, open_database
from watcher.errors import ConfigError
from watcher.reminders.planner import plan_due
from watcher.reminders.status import sim_statuses
from watcher.sync import sync_config

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 600 * 1024 * 1024  # address space, not RSS: imports alone take ~300 MB
TIME_LIMIT = 30.0  # the subprocess is killed after this; a pass takes about a second


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def check(path: Path | str) -> tuple[int, str, float]:
    """``watcher check -c PATH`` as a user runs it: (exit code, stderr, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=TIME_LIMIT,
        preexec_fn=_limit_memory,
    )
    return result.returncode, result.stderr, time.monotonic() - started


def assert_one_line_error(path: Path | str, *expected: str) -> None:
    code, err, seconds = check(path)
    assert "Traceback" not in err, err[-2000:]
    assert code == 2, err[-2000:]
    assert err.count("\n") == 1 and err.startswith("error: "), err[-2000:]
    for text in expected:
        assert text in err
    assert seconds < 15, f"took {seconds:.1f} s"


def _bomb(levels: int, width: int) -> str:
    """A "billion laughs": ``width ** levels`` leaves from a file of a few hundred bytes."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"users: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int) -> str:
    """The same through merge keys, which PyYAML copies into each mapping."""
    lines = ["m0: &m0 {k0: v, k1: v, k2: v, k3: v, k4: v, k5: v, k6: v, k7: v, k8: v, k9: v}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "]}")
    lines.append(f"scraping: *m{levels - 1}")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias-in-own-list": ("users: &u [*u]\n", "line 1", "a YAML alias refers to itself"),
    "alias-in-own-mapping": ("channels: &c {x: *c}\n", "line 1", "a YAML alias refers to itself"),
    "alias-deep-inside": (
        "channels: {a: json://x}\nusers: &u\n  - name: a\n    notify: [a]\n    sims: *u\n",
        "line 5",
        "a YAML alias refers to itself",
    ),
    "alias-through-another": ("admin: &a [&b [*a]]\n", "a YAML alias refers to itself"),
    "merge-of-itself": ("scraping: &s {<<: *s}\n", "a YAML alias refers to itself"),
    "5000-digit-remind_at": ("remind_at: " + "9" * 5000 + "\n", "line 1", "5,000 digits"),
    "5000-digit-negative": ("users: [-" + "9" * 5000 + "]\n", "digits is too long"),
    "huge-hex-number": ("timezone: 0x" + "f" * 5000 + "\n", "digits is too long"),
    "100000-deep-lists": ("users: " + "[" * 100_000 + "]" * 100_000 + "\n", "nesting depth"),
    "5000-deep-mappings": ("users: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "too deeply"),
    "billion-laughs": (_bomb(10, 10), "more than 400,000 values"),
    "two-to-the-thirty": (_bomb(30, 2), "more than 400,000 values"),
    "merge-key-bomb": (_merge_bomb(9), "more than 400,000 values"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_yaml_is_one_line_exit_2_in_bounds(name: str, tmp_path: Path) -> None:
    text, *expected = HOSTILE[name]
    path = tmp_path / "watcher.yaml"
    path.write_text(text, encoding="utf-8")
    assert_one_line_error(path, str(path), *expected)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    os.mkfifo(path)
    assert_one_line_error(path, "not a regular file (a FIFO)")


def test_dev_zero_is_refused_not_read_forever() -> None:
    assert_one_line_error("/dev/zero", "/dev/zero: not a regular file (a device)")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path, "not a regular file (a directory)")


def test_a_file_past_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    with path.open("w") as file:
        file.write("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    assert_one_line_error(path, "larger than 4 MiB")


# --- the loader on its own: fast enough to test whole classes ---------------------------


def test_a_bomb_is_refused_within_a_second_in_process() -> None:
    for text in (_bomb(10, 10), _bomb(30, 2), _merge_bomb(9)):
        started = time.perf_counter()
        with pytest.raises(yaml.YAMLError, match="more than 400,000 values"):
            yamlload.load(text)
        assert time.perf_counter() - started < 1.0


def test_aliases_within_the_bound_still_work() -> None:
    text = "base: &b [7d, 3d]\nlater: *b\nmerged: &m {a: 1}\nother: {<<: *m, b: 2}\n"
    assert yamlload.load(text) == {
        "base": ["7d", "3d"],
        "later": ["7d", "3d"],
        "merged": {"a": 1},
        "other": {"a": 1, "b": 2},
    }


def test_dates_stay_text_and_ordinary_numbers_load() -> None:
    assert yamlload.load("d: 2026-12-01\nn: 77011234567\nx: 0x1f\ns: 1:30\n") == {
        "d": "2026-12-01",
        "n": 77011234567,
        "x": 31,
        "s": 90,
    }


NAMES = st.sampled_from(["a", "b", "c"])


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> str:
    """Flow YAML with anchors anywhere and aliases to any name: defined, open or not."""
    anchor = f"&{draw(NAMES)} " if draw(st.booleans()) else ""
    kinds = ["scalar", "alias"] + (["list", "map"] if depth < 4 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "scalar":
        return anchor + draw(st.sampled_from(["x", "7d", "12", "2026-01-01", "9" * 4400]))
    if kind == "alias":
        return f"*{draw(NAMES)}"
    items = draw(st.lists(_documents(depth + 1), max_size=4))
    if kind == "list":
        return anchor + "[" + ", ".join(items) + "]"
    return anchor + "{" + ", ".join(f"k{i}: {item}" for i, item in enumerate(items)) + "}"


def _is_a_tree(value: object, path: tuple[int, ...] = ()) -> bool:
    if id(value) in path:
        return False
    children: list[object] = []
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    return all(_is_a_tree(child, (*path, id(value))) for child in children)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_any_anchor_and_alias_pattern_loads_as_a_tree_or_is_a_yaml_error(text: str) -> None:
    try:
        data = yamlload.load(text)
    except yaml.YAMLError:
        return
    assert _is_a_tree(data)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["users", "remind_at", "timezone", "channels"]),
    st.sampled_from(["", "-", "+", "0x", "0o", "0b"]),
    st.integers(min_value=1, max_value=6000),
)
def test_a_number_of_any_length_in_any_setting_is_one_issue(
    key: str, prefix: str, digits: int
) -> None:
    digit = "1" if prefix in ("0b",) else "7"
    text = f"{key}: {prefix}{digit * digits}\n"
    try:
        parse_config(text, "watcher.yaml", {})
    except ConfigError as exc:
        assert exc.issues
        assert all("\n" not in str(issue) for issue in exc.issues)


# --- dates at the ends of the calendar ---------------------------------------------------


def _sim_config(
    *,
    expires: date | None = None,
    checked: date | None = None,
    paid: date | None = None,
    zone: str = "Asia/Almaty",
    remind_at: str = "10:00",
    before: str = "[7d, 3d, 1d, 0d]",
    after: str = "[1d, 3d, 7d]",
) -> str:
    lines = [
        f"timezone: {zone}",
        f'remind_at: "{remind_at}"',
        'channels: {a: "json://127.0.0.1:9/a", boss: "json://127.0.0.1:9/admin"}',
        "admin: [boss]",
        "users:",
        "  - name: alice",
        "    notify: [a]",
        "    sims:",
        "      - id: s1",
        "        operator: kcell",
        '        number: "+77011234567"',
        f"        remind_before: {before}",
        f"        remind_after: {after}",
    ]
    if expires is not None:
        lines.append(f"        expires: {expires.isoformat()}")
    if checked is not None:
        lines += ["        balance_check_every: 1mo", f"        last_balance_check: {checked}"]
    if paid is not None:
        lines += ["        idle_limit: 90d", f"        last_paid_activity: {paid}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"expires": date(9999, 12, 31)}, "users[0].sims[0].expires"),
        ({"expires": date(1, 1, 1)}, "users[0].sims[0].expires"),
        ({"checked": date(9999, 12, 15)}, "users[0].sims[0].last_balance_check"),
        ({"paid": date(9999, 11, 1)}, "users[0].sims[0].last_paid_activity"),
    ],
)
def test_a_date_whose_reminders_leave_the_calendar_is_refused_by_check(
    dates: dict[str, date], field: str, tmp_path: Path
) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(_sim_config(**dates), encoding="utf-8")
    assert_one_line_error(path, f"{path}: {field}: ", "outside the calendar")


@pytest.fixture(scope="module")
def shared_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One SQLite database for every example of the property below (migrating is slow)."""
    db = open_database(f"sqlite:///{tmp_path_factory.mktemp('dates') / 'watcher.db'}")
    yield db
    db.close()


DAYS = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
EDGE_DAYS = st.one_of(
    DAYS,
    st.integers(0, 400).map(lambda n: date(1, 1, 1) + timedelta(days=n)),
    st.integers(0, 400).map(lambda n: date(9999, 12, 31) - timedelta(days=n)),
)
OFFSETS = st.lists(
    st.builds(
        "{}{}".format,
        st.one_of(st.integers(0, 9999), st.integers(0, 3)),
        st.sampled_from(["d", "w", "mo"]),
    ),
    max_size=4,
    unique=True,
).map(lambda items: "[" + ", ".join(items) + "]")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expires=st.none() | EDGE_DAYS,
    checked=st.none() | EDGE_DAYS,
    paid=st.none() | EDGE_DAYS,
    zone=st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/Los_Angeles"]),
    remind_at=st.sampled_from(["00:00", "10:00", "23:59"]),
    before=OFFSETS,
    after=OFFSETS,
)
def test_any_date_either_loads_and_plans_or_is_one_config_issue(
    shared_database: Database,
    expires: date | None,
    checked: date | None,
    paid: date | None,
    zone: str,
    remind_at: str,
    before: str,
    after: str,
) -> None:
    text = _sim_config(
        expires=expires,
        checked=checked,
        paid=paid,
        zone=zone,
        remind_at=remind_at,
        before=before,
        after=after,
    )
    try:
        loaded = parse_config(text, "watcher.yaml", {})
    except ConfigError as exc:
        assert exc.issues and all("\n" not in str(issue) for issue in exc.issues)
        return
    now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    with shared_database.session() as session:
        report = sync_config(session, loaded, now)
    assert report.unplannable == 0
    with shared_database.session() as session:
        plan_due(session, now + timedelta(days=400))
        assert len(sim_statuses(session, now)) == 1


def _two_sims(hook: str, *, with_s2: bool) -> str:
    sims = """
      - id: s1
        operator: kcell
        number: "+77011234567"
        expires: 2026-12-20
        balance_check_every: 1mo
"""
    if with_s2:
        sims += """
      - id: s2
        operator: tele2
        number: "+77071234567"
        expires: 2026-11-27
"""
    return f"""
timezone: Asia/Almaty
remind_at: "00:00"
channels: {{hook: "{hook}"}}
admin: [hook]
users:
  - name: alice
    notify: [hook]
    sims:{sims}"""


def test_a_sim_whose_stored_dates_leave_the_calendar_is_paused_and_the_others_go_on(
    make_app: MakeApp,
    write_config: WriteConfig,
    webhook: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FixedClock(SYNC_AT)
    hook = webhook.url("s3cr3t-token")
    make_app(write_config(_two_sims(hook, with_s2=False)), clock=clock).sync()
    first = make_app(write_config(_two_sims(hook, with_s2=False)), clock=clock)
    with first.database.session() as session:
        # What `watcher renew --until 9999-12-31` recorded before it was refused.
        row = session.get(SimRow, "s1")
        assert row is not None
        row.expires = date(9999, 12, 31)
        row.last_balance_check = date(9999, 12, 20)

    app = make_app(write_config(_two_sims(hook, with_s2=True)), clock=clock)
    with caplog.at_level(logging.ERROR):
        assert run_once(app) == 0  # neither raises nor stops: s2 is planned and sent
        assert run_once(app) == 0  # again: the admin is not told twice

    titles = [request.payload["title"] for request in webhook.received]
    assert sum("s2" in title or "expires in 2 days" in title for title in titles) == 1
    paused = [r.payload for r in webhook.received if "paused" in r.payload["title"]]
    assert len(paused) == 1
    assert "SIM s1 (+7 701 *** ** 67)" in paused[0]["message"]
    assert "9999-12-31" in paused[0]["message"]
    with app.database.session() as session:
        kinds = session.execute(select(OutboxRow.sim_id, OutboxRow.kind)).all()
    assert ("s1", "expiry") not in kinds
    assert ("s2", "expiry") in kinds
    with app.database.session() as session:  # what `watcher status` shows
        statuses = {status.sim_id: status for status in sim_statuses(session, clock.now())}
    assert statuses["s1"].expires == date(9999, 12, 31)
    assert statuses["s1"].next_balance_check is None  # 9999-12-20 + 1m is past the calendar
    assert "s1 (+7 701 *** ** 67): reminders paused" in caplog.text
    everything = caplog.text + json.dumps([r.payload for r in webhook.received])
    assert "+77011234567" not in everything
    assert "s3cr3t-token" not in caplog.text


def test_renewing_past_the_calendar_is_a_one_line_error_that_changes_nothing(
    write_config: WriteConfig, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(_two_sims("json://127.0.0.1:9/x", with_s2=False) + f"database: {db_url}\n")
    config = ["-c", str(path)]

    def expires() -> date | None:
        database = open_database(db_url)
        try:
            with database.session() as session:
                row = session.get(SimRow, "s1")
                return None if row is None else row.expires
        finally:
            database.close()

    # 9999-12-31 itself: its reminders a day after cannot be placed.
    assert cli_main(["renew", "s1", "--until", "9999-12-31", *config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the calendar" in err, err
    assert expires() == date(2026, 12, 20)
    # The last date that works, then a month on from it.
    assert cli_main(["renew", "s1", "--until", "9999-12-24", *config]) == 0
    assert cli_main(["renew", "s1", "--for", "1mo", *config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of range" in err, err
    assert expires() == date(9999, 12, 24)


def test_without_libyaml_the_python_parser_gives_the_same_answers() -> None:
    code = """
import sys
sys.modules["yaml._yaml"] = None  # as if PyYAML were built without libyaml
import yaml
from watcher import yamlload
assert "CParser" not in [c.__name__ for c in yamlload._Loader.__mro__]
assert yamlload.load("a: &a [1, 2]\\nb: *a\\nd: 2026-01-01\\n") == {
    "a": [1, 2], "b": [1, 2], "d": "2026-01-01"
}
for text, problem in [("users: &u [*u]", "refers to itself"), ("n: " + "9" * 200, "too long")]:
    try:
        yamlload.load(text)
    except yaml.YAMLError as exc:
        assert problem in str(exc), exc
    else:
        raise AssertionError(text)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
