"""How fast and how wide delivery may go to one service: per-host limits.

A daemon sends many messages at once (``delivery.workers``), but a service on the
other end wants fewer: Telegram bans a bot that sends much more than 30 messages a
second, or more than one a second to one chat; an SMTP server refuses a crowd of
connections from one account. Each delivery target is therefore subject to a few
*limits*, each shared by every target that reaches the same service:

- a **connection** limit: how many of its messages may be in flight at once;
- a **rate** limit: how many may start per second (a token bucket, one second's
  worth of burst).

The built-in limits (:func:`builtin_limits`) and the config's ``delivery.limits``
overrides are combined by :class:`Limiter`, which the Deliverer asks before every
send. With several replicas on one database each takes its share, so the service
sees the limit, not the limit times the replicas.

Pure bookkeeping: no threads, no I/O, time passed in (a monotonic reading), so the
rules are tested without a clock on the wall.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "TELEGRAM_API",
    "Limit",
    "LimitKey",
    "Limiter",
    "Override",
    "Service",
    "limits_of",
]

TELEGRAM_API = "api.telegram.org"
"""The host name that ``delivery.limits`` uses for the limits of each Telegram bot."""

# Telegram's Bots FAQ ("My bot is hitting limits, how do I avoid this?"): in one chat
# not more than about one message per second, in a group not more than 20 a minute,
# and bulk notifications not faster than about 30 messages per second.
TELEGRAM_PER_BOT_PER_SECOND = 30.0
TELEGRAM_PER_CHAT_PER_SECOND = 1.0
TELEGRAM_PER_GROUP_PER_SECOND = 20 / 60
TELEGRAM_CONNECTIONS = 8  # per bot: "a few"; 8 requests of ~250 ms already make 30/s
SMTP_CONNECTIONS = 4  # per SMTP server: a handful, like a mail client's outbox
MIN_PAUSE = 0.05  # a plugin's pause shorter than this (Telegram's 1 ms) never binds


@dataclass(frozen=True)
class Limit:
    """At most ``connections`` in flight (None: no cap of its own) and ``per_second``
    started per second (None: no rate limit). Validated here, so a bad limit cannot
    reach the dispatcher."""

    connections: int | None = None
    per_second: float | None = None

    def __post_init__(self) -> None:
        if self.connections is not None and self.connections < 1:
            raise ValueError("connections must be at least 1")
        if self.per_second is not None and not self.per_second > 0:
            raise ValueError("per_second must be more than 0")

    def shared(self, replicas: int) -> Limit:
        """This replica's share when ``replicas`` daemons send to the same service."""
        if replicas <= 1:
            return self
        return Limit(
            None if self.connections is None else max(1, math.ceil(self.connections / replicas)),
            None if self.per_second is None else self.per_second / replicas,
        )


@dataclass(frozen=True)
class LimitKey:
    """One limited thing: ``kind`` ("host", "smtp", "telegram bot", "telegram chat",
    "target") and an identity within it. ``host`` is the name ``delivery.limits``
    matches (None: not overridable). Identities hold hashes of secrets, never the
    secrets themselves."""

    kind: str
    identity: str
    host: str | None = None


@dataclass(frozen=True)
class Override:
    """A ``delivery.limits`` entry: replaces the built-in limit of the keys of ``host``."""

    connections: int | None = None
    per_second: float | None = None


@dataclass(frozen=True)
class Service:
    """What the limits need to know of one target, read from its Apprise plugin.

    ``kind``: "telegram", "email" or "other"; ``host``/``port``: where it connects
    (for e-mail, the SMTP server); ``account``: a hash of the bot token (Telegram);
    ``chats``: the Telegram chat ids; ``pause``: the plugin's declared seconds between
    two messages to this target; ``target``: a hash of the whole URL.
    """

    kind: str
    target: str
    host: str | None = None
    port: int | None = None
    account: str | None = None
    chats: tuple[str, ...] = ()
    pause: float = 0.0


