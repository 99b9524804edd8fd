"""The renderer against real Chromium and a real HTTP server on loopback.

Pages here draw their lists with scripts, stall, loop, and try to reach private
addresses. As in the fetcher's tests, a fake DNS plays the internet: names such as
``promo.example`` are public to the renderer's checks, and Chromium is told
(``--host-resolver-rules``) to connect them to 127.0.0.1. Nothing leaves loopback.
The waits are real (a browser cannot be given a fake clock): timeouts are a second
or two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from typing import Any, TypeVar

import httpx
import pytest

from scrapers import (
    FetchForbidden,
    FetchRedirect,
    FetchTimeout,
    FetchTooLarge,
    Profile,
    Renderer,
    RenderSettings,
    Source,
    extract,
    render_unavailable,
)
from scrapers._fetch import Fetcher, Resolve
from scrapers._proxy import Dial
from tests.scrapers.test_fetch import BASE, Gauge, Reply, Site, ToLoopback, fake_resolve
from watcher.promotions.jobs import fetch_all

_MISSING = render_unavailable()
if _MISSING is not None:
    pytest.skip(
        f"no browser to render with: {_MISSING} (pip install playwright; apt-get install chromium)",
        allow_module_level=True,
    )

T = TypeVar("T")
TODAY = date(2026, 11, 25)
SETTINGS = RenderSettings(timeout=10.0, settle=2.0)
PUBLIC = "promo.example"  # public in fake_resolve's DNS; Chromium maps it to 127.0.0.1
MAP_TO_LOOPBACK = "--host-resolver-rules=MAP *.example 127.0.0.1"

DRAWN = """<!doctype html><html><head><title>Акции</title></head><body>
<main id="list">loading...</main>
<script>
fetch('/api/promotions')
  .then(r => r.json())
  .then(items => {
    document.getElementById('list').innerHTML = items.map(i =>
      `<div class="card"><h2>${i.title}</h2><a href="${i.href}">more</a>` +
      `<span class="price">${i.price}</span></div>`).join('');
  });
