"""Promotions that must not alert falsely, end to end (issue 12): a card whose link is
refused keeps its identity, and a page that balloons is held, not announced.

A real page on loopback, the real scraper, store and outbox, and real Apprise posts to
a loopback webhook, as in ``test_promotion_alerts``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MakeApp
from tests.servers import PromoSite, WebhookReceiver
from tests.test_promotion_alerts import alice, cycle, make_app, sent_to, site
from watcher.cli import main

__all__ = ["make_app", "site"]  # the fixtures, shared with test_promotion_alerts

FIVE = [
    {"title": f"Offer number {n}", "href": f"/p/offer-{n}", "price": f"{n} 000 ₸"}
    for n in range(1, 6)
]


def _with_links(href: str) -> list[dict[str, str]]:
    return [{**card, "href": href} for card in FIVE]


def test_cards_served_once_with_script_links_keep_their_identity(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice("{on: [new, changed, ended]}"))
    site.cards = [dict(card) for card in FIVE]
    cycle(app)  # the baseline
    site.cards = _with_links("javascript:void(0)")
    cycle(app)
    site.cards = [dict(card) for card in FIVE]
    for _ in range(4):  # longer than a promotion takes to end
        cycle(app)
    assert sent_to(webhook, "alice") == []


def test_a_baseline_taken_with_refused_links_keeps_its_identity_when_links_return(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice("{on: [new, changed, ended]}"))
    site.cards = _with_links("data:text/html,hi")
    cycle(app)
    site.cards = [dict(card) for card in FIVE]
    for _ in range(4):
        cycle(app)
    site.cards = _with_links("JaVaScRiPt:go()")
    for _ in range(4):
        cycle(app)
    assert sent_to(webhook, "alice") == []


def test_a_new_card_with_a_refused_link_is_still_news(
    make_app: MakeApp, site: PromoSite, webhook: WebhookReceiver
) -> None:
    app = make_app(alice("{on: [new, changed, ended]}"))
    site.cards = [dict(card) for card in FIVE]
    cycle(app)
    fresh = {"title": "Brand new offer", "href": "javascript:void(0)", "price": "1 ₸"}
    site.cards = [*_with_links("javascript:void(0)"), fresh]
    cycle(app)
    [message] = sent_to(webhook, "alice")
    assert message["title"] == "New promotion: Brand new offer"


# --- a page that balloons is held -----------------------------------------------------

MANY = [
    {"title": f"Item {n}", "href": f"/x/{n}", "price": ""} for n in range(2_000)
]  # over the cap of 500: a selector matching every link, say


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, *args: str) -> int:
    monkeypatch.setenv("WATCHER_DATABASE_URL", db_url)
    return main([*args, "-c", str(tmp_path / "watcher.yaml")])


def _sources(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, object]:
    capsys.readouterr()
    assert _cli(tmp_path, monkeypatch, db_url, "sources", "--json") == 0
    rows = {row["source"]: row for row in json.loads(capsys.readouterr().out)}
    kcell: dict[str, object] = rows["kcell-promo"]
    return kcell


def test_a_page_that_balloons_is_held_the_admin_told_once_until_it_looks_normal(
    make_app: MakeApp,
    site: PromoSite,
    webhook: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = make_app(alice("{on: [new, changed, ended]}"))
    site.cards = [dict(card) for card in FIVE]
    cycle(app)
    site.cards = [dict(card) for card in MANY]
    for _ in range(4):  # long enough for the five to "end", were absences counted
        cycle(app)
    assert sent_to(webhook, "alice") == []
    [held] = sent_to(webhook, "admin")
    assert "held" in held["title"]
    assert "2000 promotions (it had 5)" in held["message"]
    assert "watcher sources accept kcell-promo" in held["message"]
    row = _sources(tmp_path, monkeypatch, db_url, capsys)
    assert (row["held"], row["held_accepted"], row["promotions"]) == (2000, False, 5)
    assert _cli(tmp_path, monkeypatch, db_url, "sources") == 0
    assert "held" in capsys.readouterr().out

    fresh = {"title": "A real new offer", "href": "/p/real", "price": "1 ₸"}
    site.cards = [*(dict(card) for card in FIVE), fresh]
    cycle(app)
    cycle(app)
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: A real new offer"]
    assert [m["title"] for m in sent_to(webhook, "admin")][1:] == [
        "SIM Watcher: promotion source kcell-promo is no longer held"
    ]
    assert _sources(tmp_path, monkeypatch, db_url, capsys)["held"] is None


def test_the_admin_accepts_a_ballooned_page_and_it_becomes_the_baseline_silently(
    make_app: MakeApp,
    site: PromoSite,
    webhook: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = make_app(alice("{on: [new, changed, ended]}"))
    site.cards = [dict(card) for card in FIVE]
    cycle(app)
    assert _cli(tmp_path, monkeypatch, db_url, "sources", "accept", "kcell-promo") == 1
    assert "not held" in capsys.readouterr().err
    site.cards = [dict(card) for card in MANY]
    capsys.readouterr()
    assert _cli(tmp_path, monkeypatch, db_url, "scrape", "kcell-promo", "--json") == 0
    [scraped] = json.loads(capsys.readouterr().out)
    assert (scraped["status"], scraped["changes"]) == ("held", [])

    assert _cli(tmp_path, monkeypatch, db_url, "sources", "accept", "kcell-promo") == 0
    assert "2000" in capsys.readouterr().out
    assert _sources(tmp_path, monkeypatch, db_url, capsys)["held_accepted"] is True
    cycle(app)
    assert sent_to(webhook, "alice") == []
    row = _sources(tmp_path, monkeypatch, db_url, capsys)
    assert (row["held"], row["promotions"]) == (None, 2000)

    site.cards = [*site.cards, {"title": "One more", "href": "/x/more", "price": ""}]
    cycle(app)
    assert [m["title"] for m in sent_to(webhook, "alice")] == ["New promotion: One more"]


def test_accepting_needs_a_known_source(
    make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    make_app(alice())
    assert _cli(tmp_path, monkeypatch, db_url, "sources", "accept", "nope") == 2
    assert _cli(tmp_path, monkeypatch, db_url, "sources", "accept") == 2


def test_a_held_page_answered_304_is_still_held_not_mistaken_for_the_old_page(
    make_app: MakeApp,
    site: PromoSite,
    webhook: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The held page's ETag is not kept: a 304 to it would read as the old five.
    app = make_app(alice("{on: [new, changed, ended]}"))
    site.etags = True
    site.cards = [dict(card) for card in FIVE]
    cycle(app)
    site.cards = [dict(card) for card in MANY]
    cycle(app)
    cycle(app)
    assert site.not_modified == 0
    assert [m["title"] for m in sent_to(webhook, "admin")] == [
        "SIM Watcher: promotion source kcell-promo is held (its page ballooned)"
    ]
    assert _sources(tmp_path, monkeypatch, db_url, capsys)["held"] == 2000
    site.cards = [dict(card) for card in FIVE]
    cycle(app)  # the old page's ETag again: 304, the page looks normal
    assert site.not_modified == 1
    assert _sources(tmp_path, monkeypatch, db_url, capsys)["held"] is None
    assert sent_to(webhook, "alice") == []
