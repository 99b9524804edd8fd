"""The ``watcher`` command. Turns WatcherError into one line and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher import __version__
from watcher.clock import zoned_text
from watcher.completion import FILE, ID_KINDS, SHELLS, completes
from watcher.errors import ConfigError, UsageError, WatcherError
from watcher.pipes import closed_pipe_is_quiet

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from scrapers import Profile
    from watcher.app import App
    from watcher.config import Config, LoadedConfig, UserConfig
    from watcher.durations import Duration
    from watcher.promotions.jobs import ScrapeResult

# Each command imports what it needs when it runs: `watcher --help` and the container's
# `watcher health` must not pay for Apprise, the scrapers or the daemon (issue 11).

if TYPE_CHECKING:
    from watcher.db.plain import LoadedRecord
    from watcher.reminders.status import SimStatus

log = logging.getLogger("watcher")

STARTER_CONFIG = Path(__file__).with_name("starter.yaml")


def entry() -> None:
    """The ``watcher`` console script (and ``python -m watcher``): main, then exit."""
    code = main()
    # The process ends here. Freezing the heap spares the interpreter its last
    # collection over every object the imports made: 0.1 s of a `watcher health`.
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    # Help, a completion script and every command's output alike: a reader that stops
    # early (`watcher ... | head -1`) ends the command quietly, with its usual status.
    with closed_pipe_is_quiet():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        log_format = getattr(args, "log_format", None) or os.environ.get("WATCHER_LOG_FORMAT")
        _configure_logging(getattr(args, "log_level", None), log_format or "text")
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except WatcherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # the database failed under a command: one line, no SQL
        fault = _database_fault_line(exc)
        if fault is None:
            raise
        print(f"error: {fault}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _database_fault_line(exc: BaseException) -> str | None:
    """One line for a database fault (unreachable, read-only, full), None for the rest."""
    if "sqlalchemy" not in sys.modules:
        return None  # the command never touched a database
    from sqlalchemy.exc import DBAPIError

    from watcher.db.faults import database_error_line, is_database_fault

    if isinstance(exc, DBAPIError) and is_database_fault(exc):
        return database_error_line(exc)
    return None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _configure_logging(flag_level: str | None, log_format: str = "text") -> None:
    """-v / -q, else $WATCHER_LOG_LEVEL, else INFO; text or JSON lines (--log-format)."""
    from watcher.logs import FORMATS, formatter
    from watcher.masking import guard_logs

    if log_format not in FORMATS:
        raise UsageError(
            f"WATCHER_LOG_FORMAT={log_format!r} is not a log format; use one of "
            f"{', '.join(FORMATS)}"
        )

    name = flag_level or os.environ.get("WATCHER_LOG_LEVEL", "").strip().upper() or "INFO"
    level = logging.getLevelNamesMapping().get(name, logging.NOTSET)  # WARN, CRITICAL too
    if level == logging.NOTSET:
        raise UsageError(
            f"WATCHER_LOG_LEVEL={os.environ.get('WATCHER_LOG_LEVEL')!r} is not a log level; "
            f"use one of {', '.join(LOG_LEVELS)}"
        )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    guard_logs()
    if level > logging.DEBUG:
        # These log every job run, migration step and send at INFO: noise for a daemon
        # that runs its jobs every few seconds and logs its own one line per send.
        # httpx and httpcore log each request's whole URL, query (?apikey=...) included.
        for noisy in ("apscheduler", "alembic", "apprise", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


EPILOG = """\
-c, -v and -q may come before or after the command.

environment:
  WATCHER_CONFIG        config file when -c is not given (else ./watcher.yaml)
  WATCHER_LOG_LEVEL     DEBUG, INFO (the default), WARNING or ERROR;
                        -v and -q override it
  WATCHER_LOG_FORMAT    text (the default) or json: one JSON object per line
  WATCHER_DATABASE_URL  database URL; wins over the config's database:

