"""kind: auto: each strategy, what it must never take, stable keys, and hostile pages."""

from __future__ import annotations

import json
import tracemalloc
from datetime import date
from pathlib import Path

import pytest

from scrapers import (
    Source,
    detect,
    discover_feed,
    extract,
    extract_explained,
    looks_like_feed,
)

URL = "https://operator.example.kz/ru/promo"
TODAY = date(2026, 12, 3)
PAGES = Path(__file__).parent.parent / "fixtures" / "pages"
AUTO = Source(id="auto", url=URL, kind="auto")

CHROME = """
<header class="site-header"><nav class="main-nav"><ul>
  <li><a href="/ru/tariffs">Тарифы для смартфона</a></li><li><a href="/ru/devices">Смартфоны и гаджеты</a></li>
  <li><a href="/ru/roaming">Роуминг и международная связь</a></li><li><a href="/ru/help">Помощь и поддержка</a></li>
</ul></nav></header>
<div class="cookie-banner"><p>Мы используем cookies, чтобы сайт работал лучше для вас</p>
  <a href="/ru/cookies">Узнать больше о cookies на сайте</a><a href="/ru/cookies/ok">Принять все cookies сейчас</a></div>
<ul class="breadcrumbs"><li><a href="/ru">Главная страница сайта</a></li><li><a href="/ru/promo">Все акции и спецпредложения</a></li></ul>
"""
FOOTER = """
<footer><div class="footer-cols"><ul>
  <li><a href="/ru/about">О компании и руководство</a></li><li><a href="/ru/press">Пресс-центр и новости компании</a></li>
  <li><a href="/ru/jobs">Вакансии и карьера у нас</a></li><li><a href="/ru/contacts">Контакты и адреса офисов</a></li>
</ul></div></footer>
<nav class="pagination"><a href="?page=1">1</a><a href="?page=2">2</a><a href="?page=3">3</a><a href="?page=2">Далее</a></nav>
"""
NEVER = {
    "Тарифы для смартфона",
    "Узнать больше о cookies на сайте",
    "Главная страница сайта",
    "О компании и руководство",
    "Подробнее",
    "1",
    "2",
    "Далее",
}


def titles(text: str, url: str = URL) -> list[str]:
    return [p.title for p in extract(AUTO, text, url, TODAY)]


