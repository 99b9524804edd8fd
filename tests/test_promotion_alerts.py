"""Promotion alerts end to end: a real page on loopback, the real scraper, the real outbox,
real Apprise posts to a loopback webhook; time moved by hand.

Every source here is on 127.0.0.1: the built-in kcell-promo id is overridden, so a
subscription by operator never reaches the real site.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scrapers import FetchSettings
from tests.conftest import MakeApp, WriteConfig
from tests.servers import PromoSite, WebhookReceiver
from watcher.app import App
from watcher.clock import FixedClock
from watcher.db import OutboxRow
from watcher.db.models import PromotionAlertRow, SourceRow
from watcher.promotions.alerts import Subscription, digest_cutoff, match
from watcher.promotions.jobs import due_sources

# Wednesday 2026-11-25, 12:00 in Almaty (UTC+5).
NOON_ALMATY = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
FAST = FetchSettings(min_gap=0, retries=0, backoff=0, connect_timeout=2, read_timeout=5)

ESIM = {"title": "eSIM за 0 ₸", "href": "/p/esim", "price": "0 ₸"}
ROAMING = {"title": "Роуминг 10 ГБ", "href": "/p/roaming", "price": "2 990 ₸"}
UNLIM = {"title": "Безлимит на месяц", "href": "/p/unlim", "price": "4 990 ₸"}


@pytest.fixture
def site() -> Iterator[PromoSite]:
    served = PromoSite()
    served.cards = [dict(ESIM), dict(ROAMING)]
    yield served
    served.stop()


@pytest.fixture
def make_app(
    make_app: MakeApp, write_config: WriteConfig, site: PromoSite, webhook: WebhookReceiver
) -> MakeApp:
    """An App, synced, on a config whose users are given as YAML text (the conftest
    ``make_app`` under it); the same file is rewritten each time."""
    noon = FixedClock(NOON_ALMATY)

    def make(users: str, *, clock: FixedClock = noon, fetch_settings: FetchSettings = FAST) -> App:
        path = write_config(
            f"""
timezone: Asia/Almaty
channels:
  alice-hook: "{webhook.url("alice")}"
  bob-hook: "{webhook.url("bob")}"
  ops: "{webhook.url("admin")}"
admin: [ops]
sources:
  - id: kcell-promo
    operator: kcell
    url: "{site.url}"
    items: ".card"
    fields: {{title: "h2", link: "a@href", price: ".price", date: ".date"}}
users:
{users}
"""
        )
        app = make_app(path, clock=clock, fetch_settings=fetch_settings)
        app.sync()
        return app

    return make


def alice(promotions: str = "{}", *, extra: str = "") -> str:
    return f"""
  - name: alice
    language: en
    notify: [alice-hook]
    {extra}
    sims:
      - {{id: alice-kcell, operator: kcell, number: "+77011234567"}}
    promotions: {promotions}
"""


BOB = """
  - name: bob
    language: ru
    notify: [bob-hook]
    promotions: {sources: [kcell-promo], on: [new, changed]}