def limits_of(service: Service) -> list[tuple[LimitKey, Limit]]:
    """The built-in limits a send to ``service`` is under."""
    keys: list[tuple[LimitKey, Limit]] = []
    if service.kind == "telegram" and service.account:
        bot = LimitKey("telegram bot", service.account, TELEGRAM_API)
        keys.append((bot, Limit(TELEGRAM_CONNECTIONS, TELEGRAM_PER_BOT_PER_SECOND)))
        for chat in service.chats:
            group = chat.startswith("-")  # groups and channels have negative ids
            rate = TELEGRAM_PER_GROUP_PER_SECOND if group else TELEGRAM_PER_CHAT_PER_SECOND
            keys.append((LimitKey("telegram chat", f"{service.account}/{chat}"), Limit(1, rate)))
    elif service.host:
        host = service.host.lower()
        where = f"{host}:{service.port or ''}"
        if service.kind == "email":
            keys.append((LimitKey("smtp", where, host), Limit(SMTP_CONNECTIONS)))
        else:
            keys.append((LimitKey("host", where, host), Limit()))
    if service.pause >= MIN_PAUSE:  # the plugin's own pause between two messages to a target
        keys.append((LimitKey("target", service.target), Limit(None, 1 / service.pause)))
    return keys


@dataclass
class _Bucket:
    """The running state of one key: sends in flight and rate tokens."""

    builtin: Limit
    limit: Limit
    in_flight: int = 0
    tokens: float = 1.0
    refilled_at: float | None = None

    def refill(self, now: float) -> None:
        rate = self.limit.per_second
        if rate is None:
            return
        capacity = max(1.0, rate)  # one second's worth of burst, at least one message
        if self.refilled_at is None:
            self.tokens = capacity
        else:
            self.tokens = min(capacity, self.tokens + max(0.0, now - self.refilled_at) * rate)
        self.refilled_at = now

    def wait(self, now: float) -> float:
        """Seconds until one more may start (0: now; inf: when one in flight ends)."""
        if self.limit.connections is not None and self.in_flight >= self.limit.connections:
            return math.inf
        self.refill(now)
        if self.limit.per_second is None or self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_second

    def start(self) -> None:
        self.in_flight += 1
        if self.limit.per_second is not None:
            self.tokens -= 1.0


@dataclass
class Limiter:
    """The limits in force for one daemon's sends, shared by all its workers.

    Not thread-safe: the Deliverer's dispatcher calls it under its own lock.
    """

    overrides: Mapping[str, Override] = field(default_factory=dict)
    replicas: int = 1
    _buckets: dict[LimitKey, _Bucket] = field(default_factory=dict)

    def configure(
        self, overrides: Mapping[str, Override] | None = None, replicas: int | None = None
    ) -> None:
        """New overrides (a reload) or replica count; what is in flight stays counted."""
        if overrides is not None:
            self.overrides = dict(overrides)
        if replicas is not None:
            self.replicas = max(1, replicas)
        for key, bucket in self._buckets.items():
            bucket.limit = self._limit_of(key, bucket.builtin)

    def wait(self, keys: Iterable[tuple[LimitKey, Limit]], now: float) -> float:
        """Seconds until a send under all of ``keys`` may start (0: now; inf: not
        before a send in flight ends)."""
        return self.check(keys, now)[0]

    def check(
        self, keys: Iterable[tuple[LimitKey, Limit]], now: float
    ) -> tuple[float, list[LimitKey]]:
        """Like :meth:`wait`, with the keys that hold the send back."""
        longest = 0.0
        holding: list[LimitKey] = []
        for key, limit in keys:
            wait = self._bucket(key, limit).wait(now)
            if wait > 0:
                holding.append(key)
                longest = max(longest, wait)
        return longest, holding

    def start(self, keys: Iterable[tuple[LimitKey, Limit]]) -> None:
        for key, limit in keys:
            self._bucket(key, limit).start()

    def finish(self, keys: Iterable[tuple[LimitKey, Limit]]) -> None:
        for key, limit in keys:
            bucket = self._bucket(key, limit)
            bucket.in_flight = max(0, bucket.in_flight - 1)

    def in_flight(self, key: LimitKey) -> int:
        bucket = self._buckets.get(key)
        return 0 if bucket is None else bucket.in_flight

    def limit(self, key: LimitKey, builtin: Limit) -> Limit:
        """The limit in force for ``key``: overridden, then shared among replicas."""
        return self._bucket(key, builtin).limit

    def _bucket(self, key: LimitKey, builtin: Limit) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(builtin, self._limit_of(key, builtin))
        return bucket

    def _limit_of(self, key: LimitKey, builtin: Limit) -> Limit:
        override = self.overrides.get(key.host) if key.host else None
        limit = builtin
        if override is not None:
            limit = Limit(
                override.connections if override.connections is not None else builtin.connections,
                override.per_second if override.per_second is not None else builtin.per_second,
            )
        return limit.shared(self.replicas)