def html(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head>{head}</head><body>{CHROME}<main>{body}</main>{FOOTER}</body></html>"


CARDS = html(
    """
<div class="promo-grid">
  <div class="promo-card"><h3 class="promo-card__title">eSIM бесплатно до 31 декабря</h3>
    <p>Подключите eSIM в приложении без визита в офис.</p><a href="/ru/promo/esim">Подробнее</a></div>
  <div class="promo-card"><h3 class="promo-card__title">Роуминг в Турции: 10 ГБ за 2 500 ₸</h3>
    <p>Пакет действует 7 дней.</p><a href="/ru/promo/turkey">Подробнее</a></div>
  <div class="promo-card"><h3 class="promo-card__title">Безлимит на соцсети для новых абонентов</h3>
    <p>Первые три месяца бесплатно.</p><a href="/ru/promo/social">Подробнее</a></div>
</div>"""
)


def test_repeated_cards_are_found_with_titles_from_their_headings_not_read_more() -> None:
    found = extract(AUTO, CARDS, URL, TODAY)
    assert [p.title for p in found] == [
        "eSIM бесплатно до 31 декабря",
        "Роуминг в Турции: 10 ГБ за 2 500 ₸",
        "Безлимит на соцсети для новых абонентов",
    ]
    assert found[0].link == "https://operator.example.kz/ru/promo/esim"
    assert found[1].price is not None and found[1].data_gb is not None
    assert found[0].ends == date(2026, 12, 31)


def test_menus_footers_cookie_banners_breadcrumbs_and_pagers_are_never_promotions() -> None:
    assert not NEVER & set(titles(CARDS))
    # Without the cards, the chrome alone gives nothing at all, and says so.
    empty = html("<h1>О компании</h1><p>Мы работаем с 1998 года.</p>")
    reading = extract_explained(AUTO, empty, URL, TODAY)
    assert reading.promotions == []
    assert reading.detection is not None
    assert reading.detection.hint == "no promotion list found on this page"


def test_a_news_list_wins_over_the_sidebar_menu_beside_it() -> None:
    page = html(
        """
<div class="layout"><aside class="sidebar"><ul>
  <li><a href="/ru/news?cat=1">Новости компании и события</a></li><li><a href="/ru/news?cat=2">Акции и скидки месяца</a></li>
  <li><a href="/ru/news?cat=3">Технологии и сеть 5G</a></li></ul></aside>
<section class="news">
  <article><time datetime="2026-11-20">20 ноября 2026</time><h2><a href="/ru/news/5g">Сеть 5G запущена в Шымкенте и Актобе</a></h2></article>
  <article><time datetime="2026-11-12">12 ноября 2026</time><h2><a href="/ru/news/gift">Подарок за пополнение до 15 декабря</a></h2></article>
</section></div>"""
    )
    assert titles(page) == [
        "Сеть 5G запущена в Шымкенте и Актобе",
        "Подарок за пополнение до 15 декабря",
    ]


def test_json_ld_offers_give_names_links_prices_and_validity() -> None:
    offers = {
        "@context": "https://schema.org",
        "@type": "ItemList",
        "itemListElement": [
            {
                "@type": "ListItem",
                "position": i,
                "item": {
                    "@type": "Offer",
                    "name": name,
                    "url": f"https://operator.example.kz/ru/offers/{i}",
                    "price": "1990",
                    "priceCurrency": "KZT",
                    "validFrom": "2026-12-01",
                    "validThrough": "2026-12-31",
                },
            }
            for i, name in enumerate(["Интернет 20 ГБ", "Роуминг СНГ"], start=1)
        ],
    }
    org = {"@type": "Organization", "name": "Оператор", "url": "https://operator.example.kz"}
    head = "".join(
        f'<script type="application/ld+json">{json.dumps(doc, ensure_ascii=False)}</script>'
        for doc in (org, offers)
    )
    reading = extract_explained(AUTO, html("<p>Акции</p>", head), URL, TODAY)
    assert [p.title for p in reading.promotions] == ["Интернет 20 ГБ", "Роуминг СНГ"]
    first = reading.promotions[0]
    assert (first.starts, first.ends) == (date(2026, 12, 1), date(2026, 12, 31))
    assert (str(first.price), first.currency) == ("1990", "KZT")
    assert reading.detection is not None and reading.detection.chosen is not None
    assert reading.detection.chosen.strategy == "jsonld"


def next_page(state: dict[str, object]) -> str:
    script = json.dumps(state, ensure_ascii=False)
    return (
        '<html><body><div id="__next"></div>'
        f'<script id="__NEXT_DATA__" type="application/json">{script}</script></body></html>'
    )


STATE = {
    "props": {
        "pageProps": {
            "menu": [
                {"title": "Тарифы", "href": "/ru/tariffs", "children": [{"title": "Для дома"}]},
                {"title": "Роуминг", "href": "/ru/roaming", "children": []},
                {"title": "Помощь", "href": "/ru/help", "children": []},
            ],
            "settings": {"languages": [{"name": "Русский"}, {"name": "Қазақша"}]},
            "promotions": [
                {
                    "id": 101,
                    "title": "Безлимитный интернет на выходных",
                    "slug": "weekend",
                    "dateTo": "2026-12-31",
                },
                {
                    "id": 102,
                    "title": "Смартфон в рассрочку 0-0-24 месяца",
                    "slug": "phone",
                    "dateTo": "2027-01-31",
                },
                {"id": 103, "title": "Кэшбэк 10 % за оплату через приложение", "slug": "cb"},
            ],
        }
    }
}


def test_next_js_state_gives_the_promotions_not_the_menu_or_settings() -> None:
    reading = extract_explained(AUTO, next_page(STATE), URL, TODAY)
    assert [p.title for p in reading.promotions] == [
        "Безлимитный интернет на выходных",
        "Смартфон в рассрочку 0-0-24 месяца",
        "Кэшбэк 10 % за оплату через приложение",
    ]
    # Without a link, the app's own id is the key: a reworded title is the same promotion.
    assert reading.promotions[0].key == "id:101"
    assert reading.promotions[0].ends == date(2026, 12, 31)


def test_an_initial_state_assignment_is_read_like_embedded_json() -> None:
    promos = STATE["props"]["pageProps"]["promotions"]  # type: ignore[index]
    script = f"window.__INITIAL_STATE__ = {json.dumps({'promo': {'list': promos}})};"
    page = f"<html><body><div id=app></div><script>{script}</script></body></html>"
    assert len(titles(page)) == 3


def test_the_same_promotion_keeps_its_key_whichever_strategy_read_it() -> None:
    state = {
        "items": [
            {"title": "eSIM бесплатно", "url": "/ru/promo/esim"},
            {"title": "Роуминг за 990 ₸ в день", "url": "/ru/promo/roam"},
        ]
    }
    from_state = extract(AUTO, next_page(state), URL, TODAY)
    dom = html(
        '<div class="c"><h3>eSIM бесплатно</h3><a href="/ru/promo/esim?utm_source=x">Подробнее</a></div>'
        '<div class="c"><h3>Роуминг за 990 ₸ в день</h3><a href="/ru/promo/roam">Подробнее</a></div>'
    )
    from_dom = extract(AUTO, dom, URL, TODAY)
    assert [p.key for p in from_state] == [p.key for p in from_dom]


def test_a_page_drawn_by_scripts_says_to_try_a_browser() -> None:
    page = (
        '<html><body><div id="promo-list"></div><script src="/app.js"></script>'
        "<script>fetch('/api/promos.json').then(r => r.json()).then(draw)</script></body></html>"
    )
    reading = extract_explained(AUTO, page, URL, TODAY)
    assert reading.promotions == []
    assert reading.detection is not None and reading.detection.hint is not None
    assert "render: browser" in reading.detection.hint


def test_a_feed_is_read_as_a_feed_and_a_named_feed_is_found() -> None:
    feed = (PAGES / "feed_rss.xml").read_text(encoding="utf-8")
    assert looks_like_feed(feed)
    assert titles(feed) == titles(feed)  # deterministic
    assert len(titles(feed)) >= 2
    page = '<html><head><link rel="alternate" type="application/rss+xml" href="/ru/news/rss"></head></html>'
    assert discover_feed(page, URL) == "https://operator.example.kz/ru/news/rss"
    assert discover_feed(CARDS, URL) is None


def test_selectors_pinned_from_the_dom_strategy_read_the_same_promotions() -> None:
    detection = detect(CARDS, URL)
    assert detection.chosen is not None and detection.chosen.selectors is not None
    pinned = Source(
        id="pinned",
        url=URL,
        kind="html",
        items=detection.chosen.selectors["items"],
        fields=dict(detection.chosen.selectors["fields"]),
    )
    assert [p.title for p in extract(pinned, CARDS, URL, TODAY)] == titles(CARDS)


@pytest.mark.parametrize(
    "name", ["kcell_news.html", "activ_campaigns.html", "beeline_news.html", "ld_json.html"]
)
def test_the_reconstructed_operator_pages_read_without_selectors(name: str) -> None:
    found = titles((PAGES / name).read_text(encoding="utf-8"))
    assert len(found) >= 2
    assert not {"Тарифы", "Новости", "Акции", "Все"} & set(found)


# --- hostile pages -------------------------------------------------------------------------


def bounded(text: str) -> list[str]:
    tracemalloc.start()
    try:
        found = titles(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024 * 1024
    return found


def test_a_five_megabyte_page_is_read_within_bounds() -> None:
    card = (
        '<div class="c"><h3>Акция номер {i} для абонентов</h3><a href="/p/{i}">Подробнее</a></div>'
    )
    body = "".join(card.format(i=i) for i in range(60_000))
    assert len(body) > 5_000_000
    assert len(bounded(html(body))) == 1000  # no promotions page lists more


def test_a_hundred_thousand_links_with_javascript_ones_never_give_a_script_link() -> None:
    links = "".join(
        f'<li><a href="{"javascript:alert(1)" if i % 2 else f"/p/{i}"}">Ссылка номер {i} тут</a></li>'
        for i in range(100_000)
    )
    found = extract(AUTO, html(f"<ul class='links'>{links}</ul>"), URL, TODAY)
    assert all(p.link is None or p.link.startswith("https://") for p in found)


def test_huge_app_state_is_walked_within_bounds() -> None:
    # The fetcher's cap is 5 MB a page: state that fills it.
    state = {"data": [{"title": f"Пункт номер {i} длинный", "id": i} for i in range(100_000)]}
    page = next_page(state)
    assert len(page.encode()) > 4_500_000
    assert len(bounded(page)) == 1000


def test_deeply_nested_state_does_not_crash() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    page = f'<html><body><script type="application/json">{deep}</script></body></html>'
    assert bounded(page) == []


def test_a_nuxt_3_payload_is_unflattened_and_read_like_other_app_state() -> None:
    # devalue's flat form: every object holds indices into the one array.
    payload = [
        ["ShallowReactive", 1],
        {"data": 2, "state": 12},
        ["ShallowReactive", 3],
        {"promo-list": 4},
        {"items": 5, "menu": 13},
        [6, 9],
        {"id": 7, "title": 8, "url": 17},
        301,
        "Интернет 30 ГБ за 2 990 ₸ в месяц",
        {"id": 10, "title": 11, "url": 18},
        302,
        "Роуминг в Турции со скидкой 50 %",
        {"locale": 16},
        [14, 15],
        {"title": 16},
        {"title": 16},
        "ru",
        "/ru/promo/30gb",
        "/ru/promo/turkey",
    ]
    page = (
        '<html><body><div id="__nuxt"></div><script type="application/json" '
        f'id="__NUXT_DATA__" data-ssr="true">{json.dumps(payload, ensure_ascii=False)}</script>'
        "</body></html>"
    )
    found = extract(AUTO, page, URL, TODAY)
    assert [p.title for p in found] == [
        "Интернет 30 ГБ за 2 990 ₸ в месяц",
        "Роуминг в Турции со скидкой 50 %",
    ]
    assert found[0].link == "https://operator.example.kz/ru/promo/30gb"


def test_a_nuxt_payload_that_refers_to_itself_does_not_loop() -> None:
    payload = [{"a": 1}, {"b": 0, "list": 2}, [0, 1, 0]]
    page = f'<script type="application/json" id="__NUXT_DATA__">{json.dumps(payload)}</script>'
    assert bounded(page) == []  # walked round its cycle, it once grew without bound
