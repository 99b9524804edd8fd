"""Delivery through real Apprise URLs to real loopback servers, with time moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from tests.conftest import MakeApp, WriteConfig
from tests.servers import SmtpSink, WebhookReceiver
from watcher.app import App
from watcher.clock import FixedClock
from watcher.db import OutboxRow
from watcher.delivery import retry_delay
from watcher.outbox import CLAIM_LEASE, NewMessage, enqueue

# 2026-11-25 10:00 in Almaty (UTC+5).
TEN_ALMATY = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


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

    # What was not sent (the failure stopped the batch) stays claimed; a later run
    # past the claim lease sends it. Nothing that was sent goes out again.
    clock.advance(CLAIM_LEASE + timedelta(seconds=1))
    app.deliver()
    arrived = sorted(r.payload["title"] for r in webhook.received)
    assert arrived == titles
    assert {row.status for row in outbox(app)} == {"sent"}
