"""The one place that builds the object graph: config, catalogue, database, channels, clock."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Mapping
from pathlib import Path

from scrapers import Fetcher, FetchSettings
from watcher.catalogue import Catalogue, load_catalogue
from watcher.clock import Clock, SystemClock
from watcher.config import LoadedConfig, load_config
from watcher.db.engine import Database, open_database, resolve_database_url
from watcher.db.models import Heartbeat
from watcher.delivery import Channels, Deliverer, DeliveryReport, report_to_admin
from watcher.errors import ConfigError
from watcher.messages import Message
from watcher.outbox import dialect_insert
from watcher.planner import plan_due
from watcher.promotion_alerts import Audience, audience_of, flush
from watcher.scraping import ScrapeResult, due_sources, fetch_all, store_results, stored_validators
from watcher.sync import SyncReport, sync_config

log = logging.getLogger(__name__)


class App:
    """A loaded config wired to its database and channels."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        concurrency: int = 8,
        fetch_settings: FetchSettings | None = None,
    ) -> None:
        self.env = os.environ if env is None else env
        self.clock = clock or SystemClock()
        self.loaded = loaded
        self.catalogue: Catalogue = load_catalogue(loaded.config.operators, source=str(loaded.path))
        url = resolve_database_url(loaded.config.database, loaded.path.parent, self.env)
        self.database: Database = open_database(url)
        self.stopping = threading.Event()
        self.channels = Channels(loaded.config.channels)
        self.deliverer = Deliverer(
            self.database,
            self.channels,
            self.catalogue,
            self.clock,
            admin=loaded.config.admin,
            concurrency=concurrency,
            stopping=self.stopping,
        )
        self._fixed_fetch_settings = fetch_settings
        self.fetch_settings = fetch_settings or loaded.config.scraping.fetch_settings()
        self._rng = random.Random()
        self._bad_config_mtime: int | None = None

    @classmethod
    def from_path(
        cls, path: Path | str, *, clock: Clock | None = None, env: Mapping[str, str] | None = None
    ) -> App:
        return cls(load_config(path, env), clock=clock, env=env)

    def admin_targets(self) -> list[str]:
        return [t for name in self.loaded.config.admin for t in self.channels.targets(name)]

    def sync(self) -> SyncReport:
        with self.database.session() as session:
            return sync_config(session, self.loaded.config, self.catalogue, self.clock.now())

    def plan(self) -> int:
        now = self.clock.now()
        with self.database.session() as session:
            written = plan_due(session, now)
            insert = dialect_insert(session.get_bind().dialect.name)
            session.execute(
                insert(Heartbeat)
                .values(name="planner", at=now)
                .on_conflict_do_update(index_elements=["name"], set_={"at": now})
            )
            return written

    def audience(self) -> Audience:
        """Who hears of promotion changes and source trouble, per the current config."""
        config = self.loaded.config
        targets = {name: self.channels.targets(name) for name in config.channels}
        return audience_of(config, targets, self.admin_targets(), self.catalogue)

    def scrape(self, *, every_source: bool = False) -> list[ScrapeResult]:
        """Scrape the watched sources that are due (all of them with ``every_source``).

        Stores what was found, matches it against subscriptions and queues the
        immediate alerts; digests wait for ``flush_promotions`` at their time.
        """
        profiles = self.loaded.config.watched_sources()
        now = self.clock.now()
        due = due_sources(self.database, profiles, now)  # also marks unwatched ones inactive
        chosen = list(profiles.values()) if every_source else due
        if not chosen:
            return []
        today = now.astimezone(self.loaded.config.timezone).date()
        validators = stored_validators(self.database, chosen)
        audience = self.audience()

        def store(result: ScrapeResult) -> None:
            # As each source finishes: a long scrape cut short by a stop keeps what it
            # did, and the sources not stored stay due for the next start.
            store_results(self.database, [result], self.clock.now(), audience, self._rng)

        async def fetch() -> list[ScrapeResult]:
            async with Fetcher(self.fetch_settings) as fetcher:
                return await fetch_all(chosen, fetcher, today, validators, on_done=store)

        results = asyncio.run(fetch())
        self.flush_promotions()
        return results

    def flush_promotions(self) -> int:
        """Queue the promotion alerts and digests that are due; return messages queued."""
        audience = self.audience()
        if not audience.subscriptions:
            return 0
        with self.database.session() as session:
            return flush(session, audience, self.clock.now())

    def deliver(self) -> DeliveryReport:
        return self.deliverer.deliver_due()

    def reload_if_changed(self) -> bool:
        """Re-read the config file if it changed on disk; keep the old one if the new is bad."""
        path = self.loaded.path
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime in (self.loaded.mtime_ns, self._bad_config_mtime):
            return False
        try:
            loaded = load_config(path, self.env)
        except ConfigError as exc:
            self._bad_config_mtime = mtime
            log.error("config %s changed but is invalid; keeping the previous one:\n%s", path, exc)
            report_to_admin(
                self.database,
                self.admin_targets(),
                f"config-invalid:{mtime}",
                Message("SIM Watcher: config file is invalid", f"Kept the previous config.\n{exc}"),
                self.clock.now(),
            )
            return False
        self.loaded = loaded
        self.catalogue = load_catalogue(loaded.config.operators, source=str(loaded.path))
        self.channels = Channels(loaded.config.channels)
        self.deliverer.channels = self.channels
        self.deliverer.catalogue = self.catalogue
        self.deliverer.admin_targets = self.admin_targets()
        self.fetch_settings = self._fixed_fetch_settings or loaded.config.scraping.fetch_settings()
        self.sync()
        log.info("config reloaded from %s", path)
        return True

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        self.deliverer.close()
        self.database.close()
