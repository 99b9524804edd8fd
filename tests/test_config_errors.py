"""What a person sees when the config is wrong, or right but useless: through the real CLI.

Errors never show a value after ``${VAR}`` substitution (it may be a bot token) nor a
full phone number; every problem is listed at once, but no more than a screenful; a
misspelt key gets a "did you mean"; settings that do nothing are warnings, not errors.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.conftest import WriteConfig
from watcher.app import App
from watcher.cli import main
from watcher.clock import FixedClock
from watcher.config import load_config, parse_config
from watcher.daemon import Daemon
from watcher.db import OutboxRow
from watcher.errors import ConfigError

NOW = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
MAIL_PASSWORD = "Hunter2-correct-horse"
PHONE = "+77011234567"
SECRETS = {"TG_TOKEN": TOKEN, "MAIL_PW": MAIL_PASSWORD, "PHONE": PHONE}


def check(path: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``watcher check -c PATH`` in-process with ``env`` set; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = {name: os.environ.get(name) for name in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", "-c", str(path)])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return code, out.getvalue(), err.getvalue()


def digits_of(text: str) -> str:
    """The text with spaces, dashes and brackets gone, so "+7 701 123 45 67" is found too."""
    return re.sub(r"[\s()\-]", "", text)


def assert_nothing_leaks(text: str) -> None:
    for secret in (TOKEN, MAIL_PASSWORD):
        assert secret.lower() not in text.lower(), text
        assert secret[:12] not in text, text
    assert PHONE.removeprefix("+") not in digits_of(text), text
    assert "{'" not in text, text  # no dumped mapping


# --- secrets and numbers -----------------------------------------------------------


def test_an_unknown_channel_built_from_a_token_is_shown_as_written(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        """
        channels:
          me: "console://"
        users:
          - name: alice
            notify: ["tgram://${TG_TOKEN}/1"]
        """
    )
    code, _, err = check(path, SECRETS)
    assert code == 2
    assert "users[0].notify[0]: unknown channel 'tgram://${TG_TOKEN}/1'" in err
    assert_nothing_leaks(err)


def test_a_channels_block_indented_under_remind_at_is_named_not_dumped(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        """
        remind_at:
          channels:
            tg: "tgram://${TG_TOKEN}/1"
            mail: "mailto://bob:${MAIL_PW}@example.com"
        users:
          - name: alice
            notify: [tg]
        """
    )
    code, _, err = check(path, SECRETS)
    assert code == 2
    assert "remind_at: expected a time of day as HH:MM, got a mapping" in err
    assert_nothing_leaks(err)


def test_a_phone_number_in_the_wrong_field_is_masked(write_config: WriteConfig) -> None:
    path = write_config(
        """
        channels: {me: "console://"}
        users:
          - name: alice
            notify: [me]
            sims:
              - id: "+77011234567"
                operator: kcell
                number: "+77011234567"
                expires: "+7 701 123 45 67"
                plan: ${PHONE}
                low_balance: ${PHONE}
        """
    )
    code, _, err = check(path, SECRETS)
    assert code == 2
    assert "users[0].sims[0].id" in err and "users[0].sims[0].expires" in err
    assert "+7 701 *** ** 67" in err
    assert_nothing_leaks(err)


def test_a_value_quoted_after_lowercasing_is_still_hidden(write_config: WriteConfig) -> None:
    path = write_config(
        """
        channels: {me: "console://"}
        users:
          - name: alice
            language: ${MAIL_PW}
            notify: [me]
        """
    )
    code, _, err = check(path, SECRETS)
    assert code == 2
    assert "users[0].language: unsupported language '${MAIL_PW}'" in err
    assert_nothing_leaks(err)


# The fuzz: a valid config with secrets in ${VAR}s, then random damage to it.

BASE: dict[str, object] = {
    "timezone": "Asia/Almaty",
    "remind_at": "10:00",
    "channels": {
        "tg": "tgram://${TG_TOKEN}/1",
        "mail": "mailto://bob:${MAIL_PW}@example.com",
        "me": "console://",
    },
    "admin": ["me"],
    "scraping": {"proxy": "http://bob:${MAIL_PW}@127.0.0.1:3128"},
    "sources": [
        {
            "id": "my-shop",
            "operator": "kcell",
            "url": "https://shop.example.com/offers?apikey=${TG_TOKEN}",
            "items": ".card",
            "fields": {"title": "h2", "link": "a@href"},
            "every": "6h",
        }
    ],
    "users": [
        {
            "name": "alice",
            "language": "ru",
            "notify": ["tg", "mail"],
            "quiet_hours": "22:00-08:00",
            "sims": [
                {
                    "id": "alice-kcell",
                    "operator": "kcell",
                    "number": "${PHONE}",
                    "expires": "2026-12-01",
                    "renew_every": "30d",
                },
                {
                    "id": "alice-tele2",
                    "operator": "tele2",
                    "number": "+7 701 123 45 67",
                    "balance_check_every": "14d",
                },
            ],
            "promotions": {"operators": ["kcell"], "digest": "daily"},
        }
    ],
}

SECRET_VALUES = [
    "${TG_TOKEN}",
    "tgram://${TG_TOKEN}/1",
    "mailto://bob:${MAIL_PW}@example.com",
    "${MAIL_PW}",
    "${PHONE}",
    "+7 701 123 45 67",
    "77011234567",
    "prefix-${TG_TOKEN}-suffix",
    "https://${TG_TOKEN}.example.com/",
    "http://bob:${MAIL_PW}@127.0.0.1:3128",
    "${PHONE}@example.com",
]
KEYS = ["remind_at", "expires", "id", "name", "number", "language", "timezone", "notify", "url"]


def _paths(node: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _get(node: object, path: tuple[object, ...]) -> object:
    for part in path:
        node = node[part]  # type: ignore[index]
    return node


@st.composite
def damaged_configs(draw: st.DrawFn) -> str:
    config = yaml.safe_load(yaml.safe_dump(BASE))  # a deep copy
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(config) if p]
        path = draw(st.sampled_from(paths))
        parent = _get(config, path[:-1])
        kind = draw(st.sampled_from(["secret", "block", "rename", "type", "delete", "number"]))
        if kind == "secret":  # a secret where something else belongs
            parent[path[-1]] = draw(st.sampled_from(SECRET_VALUES))  # type: ignore[index]
        elif kind == "block":  # a whole block moved (mis-indented) under another key
            parent[path[-1]] = yaml.safe_load(yaml.safe_dump(BASE["channels"]))  # type: ignore[index]
        elif kind == "type":
            parent[path[-1]] = draw(  # type: ignore[index]
                st.sampled_from([[], {}, 5, True, None, ["${TG_TOKEN}"], {"k": "${MAIL_PW}"}])
            )
        elif kind == "number":
            parent[path[-1]] = 77011234567  # type: ignore[index]
        elif isinstance(parent, dict) and kind == "rename":
            parent[draw(st.sampled_from(KEYS)) + draw(st.sampled_from(["", "s", "x"]))] = (
                parent.pop(path[-1])
            )
        elif isinstance(parent, dict | list):
            del parent[path[-1]]  # type: ignore[arg-type]
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    if draw(st.booleans()):  # and sometimes a line's indentation damaged in the text
        lines = text.splitlines()
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = " " * draw(st.sampled_from([2, 4])) + lines[index]
        text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_configs())
def test_no_error_ever_shows_a_secret_or_a_full_phone_number(text: str) -> None:
    try:
        parse_config(text, "cfg.yaml", SECRETS)
    except ConfigError as exc:
        for issue in exc.issues:
            assert_nothing_leaks(str(issue))
        assert_nothing_leaks(str(exc))


def test_the_fuzz_holds_through_the_cli(write_config: WriteConfig) -> None:
    """A sample of damaged files, as `watcher check` prints them."""
    seen: list[str] = []

    @settings(max_examples=25, deadline=None, database=None)
    @given(damaged_configs())
    def run(text: str) -> None:
        path = write_config(text)
        code, _out, err = check(path, SECRETS)
        assert code in (0, 2)
        assert "Traceback" not in err
        assert_nothing_leaks(err)  # errors and warnings; `out` is the valid file's own summary
        seen.append(err)

    run()
    assert any("error:" in err for err in seen)


def test_the_admin_message_for_an_invalid_reload_holds_no_secret(
    write_config: WriteConfig, db_url: str
) -> None:
    good = """
        channels:
          me: "console://"
          ops: "json://127.0.0.1:9/ops"
        admin: [ops]
        users:
          - name: alice
            notify: [me]
            sims:
              - {id: a, operator: kcell, number: "+77071234567", expires: 2026-12-20}
        """
    env = {"WATCHER_DATABASE_URL": db_url, **SECRETS}
    app = App(load_config(write_config(good), env), clock=FixedClock(NOW), env=env)
    try:
        app.sync()
        write_config(
            good.replace("notify: [me]", 'notify: ["tgram://${TG_TOKEN}/1"]').replace(
                "expires: 2026-12-20", 'expires: "${PHONE}"'
            )
        )
        assert app.reload_if_changed() is False
        with app.database.session() as session:
            rows = list(session.scalars(select(OutboxRow).where(OutboxRow.kind == "admin")))
        assert len(rows) == 1
        body = rows[0].body or ""
        assert "config file is invalid" in (rows[0].title or "")
        assert "tgram://${TG_TOKEN}/1" in body
        assert_nothing_leaks(body)
    finally:
        app.close()


# --- every problem at once, but a screenful --------------------------------------


def test_an_unset_variable_is_listed_with_every_other_problem(write_config: WriteConfig) -> None:
    path = write_config(
        """
        channels:
          tg: "tgram://${NOT_SET_TOKEN}/1"
          me: "console://"
        users:
          - name: alice
            notify: [me, tg, nosuch]
            sims:
              - id: a
                operator: kcell
                number: "${NOT_SET_PHONE}"
                expirs: 2026-12-01
        """
    )
    code, _, err = check(path)
    assert code == 2
    lines = err.splitlines()
    assert "channels.tg: environment variable NOT_SET_TOKEN is not set" in err
    assert "users[0].sims[0].number: environment variable NOT_SET_PHONE is not set" in err
    assert "users[0].sims[0].expirs: unknown setting; did you mean `expires`?" in err
    assert "users[0].notify[2]: unknown channel 'nosuch'" in err
    # What the empty values broke is not reported on top.
    assert not any("expected a phone number" in line for line in lines), err
    assert not any("is not a notification URL" in line for line in lines), err
    assert len(lines) == 4, err


def test_a_hundred_thousand_unknown_keys_print_thirty_lines_and_a_count(
    write_config: WriteConfig,
) -> None:
    keys = "\n".join(f"key{i}: 1" for i in range(100_000))
    path = write_config("users: []\n" + keys)
    code, _, err = check(path)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 31
    assert lines[0].endswith("key0: unknown setting (check the spelling)")
    assert lines[-1] == "error: ... and 99970 more problems"


@pytest.mark.parametrize(
    ("wrong", "right", "where"),
    [
        ("timezon: UTC", "timezone", "timezon"),
        ("remindat: '10:00'", "remind_at", "remindat"),
        ("users: [{name: a, notify: [me], langauge: ru}]", "language", "users[0].langauge"),
        (
            "users: [{name: a, notify: [me], sims: [{id: a, operator: k, number: '+77011234567',"
            " expiers: 2026-12-01}]}]",
            "expires",
            "users[0].sims[0].expiers",
        ),
        ("users: [{name: a, notify: [me], promotions: {digets: daily}}]", "digest", "digest"),
        ("scraping: {user_agnet: x}", "user_agent", "scraping.user_agnet"),
        ("delivery: {workres: 8}", "workers", "delivery.workres"),
    ],
)
def test_a_misspelt_key_gets_a_did_you_mean(
    write_config: WriteConfig, wrong: str, right: str, where: str
) -> None:
    path = write_config(f"channels: {{me: 'console://'}}\n{wrong}\n")
    code, _, err = check(path)
    assert code == 2
    assert f"did you mean `{right}`?" in err, err
    assert where in err


def test_a_misspelt_operator_override_key_is_reported_once(write_config: WriteConfig) -> None:
    path = write_config("operators:\n  kcell:\n    renw: x\nusers: []\n")
    code, _, err = check(path)
    assert code == 2
    assert err.splitlines() == [
        f"error: {path}: operators.kcell.renw: unknown setting; did you mean `renew`?"
    ]


def test_a_key_like_nothing_known_gets_no_guess(write_config: WriteConfig) -> None:
    path = write_config("channels: {me: 'console://'}\nzzzzzz: 1\n")
    code, _, err = check(path)
    assert code == 2
    assert "zzzzzz: unknown setting (check the spelling)" in err
    assert "did you mean" not in err


# --- settings that do nothing ------------------------------------------------------

USELESS = """
channels:
  me: "console://"
