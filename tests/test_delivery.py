"""Delivery through real Apprise URLs to real loopback servers, with time moved by hand."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, make_url, select, text, update
from sqlalchemy.exc import OperationalError

from tests.conftest import NO_POSTGRES, POSTGRES_URL, MakeApp, WriteConfig
from tests.servers import SmtpSink, WebhookReceiver
from watcher.app import App
from watcher.clock import FixedClock
from watcher.config import load_config
from watcher.daemon import release_dead_claims
from watcher.db import OutboxRow
from watcher.delivery import retry_delay
from watcher.outbox import NewMessage, enqueue
from watcher.reminders.records import record_renewal

# 2026-11-25 10:00 in Almaty (UTC+5).
TEN_ALMATY = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
NEW_EXPIRY = date(2027, 1, 31)


@pytest.fixture
def alice(write_config: WriteConfig, webhook: WebhookReceiver, smtp: SmtpSink) -> WriteConfig:
    """Write the config: alice, on a webhook and a mailbox, with one SIM due a reminder."""

    def write(*, quiet: str | None = None, expires: str = "2026-11-28") -> Path:
        return write_config(
            f"""
timezone: Asia/Almaty
channels:
  hook: "{webhook.url("s3cr3t-hook-token")}"
  mail: "{smtp.url()}"
  ops: "{webhook.url("admin")}"
admin: [ops]
users:
  - name: alice
    language: en
    notify: [hook, mail]
    {f'quiet_hours: "{quiet}"' if quiet else ""}
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: {expires}
        remind_before: [3d]
        remind_after: []
