"""`watcher scrape`: real pages from a loopback server, stored or not, and saved pages offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import WriteConfig
from tests.servers import CARD, PromoSite
from watcher.cli import main


@pytest.fixture
def site() -> Iterator[PromoSite]:
    served = PromoSite()
    served.cards = [
        {"title": "eSIM за 0 ₸", "href": "/p/esim", "price": "0 ₸"},
        {"title": "Роуминг 10 ГБ", "href": "/p/roaming?utm_source=x", "price": "2 990 ₸"},
        {"title": "Click me", "href": "javascript:alert(1)", "price": ""},
    ]
    yield served
    served.stop()


@pytest.fixture
def config_file(write_config: WriteConfig, db_url: str, site: PromoSite) -> Path:
    return write_config(
        f"""
timezone: Asia/Almaty
database: {db_url}
sources:
  - id: shop
    operator: kcell
    url: "{site.url}"
    items: ".card"
    fields: {{title: "h2", link: "a@href", price: ".price"}}
"""
    )


def scrape(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(["scrape", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_dry_run_lists_what_the_page_offers_and_stores_nothing(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, [result] = scrape(capsys, "shop", "--dry-run", "-c", str(config_file))
    assert code == 0
    assert result["stored"] is False
    titles = [p["title"] for p in result["promotions"]]
    assert "eSIM за 0 ₸" in titles
    roaming = next(p for p in result["promotions"] if p["title"].startswith("Роуминг"))
    assert roaming["price"] == "2990"
    assert roaming["currency"] == "KZT"
    assert roaming["data_gb"] == "10"
    assert "utm_source" not in roaming["key"]
    assert not any("javascript:" in (p["link"] or "") for p in result["promotions"])


def test_stored_scrapes_set_a_silent_baseline_then_report_what_is_new(
    config_file: Path, site: PromoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    code, [first] = scrape(capsys, "shop", "-c", str(config_file))
    assert code == 0
    assert first["stored"] is True
    assert first["changes"] == []  # the baseline alerts nobody
    site.cards.append({"title": "Безлимит на месяц", "href": "/p/unlim", "price": "4 990 ₸"})
    code, [second] = scrape(capsys, "shop", "-c", str(config_file))
    assert [c["kind"] for c in second["changes"]] == ["new"]
    assert second["changes"][0]["key"].endswith("/p/unlim")


def test_a_saved_page_is_read_offline_with_a_sources_selectors(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "saved.html"
    page.write_text(CARD.format(title="Saved offer", href="/p/saved", price="1 500 ₸", date=""))
    code, [result] = scrape(
        capsys, "--html-file", str(page), "--source", "shop", "-c", str(config_file)
    )
    assert code == 0
    assert [p["title"] for p in result["promotions"]] == ["Saved offer"]


def test_an_unreachable_source_is_a_reported_error_not_a_crash(
    config_file: Path, site: PromoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.stop()
    code, [result] = scrape(capsys, "shop", "--dry-run", "-c", str(config_file))
    assert code == 1
    assert result["status"] == "error"
    assert result["error"]


def test_an_unknown_source_lists_the_known_ones(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scrape", "nosuch", "--dry-run", "-c", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert "no source 'nosuch'" in err
    assert "shop" in err


def test_promotions_lists_what_stored_scrapes_found_newest_first(
    config_file: Path, site: PromoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    scrape(capsys, "shop", "-c", str(config_file))
    site.cards.append({"title": "Безлимит на месяц", "href": "/p/unlim", "price": "4 990 ₸"})
    _, [scraped] = scrape(capsys, "shop", "-c", str(config_file))
    assert main(["promotions", "--json", "-c", str(config_file)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["title"] == "Безлимит на месяц"
    # One serialisation of a promotion: stored, it reads as it did when scraped.
    found = next(p for p in scraped["promotions"] if p["title"] == "Безлимит на месяц")
    assert {k: rows[0][k] for k in found} == found
    assert (found["price"], found["currency"]) == ("4990", "KZT")
    assert [c["kind"] for c in rows[0]["changes"]] == ["new"]  # the history of each
    assert all(r["changes"] == [] for r in rows[1:])  # the baseline is no change
    assert rows[0]["last_seen"] >= rows[0]["first_seen"]
    assert {r["title"] for r in rows} >= {"eSIM за 0 ₸", "Роуминг 10 ГБ"}
    assert main(["promotions", "--json", "--operator", "beeline", "-c", str(config_file)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["promotions", "--active", "-c", str(config_file)]) == 0
    assert "Безлимит" in capsys.readouterr().out


def test_an_unchanged_page_answered_304_alerts_nobody_and_changes_still_show_after(
    config_file: Path, site: PromoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.etags = True
    scrape(capsys, "shop", "-c", str(config_file))  # baseline; the ETag is kept
    code, [again] = scrape(capsys, "shop", "-c", str(config_file))
    assert code == 0
    assert site.not_modified == 1
    assert again["status"] == "not modified"
    assert again["changes"] == []
    site.cards.pop(0)  # the page changes: a new ETag, a full download
    for _ in range(3):  # ended after 3 good scrapes; each 304 counts as one
        code, [latest] = scrape(capsys, "shop", "-c", str(config_file))
    assert site.not_modified == 3
    assert [c["kind"] for c in latest["changes"]] == ["ended"]


def test_a_selector_fix_fetches_the_page_again_and_rebaselines_silently(
    config_file: Path, site: PromoSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.etags = True
    scrape(capsys, "shop", "-c", str(config_file))  # baseline, keyed by link
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text.replace(', link: "a@href"', ""), encoding="utf-8")
    code, [result] = scrape(capsys, "shop", "-c", str(config_file))
    assert code == 0
    assert site.not_modified == 0  # not a 304: the new selectors saw the page
    assert result["status"] == "ok"
    assert all(p["key"].startswith("title:") for p in result["promotions"])
    assert result["changes"] == []  # re-keyed promotions are a baseline, not "new"
    # What the old selectors found is history now: it never "ends" or comes back.
    for _ in range(3):
        code, [later] = scrape(capsys, "shop", "-c", str(config_file))
        assert later["changes"] == []
    assert main(["promotions", "--active", "--json", "-c", str(config_file)]) == 0
    active = json.loads(capsys.readouterr().out)
    assert len(active) == len(result["promotions"])


# --- kind: auto: a URL is enough -------------------------------------------------------


@pytest.fixture
def url_only(write_config: WriteConfig, db_url: str, site: PromoSite) -> Path:
    return write_config(
        f"""