`watcher COMMAND --help` describes a command;
`watcher completion bash|zsh|fish` prints a tab completion script.
"""


def _common_options() -> argparse.ArgumentParser:
    """-c, -v and -q, accepted before the command and after it.

    Their defaults are SUPPRESS so that the command's copy, when not given, does not
    overwrite what was given before the command; main() reads them with getattr.
    """
    common = argparse.ArgumentParser(add_help=False)
    config = common.add_argument(
        "-c",
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="config file (default: $WATCHER_CONFIG, else ./watcher.yaml)",
    )
    completes(config, FILE)
    common.add_argument(
        "-v",
        "--verbose",
        dest="log_level",
        action="store_const",
        const="DEBUG",
        default=argparse.SUPPRESS,
        help="log debug detail (overrides $WATCHER_LOG_LEVEL)",
    )
    common.add_argument(
        "-q",
        "--quiet",
        dest="log_level",
        action="store_const",
        const="WARNING",
        default=argparse.SUPPRESS,
        help="log only warnings and errors (overrides $WATCHER_LOG_LEVEL)",
    )
    common.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=argparse.SUPPRESS,
        help="log lines as text or as one JSON object per line (default: $WATCHER_LOG_FORMAT,"
        " else text)",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="watcher",
        description="Reminders and promotion alerts for prepaid SIM cards.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of:"
    )

    def command(name: str, handler: Any, help_text: str | None) -> argparse.ArgumentParser:
        if help_text is None:  # hidden: left out of the list and of completion
            sub = commands.add_parser(name, parents=[common])
        else:
            sub = commands.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    def json_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--json",
            action="store_true",
            help="print JSON instead (a stable shape: see the README's JSON output)",
        )

    run = command("run", _run, "run the daemon")
    run.add_argument(
        "--once",
        action="store_true",
        help="scrape every promotion source, plan and deliver everything due, then exit",
    )
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=_listen_arg,
        help="serve /healthz, /metrics and /calendar there (off by default; e.g. 127.0.0.1:9100)",
    )
    check = command("check", _check, "validate the config file and show what it sets up")
    json_option(check)
    status = command("status", _status, "show every SIM's dates and last message")
    json_option(status)
    status.add_argument("--wide", action="store_true", help="more columns")
    renew = command("renew", _renew, "record a renewal (and a paid activity) today")
    completes(
        renew.add_argument("sim_id", metavar="SIM_ID", help="the SIM's id in the config"), "sims"
    )
    period = renew.add_mutually_exclusive_group()
    period.add_argument("--until", type=_date_arg, metavar="DATE", help="new expiry date")
    period.add_argument(
        "--for",
        dest="period",
        type=_duration_arg,
        metavar="PERIOD",
        help="period to add, e.g. 30d, 4w, 1mo",
    )
    json_option(renew)
    balance = command("balance", _balance, "record a balance check")
    completes(
        balance.add_argument("sim_id", metavar="SIM_ID", help="the SIM's id in the config"), "sims"
    )
    balance.add_argument(
        "amount",
        type=_amount_arg,
        metavar="AMOUNT",
        help="the balance in tenge, e.g. 1500 or 1500.50",
    )
    json_option(balance)
    test = command("notify-test", _notify_test, "send a test message to each channel")
    completes(
        test.add_argument(
            "channel",
            nargs="?",
            metavar="CHANNEL",
            help="only this channel (a name under channels:); default: every channel",
        ),
        "channels",
    )
    json_option(test)
    init = command("init", _init, "write a starter config file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    command("schema", _schema, "print the config file's JSON Schema (for editors)")
    db = command("db", _db, "database maintenance")
    db.add_argument(
        "action",
        choices=["upgrade"],
        help="upgrade: apply the migrations (every command also does on start)",
    )
    json_option(db)
    scrape = command("scrape", _scrape, "fetch promotion sources now and show what they list")
    completes(
        scrape.add_argument(
            "source_ids",
            nargs="*",
            metavar="SOURCE_ID",
            help="sources to fetch (ids under sources:); default: all",
        ),
        "sources",
    )
    scrape.add_argument("--dry-run", action="store_true", help="store nothing")
    json_option(scrape)
    completes(
        scrape.add_argument(
            "--html-file",
            type=Path,
            metavar="PAGE",
            help="test a source's selectors on a saved page",
        ),
        FILE,
    )
    completes(
        scrape.add_argument("--source", metavar="ID", help="whose selectors --html-file uses"),
        "sources",
    )
    scrape.add_argument(
        "--explain",
        action="store_true",
        help="say how kind: auto found the promotions, and which lists it passed over",
    )
    scrape.add_argument(
        "--url",
        metavar="URL",
        help="preview any page without a config entry (implies --dry-run; prints an entry)",
    )
    scrape.add_argument(
        "--render",
        choices=["http", "browser"],
        default="http",
        help="with --url: browser renders the page in headless Chromium first",
    )
    sources = command("sources", _sources, "show each promotion source's health and schedule")
    json_option(sources)
    sources.add_argument("--wide", action="store_true", help="more columns")
    sources.add_argument(
        "action",
        nargs="?",
        choices=["accept"],
        help="accept SOURCE_ID: take a held source's ballooned page as its new normal",
    )
    completes(
        sources.add_argument(
            "source_id", nargs="?", metavar="SOURCE_ID", help="the held source to accept"
        ),
        "sources",
    )
    promotions = command("promotions", _promotions, "list known promotions, newest first")
    completes(
        promotions.add_argument("--operator", metavar="ID", help="only this operator's sources"),
        "operators",
    )
    promotions.add_argument("--active", action="store_true", help="only those not ended")
    json_option(promotions)
    promotions.add_argument("--wide", action="store_true", help="more columns")
    command("export", _export, "write everything recorded to stdout as JSON (for backups)")
    load = command("import", _import, "load an export into a new, empty database")
    load.add_argument("file", type=Path, metavar="FILE", help="a file `watcher export` wrote")
    calendar = command("calendar", _calendar, "print a user's dates as an iCalendar file")
    calendar.add_argument("--user", metavar="NAME", help="whose calendar (needed if several)")
    calendar.add_argument(
        "--url",
        nargs="?",
        const="",
        metavar="BASE",
        help="print the feed's address with its token instead (BASE: what --http serves)",
    )
    health = command("health", _health, "exit 0 if the daemon planned recently")
    health.add_argument(
        "--max-age",
        type=int,
        default=180,
        metavar="SECONDS",
        help="how recent the last planning pass must be (default: %(default)s)",
    )
    health.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=_listen_arg,
        help="ask the /healthz of a daemon started with --http there instead of the "
        "database (no config or database needed: a cheap container health check)",
    )
    json_option(health)
    completion = command(
        "completion", _completion, "print a shell's tab completion script for watcher"
    )
    completion.add_argument(
        "shell",
        choices=SHELLS,
        help="bash: source it from ~/.bashrc; zsh: put it in $fpath as _watcher; "
        "fish: save it as ~/.config/fish/completions/watcher.fish",
    )
    ids = command("_complete", _complete, None)
    ids.add_argument("kind", choices=ID_KINDS, help="which ids to print, one a line")
    ids.add_argument(
        "words",
        nargs="*",
        help="the command line being completed; its -c FILE picks the config",
    )
    return parser


def _listen_arg(text: str) -> tuple[str, int]:
    from watcher.service import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _duration_arg(text: str) -> Duration:
    from watcher.durations import Duration

    try:
        return Duration.parse(text).whole_days()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _amount_arg(text: str) -> Decimal:
    compact = re.sub(r"[\s\u00a0₸]|(?i:kzt|tg)", "", text).replace(",", ".")
    try:
        amount = Decimal(compact)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an amount such as 1500 or 1500.50"
        ) from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e12"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable amount")
    return amount.quantize(Decimal("0.01"))


def _config_path(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None) is not None:
        return Path(args.config)
    return Path(os.environ.get("WATCHER_CONFIG") or "watcher.yaml")


def _app(args: argparse.Namespace, *, sends: bool = True) -> App:
    """The App for the config; ``sends=False`` for commands that send nothing, which
    need not ask Apprise about every channel URL (``check`` and the daemon do)."""
    from watcher.app import App
    from watcher.config import load_config

    return App(load_config(_config_path(args), check_channels=sends))


# --- commands ----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from watcher.daemon import Daemon, run_once

    app = _app(args)
    if args.once:
        with app:
            return run_once(app)
    return Daemon(app, http=args.http).run()


def _check(args: argparse.Namespace) -> int:
    from watcher.config import load_config
    from watcher.config_diagnostics import config_warnings
    from watcher.masking import mask_phone, mask_url

    path = _config_path(args)
    if args.json:
        return _check_json(path)
    config = load_config(path).config
    sims = config.sims()
    counts = [(len(config.users), "user"), (len(sims), "SIM"), (len(config.channels), "channel")]
    print(f"{path}: OK — " + ", ".join(f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts))
    for name, urls in config.channels.items():
        for url in urls:
            print(f"  channel {name}: {mask_url(url)}")
    if config.admin:
        print(f"  admin: {', '.join(config.admin)}")
    for user in config.users:
        for sim in user.sims:
            print(f"  {user.name}: {sim.id} ({sim.operator}, {mask_phone(sim.number)})")
    profiles = config.source_profiles()
    for user in config.users:
        prefs = user.promotions
        if prefs is None:
            continue
        ids = config.promotion_sources(user)
        print(
            f"  {user.name}: promotions ({', '.join(prefs.on)}; {prefs.digest}) from "
            f"{', '.join(ids) or 'no source'}"
        )
        for note in _unwatched_notes(config, user, profiles):
            print(f"  note: {note}")
    for warning in config_warnings(config, str(path)):  # settings that do nothing
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _unwatched_notes(config: Config, user: UserConfig, profiles: dict[str, Profile]) -> list[str]:
    prefs = user.promotions
    if prefs is None or prefs.operators is not None or prefs.sources is not None:
        return []
    # Listed operators without a source are errors; the SIMs' ones are only noted.
    covered = {profiles[i].source.operator for i in config.promotion_sources(user)}
    return [
        f"{user.name}: no promotion source watches {operator}; "
        "add one under sources: to hear of its promotions"
        for operator in sorted({sim.operator for sim in user.sims} - covered)
    ]


def _check_json(path: Path) -> int:
    """``check --json``: the same findings as one object; errors in it too (exit 2)."""
    from watcher.config import load_config
    from watcher.config_diagnostics import config_warnings
    from watcher.masking import mask_phone, mask_url

    try:
        config = load_config(path).config
    except ConfigError as exc:
        errors = [
            {"file": issue.file, "path": issue.path, "problem": issue.message}
            for issue in exc.issues
        ]
        _print_json({"config": str(path), "ok": False, "errors": errors})
        return exc.exit_code
    profiles = config.source_profiles()
    users = []
    for user in config.users:
        prefs = user.promotions
        users.append(
            {
                "name": user.name,
                "sims": [
                    {"id": sim.id, "operator": sim.operator, "number": mask_phone(sim.number)}
                    for sim in user.sims
                ],
                "promotions": None
                if prefs is None
                else {
                    "on": list(prefs.on),
                    "digest": str(prefs.digest),
                    "sources": config.promotion_sources(user),
                },
            }
        )
    _print_json(
        {
            "config": str(path),
            "ok": True,
            "errors": [],
            "users": users,
            "channels": {
                name: [mask_url(url) for url in urls] for name, urls in config.channels.items()
            },
            "admin": list(config.admin),
            "notes": [
                note for user in config.users for note in _unwatched_notes(config, user, profiles)
            ],
            "warnings": [
                {"file": warning.file, "path": warning.path, "problem": warning.message}
                for warning in config_warnings(config, str(path))
            ],
        }
    )
    return 0


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _status(args: argparse.Namespace) -> int:
    # Only reads: the database is opened read-only, never migrated or synced, so status
    # shows what the daemon works from, and says so when the config file has moved on.
    with _app(args, sends=False) as app:
        statuses, loaded = _read_status(app)
        rows = _status_rows(app, statuses)
        _config_notice(app, loaded)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    from watcher.tables import Column, Kind, print_table

    columns = [
        Column("SIM", Kind.ID),
        Column("user", Kind.ID),
        Column("expires", Kind.WHEN),
        Column("next check", Kind.WHEN),
        Column("last message", Kind.WHEN),
        Column("operator", Kind.TEXT, wide=True),
        Column("balance", Kind.NUMBER, wide=True),
        Column("idle deadline", Kind.WHEN, wide=True),
    ]
    table: list[list[str | None]] = []
    for row in rows:
        last = row["last_message"]
        table.append(
            [
                f"{row['sim']}\n{row['number']}",
                row["user"],
                None if row["expires"] is None else f"{row['expires']}\n{_days(row['days_left'])}",
                row["next_balance_check"],
                None if last is None else f"{last['kind']} {last['status']}\n{_shown(last['at'])}",
                row["operator"],
                row["balance"],
                row["idle_deadline"],
            ]
        )
    print_table("SIM Watcher", columns, table, wide=args.wide)
    if not rows:
        print("no SIMs in the database yet: the daemon loads them from the config (watcher run)")
    return 0


def _read_status(app: App) -> tuple[list[SimStatus], LoadedRecord | None]:
    """The SIMs and the config the daemon loaded: without SQLAlchemy when the database is
    a plain SQLite file or PostgreSQL server at the newest revision, else through it
    (issue 11)."""
    from watcher.db import plain
    from watcher.reminders.status import plain_sim_statuses

    now = app.clock.now()
    try:
        return plain.read(
            app.plain_source, lambda db: (plain_sim_statuses(db, now), plain.last_loaded(db))
        )
    except plain.Unsupported:
        pass
    from sqlalchemy.exc import SQLAlchemyError

    from watcher.errors import DatabaseError
    from watcher.reminders.status import sim_statuses
    from watcher.sync import last_loaded

    try:
        with app.reader.session() as session:
            return sim_statuses(session, now), last_loaded(session)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        if not re.search(r"no such (table|column)|does not exist", detail):
            raise  # main() says what is wrong with the database, in one line
        detail += "; the schema is older than this SIM Watcher: watcher db upgrade"
        url = app.reader.display_url
        raise DatabaseError(f"cannot read database {url}: {detail}") from None


def _config_notice(app: App, loaded: LoadedRecord | None) -> None:
    """Say on stderr when what status shows is not what the config file now says."""
    path = app.loaded.path
    if loaded is None:
        print(
            f"note: no daemon has loaded a config into this database yet; "
            f"start one with: watcher run -c {path}",
            file=sys.stderr,
        )
    elif loaded.digest != app.loaded.digest:
        print(
            f"note: {path} has changed since the daemon loaded it "
            f"({zoned_text(loaded.at, app.loaded.config.timezone)}); this shows what the "
            "daemon works from until it reloads (within 30 s while it runs)",
            file=sys.stderr,
        )


def _days(days_left: int) -> str:
    if days_left == 0:
        return "today"
    unit = "day" if abs(days_left) == 1 else "days"
    return f"in {days_left} {unit}" if days_left > 0 else f"{-days_left} {unit} ago"


def _status_rows(app: App, statuses: Sequence[SimStatus]) -> list[dict[str, Any]]:
    from watcher.masking import mask_phone

    return [
        {
            "user": status.user,
            "sim": status.sim_id,
            "number": mask_phone(status.number),
            "operator": app.catalogue.get(status.operator).name,
            "expires": _iso(status.expires),
            "days_left": status.days_left,
            "next_balance_check": _iso(status.next_balance_check),
            "balance": str(status.balance) if status.balance is not None else None,
            "idle_deadline": _iso(status.idle_deadline),
            "last_message": None
            if status.last_message is None
            else {
                "kind": status.last_message.kind,
                "status": status.last_message.status,
                "at": _local(status.last_message.at, status.zone),
            },
        }
        for status in statuses
    ]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _local(instant: datetime, zone: ZoneInfo) -> str:
    """For --json: ISO 8601 in ``zone``, with its offset."""
    return instant.astimezone(zone).isoformat(timespec="seconds")


def _shown(iso: str | None) -> str | None:
    """A time from :func:`_local` as tables show it: ``2026-12-04 09:00 +05``."""
    if iso is None:
        return None
    instant = datetime.fromisoformat(iso)
    return zoned_text(instant, instant.tzinfo)


def _renew(args: argparse.Namespace) -> int:
    from watcher.reminders.records import record_renewal

    with _app(args, sends=False) as app:
        app.sync()
        with app.database.session() as session:
            renewal = record_renewal(
                session,
                args.sim_id,
                app.clock.now(),
                until=args.until,
                period=args.period,
                source=str(app.loaded.path),
            )
    days = (renewal.new - renewal.today).days
    if args.json:
        _print_json(
            {
                "sim": renewal.sim_id,
                "expires": renewal.new.isoformat(),
                "previous_expiry": _iso(renewal.old),
                "today": renewal.today.isoformat(),
                "days_left": days,
            }
        )
        return 0
    print(f"{renewal.sim_id}: renewed until {renewal.new} ({days} days from today)")
    return 0


def _balance(args: argparse.Namespace) -> int:
    from watcher.reminders.records import record_balance

    with _app(args, sends=False) as app:
        app.sync()
        with app.database.session() as session:
            check = record_balance(
                session, args.sim_id, args.amount, app.clock.now(), source=str(app.loaded.path)
            )
    if args.json:
        _print_json(
            {
                "sim": check.sim_id,
                "amount": str(check.amount),
                "date": check.today.isoformat(),
                "low": check.low,
                "threshold": None if check.threshold is None else str(check.threshold),
            }
        )
        return 0
    print(f"{check.sim_id}: balance {check.amount} recorded on {check.today}")
    if check.alerted:
        print(f"warning: below your low_balance threshold {check.threshold}; an alert is queued")
    elif check.low:
        print(
            f"warning: still below your low_balance threshold {check.threshold}; already "
            "alerted (the next alert after a balance at or above it, or a renewal)"
        )
    return 0


def _scrape(args: argparse.Namespace) -> int:
    from scrapers import Page, ScraperError, Validators, decode_text
    from watcher.promotions.jobs import ScrapeResult, extract_page

    if args.url is not None:
        return _preview_url(args)
    with _app(args) as app:
        profiles = app.loaded.config.source_profiles()
        if args.html_file is not None:
            if not args.source:
                raise UsageError("--html-file needs --source ID: whose selectors to use")
            profile = _pick_profiles(profiles, [args.source], app.loaded.path)[0]
            try:
                text = decode_text(args.html_file.read_bytes())
            except OSError as exc:
                raise UsageError(f"cannot read {args.html_file}: {exc.strerror}") from None
            result = ScrapeResult(profile)
            page = Page(url=profile.source.url, status=200, text=text, validators=Validators())
            today = app.clock.now().astimezone(app.loaded.config.timezone).date()
            try:
                result.promotions = extract_page(profile, page, today)
            except ScraperError as exc:
                result.error = exc
            return _print_scrape([result], args.json, detail=True, explain=args.explain)

        chosen = _pick_profiles(profiles, args.source_ids or list(profiles), app.loaded.path)
        # A change found by hand is news like any other: unless this is a dry run, it
        # is stored, matched and queued now (the daemon, or `watcher run --once`, sends
        # it), and never found again.
        if args.json or len(chosen) == 1:
            results = app.scrape(chosen, dry_run=args.dry_run)
        else:
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task("scraping", total=len(chosen))
                results = app.scrape(
                    chosen, dry_run=args.dry_run, on_done=lambda _: progress.advance(task)
                )
    return _print_scrape(results, args.json, detail=len(chosen) == 1, explain=args.explain)


def _preview_url(args: argparse.Namespace) -> int:
    """``scrape --url``: read any page the way kind: auto would, and print an entry."""
    from urllib.parse import urlsplit

    from scrapers import Profile, Source
    from watcher.app import App
    from watcher.config import load_config, parse_config

    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {args.url!r} is not an http(s) URL")
    if args.source_ids or args.html_file is not None:
        raise UsageError("--url previews one page: give no SOURCE_ID and no --html-file")
    path = _config_path(args)
    # Without a config file the defaults apply: a preview needs no setup.
    loaded = load_config(path) if path.exists() else parse_config("", str(path), os.environ)
    if args.render == "browser":
        from scrapers import render_unavailable

        missing = render_unavailable(loaded.config.scraping.render_settings())
        if missing is not None:
            raise UsageError(
                f"--render browser: {missing}; pip install 'sim-watcher[browser]' and "
                "apt-get install chromium, or set scraping.browser_url"
            )
    profile = Profile(Source(id="preview", url=args.url, kind="auto", render=args.render))
    with App(loaded) as app:
        [result] = app.scrape([profile], dry_run=True)
    code = _print_scrape([result], args.json, detail=True, explain=True)
    if not args.json and result.error is None and result.promotions:
        print("\nTo watch this page, add to your config:\n")
        print(_source_entry(result, parts.hostname))
    return code


def _source_entry(result: ScrapeResult, host: str) -> str:
    """A ``sources:`` entry for what a preview found; selectors pinned if the DOM won."""
    import yaml

    name = re.sub(r"[^a-z0-9]+", "-", host.lower().removeprefix("www.")).strip("-")
    entry: dict[str, Any] = {
        "id": f"{name}-promo"[:60],
        "operator": "OPERATOR-ID",
        "url": result.feed_url or result.profile.source.url,
    }
    if result.profile.source.render == "browser" and result.feed_url is None:
        entry["render"] = "browser"
    detection = result.detection
    if result.feed_url is not None:
        entry["kind"] = "feed"
    elif detection is not None and detection.chosen is not None:
        selectors = detection.chosen.selectors
        if detection.chosen.strategy == "dom" and selectors:
            # Pinned: what auto found today, frozen; delete these two lines to stay on auto.
            entry["items"] = selectors["items"]
            entry["fields"] = dict(selectors["fields"])
    text = yaml.safe_dump({"sources": [entry]}, allow_unicode=True, sort_keys=False)
    return text.replace("OPERATOR-ID", "OPERATOR-ID  # kcell, activ, beeline, tele2, altel...")


def _sources(args: argparse.Namespace) -> int:
    from watcher.promotions.store import source_health

    if args.action == "accept":
        return _accept_held(args)
    if args.source_id is not None:
        raise UsageError("a SOURCE_ID goes with an action: watcher sources accept SOURCE_ID")
    with _app(args, sends=False) as app:
        config = app.loaded.config
        zone = config.timezone
        watched = config.watched_sources()
        subscribed = {user.name: set(config.promotion_sources(user)) for user in config.users}
        with app.database.session() as session:
            health = source_health(session)

    def when(instant: datetime | None) -> str | None:
        return _local(instant, zone) if instant else None

    rows: list[dict[str, Any]] = []
    for pid, profile in config.source_profiles().items():
        source = health.get(pid)
        rows.append(
            {
                "source": pid,
                "operator": profile.source.operator,
                "url": profile.source.url,
                "watched": pid in watched,
                "subscribers": [name for name, ids in subscribed.items() if pid in ids],
                "every": _every_text(profile.every.total_seconds()),
                "verified": profile.verified,
                "last_success": when(source.last_success_at) if source else None,
                "failures": source.failures if source else 0,
                "last_error": source.last_error if source else None,
                "next_fetch": when(source.next_fetch_at) if source and pid in watched else None,
                "promotions": source.active_promotions if source else 0,
                "held": source.held_count if source and source.held_count else None,
                "held_accepted": bool(source and source.held_count and source.accept_held),
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    from watcher.tables import Column, Kind, print_table

    columns = [
        Column("source", Kind.ID),
        Column("fetches", Kind.WHEN),
        Column("known", Kind.NUMBER),
        Column("watched by", Kind.TEXT),
        Column("problem", Kind.TEXT),
        Column("operator", Kind.ID, wide=True),
        Column("url", Kind.TEXT, wide=True),
    ]
    table: list[list[str | None]] = []
    for row in rows:
        who = ", ".join(row["subscribers"]) or "(history only)" if row["watched"] else None
        problem = f"{row['failures']} failed: {row['last_error']}" if row["failures"] else ""
        if row["held"]:
            problem = f"{problem}; held: the page listed {row['held']}".lstrip("; ") + (
                " (accepted: taken at the next scrape)"
                if row["held_accepted"]
                else f" (if right: watcher sources accept {row['source']})"
            )
        if not row["verified"]:
            problem = f"{problem}; selectors unverified".lstrip("; ")
        upcoming = "due" if row["watched"] else "—"
        table.append(
            [
                f"{row['source']}\nevery {row['every']}",
                f"last {_shown(row['last_success']) or 'never'}\n"
                f"next {_shown(row['next_fetch']) or upcoming}",
                str(row["promotions"]),
                who,
                problem,
                row["operator"],
                row["url"],
            ]
        )
    print_table("Promotion sources", columns, table, wide=args.wide)
    return 0


def _accept_held(args: argparse.Namespace) -> int:
    from watcher.promotions.store import accept_held

    if args.source_id is None:
        raise UsageError("which source? watcher sources accept SOURCE_ID")
    with _app(args) as app:
        known = app.loaded.config.source_profiles()
        if args.source_id not in known:
            raise UsageError(
                f"unknown source {args.source_id!r}; known: {', '.join(sorted(known)) or 'none'}"
            )
        with app.database.session() as session:
            count = accept_held(session, args.source_id, app.clock.now())
    if count is None:
        print(f"error: source {args.source_id} is not held; nothing to accept", file=sys.stderr)
        return 1
    print(
        f"{args.source_id}: the page of {count} promotions is accepted; the next scrape takes"
        " the page as it is then, without alerting anyone"
    )
    return 0


def _every_text(seconds: float) -> str:
    from watcher.durations import Duration

    return str(Duration.of_minutes(int(seconds // 60)))


def _promotions(args: argparse.Namespace) -> int:
    from watcher.promotions.store import as_promotion, list_promotions, promotion_history

    with _app(args, sends=False) as app:
        operator = _operator_arg(args.operator, app.loaded) if args.operator else None
        zone = app.loaded.config.timezone
        today = app.clock.now().astimezone(zone).date()
        with app.database.session() as session:
            found = list_promotions(
                session,
                operator=operator,
                active_only=args.active,
                today=today,
            )
            history = promotion_history(session, [row.id for row in found])
            rows: list[dict[str, Any]] = [
                {
                    "source": row.source_id,
                    **as_promotion(row).to_json(),
                    "ended": row.ended,
                    "first_seen": _local(row.first_seen_at, zone),
                    "last_seen": _local(row.last_seen_at, zone),
                    "changes": [
                        {
                            "kind": change.kind,
                            "at": _local(change.at, zone),
                            "fields": [f for f in change.changed_fields.split(",") if f],
                        }
                        for change in history.get(row.id, [])
                    ],
                }
                for row in found
            ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    from watcher.tables import Column, Kind, print_table

    columns = [
        Column("first seen", Kind.WHEN),
        Column("source", Kind.ID),
        Column("title", Kind.TEXT),
        Column("until", Kind.WHEN),
        Column("price", Kind.NUMBER),
        Column("last seen", Kind.WHEN, wide=True),
    ]
    table: list[list[str | None]] = []
    for row in rows:
        price = f"{row['price']} {row['currency'] or ''}".strip() if row["price"] else None
        title = f"{row['title']} (ended)" if row["ended"] else row["title"]
        if row["link"]:
            title = f"{title}\n{row['link']}"
        table.append(
            [
                _shown(row["first_seen"]),
                row["source"],
                title,
                row["ends"],
                price,
                _shown(row["last_seen"]),
            ]
        )
    print_table("Promotions", columns, table, wide=args.wide)
    return 0


def _operator_arg(text: str, loaded: LoadedConfig) -> str:
    """``--operator``: a known operator's id, else a UsageError that lists them."""
    from watcher.completion import known_operators

    known = known_operators(loaded)
    operator = text.strip().lower()
    if operator not in known:
        raise UsageError(f"no operator {text!r} (known: {', '.join(known) or 'none'})")
    return operator


