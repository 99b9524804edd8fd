"""Delivery: send what the outbox holds, through Apprise, and record every outcome.

A row is marked sent right after its channel accepted it, in its own transaction,
so a crash can at most re-send the messages that were in flight. A failed channel
is retried with exponential backoff and jitter (1 min doubling to a 6 h cap); after
48 h of failures the row is marked dead and the admin channels hear of it once.

Many sends are in flight at once (``delivery.workers``, 64 by default: a send waits
on a remote service far longer than it uses the CPU), but never more than each
service allows (:mod:`watcher.limits`): a pass claims due rows as workers free up,
queues them per target, and starts each send when its service's limits let it, so
a slow SMTP server never holds up a Telegram chat.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from watcher import outbox
from watcher.catalogue import Catalogue
from watcher.channels import SendResult
from watcher.clock import Clock
from watcher.config import LoadedConfig
from watcher.db.engine import Database
from watcher.db.faults import describe_database_error
from watcher.db.models import OutboxRow, SimRow, UserRow
from watcher.limits import Limit, Limiter, LimitKey, limits_of
from watcher.masking import mask_phone
from watcher.messages import Message, ReminderFacts, render_dead_letter, render_reminder
from watcher.outbox import Kind
from watcher.quiet import QuietHours, release_time

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(hours=48)
BATCH = 200  # rows claimed at a time (at least twice the workers)
QUEUE_ROWS = 4  # batches a pass may hold claimed while their services make them wait
RENEW_AFTER = 60.0  # seconds a claimed row may wait its turn before its claim is renewed
WAKE_EVERY = 0.5  # the longest a pass sleeps without looking at the stop signal
# Pauses (seconds) before trying again to release a failed batch's claims while the
# database is down; then the claim lease takes over.
RELEASE_WAITS = (0.5, 2.0)


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Backoff after the ``attempts``-th failure: 1 min doubling to 6 h, ±20 % jitter."""
    base: timedelta = min(FIRST_RETRY * 2 ** min(attempts - 1, 20), MAX_RETRY)
    jittered: timedelta = base * rng.uniform(0.8, 1.2)
    return min(jittered, MAX_RETRY)


@dataclass(frozen=True)
class DeliveryState:
    in_flight: int
    waiting: dict[str, int]  # by what holds them back: a limit's kind, or "workers"


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)

    def __iadd__(self, other: DeliveryReport) -> DeliveryReport:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        self.held += other.held
        self.errors.extend(other.errors)
        return self


Keys = tuple[tuple[LimitKey, Limit], ...]


@dataclass
class _Job:
    row_id: int
    channel: str
    message: Message
    kind: str = ""
    loaded: LoadedConfig | None = None  # the config in force when it was claimed
    keys: Keys = ()  # the limits its send is under
    claimed: float = 0.0  # monotonic seconds when claimed or last renewed


