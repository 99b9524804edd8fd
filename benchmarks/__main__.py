"""``python -m benchmarks``: run the benchmarks and print their figures.

The exit status is 0 whenever every benchmark ran, whether it met its targets or not;
1 only if one crashed (its traceback is printed and the others still run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchmarks._common import Options, Result

# name -> module; imported only when selected, so one benchmark's imports never
# weigh on another's measurements.
BENCHMARKS: dict[str, str] = {
    "planning": "benchmarks.planning",
    "sync": "benchmarks.config_sync",
    "delivery": "benchmarks.delivery",
    "extraction": "benchmarks.extraction",
    "scrape": "benchmarks.scrape_cycle",
    "rendering": "benchmarks.rendering",
    "startup": "benchmarks.startup",
}
WORK_DIR = Path(__file__).resolve().parent / ".work"  # gitignored


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="SIM Watcher benchmarks. Targets are reported, never enforced.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke run (about a minute)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help=f"keep the databases and files made under {WORK_DIR} "
        "(and delivery's PostgreSQL schema watcher_bench)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks in order, print each one's table; return the exit status."""
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120, highlight=False)
    names = list(dict.fromkeys(args.only or BENCHMARKS))
    console.print(
        f"SIM Watcher benchmarks ({'quick' if args.quick else 'full'}): {', '.join(names)}\n"
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    )
    results: list[Result] = []
    crashed: list[str] = []
    for name in names:
        work_dir = WORK_DIR / name
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        options = Options(
            quick=args.quick,
            work_dir=work_dir,
            log=_logger(console, name),
            keep_work=args.keep_work,
        )
        console.rule(name)
        started = time.perf_counter()
        try:
            module = importlib.import_module(BENCHMARKS[name])
            result: Result = module.run(options)
        except Exception:
            crashed.append(name)
            console.print(f"[bold red]{name} crashed:[/]")
            console.print(traceback.format_exc(), markup=False)
            continue
        finally:
            if not args.keep_work:
                shutil.rmtree(work_dir, ignore_errors=True)
        console.print(_table(result, time.perf_counter() - started))
        for note in result.notes:
            console.print(f"- {note}", markup=False)
        results.append(result)
    _summary(console, results, crashed)
    return 1 if crashed else 0


def _logger(console: Console, name: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        console.print(Text(f"{time.strftime('%H:%M:%S')} {name}: {message}", style="dim"))

    return log


def _table(result: Result, seconds: float) -> Table:
    table = Table(title=f"{result.title} ({seconds:.0f} s)", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")
    for line in result.lines:
        verdict = Text("" if line.ok is None else "PASS" if line.ok else "MISS")
        verdict.stylize("green" if line.ok else "red")
        table.add_row(Text(line.label), Text(line.value), Text(line.target), verdict)
    return table


def _summary(console: Console, results: list[Result], crashed: list[str]) -> None:
    console.rule("summary")
    for result in results:
        misses = [line.label.strip() for line in result.lines if line.ok is False]
        detail = f" ({'; '.join(misses)})" if misses else ""
        console.print(f"{result.name:10s} {result.verdict}{detail}", markup=False)
    for name in crashed:
        console.print(f"{name:10s} CRASHED", markup=False)
    console.print("Targets are informational: a MISS does not fail the run.")


if __name__ == "__main__":
    sys.exit(main())
