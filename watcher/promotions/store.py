"""Promotion sources in the database: what change detection remembers, and the history.

``scrapers.observe`` is a pure function from (remembered state, one scrape) to
(state to remember, changes); these functions are the two ends of that loop:
``load_state`` before a scrape, ``save_outcome`` after it. What is loaded back equals
what was saved, so a daemon restarted between two scrapes behaves exactly as one that
kept running. Every function takes a Session and leaves the transaction to the caller.

Choices made here:

- Promotion rows are never deleted. An ended promotion stays in ``known`` (observe
  keeps it there, with ``ended=True``), so one that comes back is reported as the
  return of what was known, and keeps its first-seen time. Only a new baseline drops
  keys from ``known``; their rows are marked ended and ``forgotten`` and are not
  loaded again (a key seen again later takes its row back).
- A promotion changes at most once per scrape, so change rows are unique per
  (promotion, run): saving the same outcome twice writes and returns the same rows,
  and an outcome older than what is stored (another process scraped the source in the
  meantime) is dropped with a warning rather than winding the source back.
- Values a column cannot hold exactly (a price of 10^20, or with a third decimal) are
  stored as NULL, never rounded: observe compares price *texts* when only one side was
  parsed, so NULL costs nothing, while a rounded price would read as a price change.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from scrapers import Change, Known, Outcome, Promotion, SourceState, Validators
from watcher.db.models import PromotionChangeRow, PromotionRow, SourceRow

log = logging.getLogger(__name__)

__all__ = [
    "SourceHealth",
    "key_hash",
    "list_promotions",
    "load_state",
    "promotion_history",
    "save_outcome",
    "source_health",
]

# (digits, places) of the Numeric columns; see PromotionRow.
_PRICE = (14, 2)
_DATA_GB = (10, 3)

# The PromotionRow columns that mirror a Known field of the same name.
_KNOWN_FIELDS = (
    "key",
    "title",
    "link",
    "summary",
    "date_text",
    "starts",
    "ends",
    "price_text",
    "price",
    "currency",
    "missing_runs",
    "ended",
    "first_seen_run",
    "last_seen_run",
)


def key_hash(key: str) -> str:
    """The SHA-256 of a promotion key: what ``promotions`` is unique on, with the source."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_state(
    session: Session, source_id: str, *, url: str | None = None, spec: str | None = None
) -> tuple[SourceState, Validators]:
    """What change detection remembers about a source, and its conditional-request validators.

    A source never saved gives ``SourceState()`` and ``Validators()``. With ``url``, the
    validators are returned only if they were stored for that URL: an ETag or a
    Last-Modified date of another page must not make the new one look unchanged. The
    same goes for ``spec`` (how the page is read): after a selector fix, a 304 would
    keep the new selectors from ever seeing the page; and since the fixed selectors
    may key the same promotions differently, the next good scrape is a new baseline.
    """
    source = session.get(SourceRow, source_id)
    if source is None:
        return SourceState(), Validators()
    columns = [getattr(PromotionRow, name) for name in _KNOWN_FIELDS]
    rows = session.execute(
        select(*columns)
        .where(PromotionRow.source_id == source_id, PromotionRow.forgotten.is_(False))
        .order_by(PromotionRow.id)
    )
    # Insertion order is observe's order for ``known``, which orders its "ended" changes.
    known = {row.key: Known(**row._asdict()) for row in rows}
    state = SourceState(
        known=known,
        baseline_done=source.baseline_done,
        run=source.run,
        failures=source.failures,
        last_error=source.last_error,
        alerted_failure=source.alerted_failure,
        empty_runs=source.empty_runs,
        last_item_count=source.last_item_count,
        alerted_empty=source.alerted_empty,
    )
    if spec is not None and source.spec is not None and spec != source.spec:
        # Read another way (a selector fixed), the same promotions may get other keys:
        # the next good scrape is a silent baseline again rather than a flood of "new".
        return replace(state, baseline_done=False), Validators()
    if url is not None and url != source.url:
        return state, Validators()
    return state, Validators(etag=source.etag, last_modified=source.last_modified)


