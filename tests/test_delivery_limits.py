"""Delivery under per-service limits, against real webhook receivers on loopback.

The limits themselves are tested in test_limits.py; here a whole Deliverer sends
through real Apprise clients and the receivers count what reaches them: how many
at once, how fast, in what order, and that every message arrives exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event

import watcher.channels
import watcher.delivery
from tests.conftest import MakeApp, WriteConfig
from tests.servers import SmtpSink, WebhookReceiver
from watcher.app import App
from watcher.clock import FixedClock
from watcher.limits import SMTP_CONNECTIONS
from watcher.outbox import NewMessage, enqueue

NOW = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


@pytest.fixture
def second_webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def config(write_config: WriteConfig, channels: dict[str, str], delivery: str = "") -> Path:
    lines = "\n".join(f"  {name}: '{url}'" for name, url in channels.items())
    return write_config(f"channels:\n{lines}\n{delivery}\nusers: []\n")


def queue(app: App, channel: str, count: int, tag: str = "") -> list[str]:
    titles = [f"{tag or channel} #{i:02d}" for i in range(count)]
    with app.database.session() as session:
        enqueue(
            session,
            [NewMessage(f"t:{t}", channel, "admin", title=t, body="x") for t in titles],
            app.clock.now(),
        )
    return titles


def test_a_host_never_gets_more_connections_than_its_limit(
    make_app: MakeApp, write_config: WriteConfig, webhook: WebhookReceiver
) -> None:
    path = config(
        write_config,
        {"hook": webhook.url()},
        "delivery:\n  workers: 16\n  limits:\n    127.0.0.1: {connections: 3}",
    )
    app = make_app(path, clock=FixedClock(NOW))
    webhook.delay = 0.05
    titles = queue(app, "hook", 24)
    report = app.deliver()
    assert report.sent == 24
    assert Counter(webhook.titles()) == Counter(titles)  # each once
    assert webhook.peak == 3  # up to the limit, never past it


def test_without_a_limit_the_workers_are_the_cap(
    make_app: MakeApp, write_config: WriteConfig, webhook: WebhookReceiver
) -> None:
    path = config(write_config, {"hook": webhook.url()}, "delivery:\n  workers: 6")
    app = make_app(path, clock=FixedClock(NOW))
    webhook.delay = 0.05
    queue(app, "hook", 30)
    app.deliver()
    assert len(webhook.titles()) == 30
    assert webhook.peak == 6


def test_a_rate_limit_paces_the_sends(
    make_app: MakeApp, write_config: WriteConfig, webhook: WebhookReceiver
) -> None:
    rate = 8.0
    path = config(
        write_config,
        {"hook": webhook.url()},
        f"delivery:\n  limits:\n    127.0.0.1: {{per_second: {rate}}}",
    )
    app = make_app(path, clock=FixedClock(NOW))
    titles = queue(app, "hook", 20)
    app.deliver()
    assert sorted(webhook.titles()) == titles
    # A second's burst, then the rate: in any stretch of time, no more arrived than
    # that allows (one more for the network's jitter between start and arrival).
    times = sorted(at for at, _ in webhook.started)
    for a in range(len(times)):
        for b in range(a, len(times)):
            assert b - a + 1 <= rate + (times[b] - times[a]) * rate + 1


def race(
    make_app: MakeApp,
    write_config: WriteConfig,
    slow: WebhookReceiver,
    fast: WebhookReceiver,
    counts: tuple[int, int],
) -> tuple[float, list[float]]:
    """``counts`` messages for a host limited to one connection (queued first, so
    claimed first), then for an unlimited one; delivered in one pass. Returns when the
    last fast one started and when each slow one did."""
    fast_url = fast.url().replace("127.0.0.1", "localhost")  # another host, no limit
    path = config(
        write_config,
        {"slow": slow.url(), "fast": fast_url},
        "delivery:\n  workers: 4\n  limits:\n    127.0.0.1: {connections: 1}",
    )
    app = make_app(path, clock=FixedClock(NOW))
    queue(app, "slow", counts[0])
    queue(app, "fast", counts[1])
    app.deliver()
    assert (len(slow.titles()), len(fast.titles())) == counts
    return max(at for at, _ in fast.started), sorted(at for at, _ in slow.started)


def test_a_slow_limited_service_does_not_hold_up_another(
    make_app: MakeApp,
    write_config: WriteConfig,
    webhook: WebhookReceiver,
    second_webhook: WebhookReceiver,
) -> None:
    # The slow host's messages are older, so they come first in the outbox; one at a
    # time, 0.2 s each. The other host's messages must not queue behind them.
    webhook.delay = 0.2
    fast_done, slow_starts = race(make_app, write_config, webhook, second_webhook, (6, 12))
    assert fast_done < slow_starts[2], "the fast host waited behind the slow one"


def test_clients_are_reused_and_apprise_does_not_pause_between_sends(
    make_app: MakeApp,
    write_config: WriteConfig,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ntfy's plugin declares no pause, so Apprise would wait its generic 5.5 s between
    # two sends through one client: our clients have that off (we pace per service).
    built: list[object] = []
    original = watcher.channels._client

    def counting(url: str) -> object:
        client = original(url)
        built.append(client)
        return client

    monkeypatch.setattr(watcher.channels, "_client", counting)
    ntfy = f"ntfy://127.0.0.1:{webhook.port}/topic"
    path = config(write_config, {"hook": ntfy}, "delivery:\n  workers: 3")
    app = make_app(path, clock=FixedClock(NOW))
    queue(app, "hook", 30)
    report = app.deliver()
    assert report.sent == 30 and webhook.requests == 30
    assert 1 <= len(built) <= 3 + 1  # one per worker (and one to read the service)
    for client in built:
        assert all(plugin.request_rate_per_sec == 0 for plugin in client)  # type: ignore[attr-defined]


def test_claims_waiting_long_behind_a_limit_are_renewed(
    make_app: MakeApp,
    write_config: WriteConfig,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rows that wait their turn longer than RENEW_AFTER get their claim renewed, so
    # another sender never takes them for a lapsed lease while this one is alive.
    monkeypatch.setattr(watcher.delivery, "RENEW_AFTER", 0.4)
    clock = FixedClock(NOW)
    path = config(
        write_config,
        {"hook": webhook.url()},
        "delivery:\n  limits:\n    127.0.0.1: {connections: 1, per_second: 4}",
    )
    app = make_app(path, clock=clock)
    titles = queue(app, "hook", 12)  # 3 s at 4 a second
    renewals: list[str] = []

    @event.listens_for(app.database.engine, "before_cursor_execute")
    def watch(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE outbox SET claimed_at"):
            renewals.append(statement)

    app.deliver()
    assert renewals, "no claim was renewed"
    assert sorted(webhook.titles()) == titles
    with app.database.session() as session:
        from sqlalchemy import select

        from watcher.db import OutboxRow

        rows = session.scalars(select(OutboxRow)).all()
        assert {row.status for row in rows} == {"sent"}
        assert all(row.claimed_by is None for row in rows)


def test_replicas_share_a_limit(
    make_app: MakeApp, write_config: WriteConfig, webhook: WebhookReceiver
) -> None:
    path = config(
        write_config,
        {"hook": webhook.url()},
        "delivery:\n  workers: 16\n  limits:\n    127.0.0.1: {connections: 4}",
    )
    app = make_app(path, clock=FixedClock(NOW))
    app.deliverer.set_replicas(2)  # as App.plan does when it sees two daemons
    webhook.delay = 0.05
    queue(app, "hook", 20)
    app.deliver()
    assert len(webhook.titles()) == 20
    assert webhook.peak == 2


def test_clients_kept_for_reuse_are_bounded(
    webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A service for thousands of people sends once to each of thousands of targets:
    # only the most recently used clients are kept.
    monkeypatch.setattr(watcher.channels, "MAX_IDLE_CLIENTS", 2)
    channels = watcher.channels.Channels({f"c{i}": [webhook.url(f"p{i}")] for i in range(5)})
    for i in range(5):
        assert channels.send(f"c{i}", watcher.channels.Message("t", "b")).ok
    assert channels._idle_count == 2
    assert list(channels._idle) == [webhook.url("p3"), webhook.url("p4")]


def test_metrics_say_what_holds_messages_back(
    make_app: MakeApp, write_config: WriteConfig, webhook: WebhookReceiver
) -> None:
    # At 3 a.m. the outbox grows: /metrics says whether a service's limit is why.
    from prometheus_client.parser import text_string_to_metric_families

    path = config(
        write_config,
        {"hook": webhook.url()},
        "delivery:\n  workers: 8\n  limits:\n    127.0.0.1: {connections: 2}",
    )
    app = make_app(path, clock=FixedClock(NOW))
    seen: list[dict[str, float]] = []

    def read_metrics() -> None:
        families = text_string_to_metric_families(app.metrics.text().decode())
        seen.append(
            {
                (sample.labels.get("reason") or sample.name): sample.value
                for family in families
                if family.name.startswith("watcher_delivery")
                for sample in family.samples
            }
        )

    webhook.delay = 0.1
    webhook.on_post = read_metrics  # read while requests are being answered
    queue(app, "hook", 10)
    app.deliver()
    webhook.on_post = None
    assert any(m.get("watcher_delivery_in_flight") == 2 and m.get("host", 0) > 0 for m in seen)
    read_metrics()
    assert seen[-1]["watcher_delivery_in_flight"] == 0 and seen[-1]["host"] == 0


def test_a_backlog_for_a_slow_service_does_not_keep_newer_messages_out_of_the_queue(
    make_app: MakeApp,
    write_config: WriteConfig,
    webhook: WebhookReceiver,
    second_webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rows are claimed oldest first. A long backlog for one slow service would fill
    # every claim until all of it were claimed; a service with a batch of rows waiting
    # is skipped by the next claims instead, so the others' rows get in and go out.
    monkeypatch.setattr(watcher.delivery, "BATCH", 20)
    webhook.delay = 0.01
    fast_done, slow_starts = race(make_app, write_config, webhook, second_webhook, (200, 10))
    assert fast_done < slow_starts[40], "the fast service's rows waited behind the backlog"


def test_a_target_whose_limits_cannot_be_read_is_still_sent_to(
    make_app: MakeApp,
    write_config: WriteConfig,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A plugin bug while its facts are read must not strand the claimed rows.
    def broken(self: object, target: str) -> None:
        raise RuntimeError("plugin bug")

    monkeypatch.setattr(watcher.channels.Channels, "service", broken)
    path = config(write_config, {"hook": webhook.url()}, "delivery:\n  workers: 2")
    app = make_app(path, clock=FixedClock(NOW))
    titles = queue(app, "hook", 5)
    assert app.deliver().sent == 5
    assert sorted(webhook.titles()) == titles
    assert "could not read the limits of hook" in caplog.text


def test_mail_goes_through_a_handful_of_connections_per_smtp_server(
    make_app: MakeApp, write_config: WriteConfig, smtp: SmtpSink
) -> None:
    # A real SMTP server: no more than SMTP_CONNECTIONS at once however many workers,
    # and many mails through each reused client, every one whole and once.
    smtp.handler.delay = 0.05
    path = config(write_config, {"mail": smtp.url()}, "delivery:\n  workers: 16")
    app = make_app(path, clock=FixedClock(NOW))
    titles = queue(app, "mail", 24)
    assert app.deliver().sent == 24
    assert sorted(smtp.subjects()) == titles
    assert smtp.handler.peak == SMTP_CONNECTIONS
