"""Benchmark 5: a scrape cycle over 200 sources on loopback, per-host politeness on.

The sources are served by ThreadingHTTPServers in a separate process (run as
``python -m benchmarks.scrape_cycle serve --hosts N --per-host M``), one server per
"host": 127.0.0.2, 127.0.0.3, ... (Linux routes all of 127.0.0.0/8 to lo), or distinct
ports on 127.0.0.1 where those addresses cannot be bound. The fetcher keys politeness by
``host:port``, so either way each server is a host of its own. Every page is a ~50 KB
listing of 40 promotion cards (title, link, price, date); robots.txt answers 404.

- **Polite cycle**: ``asyncio.run(fetch_all(profiles, Fetcher(...), today))`` with
  ``min_gap`` 1 s and ``respect_robots`` on: hosts in parallel, one request at a time
  per host, 1 s apart. robots.txt is a request on the host too, so a host with M sources
  makes M + 1 requests and must wait at least M x ``min_gap``.
- **Baseline**: the same fetch + extract, one source after another, with ``min_gap`` 0
  and robots.txt not asked (no politeness at all), in the same run.

PASS when every source of the polite cycle is ok with all its promotions; the times and
their ratio are informational.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from benchmarks._common import NOW, Options, Result, ms

if TYPE_CHECKING:
    from scrapers import Profile
    from watcher.promotions.jobs import ScrapeResult

NAME = "scrape"
TITLE = "A scrape cycle over loopback sources (200; 40 quick), per-host politeness on"

FULL_HOSTS, QUICK_HOSTS = 20, 4
PER_HOST = 10
CARDS = 40
MIN_GAP = 1.0

_FILLER = (
    "Подключите тариф и получайте больше гигабайт, безлимитные мессенджеры и звонки "
    "на номера внутри сети без ограничений. Предложение действует для новых и "
    "действующих абонентов при подключении через приложение или в салоне связи. "
)


def build_page(host: int, source: int) -> bytes:
    """A ~50 KB listing of :data:`CARDS` promotion cards, deterministic per (host, source)."""
    cards: list[str] = []
    for card in range(CARDS):
        price = 1490 + 100 * ((host * 7 + source * 3 + card) % 40)
        day = 1 + card % 28
        cards.append(
            f'<article class="card promo-card">\n'
            f'  <img class="card__image" src="/img/{source}/{card}.jpg" alt="">\n'
            f'  <h3 class="card__title"><a href="/promo/{source}/offer-{card}">'
            f"Акция {card + 1}: тариф «Хост {host} — {source}» со скидкой</a></h3>\n"
            f'  <p class="card__text">{_FILLER * 2}</p>\n'
            f'  <span class="card__price">{price // 1000} {price % 1000:03d} ₸/мес</span>\n'
            f'  <time class="card__date">с {day} июня по {day} августа 2026 года</time>\n'
            f'  <a class="card__more" href="/promo/{source}/offer-{card}">Подробнее</a>\n'
            f"</article>"
        )
    page = (
        '<!DOCTYPE html>\n<html lang="ru"><head><meta charset="utf-8">'
        f"<title>Акции — хост {host}, раздел {source}</title>"
        "<style>.card{margin:1em}</style></head>\n<body>\n"
        '<header class="site-header"><nav><a href="/">Главная</a> <a href="/promo/">Акции</a>'
        "</nav></header>\n<main><h1>Акции и спецпредложения</h1>\n"
        '<section class="promo-list">\n' + "\n".join(cards) + "\n</section></main>\n"
        '<footer class="site-footer">© 2026 Оператор</footer>\n</body></html>\n'
    )
    return page.encode("utf-8")


def profile_for(host: int, source: int, address: str, port: int) -> Profile:
    from scrapers import Profile, Source

    return Profile(
        Source(
            id=f"bench-h{host:02d}-s{source:02d}",
            url=f"http://{address}:{port}/promo/{source}",
            items=".card",
            fields={
                "title": ".card__title",
                "link": ".card__title a@href",
                "price": ".card__price",
                "date": ".card__date",
            },
        )
    )


# --- the server process ----------------------------------------------------------------


def _make_server(host: int, per_host: int) -> ThreadingHTTPServer:
    pages = {f"/promo/{source}": build_page(host, source) for source in range(per_host)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path)
            status = 404 if page is None else 200
            body = page or b""
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 256
    try:
        server = ThreadingHTTPServer((f"127.0.0.{host + 2}", 0), Handler)
    except OSError:  # no 127.0.0.0/8 routing here: a port of its own on 127.0.0.1
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def serve(hosts: int, per_host: int) -> None:
    """Serve every host until terminated; print ``address port`` per host, then ``ready``."""
    servers = [_make_server(host, per_host) for host in range(hosts)]
    for server in servers:
        address, port = server.server_address[:2]
        print(address if isinstance(address, str) else address.decode(), port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


# --- the measurement ---------------------------------------------------------------------


def _start_servers(hosts: int) -> tuple[subprocess.Popen[str], list[tuple[str, int]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scrape_cycle", "serve", "--hosts", str(hosts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    where: list[tuple[str, int]] = []
    for line in process.stdout:
        if line.strip() == "ready":
            return process, where
        address, port = line.split()
        where.append((address, int(port)))
    process.kill()
    raise RuntimeError("the page server exited before it was ready")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_listening(where: list[tuple[str, int]]) -> None:
    for address, port in where:
        with socket.create_connection((address, port), timeout=5):
            pass


async def _polite(profiles: list[Profile], waits: list[float]) -> list[ScrapeResult]:
    from scrapers import Fetcher, FetchSettings
    from watcher.promotions.jobs import fetch_all

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    settings = FetchSettings(min_gap=MIN_GAP, respect_robots=True, trust_env=False)
    async with Fetcher(settings, sleep=sleep) as fetcher:
        return await fetch_all(profiles, fetcher, NOW.date())


async def _sequential(profiles: list[Profile]) -> list[ScrapeResult]:
    from scrapers import Fetcher, FetchSettings
    from watcher.promotions.jobs import fetch_all

    settings = FetchSettings(min_gap=0.0, respect_robots=False, trust_env=False)
    results: list[ScrapeResult] = []
    async with Fetcher(settings) as fetcher:
        for profile in profiles:
            results.extend(await fetch_all([profile], fetcher, NOW.date()))
    return results


def _complete(results: list[ScrapeResult]) -> tuple[int, int, list[str]]:
    """(ok sources, promotions, problems): ok means no error and all its cards read."""
    problems = [
        f"{r.profile.id}: {r.error or f'{len(r.promotions)} promotions'}"
        for r in results
        if r.status != "ok" or len(r.promotions) != CARDS
    ]
    return len(results) - len(problems), sum(len(r.promotions) for r in results), problems


def run(options: Options) -> Result:
    """Serve the sources, run the polite cycle, then the sequential baseline."""
    hosts = QUICK_HOSTS if options.quick else FULL_HOSTS
    process, where = _start_servers(hosts)
    try:
        _wait_listening(where)
        profiles = [
            profile_for(host, source, address, port)
            for source in range(PER_HOST)
            for host, (address, port) in enumerate(where)
        ]
        count = len(profiles)
        options.log(
            f"{count} sources on {hosts} hosts ({where[0][0]}:{where[0][1]} ...), "
            f"{len(build_page(0, 0)) / 1000:.0f} KB pages, {CARDS} cards each"
        )
        waits: list[float] = []
        started = time.perf_counter()
        polite = asyncio.run(_polite(profiles, waits))
        polite_s = time.perf_counter() - started
        options.log(f"polite cycle: {polite_s:.2f} s; now the sequential baseline")
        started = time.perf_counter()
        baseline = asyncio.run(_sequential(profiles))
        baseline_s = time.perf_counter() - started
    finally:
        _stop(process)

    ok, promotions, problems = _complete(polite)
    base_ok, base_promotions, _ = _complete(baseline)
    bound = PER_HOST * MIN_GAP  # robots.txt + PER_HOST pages: PER_HOST gaps per host
    passed = ok == count
    result = Result(NAME, TITLE)
    result.add("sources / hosts", f"{count} / {hosts} ({PER_HOST} per host)")
    result.add("polite cycle, end to end", f"{polite_s:.2f} s", f"{count} ok", passed)
    result.add("  sources/s", f"{count / polite_s:.1f}")
    result.add("  sources ok / promotions extracted", f"{ok} / {promotions:,}")
    result.add(
        "  politeness lower bound (per host: robots + pages, min_gap apart)",
        f"{bound:.1f} s",
    )
    result.add(
        "  mean politeness wait per host (summed sleeps / hosts)", f"{sum(waits) / hosts:.2f} s"
    )
    result.add("  beyond the bound (fetch + extract + scheduling)", ms(polite_s - bound))
    result.add("sequential, no politeness, end to end", f"{baseline_s:.2f} s")
    result.add("  sources/s", f"{count / baseline_s:.1f}")
    result.add("  sources ok / promotions extracted", f"{base_ok} / {base_promotions:,}")
    result.add("ratio polite / sequential", f"{polite_s / baseline_s:.2f}x")
    result.notes.append(
        f"The polite cycle waits at least {bound:.0f} s: each host serves robots.txt (404) "
        f"and {PER_HOST} pages one at a time, {MIN_GAP:.0f} s apart; the hosts run in "
        "parallel. The baseline fetches every page back to back on one client."
    )
    result.notes.extend(problems[:10])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape_cycle")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the sources until terminated")
    serve_parser.add_argument("--hosts", type=int, default=FULL_HOSTS)
    serve_parser.add_argument("--per-host", type=int, default=PER_HOST)
    args = parser.parse_args()
    serve(args.hosts, args.per_host)


if __name__ == "__main__":
    main()
