"""Promotions that must not alert falsely, end to end (issue 12): a card whose link is
refused keeps its identity, and a page that balloons is held, not announced.

A real page on loopback, the real scraper, store and outbox, and real Apprise posts to
a loopback webhook, as in ``test_promotion_alerts``.
"""

from __future__ import annotations

from tests.conftest import MakeApp
from tests.servers import PromoSite, WebhookReceiver
from tests.test_promotion_alerts import alice, cycle, make_app, sent_to, site

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
