"""`make run` is a demo: its own database, started afresh, so it reminds every time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.config import LoadedConfig, load_config
from watcher.db.engine import resolve_database_url

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_and_the_init_starter_share_no_database_and_no_sim_ids(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}  # no WATCHER_DATABASE_URL: each file's own
    demo = load_config(ROOT / "config" / "example.yaml", env)
    starter = load_config(ROOT / "watcher" / "starter.yaml", env)

    def url(loaded: LoadedConfig) -> str:
        return resolve_database_url(loaded.config.database, loaded.path.parent, env)

    assert url(demo) == f"sqlite:///{ROOT / 'config' / 'demo.db'}"
    assert url(starter) == f"sqlite:///{tmp_path / 'sim-watcher' / 'watcher.db'}"
    assert not {s.id for _, s in demo.config.sims()} & {s.id for _, s in starter.config.sims()}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_reminds_every_time_on_its_own_database_and_make_clean_removes_it(
    tmp_path: Path,
) -> None:
    # The Makefile and the example, copied: make run deletes the demo database it uses.
    work = tmp_path / "repo"
    (work / "config").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", work)
    shutil.copy(ROOT / "config" / "example.yaml", work / "config")
    bin_dir = tmp_path / "bin"  # stands in for .venv/bin: this checkout's watcher
    bin_dir.mkdir()
    watcher = bin_dir / "watcher"
    watcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m watcher "$@"\n')
    watcher.chmod(0o755)
    users_db = tmp_path / "users-own.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "WATCHER_DATABASE_URL": f"sqlite:///{users_db}",  # a user's own: left alone
    }

    def make(*args: str) -> str:
        done = subprocess.run(
            ["make", "-s", "-C", str(work), *args, "STAMP=", f"BIN={bin_dir}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    for _ in range(2):
        out = make("run", "RUN_ARGS=--once")
        assert "bob-beeline" in out  # the overdue reminder, each time
        assert "+7 705 *** ** 67" in out
    assert (work / "config" / "demo.db").exists()
    assert not users_db.exists()
    assert not (tmp_path / "data" / "sim-watcher").exists()  # nor the default one

    make("clean", f"VENV={tmp_path / 'no-venv'}")
    assert not list((work / "config").glob("demo.db*"))
