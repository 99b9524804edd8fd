"""Scraping promotion sources: the scrapers library wired to the database.

Fetching runs concurrently across hosts (the fetcher keeps one request at a time per
host); observing and storing run afterwards in one transaction per source.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from sqlalchemy import select

from scrapers import (
    Change,
    Detection,
    Fetcher,
    FetchError,
    Page,
    Profile,
    Promotion,
    Renderer,
    ScraperError,
    Validators,
    discover_feed,
    extract,
    extract_explained,
    jittered,
    looks_like_feed,
    observe,
)
from watcher.db.engine import Database
from watcher.db.models import SourceRow
from watcher.promotions.alerts import (
    Audience,
    match,
    report_source_events,
    report_stale_selectors,
)
from watcher.promotions.store import load_state, load_validators, save_outcome, spec_of

log = logging.getLogger(__name__)

JITTER = 0.1  # of a source's `every`


@dataclass
class ScrapeResult:
    """One source's scrape: what was extracted, or why not, and what changed."""

    profile: Profile
    promotions: list[Promotion] = field(default_factory=list)
    error: ScraperError | None = None
    not_modified: bool = False
    detection: Detection | None = None  # kind auto: how the promotions were found
    feed_url: str | None = None  # kind auto: the feed the page named, read instead
    fell_back: bool = False  # the selectors matched nothing, and auto found the list
    validators: Validators | None = None  # the page's, to make the next fetch conditional
    changes: list[Change] = field(default_factory=list)
    alerts: int = 0  # subscriber alerts written for the changes
    stored: bool = False
    elapsed: float = 0.0  # seconds to fetch and read the source
    held: bool = False  # the page ballooned: held, nothing of it stored or alerted

    @property
    def read_as(self) -> str | None:
        """How a good scrape read the page (None: not read, or auto found nothing)."""
        if self.error is not None or self.not_modified:
            return None
        if self.feed_url is not None:
            return "feed-link"
        if self.detection is not None:
            chosen = self.detection.chosen
            return None if chosen is None else f"auto:{chosen.strategy}"
        return self.profile.source.kind

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.held:
            return "held"
        return "not modified" if self.not_modified else "ok"


def extract_page(profile: Profile, page: Page, today: date) -> list[Promotion]:
    """The promotions of a fetched (not 304) page."""
    return extract(profile.source, page.text or "", page.url, today)


async def fetch_all(
    profiles: Sequence[Profile],
    fetcher: Fetcher,
    today: date,
    validators: Mapping[str, Validators] | None = None,
    on_done: Callable[[ScrapeResult], None] | None = None,
    renderer: Renderer | None = None,
) -> list[ScrapeResult]:
    """Fetch and extract every source; errors become results, never exceptions.

    ``validators`` (by source id) make the requests conditional; a 304 is reported as
    ``not_modified`` with nothing extracted. Sources with ``render: browser`` are
    rendered by ``renderer`` instead (never conditionally). A ``kind: auto`` page that
    names a feed with ``<link rel="alternate">`` has the feed read instead, fetched by
    the same fetcher (robots, politeness, the private-network rule); if the feed fails
    or lists nothing, the page is read as it is.
    """

    async def get(profile: Profile) -> Page:
        if profile.source.render == "browser":
            if renderer is None:
                raise FetchError("render: browser, but no browser was set up", profile.source.url)
            return await renderer.render(profile.source.url)
        return await fetcher.fetch(profile.source.url, (validators or {}).get(profile.id))

    async def one(profile: Profile) -> ScrapeResult:
        result = ScrapeResult(profile)
        started = time.monotonic()
        try:
            page = await get(profile)
            if page.not_modified:
                result.not_modified = True
            else:
                await _read(profile, page, fetcher, today, result)
                # Read through the feed it names, the page may stay unchanged (304) while
                # the feed changes: such a page is always fetched in full.
                result.validators = page.validators if result.feed_url is None else Validators()
        except ScraperError as exc:
            result.error = exc
            log.warning("source %s: %s", profile.id, exc)
        result.elapsed = time.monotonic() - started
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(profile) for profile in profiles)))


