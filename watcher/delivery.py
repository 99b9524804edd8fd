"""Delivery: send what the outbox holds, through Apprise, and record every outcome.

A row is marked sent right after its channel accepted it, in its own transaction,
so a crash can at most re-send the messages that were in flight. A failed channel
is retried with exponential backoff and jitter (1 min doubling to a 6 h cap); after
48 h of failures the row is marked dead and the admin channels hear of it once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
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
from watcher.masking import mask_phone
from watcher.messages import Message, ReminderFacts, render_dead_letter, render_reminder
from watcher.outbox import Kind
from watcher.quiet import QuietHours, release_time

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(hours=48)
BATCH = 200
# Pauses (seconds) before trying again to release a failed batch's claims while the
# database is down; then the claim lease takes over.
RELEASE_WAITS = (0.5, 2.0)


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Backoff after the ``attempts``-th failure: 1 min doubling to 6 h, ±20 % jitter."""
    base: timedelta = min(FIRST_RETRY * 2 ** min(attempts - 1, 20), MAX_RETRY)
    jittered: timedelta = base * rng.uniform(0.8, 1.2)
    return min(jittered, MAX_RETRY)


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


@dataclass(frozen=True)
class _Job:
    row_id: int
    channel: str
    message: Message
    kind: str = ""


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
        concurrency: int = 8,
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
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.stopping = stopping or threading.Event()
        self.release_waits = tuple(release_waits)
        self._unreleased: list[int] = []  # claims to give back once the database answers
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")
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
        while not self.stopping.is_set():
            loaded = self.loaded
            jobs, held = self._claim(loaded.catalogue, self.clock.now())
            report.held += held
            if not jobs:
                break
            report += self._send_all(jobs, loaded)
        return report

    # -- claiming: pick due rows, hold quiet ones, render and store the text --------

    def _claim(self, catalogue: Catalogue, now: datetime) -> tuple[list[_Job], int]:
        jobs: list[_Job] = []
        held = 0
        with self.database.session() as session:
            # SQLite serialises writers already; PostgreSQL senders skip each other's rows.
            rows = outbox.due_rows(
                session, now, limit=BATCH, skip_locked=not self.database.is_sqlite
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
                jobs.append(_Job(row.id, row.channel, message, row.kind))
        if held:
            log.info("%d messages held until quiet hours end", held)
        return jobs, held

    # -- sending ------------------------------------------------------------------

    def _send_all(self, jobs: list[_Job], loaded: LoadedConfig) -> DeliveryReport:
        report = DeliveryReport()
        lock = threading.Lock()
        failed = threading.Event()
        channels = loaded.channels
        admin_targets = loaded.admin_targets()

        accepted: set[int] = set()  # rows a channel took: sent, whether marked yet or not

        def work(job: _Job) -> None:
            # Each worker records its own send before it takes the next one, so at most
            # one message per worker is ever sent but not yet marked.
            if self.stopping.is_set() or failed.is_set():
                return  # not sent: released below
            try:
                result = channels.send(job.channel, job.message)
                if result.ok:
                    with lock:
                        accepted.add(job.row_id)
                self._record(job, result, report, lock, admin_targets)
            except BaseException:
                failed.set()  # recording fails (the database): send no more of this batch
                raise

        futures = [self._pool.submit(work, job) for job in jobs]
        wait(futures)  # never return while a worker is still sending
        if failed.is_set() or self.stopping.is_set():
            # The rest of the batch was never sent: give it back now, not after the lease.
            # Sent rows whose mark failed stay claimed; the next _mark_sent marks them.
            self._release([job.row_id for job in jobs if job.row_id not in accepted])
        for future in futures:
            future.result()  # the first failure, if any
        return report

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