def _pick_profiles(profiles: dict[str, Profile], ids: list[str], source: Path) -> list[Profile]:
    unknown = [i for i in ids if i not in profiles]
    if unknown:
        known = ", ".join(profiles) or "none"
        raise UsageError(f"no source {', '.join(map(repr, unknown))} in {source} (known: {known})")
    return [profiles[i] for i in ids]


def _print_scrape(
    results: list[ScrapeResult],
    as_json: bool,
    *,
    detail: bool,
    explain: bool = False,
) -> int:
    failed = sum(1 for r in results if r.error is not None)
    if as_json:
        rows = [_scrape_json(r, explain=explain) for r in results]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 1 if failed else 0
    from watcher.tables import Column, Kind, print_table

    columns = [
        Column("source", Kind.ID),
        Column("status", Kind.ID),
        Column("found", Kind.NUMBER),
        *(Column(kind, Kind.NUMBER) for kind in ("new", "changed", "ended", "alerts")),
        Column("note", Kind.TEXT),
    ]
    summary: list[list[str | None]] = []
    for r in results:
        counts = {
            kind: sum(1 for c in r.changes if c.kind == kind)
            for kind in ("new", "changed", "ended")
        }
        note = str(r.error) if r.error else ("" if r.stored else "not stored")
        if r.error is None and r.detection is not None and r.detection.hint:
            note = f"{note}; {r.detection.hint}".lstrip("; ")
        if not r.profile.verified:
            note = f"{note}; unverified: {', '.join(r.profile.unverified)}".lstrip("; ")
        summary.append(
            [
                r.profile.id,
                r.status,
                str(len(r.promotions)),
                *(str(counts[k]) if r.stored else None for k in ("new", "changed", "ended")),
                str(r.alerts) if r.stored else None,
                note,
            ]
        )
    print_table("Promotion sources", columns, summary)
    if detail:
        for r in results:
            found: list[list[str | None]] = []
            for p in r.promotions:
                dates = " – ".join(str(d) for d in (p.starts, p.ends) if d)
                title = p.title
                if not dates and p.date_text:
                    title = f"{title}\n{p.date_text}"  # as the page wrote it: free text
                if p.link:
                    title = f"{title}\n{p.link}"
                price = f"{p.price} {p.currency or ''}".strip() if p.price is not None else None
                found.append([title, dates, price])
            print_table(
                r.profile.id,
                [Column("title"), Column("dates", Kind.WHEN), Column("price", Kind.NUMBER)],
                found,
            )
    if explain:
        for r in results:
            for line in _explanation(r):
                print(line)
    return 1 if failed else 0