"""


def cycle(app: App) -> None:
    """What the daemon does when a source is due: scrape, queue, send."""
    app.scrape(list(app.loaded.config.watched_sources().values()))
    app.flush_promotions()
    app.deliver()


def sent_to(webhook: WebhookReceiver, who: str) -> list[dict[str, Any]]:
    return [r.payload for r in webhook.received if r.path == f"/{who}"]


def test_the_first_scrape_is_a_silent_baseline_then_a_new_promotion_is_sent_once(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice())
    cycle(app)
    assert webhook.received == []
    site.cards.append(dict(UNLIM))
    cycle(app)
    cycle(app)
    [message] = sent_to(webhook, "alice")
    assert message["title"] == "New promotion: Безлимит на месяц"
    assert "4 990 ₸" in message["message"]
    assert site.url.replace("/offers", "/p/unlim") in message["message"]


def test_a_user_added_later_hears_only_of_what_is_found_after(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice())
    cycle(app)
    site.cards.append(dict(UNLIM))
    cycle(app)
    assert len(sent_to(webhook, "alice")) == 1
    app.close()

    app = make_app(alice() + BOB)
    cycle(app)  # bob's first scrape: everything is already known, nothing is news
    assert sent_to(webhook, "bob") == []
    site.cards.append({"title": "eSIM для путешествий", "href": "/p/travel", "price": "1 990 ₸"})
    cycle(app)
    [bobs] = sent_to(webhook, "bob")
    assert bobs["title"] == "Новая акция: eSIM для путешествий"
    assert len(sent_to(webhook, "alice")) == 2


def test_keywords_and_kinds_choose_what_a_user_hears(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice('{include: ["eSIM"], exclude: ["корпоратив"], "on": [new, changed]}'))
    cycle(app)
    site.cards += [
        {"title": "eSIM для корпоративных клиентов", "href": "/p/corp", "price": ""},
        {"title": "Семейный тариф", "href": "/p/family", "price": "5 000 ₸"},
    ]
    cycle(app)
    assert sent_to(webhook, "alice") == []  # one excluded, one without a keyword
    site.cards[0]["price"] = "500 ₸"  # the eSIM offer gets a price
    cycle(app)
    [changed] = sent_to(webhook, "alice")
    assert changed["title"] == "Promotion changed: eSIM за 0 ₸"
    assert "500 ₸" in changed["message"]
    assert "was: 0 ₸" in changed["message"]


def test_an_unquoted_on_key_is_read_as_the_setting_not_as_yaml_true(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice("\n      on: [ended]"))
    cycle(app)
    site.cards.pop(1)  # roaming disappears
    site.cards.append(dict(UNLIM))  # a new one: not asked for
    for _ in range(3):  # ended after three good scrapes without it
        cycle(app)
    [ended] = sent_to(webhook, "alice")
    assert ended["title"] == "Promotion ended: Роуминг 10 ГБ"


def test_ended_promotions_alert_nobody_by_default(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice())
    cycle(app)
    site.cards.pop(1)
    for _ in range(4):
        cycle(app)
    assert webhook.received == []


def test_a_daily_digest_waits_for_remind_at_and_groups_everything_into_one_message(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(NOON_ALMATY)
    app = make_app(alice("{digest: daily}"), clock=clock)
    cycle(app)
    site.cards += [dict(UNLIM), {"title": "Роуминг по миру", "href": "/p/world", "price": ""}]
    cycle(app)
    assert webhook.received == []  # 12:00: today's digest time (10:00) has passed
    clock.set(datetime(2026, 11, 26, 4, 59, tzinfo=UTC))  # 09:59 the next day
    app.flush_promotions()
    app.deliver()
    assert webhook.received == []
    clock.advance(timedelta(minutes=1))  # 10:00
    app.flush_promotions()
    app.flush_promotions()
    app.deliver()
    [digest] = sent_to(webhook, "alice")
    assert digest["title"] == "Promotions digest: 2 updates"
    assert "Безлимит на месяц" in digest["message"]
    assert "Роуминг по миру" in digest["message"]


def test_a_digest_missed_while_the_daemon_was_down_is_sent_once_not_per_day(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(NOON_ALMATY)
    app = make_app(alice("{digest: daily}"), clock=clock)
    cycle(app)
    site.cards.append(dict(UNLIM))
    cycle(app)
    clock.advance(timedelta(days=4))
    app.flush_promotions()
    app.deliver()
    clock.advance(timedelta(days=1))
    app.flush_promotions()
    app.deliver()
    assert len(sent_to(webhook, "alice")) == 1


def test_changing_from_a_digest_to_immediate_sends_what_was_waiting(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice("{digest: weekly}"))
    cycle(app)
    site.cards.append(dict(UNLIM))
    cycle(app)
    assert webhook.received == []  # Wednesday: the weekly digest goes out on Monday
    app.close()
    app = make_app(alice("{digest: immediate}"))
    app.flush_promotions()
    app.deliver()
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: Безлимит на месяц"]


def test_quiet_hours_hold_a_promotion_alert_until_they_end(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    clock = FixedClock(NOON_ALMATY)
    app = make_app(alice(extra='quiet_hours: "11:00-13:00"'), clock=clock)
    cycle(app)
    site.cards.append(dict(UNLIM))
    cycle(app)
    assert webhook.received == []
    clock.advance(timedelta(hours=1))
    app.deliver()
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: Безлимит на месяц"]


def test_a_promotion_already_over_is_not_announced(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice())
    cycle(app)
    site.cards += [
        {"title": "Осенняя акция", "href": "/p/autumn", "price": "", "date": "до 1 ноября 2026"},
        {"title": "Зимняя акция", "href": "/p/winter", "price": "", "date": "до 31 декабря 2026"},
    ]
    cycle(app)
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: Зимняя акция"]
    assert "31 December 2026" in sent_to(webhook, "alice")[0]["message"]


def test_a_script_link_never_reaches_a_message(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice())
    cycle(app)
    site.cards.append({"title": "Жми сюда", "href": "javascript:alert(1)", "price": ""})
    cycle(app)
    [message] = sent_to(webhook, "alice")
    assert message["title"] == "New promotion: Жми сюда"
    assert "javascript" not in message["message"]


def test_a_failing_source_tells_the_admin_once_and_again_when_it_recovers(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice('{"on": [new, changed, ended]}'))
    cycle(app)
    site.status = 500
    for _ in range(5):
        cycle(app)
    [failing] = sent_to(webhook, "admin")
    assert failing["title"] == "SIM Watcher: promotion source kcell-promo is failing"
    assert "500" in failing["message"]
    site.status = 200
    cycle(app)
    cycle(app)
    titles = [m["title"] for m in sent_to(webhook, "admin")]
    assert titles[1:] == ["SIM Watcher: promotion source kcell-promo works again"]
    assert sent_to(webhook, "alice") == []  # failures never read as "all promotions ended"


def test_a_page_that_suddenly_has_no_promotions_is_reported_as_a_layout_change(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice('{"on": [new, changed, ended]}'))
    cycle(app)
    saved, site.cards = site.cards, []
    for _ in range(4):
        cycle(app)
    [empty] = sent_to(webhook, "admin")
    assert "layout changed?" in empty["title"]
    assert "watcher scrape kcell-promo" in empty["message"]
    site.cards = saved
    cycle(app)
    assert sent_to(webhook, "alice") == []  # nothing ended, nothing is new
    assert sent_to(webhook, "admin")[-1]["title"].endswith("finds promotions again")


def test_selectors_that_stop_matching_fall_back_to_auto_and_the_admin_is_told_once(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice('{"on": [new, changed, ended]}'))
    cycle(app)  # the baseline, read by the selectors
    # The operator redesigns the page: the same promotions, other markup.
    site.raw = (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        "".join(
            f'<article class="tile"><h3>{card["title"]}</h3><a href="{card["href"]}">Подробнее</a>'
            f"<b class='tile-price'>{card['price']}</b></article>"
            for card in site.cards
        ).encode(),
    )
    [result] = app.scrape(list(app.loaded.config.watched_sources().values()))
    assert result.fell_back and len(result.promotions) == 2
    assert result.changes == []  # a silent new baseline: nothing is "new", nothing "ended"
    app.flush_promotions()
    app.deliver()
    cycle(app)
    [stale] = sent_to(webhook, "admin")  # once, however many scrapes fall back
    assert stale["title"] == "SIM Watcher: selectors of kcell-promo stopped matching"
    assert "auto found 2 promotions" in stale["message"]
    assert sent_to(webhook, "alice") == []


def test_robots_txt_disallowing_the_page_is_a_source_error_without_a_request(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    site.robots = "User-agent: *\nDisallow: /offers\n"
    app = make_app(alice())
    [result] = app.scrape(list(app.loaded.config.watched_sources().values()))
    assert result.error is not None
    assert "robots.txt" in str(result.error)
    assert site.hits == 0


def test_an_unchanged_page_answered_304_alerts_nobody(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    site.etags = True
    app = make_app(alice())
    cycle(app)
    cycle(app)
    cycle(app)
    assert site.not_modified == 2
    site.cards.append(dict(UNLIM))
    cycle(app)
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: Безлимит на месяц"]


def test_matching_the_same_stored_changes_twice_writes_one_alert(
    make_app: MakeApp, site: PromoSite
) -> None:
    from watcher.db import PromotionChangeRow

    app = make_app(alice())
    cycle(app)
    site.cards.append(dict(UNLIM))
    [result] = app.scrape(list(app.loaded.config.watched_sources().values()))
    assert result.alerts == 1
    with app.database.session() as session:
        rows = list(session.scalars(select(PromotionChangeRow)))
        assert match(session, app.audience(), "kcell-promo", result.changes, rows, app.clock.now())
    with app.database.session() as session:
        assert session.scalar(select(func.count()).select_from(PromotionAlertRow)) == 1


def test_one_message_per_target_per_flush_and_nothing_twice(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice())
    cycle(app)
    site.cards += [dict(UNLIM), {"title": "Роуминг по миру", "href": "/p/world", "price": ""}]
    cycle(app)
    [message] = sent_to(webhook, "alice")
    assert message["title"] == "2 promotion updates"
    with app.database.session() as session:
        kinds = session.scalars(select(OutboxRow.kind)).all()
        pending = session.scalar(
            select(func.count())
            .select_from(PromotionAlertRow)
            .where(PromotionAlertRow.message_key.is_(None))
        )
    assert kinds == ["promotion"]
    assert pending == 0


HOSTILE: dict[str, tuple[int, dict[str, str], bytes] | None] = {
    "500": (500, {}, b"oops"),
    "slow": None,  # the page stalls past the read timeout
    "redirect loop": (302, {"Location": "/offers"}, b""),
    "redirect to file": (302, {"Location": "file:///etc/passwd"}, b""),
    "redirect to javascript": (302, {"Location": "javascript:alert(1)"}, b""),
    "50 MB body": (200, {"Content-Type": "text/html"}, b"<div class=card>" * 3_300_000),
    "binary garbage": (200, {}, bytes(range(256)) * 4000),
    "wrong charset": (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        "".join(
            f'<div class="card"><h2>Акция номер {n}</h2><a href="/p/{n}">подробнее</a></div>'
            for n in range(5)
        ).encode("cp1251"),
    ),
    "deep nesting": (200, {"Content-Type": "text/html"}, b"<div>" * 200_000),
    "empty page": (200, {"Content-Type": "text/html"}, b""),
}


@pytest.mark.parametrize("mode", list(HOSTILE))
def test_a_hostile_or_broken_page_is_recorded_and_alerts_nobody(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver, mode: str
) -> None:
    import tracemalloc

    settings = replace(FAST, read_timeout=0.5, total_timeout=2, max_bytes=2 * 1024 * 1024)
    app = make_app(alice('{"on": [new, changed, ended]}'), fetch_settings=settings)
    cycle(app)  # a good baseline first
    site.raw = HOSTILE[mode]
    site.delay = 1.5 if mode == "slow" else 0.0
    tracemalloc.start()
    try:
        for _ in range(3):
            cycle(app)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Pages are capped at 2 MiB here; Python memory must stay within a few pages.
    assert peak < 16 * 1024 * 1024, f"{mode}: {peak / 2**20:.0f} MiB"
    with app.database.session() as session:
        source = session.get(SourceRow, "kcell-promo")
        assert source is not None
        recorded = source.last_error if source.failures else f"{source.empty_runs} empty"
        assert source.failures == 3 or source.empty_runs == 3, (mode, recorded)
        ended = session.scalar(select(func.count()).select_from(PromotionAlertRow))
    assert ended == 0
    assert sent_to(webhook, "alice") == []  # nothing "ended", nothing "new"
    assert len(sent_to(webhook, "admin")) == 1, [m["title"] for m in sent_to(webhook, "admin")]


# --- scheduling -----------------------------------------------------------------------


def test_a_source_is_due_when_new_when_its_time_comes_and_when_its_page_moves(
    make_app: MakeApp, site: PromoSite
) -> None:
    clock = FixedClock(NOON_ALMATY)
    app = make_app(alice(), clock=clock)
    profiles = app.loaded.config.watched_sources()
    assert list(profiles) == ["kcell-promo"]
    assert [p.id for p in due_sources(app.database, profiles, clock.now())] == ["kcell-promo"]
    app.scrape()
    assert due_sources(app.database, profiles, clock.now()) == []
    assert app.scrape() == []  # nothing due: no request
    assert site.hits == 1
    with app.database.session() as session:
        next_at = session.get(SourceRow, "kcell-promo").next_fetch_at  # type: ignore[union-attr]
    every = profiles["kcell-promo"].every
    assert clock.now() + every * 0.9 <= next_at <= clock.now() + every * 1.1
    clock.set(next_at)
    assert len(due_sources(app.database, profiles, clock.now())) == 1
    moved = {"kcell-promo": profiles["kcell-promo"]}
    source = moved["kcell-promo"].source
    moved["kcell-promo"] = replace(
        moved["kcell-promo"], source=replace(source, url=source.url + "?page=1")
    )
    clock.set(NOON_ALMATY)
    assert len(due_sources(app.database, moved, clock.now())) == 1


def test_a_source_nobody_watches_any_more_is_marked_inactive(
    make_app: MakeApp, site: PromoSite
) -> None:
    app = make_app(alice())
    app.scrape()
    due_sources(app.database, {}, app.clock.now())
    with app.database.session() as session:
        assert session.get(SourceRow, "kcell-promo").active is False  # type: ignore[union-attr]


def test_users_without_a_promotions_section_are_not_subscribed(make_app: MakeApp) -> None:
    app = make_app(alice().replace("    promotions: {}\n", ""))
    assert app.audience().subscriptions == ()
    # kcell-promo is listed under sources:, so it is still watched (history is kept).
    assert list(app.loaded.config.watched_sources()) == ["kcell-promo"]


ALMATY = ZoneInfo("Asia/Almaty")
BERLIN = ZoneInfo("Europe/Berlin")


def _subscription(digest: str, zone: ZoneInfo = ALMATY) -> Subscription:
    return Subscription(
        user="u",
        sources=frozenset(),
        include=(),
        exclude=(),
        on=frozenset({"new"}),
        digest=digest,  # type: ignore[arg-type]
        language="en",
        zone=zone,
        remind_at=time(10, 0),
        targets=("t",),
    )


@pytest.mark.parametrize(
    ("digest", "zone", "now", "expected"),
    [
        ("immediate", ALMATY, "2026-11-25T07:00Z", "2026-11-25T07:00Z"),
        ("daily", ALMATY, "2026-11-25T07:00Z", "2026-11-25T05:00Z"),  # 12:00 -> 10:00 today
        ("daily", ALMATY, "2026-11-25T04:59Z", "2026-11-24T05:00Z"),  # 09:59 -> yesterday
        ("daily", ALMATY, "2026-11-25T05:00Z", "2026-11-25T05:00Z"),  # 10:00 sharp
        ("weekly", ALMATY, "2026-11-25T07:00Z", "2026-11-23T05:00Z"),  # Wed -> Monday
        ("weekly", ALMATY, "2026-11-23T04:59Z", "2026-11-16T05:00Z"),  # Mon 09:59 -> last week
        ("weekly", ALMATY, "2026-11-30T05:00Z", "2026-11-30T05:00Z"),  # Mon 10:00
        # Berlin's clocks go back on 2026-10-25: 10:00 is UTC+1 from then on.
        ("daily", BERLIN, "2026-10-25T09:30Z", "2026-10-25T09:00Z"),
        ("daily", BERLIN, "2026-10-24T08:30Z", "2026-10-24T08:00Z"),
    ],
)
def test_digest_time_is_the_latest_remind_at_in_the_users_zone(
    digest: str, zone: ZoneInfo, now: str, expected: str
) -> None:
    at = datetime.fromisoformat(now)
    assert digest_cutoff(_subscription(digest, zone), at) == datetime.fromisoformat(expected)


# --- the real commands ---------------------------------------------------------------


@pytest.fixture
def config_path(
    write_config: WriteConfig, tmp_path: Path, site: PromoSite, webhook: WebhookReceiver
) -> Path:
    return write_config(
        f"""
