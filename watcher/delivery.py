"""Delivery: send what the outbox holds, through Apprise, and record every outcome.

A row is marked sent right after its channel accepted it, in its own transaction,
so a crash can at most re-send the messages that were in flight. A failed channel
is retried with exponential backoff and jitter (1 min doubling to a 6 h cap); after
48 h of failures the row is marked dead and the admin channels hear of it once.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import apprise
from apprise.decorators import notify as apprise_notification
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from watcher.catalogue import Catalogue
from watcher.clock import Clock
from watcher.config import CONSOLE_URL, QuietHours
from watcher.db.engine import Database
from watcher.db.models import OutboxRow, SimRow, UserRow
from watcher.masking import mask_phone, mask_url, scrub, url_secrets
from watcher.messages import Message, ReminderFacts, render_dead_letter, render_reminder
from watcher.outbox import NewMessage, enqueue
from watcher.schedule import release_time

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(hours=48)
BATCH = 200
# A claimed row is left alone by other senders for this long; claims of a sender
# that died on this host are released at once by the next start (release_claims).
CLAIM_LEASE = timedelta(minutes=5)


# Tells this process from an earlier one with the same pid (a restarted container's
# daemon is pid 1 every time).
_RUN_TOKEN = uuid.uuid4().hex[:8]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_RUN_TOKEN}"


@apprise_notification(on="console", name="SIM Watcher console")  # type: ignore[untyped-decorator,no-untyped-call]
def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """The built-in ``console://`` channel: print to standard output."""
    print(f"== {title} ==\n{body}\n", flush=True)
    return True


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Backoff after the ``attempts``-th failure: 1 min doubling to 6 h, ±20 % jitter."""
    base: timedelta = min(FIRST_RETRY * 2 ** min(attempts - 1, 20), MAX_RETRY)
    jittered: timedelta = base * rng.uniform(0.8, 1.2)
    return min(jittered, MAX_RETRY)


# async_mode=False: we run the workers. service_timeout=0: with a service timeout,
# Apprise runs every send in its shared thread pool (min(32, cores + 4) threads, 6 on
# two cores), which would cap our workers at that many and add a thread hand-off to
# each message. A send stays bounded by its plugin's own socket timeouts (4 s connect
# and read for HTTP services, 15 s for SMTP).
_ASSET = apprise.AppriseAsset(async_mode=False, service_timeout=0)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str | None = None


class Channels:
    """The configured channels as delivery targets (``name``, ``name#2``...), via Apprise."""

    def __init__(self, channels: Mapping[str, list[str]]) -> None:
        self._urls: dict[str, str] = {}
        for name, urls in channels.items():
            for i, url in enumerate(urls):
                self._urls[name if i == 0 else f"{name}#{i + 1}"] = url.strip()

    def targets(self, name: str) -> list[str]:
        return [t for t in self._urls if t == name or t.startswith(f"{name}#")]

    def __contains__(self, target: object) -> bool:
        return target in self._urls

    def masked(self, target: str) -> str:
        return mask_url(self._urls[target])

    def send(self, target: str, message: Message) -> SendResult:
        """Send one message to one target; never raises for a channel's failure."""
        url = self._urls.get(target)
        if url is None:
            return SendResult(False, f"channel {target!r} is no longer in the config")
        try:
            result = self._client(url).notify(title=message.title, body=message.body)
        except Exception as exc:  # a plugin bug must not stop the other channels
            reason = f"{type(exc).__name__}: {exc}"
        else:
            try:
                if result:
                    return SendResult(True)
                # Apprise keeps each attempt's own log lines on its result.
                warnings = [
                    entry.message
                    for entry in result.logs()
                    if entry.level in ("WARNING", "ERROR", "CRITICAL")
                ]
            finally:
                result.close()
            reason = warnings[-1] if warnings else "the channel did not accept the message"
        return SendResult(False, scrub(reason, url_secrets(url))[:500])

    def _client(self, url: str) -> apprise.Apprise:
        # A fresh client per send: Apprise throttles repeated sends through one plugin
        # instance (about 5 s apart for e-mail), which would serialise our workers.
        client = apprise.Apprise(asset=_ASSET)
        client.add("console://" if url == CONSOLE_URL else url)
        return client


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


class Deliverer:
    """Sends due outbox rows concurrently; one instance per daemon."""

    def __init__(
        self,
        database: Database,
        channels: Channels,
        catalogue: Catalogue,
        clock: Clock,
        *,
        admin: list[str] | None = None,
        concurrency: int = 8,
        rng: random.Random | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.database = database
        self.channels = channels
        self.catalogue = catalogue
        self.clock = clock
        self.admin_targets = [t for name in admin or [] for t in channels.targets(name)]
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.stopping = stopping or threading.Event()
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
        while not self.stopping.is_set():
            jobs, held = self._claim(self.clock.now())
            report.held += held
            if not jobs:
                break
            report += self._send_all(jobs)
        return report

    # -- claiming: pick due rows, hold quiet ones, render and store the text --------

    def _claim(self, now: datetime) -> tuple[list[_Job], int]:
        jobs: list[_Job] = []
        held = 0
        with self.database.session() as session:
            query = (
                select(OutboxRow)
                .where(
                    OutboxRow.status == "pending",
                    OutboxRow.next_attempt_at <= now,
                    or_(OutboxRow.claimed_at.is_(None), OutboxRow.claimed_at < now - CLAIM_LEASE),
                )
                .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                .limit(BATCH)
            )
            if not self.database.is_sqlite:  # SQLite serialises writers already
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            users = _users_of(session, rows)
            for row in rows:
                user = users.get(row.user_name or "")
                if user is not None and row.kind != "admin":
                    release = release_time(now, _quiet(user), ZoneInfo(user.timezone))
                    if release > now:
                        row.next_attempt_at = release
                        held += 1
                        continue
                if row.title is None or row.body is None:
                    message = self._render(session, row, user, now)
                    row.title, row.body = message.title, message.body
                row.claimed_at = now
                row.claimed_by = _owner()
                jobs.append(_Job(row.id, row.channel, Message(row.title, row.body)))
        if held:
            log.info("%d messages held until quiet hours end", held)
        return jobs, held

    def _render(
        self, session: Session, row: OutboxRow, user: UserRow | None, now: datetime
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
            operator=self.catalogue.get(sim.operator),
            target=row.target,
            today=now.astimezone(zone).date(),
            last_balance_check=sim.last_balance_check,
            balance=sim.balance,
            low_balance=sim.low_balance,
        )
        return render_reminder(facts, user.language if user else "en")

    # -- sending ------------------------------------------------------------------

    def _send_all(self, jobs: list[_Job]) -> DeliveryReport:
        report = DeliveryReport()
        lock = threading.Lock()
        failed = threading.Event()

        def work(job: _Job) -> None:
            # Each worker records its own send before it takes the next one, so at most
            # one message per worker is ever sent but not yet marked.
            if self.stopping.is_set() or failed.is_set():
                return  # left claimed: released and sent at the next start
            try:
                self._record(job, self.channels.send(job.channel, job.message), report, lock)
            except BaseException:
                failed.set()  # recording fails (the database): send no more of this batch
                raise

        futures = [self._pool.submit(work, job) for job in jobs]
        wait(futures)  # never return while a worker is still sending
        for future in futures:
            future.result()  # the first failure, if any
        return report

    def _record(
        self, job: _Job, result: SendResult, report: DeliveryReport, lock: threading.Lock
    ) -> None:
        if result.ok:
            self._mark_sent(job.row_id)
            with lock:
                report.sent += 1
            log.info("sent #%d to %s", job.row_id, job.channel)
            return
        now = self.clock.now()
        with self._writing, self.database.session() as session:
            row = session.get(OutboxRow, job.row_id)
            if row is None or row.status != "pending":
                return
            row.attempts += 1
            row.claimed_at = None
            row.claimed_by = None
            row.first_attempt_at = row.first_attempt_at or now
            row.last_error = result.error
            if now - row.first_attempt_at >= GIVE_UP_AFTER:
                row.status = "dead"
                with lock:
                    report.dead += 1
                    report.errors.append(f"{job.channel}: {result.error}")
                log.error(
                    "gave up on %s #%d to %s: %s", row.kind, row.id, job.channel, result.error
                )
                self._report_dead(session, row, now)
            else:
                row.next_attempt_at = now + retry_delay(row.attempts, self.rng)
                with lock:
                    report.failed += 1
                    report.errors.append(f"{job.channel}: {result.error}")
                log.warning(
                    "sending %s #%d to %s failed (attempt %d, next at %s): %s",
                    row.kind,
                    row.id,
                    job.channel,
                    row.attempts,
                    row.next_attempt_at.isoformat(timespec="seconds"),
                    result.error,
                )

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
                    connection.execute(
                        update(OutboxRow)
                        .where(OutboxRow.id.in_(batch), OutboxRow.status == "pending")
                        .values(
                            status="sent",
                            sent_at=self.clock.now(),
                            attempts=OutboxRow.attempts + 1,
                            claimed_at=None,
                            claimed_by=None,
                            last_error=None,
                        )
                    )
            except BaseException:
                # Back in the queue: the next worker to get the lock tries them again,
                # so no worker returns before a commit holding its row succeeded.
                with self._unmarked_lock:
                    self._unmarked[:0] = batch
                raise

    def _report_dead(self, session: Session, row: OutboxRow, now: datetime) -> None:
        if row.kind == "admin" or not self.admin_targets:
            return  # an admin message that dies is only logged: no report loops
        text = render_dead_letter(
            row.channel,
            row.title or row.kind,
            (row.first_attempt_at or now).isoformat(timespec="minutes"),
            row.last_error or "unknown",
        )
        enqueue(
            session,
            [
                NewMessage(f"dead:{row.id}", target, "admin", title=text.title, body=text.body)
                for target in self.admin_targets
            ],
            now,
        )


def release_claims(database: Database) -> int:
    """Free the rows held by senders on this host that are no longer running.

    Their messages may or may not have gone out before the sender died; they are
    sent again (the "at most the messages in flight" duplicates). Claims of live
    senders (a daemon next to a ``run --once``) are left alone, and claims from
    other hosts simply expire after CLAIM_LEASE.
    """
    host = socket.gethostname()
    with database.session() as session:
        owners = session.scalars(
            select(OutboxRow.claimed_by)
            .where(OutboxRow.status == "pending", OutboxRow.claimed_by.is_not(None))
            .distinct()
        ).all()
        dead = [owner for owner in owners if owner and _is_dead(owner, host)]
        if not dead:
            return 0
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == "pending", OutboxRow.claimed_by.in_(dead))
            .values(claimed_at=None, claimed_by=None)
        )
        return max(cast(CursorResult[Any], result).rowcount, 0)


