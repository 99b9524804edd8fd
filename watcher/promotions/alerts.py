"""Promotion alerts: who hears of which change, and when.

Two steps, each one transaction, so nothing is lost or doubled:

- ``match`` runs in the transaction that stores a scrape. It writes one alert row per
  (subscriber, change) the subscriber asked for. A change is matched once, when it is
  found: a user who subscribes later hears of later changes only, never of everything
  already known.
- ``flush`` turns a user's waiting alerts into one message per delivery target in the
  outbox and marks them with that message's key. ``immediate`` users get what is
  waiting now; ``daily`` and ``weekly`` users get a digest of what was found before
  their latest digest time (``remind_at``, on Mondays for weekly). A daemon that was
  down over several digest times sends one digest, not one per missed day.

Delivery then does what it does for reminders: quiet hours, retries, the user's channels.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scrapers import AdminEvent, Change, Source, matches
from watcher import outbox
from watcher.clock import local_instant
from watcher.config import LoadedConfig
from watcher.db.engine import dialect_insert
from watcher.db.models import PromotionAlertRow, PromotionChangeRow, PromotionRow, SourceRow
from watcher.messages import Message, PromotionItem, render_promotions
from watcher.outbox import Kind, NewMessage
from watcher.promotions.store import spec_of

log = logging.getLogger(__name__)

__all__ = [
    "Audience",
    "Subscription",
    "audience_of",
    "digest_cutoff",
    "flush",
    "match",
    "report_source_events",
    "report_stale_selectors",
]

DigestKind = Literal["immediate", "daily", "weekly"]
WEEKLY_DIGEST_DAY = 0  # Monday


@dataclass(frozen=True)
class Subscription:
    """One user's promotion preferences, resolved against the config's sources."""

    user: str
    sources: frozenset[str]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    on: frozenset[str]
    digest: DigestKind
    language: str
    zone: ZoneInfo
    remind_at: time
    targets: tuple[str, ...]  # delivery targets: channel names, ``name#2`` for a second URL


@dataclass(frozen=True)
class Audience:
    """Everyone a scrape may concern: subscribers, and the admin for source trouble."""

    subscriptions: tuple[Subscription, ...] = ()
    admin_targets: tuple[str, ...] = ()
    source_names: Mapping[str, str] | None = None  # source id -> how messages name it


def audience_of(loaded: LoadedConfig) -> Audience:
    """The subscriptions in the config, with their delivery targets."""
    config, catalogue, channels = loaded.config, loaded.catalogue, loaded.channels
    subscriptions = []
    for user in config.users:
        prefs = user.promotions
        if prefs is None:
            continue
        subscriptions.append(
            Subscription(
                user=user.name,
                sources=frozenset(config.promotion_sources(user)),
                include=tuple(prefs.include),
                exclude=tuple(prefs.exclude),
                on=frozenset(prefs.on),
                digest=prefs.digest,
                language=user.language,
                zone=config.user_timezone(user),
                remind_at=config.user_remind_at(user),
                targets=tuple(t for name in user.notify for t in channels.targets(name)),
            )
        )
    names = {
        pid: catalogue.get(profile.source.operator).name if profile.source.operator else pid
        for pid, profile in config.source_profiles().items()
    }
    return Audience(tuple(subscriptions), tuple(loaded.admin_targets()), names)


def match(
    session: Session,
    audience: Audience,
    source_id: str,
    changes: Sequence[Change],
    rows: Sequence[PromotionChangeRow],
    now: datetime,
) -> int:
    """Write an alert for every subscriber of ``source_id`` who wants a change; return how many.

    ``rows`` are the stored changes, in the order of ``changes``. A promotion whose end
    date has passed in the user's time zone is not news, so it is skipped (operators
    leave finished offers up, and an archive page would otherwise announce them).
    Saving the same changes twice writes nothing new.
    """
    values = []
    for subscription in audience.subscriptions:
        if source_id not in subscription.sources:
            continue
        today = now.astimezone(subscription.zone).date()
        for change, row in zip(changes, rows, strict=True):
            promotion = change.promotion
            if change.kind not in subscription.on:
                continue
            if change.kind != "ended" and promotion.ends is not None and promotion.ends < today:
                continue
            if not matches(promotion, subscription.include, subscription.exclude):
                continue
            values.append({"user_name": subscription.user, "change_id": row.id, "created_at": now})
    if not values:
        return 0
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(
        insert(PromotionAlertRow).on_conflict_do_nothing(index_elements=["user_name", "change_id"]),
        values,
    )
    return len(values)


def digest_cutoff(subscription: Subscription, now: datetime) -> datetime | None:
    """Alerts found up to this instant go out now; None: nothing is due for this user.

    ``immediate``: now. ``daily``: the latest ``remind_at`` not after now. ``weekly``:
    the latest Monday ``remind_at`` not after now.
    """
    if subscription.digest == "immediate":
        return now
    day = now.astimezone(subscription.zone).date()
    for _ in range(8):
        if subscription.digest == "daily" or day.weekday() == WEEKLY_DIGEST_DAY:
            instant = local_instant(day, subscription.remind_at, subscription.zone)
            if instant <= now:
                return instant
        day -= timedelta(days=1)
    return None  # unreachable: a Monday is always within the last eight days


def flush(session: Session, audience: Audience, now: datetime) -> int:
    """Queue each subscriber's due alerts as one message per target; return messages queued.

    The message key is the first alert's id, and the alerts are marked in the same
    transaction: a flush repeated or racing another process queues nothing twice.
    """
    queued = 0
    waiting = set(
        session.scalars(
            select(PromotionAlertRow.user_name)
            .where(PromotionAlertRow.message_key.is_(None))
            .distinct()
        )
    )
    for subscription in audience.subscriptions:
        if subscription.user not in waiting:
            continue
        cutoff = digest_cutoff(subscription, now)
        if cutoff is None or not subscription.targets:
            continue
        pending = session.execute(
            select(PromotionAlertRow.id, PromotionChangeRow, PromotionRow, SourceRow.operator)
            .join(PromotionChangeRow, PromotionChangeRow.id == PromotionAlertRow.change_id)
            .join(PromotionRow, PromotionRow.id == PromotionChangeRow.promotion_id)
            .join(SourceRow, SourceRow.id == PromotionChangeRow.source_id)
            .where(
                PromotionAlertRow.user_name == subscription.user,
                PromotionAlertRow.message_key.is_(None),
                PromotionAlertRow.created_at <= cutoff,
            )
            .order_by(PromotionAlertRow.id)
        ).all()
        if not pending:
            continue
        names = audience.source_names or {}
        items = [
            _item(change, promotion, names.get(change.source_id, change.source_id))
            for _, change, promotion, _operator in pending
        ]
        message = render_promotions(
            items, subscription.language, digest=subscription.digest != "immediate"
        )
        ids = [alert_id for alert_id, *_ in pending]
        key = outbox.promotion_key(subscription.user, ids[0])
        outbox.enqueue(session, _messages(key, subscription, message), now)
        session.execute(
            update(PromotionAlertRow)
            .where(PromotionAlertRow.id.in_(ids), PromotionAlertRow.message_key.is_(None))
            .values(message_key=key)
        )
        queued += len(subscription.targets)
        log.info(
            "queued %d promotion update(s) for %s (%s)",
            len(items),
            subscription.user,
            subscription.digest,
        )
    return queued


def report_source_events(
    session: Session, audience: Audience, events: Sequence[AdminEvent], run: int, now: datetime
) -> None:
    """Queue the admin messages about a source (failing, recovered, empty, refilled, held,
    released), once each."""
    for event in events:
        message = _admin_message(event)
        if not audience.admin_targets:
            log.error("%s (no admin channel configured): %s", message.title, event.message)
            continue
        key = outbox.source_event_key(event.source_id, event.kind, run)
        outbox.enqueue(session, outbox.admin_messages(key, audience.admin_targets, message), now)


def report_stale_selectors(
    session: Session, audience: Audience, source: Source, found: int, now: datetime
) -> None:
    """Tell the admin, once per version of a source's selectors, that auto stood in."""
    title = f"SIM Watcher: selectors of {source.id} stopped matching"
    body = (
        f"selectors of {source.id} stopped matching; auto found {found} promotions. "
        "Until the selectors are fixed (or removed, to stay on auto), each scrape reads "
        f"the page with auto. Try `watcher scrape {source.id} --dry-run --explain`."
    )
    if not audience.admin_targets:
        log.error("%s (no admin channel configured): %s", title, body)
        return
    key = outbox.selectors_stale_key(source.id, spec_of(source))
    outbox.enqueue(
        session, outbox.admin_messages(key, audience.admin_targets, Message(title, body)), now
    )