def _explanation(result: ScrapeResult) -> list[str]:
    """How kind: auto read a page: the winner with its score, and why the others lost."""
    detection = result.detection
    source = result.profile.source
    if detection is None:
        how = "by its selectors" if source.kind != "auto" else "not read"
        return [f"{result.profile.id}: read {how} (kind {source.kind})"]
    lines = [f"{result.profile.id}: kind auto"]
    if result.feed_url:
        lines.append(f"  the page names a feed, read instead: {result.feed_url}")
    chosen = detection.chosen
    if chosen is None:
        lines.append(f"  {detection.hint}")
    else:
        lines.append(
            f"  chose {chosen.strategy}: {chosen.where} "
            f"(score {chosen.score:.1f}, {len(chosen.raws)} items)"
        )
    for candidate in detection.runners_up[:8]:
        sample = ", ".join(repr(title[:40]) for title in candidate.titles[:3])
        lines.append(
            f"  passed over {candidate.strategy}: {candidate.where} "
            f"(score {candidate.score:.1f}, {len(candidate.raws)} items: {sample}): "
            f"{candidate.reason}"
        )
    if len(detection.runners_up) > 8:
        lines.append(f"  ... and {len(detection.runners_up) - 8} smaller lists")
    return lines


def _scrape_json(result: ScrapeResult, *, explain: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source": result.profile.id,
        "status": result.status,
        "error": str(result.error) if result.error else None,
        "stored": result.stored,
        "changes": [{"kind": c.kind, "key": c.promotion.key} for c in result.changes],
        "alerts": result.alerts,
        "promotions": [promotion.to_json() for promotion in result.promotions],
    }
    if explain:
        row["explain"] = _detection_json(result)
    return row