class Deliverer:
    """Sends due outbox rows concurrently; one instance per daemon.

    ``loaded`` gives the channels, the catalogue and the admin targets; a reload
    replaces it whole, and each batch uses the one in force when it was claimed.
    """

    def __init__(
        self,
        database: Database,
        loaded: LoadedConfig,
        clock: Clock,
        *,
        concurrency: int | None = None,
        rng: random.Random | None = None,
        stopping: threading.Event | None = None,
        on_outcome: Callable[[str, str, str], None] | None = None,
        release_waits: Sequence[float] = RELEASE_WAITS,
        owner: str | None = None,
    ) -> None:
        self.database = database
        # Who its claims name: a daemon's replica id, which its heartbeat keeps alive.
        self.owner = owner or outbox.claim_owner()
        # (kind, channel, "sent" | "failed" | "dead") for each message handed to a channel
        self.on_outcome = on_outcome
        self.loaded = loaded
        self.clock = clock
        # Sends in flight at once; a reload keeps the pool (a restart resizes it).
        self.concurrency = concurrency or loaded.config.delivery.workers
        self.batch = max(BATCH, 2 * self.concurrency)  # rows claimed at a time
        self.limiter = Limiter(loaded.config.delivery.overrides())
        self._limits_of: LoadedConfig = loaded  # the config the limiter was set from
        self.rng = rng or random.Random()
        self.stopping = stopping or threading.Event()
        self.release_waits = tuple(release_waits)
        self._unreleased: list[int] = []  # claims to give back once the database answers
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="deliver")
        # SQLite takes one writer at a time and makes the others sleep-and-retry; taking
        # turns in-process is much cheaper. PostgreSQL needs no such turn-taking.
        self._writing: AbstractContextManager[object] = (
            threading.Lock() if database.is_sqlite else nullcontext()
        )
        # Group commit of sent rows (see _mark_sent): the ids waiting to be marked, and
        # the lock the one worker committing them holds.
        self._unmarked: list[int] = []
        self._unmarked_lock = threading.Lock()
        self._marking = threading.Lock()
        self._limiter_lock = threading.Lock()  # a pass's dispatcher vs set_replicas
        self._current: _Pass | None = None  # the pass running now, for snapshot()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def deliver_due(self) -> DeliveryReport:
        """Send every row due now, batch by batch, until none is left or we are stopping."""
        report = DeliveryReport()
        self._mark_sent(None)  # marks a failed commit left queued: sent, not to resend
        if self._unreleased:
            # Claims a failed batch could not give back while the database was down: once
            # the sent marks above are in, they are this process's rows that never left.
            unreleased, self._unreleased = self._unreleased, []
            self._release(unreleased, waits=())
        self._current = _Pass(self, report)
        try:
            self._current.run()
        finally:
            self._current = None
        return report

    def snapshot(self) -> DeliveryState:
        """What delivery is doing now: sends in flight, and claimed messages waiting,
        by what holds them back (a kind of limit, or "workers" when all are busy)."""
        current = self._current
        if current is None:
            return DeliveryState(0, {})
        with current.cond:
            return DeliveryState(current.in_flight, dict(current.waiting))

    def set_replicas(self, count: int) -> None:
        """``count`` daemons send from this database: each takes its share of a limit."""
        with self._limiter_lock:
            self.limiter.configure(replicas=count)

    # -- claiming: pick due rows, hold quiet ones, render and store the text --------

    def _claim(
        self, loaded: LoadedConfig, now: datetime, skip: Collection[str] = ()
    ) -> tuple[list[_Job], int, bool]:
        """Claim up to a batch of due rows, none for the ``skip`` targets: (jobs, rows
        held for quiet hours, whether that was all that is due)."""
        jobs: list[_Job] = []
        held = 0
        catalogue = loaded.catalogue
        limit = self.batch
        with self._writing, self.database.session() as session:
            # PostgreSQL senders skip each other's rows; SQLite has one writer at a time.
            rows = outbox.due_rows(
                session,
                now,
                limit=limit,
                skip_locked=not self.database.is_sqlite,
                skip_channels=skip,
            )
            users = _users_of(session, rows)
            for row in rows:
                user = users.get(row.user_name or "")
                if user is not None and row.kind != Kind.ADMIN:
                    release = release_time(now, _quiet(user), ZoneInfo(user.timezone))
                    if release > now:
                        outbox.hold(row, release)
                        held += 1
                        continue
                if row.title is None or row.body is None:
                    message = _render(session, catalogue, row, user, now)
                else:
                    message = Message(row.title, row.body)
                outbox.claim(row, now, message.title, message.body, owner=self.owner)
                jobs.append(_Job(row.id, row.channel, message, row.kind, loaded))
        if held:
            log.info("%d messages held until quiet hours end", held)
        return jobs, held, len(rows) < limit

    def _keys(self, loaded: LoadedConfig, target: str) -> Keys:
        """The limits a send to ``target`` is under (none for a target no longer there)."""
        try:
            service = loaded.channels.service(target)
        except Exception:  # a plugin's bug: the send fails and is retried on its own
            log.exception("could not read the limits of %s; sending to it unlimited", target)
            return ()
        return () if service is None else tuple(limits_of(service))

    # -- sending ------------------------------------------------------------------

    def _release(self, row_ids: list[int], waits: Sequence[float] | None = None) -> None:
        """Release this process's claims on ``row_ids``; the database may still be down.

        Tried again after each of ``waits`` (default ``release_waits``, cut short by a
        shutdown); if it still fails, the next delivery pass tries again (a crash leaves
        them to the claim lease instead).
        """
        if not row_ids:
            return
        for pause in [*(self.release_waits if waits is None else waits), None]:
            try:
                with self._writing, self.database.engine.begin() as connection:
                    released = outbox.release_own_claims(connection, row_ids, owner=self.owner)
            except SQLAlchemyError as exc:
                if pause is None:
                    log.warning(
                        "could not release %d unsent messages (%s); the next delivery pass "
                        "tries again",
                        len(row_ids),
                        describe_database_error(exc),
                    )
                    self._unreleased = sorted({*self._unreleased, *row_ids})
                    return
                self.stopping.wait(pause)
                continue
            if released:
                log.info("released %d unsent messages for the next delivery", released)
            return

    def _record(
        self,
        job: _Job,
        result: SendResult,
        report: DeliveryReport,
        lock: threading.Lock,
        admin_targets: list[str],
    ) -> None:
        if result.ok:
            self._mark_sent(job.row_id)
            with lock:
                report.sent += 1
            log.info("sent #%d to %s", job.row_id, job.channel)
            self._tell(job, "sent")
            return
        now = self.clock.now()
        with self._writing, self.database.session() as session:
            row = outbox.record_failure(
                session,
                job.row_id,
                result.error,
                now,
                give_up_after=GIVE_UP_AFTER,
                retry_delay=lambda attempts: retry_delay(attempts, self.rng),
            )
            if row is None:
                return
            with lock:
                report.errors.append(f"{job.channel}: {result.error}")
                if row.status == outbox.Status.DEAD:
                    report.dead += 1
                else:
                    report.failed += 1
            self._tell(job, "dead" if row.status == outbox.Status.DEAD else "failed")
            if row.status == outbox.Status.DEAD:
                log.error(
                    "gave up on %s #%d to %s: %s", row.kind, row.id, job.channel, result.error
                )
                _report_dead(session, row, admin_targets, now)
            else:
                log.warning(
                    "sending %s #%d to %s failed (attempt %d, next at %s): %s",
                    row.kind,
                    row.id,
                    job.channel,
                    row.attempts,
                    row.next_attempt_at.isoformat(timespec="seconds"),
                    result.error,
                )

    def _tell(self, job: _Job, outcome: str) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(job.kind, job.channel, outcome)
            except Exception:  # counting must never stop a send from being recorded
                log.exception("counting a %s message failed", outcome)

    def _mark_sent(self, row_id: int | None) -> None:
        """Mark a row sent (None: only what is queued); returns once that is committed.

        Group commit: the worker that gets the lock marks every row queued so far in
        one statement, so the workers that queued theirs meanwhile find them committed
        (or commit the next group) instead of each waiting for a commit of its own.
        """
        if row_id is not None:
            with self._unmarked_lock:
                self._unmarked.append(row_id)
        with self._marking, self._writing:
            with self._unmarked_lock:
                batch, self._unmarked = self._unmarked, []
            if not batch:
                return  # an earlier group held this row, and its commit is done
            try:
                with self.database.engine.begin() as connection:
                    outbox.mark_sent(connection, batch, self.clock.now())
            except BaseException:
                # Back in the queue: the next worker to get the lock tries them again,
                # so no worker returns before a commit holding its row succeeded.
                with self._unmarked_lock:
                    self._unmarked[:0] = batch
                raise