</script></body></html>"""
ITEMS = [
    {"title": "Безлимит на месяц", "href": "/promo/unlimited", "price": "1990 ₸"},
    {"title": "eSIM в подарок", "href": "/promo/esim", "price": "0 ₸"},
]
CARDS = Source(
    id="drawn",
    url="http://127.0.0.1/offers",
    kind="html",
    items="div.card",
    fields={"title": "h2", "link": "a@href", "price": ".price"},
    render="browser",
)


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site(Gauge()).start()
    yield served
    served.stop()


def html(text: str) -> Reply:
    return Reply(body=text.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


def json_reply(value: Any) -> Reply:
    return Reply(body=json.dumps(value).encode(), headers={"Content-Type": "application/json"})


def serve_drawn(site: Site, path: str = "/offers") -> None:
    site.route(path, html(DRAWN))
    site.route("/api/promotions", json_reply(ITEMS))


def run(
    job: Callable[[Renderer], Awaitable[T]],
    settings: RenderSettings = SETTINGS,
    *,
    site: Site | None = None,
    resolve: Resolve = fake_resolve,
    **fetch: Any,
) -> T:
    """Run ``job`` with a fresh Renderer (and its Fetcher) on a fresh loop.

    With ``site``, the internet is played: every name is sent to the site, and the
    fake DNS decides which names are public.
    """

    async def main() -> T:
        client = httpx.AsyncClient(transport=ToLoopback(site)) if site is not None else None
        args = [MAP_TO_LOOPBACK] if site is not None else []
        fetch_settings = dataclasses.replace(BASE, **fetch)
        try:
            async with (
                Fetcher(fetch_settings, client=client, resolve=resolve) as fetcher,
                Renderer(
                    settings, fetcher=fetcher, browser_args=args, dial=to_site(site)
                ) as renderer,
            ):
                return await job(renderer)
        finally:
            if client is not None:
                await client.aclose()

    return asyncio.run(main())


DIALED: list[str] = []  # the addresses the guarding proxy connected to, in order


def to_site(site: Site | None) -> Dial:
    """The proxy's dial, playing the internet: any address is the site on loopback."""

    async def dial(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        DIALED.append(address)
        if site is None:
            return await asyncio.open_connection(address, port)
        return await asyncio.open_connection("127.0.0.1", site.port)

    return dial


def render(url: str, settings: RenderSettings = SETTINGS) -> str:
    page = run(lambda r: r.render(url), settings)
    assert page.text is not None
    return page.text


# -- pages drawn by scripts -----------------------------------------------------------


def test_a_list_drawn_from_json_by_a_script_is_in_the_rendered_page(site: Site) -> None:
    serve_drawn(site)

    page = run(lambda r: r.render(site.url("/offers")))
    fetched = asyncio.run(_fetch(site.url("/offers")))

    assert (page.status, page.url, page.content_type) == (200, site.url("/offers"), "text/html")
    assert page.validators.etag is None and page.validators.last_modified is None
    assert page.text is not None and "Безлимит на месяц" in page.text
    found = extract(CARDS, page.text, page.url, TODAY)
    assert [p.title for p in found] == ["Безлимит на месяц", "eSIM в подарок"]
    assert found[0].link == site.url("/promo/unlimited")
    assert found[0].price is not None and int(found[0].price) == 1990
    # What the plain fetcher gets: the page before its scripts ran.
    assert fetched.text is not None and "Безлимит" not in fetched.text
    assert extract(CARDS, fetched.text, fetched.url, TODAY) == []


async def _fetch(url: str) -> Any:
    async with Fetcher(BASE) as fetcher:
        return await fetcher.fetch(url)


def test_fetch_all_hands_browser_sources_to_the_renderer(site: Site) -> None:
    serve_drawn(site)
    profile = Profile(dataclasses.replace(CARDS, url=site.url("/offers")))

    async def job(renderer: Renderer) -> Any:
        async with Fetcher(BASE) as fetcher:
            return await fetch_all([profile], fetcher, TODAY, renderer=renderer)

    (result,) = run(job)

    assert result.error is None
    assert [p.title for p in result.promotions] == ["Безлимит на месяц", "eSIM в подарок"]
    assert result.validators is not None and result.validators.etag is None


def test_images_fonts_media_and_stylesheets_are_never_requested(site: Site) -> None:
    site.route(
        "/offers",
        html(
            "<html><head><link rel=stylesheet href=/style.css>"
            "<style>@font-face{font-family:F;src:url(/font.woff2)} p{font-family:F}</style>"
            "</head><body><p>акция</p><img src=/banner.png>"
            "<video src=/clip.mp4 autoplay muted></video>"
            "<div style='background:url(/bg.jpg)'>x</div></body></html>"
        ),
    )

    text = render(site.url("/offers"))

    assert "акция" in text
    for path in ("/style.css", "/font.woff2", "/banner.png", "/clip.mp4", "/bg.jpg"):
        assert site.count(path) == 0, path


def test_a_rendered_page_over_the_cap_is_too_large(site: Site) -> None:
    site.route(
        "/offers", html("<body><script>document.body.textContent='x'.repeat(300000)</script>")
    )

    with pytest.raises(FetchTooLarge, match="the cap is 100000"):
        render(site.url("/offers"), dataclasses.replace(SETTINGS, max_bytes=100_000))


# -- bounds: time, processes, pages ---------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        # A script in <head> that never arrives: the page never loads.
        "<html><head><script src=/stall.js></script></head><body>x</body></html>",
        # A script that never ends.
        "<html><body><script>while (true) {}</script></body></html>",
    ],
    ids=["stalled-script", "endless-loop"],
)
def test_a_page_that_never_finishes_times_out_and_the_next_one_renders(
    site: Site, page: str
) -> None:
    site.route("/stuck", html(page))
    site.route("/stall.js", Reply(delay=60, body=b"", headers={"Content-Type": "text/javascript"}))
    serve_drawn(site)
    settings = dataclasses.replace(SETTINGS, timeout=2.0)

    async def job(renderer: Renderer) -> tuple[float, str | None]:
        started = time.monotonic()
        with pytest.raises(FetchTimeout, match="longer than 2 s"):
            await renderer.render(site.url("/stuck"))
        took = time.monotonic() - started
        after = await renderer.render(site.url("/offers"))
        return took, after.text

    took, after = run(job, settings)

    assert took < 2.0 + 3.0  # the bound, a launch and the page's close
    assert after is not None and "eSIM в подарок" in after