_ADMIN_TITLES = {
    "failing": "SIM Watcher: promotion source {id} is failing",
    "recovered": "SIM Watcher: promotion source {id} works again",
    "empty": "SIM Watcher: promotion source {id} finds no promotions (layout changed?)",
    "refilled": "SIM Watcher: promotion source {id} finds promotions again",
    "held": "SIM Watcher: promotion source {id} is held (its page ballooned)",
    "released": "SIM Watcher: promotion source {id} is no longer held",
}


def _admin_message(event: AdminEvent) -> Message:
    title = _ADMIN_TITLES[event.kind].format(id=event.source_id)
    advice = {
        "failing": " Promotions are not watched until it works again.",
        "empty": (
            " Check the page in a browser; if its markup changed, fix the selectors under"
            f" sources: and try them with `watcher scrape {event.source_id}`."
        ),
    }.get(event.kind, "")
    return Message(title, event.message + advice)


def _messages(key: str, subscription: Subscription, message: Message) -> list[NewMessage]:
    return [
        NewMessage(
            key,
            target,
            Kind.PROMOTION,
            user_name=subscription.user,
            title=message.title,
            body=message.body,
        )
        for target in subscription.targets
    ]


def _item(change: PromotionChangeRow, promotion: PromotionRow, source_name: str) -> PromotionItem:
    kind = change.kind if change.kind in ("new", "changed", "ended") else "changed"
    return PromotionItem(
        kind=kind,  # type: ignore[arg-type]
        title=promotion.title,
        source_name=source_name,
        link=promotion.link,
        summary=promotion.summary,
        starts=promotion.starts,
        ends=promotion.ends,
        price_text=promotion.price_text,
        before_title=change.before_title,
        before_date_text=change.before_date_text,
        before_price_text=change.before_price_text,
        changed_fields=tuple(f for f in change.changed_fields.split(",") if f),
    )