async def _read(
    profile: Profile, page: Page, fetcher: Fetcher, today: date, result: ScrapeResult
) -> None:
    source, text = profile.source, page.text or ""
    if source.kind == "auto" and not looks_like_feed(text):
        feed_url = discover_feed(text, page.url)
        if feed_url is not None and feed_url != page.url:
            try:
                feed = await fetcher.fetch(feed_url)
                reading = extract_explained(
                    replace(source, url=feed_url), feed.text or "", feed.url, today
                )
            except ScraperError as exc:
                log.info(
                    "source %s: the feed it names failed, reading the page: %s", source.id, exc
                )
            else:
                if reading.promotions:
                    result.promotions, result.detection = reading.promotions, reading.detection
                    result.feed_url = feed_url
                    return
    reading = extract_explained(source, text, page.url, today)
    result.promotions, result.detection = reading.promotions, reading.detection
    if not reading.promotions and source.kind in ("html", "json") and not looks_like_feed(text):
        # The selectors match nothing: if auto finds a list, this scrape uses it (the
        # admin hears of it once), rather than the page looking empty.
        rescue = extract_explained(
            replace(source, kind="auto", items=None, fields={}), text, page.url, today
        )
        if rescue.promotions:
            result.promotions, result.detection = rescue.promotions, rescue.detection
            result.fell_back = True
            log.warning(
                "source %s: its selectors match nothing; auto found %d promotions",
                source.id,
                len(rescue.promotions),
            )


def stored_validators(database: Database, profiles: Sequence[Profile]) -> dict[str, Validators]:
    """The ETag / Last-Modified kept from each source's last good fetch of the same page."""
    with database.session() as session:
        return {profile.id: load_validators(session, profile.source) for profile in profiles}


def store_results(
    database: Database,
    results: Sequence[ScrapeResult],
    now: datetime,
    audience: Audience | None = None,
    rng: random.Random | None = None,
) -> None:
    """Observe each result against the stored state and save it, with its alerts.

    One transaction per source holds its new state, its change history, the alerts of
    its subscribers and the admin messages about it: a crash leaves either all of a
    source's scrape stored or none of it, and a rerun never alerts twice.

    A 304 is a good scrape of the same page as the last good one, so it is observed
    as that page's promotions again: nothing changes, but a failure streak ends and
    absences keep counting, exactly as if the page had been downloaded.
    """
    rng = rng or random.Random()
    for result in results:
        profile = result.profile
        source = profile.source
        with database.session() as session:
            state = load_state(session, source, result.read_as)
            seen: Sequence[Promotion] | ScraperError
            if result.error is not None:
                seen = result.error
            elif result.not_modified:
                seen = [
                    known.to_promotion(source.id)
                    for known in state.known.values()
                    if known.missing_runs == 0 and not known.ended
                ]
            else:
                seen = result.promotions
            outcome = observe(source.id, state, seen)
            # A held page is not the source's page: its validators would make the next
            # fetch a 304 (read as the held page again), and how it was read is no news.
            rows = save_outcome(
                session,
                source,
                outcome,
                now=now,
                validators=None if outcome.held else result.validators,
                promotions=result.promotions,
                next_fetch_at=next_fetch_time(profile, now, rng),
                read_as=None if outcome.held else result.read_as,
            )
            if audience is not None:
                if rows:
                    result.alerts = match(session, audience, source.id, outcome.changes, rows, now)
                report_source_events(session, audience, outcome.admin, outcome.state.run, now)
                if result.fell_back:
                    report_stale_selectors(session, audience, source, len(result.promotions), now)
            elif outcome.admin:
                for event in outcome.admin:
                    log.warning("source %s: %s", event.source_id, event.message)
        result.changes = list(outcome.changes)
        result.held = outcome.held
        result.stored = True


def next_fetch_time(profile: Profile, now: datetime, rng: random.Random) -> datetime:
    """``now`` plus the source's ``every``, give or take a tenth.

    The jitter keeps sources that were added together from firing in lockstep ever after.
    """
    return now + jittered(profile.every, rng, JITTER)


def due_sources(
    database: Database, profiles: Mapping[str, Profile], now: datetime
) -> list[Profile]:
    """The watched sources to scrape now, and the others marked unwatched.

    Due: never scraped; past its ``next_fetch_at``; scraped longer ago than its
    (maybe just shortened) ``every`` allows; or read another way than last time (a URL
    or selector fixed in the config is tried at once).
    """
    with database.session() as session:
        rows = {row.id: row for row in session.scalars(select(SourceRow))}
        for stored in rows.values():
            stored.active = stored.id in profiles
        due = []
        for profile in profiles.values():
            row = rows.get(profile.id)
            if (
                row is None
                or row.last_fetched_at is None
                or row.next_fetch_at is None
                or row.next_fetch_at <= now
                or row.last_fetched_at + profile.every * (1 + JITTER) <= now
                or row.url != profile.source.url
                or row.spec != spec_of(profile.source)
            ):
                due.append(profile)
        return due
