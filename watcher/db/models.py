"""The tables. Every timestamp is stored as UTC; dates are calendar dates in the user's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime; pass an aware UTC one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class UserRow(Base):
    """A user as last read from the config file."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    remind_at: Mapped[str] = mapped_column(String(5))
    quiet_hours: Mapped[str | None] = mapped_column(String(11))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class UserChannel(Base):
    """A delivery target of a user: a channel name, or ``name#2`` for its second URL."""

    __tablename__ = "user_channels"

    user_name: Mapped[str] = mapped_column(
        ForeignKey("users.name", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(100), primary_key=True)


class SimRow(Base):
    """A SIM card with its effective dates.

    ``cfg_*`` columns hold the value last read from the config file: a config value
    that differs from it was edited and wins; an unchanged one leaves the recorded
    state (from ``watcher renew`` / ``watcher balance``) in place.
    """

    __tablename__ = "sims"
    # Clustered by id on SQLite: planning looks up each due slot's SIM by id.
    __table_args__ = ({"sqlite_with_rowid": False},)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    operator: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(20))
    plan: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    expires: Mapped[date | None] = mapped_column(Date)
    cfg_expires: Mapped[date | None] = mapped_column(Date)
    renew_every: Mapped[str | None] = mapped_column(String(8))
    remind_before: Mapped[str] = mapped_column(String(200))
    remind_after: Mapped[str] = mapped_column(String(200))
    balance_check_every: Mapped[str | None] = mapped_column(String(8))
    last_balance_check: Mapped[date | None] = mapped_column(Date)
    cfg_last_balance_check: Mapped[date | None] = mapped_column(Date)
    balance: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    low_balance: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    idle_limit: Mapped[str | None] = mapped_column(String(8))
    last_paid_activity: Mapped[date | None] = mapped_column(Date)
    cfg_last_paid_activity: Mapped[date | None] = mapped_column(Date)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    schedule_key: Mapped[str] = mapped_column(String(64), default="")


class ScheduleRow(Base):
    """One reminder slot still to come: (SIM, kind, target date, offset) due at an instant.

    Slots are materialised when a SIM's dates change, so planning is one range query
    over ``due_at`` rather than date arithmetic over every SIM. A planned slot is
    deleted (its outbox rows are the record), so the table holds only the future.
    On SQLite the table is clustered by due time (WITHOUT ROWID): the slots a pass
    takes are neighbours on disk, and deleting them rewrites a few pages.

    ``key`` is the SIM's ``schedule_key`` when the slot was written. A reschedule
    writes new slots under the new key and leaves the old ones, which stop matching
    and are dropped when they come due: there is no index by SIM to keep up, so
    a planning pass writes a few pages rather than one index page per slot.
    """

    __tablename__ = "schedule"
    __table_args__ = ({"sqlite_with_rowid": False},)

    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    # No foreign key to sims: SIMs are never deleted, a slot is only ever written for a
    # SIM just stored, and the planner joins sims anyway (a slot without one matches
    # nothing). With SQLite's foreign keys on, the constraint made the pass's DELETE
    # four times slower.
    sim_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[date] = mapped_column(Date, primary_key=True)
    offset: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))


class OutboxRow(Base):
    """One message to one delivery target; written before it is sent."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedup_key", "channel"),
        Index("ix_outbox_pending", "status", "next_attempt_at"),
        Index("ix_outbox_sim", "sim_id", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(100))
    user_name: Mapped[str | None] = mapped_column(String(64))
    sim_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[date | None] = mapped_column(Date)
    offset: Mapped[str | None] = mapped_column(String(8))
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while a sender holds the row, so two senders never take the same message.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))  # "host:pid:run" of the sender
    last_error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """History: renewals, balance checks and config changes of a SIM."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sim_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)