def save_outcome(
    session: Session,
    source_id: str,
    outcome: Outcome,
    *,
    now: datetime,
    validators: Validators | None,
    url: str,
    kind: str,
    operator: str | None,
    promotions: Sequence[Promotion] = (),
    next_fetch_at: datetime | None = None,
    spec: str | None = None,
) -> list[PromotionChangeRow]:
    """Store what observing one scrape of ``source_id`` produced; return its change rows.

    The source row takes ``outcome.state``'s counters, and the promotion rows its
    ``known`` (rows of keys no longer known are kept as they are). One change row is
    written per ``outcome.changes`` entry and returned, in that order, for the caller to
    turn into alerts. ``now`` is when the scrape happened: it sets ``last_fetched_at``,
    ``last_success_at`` (unless the scrape failed), and the first-seen, last-seen and
    ended times of promotions.

    ``validators`` are those of the fetched page; None keeps the stored ones, which is
    what a failed scrape should pass (and an unreadable page too: its validators would
    turn the next fetch into a 304 and the page would never be read again). Change
    detection does not keep a promotion's image and data allowance; they are taken
    from the scrape's ``promotions`` when given, else from ``outcome.changes``.
    ``next_fetch_at``, when given, is stored for the scheduler.

    A page of promotions costs a fixed number of statements, not one per promotion.
    """
    state = outcome.state
    source = session.scalar(select(SourceRow).where(SourceRow.id == source_id).with_for_update())
    replay = False
    if source is None:
        source = SourceRow(id=source_id, active=True)
        session.add(source)
    elif source.run > state.run:
        log.warning(
            "not saving run %d of source %s: run %d is already stored",
            state.run,
            source_id,
            source.run,
        )
        return []
    else:
        replay = source.run == state.run
    _write_source(source, state, now, validators, url, spec, kind, operator, next_fetch_at)

    rows = {
        row.key: row
        for row in session.scalars(select(PromotionRow).where(PromotionRow.source_id == source_id))
    }
    ids = {key: row.id for key, row in rows.items()}
    extras = _extras(outcome.changes, promotions)
    fresh: list[dict[str, object]] = []
    for key, known in state.known.items():
        values = _values(known, state.run, now, extras.get(key))
        row = rows.get(key)
        if row is None:
            values.setdefault("last_seen_at", now)
            ended_at = now if known.ended else None
            # Every dict with the same keys, so they make one INSERT.
            first = {"source_id": source_id, "key_hash": key_hash(key), "first_seen_at": now}
            fresh.append(
                {
                    **first,
                    "image": None,
                    "data_gb": None,
                    "forgotten": False,
                    **values,
                    "ended_at": ended_at,
                }
            )
            continue
        if known.ended and not row.ended:
            row.ended_at = now
        elif not known.ended:
            row.ended_at = None
        row.forgotten = False
        for name, value in values.items():
            setattr(row, name, value)
    for key, row in rows.items():
        if key not in state.known and not row.forgotten:
            # Only a new baseline drops keys (observe keeps ended promotions): these are
            # what the page read the old way gave. Loaded back, they would "end" and
            # could alert; as history they are ended and forgotten.
            row.forgotten = True
            if not row.ended:
                row.ended, row.ended_at = True, now
    session.flush()  # the source row before its promotions; updates go as one executemany
    if fresh:
        # One multi-row INSERT: the ORM would insert objects one by one on SQLite to
        # read back each id in order, which we do not need.
        hashes = {key_hash(key): key for key in state.known if key not in rows}
        inserted = session.execute(
            insert(PromotionRow).returning(PromotionRow.id, PromotionRow.key_hash), fresh
        )
        ids.update((hashes[row.key_hash], row.id) for row in inserted)
    if not outcome.changes:
        return []

    recorded: dict[int, PromotionChangeRow] = {}
    if replay:
        recorded = {
            change.promotion_id: change
            for change in session.scalars(
                select(PromotionChangeRow).where(
                    PromotionChangeRow.source_id == source_id,
                    PromotionChangeRow.run == state.run,
                )
            )
        }
    missing = [
        _change_values(source_id, ids[change.promotion.key], change, state.run, now)
        for change in outcome.changes
        if ids[change.promotion.key] not in recorded
    ]
    if missing:
        recorded.update(
            (change.promotion_id, change)
            for change in session.scalars(
                insert(PromotionChangeRow).returning(PromotionChangeRow), missing
            )
        )
    return [recorded[ids[change.promotion.key]] for change in outcome.changes]


