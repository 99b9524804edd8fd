"""Promotion sources in the database: what change detection remembers, and the history.

``scrapers.observe`` is a pure function from (remembered state, one scrape) to
(state to remember, changes); these functions are the two ends of that loop:
``load_state`` before a scrape, ``save_outcome`` after it (``load_validators`` makes the
fetch conditional). What is loaded back equals
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
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from scrapers import Change, Known, Outcome, Promotion, Source, SourceState, Validators
from watcher.db.models import PromotionChangeRow, PromotionRow, SourceRow

log = logging.getLogger(__name__)

__all__ = [
    "SourceHealth",
    "accept_held",
    "as_promotion",
    "key_hash",
    "list_promotions",
    "load_state",
    "load_validators",
    "promotion_history",
    "save_outcome",
    "source_health",
    "spec_of",
]

# (digits, places) of the Numeric columns; see PromotionRow.
_PRICE = (14, 2)
_DATA_GB = (10, 3)

# The PromotionRow columns that mirror a Known field, and the SourceRow columns that
# mirror a SourceState field, of the same name: the scrapers' dataclasses are the one
# definition of what change detection remembers.
_KNOWN_FIELDS = tuple(field.name for field in fields(Known))
_STATE_FIELDS = tuple(field.name for field in fields(SourceState) if field.name != "known")
_PROMOTION_FIELDS = tuple(field.name for field in fields(Promotion))


def key_hash(key: str) -> str:
    """The SHA-256 of a promotion key: what ``promotions`` is unique on, with the source."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def spec_of(source: Source) -> str:
    """A hash of how a source's page is read; changing a selector changes it."""
    described = [source.kind, source.items, sorted(source.fields.items()), source.script]
    if source.render != "http":  # so a source that never set it keeps its old spec
        described.append(source.render)
    return hashlib.sha256(json.dumps(described, ensure_ascii=False).encode()).hexdigest()


def load_state(session: Session, source: Source, read_as: str | None = None) -> SourceState:
    """What change detection remembers about a source; ``SourceState()`` if never saved.

    A source now read another way than its stored ``spec`` (a selector fixed), or than
    the way its last good scrape was read (``read_as``: auto found the list by another
    strategy), may key the same promotions differently, so its next good scrape is a
    silent baseline again rather than a flood of "new".
    """
    row = session.get(SourceRow, source.id)
    if row is None:
        return SourceState()
    columns = [getattr(PromotionRow, name) for name in _KNOWN_FIELDS]
    rows = session.execute(
        select(*columns)
        .where(PromotionRow.source_id == source.id, PromotionRow.forgotten.is_(False))
        .order_by(PromotionRow.id)
    )
    # Insertion order is observe's order for ``known``, which orders its "ended" changes.
    known = {promotion.key: Known(**promotion._asdict()) for promotion in rows}
    state = SourceState(known=known, **{name: getattr(row, name) for name in _STATE_FIELDS})
    if row.spec is not None and row.spec != spec_of(source):
        return replace(state, baseline_done=False)
    if read_as is not None and row.read_as is not None and read_as != row.read_as:
        return replace(state, baseline_done=False)
    return state


def load_validators(session: Session, source: Source) -> Validators:
    """The ETag and Last-Modified of the source's last good fetch, to make the next one
    conditional; none if they belong to another page.

    An ETag or a Last-Modified date of another URL must not make the new one look
    unchanged; and after a selector fix, a 304 would keep the new selectors from ever
    seeing the page. One row, four columns: the promotions are not read.
    """
    row = session.execute(
        select(SourceRow.url, SourceRow.spec, SourceRow.etag, SourceRow.last_modified).where(
            SourceRow.id == source.id
        )
    ).first()
    if row is None or row.url != source.url:
        return Validators()
    if row.spec is not None and row.spec != spec_of(source):
        return Validators()
    return Validators(etag=row.etag, last_modified=row.last_modified)