class Heartbeat(Base):
    """When a job last ran: a planning pass (``watcher health``), a daemon's heartbeat."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SourceRow(Base):
    """A promotion source and what change detection remembers about it between scrapes.

    The counters mirror ``scrapers.SourceState`` field for field; ``etag`` and
    ``last_modified`` are the validators of the last good fetch of ``url``.
    ``next_fetch_at`` is when the scheduler should scrape it next.
    """

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    # A hash of how the page is read (kind, selectors): validators are kept per (url, spec).
    spec: Mapped[str | None] = mapped_column(String(64))
    # How the last good scrape read the page: the kind, or what auto found (feed, jsonld,
    # state, dom). A change is a silent new baseline.
    read_as: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    baseline_done: Mapped[bool] = mapped_column(Boolean, default=False)
    run: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    alerted_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    empty_runs: Mapped[int] = mapped_column(Integer, default=0)
    last_item_count: Mapped[int] = mapped_column(Integer, default=0)
    alerted_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    # A page that ballooned is held (its count; 0: not held) until it looks normal again
    # or the admin accepts it (accept_held, set by `watcher sources accept`).
    held_count: Mapped[int] = mapped_column(Integer, default=0)
    accept_held: Mapped[bool] = mapped_column(Boolean, default=False)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PromotionRow(Base):
    """One promotion of a source, ended ones included: rows are never deleted.

    The values are the latest seen (``scrapers.Known`` field for field, plus the image
    and data allowance change detection does not compare). ``key`` can be a link of up
    to 2 KB, too long for a portable unique index, so uniqueness is enforced on its
    SHA-256 (``key_hash``).
    """

    __tablename__ = "promotions"
    __table_args__ = (UniqueConstraint("source_id", "key_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    key: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)
    date_text: Mapped[str | None] = mapped_column(Text)
    starts: Mapped[date | None] = mapped_column(Date)
    ends: Mapped[date | None] = mapped_column(Date)
    price_text: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(8))
    data_gb: Mapped[Decimal | None] = mapped_column(Numeric(10, 3))
    missing_runs: Mapped[int] = mapped_column(Integer, default=0)
    ended: Mapped[bool] = mapped_column(Boolean, default=False)
    # Dropped from change detection by a new baseline (the page is read another way and
    # keys changed): kept as history, never loaded back, shown as ended.
    forgotten: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_run: Mapped[int] = mapped_column(Integer)
    last_seen_run: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PromotionChangeRow(Base):
    """History: a promotion became new, changed or ended in scrape ``run`` of its source.

    ``changed_fields`` lists the changed ones of title, dates, price and summary,
    comma-separated; the ``before_*`` texts are what was known until then (set for
    "changed", "ended", and a "new" that is an ended promotion coming back). A
    promotion changes at most once per scrape, which makes saving an outcome twice
    harmless.
    """

    __tablename__ = "promotion_changes"
    __table_args__ = (
        UniqueConstraint("promotion_id", "run"),
        Index("ix_promotion_changes_source_at", "source_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"))
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    kind: Mapped[str] = mapped_column(String(8))
    changed_fields: Mapped[str] = mapped_column(String(64), default="")
    before_title: Mapped[str | None] = mapped_column(Text)
    before_summary: Mapped[str | None] = mapped_column(Text)
    before_date_text: Mapped[str | None] = mapped_column(Text)
    before_price_text: Mapped[str | None] = mapped_column(Text)
    run: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class PromotionAlertRow(Base):
    """A change one user is to hear about: written with the change, sent later.

    Rows are written in the transaction that stores the scrape, so a change is matched
    against subscriptions exactly once (a user who subscribes later is not told of
    what was found before). ``message_key`` is NULL while the alert waits (for its
    digest, or the next flush) and then the outbox ``dedup_key`` of the message that
    carries it, set in the transaction that queues that message.
    """

    __tablename__ = "promotion_alerts"
    __table_args__ = (
        UniqueConstraint("user_name", "change_id"),
        # Only the waiting ones: the flush that runs every 30 s reads just those.
        Index(
            "ix_promotion_alerts_pending",
            "user_name",
            sqlite_where=text("message_key IS NULL"),
            postgresql_where=text("message_key IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(String(64))
    change_id: Mapped[int] = mapped_column(ForeignKey("promotion_changes.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_key: Mapped[str | None] = mapped_column(String(200))


class CalendarToken(Base):
    """The secret in a user's calendar feed URL (``/calendar/<user>.ics?token=...``).

    Made on first use by ``watcher calendar --url`` or the HTTP server and kept, so the
    URL a calendar app subscribed to keeps working; it names the user, not a SIM.
    """

    __tablename__ = "calendar_tokens"

    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