def _detection_json(result: ScrapeResult) -> dict[str, Any]:
    detection = result.detection
    if detection is None:
        return {"kind": result.profile.source.kind, "strategy": "selectors"}

    def candidate(c: Any) -> dict[str, Any]:
        return {
            "strategy": c.strategy,
            "where": c.where,
            "score": c.score,
            "items": len(c.raws),
            "titles": c.titles[:5],
            "reason": c.reason or None,
            "selectors": dict(c.selectors) if c.selectors else None,
        }

    return {
        "kind": "auto",
        "feed_url": result.feed_url,
        "chosen": candidate(detection.chosen) if detection.chosen else None,
        "runners_up": [candidate(c) for c in detection.runners_up[:20]],
        "hint": detection.hint,
    }


def _notify_test(args: argparse.Namespace) -> int:
    from watcher.channels import send_test
    from watcher.config import load_config
    from watcher.messages import render_test

    loaded = load_config(_config_path(args))
    channels = loaded.channels
    names = [args.channel] if args.channel else list(loaded.config.channels)
    if args.channel and args.channel not in loaded.config.channels:
        known = ", ".join(loaded.config.channels) or "none"
        raise UsageError(f"no channel {args.channel!r} in {loaded.path} (defined: {known})")
    # Each channel's test speaks the language(s) of the users it notifies.
    languages = {
        target: loaded.config.channel_languages(name)
        for name in names
        for target in channels.targets(name)
    }
    # The console:// channel prints the message itself: beside --json, on stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        results = send_test(
            channels, list(languages), lambda target: render_test(languages[target], target)
        )
    if args.json:
        rows = [
            {
                "target": target,
                "url": channels.masked(target),
                "ok": result.ok,
                "error": result.error,
            }
            for target, result in results.items()
        ]
        _print_json(rows)
        return 0 if all(row["ok"] for row in rows) else 1
    failed = 0
    for target, result in results.items():
        if result.ok:
            print(f"ok      {target}  {channels.masked(target)}")
        else:
            failed += 1
            print(f"FAILED  {target}  {channels.masked(target)}: {result.error}")
    return 1 if failed else 0


