"""The ``watcher`` command. Turns WatcherError into one line and an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scrapers import Page, Profile, Validators
from watcher import __version__
from watcher.app import App
from watcher.channels import send_test
from watcher.config import load_config, parse_config
from watcher.durations import Duration
from watcher.errors import ConfigError, UsageError, WatcherError
from watcher.masking import mask_phone, mask_url
from watcher.messages import render_test
from watcher.promotions.jobs import ScrapeResult
from watcher.reminders.records import record_balance, record_renewal

log = logging.getLogger("watcher")

STARTER_CONFIG = Path(__file__).with_name("starter.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except WatcherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _configure_logging(verbose: int) -> None:
    level_name = os.environ.get("WATCHER_LOG_LEVEL", "").upper()
    level = logging.DEBUG if verbose else getattr(logging, level_name, logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level > logging.DEBUG:
        # These log every job run, migration step and send at INFO: noise for a daemon
        # that runs its jobs every few seconds and logs its own one line per send.
        for noisy in ("apscheduler", "alembic", "apprise"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watcher", description="Reminders and promotion alerts for prepaid SIM cards."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="config file (default: $WATCHER_CONFIG, else ./watcher.yaml)",
        )
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", _run, "run the daemon")
    run.add_argument(
        "--once",
        action="store_true",
        help="scrape every promotion source, plan and deliver everything due, then exit",
    )
    command("check", _check, "validate the config file and show what it sets up")
    status = command("status", _status, "show every SIM's dates and last message")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    renew = command("renew", _renew, "record a renewal (and a paid activity) today")
    renew.add_argument("sim_id", metavar="SIM_ID")
    period = renew.add_mutually_exclusive_group()
    period.add_argument("--until", type=_date_arg, metavar="DATE", help="new expiry date")
    period.add_argument(
        "--for",
        dest="period",
        type=_duration_arg,
        metavar="PERIOD",
        help="period to add, e.g. 30d, 4w, 1m",
    )
    balance = command("balance", _balance, "record a balance check")
    balance.add_argument("sim_id", metavar="SIM_ID")
    balance.add_argument("amount", type=_amount_arg, metavar="AMOUNT")
    test = command("notify-test", _notify_test, "send a test message to each channel")
    test.add_argument("channel", nargs="?", metavar="CHANNEL")
    init = command("init", _init, "write a starter config file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    db = command("db", _db, "database maintenance")
    db.add_argument("action", choices=["upgrade"])
    scrape = command("scrape", _scrape, "fetch promotion sources now and show what they list")
    scrape.add_argument("source_ids", nargs="*", metavar="SOURCE_ID", help="default: all")
    scrape.add_argument("--dry-run", action="store_true", help="store nothing")
    scrape.add_argument("--json", action="store_true", help="machine-readable output")
    scrape.add_argument(
        "--html-file", type=Path, metavar="PAGE", help="test a source's selectors on a saved page"
    )
    scrape.add_argument("--source", metavar="ID", help="whose selectors --html-file uses")
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
    sources.add_argument("--json", action="store_true", help="machine-readable output")
    promotions = command("promotions", _promotions, "list known promotions, newest first")
    promotions.add_argument("--operator", metavar="ID", help="only this operator's sources")
    promotions.add_argument("--active", action="store_true", help="only those not ended")
    promotions.add_argument("--json", action="store_true", help="machine-readable output")
    health = command("health", _health, "exit 0 if the daemon planned recently")
    health.add_argument("--max-age", type=int, default=180, metavar="SECONDS")
    return parser


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _duration_arg(text: str) -> Duration:
    try:
        return Duration.parse(text)
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
    if args.config is not None:
        return Path(args.config)
    return Path(os.environ.get("WATCHER_CONFIG") or "watcher.yaml")


def _app(args: argparse.Namespace) -> App:
    return App.from_path(_config_path(args))


# --- commands ----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from watcher.daemon import Daemon, run_once

    app = _app(args)
    if args.once:
        with app:
            return run_once(app)
    return Daemon(app).run()


def _check(args: argparse.Namespace) -> int:
    from watcher.config_diagnostics import config_warnings

    path = _config_path(args)
    config = load_config(path).config
    sims = config.sims()
    print(
        f"{path}: OK — {len(config.users)} users, {len(sims)} SIMs, {len(config.channels)} channels"
    )
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
        if prefs.operators is None and prefs.sources is None:
            # Listed operators without a source are errors; the SIMs' ones are only noted.
            covered = {profiles[i].source.operator for i in ids}
            for operator in sorted({sim.operator for sim in user.sims} - covered):
                print(
                    f"  note: {user.name}: no promotion source watches {operator}; "
                    "add one under sources: to hear of its promotions"
                )
    for warning in config_warnings(config, str(path)):  # settings that do nothing
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    with _app(args) as app:
        app.sync()
        rows = _status_rows(app)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="SIM Watcher")
    for column in (
        "user",
        "SIM",
        "operator",
        "expires",
        "days left",
        "next balance check",
        "idle deadline",
        "last message",
    ):
        table.add_column(column)
    for row in rows:
        last = row["last_message"]
        table.add_row(
            row["user"],
            f"{row['sim']} {row['number']}",
            row["operator"],
            row["expires"] or "—",
            "—" if row["days_left"] is None else str(row["days_left"]),
            row["next_balance_check"] or "—",
            row["idle_deadline"] or "—",
            f"{last['kind']} {last['status']} {last['at']}" if last else "—",
        )
    Console().print(table)
    return 0


def _status_rows(app: App) -> list[dict[str, Any]]:
    from watcher.reminders.status import sim_statuses

    with app.database.session() as session:
        statuses = sim_statuses(session, app.clock.now())
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
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _renew(args: argparse.Namespace) -> int:
    with _app(args) as app:
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
    print(f"{renewal.sim_id}: renewed until {renewal.new} ({days} days from today)")
    return 0


def _balance(args: argparse.Namespace) -> int:
    with _app(args) as app:
        app.sync()
        with app.database.session() as session:
            check = record_balance(
                session, args.sim_id, args.amount, app.clock.now(), source=str(app.loaded.path)
            )
    print(f"{check.sim_id}: balance {check.amount} recorded on {check.today}")
    if check.low:
        print(f"warning: below your low_balance threshold {check.threshold}; an alert is queued")
    return 0


def _scrape(args: argparse.Namespace) -> int:
    from scrapers import ScraperError, decode_text
    from watcher.promotions.jobs import extract_page

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

    with _app(args) as app:
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
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Promotion sources")
    table.add_column("source", no_wrap=True)
    for column in ("watched by", "every", "last success", "next", "known", "problem"):
        table.add_column(column)
    for row in rows:
        who = ", ".join(row["subscribers"]) or "(history only)" if row["watched"] else "—"
        problem = f"{row['failures']} failed: {row['last_error']}" if row["failures"] else ""
        if not row["verified"]:
            problem = f"{problem}; selectors unverified".lstrip("; ")
        table.add_row(
            row["source"],
            who,
            row["every"],
            row["last_success"] or "never",
            row["next_fetch"] or ("due" if row["watched"] else "—"),
            str(row["promotions"]),
            problem,
        )
    Console().print(table)
    return 0


def _every_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _promotions(args: argparse.Namespace) -> int:
    from watcher.promotions.store import as_promotion, list_promotions, promotion_history

    with _app(args) as app:
        zone = app.loaded.config.timezone
        today = app.clock.now().astimezone(zone).date()
        with app.database.session() as session:
            found = list_promotions(
                session,
                operator=args.operator.lower() if args.operator else None,
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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Promotions")
    for column in ("first seen", "source", "title", "until", "price", "link"):
        table.add_column(column)
    for row in rows:
        price = f"{row['price']} {row['currency'] or ''}".strip() if row["price"] else ""
        title = f"{row['title']} (ended)" if row["ended"] else row["title"]
        table.add_row(
            row["first_seen"], row["source"], title, row["ends"] or "", price, row["link"] or ""
        )
    Console().print(table)
    return 0


def _pick_profiles(profiles: dict[str, Profile], ids: list[str], source: Path) -> list[Profile]:
    unknown = [i for i in ids if i not in profiles]
    if unknown:
        known = ", ".join(profiles) or "none"
        raise UsageError(f"no source {', '.join(map(repr, unknown))} in {source} (known: {known})")
    return [profiles[i] for i in ids]


def _print_scrape(
    results: list[ScrapeResult], as_json: bool, *, detail: bool, explain: bool = False
) -> int:
    failed = sum(1 for r in results if r.error is not None)
    if as_json:
        rows = [_scrape_json(r, explain=explain) for r in results]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 1 if failed else 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title="Promotion sources")
    for column in ("source", "status", "promotions", "new", "changed", "ended", "alerts", "note"):
        summary.add_column(column)
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
        summary.add_row(
            r.profile.id,
            r.status,
            str(len(r.promotions)),
            *(str(counts[k]) if r.stored else "—" for k in ("new", "changed", "ended")),
            str(r.alerts) if r.stored else "—",
            note,
        )
    console.print(summary)
    if detail:
        for r in results:
            table = Table(title=r.profile.id)
            for column in ("title", "dates", "price", "link"):
                table.add_column(column)
            for p in r.promotions:
                dates = " – ".join(str(d) for d in (p.starts, p.ends) if d) or (p.date_text or "")
                price = f"{p.price} {p.currency or ''}".strip() if p.price is not None else ""
                table.add_row(p.title, dates, price, p.link or "")
            console.print(table)
    if explain:
        for r in results:
            for line in _explanation(r):
                console.print(line, markup=False, highlight=False)
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
    loaded = load_config(_config_path(args))
    channels = loaded.channels
    names = [args.channel] if args.channel else list(loaded.config.channels)
    if args.channel and args.channel not in loaded.config.channels:
        known = ", ".join(loaded.config.channels) or "none"
        raise UsageError(f"no channel {args.channel!r} in {loaded.path} (defined: {known})")
    language = loaded.config.users[0].language if loaded.config.users else "en"
    targets = [t for name in names for t in channels.targets(name)]
    results = send_test(channels, targets, lambda target: render_test(language, target))
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
    print(f"wrote {path}; edit it, then run: watcher check -c {path}")
    return 0


def _db(args: argparse.Namespace) -> int:
    with _app(args) as app:  # opening the app applies the migrations
        print(f"database {app.database.display_url} is up to date")
    return 0


def _health(args: argparse.Namespace) -> int:
    from watcher.heartbeat import PLANNER, last_beat

    with _app(args) as app:
        with app.database.session() as session:
            at = last_beat(session, PLANNER)
        if at is None:
            print("unhealthy: the daemon has not planned yet")
            return 1
        age = app.clock.now() - at
        if age > timedelta(seconds=args.max_age):
            print(f"unhealthy: last planning pass {int(age.total_seconds())} s ago")
            return 1
        print(f"healthy: last planning pass {int(age.total_seconds())} s ago")
        return 0
