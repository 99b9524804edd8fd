"""Benchmark 6: the time to render one script-drawn page in headless Chromium.

The page is the corpus's script-drawn listing (``tests/fixtures/auto/script_drawn_ru.html``),
served from loopback with the JSON its script fetches. One Renderer (one browser) renders
it a number of times; the first render includes starting Chromium and is reported on its
own. The baseline is a plain HTTP fetch of the same page through the Fetcher, which
cannot see the drawn list: the ratio is what rendering costs over fetching. No target:
the issue asks for the figure. Skipped, saying why, where no browser can be had.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks._common import NOW, Options, Result, median, ms

NAME = "rendering"
TITLE = "Rendering a script-drawn page in headless Chromium"
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "auto"
FULL_ROUNDS = 10
QUICK_ROUNDS = 3


def _serve() -> ThreadingHTTPServer:
    pages = {
        "/ru/offers/": ("text/html", (CORPUS / "script_drawn_ru.html").read_bytes()),
        "/api/promos.json": ("application/json", (CORPUS / "api" / "promos.json").read_bytes()),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind, body = pages.get(self.path.split("?")[0], ("text/plain", b""))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(options: Options) -> Result:
    from scrapers import (
        Fetcher,
        FetchSettings,
        Renderer,
        RenderSettings,
        Source,
        extract,
        render_unavailable,
    )

    result = Result(NAME, TITLE)
    missing = render_unavailable()
    if missing is not None:
        result.add("rendering", f"skipped: {missing}")
        return result
    server = _serve()
    url = f"http://127.0.0.1:{server.server_address[1]}/ru/offers/"
    rounds = QUICK_ROUNDS if options.quick else FULL_ROUNDS
    source = Source(id="drawn", url=url, kind="auto", render="browser")
    settings = FetchSettings(min_gap=0.0, respect_robots=False)

    async def measure() -> tuple[float, list[float], list[float], int]:
        async with (
            Fetcher(settings) as fetcher,
            Renderer(RenderSettings(), fetcher=fetcher) as renderer,
        ):
            started = time.perf_counter()
            page = await renderer.render(url)
            first = time.perf_counter() - started
            found = len(extract(source, page.text or "", page.url, NOW.date()))
            renders, fetches = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                await renderer.render(url)
                renders.append(time.perf_counter() - started)
                started = time.perf_counter()
                await fetcher.fetch(url)
                fetches.append(time.perf_counter() - started)
            return first, renders, fetches, found

    try:
        first, renders, fetches, found = asyncio.run(measure())
    finally:
        server.shutdown()
        server.server_close()
    options.log(f"{rounds} renders, median {ms(median(renders))}")
    result.add("first render (starts Chromium)", ms(first))
    result.add("render, median", ms(median(renders)))
    result.add("plain fetch of the same page, median", ms(median(fetches)))
    result.add("ratio render / fetch", f"{median(renders) / median(fetches):.0f}x")
    result.add("promotions auto finds in the rendered page", str(found), "3", found == 3)
    result.notes.append(f"render rounds: {', '.join(ms(s) for s in renders)}")
    result.notes.append(
        "Most of a render is waiting for the page's network to go quiet (500 ms without a "
        "request), as a page drawn from a fetch() needs."
    )
    return result