class _Pass:
    """One delivery pass: claim due rows as workers free up, start each send as soon as
    its service's limits allow, record every outcome; end when nothing due is left.

    The calling thread dispatches; the Deliverer's pool sends. Claimed rows wait in
    *lanes*, one per set of limits (a target), so a lane held back by its service
    does not hold back the others. On a failure to record (the database) or a stop,
    no more sends start; the claims not sent are given back.
    """

    def __init__(self, deliverer: Deliverer, report: DeliveryReport) -> None:
        self.d = deliverer
        self.report = report
        self.report_lock = threading.Lock()
        self.cond = threading.Condition()
        self.lanes: dict[Keys, deque[_Job]] = {}
        self.queued = 0
        self.in_flight = 0
        self.started: list[int] = []  # rows handed to a worker
        self.accepted: set[int] = set()  # rows a channel took: sent, marked yet or not
        self.failure: BaseException | None = None
        self.drained = False  # the last claim took every row due
        # Rows queued per limit: a service with a batch of them waiting is *crowded*, and
        # claims skip its targets, so its backlog (older rows, claimed first) does not
        # keep every other service's rows out of the queue.
        self.queued_by_key: dict[LimitKey, int] = {}
        self.builtin: dict[LimitKey, Limit] = {}
        self.dry_while: frozenset[LimitKey] | None = None  # crowded when a skipping claim
        # came back short: claim again only once that changes
        self._admin: dict[int, list[str]] = {}  # admin targets per config in force
        self.waiting: dict[str, int] = {}  # queued rows by what held them at the last look

    def run(self) -> None:
        d = self.d
        try:
            while True:
                action = self._next_action()
                if action == "claim":
                    self._claim_more()
                elif action == "renew":
                    self._renew()
                else:
                    break
        except BaseException as exc:  # claiming or renewing failed: stop as for a send
            with self.cond:
                self.failure = self.failure or exc
        finally:
            with self.cond:
                while self.in_flight:
                    self.cond.wait()  # never return while a worker is still sending
                unsent = [job.row_id for lane in self.lanes.values() for job in lane]
                unsent += [row_id for row_id in self.started if row_id not in self.accepted]
                self.lanes.clear()
        if self.failure is not None or d.stopping.is_set():
            # Never sent: give them back now, not after the lease. Sent rows whose mark
            # failed stay claimed; the next _mark_sent marks them.
            d._release(unsent)
        if self.failure is not None:
            raise self.failure

    def _next_action(self) -> str:
        """Start what may start; then say what the dispatcher does next: "claim",
        "renew", or "end". Waits (for a send to end or a limit to allow) meanwhile."""
        d = self.d
        with self.cond:
            while True:
                if self.failure is not None or d.stopping.is_set():
                    return "end"
                wait = self._start_ready()
                if self._wants_rows():
                    return "claim"
                if self.drained and not self.queued and not self.in_flight:
                    return "end"
                if self._stale():
                    return "renew"
                # Woken by a send's end (notify), when a limit allows the next, or to
                # look at the stop signal and the claims' age.
                self.cond.wait(timeout=min(wait, WAKE_EVERY))

    def _wants_rows(self) -> bool:
        d = self.d
        workers = d.concurrency
        if self.drained or self.queued >= QUEUE_ROWS * d.batch:
            return False
        if self.queued >= workers and self.in_flight >= workers:
            return False  # enough queued to keep every worker busy
        return self.dry_while is None or self._crowded() != self.dry_while

    def _crowded(self) -> frozenset[LimitKey]:
        """The limits with half a batch of rows queued behind them (a limit that caps
        nothing, a host without one, crowds nothing: the workers take its rows)."""
        d = self.d
        with d._limiter_lock:
            return frozenset(
                key
                for key, n in self.queued_by_key.items()
                if n >= d.batch // 2 and d.limiter.limit(key, self.builtin[key]) != Limit()
            )

    def _skip(self, loaded: LoadedConfig, crowded: frozenset[LimitKey]) -> set[str]:
        """The targets a send to which is under a crowded limit."""
        if not crowded:
            return set()
        return {
            target
            for target in loaded.channels
            if any(key in crowded for key, _ in self.d._keys(loaded, target))
        }

    def _start_ready(self) -> float:
        """Start every queued send its limits allow (the oldest lanes first); returns
        the seconds until a held-back one may start (inf: when a send ends)."""
        d = self.d
        workers = d.concurrency
        now = time.monotonic()
        soonest = math.inf
        holding: set[LimitKey] = set()
        waiting: dict[str, int] = {}
        with d._limiter_lock:
            for keys, lane in list(self.lanes.items()):
                if self.in_flight >= workers:
                    waiting["workers"] = waiting.get("workers", 0) + len(lane)
                    continue
                held = next((key for key, _ in keys if key in holding), None)
                if held is not None:
                    waiting[held.kind] = waiting.get(held.kind, 0) + len(lane)
                    continue
                reason = "workers"  # why what is left of the lane waits, if anything
                while lane and self.in_flight < workers:
                    wait, held_by = d.limiter.check(keys, now)
                    if wait > 0:
                        holding.update(held_by)
                        soonest = min(soonest, wait)
                        reason = held_by[0].kind
                        break
                    job = lane.popleft()
                    self.queued -= 1
                    try:
                        d._pool.submit(self._send, job)
                    except BaseException:
                        lane.appendleft(job)  # given back with the rest at the end
                        self.queued += 1
                        raise
                    # Counted after the hand-off: the worker cannot end it before we
                    # let go of the locks, and a failed hand-off counts nothing.
                    d.limiter.start(keys)
                    for key, _ in keys:
                        self.queued_by_key[key] -= 1
                    self.in_flight += 1
                    self.started.append(job.row_id)
                if lane:
                    waiting[reason] = waiting.get(reason, 0) + len(lane)
                else:
                    del self.lanes[keys]
        self.waiting = waiting
        return soonest

    def _claim_more(self) -> None:
        d = self.d
        loaded = d.loaded
        if loaded is not d._limits_of:  # a reload: its limits apply from now on
            with d._limiter_lock:
                d.limiter.configure(loaded.config.delivery.overrides())
            d._limits_of = loaded
        with self.cond:
            crowded = self._crowded()
        skip = self._skip(loaded, crowded)  # may load plugins: not under the lock
        jobs, held, short = d._claim(loaded, d.clock.now(), skip)
        now = time.monotonic()
        for job in jobs:
            job.keys = d._keys(loaded, job.channel)
            job.claimed = now
        with self.cond:
            self.report.held += held
            if short and skip:
                self.dry_while = crowded  # the rest is for the crowded services
            else:
                self.drained = short
                self.dry_while = None
            for job in jobs:
                self.lanes.setdefault(job.keys, deque()).append(job)
                for key, limit in job.keys:
                    self.queued_by_key[key] = self.queued_by_key.get(key, 0) + 1
                    self.builtin[key] = limit
            self.queued += len(jobs)

    def _stale(self) -> bool:
        horizon = time.monotonic() - RENEW_AFTER
        return any(lane[0].claimed < horizon for lane in self.lanes.values())

    def _renew(self) -> None:
        """Renew the claims of rows waiting their turn long, so no sender takes them."""
        d = self.d
        now = time.monotonic()
        with self.cond:
            waiting = [
                job
                for lane in self.lanes.values()
                for job in lane
                if job.claimed < now - RENEW_AFTER / 2
            ]
        with d._writing, d.database.engine.begin() as connection:
            outbox.renew_claims(
                connection, [job.row_id for job in waiting], d.clock.now(), owner=d.owner
            )
        for job in waiting:
            job.claimed = now

    def _send(self, job: _Job) -> None:
        """A worker: send one message and record the outcome before taking another, so
        at most one message per worker is ever sent but not yet marked."""
        d = self.d
        try:
            if d.stopping.is_set() or self.failure is not None:
                return  # not sent: released at the end of the pass
            assert job.loaded is not None
            result = job.loaded.channels.send(job.channel, job.message)
            if result.ok:
                with self.cond:
                    self.accepted.add(job.row_id)
            d._record(job, result, self.report, self.report_lock, self._admin_targets(job))
        except BaseException as exc:  # recording failed (the database): send no more
            with self.cond:
                self.failure = self.failure or exc
        finally:
            with d._limiter_lock:
                d.limiter.finish(job.keys)
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()

    def _admin_targets(self, job: _Job) -> list[str]:
        assert job.loaded is not None
        key = id(job.loaded)
        targets = self._admin.get(key)
        if targets is None:
            targets = self._admin[key] = job.loaded.admin_targets()
        return targets