def save_outcome(
    session: Session,
    source: Source,
    outcome: Outcome,
    *,
    now: datetime,
    validators: Validators | None,
    promotions: Sequence[Promotion] = (),
    next_fetch_at: datetime | None = None,
    read_as: str | None = None,
) -> list[PromotionChangeRow]:
    """Store what observing one scrape of ``source`` produced; return its change rows.

    The source row takes ``outcome.state``'s counters, and the promotion rows its
    ``known`` (rows of keys no longer known are kept as history). One change row is
    written per ``outcome.changes`` entry and returned, in that order, for the caller to
    turn into alerts. ``now`` is when the scrape happened: it sets ``last_fetched_at``,
    ``last_success_at`` (unless the scrape failed), and the first-seen, last-seen and
    ended times of promotions.

    ``validators`` are those of the fetched page; None keeps the stored ones, which is
    what a failed scrape should pass (and an unreadable page too: its validators would
    turn the next fetch into a 304 and the page would never be read again). Change
    detection does not keep a promotion's image and data allowance; they are taken
    from the scrape's ``promotions`` when given, else from ``outcome.changes``.
    ``next_fetch_at``, when given, is stored for the scheduler, and ``read_as`` (how a
    good scrape read the page) for :func:`load_state`.

    A page of promotions costs a fixed number of statements, not one per promotion.
    """
    state = outcome.state
    # Fresh from the database (not as load_state saw it): `watcher sources accept` may
    # have written since.
    row = session.scalar(
        select(SourceRow)
        .where(SourceRow.id == source.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        row = SourceRow(id=source.id, active=True)
        session.add(row)
    elif row.run > state.run:
        log.warning(
            "not saving run %d of source %s: run %d is already stored",
            state.run,
            source.id,
            row.run,
        )
        return []
    replay = row.run == state.run
    _write_source(row, source, state, now, validators, next_fetch_at)
    if read_as is not None:
        row.read_as = read_as
    ids = _write_promotions(session, source.id, state, now, _extras(outcome, promotions))
    if not outcome.changes:
        return []
    return _write_changes(session, source.id, outcome, ids, now, replay=replay)


def _write_promotions(
    session: Session,
    source_id: str,
    state: SourceState,
    now: datetime,
    extras: Mapping[str, Promotion],
) -> dict[str, int]:
    """Bring the source's promotion rows in line with ``state.known``; return id by key."""
    rows = {
        row.key: row
        for row in session.scalars(select(PromotionRow).where(PromotionRow.source_id == source_id))
    }
    ids = {key: row.id for key, row in rows.items()}
    fresh: list[dict[str, object]] = []
    for key, known in state.known.items():
        values = _values(known, state.run, now, extras.get(key))
        row = rows.get(key)
        if row is None:
            values.setdefault("last_seen_at", now)
            # Every dict with the same keys, so they make one INSERT.
            fresh.append(
                {
                    "source_id": source_id,
                    "key_hash": key_hash(key),
                    "first_seen_at": now,
                    "image": None,
                    "data_gb": None,
                    "forgotten": False,
                    **values,
                    "ended_at": now if known.ended else None,
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
    return ids


def _write_changes(
    session: Session,
    source_id: str,
    outcome: Outcome,
    ids: Mapping[str, int],
    now: datetime,
    *,
    replay: bool,
) -> list[PromotionChangeRow]:
    """One change row per change of this run, the stored one if this run is a replay."""
    run = outcome.state.run
    recorded: dict[int, PromotionChangeRow] = {}
    if replay:
        recorded = {
            change.promotion_id: change
            for change in session.scalars(
                select(PromotionChangeRow).where(
                    PromotionChangeRow.source_id == source_id, PromotionChangeRow.run == run
                )
            )
        }
    missing = [
        _change_values(source_id, ids[change.promotion.key], change, run, now)
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
    held_count: int = 0  # the ballooned page's count while the source is held
    accept_held: bool = False  # the admin accepted it; the next scrape takes it


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
            held_count=row.held_count,
            accept_held=row.accept_held,
        )
        for row in session.scalars(select(SourceRow))
    }


def accept_held(session: Session, source_id: str, now: datetime) -> int | None:
    """Accept the page a held source ballooned to: its next scrape is taken as it is (a
    silent new baseline, see ``scrapers.observe``), and that scrape is due ``now``.

    Returns the held page's count, or None if the source is not held.
    """
    row = session.scalar(select(SourceRow).where(SourceRow.id == source_id).with_for_update())
    if row is None or not row.held_count:
        return None
    row.accept_held = True
    row.next_fetch_at = now
    return row.held_count


def as_promotion(row: PromotionRow) -> Promotion:
    """A stored promotion as the scrapers' Promotion: its latest values, image included."""
    return Promotion(**{name: getattr(row, name) for name in _PROMOTION_FIELDS})


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
    row: SourceRow,
    source: Source,
    state: SourceState,
    now: datetime,
    validators: Validators | None,
    next_fetch_at: datetime | None,
) -> None:
    spec = spec_of(source)
    if (row.url not in (None, source.url) or row.spec not in (None, spec)) and validators is None:
        # Validators belong to the page, read the way, they came from.
        row.etag = row.last_modified = None
    row.url, row.spec, row.kind, row.operator = source.url, spec, source.kind, source.operator
    if validators is not None:
        row.etag, row.last_modified = validators.etag, validators.last_modified
    accepted = bool(row.accept_held)
    for name in _STATE_FIELDS:
        setattr(row, name, getattr(state, name))
    # An acceptance given while this scrape ran outlives it, unless the hold has ended.
    row.accept_held = state.accept_held or (accepted and state.held_count > 0)
    row.last_fetched_at = now
    if state.failures == 0:  # observe resets the streak on every scrape that read the page
        row.last_success_at = now
    if next_fetch_at is not None:
        row.next_fetch_at = next_fetch_at


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


def _extras(outcome: Outcome, promotions: Sequence[Promotion]) -> Mapping[str, Promotion]:
    """The promotions of this scrape by the key observe knows them by (the first wins,
    as in observe)."""
    seen: dict[str, Promotion] = {}
    for promotion in promotions:
        seen.setdefault(outcome.aliases.get(promotion.key, promotion.key), promotion)
    for change in outcome.changes:
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