def test_a_browser_that_stops_answering_is_killed_and_replaced(site: Site) -> None:
    serve_drawn(site)
    settings = dataclasses.replace(SETTINGS, timeout=2.0)

    async def job(renderer: Renderer) -> tuple[int, int | None, int | None, str | None]:
        await renderer.render(site.url("/offers"))
        frozen = renderer.browser_pid
        assert frozen is not None
        os.killpg(frozen, signal.SIGSTOP)  # alive, but answers nothing
        with pytest.raises(FetchTimeout):
            await renderer.render(site.url("/offers"))
        gone = renderer.browser_pid
        page = await renderer.render(site.url("/offers"))
        return renderer.launches, gone, _state(frozen), page.text

    launches, gone, frozen_state, text = run(job, settings)

    assert gone is None  # killed when it did not answer
    assert frozen_state is None  # and really gone (reaped)
    assert launches == 2
    assert text is not None and "eSIM в подарок" in text


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_one_browser_serves_every_page_and_is_gone_after_close(site: Site) -> None:
    serve_drawn(site)
    site.route("/other", html("<p>other</p>"))

    async def job(renderer: Renderer) -> tuple[int, set[int | None]]:
        pids = set()
        for path in ("/offers", "/other", "/offers"):
            await renderer.render(site.url(path))
            pids.add(renderer.browser_pid)
        return renderer.launches, pids

    launches, pids = run(job)

    assert launches == 1
    assert len(pids) == 1
    (pid,) = pids
    assert pid is not None and _state(pid) is None  # closed with the renderer


def test_no_browser_is_started_until_a_page_is_rendered() -> None:
    launches = run(lambda r: _launches(r))

    assert launches == 0


async def _launches(renderer: Renderer) -> int:
    return renderer.launches


def test_two_pages_on_one_host_are_rendered_one_after_the_other(site: Site) -> None:
    for path in ("/a", "/b"):
        site.route(
            path, Reply(body=b"<p>page</p>", headers={"Content-Type": "text/html"}, delay=0.5)
        )

    async def job(renderer: Renderer) -> None:
        await asyncio.gather(renderer.render(site.url("/a")), renderer.render(site.url("/b")))

    run(job)

    assert (site.count("/a"), site.count("/b")) == (1, 1)
    assert site.gauge.peak == 1


# -- robots.txt and the private-network rule ------------------------------------------


def test_robots_txt_forbidding_the_page_stops_it_before_any_request(site: Site) -> None:
    site.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /offers\n"))
    serve_drawn(site)

    async def job(renderer: Renderer) -> int:
        with pytest.raises(FetchForbidden, match=r"robots\.txt disallows it"):
            await renderer.render(site.url("/offers"))
        return renderer.launches

    assert run(job) == 0  # no browser needed to say no
    assert site.count("/offers") == 0


SNOOP = """<html><body><main id="out">waiting</main><script>
const tries = [
  'http://127.0.0.1:{port}/secret',            // loopback by address
  'http://metadata.example:{port}/secret',     // a name for 169.254.169.254
  'http://intranet.example:{port}/secret',     // a name for 10.1.2.3
  '/bounce',                                   // public, but redirects to loopback
];
Promise.allSettled(tries.map(u => fetch(u, {{mode: 'no-cors'}})))
  .then(() => fetch('/api/promotions'))
  .then(r => r.json())
  .then(items => {{ document.getElementById('out').textContent = items[0].title; }});
const img = new Image(); img.src = 'http://192.168.0.1:{port}/secret';
</script></body></html>"""


def test_a_public_pages_scripts_cannot_reach_private_addresses(site: Site) -> None:
    site.route("/offers", html(SNOOP.format(port=site.port)))
    site.route("/bounce", Reply(302, headers={"Location": f"http://127.0.0.1:{site.port}/secret"}))
    site.route("/api/promotions", json_reply(ITEMS))
    site.route("/secret", html("the router's admin page"))

    page = run(lambda r: r.render(f"http://{PUBLIC}:{site.port}/offers"), site=site)

    assert page.text is not None and "Безлимит на месяц" in page.text  # the script ran
    assert site.count("/bounce") == 1
    assert site.count("/secret") == 0


