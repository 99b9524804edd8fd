"""Reloading an edited config: all of it takes effect, or none of it does."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import MakeApp, WriteConfig
from watcher.app import App
from watcher.clock import FixedClock
from watcher.db import OutboxRow, SimRow

NOW = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)

CONFIG = """
timezone: Asia/Almaty
channels:
  me: "json://127.0.0.1:9/me"
  ops: "json://127.0.0.1:9/ops"
admin: [ops]
{operators}
users:
  - name: alice
    notify: [me]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: {expires}
"""

BAD_OVERRIDE = "operators:\n  kcell:\n    renew: {en: 'Dial {nosuch} to top up.'}"


@pytest.fixture
def write(write_config: WriteConfig) -> WriteConfig:
    """Write (or rewrite) the config; each write is a new version of the file."""

    def write(*, expires: str = "2026-12-20", operators: str = "") -> Path:
        return write_config(CONFIG.format(expires=expires, operators=operators))

    return write


def admin_messages(app: App) -> list[OutboxRow]:
    with app.database.session() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.kind == "admin")))


def stored_expiry(app: App) -> object:
    with app.database.session() as session:
        sim = session.get(SimRow, "alice-kcell")
        assert sim is not None
        return sim.expires


def test_an_invalid_operator_override_keeps_the_previous_config_in_force(
    write: WriteConfig, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(write(), clock=FixedClock(NOW))
    app.sync()
    before = app.loaded
    write(expires="2027-01-31", operators=BAD_OVERRIDE)
    with caplog.at_level(logging.ERROR):
        assert app.reload_if_changed() is False
    assert app.loaded is before
    assert app.catalogue is before.catalogue
    assert str(stored_expiry(app)) == "2026-12-20"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("operators.kcell.renew.en" in line for line in lines)
    assert all("\n" not in line for line in lines)
    # The admin hears of this bad version once, however often it is looked at.
    assert app.reload_if_changed() is False
    assert len(admin_messages(app)) == 1
    assert "operators.kcell.renew.en" in (admin_messages(app)[0].body or "")


def test_each_bad_version_of_the_file_is_reported_once_and_a_fix_takes_effect(
    write: WriteConfig, make_app: MakeApp
) -> None:
    app = make_app(write(), clock=FixedClock(NOW))
    app.sync()
    write(operators=BAD_OVERRIDE)
    app.reload_if_changed()
    write(operators=BAD_OVERRIDE)  # saved again, unchanged: not news
    app.reload_if_changed()
    assert len(admin_messages(app)) == 1
    write(operators=BAD_OVERRIDE.replace("nosuch", "other"))  # another bad version
    app.reload_if_changed()
    assert len(admin_messages(app)) == 2
    write(expires="2027-01-31")  # fixed
    assert app.reload_if_changed() is True
    assert str(stored_expiry(app)) == "2027-01-31"
    assert app.loaded.config.users[0].sims[0].expires is not None