users:
  - name: alice
    notify: [me]
    sims:
      - id: idle-only
        operator: kcell
        number: "+77011234567"
        expires: 2030-12-01
        idle_limit: 90d
      - id: nothing
        operator: kcell
        number: "+77011234568"
      - id: silent
        operator: kcell
        number: "+77011234569"
        expires: 2030-12-01
        remind_before: []
        remind_after: []
    promotions:
      operators: []
"""


def test_check_warns_of_settings_that_do_nothing_and_still_passes(
    write_config: WriteConfig,
) -> None:
    code, out, err = check(write_config(USELESS))
    assert code == 0
    assert "OK" in out
    warnings = err.splitlines()
    assert all(line.startswith("warning: ") for line in warnings), err
    assert any(
        "users[0].sims[0].idle_limit: does nothing without last_paid_activity" in w
        for w in warnings
    ), err
    assert any("users[0].sims[1]: nothing to remind of" in w for w in warnings), err
    assert any("users[0].sims[2].expires: remind_before and remind_after" in w for w in warnings)
    assert any("users[0].promotions: no promotion source serves" in w for w in warnings), err
    assert len(warnings) == 4, err


def test_check_warns_of_a_file_with_no_users(write_config: WriteConfig) -> None:
    path = write_config("channels: {me: 'console://'}\n")
    code, _, err = check(path)
    assert code == 0
    assert err.splitlines() == [
        f"warning: {path}: users: no users: nobody will be reminded of anything"
    ]


def test_a_config_that_does_something_has_no_warnings(write_config: WriteConfig) -> None:
    path = write_config(
        """
        channels: {me: "console://"}
        sources:
          - id: my-shop
            operator: kcell
            url: "https://shop.example.com/offers"
            items: ".card"
            fields: {title: "h2", link: "a@href"}
        users:
          - name: alice
            notify: [me]
            sims:
              - {id: a, operator: kcell, number: "+77011234567", expires: 2026-12-01}
              - {id: b, operator: kcell, number: "+77011234568", low_balance: 500}
              - id: c
                operator: kcell
                number: "+77011234569"
                idle_limit: 90d
                last_paid_activity: 2026-10-01
            promotions: {}
        """
    )
    code, _, err = check(path)
    assert code == 0, err
    assert err == ""


def test_the_daemon_logs_the_warnings_at_start(
    write_config: WriteConfig, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"WATCHER_DATABASE_URL": db_url}
    # A daemon's real clock; nothing in USELESS is due for years, so no job sends (a plan
    # job that wakes delivery while the scheduler shuts down can deadlock the stop).
    app = App(load_config(write_config(USELESS), env), env=env)
    daemon = Daemon(app, grace=30)
    try:
        with caplog.at_level(logging.WARNING, logger="watcher"):
            daemon.start()
    finally:
        assert daemon.stop()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("users[0].sims[1]: nothing to remind of" in line for line in logged), logged


def test_a_reload_logs_the_new_configs_warnings(
    write_config: WriteConfig, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"WATCHER_DATABASE_URL": db_url}
    app = App(load_config(write_config(USELESS), env), clock=FixedClock(NOW), env=env)
    try:
        app.sync()
        write_config(USELESS.replace("idle_limit: 90d", "idle_limit: 60d"))
        with caplog.at_level(logging.WARNING, logger="watcher"):
            assert app.reload_if_changed() is True
    finally:
        app.close()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("users[0].sims[0].idle_limit: does nothing" in line for line in logged), logged


def test_many_variables_and_many_problems_are_cleaned_quickly() -> None:
    env = {f"V{i}": f"secret-value-{i:05d}-xyz" for i in range(1000)}
    names = ", ".join(f"'${{V{i}}}'" for i in range(1000))
    text = f"admin: [{names}]\n" + "\n".join(f"k{i}: 1" for i in range(50_000))
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", env)
    assert time.perf_counter() - started < 15  # under a second here; the machine is shared
    assert len(caught.value.issues) == 51_000
    assert str(caught.value.issues[-1]) == (
        "cfg.yaml: admin[999]: unknown channel '${V999}' (no channels are defined)"
    )
    assert "secret-value" not in "\n".join(map(str, caught.value.issues))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("got '+77011234567'", "got '+7 701 *** ** 67'"),
        ("got '+7 (701) 123-45-67'", "got '+7 701 *** ** 67'"),
        ("got '87011234567'", "got '+7 701 *** ** 67'"),
        ("got 7011234567", "got +7 701 *** ** 67"),
        # What is not a phone number stays as it is.
        ("2026-12-01 moved by 1m is out of range", "2026-12-01 moved by 1m is out of range"),
        ("expected HH:MM, got '25:00'", "expected HH:MM, got '25:00'"),
        ("at most 64 characters", "at most 64 characters"),
        ("line 1234, column 56", "line 1234, column 56"),
        ("a 5000-digit number: " + "9" * 40, "a 5000-digit number: " + "9" * 40),
    ],
)
def test_phone_numbers_are_masked_in_any_issue_and_nothing_else_is(text: str, shown: str) -> None:
    from watcher.config_diagnostics import Redactor

    assert Redactor().clean(text) == shown


def test_the_admin_message_lists_thirty_problems_and_a_count(
    write_config: WriteConfig, db_url: str
) -> None:
    env = {"WATCHER_DATABASE_URL": db_url}
    good = "channels: {ops: 'json://127.0.0.1:9/ops'}\nadmin: [ops]\nusers: []\n"
    app = App(load_config(write_config(good), env), clock=FixedClock(NOW), env=env)
    try:
        write_config(good + "\n".join(f"key{i}: 1" for i in range(100)))
        assert app.reload_if_changed() is False
        with app.database.session() as session:
            body = session.scalars(select(OutboxRow.body).where(OutboxRow.kind == "admin")).one()
    finally:
        app.close()
    assert body is not None
    assert body.count("unknown setting") == 30
    assert body.endswith("... and 70 more problems")