def test_a_public_page_cannot_redirect_into_a_private_network(site: Site) -> None:
    site.route("/offers", Reply(302, headers={"Location": f"http://127.0.0.1:{site.port}/secret"}))
    site.route("/secret", html("the router's admin page"))

    with pytest.raises(FetchRedirect, match="a private address"):
        run(lambda r: r.render(f"http://{PUBLIC}:{site.port}/offers"), site=site)

    assert site.count("/offers") == 1
    assert site.count("/secret") == 0


def test_a_page_on_a_private_address_may_use_private_addresses(site: Site) -> None:
    # The user pointed this source at their own network: that is their choice.
    site.route("/offers", html(SNOOP.format(port=site.port)))
    site.route("/bounce", Reply(302, headers={"Location": f"http://127.0.0.1:{site.port}/secret"}))
    site.route("/api/promotions", json_reply(ITEMS))
    site.route("/secret", html("lan page"))

    page = run(lambda r: r.render(site.url("/offers")), site=site)

    assert page.text is not None and "Безлимит на месяц" in page.text
    assert site.count("/secret") >= 2  # by address and through the redirect


REBIND = """<html><body><main id=out>waiting</main><script>
const base = 'http://rebind.example:{port}';
fetch(base + '/first', {{mode: 'no-cors'}})
  .finally(() => fetch(base + '/secret', {{mode: 'no-cors'}}))
  .finally(() => {{ document.getElementById('out').textContent = 'done'; }});
</script></body></html>"""


def test_a_name_that_turns_private_after_the_check_is_not_reached(site: Site) -> None:
    # DNS rebinding: public when the page's request is judged, loopback a moment later.
    # The browser never looks the name up itself: the guarding proxy does, and connects
    # to the very address it judged.
    answers = {"rebind.example": [["93.184.215.99"], ["127.0.0.1"]]}
    DIALED.clear()

    async def rebinding(host: str, port: int) -> list[str]:
        if host in answers:
            queue = answers[host]
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return await fake_resolve(host, port)

    site.route("/offers", html(REBIND.format(port=site.port)))
    site.route("/secret", html("the router's admin page"))

    page = run(
        lambda r: r.render(f"http://{PUBLIC}:{site.port}/offers"), site=site, resolve=rebinding
    )

    assert page.text is not None and "done" in page.text  # both requests were made
    assert site.count("/secret") == 0
    assert "127.0.0.1" not in DIALED


FRAMED = """<html><body><h1>Offers</h1>
<iframe src="http://frames.example:{port}/frame"></iframe></body></html>"""


def test_a_cross_site_frame_cannot_redirect_into_a_private_network(site: Site) -> None:
    # Routes see a frame's first URL only, and the page's DevTools session does not see
    # another site's frame: the proxy sees the redirect's connection.
    async def with_frames(host: str, port: int) -> list[str]:
        if host == "frames.example":
            return ["151.101.1.99"]
        return await fake_resolve(host, port)

    site.route("/offers", html(FRAMED.format(port=site.port)))
    site.route(
        "/frame", Reply(302, headers={"Location": f"http://intranet.example:{site.port}/secret"})
    )
    site.route("/secret", html("the router's admin page"))

    run(lambda r: r.render(f"http://{PUBLIC}:{site.port}/offers"), site=site, resolve=with_frames)

    assert site.count("/frame") == 1
    assert site.count("/secret") == 0


WORKER = """fetch('http://frames.example:{port}/bounce', {{mode: 'no-cors'}})
  .finally(() => postMessage('done'));"""


def test_a_workers_request_cannot_redirect_into_a_private_network(site: Site) -> None:
    async def with_frames(host: str, port: int) -> list[str]:
        if host == "frames.example":
            return ["151.101.1.99"]
        return await fake_resolve(host, port)

    site.route(
        "/offers",
        html(
            "<html><body><main id=out>waiting</main><script>"
            "const w = new Worker('/worker.js');"
            "w.onmessage = () => { document.getElementById('out').textContent = 'done'; };"
            "</script></body></html>"
        ),
    )
    site.route(
        "/worker.js",
        Reply(
            body=WORKER.format(port=site.port).encode(),
            headers={"Content-Type": "text/javascript"},
        ),
    )
    site.route(
        "/bounce", Reply(302, headers={"Location": f"http://intranet.example:{site.port}/secret"})
    )
    site.route("/secret", html("the router's admin page"))

    page = run(
        lambda r: r.render(f"http://{PUBLIC}:{site.port}/offers"), site=site, resolve=with_frames
    )

    assert page.text is not None and "done" in page.text
    assert site.count("/bounce") == 1
    assert site.count("/secret") == 0


