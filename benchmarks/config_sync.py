"""Benchmark 2: load and sync a config file with 10,000 SIMs.

The generated YAML has 2,000 users with 5 SIMs each (400 users with ``--quick``), all
on the built-in ``console://`` channel, operators cycling over the catalogue, expiry
dates spread over a year, every other SIM with a balance check and every fifth with an
idle limit: the slots a real file would produce, not only the expiry ones.

Timed separately:

- ``watcher.config.load_config``: read, YAML parse, ``${VAR}`` substitution and
  pydantic validation (median of three loads);
- ``watcher.sync.sync_config`` into an empty, migrated SQLite database, in one session
  (one transaction, commit included), as the daemon does at start;
- the same sync again with nothing changed (median of three), as the daemon does when
  the file's modification time changes but its content does not.

There is no target in the issue; the figures are for comparison between commits.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import yaml
from sqlalchemy import func, select

from benchmarks._common import NOW, Options, Result, median, ms

# libyaml's parser; PyYAML has the ``cyaml`` module only where it was built with libyaml.
_C_PARSER: type | None = getattr(getattr(yaml, "cyaml", None), "CParser", None)

NAME = "sync"

FULL_USERS = 2_000
QUICK_USERS = 400
SIMS_PER_USER = 5
LOADS = 3
NO_CHANGE_SYNCS = 3
OPERATORS = ("kcell", "activ", "beeline", "tele2", "altel")
LANGUAGES = ("en", "ru", "kk", "zh")


def write_config(path: Path, users: int, database: str) -> int:
    """Write the benchmark's config file; return how many SIMs it holds."""
    today = NOW.date()
    lines = [
        "timezone: Asia/Almaty",
        f"database: {database}",
        'remind_at: "10:00"',
        "channels:",
        '  console: "console://"',
        "admin: [console]",
        "users:",
    ]
    sims = 0
    for u in range(users):
        lines += [
            f"  - name: user-{u:05d}",
            f"    language: {LANGUAGES[u % len(LANGUAGES)]}",
            "    notify: [console]",
        ]
        if u % 3 == 0:
            lines.append('    quiet_hours: "22:00-08:00"')
        lines.append("    sims:")
        for k in range(SIMS_PER_USER):
            n = u * SIMS_PER_USER + k
            expires = today + timedelta(days=(n * 37) % 365 - 30)
            lines += [
                f"      - id: sim-{n:06d}",
                f"        operator: {OPERATORS[n % len(OPERATORS)]}",
                f'        number: "+7701{n:07d}"',
                f'        plan: "Plan {n % 7}"',
                f"        expires: {expires.isoformat()}",
                "        renew_every: 1mo",
            ]
            if n % 2 == 0:
                checked = today - timedelta(days=n % 20)
                lines += [
                    "        balance_check_every: 14d",
                    f"        last_balance_check: {checked.isoformat()}",
                    "        low_balance: 1500",
                ]
            if n % 5 == 0:
                active = today - timedelta(days=n % 80)
                lines += ["        idle_limit: 90d", f"        last_paid_activity: {active}"]
            sims += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sims


def run(options: Options) -> Result:
    """Generate the file, then time load, first sync and a no-change sync."""
    from watcher.config import load_config
    from watcher.db.engine import open_database
    from watcher.db.models import ScheduleRow, SimRow
    from watcher.sync import sync_config

    users = QUICK_USERS if options.quick else FULL_USERS
    db_path = options.work_dir / "sync.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    config_path = options.work_dir / "watcher.yaml"
    sims = write_config(config_path, users, f"sqlite:///{db_path}")
    size = config_path.stat().st_size
    options.log(f"wrote {config_path} ({sims:,} SIMs, {size / 1e6:.1f} MB)")

    load_times = []
    # Spying on yaml.load tells which loader load_config really passes, whatever its name.
    with mock.patch.object(yaml, "load", wraps=yaml.load) as yaml_load:
        for _ in range(LOADS):
            started = time.perf_counter()
            loaded = load_config(config_path, env={})
            load_times.append(time.perf_counter() - started)
    call = yaml_load.call_args
    loader = call.kwargs.get("Loader", call.args[1] if len(call.args) > 1 else None)
    database = open_database(f"sqlite:///{db_path}")
    try:
        started = time.perf_counter()
        with database.session() as session:
            first = sync_config(session, loaded, NOW)
        first_time = time.perf_counter() - started
        options.log(f"first sync: {first_time:.2f} s")
        again_times = []
        reports = []
        for _ in range(NO_CHANGE_SYNCS):
            started = time.perf_counter()
            with database.session() as session:
                reports.append(sync_config(session, loaded, NOW))
            again_times.append(time.perf_counter() - started)
        with database.session() as session:
            stored_sims = session.scalar(select(func.count()).select_from(SimRow)) or 0
            slots = session.scalar(select(func.count()).select_from(ScheduleRow)) or 0
    finally:
        database.close()

    uses_c = isinstance(loader, type) and _C_PARSER is not None and issubclass(loader, _C_PARSER)
    loader_name = getattr(loader, "__qualname__", repr(loader))
    unchanged = all(r.added == r.updated == r.deactivated == r.rescheduled == 0 for r in reports)

    result = Result(NAME, f"Config load + sync of a {sims:,}-SIM YAML file")
    result.add("users x SIMs", f"{users:,} x {SIMS_PER_USER} = {sims:,}")
    result.add("YAML file size", f"{size / 1e6:.2f} MB")
    result.add(
        "C YAML loader used",
        f"{'yes' if uses_c else 'no'} ({loader_name})",
        "yes",
        uses_c,
    )
    result.add(f"load_config, median of {LOADS}", ms(median(load_times)))
    result.add("sync_config, first (empty DB, incl. COMMIT)", ms(first_time))
    result.add("  SIMs added / schedule rows written", f"{first.added:,} / {slots:,}")
    result.add(f"sync_config, no change, median of {NO_CHANGE_SYNCS}", ms(median(again_times)))
    result.add(
        "  no-change sync changed nothing",
        "yes" if unchanged else "no",
        "yes",
        unchanged and stored_sims == sims,
    )
    result.notes.append(
        f"load times: {', '.join(ms(t) for t in load_times)}; no-change sync times: "
        f"{', '.join(ms(t) for t in again_times)}."
    )
    return result