def _is_dead(owner: str, host: str) -> bool:
    owner_host, pid_text, token = [*owner.rsplit(":", 2), "", ""][:3]
    if owner_host != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token != _RUN_TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def report_to_admin(
    database: Database,
    admin_targets: list[str],
    dedup_key: str,
    message: Message,
    now: datetime,
) -> None:
    """Queue a message about the daemon's own trouble for the admin channels, once per key."""
    if not admin_targets:
        log.error("%s (no admin channel configured)", message.title)
        return
    with database.session() as session:
        enqueue(
            session,
            [
                NewMessage(dedup_key, target, "admin", title=message.title, body=message.body)
                for target in admin_targets
            ],
            now,
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


def send_test(
    channels: Channels, targets: list[str], message_for: Callable[[str], Message]
) -> dict[str, SendResult]:
    """Send one test message per target, directly (not through the outbox)."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets)))) as pool:
        futures = {
            target: pool.submit(channels.send, target, message_for(target)) for target in targets
        }
        return {target: future.result() for target, future in futures.items()}


def cancel_pending(session: Session, sim_id: str, kinds: tuple[str, ...], reason: str) -> None:
    """Stop unsent reminders of a SIM (after a renewal or a balance check)."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.sim_id == sim_id, OutboxRow.status == "pending", OutboxRow.kind.in_(kinds))
        .values(status="cancelled", last_error=reason)
    )