"""
        )

    return write


def cycle(app: App) -> None:
    app.sync()
    app.plan()
    app.deliver()


def outbox(app: App) -> list[OutboxRow]:
    with app.database.session() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_a_due_reminder_reaches_every_channel_once(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    app = make_app(alice(), clock=FixedClock(TEN_ALMATY))
    cycle(app)
    cycle(app)
    assert len(webhook.received) == 1
    assert len(smtp.subjects()) == 1
    payload = webhook.received[0].payload
    assert "3 days" in payload["title"]
    assert "+7 701 *** ** 67" in payload["message"]
    assert "+77011234567" not in payload["message"]
    assert "Kcell" in smtp.bodies()[0]


def test_a_failed_channel_is_retried_after_backoff_and_never_doubles_the_other(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock)
    webhook.status = 500
    cycle(app)
    assert webhook.requests == 1
    assert len(smtp.subjects()) == 1
    rows = {row.channel: row for row in outbox(app)}
    assert rows["mail"].status == "sent"
    assert rows["hook"].status == "pending"
    assert rows["hook"].attempts == 1
    assert "s3cr3t-hook-token" not in (rows["hook"].last_error or "")
    wait = rows["hook"].next_attempt_at - clock.now()
    assert timedelta(seconds=45) <= wait <= timedelta(seconds=75)

    clock.advance(timedelta(seconds=30))  # backoff not over: no new attempt
    cycle(app)
    assert webhook.requests == 1

    webhook.status = 200
    clock.advance(timedelta(minutes=2))
    cycle(app)
    cycle(app)
    assert len(webhook.received) == 1
    assert len(smtp.subjects()) == 1  # the channel that worked was not sent to again


def test_backoff_doubles_with_jitter_up_to_six_hours() -> None:
    import random

    rng = random.Random(1)
    delays = [retry_delay(n, rng) for n in range(1, 13)]
    assert timedelta(seconds=48) <= delays[0] <= timedelta(seconds=72)
    assert timedelta(seconds=96) <= delays[1] <= timedelta(seconds=144)
    assert all(d <= timedelta(hours=6) for d in delays)
    assert delays[-1] >= timedelta(hours=4.8)


def test_a_channel_down_for_48_hours_is_given_up_and_reported_once(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock)
    smtp.fail = True
    cycle(app)
    for _ in range(40):  # jump from one retry to the next; 48 h take about 17 tries
        mail = next(row for row in outbox(app) if row.channel == "mail")
        if mail.status != "pending":
            break
        assert "alice@example.com" in (mail.last_error or "") or mail.last_error
        clock.set(mail.next_attempt_at)
        cycle(app)
    cycle(app)
    rows = outbox(app)
    mail = next(row for row in rows if row.channel == "mail")
    assert mail.status == "dead"
    assert mail.first_attempt_at is not None
    assert clock.now() - mail.first_attempt_at >= timedelta(hours=48)
    assert mail.attempts >= 10  # kept trying for the whole 48 h
    admin = [r for r in webhook.received if r.path == "/admin"]
    assert len(admin) == 1
    assert "mail" in admin[0].payload["message"]
    reminders = [r for r in webhook.received if r.path != "/admin"]
    assert len(reminders) == 1


def test_quiet_hours_hold_a_message_until_they_end(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(quiet="09:00-12:00"), clock=clock)
    cycle(app)
    assert webhook.received == []
    clock.advance(timedelta(hours=1, minutes=59))  # 11:59 local
    cycle(app)
    assert webhook.received == []
    clock.advance(timedelta(minutes=1))  # 12:00 local: quiet hours over
    cycle(app)
    assert len(webhook.received) == 1


def test_a_renewal_cancels_a_reminder_still_waiting_for_its_channel(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock)
    webhook.status = 500
    cycle(app)
    alice(expires="2027-01-31")  # the user renews and edits the config
    assert app.reload_if_changed()
    webhook.status = 200
    clock.advance(timedelta(hours=1))
    cycle(app)
    assert webhook.received == []
    hook = next(row for row in outbox(app) if row.channel == "hook")
    assert hook.status == "cancelled"


def test_a_renewal_during_the_send_leaves_the_reminder_recorded_as_sent(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    # `watcher renew` runs while the reminder is on its way: it cancels the SIM's
    # pending reminders, but the one in flight arrives, and the history says so.
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock)
    renewals: list[str] = []

    def renew_now() -> None:
        if not renewals:
            with app.database.session() as session:
                renewal = record_renewal(
                    session, "alice-kcell", clock.now(), until=NEW_EXPIRY, period=None, source="cli"
                )
            renewals.append(str(renewal.new))

    webhook.on_post = renew_now
    smtp.fail = True  # the mail one fails and stays cancelled: it never arrived
    cycle(app)
    assert renewals and len(webhook.received) == 1
    rows = {row.channel: row for row in outbox(app)}
    assert (rows["hook"].status, rows["hook"].last_error) == ("sent", None)
    assert rows["mail"].status == "cancelled"


def test_a_failed_commit_of_sent_marks_is_retried_by_the_next_worker(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver
) -> None:
    # Workers mark their sends in groups (one commit for all that are waiting). When
    # such a commit fails, its rows go back in the queue: the next worker's commit
    # marks them, so none is sent again later.
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock)
    titles = [f"bulk #{i:02d}" for i in range(40)]
    with app.database.session() as session:
        enqueue(
            session,
            [NewMessage(f"bulk:{t}", "hook", "admin", title=t, body="x") for t in titles],
            clock.now(),
        )
    webhook.delay = 0.02  # the workers overlap, so marks queue up behind each other
    failures: list[str] = []

    def fail_first_mark(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE outbox SET status") and not failures:
            failures.append(statement)
            raise OperationalError(statement, parameters, Exception("disk I/O error (injected)"))

    event.listen(app.database.engine, "before_cursor_execute", fail_first_mark)
    with pytest.raises(OperationalError, match="injected"):
        app.deliver()
    assert len(failures) == 1

    # What was not sent (the failure stopped the batch) was released at once: the next
    # run sends it without waiting out the claim lease. Nothing sent goes out again.
    app.deliver()
    arrived = sorted(r.payload["title"] for r in webhook.received)
    assert arrived == titles
    assert {row.status for row in outbox(app)} == {"sent"}


FEW_WORKERS = 8  # batch tests: fewer workers than bulk() messages, so a batch stops part-way


def bulk(app: App, count: int = 40) -> list[str]:
    """Queue ``count`` admin messages for the hook channel; returns their titles."""
    titles = [f"bulk #{i:02d}" for i in range(count)]
    with app.database.session() as session:
        enqueue(
            session,
            [NewMessage(f"bulk:{t}", "hook", "admin", title=t, body="x") for t in titles],
            app.clock.now(),
        )
    return titles


def claimed(app: App) -> list[int]:
    return [row.id for row in outbox(app) if row.claimed_by is not None]


def fail_statements(app: App, fails: Callable[[str], bool], reason: str) -> list[str]:
    """Make each SQL statement for which ``fails`` is true raise OperationalError(reason).

    Returns the list the failed statements are appended to, as they fail.
    """
    failed: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if fails(statement):
            failed.append(statement)
            raise OperationalError(statement, parameters, Exception(f"{reason} (injected)"))

    event.listen(app.database.engine, "before_cursor_execute", before)
    return failed


def is_mark(statement: str) -> bool:
    return statement.startswith("UPDATE outbox SET status")


def is_release(statement: str) -> bool:
    return statement.startswith("UPDATE outbox SET claimed_at") and "RETURNING" in statement


def test_a_batch_that_fails_recording_a_failure_gives_back_what_it_did_not_send(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver
) -> None:
    # The database fails once (PostgreSQL restarting, SQLite's disk full) while a
    # worker records a channel's failure: the batch stops, and its unsent rows are
    # released at once instead of waiting five minutes for their claim lease.
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock, concurrency=FEW_WORKERS)
    titles = bulk(app)
    webhook.status = 500
    webhook.delay = 0.02
    failures = fail_statements(
        app,
        lambda statement: statement.startswith("UPDATE outbox SET attempts") and not failures,
        "server closed the connection",
    )
    with pytest.raises(OperationalError, match="injected"):
        app.deliver()
    assert len(failures) == 1
    assert claimed(app) == []
    never_tried = sorted(row.title or "" for row in outbox(app) if row.attempts == 0)
    assert 0 < len(never_tried) < len(titles)  # the batch stopped part-way

    webhook.status = 200
    app.deliver()  # same instant: no lease to wait out (the failed ones wait their backoff)
    assert sorted(r.payload["title"] for r in webhook.received) == never_tried


def test_a_failed_release_is_tried_again_before_leaving_rows_to_the_lease(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock, concurrency=FEW_WORKERS)
    titles = bulk(app)
    app.deliverer.release_waits = (0.0,)
    webhook.delay = 0.02
    failures = fail_statements(
        app,
        lambda statement: (
            (is_mark(statement) and not failures) or (is_release(statement) and len(failures) == 1)
        ),
        "disk full",
    )
    with pytest.raises(OperationalError, match="injected"):
        app.deliver()
    assert len(failures) == 2  # the mark, then the first try of the release
    app.deliver()
    assert sorted(r.payload["title"] for r in webhook.received) == titles
    assert {row.status for row in outbox(app)} == {"sent"}


def test_claims_a_batch_could_not_give_back_go_out_at_the_next_pass_once_it_answers(
    make_app: MakeApp,
    alice: WriteConfig,
    webhook: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The database is down longer than the release retries (a PostgreSQL restart): the
    # next delivery pass gives the claims back itself, instead of waiting out the lease.
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock, concurrency=FEW_WORKERS)
    titles = bulk(app)
    app.deliverer.release_waits = (0.0, 0.0)
    webhook.delay = 0.02
    down = [True]  # from just after the batch was claimed: no write gets through
    failures = fail_statements(
        app,
        lambda statement: down[0] and (is_mark(statement) or is_release(statement)),
        "connection refused",
    )
    with pytest.raises(OperationalError, match="injected"):
        app.deliver()
    assert len([s for s in failures if is_release(s)]) == 3  # a try, and one per pause
    assert "could not release" in caplog.text
    assert "connection refused (injected)" in caplog.text
    assert "UPDATE" not in caplog.text  # the reason, not the SQL

    down[0] = False
    app.deliver()  # the same instant: no lease has passed
    assert sorted(r.payload["title"] for r in webhook.received) == titles
    assert {row.status for row in outbox(app)} == {"sent"}


def test_restart_says_how_many_claimed_messages_may_really_arrive_twice(
    make_app: MakeApp,
    alice: WriteConfig,
    webhook: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A sender killed mid-batch leaves its whole batch claimed, but only the few it was
    # sending (one per worker) can have gone out: the log says so, not "40 in flight".
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock, concurrency=FEW_WORKERS)
    titles = bulk(app)
    dead = f"{socket.gethostname()}:{2**22 + 4321}:deadbeef"  # no such pid
    with app.database.session() as session:
        session.execute(update(OutboxRow).values(claimed_at=clock.now(), claimed_by=dead))
    assert release_dead_claims(app) == len(titles)
    assert (
        f"the last run stopped with {len(titles)} messages claimed; sending them now "
        f"(at most {app.concurrency} of them were in flight and may arrive twice)"
    ) in caplog.text
    app.deliver()
    assert sorted(r.payload["title"] for r in webhook.received) == titles


def test_a_stop_mid_batch_gives_back_what_was_not_sent(
    make_app: MakeApp, alice: WriteConfig, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(TEN_ALMATY)
    app = make_app(alice(), clock=clock, concurrency=FEW_WORKERS)
    titles = bulk(app)
    webhook.on_post = app.stopping.set  # SIGTERM while the first sends are on their way
    app.deliver()
    sent = len(webhook.received)
    assert 0 < sent < len(titles)
    assert claimed(app) == []  # the next start sends the rest, here or on another host

    app.stopping.clear()
    webhook.on_post = None
    app.deliver()
    assert sorted(r.payload["title"] for r in webhook.received) == titles


@pytest.fixture
def private_postgres() -> Iterator[str]:
    """A PostgreSQL database of this test's own, which it may shut to new connections."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"watcher_outage_{uuid.uuid4().hex[:8]}"
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(POSTGRES_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    server.dispose()


def test_a_postgresql_outage_mid_batch_releases_the_unsent_rows_once_it_is_back(
    private_postgres: str,
    alice: WriteConfig,
    webhook: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A real outage, as in a restart: the database refuses connections and drops the
    # ones it had, mid-batch; it is back within the first pause of the release.
    clock = FixedClock(TEN_ALMATY)
    env = {"WATCHER_DATABASE_URL": private_postgres}
    app = App(load_config(alice(), env), clock=clock, env=env, concurrency=FEW_WORKERS)
    try:
        titles = bulk(app)
        app.deliverer.release_waits = (2.0,)
        name = make_url(private_postgres).database
        server = create_engine(make_url(private_postgres).set(database="postgres"))
        terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
        outages: list[str] = []

        once = threading.Lock()  # the webhook's threads call this together: one outage

        def restart() -> None:
            if not once.acquire(blocking=False):
                return
            outages.append("down")
            with server.connect() as connection:
                connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                connection.execute(text(terminate), {"n": name})
                connection.commit()
            threading.Timer(0.5, back_up).start()

        def back_up() -> None:
            with server.connect() as connection:
                connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                connection.commit()

        webhook.delay = 0.05
        webhook.on_post = restart
        caplog.set_level(logging.INFO, logger="watcher.delivery")
        with pytest.raises(OperationalError):
            app.deliver()
        server.dispose()
        webhook.on_post = None
        # Sent rows whose mark failed are still claimed (their mark is retried first);
        # everything else can be taken at once.
        assert len(claimed(app)) <= app.concurrency
        assert "released" in caplog.text
        app.deliver()  # the same instant: no lease to wait out
        assert sorted(r.payload["title"] for r in webhook.received) == titles
        assert {row.status for row in outbox(app)} == {"sent"}
    finally:
        app.close()
