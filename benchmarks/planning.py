"""Benchmark 1: one planning pass over 1,000,000 SIMs on SQLite.

Target (from the issue): ``watcher.reminders.planner.plan_due(session, now)`` in a committed
transaction takes at most 2x the bare indexed SELECT of the due rows, and the process
peak RSS during the pass stays under 300 MB.

The database (:func:`populate`), built with set-based SQL, not the ORM:

- ``sims`` SIMs (1,000,000; 20,000 with ``--quick``), five per user; every user is in
  Asia/Almaty with ``remind_at`` 10:00 (05:00 UTC) and one channel, ``console``.
- Each SIM has the default expiry slots, -7d -3d -1d 0d +1d +3d +7d, at 05:00 UTC.
  The schedule holds only slots not yet planned, as a daemon running every day would
  have left it (a pass deletes the slots it plans): ``schedule(due_at, sim_id, kind,
  target, offset)``, on SQLite a WITHOUT ROWID table clustered by its primary key
  (due_at first), with a unique index on (sim_id, kind, target, offset).
- Every 100th SIM (1 %) has exactly one slot due today at 05:00 UTC. Which offset it is
  rotates over the seven, so these SIMs expire between 7 days ago and 7 days ahead;
  their earlier slots are absent (planned on earlier days), the later ones are there.
- The other 99 % expire 8 to 365 days from today, so all 7 of their slots are there,
  all in the future.
- ``now`` is today 05:01 UTC: sims/100 slots are due, one per due SIM, none superseded.
  That is 7 rows per SIM less 3 per due SIM on average: 6,969,995 at 1,000,000 SIMs.

Population runs in this process; the measurement runs in a fresh child process
(``python -m benchmarks.planning measure ...``), so its peak RSS never sees the
population. The child imports the daemon's modules first, so its baseline is the daemon's.

Each measured round runs the bare SELECT of the due rows (a range on the primary key),
then a planning pass that commits (it inserts the outbox rows and deletes the due
slots), then, untimed, puts the database back: the outbox emptied, the due slots
re-inserted from a copy taken before the first round, and the WAL checkpointed, so
every round plans the same 1 % from the same state. Medians over the rounds are reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Engine,
    Row,
    Select,
    Table,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, ExecutionContext

from benchmarks._common import (
    NOW,
    Options,
    Result,
    median,
    mib,
    ms,
    reset_rss_peak,
    rss_now,
    rss_peak,
    sql_timestamp,
)

NAME = "planning"
TITLE = "Planning pass vs bare indexed SELECT (SQLite)"

FULL_SIMS = 1_000_000
QUICK_SIMS = 20_000
SIMS_PER_USER = 5
DUE_EVERY = 100  # every 100th SIM has a slot due now: 1 %
ROUNDS = 5
MAX_RATIO = 2.0
MAX_PEAK_RSS = 300 * 10**6  # "300 MB"

ZONE = ZoneInfo("Asia/Almaty")
KEY = "bench"  # every SIM's schedule_key, and so the key of all its slots
REMIND_AT = day_time(10, 0)
# The default expiry offsets, as slots_for labels them, in the order of the schedule's
# unique key (sim_id, kind, target, offset): see the schedule insert in populate.
OFFSETS: tuple[tuple[str, int], ...] = tuple(
    sorted([("-7d", -7), ("-3d", -3), ("-1d", -1), ("0d", 0), ("+1d", 1), ("+3d", 3), ("+7d", 7)])
)
OPERATORS = ("kcell", "activ", "beeline", "tele2", "altel")


# --- population ------------------------------------------------------------------------


def populate(path: Path, sims: int, now: datetime = NOW) -> int:
    """Create the schema with migrations, bulk-insert the population described above.

    Returns the number of schedule rows inserted.
    """
    from watcher.db.engine import Database

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
    finally:
        database.close()
    today = now.astimezone(ZONE).date()
    remind_utc = sql_timestamp(datetime.combine(today, REMIND_AT, ZONE))[10:]  # " 05:00:00.000000"
    offsets_sql = ", ".join(f"('{label}', {days})" for label, days in OFFSETS)
    # Days from today to the expiry of a due SIM: minus the offset of its due slot.
    due_expiry = " ".join(f"WHEN {k} THEN {-days}" for k, (_, days) in enumerate(OFFSETS))
    operator = " ".join(f"WHEN {k} THEN '{name}'" for k, name in enumerate(OPERATORS))
    params = {
        "last": sims - 1,
        "users_last": (sims - 1) // SIMS_PER_USER,
        "per_user": SIMS_PER_USER,
        "due_every": DUE_EVERY,
        "today": today.isoformat(),
        "at": remind_utc,
        "first_seen": sql_timestamp(now - timedelta(days=180)),
        "key": KEY,
    }
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # A throwaway file: no journal, no fsync, a big cache for the index builds.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        connection.execute("PRAGMA threads=2")
        # Secondary indexes are cheaper to build once, sorted, than to grow row by row;
        # their definitions come from the migrated schema, so they are the same ones.
        # Only those with SQL: the schedule's unique index is SQLite's autoindex for the
        # UNIQUE constraint of a WITHOUT ROWID table, and cannot be dropped.
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('schedule', 'sims')"
        ).fetchall()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        connection.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :users_last)
            INSERT INTO users (name, timezone, language, remind_at, quiet_hours, active)
            SELECT printf('user-%06d', i), 'Asia/Almaty', 'en', '10:00', NULL, 1 FROM n
            """,
            params,
        )
        connection.execute(
            "INSERT INTO user_channels (user_name, channel) SELECT name, 'console' FROM users"
        )
        connection.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last),
            e(i, expires) AS (
                SELECT i, CASE WHEN i % :due_every = 0
                    THEN date(:today, printf('%+d days',
                        CASE (i / :due_every) % {len(OFFSETS)} {due_expiry} END))
                    ELSE date(:today, printf('+%d days', 8 + (i * 7919) % 358))
                END
                FROM n
            )
            INSERT INTO sims (
                id, user_name, operator, number, "plan", active, expires, cfg_expires,
                renew_every, remind_before, remind_after, first_seen_at, schedule_key
            )
            SELECT printf('sim-%07d', i), printf('user-%06d', i / :per_user),
                CASE i % {len(OPERATORS)} {operator} END, printf('+7701%07d', i), NULL, 1,
                expires, expires, '30d', '7d,3d,1d,0d', '1d,3d,7d', :first_seen, :key
            FROM e
            """,
            params,
        )
        # Only the slots not planned yet: today's (due now) and later ones. Both the
        # clustered table (due_at, ...) and the unique index (sim_id, ...) are B-trees
        # filled as rows come, so one of them grows out of order whatever the order.
        # CROSS JOIN keeps sims as the outer loop, so rows arrive in unique-key order
        # (as sync writes them, SIM by SIM): measured at 1,000,000 SIMs, 54-60 s,
        # against 74-81 s for ORDER BY due_at, sim_id, ... (the sort alone took 13 s).
        connection.execute(
            f"""
            WITH offsets(label, days) AS (VALUES {offsets_sql}),
            slots(due_day, sim_id, target, label) AS (
                SELECT date(sims.expires, printf('%+d days', offsets.days)), sims.id,
                    sims.expires, offsets.label
                FROM sims CROSS JOIN offsets
            )
            INSERT INTO schedule (due_at, sim_id, kind, target, "offset", "key")
            SELECT due_day || :at, sim_id, 'expiry', target, label, :key
            FROM slots
            WHERE due_day >= :today
            """,
            params,
        )
        # Not the cursor's rowcount: the sqlite3 module reports -1 for a WITH ... INSERT.
        schedule_rows: int = connection.execute("SELECT changes()").fetchone()[0]
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")  # what the daemon uses
    finally:
        connection.close()
    return schedule_rows


# --- measurement (runs in the child process) --------------------------------------------


@dataclass
class PassTiming:
    """One committed planning pass."""

    total: float  # plan_due and the commit
    statements: float  # plan_due alone, before the commit
    commit: float
    written: int
    left_due: int  # schedule rows with due_at <= now after the pass (should be 0)
    peak_rss: int  # VmHWM, reset just before the pass
    rss_before: int
    by_statement: dict[str, float] = field(default_factory=dict)


@dataclass
class Measurement:
    """What the child process reports to the parent, as JSON."""

    due_rows: int
    schedule_rows: int  # before the first pass
    select_times: list[float]
    passes: list[PassTiming]
    select_plan: list[str]
    pass_plans: dict[str, list[str]]
    peak_reset: bool  # whether VmHWM could be reset before each pass
    whole_run_peak: int  # the child's peak RSS over everything it did, selects included
    tracemalloc_peak: int  # Python allocations during one (rolled back) pass

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        raw: dict[str, Any] = json.loads(text)
        raw["passes"] = [PassTiming(**item) for item in raw["passes"]]
        return cls(**raw)


class StatementTimer:
    """Times every statement the engine runs, keyed by its first three words."""

    def __init__(self, engine: Engine) -> None:
        self.times: dict[str, float] = {}
        self.statements: dict[str, tuple[str, Any]] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.times = {}

    def last(self, prefix: str) -> tuple[str, Any]:
        """The statement (and its parameters) last run whose label starts with ``prefix``."""
        return next(s for label, s in self.statements.items() if label.startswith(prefix))

    def _before(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        conn.info["benchmark_started"] = time.perf_counter()

    def _after(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        elapsed = time.perf_counter() - conn.info.pop("benchmark_started")
        label = " ".join(statement.split()[:3])
        self.times[label] = self.times.get(label, 0.0) + elapsed
        self.statements[label] = (statement, parameters)


class PeakWatch:
    """Peak RSS per phase (VmHWM restarted at each), and the peak over all of them."""

    def __init__(self) -> None:
        self.whole = 0
        self.resettable = True

    def restart(self) -> None:
        self.whole = max(self.whole, rss_peak())  # before the reset forgets it
        self.resettable &= reset_rss_peak()

    def peak(self) -> int:
        """The peak since the last restart; also counted in the whole run's peak."""
        peak = rss_peak()
        self.whole = max(self.whole, peak)
        return peak


