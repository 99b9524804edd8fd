"""The ``watcher`` command, called in-process with real files and a real database."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import WriteConfig
from tests.servers import WebhookReceiver
from watcher.cli import main
from watcher.config import load_config
from watcher.db import Database, OutboxRow, ScheduleRow
from watcher.reminders.slots import current_slots

TODAY = date.today()  # the CLI uses the real clock; dates are relative to it


@pytest.fixture
def config_file(write_config: WriteConfig, db_url: str, webhook: WebhookReceiver) -> Path:
    return write_config(
        f"""
timezone: UTC
database: {db_url}
remind_at: "00:00"
channels:
  hook: "{webhook.url("s3cr3t-token-123")}"
  dead: "json://127.0.0.1:1/nothing-listens"
users:
  - name: alice
    notify: [hook]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: {TODAY - timedelta(days=2)}
        remind_after: [1d, 3d]
        balance_check_every: 14d
        low_balance: 1500
      - id: alice-norenew
        operator: tele2
        number: "+77071234567"
        expires: {TODAY + timedelta(days=20)}
"""
    )


def run(*argv: str) -> int:
    return main(list(argv))


def test_check_reports_ok_with_masked_urls(config_file: Path, capsys) -> None:
    assert run("check", "-c", str(config_file)) == 0
    out = capsys.readouterr().out
    assert f"{config_file}: OK — 1 user, 2 SIMs, 2 channels" in out  # English plurals
    assert "s3cr3t-token-123" not in out
    assert "+77011234567" not in out
    assert "+7 701 *** ** 67" in out


def test_check_shows_promotion_subscriptions_and_operators_nobody_watches(
    config_file: Path, capsys
) -> None:
    text = config_file.read_text(encoding="utf-8")
    text = text.replace(
        "    notify: [hook]\n", "    notify: [hook]\n    promotions: {digest: daily}\n"
    )
    config_file.write_text(text, encoding="utf-8")
    assert run("check", "-c", str(config_file)) == 0
    out = capsys.readouterr().out
    assert "alice: promotions (new; daily) from kcell-promo" in out
    assert "note: alice: no promotion source watches tele2" in out


def test_check_on_a_bad_config_exits_2_naming_every_field(
    write_config: WriteConfig, capsys
) -> None:
    bad = write_config(
        "channels: {c: 'console://'}\nusers:\n  - name: a\n    notify: [c, nope]\n"
        "    sims:\n"
        "      - {id: x, operator: kcell, number: '+77011234567', expires: 2026-13-45}\n",
        name="bad.yaml",
    )
    assert run("check", "-c", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: users[0].sims[0].expires: expected a date" in err
    assert f"error: {bad}: users[0].notify[1]: unknown channel 'nope'" in err
    assert "Traceback" not in err


def test_config_defaults_to_the_environment_variable(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("WATCHER_CONFIG", str(config_file))
    assert run("check") == 0
    assert str(config_file) in capsys.readouterr().out


def test_once_delivers_the_overdue_nag_and_renew_stops_the_nags(
    config_file: Path, database: Database, webhook: WebhookReceiver, capsys
) -> None:
    assert run("run", "--once", "-c", str(config_file)) == 0
    assert len(webhook.received) == 2  # the overdue nag and the first balance check
    assert run("renew", "alice-kcell", "--for", "30d", "-c", str(config_file)) == 0
    out = capsys.readouterr().out
    assert f"renewed until {TODAY + timedelta(days=30)}" in out
    with database.session() as session:
        old_targets = session.scalars(
            current_slots().where(
                ScheduleRow.sim_id == "alice-kcell",
                ScheduleRow.kind == "expiry",
                ScheduleRow.target != TODAY + timedelta(days=30),
            )
        ).all()
    assert old_targets == []
    assert run("status", "--json", "-c", str(config_file)) == 0
    rows = {row["sim"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["alice-kcell"]["expires"] == str(TODAY + timedelta(days=30))
    assert rows["alice-kcell"]["days_left"] == 30
    assert rows["alice-kcell"]["number"] == "+7 701 *** ** 67"


def test_renew_without_a_period_says_what_to_pass(config_file: Path, capsys) -> None:
    assert run("renew", "alice-norenew", "-c", str(config_file)) == 2
    err = capsys.readouterr().err
    assert "has no renew_every" in err
    assert "--for" in err


def test_renew_until_sets_the_date(config_file: Path, capsys) -> None:
    until = TODAY + timedelta(days=90)
    assert run("renew", "alice-norenew", "--until", str(until), "-c", str(config_file)) == 0
    assert f"renewed until {until}" in capsys.readouterr().out


def test_unknown_sim_lists_the_known_ones(config_file: Path, capsys) -> None:
    assert run("renew", "nosuch", "--for", "30d", "-c", str(config_file)) == 2
    assert "known: alice-kcell, alice-norenew" in capsys.readouterr().err


def test_low_balance_is_recorded_and_alerted(
    config_file: Path, database: Database, webhook: WebhookReceiver, capsys
) -> None:
    assert run("balance", "alice-kcell", "1 200,50", "-c", str(config_file)) == 0
    assert "below your low_balance threshold" in capsys.readouterr().out
    assert run("run", "--once", "-c", str(config_file)) == 0
    low = [r.payload for r in webhook.received if r.payload["title"].endswith("low balance")]
    assert len(low) == 1
    assert "1,200.50, below your threshold of 1,500" in low[0]["message"]
    with database.session() as session:
        kinds = set(session.scalars(select(OutboxRow.kind)))
    assert "low_balance" in kinds
    # Still low: said on the console, but no second alert for the same episode.
    assert run("balance", "alice-kcell", "1100", "-c", str(config_file)) == 0
    assert "still below your low_balance threshold 1500.00; already alerted" in (
        capsys.readouterr().out
    )
    assert run("run", "--once", "-c", str(config_file)) == 0
    assert len([r for r in webhook.received if r.payload["title"].endswith("low balance")]) == 1


def test_notify_test_reports_which_channel_failed(config_file: Path, capsys) -> None:
    assert run("notify-test", "-c", str(config_file)) == 1
    out = capsys.readouterr().out
    assert "ok      hook" in out
    assert "FAILED  dead" in out
    assert "s3cr3t-token-123" not in out


def test_notify_test_of_one_channel(config_file: Path, webhook: WebhookReceiver, capsys) -> None:
    assert run("notify-test", "hook", "-c", str(config_file)) == 0
    assert len(webhook.received) == 1
    assert run("notify-test", "nope", "-c", str(config_file)) == 2


def test_notify_test_speaks_the_language_of_each_channels_users(
    write_config: WriteConfig, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    path = write_config(
        f"""