def test_no_page_reaches_cloud_metadata_not_even_one_on_a_private_address(site: Site) -> None:
    creds = """<html><body><main id="out">waiting</main><script>
Promise.allSettled(['metadata.example', 'nat64.example', 'aws-v6.example'].map(
  h => fetch(`http://${{h}}:{port}/creds`, {{mode: 'no-cors'}})))
  .then(() => {{ document.getElementById('out').textContent = 'done'; }});
</script></body></html>"""
    site.route("/offers", html(creds.format(port=site.port)))
    site.route("/creds", html("iam credentials"))

    page = run(lambda r: r.render(site.url("/offers")), site=site)

    assert page.text is not None and "done" in page.text
    assert site.count("/creds") == 0
    with pytest.raises(FetchForbidden, match="a cloud metadata address"):
        run(lambda r: r.render(f"http://metadata.example:{site.port}/creds"), site=site)
    assert site.count("/creds") == 0
    assert site.count("/robots.txt") == 1  # the private page's; none from metadata


def test_non_http_requests_are_refused(site: Site, tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    site.route(
        "/offers",
        html(
            f"<html><body><main id=out>none</main><iframe src='file://{secret}'></iframe>"
            f"<script>fetch('file://{secret}').then(r => r.text())"
            ".then(t => document.getElementById('out').textContent = t)</script></body></html>"
        ),
    )

    text = render(site.url("/offers"))

    assert "password" not in text


def test_the_corpus_page_drawn_by_scripts_is_read_by_auto_once_rendered(site: Site) -> None:
    # The independent corpus's script-drawn page: nothing from its HTML, its titles once
    # a browser has run its fetch() of /api/promos.json.
    from pathlib import Path

    import yaml

    corpus = Path(__file__).parent.parent / "fixtures" / "auto"
    entry = next(
        e
        for e in yaml.safe_load((corpus / "corpus.yaml").read_text(encoding="utf-8"))
        if e["file"] == "script_drawn_ru.html"
    )
    site.route("/ru/offers/", html((corpus / entry["file"]).read_text(encoding="utf-8")))
    site.route("/api/promos.json", json_reply(json.loads((corpus / entry["data"]).read_text())))
    auto = Source(id="drawn", url=site.url("/ru/offers/"), kind="auto", render="browser")

    page = run(lambda r: r.render(auto.url))
    assert page.text is not None
    assert [p.title for p in extract(auto, page.text, page.url, TODAY)] == entry["titles"]


def test_the_renderer_keeps_the_fetchers_gap_between_requests_to_a_host(site: Site) -> None:
    for path in ("/a", "/b"):
        site.route(path, html("<p>page</p>"))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the gap is asked for, not slept
        waits.append(seconds)

    async def main() -> None:
        settings = dataclasses.replace(BASE, min_gap=30.0)
        async with (
            Fetcher(settings, sleep=sleep) as fetcher,
            Renderer(SETTINGS, fetcher=fetcher) as renderer,
        ):
            await renderer.render(site.url("/a"))
            await renderer.render(site.url("/b"))

    asyncio.run(main())
    # robots.txt, then /a, then /b: each waits for the gap after the one before.
    assert len(waits) >= 2
    assert all(25.0 < wait <= 30.0 for wait in waits)


def test_the_browser_uses_the_proxy_variables_the_fetcher_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.lan")
    fetcher = Fetcher(BASE)  # trust_env=False: the variables are not for it
    assert "proxy" not in Renderer(SETTINGS, fetcher=fetcher)._context_options()
    trusting = Fetcher(dataclasses.replace(BASE, trust_env=True))
    proxy = Renderer(SETTINGS, fetcher=trusting)._context_options()["proxy"]
    assert proxy == {
        "server": "http://proxy.internal:3128",
        "username": "user",
        "password": "pw",
        "bypass": "localhost,.lan",
    }
    configured = Fetcher(dataclasses.replace(BASE, trust_env=True, proxy="http://p.cfg:8080"))
    assert Renderer(SETTINGS, fetcher=configured)._context_options()["proxy"] == {
        "server": "http://p.cfg:8080"
    }