def due_select(now: datetime) -> Select[datetime, str, str, date, str]:
    """The bare SELECT: the due slots, a range on the primary key, whole rows."""
    from watcher.db.models import ScheduleRow

    return select(
        ScheduleRow.due_at,
        ScheduleRow.sim_id,
        ScheduleRow.kind,
        ScheduleRow.target,
        ScheduleRow.offset,
    ).where(ScheduleRow.due_at <= now)


def measure(db_path: Path, now: datetime, rounds: int) -> Measurement:
    """Time the bare SELECT and committed planning passes, interleaved, on one database."""
    # The daemon's modules (App loads them lazily): the memory baseline is the daemon's.
    import watcher.daemon
    import watcher.delivery
    import watcher.promotions.jobs
    import watcher.sync  # noqa: F401
    from watcher.db.engine import Database
    from watcher.db.models import OutboxRow, ScheduleRow
    from watcher.reminders.planner import plan_due

    database = Database(f"sqlite:///{db_path}")
    timer = StatementTimer(database.engine)
    query = due_select(now)
    schedule = cast(Table, ScheduleRow.__table__)

    def bare_select() -> Sequence[Row[datetime, str, str, date, str]]:
        with database.session() as session:
            return session.execute(query).all()

    def checkpoint() -> None:
        """Copy the WAL into the database: each pass starts with no backlog to checkpoint.

        RESTART, not TRUNCATE: the next pass reuses the WAL file from its start, as the
        daemon's passes do (its WAL is never truncated), instead of growing a new one.
        """
        with database.engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(RESTART)"))

    def restore(due: Sequence[Row[datetime, str, str, date, str]]) -> None:
        """Untimed: back to the state before the pass (the outbox empty, the slots back)."""
        with database.session() as session:
            session.execute(delete(OutboxRow))
            session.execute(insert(schedule), [{**row._asdict(), "key": KEY} for row in due])
        checkpoint()

    def count(where: Any = None) -> int:
        statement = select(func.count()).select_from(ScheduleRow)
        if where is not None:
            statement = statement.where(where)
        with database.session() as session:
            return session.scalar(statement) or 0

    peaks = PeakWatch()

    def planning_pass() -> PassTiming:
        peaks.restart()
        before = rss_now() or 0
        timer.reset()
        started = time.perf_counter()
        with database.sessions() as session:
            with session.begin():
                written = plan_due(session, now)
                planned = time.perf_counter()
            committed = time.perf_counter()
        peak = peaks.peak()
        by_statement = dict(timer.times)
        return PassTiming(
            total=committed - started,
            statements=planned - started,
            commit=committed - planned,
            written=written,
            left_due=count(ScheduleRow.due_at <= now),
            peak_rss=peak,
            rss_before=before,
            by_statement=by_statement,
        )

    schedule_rows = count()
    due = bare_select()  # warms the page cache for both contenders alike; kept for restore
    select_plan = _explain(database.engine, *timer.last("SELECT schedule.due_at"))
    checkpoint()
    select_times: list[float] = []
    passes: list[PassTiming] = []
    pass_statements: dict[str, tuple[str, Any]] = {}
    for _ in range(rounds):
        # Each contender starts with no garbage left by the other: a collection that
        # fell inside one timing would be charged to whichever ran when it struck.
        gc.collect()
        started = time.perf_counter()
        rows = bare_select()
        select_times.append(time.perf_counter() - started)
        if len(rows) != len(due):
            raise RuntimeError(f"the bare SELECT found {len(due)} rows, then {len(rows)}")
        del rows
        gc.collect()
        passes.append(planning_pass())
        pass_statements = pass_statements or {
            label: timer.last(label) for label in passes[-1].by_statement
        }
        restore(due)
    pass_plans = {
        label: _explain(database.engine, *statement) for label, statement in pass_statements.items()
    }

    # Python-level allocations of one pass; tracemalloc slows it, so it is not timed.
    tracemalloc.start()
    with database.sessions() as session:
        session.begin()
        plan_due(session, now)
        session.rollback()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    database.close()
    peaks.peak()  # folds the time since the last pass into the whole run's peak
    return Measurement(
        due_rows=len(due),
        schedule_rows=schedule_rows,
        select_times=select_times,
        passes=passes,
        select_plan=select_plan,
        pass_plans=pass_plans,
        peak_reset=peaks.resettable,
        whole_run_peak=peaks.whole,
        tracemalloc_peak=traced_peak,
    )