def _render(
    session: Session, catalogue: Catalogue, row: OutboxRow, user: UserRow | None, now: datetime
) -> Message:
    sim = session.get(SimRow, row.sim_id) if row.sim_id else None
    if sim is None or row.target is None:
        return Message(f"SIM Watcher: {row.kind}", f"Reminder {row.dedup_key}")
    zone = ZoneInfo(user.timezone) if user else ZoneInfo("UTC")
    facts = ReminderFacts(
        kind=row.kind,  # type: ignore[arg-type]
        sim_id=sim.id,
        label=sim.plan or sim.id,
        masked_number=mask_phone(sim.number),
        operator=catalogue.get(sim.operator),
        target=row.target,
        today=now.astimezone(zone).date(),
        last_balance_check=sim.last_balance_check,
        balance=sim.balance,
        low_balance=sim.low_balance,
    )
    return render_reminder(facts, user.language if user else "en")


def _report_dead(session: Session, row: OutboxRow, admin_targets: list[str], now: datetime) -> None:
    if row.kind == Kind.ADMIN or not admin_targets:
        return  # an admin message that dies is only logged: no report loops
    text = render_dead_letter(
        row.channel,
        row.title or row.kind,
        (row.first_attempt_at or now).isoformat(timespec="minutes"),
        row.last_error or "unknown",
    )
    outbox.enqueue(
        session, outbox.admin_messages(outbox.dead_letter_key(row.id), admin_targets, text), now
    )


def _users_of(session: Session, rows: Any) -> dict[str, UserRow]:
    names = {row.user_name for row in rows if row.user_name}
    if not names:
        return {}
    return {
        user.name: user for user in session.scalars(select(UserRow).where(UserRow.name.in_(names)))
    }


def _quiet(user: UserRow) -> QuietHours | None:
    return QuietHours.parse(user.quiet_hours) if user.quiet_hours else None