database: {db_url}
sources:
  - id: shop
    operator: kcell
    url: "{site.url}"
"""
    )


def test_a_source_with_only_a_url_passes_check_and_finds_the_cards(
    url_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "-c", str(url_only)]) == 0
    capsys.readouterr()
    code, [result] = scrape(capsys, "shop", "--dry-run", "--explain", "-c", str(url_only))
    assert code == 0
    titles = [p["title"] for p in result["promotions"]]
    assert titles[:2] == ["eSIM за 0 ₸", "Роуминг 10 ГБ"]
    assert "more" not in titles
    explain = result["explain"]
    assert explain["kind"] == "auto"
    assert explain["chosen"]["strategy"] == "dom"
    assert explain["chosen"]["selectors"]["items"].endswith("div.card")


def test_explain_in_text_names_the_winner_and_what_it_passed_over(
    url_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scrape", "shop", "--dry-run", "--explain", "-c", str(url_only)]) == 0
    out = capsys.readouterr().out
    assert "shop: kind auto" in out
    assert "chose dom:" in out


class Pages:
    """A loopback server of fixed pages by path."""

    def __init__(self, pages: dict[str, tuple[str, str]]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        served = pages

        self.conditional = 0  # requests that came with If-None-Match
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, body = served.get(self.path, ("text/plain", ""))
                data = body.encode("utf-8")
                if self.headers.get("If-None-Match"):
                    pages.conditional += 1
                self.send_response(200 if self.path in served else 404)
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


FEED = """<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Акции</title>
<item><title>Интернет 50 ГБ за 3 990 ₸</title><link>{url}/news/50gb</link></item>
<item><title>Роуминг в ОАЭ со скидкой до 31 декабря</title><link>{url}/news/uae</link></item>
</channel></rss>"""
NAMING_PAGE = """<html><head><link rel="alternate" type="application/rss+xml" href="/rss.xml">
</head><body><nav><a href="/a">Тарифы и услуги</a><a href="/b">Помощь абонентам</a></nav>
</body></html>"""


def test_a_page_that_names_a_feed_is_read_through_the_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served: dict[str, tuple[str, str]] = {"/news": ("text/html", NAMING_PAGE)}
    pages = Pages(served)
    served["/rss.xml"] = ("application/rss+xml", FEED.format(url=pages.url))
    try:
        code, [result] = scrape(
            capsys, "--url", f"{pages.url}/news", "-c", str(tmp_path / "x.yaml")
        )
    finally:
        pages.stop()
    assert code == 0
    assert [p["title"] for p in result["promotions"]] == [
        "Интернет 50 ГБ за 3 990 ₸",
        "Роуминг в ОАЭ со скидкой до 31 декабря",
    ]
    assert result["explain"]["feed_url"] == f"{pages.url}/rss.xml"
    assert result["stored"] is False


def test_a_page_read_through_its_feed_is_never_fetched_conditionally(
    write_config: WriteConfig, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its page may stay the same (a 304) while the feed it names changes.
    served: dict[str, tuple[str, str]] = {"/news": ("text/html", NAMING_PAGE)}
    pages = Pages(served)
    served["/rss.xml"] = ("application/rss+xml", FEED.format(url=pages.url))
    entry = f"{{id: news, operator: kcell, url: '{pages.url}/news'}}"
    config = write_config(f"database: {db_url}\nsources:\n  - {entry}\n")
    try:
        for _ in range(2):
            code, [result] = scrape(capsys, "news", "-c", str(config))
            assert code == 0 and len(result["promotions"]) == 2
    finally:
        pages.stop()
    assert pages.conditional == 0


def test_url_preview_needs_no_config_and_prints_a_ready_entry(
    site: PromoSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.yaml"
    assert main(["scrape", "--url", site.url, "-c", str(missing)]) == 0
    out = capsys.readouterr().out
    entry = out[out.index("sources:") :]
    [source] = yaml.safe_load(entry)["sources"]
    assert source["url"] == site.url
    assert source["items"].endswith("div.card")
    assert not missing.exists()


def test_a_browser_preview_without_a_browser_says_what_to_install(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config("scraping: {browser_path: /nonexistent/chromium}\n")
    code = main(
        ["scrape", "--url", "http://127.0.0.1:9/x", "--render", "browser", "-c", str(config)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--render browser:" in err and "apt-get install chromium" in err


DRAWN = """<!doctype html><html><body><main id="list">Загрузка...</main><script>
fetch('/api/promos').then(r => r.json()).then(items => {
  document.getElementById('list').innerHTML = items.map(i =>
    `<div class="promo"><h3>${i.title}</h3><a href="${i.href}">Подробнее</a></div>`).join('');
});
</script></body></html>"""
DRAWN_ITEMS = [
    {"title": "Безлимит на YouTube за 790 ₸", "href": "/p/yt"},
    {"title": "eSIM для поездок: 1 ГБ в подарок", "href": "/p/esim"},
]


def test_a_browser_source_is_rendered_stored_and_read_by_auto(
    write_config: WriteConfig, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from scrapers import render_unavailable

    if (missing := render_unavailable()) is not None:
        pytest.skip(f"no browser to render with: {missing}")
    served = {
        "/offers": ("text/html", DRAWN),
        "/api/promos": ("application/json", json.dumps(DRAWN_ITEMS, ensure_ascii=False)),
    }
    pages = Pages(served)
    entry = f"{{id: drawn, operator: kcell, url: '{pages.url}/offers', render: browser}}"
    config = write_config(f"database: {db_url}\nsources:\n  - {entry}\n")
    try:
        code, [first] = scrape(capsys, "drawn", "--explain", "-c", str(config))
        served["/api/promos"] = (
            "application/json",
            json.dumps([*DRAWN_ITEMS, {"title": "Роуминг в ОАЭ за 1 990 ₸", "href": "/p/uae"}]),
        )
        code2, [second] = scrape(capsys, "drawn", "-c", str(config))
    finally:
        pages.stop()
    assert (code, code2) == (0, 0)
    assert [p["title"] for p in first["promotions"]] == [i["title"] for i in DRAWN_ITEMS]
    assert first["stored"] and first["changes"] == []  # the silent baseline
    assert first["explain"]["chosen"]["strategy"] == "dom"
    assert [c["kind"] for c in second["changes"]] == ["new"]
    assert second["changes"][0]["key"].endswith("/p/uae")