def _init(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    # The starter's first line points editors at schema.json beside it.
    from watcher.schema import SCHEMA_FILE, schema_text

    schema = path.with_name(SCHEMA_FILE)
    wrote = ""
    if args.force or not schema.exists():
        schema.write_text(schema_text(), encoding="utf-8")
        wrote = f" and {schema} (its JSON Schema, for editors)"
    print(f"wrote {path}{wrote}; edit it, then run: watcher check -c {path}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from watcher.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def _db(args: argparse.Namespace) -> int:
    with _app(args, sends=False) as app:  # opening the app applies the migrations
        if args.json:
            _print_json({"database": app.database.display_url, "up_to_date": True})
        else:
            print(f"database {app.database.display_url} is up to date")
    return 0


def _export(args: argparse.Namespace) -> int:
    from watcher.transfer import export_state

    with _app(args, sends=False) as app:
        counts = export_state(app.database, sys.stdout)
    print(f"exported {sum(counts.values())} rows from {app.database.display_url}", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    from watcher.transfer import TransferError, import_state

    try:
        source = args.file.open(encoding="utf-8")
    except OSError as exc:
        raise TransferError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    with _app(args, sends=False) as app, source:
        counts = import_state(app.database, source, name=str(args.file))
        app.sync()  # the config file in force wins over the imported copy of it
    summary = ", ".join(f"{count} {table}" for table, count in counts.items() if count)
    print(f"imported into {app.database.display_url}: {summary or 'nothing'}")
    return 0


def _calendar(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from watcher.calendar import calendar_for, calendar_token

    with _app(args, sends=False) as app:
        names = [user.name for user in app.loaded.config.users]
        if args.user is None and len(names) != 1:
            raise WatcherError(f"several users: pass --user NAME ({', '.join(names)})")
        name = args.user if args.user is not None else names[0]
        if name not in names:
            known = ", ".join(names) or "none"
            raise WatcherError(f"no user {name!r} in {app.loaded.path} (users: {known})")
        app.sync()
        with app.database.session() as session:
            if args.url is not None:
                token = calendar_token(session, name, app.clock.now())
                base = args.url.rstrip("/")
                print(f"{base}/calendar/{quote(name, safe='')}.ics?token={token}")
                return 0
            sys.stdout.buffer.write(calendar_for(session, app.catalogue, name, app.clock.now()))
    return 0


def _health(args: argparse.Namespace) -> int:
    if args.http is not None:
        return _health_over_http(args)
    from watcher.db import plain

    with _app(args, sends=False) as app:
        try:  # without SQLAlchemy on a plain SQLite file or PostgreSQL URL at the newest revision
            at = plain.read(app.plain_source, lambda db: plain.last_beat(db, plain.PLANNER))
        except plain.Unsupported:  # else as every command: opened (and migrated) by SQLAlchemy
            from watcher.heartbeat import PLANNER, last_beat

            with app.database.session() as session:
                at = last_beat(session, PLANNER)
        age = None if at is None else int((app.clock.now() - at).total_seconds())
    healthy = age is not None and age <= args.max_age
    if args.json:
        _print_json(
            {
                "healthy": healthy,
                "last_planning": None if at is None else at.astimezone(UTC).isoformat(),
                "age_seconds": age,
                "max_age_seconds": args.max_age,
            }
        )
    elif age is None:
        print("unhealthy: the daemon has not planned yet")
    else:
        print(f"{'healthy' if healthy else 'unhealthy'}: last planning pass {age} s ago")
    return 0 if healthy else 1


def _health_over_http(args: argparse.Namespace) -> int:
    """``health --http HOST:PORT``: the daemon's own answer at /healthz, what it says."""
    import urllib.error
    import urllib.request

    host, port = args.http
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"  # listening everywhere: ask it here
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = f"http://{shown}/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(url, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if args.json:
            _print_json({"healthy": False, "url": url, "reason": f"no answer: {reason}"})
        else:
            print(f"unhealthy: no answer from {url}: {reason}")
        return 1
    try:
        answer = json.loads(body)
        reason = str(answer.get("reason", ""))
    except (ValueError, AttributeError):
        answer, reason = None, f"HTTP {status}"
    healthy = status == 200
    if args.json:
        _print_json({"healthy": healthy, "url": url, "reason": reason, "answer": answer})
    else:
        print(f"{'healthy' if healthy else 'unhealthy'}: {reason}")
    return 0 if healthy else 1


def _completion(args: argparse.Namespace) -> int:
    from watcher.completion import script

    print(script(_parser(), args.shell), end="")
    return 0


def _complete(args: argparse.Namespace) -> int:
    """The hidden ``_complete KIND [-- WORDS]``: ids for the completion scripts."""
    from watcher.completion import config_from_words, ids
    from watcher.config import load_config

    path = config_from_words(args.words) or _config_path(args)
    try:
        loaded = load_config(path, check_channels=False)
    except WatcherError:
        return 0  # a half-written config completes nothing, and says nothing mid-line
    for found in ids(loaded, args.kind):
        print(found)
    return 0
