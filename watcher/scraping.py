"""Scraping promotion sources: the scrapers library wired to the database.

Fetching runs concurrently across hosts (the fetcher keeps one request at a time per
host); observing and storing run afterwards in one transaction per source.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from scrapers import (
    Change,
    Fetcher,
    Page,
    Profile,
    Promotion,
    ScraperError,
    Source,
    Validators,
    extract,
    observe,
)
from watcher.db.engine import Database
from watcher.promotion_store import load_state, save_outcome

log = logging.getLogger(__name__)


@dataclass
class ScrapeResult:
    """One source's scrape: what was extracted, or why not, and what changed."""

    profile: Profile
    promotions: list[Promotion] = field(default_factory=list)
    error: ScraperError | None = None
    not_modified: bool = False
    validators: Validators | None = None  # the page's, to make the next fetch conditional
    changes: list[Change] = field(default_factory=list)
    stored: bool = False

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
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
) -> list[ScrapeResult]:
    """Fetch and extract every source; errors become results, never exceptions.

    ``validators`` (by source id) make the requests conditional; a 304 is reported as
    ``not_modified`` with nothing extracted.
    """

    async def one(profile: Profile) -> ScrapeResult:
        result = ScrapeResult(profile)
        try:
            page = await fetcher.fetch(profile.source.url, (validators or {}).get(profile.id))
            if page.not_modified:
                result.not_modified = True
            else:
                result.promotions = extract_page(profile, page, today)
                result.validators = page.validators
        except ScraperError as exc:
            result.error = exc
            log.warning("source %s: %s", profile.id, exc)
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(profile) for profile in profiles)))


def spec_of(source: Source) -> str:
    """A hash of how a source's page is read; changing a selector changes it."""
    described = [source.kind, source.items, sorted(source.fields.items()), source.script]
    return hashlib.sha256(json.dumps(described, ensure_ascii=False).encode()).hexdigest()


def stored_validators(database: Database, profiles: Sequence[Profile]) -> dict[str, Validators]:
    """The ETag / Last-Modified kept from each source's last good fetch, read the same way."""
    with database.session() as session:
        return {
            profile.id: load_state(
                session, profile.id, url=profile.source.url, spec=spec_of(profile.source)
            )[1]
            for profile in profiles
        }


def store_results(database: Database, results: Sequence[ScrapeResult], now: datetime) -> None:
    """Observe each result against the stored state and save it.

    A 304 is a good scrape of the same page as the last good one, so it is observed
    as that page's promotions again: nothing changes, but a failure streak ends and
    absences keep counting, exactly as if the page had been downloaded.
    """
    for result in results:
        source = result.profile.source
        with database.session() as session:
            state, _ = load_state(session, source.id, url=source.url, spec=spec_of(source))
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
            save_outcome(
                session,
                source.id,
                outcome,
                now=now,
                validators=result.validators,
                url=source.url,
                kind=source.kind,
                operator=source.operator,
                promotions=result.promotions,
                spec=spec_of(source),
            )
        result.changes = list(outcome.changes)
        result.stored = True