def list_promotions(
    session: Session,
    *,
    operator: str | None = None,
    active_only: bool = False,
    today: date | None = None,
    limit: int | None = None,
) -> list[PromotionRow]:
    """Known promotions, newest first (and in page order within one scrape).

    ``operator`` keeps those of that operator's sources. ``active_only`` keeps those
    not ended, of sources still watched, and, given ``today``, not past their end date.
    """
    query = select(PromotionRow)
    if operator is not None or active_only:
        query = query.join(SourceRow, SourceRow.id == PromotionRow.source_id)
    if operator is not None:
        query = query.where(SourceRow.operator == operator)
    if active_only:
        query = query.where(PromotionRow.ended.is_(False), SourceRow.active.is_(True))
        if today is not None:
            query = query.where(or_(PromotionRow.ends.is_(None), PromotionRow.ends >= today))
    query = query.order_by(PromotionRow.first_seen_at.desc(), PromotionRow.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class SourceHealth:
    """How a source's scrapes went, for ``watcher sources``."""

    last_success_at: datetime | None
    next_fetch_at: datetime | None
    failures: int
    last_error: str | None
    active_promotions: int


def source_health(session: Session) -> dict[str, SourceHealth]:
    """Every source ever scraped, by id."""
    counts = dict(
        session.execute(
            select(PromotionRow.source_id, func.count())
            .where(PromotionRow.ended.is_(False))
            .group_by(PromotionRow.source_id)
        ).all()
    )
    return {
        row.id: SourceHealth(
            last_success_at=row.last_success_at,
            next_fetch_at=row.next_fetch_at,
            failures=row.failures,
            last_error=row.last_error,
            active_promotions=counts.get(row.id, 0),
        )
        for row in session.scalars(select(SourceRow))
    }


def promotion_history(
    session: Session, promotion_ids: Sequence[int]
) -> dict[int, list[PromotionChangeRow]]:
    """The recorded changes of these promotions, oldest first, by promotion id."""
    history: dict[int, list[PromotionChangeRow]] = {}
    for start in range(0, len(promotion_ids), 500):  # bound the IN list
        chunk = promotion_ids[start : start + 500]
        query = (
            select(PromotionChangeRow)
            .where(PromotionChangeRow.promotion_id.in_(chunk))
            .order_by(PromotionChangeRow.promotion_id, PromotionChangeRow.run)
        )
        for change in session.scalars(query):
            history.setdefault(change.promotion_id, []).append(change)
    return history


def _write_source(
    source: SourceRow,
    state: SourceState,
    now: datetime,
    validators: Validators | None,
    url: str,
    spec: str | None,
    kind: str,
    operator: str | None,
    next_fetch_at: datetime | None,
) -> None:
    moved = source.url is not None and source.url != url
    reread = spec is not None and source.spec is not None and source.spec != spec
    if (moved or reread) and validators is None:
        # Validators belong to the page, read the way, they came from.
        source.etag = source.last_modified = None
    source.url = url
    if spec is not None:
        source.spec = spec
    source.kind = kind
    source.operator = operator
    if validators is not None:
        source.etag = validators.etag
        source.last_modified = validators.last_modified
    source.baseline_done = state.baseline_done
    source.run = state.run
    source.failures = state.failures
    source.last_error = state.last_error
    source.alerted_failure = state.alerted_failure
    source.empty_runs = state.empty_runs
    source.last_item_count = state.last_item_count
    source.alerted_empty = state.alerted_empty
    source.last_fetched_at = now
    if state.failures == 0:  # observe resets the streak on every scrape that read the page
        source.last_success_at = now
    if next_fetch_at is not None:
        source.next_fetch_at = next_fetch_at


def _values(known: Known, run: int, now: datetime, extra: Promotion | None) -> dict[str, object]:
    """The promotion columns to write for ``known`` (ended_at is the caller's)."""
    values: dict[str, object] = {name: getattr(known, name) for name in _KNOWN_FIELDS}
    values["price"] = _exact(known.price, *_PRICE)
    if known.last_seen_run == run:  # seen in this scrape
        values["last_seen_at"] = now
        if extra is not None:
            values["image"] = extra.image
            values["data_gb"] = _rounded(extra.data_gb, *_DATA_GB)
    return values


def _extras(changes: Sequence[Change], promotions: Sequence[Promotion]) -> Mapping[str, Promotion]:
    """The promotions of this scrape by key (the first wins, as in observe)."""
    seen: dict[str, Promotion] = {}
    for promotion in promotions:
        seen.setdefault(promotion.key, promotion)
    for change in changes:
        if change.kind != "ended":  # an ended one is rebuilt from Known: no image
            seen.setdefault(change.promotion.key, change.promotion)
    return seen


def _change_values(
    source_id: str, promotion_id: int, change: Change, run: int, now: datetime
) -> dict[str, object]:
    before = change.before
    return {
        "promotion_id": promotion_id,
        "source_id": source_id,
        "kind": change.kind,
        "changed_fields": ",".join(change.changed_fields),
        "before_title": before.title if before else None,
        "before_summary": before.summary if before else None,
        "before_date_text": before.date_text if before else None,
        "before_price_text": before.price_text if before else None,
        "run": run,
        "at": now,
    }


def _exact(value: Decimal | None, digits: int, places: int) -> Decimal | None:
    """``value`` if a NUMERIC(digits, places) column holds it exactly, else None."""
    if value is None or not value.is_finite():
        return None
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        return None
    return value if abs(value) < Decimal(10) ** (digits - places) else None


def _rounded(value: Decimal | None, digits: int, places: int) -> Decimal | None:
    """``value`` rounded to ``places`` decimals, or None if a NUMERIC column cannot hold it."""
    if value is None or not value.is_finite() or abs(value) >= Decimal(10) ** (digits - places):
        return None
    rounded = value.quantize(Decimal(1).scaleb(-places))
    return rounded if abs(rounded) < Decimal(10) ** (digits - places) else None
