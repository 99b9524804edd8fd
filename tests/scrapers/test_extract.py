"""Extraction: the cases table (tests/scrapers/cases.yaml), links, keys and hostile pages."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scrapers._build import title_key
from scrapers._errors import ExtractError
from scrapers._extract import extract
from scrapers._html import MAX_DEPTH, check_depth
from scrapers._links import canonical_link, safe_link
from scrapers._models import Promotion, Source
from scrapers._profiles import load_profiles

HERE = Path(__file__).parent
PAGES = HERE.parent / "fixtures" / "pages"
TODAY = date(2026, 11, 20)
PROMOTION_FIELDS = {f.name for f in dataclass_fields(Promotion)}
CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))


def page(name: str) -> str:
    """A fixture page as the fetcher would hand it over: decoded, bad bytes replaced."""
    return (PAGES / name).read_bytes().decode("utf-8", errors="replace")


def case_source(case: Mapping[str, Any]) -> Source:
    if "profile" in case:
        return load_profiles()[case["profile"]].source
    return Source(**case["source"])


def comparable(name: str, value: Any) -> Any:
    if name in ("price", "data_gb") and value is not None:
        return Decimal(str(value))
    return value


def card(**fields: Any) -> str:
    title = fields.get("title", "Акция")
    href = fields.get("href", "/ru/promo/a")
    return f'<div class="card"><a href="{href}"><h3>{title}</h3></a></div>'


CARDS = Source(
    id="cards",
    url="https://example.kz/ru/promo",
    items=".card",
    fields={"title": "h3", "link": "a@href"},
)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_extraction_case(case: dict[str, Any]) -> None:
    source = case_source(case)
    url = case.get("url", source.url)
    today = case.get("today", TODAY)
    if "error" in case:
        with pytest.raises(ExtractError) as caught:
            extract(source, page(case["page"]), url, today)
        assert case["error"] in str(caught.value)
        return
    promotions = extract(source, page(case["page"]), url, today)
    expected: list[dict[str, Any]] = case["expect"]
    if case.get("more"):
        assert len(promotions) >= len(expected)
    else:
        assert len(promotions) == len(expected), [p.title for p in promotions]
    for index, (promotion, wanted) in enumerate(zip(promotions, expected, strict=False)):
        assert set(wanted) <= PROMOTION_FIELDS, f"unknown field in cases.yaml: {set(wanted)}"
        actual = {name: getattr(promotion, name) for name in wanted}
        assert actual == {name: comparable(name, value) for name, value in wanted.items()}, (
            f"promotion {index}"
        )
        assert promotion.source_id == source.id


@pytest.mark.parametrize("profile_id", sorted(load_profiles()))
def test_every_built_in_profile_has_a_case_against_its_fixture(profile_id: str) -> None:
    cases = [case for case in CASES if case.get("profile") == profile_id and "expect" in case]
    assert cases, f"add a case for {profile_id} to cases.yaml"
    assert any(len(case["expect"]) >= 3 for case in cases)


# --- links and keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/ru/promo/a", "https://example.kz/ru/promo/a"),
        ("promo/a", "https://example.kz/ru/promo/a"),
        ("../kk/promo", "https://example.kz/kk/promo"),
        ("//cdn.example.kz/x.png", "https://cdn.example.kz/x.png"),
        ("http://other.kz/a", "http://other.kz/a"),
        ("  https://example.kz/a  ", "https://example.kz/a"),
        ("https://exa\nmple.kz/a", "https://example.kz/a"),  # browsers drop newlines
        ("?page=2", "https://example.kz/ru/list?page=2"),
        ("javascript:alert(1)", None),
        ("JAVASCRIPT:alert(1)", None),
        (" \x01javascript:alert(1)", None),
        ("java\tscript:alert(1)", None),
        ("java\r\nscript:alert(1)", None),
        ("vbscript:x", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("mailto:a@example.kz", None),
        ("tel:+77011234567", None),
        ("file:///etc/passwd", None),
        ("ftp://example.kz/a", None),
        ("http://", None),
        ("http://[::1", None),
        ("https://example.kz:99999/", None),
        ("https://example.kz/" + "a" * 3000, None),
        ("", None),
        (None, None),
    ],
)
def test_safe_link_keeps_only_absolute_http_urls(href: str | None, expected: str | None) -> None:
    assert safe_link(href, "https://example.kz/ru/list") == expected


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            "".join,
            st.lists(
                st.sampled_from(
                    [
                        "java",
                        "script",
                        ":",
                        "\t",
                        "\n",
                        " ",
                        "\x01",
                        "/",
                        "//",
                        "h",
                        "ttp",
                        "s",
                        "data",
                        "#",
                        "?",
                        "@",
                        "[",
                        "]",
                        "%",
                        "&#",
                        "x",
                    ]
                ),
                max_size=12,
            ),
        ),
    )
)
def test_safe_link_never_returns_anything_but_http(href: str) -> None:
    link = safe_link(href, "https://example.kz/ru/list")
    assert link is None or urlsplit(link).scheme in ("http", "https")
    if link is not None:
        assert canonical_link(link).startswith(("http://", "https://"))


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTPS://WWW.Kcell.KZ/ru/news/a", "https://www.kcell.kz/ru/news/a"),
        ("https://kcell.kz/ru/news/a/", "https://kcell.kz/ru/news/a"),
        ("https://kcell.kz", "https://kcell.kz/"),
        ("https://kcell.kz/", "https://kcell.kz/"),
        ("https://kcell.kz/a#details", "https://kcell.kz/a"),
        ("https://kcell.kz/#/promo/12", "https://kcell.kz/#/promo/12"),  # a client-side route
        ("https://kcell.kz/#!/promo/12", "https://kcell.kz/#!/promo/12"),
        ("https://kcell.kz/a?utm_source=x&utm_medium=y", "https://kcell.kz/a"),
        ("https://kcell.kz/a?id=5&UTM_Campaign=x&fbclid=1&gclid=2", "https://kcell.kz/a?id=5"),
        ("https://kcell.kz/a?b=2&a=1", "https://kcell.kz/a?b=2&a=1"),  # order kept
        ("https://kcell.kz:443/a", "https://kcell.kz/a"),
        ("http://kcell.kz:80/a", "http://kcell.kz/a"),
        ("https://kcell.kz:8443/a", "https://kcell.kz:8443/a"),
        ("https://user:pw@kcell.kz/a", "https://kcell.kz/a"),
        ("https://kcell.kz./a", "https://kcell.kz/a"),
        ("https://[::1]:8080/a", "https://[::1]:8080/a"),
        ("https://kcell.kz/a%20b", "https://kcell.kz/a%20b"),
    ],
)
def test_canonical_link(url: str, key: str) -> None:
    assert canonical_link(url) == key


def test_title_key_ignores_case_and_whitespace_but_not_words() -> None:
    key = title_key("eSIM  бесплатно\u00a0до 31 декабря")
    assert key == title_key("ESIM БЕСПЛАТНО до 31 ДЕКАБРЯ ")
    assert key.startswith("title:")
    assert len(key) == len("title:") + 16
    assert key != title_key("eSIM бесплатно до 30 декабря")


def test_duplicates_on_a_page_keep_the_first() -> None:
    html = card(title="Первая", href="/ru/promo/a?utm_source=x") + card(
        title="Вторая", href="https://EXAMPLE.kz/ru/promo/a/"
    )
    html += card(title="Без ссылки", href="#") + card(title="без  ССЫЛКИ", href="#top")
    promotions = extract(CARDS, html, "https://example.kz/ru/promo", TODAY)
    assert [p.title for p in promotions] == ["Первая", "Без ссылки"]


def test_a_link_back_to_the_listing_itself_is_not_an_identity() -> None:
    html = card(title="Один", href="/ru/promo") + card(title="Два", href="/ru/promo/")
    promotions = extract(CARDS, html, "https://example.kz/ru/promo", TODAY)
    assert [p.key for p in promotions] == [title_key("Один"), title_key("Два")]


def test_base_href_is_honoured_but_a_javascript_base_is_not() -> None:
    html = '<base href="https://cdn.example.kz/ru/">' + card(href="promo/a")
    (promotion,) = extract(CARDS, html, "https://example.kz/x", TODAY)
    assert promotion.link == "https://cdn.example.kz/ru/promo/a"
    html = '<base href="javascript:alert(1)//">' + card(href="promo/a")
    (promotion,) = extract(CARDS, html, "https://example.kz/x/", TODAY)
    assert promotion.link == "https://example.kz/x/promo/a"


def test_no_extracted_link_or_image_is_ever_anything_but_http() -> None:
    sources = [
        CARDS,
        Source(
            id="h",
            url="https://example.kz/",
            items=".card",
            fields={
                "title": ".card__title",
                "link": "a@href",
                "image": "img@src",
                "summary": "@class",
            },
        ),
    ]
    for source in sources:
        for promotion in extract(source, page("hostile_links.html"), "https://example.kz/", TODAY):
            for url in (promotion.link, promotion.image):
                assert url is None or urlsplit(url).scheme in ("http", "https")
                assert url is None or not url.lower().startswith("javascript")
            assert "document.write" not in promotion.title
            assert "steal()" not in (promotion.summary or "")


# --- text ------------------------------------------------------------------------------


def test_script_style_and_template_text_never_reaches_a_field() -> None:
    html = (
        '<div class="card"><h3>Акция<script>var a = "<b>код</b>";</script>'
        "<style>.x{color:red}</style><template><b>шаблон</b></template> дня</h3></div>"
    )
    (promotion,) = extract(CARDS, html, "https://example.kz/", TODAY)
    assert promotion.title == "Акция дня"


def test_text_is_whitespace_normalised_and_punctuation_tidied() -> None:
    html = (
        '<div class="card"><h3>\n  Скидка\u00a0<b>50%</b>\u2009:\t<br>'
        "роуминг  ( <i>Турция</i> ) </h3></div>"
    )
    (promotion,) = extract(CARDS, html, "https://example.kz/", TODAY)
    assert promotion.title == "Скидка 50%: роуминг (Турция)"


def test_long_texts_are_clipped() -> None:
    source = Source(
        id="s", url="https://example.kz/", items=".card", fields={"title": "h3", "summary": "p"}
    )
    html = f'<div class="card"><h3>{"А" * 1000}</h3><p>{"слово " * 1000}</p></div>'
    (promotion,) = extract(source, html, "https://example.kz/", TODAY)
    assert len(promotion.title) == 300
    assert promotion.title.endswith("…")
    assert promotion.summary is not None
    assert len(promotion.summary) <= 1000


def test_a_date_field_is_completed_by_the_title() -> None:
    source = Source(
        id="s", url="https://example.kz/", items=".card", fields={"title": "h3", "date": "time"}
    )
    html = '<div class="card"><time>с 1 ноября</time><h3>Акция до 31 декабря</h3></div>'
    (promotion,) = extract(source, html, "https://example.kz/", TODAY)
    assert (promotion.starts, promotion.ends) == (date(2026, 11, 1), date(2026, 12, 31))
    assert promotion.date_text == "с 1 ноября"


def test_a_bare_number_in_a_price_field_is_a_price_without_currency() -> None:
    source = Source(
        id="s", url="https://example.kz/", items=".card", fields={"title": "h3", "price": ".price"}
    )
    html = '<div class="card"><h3>Тариф</h3><span class="price">2 990</span></div>'
    (promotion,) = extract(source, html, "https://example.kz/", TODAY)
    assert (promotion.price, promotion.currency) == (Decimal(2990), None)


# --- hostile input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "markup",
    [
        "<div>" * 100_000,
        "<div/>" * 100_000,  # an HTML element: the slash closes nothing
        "<span>" * 100_000 + "</x>" * 100_000,  # stray end tags scan the whole stack
        "<ul><li>" * 100_000,
        "<svg>" + "<g>" * 100_000,
        "<svg>" + "<div/>" * 100_000,  # <div> leaves the svg, then nests as HTML
        "<table>" * 100_000,
    ],
    ids=["div", "div/", "span+stray-ends", "ul-li", "svg-g", "svg-breakout", "table"],
)
def test_absurdly_deep_nesting_is_refused_quickly(markup: str) -> None:
    html = '<div class="card"><h3>Акция</h3></div>' + markup
    started = time.perf_counter()
    with pytest.raises(ExtractError, match=f"more than {MAX_DEPTH} deep"):
        extract(CARDS, html, "https://example.kz/", TODAY)
    assert time.perf_counter() - started < 2  # lexbor itself would take minutes


def test_deep_nesting_inside_a_feed_description_is_refused_too() -> None:
    deep = "&lt;div&gt;" * 100_000
    item = f"<item><title>x</title><description>{deep}</description></item>"
    feed = f"<rss><channel>{item}</channel></rss>"
    source = Source(id="f", url="https://example.kz/", kind="feed")
    with pytest.raises(ExtractError, match="deep"):
        extract(source, feed, "https://example.kz/", TODAY)


def test_deeply_nested_feed_xml_does_not_recurse() -> None:
    body = "<x>" * 100_000 + "</x>" * 100_000
    feed = f"<rss><channel><item><title>Акция</title>{body}</item></channel></rss>"
    source = Source(id="f", url="https://example.kz/", kind="feed")
    (promotion,) = extract(source, feed, "https://example.kz/", TODAY)
    assert promotion.title == "Акция"


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    source = Source(id="j", url="https://example.kz/", kind="json", fields={"title": "t"})
    with pytest.raises(ExtractError, match="JSON"):
        extract(source, "[" * 100_000 + "]" * 100_000, "https://example.kz/", TODAY)


@pytest.mark.parametrize(
    "markup",
    [
        "<p>" * 20_000,  # implicitly closed: flat
        "<li>" * 20_000,
        "<br>" * 20_000,
        ("<div>" * 60 + "</div>" * 60) * 400,  # deep enough, many times
        "<svg>" + '<path d="M0 0"/>' * 20_000 + "</svg>",  # self-closing inside svg
        "<a href=x>a" * 20_000,  # a second <a> closes the first
        "<!--" + "<div>" * 20_000 + "-->",
        "<script>" + "<div>" * 20_000 + "</script>",
        "<div " * 20_000,  # tags that never close their '<'
        "<" * 100_000,
    ],
    ids=["p", "li", "br", "repeated-60", "svg-paths", "a", "comment", "script", "unclosed", "lt"],
)
def test_wide_or_sloppy_markup_is_not_mistaken_for_deep(markup: str) -> None:
    check_depth(markup)
    extract(CARDS, markup, "https://example.kz/", TODAY)


def test_nested_items_stay_bounded() -> None:
    # Every <div class="card"> inside the one before: the items overlap, work must not explode.
    html = ('<div class="card"><h3>Акция</h3><a href="/a">x</a>' * 400 + "</div>" * 400) * 5
    started = time.perf_counter()
    promotions = extract(CARDS, html, "https://example.kz/", TODAY)
    assert time.perf_counter() - started < 5
    assert len(promotions) == 1  # all the same link


def test_raw_nul_and_lone_surrogates_in_text() -> None:
    html = card(title="NUL\x00 и \udcff суррогат") + card(title="\x00")
    (promotion,) = extract(CARDS, html, "https://example.kz/", TODAY)
    assert promotion.title.startswith("NUL")


def test_xml_that_is_not_a_feed() -> None:
    source = Source(id="f", url="https://example.kz/", kind="feed")
    with pytest.raises(ExtractError, match="not an RSS or Atom feed"):
        extract(source, "<html><body><item/></body></html>", "https://example.kz/", TODAY)


def test_a_feed_with_a_bom_and_leading_whitespace() -> None:
    source = Source(id="f", url="https://example.kz/", kind="feed")
    feed = (
        "\ufeff\n  <?xml version='1.0'?><rss><channel><item><title>А</title></item></channel></rss>"
    )
    assert [p.title for p in extract(source, feed, "https://example.kz/", TODAY)] == ["А"]


def test_an_html_entity_in_a_feed_is_an_error_with_the_position() -> None:
    source = Source(id="f", url="https://example.kz/", kind="feed")
    with pytest.raises(ExtractError, match="undefined entity: line 1"):
        extract(
            source,
            "<rss><channel><item><title>&nbsp;</title></item></channel></rss>",
            "https://e.kz/",
            TODAY,
        )


def test_an_empty_json_list_is_no_items_not_an_error() -> None:
    source = Source(
        id="j", url="https://example.kz/", kind="json", items="data.items", fields={"title": "t"}
    )
    assert extract(source, '{"data": {"items": []}}', "https://example.kz/", TODAY) == []
    source = Source(id="j", url="https://example.kz/", kind="json", fields={"title": "t"})
    assert extract(source, "[]", "https://example.kz/", TODAY) == []
    single = extract(source, '{"t": "Одна акция"}', "https://example.kz/", TODAY)
    assert [p.title for p in single] == ["Одна акция"]


def test_a_json_field_of_the_wrong_shape_is_empty_not_an_error() -> None:
    source = Source(
        id="j",
        url="https://example.kz/",
        kind="json",
        fields={"title": "t", "link": "link.deep.er", "price": "p", "summary": "s"},
    )
    data = (
        '[{"t": "Акция", "link": 5, "p": [{"y": 1}], "s": true},'
        ' {"t": ["", "Вторая"], "p": {"x": 1}}]'
    )
    first, second = extract(source, data, "https://example.kz/", TODAY)
    assert (first.title, first.link, first.price, first.summary) == ("Акция", None, None, None)
    assert (second.title, second.price) == ("Вторая", None)


def test_json_path_dot_is_the_item_itself() -> None:
    source = Source(id="j", url="https://e.kz/", kind="json", fields={"title": "name", "date": "."})
    data = '[{"name": "Акция", "startDate": "2026-11-01", "endDate": "2026-11-30"}]'
    (promotion,) = extract(source, data, "https://e.kz/", TODAY)
    assert (promotion.starts, promotion.ends) == (date(2026, 11, 1), date(2026, 11, 30))