timezone: Asia/Almaty
database: sqlite:///{tmp_path / "watcher.db"}
channels:
  alice-hook: "{webhook.url("alice")}"
sources:
  - id: kcell-promo
    operator: kcell
    url: "{site.url}"
    every: 5min
    items: ".card"
    fields: {{title: "h2", link: "a@href", price: ".price"}}
users:
{alice()}
"""
    )


def test_run_once_scrapes_every_source_and_sends_what_is_new(
    config_path: Path, site: PromoSite, webhook: WebhookReceiver
) -> None:
    from watcher.cli import main

    assert main(["run", "--once", "-c", str(config_path)]) == 0  # the baseline
    assert webhook.received == []
    site.cards.append(dict(UNLIM))
    assert main(["run", "--once", "-c", str(config_path)]) == 0
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: Безлимит на месяц"]


@pytest.mark.e2e
def test_the_daemon_scrapes_a_due_source_and_alerts_within_seconds(
    config_path: Path, site: PromoSite, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from sqlalchemy import create_engine, update

    from tests.servers import wait_for
    from watcher.cli import main

    assert main(["scrape", "kcell-promo", "--json", "-c", str(config_path)]) == 0  # baseline
    site.cards.append(dict(UNLIM))
    # Six hours later, as far as the source is concerned: it is due.
    engine = create_engine(f"sqlite:///{tmp_path / 'watcher.db'}")
    with engine.begin() as connection:
        connection.execute(update(SourceRow).values(next_fetch_at=NOON_ALMATY))
    engine.dispose()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "-c", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
    )
    try:
        assert wait_for(lambda: bool(sent_to(webhook, "alice")), timeout=30)
        assert [m["title"] for m in sent_to(webhook, "alice")] == [
            "New promotion: Безлимит на месяц"
        ]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0


def test_sources_shows_who_watches_each_source_and_how_it_is_doing(
    config_path: Path, site: PromoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from watcher.cli import main

    assert main(["run", "--once", "-c", str(config_path)]) == 0
    capsys.readouterr()
    site.status = 503
    assert main(["scrape", "kcell-promo", "--json", "-c", str(config_path)]) == 1
    capsys.readouterr()
    assert main(["sources", "--json", "-c", str(config_path)]) == 0
    rows = {row["source"]: row for row in json.loads(capsys.readouterr().out)}
    kcell = rows["kcell-promo"]
    assert kcell["watched"] is True
    assert kcell["subscribers"] == ["alice"]
    assert kcell["every"] == "5min"
    assert kcell["promotions"] == 2
    assert kcell["failures"] == 1
    assert "503" in kcell["last_error"]
    assert kcell["last_success"] is not None
    assert rows["beeline-promo"]["watched"] is False  # nobody asked: never fetched
    assert rows["beeline-promo"]["last_success"] is None
    assert main(["sources", "-c", str(config_path)]) == 0
    table = capsys.readouterr().out
    assert "kcell-promo" in table
    assert "alice" in table
