"""Logs carry no secret and lose no ordinary word.

The HTTP libraries log each request's whole URL, query included; the scrubber hides
what channel URLs register as secret, and only that.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import WriteConfig
from tests.servers import PromoSite
from watcher.masking import guard_logs, hide_in_logs

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "SUPERSECRETKEY1"
OPAQUE = "Qx7pLm2Zr9"  # a secret under a name that says nothing


@pytest.fixture
def site() -> Iterator[PromoSite]:
    served = PromoSite()
    yield served
    served.stop()


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_source_urls_query_never_reaches_the_log(
    write_config: WriteConfig, tmp_path: Path, site: PromoSite, level: str
) -> None:
    config = write_config(
        f"""
        timezone: Asia/Almaty
        database: sqlite:///{tmp_path / "watcher.db"}
        scraping: {{respect_robots: false}}
        sources:
          - id: shop
            operator: kcell
            url: "{site.url}?apikey={API_KEY}&v={OPAQUE}"
            items: ".card"
            fields: {{title: "h2", link: "a@href"}}
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WATCHER_LOG_LEVEL": level}
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "scrape", "shop", "--dry-run", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    # The page was really requested, query and all (the test server answers 404 to it).
    assert "scrapers._fetch: GET 127.0.0.1" in done.stderr, done.stderr
    assert API_KEY not in done.stderr and OPAQUE not in done.stderr
    assert API_KEY not in done.stdout and OPAQUE not in done.stdout
    # At INFO the fetcher's own line stands for the request; at DEBUG httpx's is there
    # too, without its query.
    assert ("HTTP Request" in done.stderr) == (level == "DEBUG")


def test_httpx_request_lines_lose_their_query(
    site: PromoSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # an earlier CLI run may have quieted it
    guard_logs()
    httpx.get(f"{site.url}?apikey={API_KEY}&v={OPAQUE}")
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any(f"{site.url}?…" in line for line in lines), lines
    assert not any(API_KEY in line or OPAQUE in line for line in lines)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logged(channel_urls: list[str], message: str) -> str:
    """``message`` as it comes out of the log once these channel URLs were loaded."""
    root = logging.getLogger()
    keep = _Keep()
    root.addHandler(keep)
    try:
        hide_in_logs(channel_urls)
        logging.getLogger("watcher.test").warning("%s", message)
    finally:
        root.removeHandler(keep)
        hide_in_logs([])
    return keep.lines[0]


def test_an_ordinary_word_from_a_channel_path_stays_in_the_log() -> None:
    urls = ["json://127.0.0.1:8080/closed", "ntfys://ntfy.sh/promotions?format=markdown"]
    line = "promotion closed after 3 days; promotions sent as markdown"
    assert _logged(urls, line) == line


def test_real_tokens_from_a_channel_are_still_hidden() -> None:
    urls = [
        "json://127.0.0.1:8080/hooks/Ab3dE5fG7hJ9kL1mN0pQ",
        "tgram://123456789:AAbbccddeeffgghhiijjkkllmmnnooppqqr/987654321",
        "mailtos://user:hunter2pw@smtp.example.com",
        "ntfys://ntfy.sh/my-private-topic-42",
    ]
    line = (
        "closed: Ab3dE5fG7hJ9kL1mN0pQ refused, bot AAbbccddeeffgghhiijjkkllmmnnooppqqr, "
        "password hunter2pw, topic my-private-topic-42"
    )
    assert _logged(urls, line) == "closed: *** refused, bot ***, password ***, topic ***"


words = st.from_regex(r"[a-z]{6,14}|[A-Z][a-z]{5,13}", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9_\-]{12,40}", fullmatch=True).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)


@settings(max_examples=150, deadline=None)
@given(word=words, token=tokens, scheme=st.sampled_from(["json", "jsons", "ntfys", "form"]))
def test_words_in_channel_paths_survive_and_tokens_do_not(
    word: str, token: str, scheme: str
) -> None:
    url = f"{scheme}://127.0.0.1:8080/{word}/{token}?format={word}"
    line = _logged([url], f"the {word} offer, key {token}")
    assert line == f"the {word} offer, key ***"


def test_a_badly_formatted_record_passes_the_filters_for_logging_to_report() -> None:
    root = logging.getLogger()
    keep = _Keep()
    root.addHandler(keep)
    try:
        guard_logs()
        assert keep.filters  # the scrubber is on every root handler
        bad = logging.LogRecord("somelib", logging.WARNING, __file__, 1, "%s and %s", ("x",), None)
        assert keep.filter(bad)  # no exception from the filters: emit reports it as usual
        assert logging.getLogger("httpx").filter(bad)
    finally:
        root.removeHandler(keep)
