"""Benchmark 7: how long ``watcher`` takes to start, against a bare ``python -c pass``.

Each command runs in a fresh interpreter, as the console script runs it (``from
watcher.cli import entry``), on a small config with a SQLite database that is already
migrated and synced. Every figure is the median of several runs, interleaved with the
bare interpreter's so that both see the same machine load; the ratio is the figure the
issue sets targets on (``--help`` within 10x, ``check`` within 50x) and ``status`` and
``health`` have an absolute one (under half a second).

With ``$WATCHER_BENCH_POSTGRES_URL`` (else ``$WATCHER_TEST_POSTGRES_URL``) set, ``status``
and ``health`` are also timed on PostgreSQL, in the benchmarks' own scratch schema
(benchmarks/_replicas.py: made, migrated, and dropped at the end), interleaved with
the rest; neither set, those rows say they were skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import Options, Result, median, ms

NAME = "startup"
TITLE = "Start-up time of the watcher command"
ROOT = Path(__file__).resolve().parents[1]
FULL_ROUNDS = 15
QUICK_ROUNDS = 5
ENTRY = "from watcher.cli import entry; entry()"  # what the console script runs

CONFIG = """\
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
"""

# (label, argv, ratio target or None, seconds target or None)
COMMANDS: list[tuple[str, list[str], float | None, float | None]] = [
    ("watcher --help", ["--help"], 10, None),
    ("watcher check", ["check"], 50, None),
    ("watcher status", ["status"], None, 0.5),
    ("watcher health", ["health", "--max-age", "100000000"], None, 0.5),
]
# The same two on PostgreSQL, when a database is given (run with its own config).
POSTGRES_COMMANDS: list[tuple[str, list[str], float | None, float | None]] = [
    ("watcher status, PostgreSQL", ["status"], None, 0.5),
    ("watcher health, PostgreSQL", ["health", "--max-age", "100000000"], None, 0.5),
]


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    # Their notes ("no daemon has loaded a config...") would fill the report; the
    # warm-up before the rounds checks that each command works.
    subprocess.run(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - started


def run(options: Options) -> Result:
    from benchmarks._replicas import Scratch, postgres_url

    rounds = QUICK_ROUNDS if options.quick else FULL_ROUNDS
    work = options.work_dir
    config = work / "watcher.yaml"
    config.write_text(CONFIG.format(db=f"sqlite:///{work / 'watcher.db'}"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WATCHER_CONFIG": str(config)}
    env.pop("WATCHER_DATABASE_URL", None)
    python = sys.executable
    watcher = [python, "-c", ENTRY]
    # (label, argv, ratio, limit, environment): the PostgreSQL rows use their own config.
    commands = [(*command, env) for command in COMMANDS]
    scratch: Scratch | None = None
    skipped: str | None = None
    target = postgres_url()
    if target is None:
        skipped = "neither WATCHER_BENCH_POSTGRES_URL nor WATCHER_TEST_POSTGRES_URL is set"
    else:
        try:
            scratch = Scratch(target[0])  # migrated, in the benchmarks' scratch schema
        except Exception as exc:
            skipped = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    try:
        if scratch is not None:
            postgres_config = work / "watcher-postgres.yaml"
            postgres_config.write_text(CONFIG.format(db=scratch.url), encoding="utf-8")
            postgres_env = {**env, "WATCHER_CONFIG": str(postgres_config)}
            commands += [(*command, postgres_env) for command in POSTGRES_COMMANDS]
            result = _measure(options, rounds, watcher, commands)
            result.notes.append(f"PostgreSQL: {scratch.display}, the scratch schema")
            return result
        result = _measure(options, rounds, watcher, commands)
        for label, *_ in POSTGRES_COMMANDS:
            result.add(f"  {label}", "skipped")
        result.notes.append(f"PostgreSQL rows skipped: {skipped}")
        return result
    finally:
        if scratch is not None:
            scratch.close(drop=not options.keep_work)


def _measure(
    options: Options,
    rounds: int,
    watcher: list[str],
    commands: list[tuple[str, list[str], float | None, float | None, dict[str, str]]],
) -> Result:
    work = options.work_dir
    python = watcher[0]
    # Untimed: migrate and sync, and warm the file cache and the .pyc files.
    for env in {id(command[4]): command[4] for command in commands}.values():
        for argv in (["db", "upgrade"], ["status"], ["health"], ["--help"], ["check"]):
            done = subprocess.run(
                [*watcher, *argv], env=env, cwd=work, capture_output=True, text=True, check=False
            )
            # health says "unhealthy" (exit 1): no daemon planned here. Any other failure
            # would make the timings meaningless (a command that fails early is quick).
            if done.returncode != 0 and argv != ["health"]:
                raise RuntimeError(f"watcher {' '.join(argv)} failed: {done.stderr.strip()}")
    options.log(f"{rounds} rounds of python -c pass and {len(commands)} commands")

    bare: list[float] = []
    times: dict[str, list[float]] = {label: [] for label, *_ in commands}
    for _ in range(rounds):
        bare.append(_time([python, "-c", "pass"], commands[0][4], work))
        for label, argv, _ratio, _limit, env in commands:
            times[label].append(_time([*watcher, *argv], env, work))

    result = Result(NAME, TITLE)
    base = median(bare)
    result.add("python -c pass", ms(base))
    for label, _argv, ratio, limit, _env in commands:
        took = median(times[label])
        value = f"{ms(took)} ({took / base:.1f}x)"
        if ratio is not None:
            result.add(f"  {label}", value, f"<= {ratio:g}x", took / base <= ratio)
        elif limit is not None:
            result.add(f"  {label}", value, f"< {ms(limit)}", took < limit)
    result.notes.append(
        f"medians of {rounds} runs, interleaved; python -c pass runs: "
        + ", ".join(ms(t) for t in bare)
    )
    for label, *_ in commands:
        result.notes.append(f"{label} runs: " + ", ".join(ms(t) for t in times[label]))
    return result
