"""The one place that builds the object graph: config, catalogue, database, channels, clock."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from watcher.clock import Clock, SystemClock
from watcher.config import LoadedConfig, digest_of, load_config, parse_config, read_config_file
from watcher.errors import ConfigError

if TYPE_CHECKING:
    from scrapers import FetchSettings, Profile
    from watcher.catalogue import Catalogue
    from watcher.channels import Channels
    from watcher.db.engine import Database
    from watcher.db.plain import Server
    from watcher.delivery import Deliverer, DeliveryReport
    from watcher.promotions.alerts import Audience
    from watcher.promotions.jobs import ScrapeResult
    from watcher.service import Metrics
    from watcher.sync import SyncReport

# Delivery, scraping, planning and the database load when first used: a CLI command
# builds an App too, and `watcher status` must not wait for Apprise or httpx (issue 11).

log = logging.getLogger(__name__)

# Replicas on different config files are reported once this has passed: a reload
# reaches each within one planning pass (30 s), a rollout within a few.
MISMATCH_GRACE = timedelta(minutes=3)


class App:
    """A loaded config wired to its database and channels.

    The database is opened (and migrated) on first use, so commands that never touch
    it, such as a dry-run scrape, work without one.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        concurrency: int | None = None,
        fetch_settings: FetchSettings | None = None,
    ) -> None:
        self.env = os.environ if env is None else env
        self.clock = clock or SystemClock()
        self.loaded = loaded
        self._concurrency = concurrency  # None: the config's delivery.workers
        self.stopping = threading.Event()
        self._fixed_fetch_settings = fetch_settings
        self._rng = random.Random()
        self._seen_mtime: int | None = None  # of the last version read, good or bad
        self._reported_bad: str | None = None  # digest of the last bad version reported
        # This daemon among the replicas on one database (its heartbeat row is named
        # by it and by its config's digest), and since when it sees replicas running
        # different config files.
        self.replica = secrets.token_hex(6)
        self._mismatch_since: datetime | None = None
        # Its own last beat, and since when it has beaten with no long gap (heartbeat).
        self._beaten: datetime | None = None
        self._steady_since: datetime | None = None

    @classmethod
    def from_path(
        cls, path: Path | str, *, clock: Clock | None = None, env: Mapping[str, str] | None = None
    ) -> App:
        return cls(load_config(path, env), clock=clock, env=env)

    @property
    def concurrency(self) -> int:
        """Sends in flight at once in this process."""
        if "deliverer" in self.__dict__:
            return self.deliverer.concurrency
        return self._concurrency or self.loaded.config.delivery.workers

    @property
    def catalogue(self) -> Catalogue:
        return self.loaded.catalogue

    @property
    def channels(self) -> Channels:
        return self.loaded.channels

    @property
    def fetch_settings(self) -> FetchSettings:
        return self._fixed_fetch_settings or self.loaded.config.scraping.fetch_settings()

    @functools.cached_property
    def database(self) -> Database:
        from watcher.db.engine import open_database, resolve_database_url

        config = self.loaded.config
        return open_database(
            resolve_database_url(config.database, self.loaded.path.parent, self.env)
        )

    @functools.cached_property
    def reader(self) -> Database:
        """The same database opened for reading only: not migrated, never written."""
        from watcher.db.engine import open_database_readonly, resolve_database_url

        config = self.loaded.config
        return open_database_readonly(
            resolve_database_url(config.database, self.loaded.path.parent, self.env)
        )

    @functools.cached_property
    def plain_source(self) -> Path | Server | None:
        """The SQLite file or PostgreSQL server that ``status`` and ``health`` read
        without SQLAlchemy (:mod:`watcher.db.plain`); None for any other database."""
        from watcher.db.plain import plain_source

        return plain_source(self.loaded.config.database, self.loaded.path.parent, self.env)

    @functools.cached_property
    def deliverer(self) -> Deliverer:
        from watcher import outbox
        from watcher.delivery import Deliverer

        deliverer = Deliverer(
            self.database,
            self.loaded,
            self.clock,
            concurrency=self._concurrency,
            stopping=self.stopping,
            on_outcome=self.metrics.message,
            owner=outbox.claim_owner(self.replica),  # its claims live as long as it beats
        )
        self.metrics.watch_delivery(deliverer.snapshot)
        return deliverer

    @functools.cached_property
    def metrics(self) -> Metrics:
        """What this process did, and what the database holds, for ``/metrics``."""
        from watcher.service import Metrics

        return Metrics(lambda: self.database, self.clock)

    def admin_targets(self) -> list[str]:
        return self.loaded.admin_targets()

    def sync(self, *, by_daemon: bool = False) -> SyncReport:
        """Bring the database in line with the config; ``by_daemon`` also records that
        the daemon now runs on this version of the file (``watcher status`` compares)."""
        from watcher.sync import record_loaded, sync_config

        with self.database.session() as session:
            report = sync_config(session, self.loaded, self.clock.now())
            if by_daemon:
                record_loaded(session, self.loaded, self.clock.now())
            return report

    def beat_replica(self) -> None:
        """Record that this daemon is alive (and on which config), in a transaction of its
        own; drop the rows of daemons gone for a week.

        The daemon does it every few seconds, whatever planning and delivery are doing:
        a replica that stops beating has its claims taken over by the others
        (``outbox.SENDER_DEAD``). ``run --once`` never beats, so its claims keep the lease.
        """
        from watcher.heartbeat import STEADY_GAP, beat_replica, prune_replicas

        now = self.clock.now()
        steady_since = self._steady_since
        if steady_since is None or self._beaten is None or now - self._beaten > STEADY_GAP:
            steady_since = now  # first beat, or the first after the database was away
        with self.database.session() as session:
            beat_replica(session, self.replica, self.loaded.digest, now, steady_since)
            prune_replicas(session, now)
        self._beaten, self._steady_since = now, steady_since

    def retire_replica(self) -> None:
        """Tell the other replicas that this daemon stopped: not live, nothing of it held."""
        from watcher.heartbeat import retire_replica

        with self.database.session() as session:
            retire_replica(session, self.replica, self.clock.now())

    def plan(self) -> int:
        from watcher.heartbeat import PLANNER, REPLICA_LIVE, beat, live_replicas
        from watcher.leases import exclusive
        from watcher.reminders.planner import plan_due

        now = self.clock.now()
        with (
            exclusive(self.database, "plan") as mine,
            self.metrics.planning.time(),
            self.database.session() as session,
        ):
            written = plan_due(session, now) if mine else 0  # else another replica's pass
            if mine:
                beat(session, PLANNER, now)
            # This daemon's own row is beaten by beat_replica, outside this transaction.
            live = live_replicas(session, now, REPLICA_LIVE)
        if "deliverer" in self.__dict__:  # each replica takes its share of a service's limits
            self.deliverer.set_replicas(max(1, len(live)))
        self._check_replicas(live, now)
        return written

    def _check_replicas(self, live: Mapping[str, str], now: datetime) -> None:
        """Tell ``admin`` once when the daemons on this database run different config
        files for longer than a reload takes to reach them all (a half-done rollout)."""
        from watcher import outbox
        from watcher.messages import Message

        digests = sorted(set(live.values()))
        if len(digests) < 2:
            self._mismatch_since = None
            return
        if self._mismatch_since is None:
            self._mismatch_since = now
        if now - self._mismatch_since < MISMATCH_GRACE:
            return
        counts = ", ".join(
            f"{digest} ({sum(1 for d in live.values() if d == digest)})" for digest in digests
        )
        outbox.report_to_admin(
            self.database,
            self.admin_targets(),
            outbox.config_mismatch_key(digests),
            Message(
                "SIM Watcher: replicas run different config files",
                f"{len(live)} daemons share this database but run {len(digests)} versions of "
                f"the config (first 8 hex digits of each file's SHA-256, and how many run it): "
                f"{counts}. This one runs {self.loaded.digest[:8]} from {self.loaded.path}.",
            ),
            now,
        )

    def audience(self) -> Audience:
        """Who hears of promotion changes and source trouble, per the current config."""
        from watcher.promotions.alerts import audience_of

        return audience_of(self.loaded)

    def scrape(
        self,
        profiles: Sequence[Profile] | None = None,
        *,
        every_watched: bool = False,
        dry_run: bool = False,
        on_done: Callable[[ScrapeResult], None] | None = None,
    ) -> list[ScrapeResult]:
        """Scrape ``profiles``, or the watched sources that are due (all of them with
        ``every_watched``, as ``run --once`` does); what the daemon and the CLI run.

        Each result is stored as its source finishes, with its changes matched to
        subscriptions, then the alerts due now are queued (digests wait for their time).
        ``dry_run`` fetches without conditional headers and stores nothing: the
        database is not touched. ``on_done`` is called with each result as it comes.
        """
        if profiles is not None:
            return self._scrape(profiles, False, dry_run, on_done)
        from watcher.leases import exclusive

        # The due sources of all replicas: one replica scrapes them, the others skip.
        with exclusive(self.database, "scrape") as mine:
            return self._scrape(None, every_watched, dry_run, on_done) if mine else []

    def _scrape(
        self,
        profiles: Sequence[Profile] | None,
        every_watched: bool,
        dry_run: bool,
        on_done: Callable[[ScrapeResult], None] | None,
    ) -> list[ScrapeResult]:
        from scrapers import Fetcher, Renderer
        from watcher.promotions.jobs import due_sources, fetch_all, store_results, stored_validators

        if profiles is None:
            watched = self.loaded.config.watched_sources()
            # Also marks the sources no longer watched inactive.
            profiles = due_sources(self.database, watched, self.clock.now())
            if every_watched:
                profiles = list(watched.values())
        if not profiles:
            return []
        today = self.clock.now().astimezone(self.loaded.config.timezone).date()
        validators = {} if dry_run else stored_validators(self.database, profiles)
        audience = self.audience()

        def done(result: ScrapeResult) -> None:
            outcome = "error" if result.error else "not_modified" if result.not_modified else "ok"
            self.metrics.scraped(result.profile.id, outcome, result.elapsed)
            if not dry_run:
                # As each source finishes: a long scrape cut short by a stop keeps what
                # it did, and the sources not stored stay due for the next start.
                store_results(self.database, [result], self.clock.now(), audience, self._rng)
            if on_done is not None:
                on_done(result)

        import asyncio

        async def fetch() -> list[ScrapeResult]:
            async with contextlib.AsyncExitStack() as stack:
                fetcher = await stack.enter_async_context(Fetcher(self.fetch_settings))
                renderer = None
                if any(profile.source.render == "browser" for profile in profiles):
                    # Shares the fetcher: one robots.txt cache, one private-network rule.
                    settings = self.loaded.config.scraping.render_settings()
                    renderer = await stack.enter_async_context(Renderer(settings, fetcher=fetcher))
                return await fetch_all(
                    profiles, fetcher, today, validators, on_done=done, renderer=renderer
                )

        results = asyncio.run(fetch())
        if not dry_run:
            self.flush_promotions()
        return results

    def flush_promotions(self) -> int:
        """Queue the promotion alerts and digests that are due; return messages queued."""
        from watcher.promotions.alerts import flush

        audience = self.audience()
        if not audience.subscriptions:
            return 0
        with self.database.session() as session:
            return flush(session, audience, self.clock.now())

    def deliver(self) -> DeliveryReport:
        return self.deliverer.deliver_due()

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Re-read the config file if it changed; True if a new version took effect.

        ``force`` (SIGHUP) reads the file whatever its mtime says; a file whose content
        is what is in force, or the bad version already reported, is still a no-op.

        The new config, catalogue and channels are built and the database synced to
        them before anything is swapped, so a bad edit leaves all of the old ones in
        force. Each bad version of the file is logged and reported to the admin once.
        """
        from watcher import outbox
        from watcher.messages import Message
        from watcher.sync import record_loaded, sync_config

        path = self.loaded.path
        try:
            data, mtime = read_config_file(path)
        except ConfigError:
            return False  # gone or unreadable for a moment (an editor saving): keep going
        if not force and mtime in (self.loaded.mtime_ns, self._seen_mtime):
            return False
        digest = digest_of(data)
        if digest in (self.loaded.digest, self._reported_bad):
            self._seen_mtime = mtime  # saved again unchanged
            return False
        try:
            loaded = parse_config(data, str(path), self.env)
        except ConfigError as exc:
            self._seen_mtime, self._reported_bad = mtime, digest
            self.metrics.reloads.labels(result="rejected").inc()
            for line in exc.lines():
                log.error("config changed but is invalid, keeping the previous one: %s", line)
            outbox.report_to_admin(
                self.database,
                self.admin_targets(),
                outbox.config_invalid_key(digest),
                Message("SIM Watcher: config file is invalid", f"Kept the previous config.\n{exc}"),
                self.clock.now(),
            )
            return False
        loaded = replace(loaded, mtime_ns=mtime)
        with self.database.session() as session:
            sync_config(session, loaded, self.clock.now())
            record_loaded(session, loaded, self.clock.now())  # only the daemon reloads
        self.loaded = loaded
        if "deliverer" in self.__dict__:
            self.deliverer.loaded = loaded
        self._seen_mtime, self._reported_bad = mtime, None
        self.metrics.reloads.labels(result="accepted").inc()
        log.info("config reloaded from %s", path)
        from watcher.config_diagnostics import log_warnings

        log_warnings(loaded.config, str(path))
        return True

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        if "deliverer" in self.__dict__:
            self.deliverer.close()
        if "database" in self.__dict__:
            self.database.close()
        if "reader" in self.__dict__:
            self.reader.close()