def _explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of a statement exactly as the driver received it."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        connection.rollback()
    return [str(row[-1]) for row in rows]


# --- the benchmark ------------------------------------------------------------------------


def run(options: Options) -> Result:
    """Populate, measure in a child process, and judge against the targets."""
    sims = QUICK_SIMS if options.quick else FULL_SIMS
    path = options.work_dir / f"planning-{sims}.db"
    options.log(f"populating {sims:,} SIMs in {path.name}")
    started = time.perf_counter()
    schedule_rows = populate(path, sims)
    populate_time = time.perf_counter() - started
    options.log(
        f"populated {schedule_rows:,} schedule rows in {populate_time:.1f} s"
        f" ({path.stat().st_size / 1e6:,.0f} MB)"
    )

    options.log(f"measuring {ROUNDS} rounds in a child process")
    child = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.planning", "measure"),
            *(str(path), NOW.isoformat(), "--rounds", str(ROUNDS)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    measured = Measurement.from_json(child.stdout.strip().splitlines()[-1])
    return _report(measured, sims, populate_time)


def _report(m: Measurement, sims: int, populate_time: float) -> Result:
    result = Result(NAME, TITLE)
    select_time = median(m.select_times)
    pass_time = median([p.total for p in m.passes])
    statements_time = median([p.statements for p in m.passes])
    commit_time = median([p.commit for p in m.passes])
    ratio = pass_time / select_time
    peak = max(p.peak_rss for p in m.passes)
    before = median([p.rss_before for p in m.passes])
    written = {p.written for p in m.passes}
    left = {p.left_due for p in m.passes}
    # "SEARCH schedule USING PRIMARY KEY (due_at<?)": a range scan of the clustered table.
    uses_key = any(
        line.startswith("SEARCH") and "USING PRIMARY KEY (due_at<" in line for line in m.select_plan
    )

    result.add("SIMs / schedule rows", f"{sims:,} / {m.schedule_rows:,}")
    result.add("population (not measured)", f"{populate_time:.1f} s")
    result.add("due rows (1 %)", f"{m.due_rows:,}")
    result.add(
        "bare SELECT searches the primary key (due_at)",
        "yes" if uses_key else "no",
        "yes",
        uses_key,
    )
    result.add(
        f"bare SELECT, median of {len(m.select_times)}",
        ms(select_time),
        "",
    )
    result.add(
        f"planning pass incl. COMMIT, median of {len(m.passes)}",
        ms(pass_time),
        f"<= {ms(select_time * MAX_RATIO)}",
    )
    result.add("  plan_due statements (before COMMIT)", ms(statements_time))
    for label in m.passes[0].by_statement:
        result.add(f"    {label} ...", ms(median([p.by_statement.get(label, 0) for p in m.passes])))
    python = median([p.statements - sum(p.by_statement.values()) for p in m.passes])
    result.add("    Python around them (SQLAlchemy, session)", ms(python))
    result.add("  COMMIT", ms(commit_time))
    result.add("ratio pass / SELECT", f"{ratio:.2f}x", f"<= {MAX_RATIO:.0f}x", ratio <= MAX_RATIO)
    result.add("ratio statements only / SELECT", f"{statements_time / select_time:.2f}x")
    result.add(
        "outbox rows written per pass",
        " / ".join(f"{n:,}" for n in sorted(written)),
        f"{m.due_rows:,}",
        written == {m.due_rows} and left == {0},
    )
    peak_label = "peak RSS during pass" if m.peak_reset else "peak RSS of measuring process"
    result.add(peak_label, mib(peak), f"< {MAX_PEAK_RSS / 1e6:.0f} MB", peak < MAX_PEAK_RSS)
    result.add("  RSS just before the pass", mib(int(before)))
    result.add("  Python allocations in a pass (tracemalloc)", mib(m.tracemalloc_peak))
    result.add("  measuring process, whole run", mib(m.whole_run_peak))

    result.notes.append(
        "Each round: bare SELECT, then plan_due in a committed transaction (outbox rows "
        "inserted, due slots deleted), then, untimed, the database is put back (outbox "
        "emptied, due slots re-inserted, WAL checkpointed); medians over the rounds. "
        f"SELECT times: {', '.join(ms(t) for t in m.select_times)}; pass times: "
        f"{', '.join(ms(p.total) for p in m.passes)}."
    )
    result.notes.append(
        "Memory is measured in a child process that did not populate the database. "
        + (
            "Peak RSS is VmHWM reset right before each pass (max over the passes); it "
            "includes the interpreter and the daemon's imported modules."
            if m.peak_reset
            else "VmHWM could not be reset: the peak covers the whole child process."
        )
        + " tracemalloc sees Python objects only, not SQLite's page cache."
    )
    result.notes.append("Bare SELECT plan: " + "; ".join(m.select_plan))
    for label, plan in m.pass_plans.items():
        result.notes.append(f"{label} ... plan: " + "; ".join(plan))
    return result


def main(argv: list[str] | None = None) -> None:
    """The child process: ``python -m benchmarks.planning measure DB NOW [--rounds N]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.planning")
    sub = parser.add_subparsers(dest="command", required=True)
    measure_cmd = sub.add_parser("measure", help="measure an already populated database")
    measure_cmd.add_argument("db", type=Path)
    measure_cmd.add_argument("now", type=datetime.fromisoformat)
    measure_cmd.add_argument("--rounds", type=int, default=ROUNDS)
    populate_cmd = sub.add_parser("populate", help="only build a database, for exploring it")
    populate_cmd.add_argument("db", type=Path)
    populate_cmd.add_argument("--sims", type=int, default=FULL_SIMS)
    args = parser.parse_args(argv)
    if args.command == "populate":
        populate(args.db, args.sims)
        return
    print(measure(args.db, args.now, args.rounds).to_json())


if __name__ == "__main__":
    main()