database: sqlite:///{tmp_path / "w.db"}
channels:
  ru-hook: "{webhook.url("ru")}"
  kk-hook: "{webhook.url("kk")}"
  shared: "{webhook.url("shared")}"
  admin-hook: "{webhook.url("admin")}"
admin: [admin-hook]
users:
  - {{name: en-user, notify: [kk-hook]}}
  - {{name: bota, language: kk, notify: [kk-hook, shared]}}
  - {{name: ivan, language: ru, notify: [ru-hook, shared]}}
"""
    )
    assert run("notify-test", "-c", str(path)) == 0
    got = {
        r.path.rsplit("/", 1)[-1]: (r.payload["title"], r.payload["message"])
        for r in webhook.received
    }
    ru_title = "SIM Watcher: тестовое уведомление"
    kk_title = "SIM Watcher: сынақ хабарламасы"
    en_title = "SIM Watcher: test notification"
    assert got["ru"][0] == ru_title
    assert got["admin"][0] == en_title  # admin messages are English
    # A channel users of several languages share: one message, in each of theirs.
    assert got["kk"][0] == en_title
    assert "сынақ" in got["kk"][1] and "test notification" in got["kk"][1]
    assert got["shared"][0] == kk_title
    assert "сынақ" in got["shared"][1] and "тестовое" in got["shared"][1]
    assert "test notification" not in got["shared"][1]


def test_init_writes_a_valid_starter_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    path = tmp_path / "new.yaml"
    assert run("init", "-c", str(path)) == 0
    assert load_config(path, {}).config.users
    assert run("init", "-c", str(path)) == 2
    assert "--force" in capsys.readouterr().err


def test_health_is_unhealthy_before_the_first_planning_pass(config_file: Path) -> None:
    assert run("health", "-c", str(config_file)) == 1
    assert run("run", "--once", "-c", str(config_file)) == 0
    assert run("health", "-c", str(config_file)) == 0


def test_check_reports_an_invalid_operator_override_with_its_field_path(
    write_config: WriteConfig, capsys
) -> None:
    bad = write_config(
        "channels: {c: 'console://'}\n"
        "operators:\n  kcell:\n    renew: {en: 'Dial {nosuch} to top up.'}\n"
        "users:\n  - name: a\n    notify: [c]\n    sims:\n"
        "      - {id: x, operator: kcell, number: '+77011234567', expires: 2026-12-20}\n",
        name="bad.yaml",
    )
    assert run("check", "-c", str(bad)) == 2
    captured = capsys.readouterr()
    assert "OK" not in captured.out
    assert f"error: {bad}: operators.kcell.renew.en: {{nosuch}} names no code" in captured.err


def test_check_reports_an_operator_id_that_is_not_lowercase(tmp_path: Path, capsys) -> None:
    # Only the catalogue checks operator ids: the issue must not be lost on the way.
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: {c: 'console://'}\noperators:\n  Izi: {name: Izi}\n", "utf-8")
    assert run("check", "-c", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: operators.Izi: an operator id is lowercase" in err
