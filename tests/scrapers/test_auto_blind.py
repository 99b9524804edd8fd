"""The blind auto-detection set (tests/fixtures/auto_blind/corpus.yaml), read with ``kind: auto``.

A second, separate corpus beside tests/fixtures/auto/: ten pages written without reading
the detectors and without running them on these pages while they were written (carousel
clones, <dl> offers, <section> landings, data-*-and-<span> React cards, a bank's partner
offers, an OfferCatalog, an app-state ``blocks`` array, a Kazakh news list, a
featured-plus-three layout and a FAQ page with no promotions).

This set is measured, not tuned against. Its recall floor (MIN_RECALL = 0.80) is lower
than the main corpus's on purpose: it is a floor for pages the detectors have never been
fitted to, and the numbers printed with ``-s`` are the honest measure of how auto reads
an unseen page. Nobody may change the detectors to fit these pages without adding new
blind pages (written, like these, without looking at the detectors); otherwise the set
stops being blind and measures nothing.

Pages come in batches (``batch`` in corpus.yaml). Batch 1 was blind when first run
(recall 0.804, precision 0.860); its misses were then studied and the detectors changed
(title marks in data-* attributes, the innermost title element, carousel state classes,
lists side by side), so batch 1 is now *seen*: it stays as a regression set. Batch 2
(twelve pages, written after those changes by someone who had not read the detectors)
measured recall 0.984 (61/62), precision 0.884 (61/69) on its first run: its one page
without promotions, a list of service centres (tagged "eSIM"), was taken for offers.
Contact cards (a phone link, or opening hours at an address) are now held down like
document lists, which makes batch 2 seen too (precision 1.000 after). The next batch
written blind is the next honest measure; recall and precision are printed per batch
and over all.

Asserted: no ``never`` text (menu, pager, cookie banner, "Подробнее"...) is ever taken as
a title; a page without promotions gives nothing; overall recall is at least the floor.
Precision is printed beside recall. The fixture checks at the end keep the set honest:
every expected title and every trap is really on its page.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from scrapers import ExtractError, Source, extract, normalise_space

BLIND = Path(__file__).parent.parent / "fixtures" / "auto_blind"
CORPUS: list[dict[str, Any]] = yaml.safe_load((BLIND / "corpus.yaml").read_text(encoding="utf-8"))
PAGES = {entry["file"]: entry for entry in CORPUS}
TODAY = date(2026, 12, 3)
MIN_RECALL = 0.80  # a floor for a blind set, not a target to tune towards
SEEN_BATCHES = 2  # batches whose misses have been studied: no longer blind


def batch(entry: dict[str, Any]) -> int:
    return int(entry.get("batch", 1))


KINDS = ("feed", "jsonld", "state", "dom", "none")
LANGUAGES = ("ru", "kk", "en")


# Known misses, found by the first (and only) blind run and left unfixed so the set stays
# blind: strict, so a detector change that fixes one fails here until it is removed.
KNOWN_TRAPS_TAKEN = {
    "sections_longform_kk.html": "a help box shaped like the promotion sections is taken",
}


def entries(predicate: Any = None, known: dict[str, str] | None = None) -> list[Any]:
    """Corpus entries as pytest params named by file, optionally filtered; ``known``
    misses are marked as expected failures, strictly."""
    return [
        pytest.param(
            entry,
            id=entry["file"],
            marks=[pytest.mark.xfail(strict=True, reason=known[entry["file"]])]
            if known and entry["file"] in known
            else [],
        )
        for entry in CORPUS
        if predicate is None or predicate(entry)
    ]


def read(name: str) -> str:
    return (BLIND / name).read_text(encoding="utf-8")


def same(text: str) -> str:
    """The comparison form of a title: whitespace-normalised and casefolded."""
    return normalise_space(text).casefold()


# --- running the detectors ------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What ``kind: auto`` took from one blind page."""

    titles: list[str]
    error: str | None = None


@cache
def run(file: str) -> Outcome:
    entry = PAGES[file]
    text, url = read(file), entry["url"]
    if "feed" in entry:
        text, url = read(entry["feed"]), entry["feed_url"]
    source = Source(id="blind", url=url, kind="auto")
    try:
        promotions = extract(source, text, url, TODAY)
    except ExtractError as exc:
        return Outcome([], error=str(exc))
    return Outcome([promotion.title for promotion in promotions])


@dataclass(frozen=True)
class Score:
    """One page's titles against its expectations."""

    file: str
    expected: list[str]
    found: list[str]
    missed: list[str]
    extra: list[str]
    error: str | None

    @property
    def correct(self) -> int:
        return len(self.found) - len(self.extra)


def score(entry: dict[str, Any]) -> Score:
    outcome = run(entry["file"])
    expected = [] if entry["needs_browser"] else list(entry["titles"])
    unmatched = Counter(same(title) for title in expected)
    extra = []
    for title in outcome.titles:
        if unmatched[same(title)] > 0:
            unmatched[same(title)] -= 1
        else:
            extra.append(title)
    missed = [title for title in expected if unmatched[same(title)] > 0]
    for title in missed:
        unmatched[same(title)] -= 1
    return Score(entry["file"], expected, outcome.titles, missed, extra, outcome.error)


def table(scores: list[Score]) -> str:
    width = max(len(s.file) for s in scores)
    lines = [f"{'page':<{width}}  {'kind':<6} {'exp':>4} {'found':>5} {'missed':>6} {'extra':>5}"]
    for s in scores:
        kind = PAGES[s.file]["kind_expected"]
        lines.append(
            f"{s.file:<{width}}  {kind:<6} {len(s.expected):>4} {len(s.found):>5}"
            f" {len(s.missed):>6} {len(s.extra):>5}"
        )
        lines.extend(f"    missed: {title}" for title in s.missed)
        lines.extend(f"    extra:  {title}" for title in s.extra)
        if s.error:
            lines.append(f"    error:  {s.error}")
    return "\n".join(lines)


# --- the detectors against the blind set ----------------------------------------------


@pytest.mark.parametrize("entry", entries(known=KNOWN_TRAPS_TAKEN))
def test_no_trap_text_ever_comes_out_as_a_title(entry: dict[str, Any]) -> None:
    traps = {same(text) for text in entry["never"]}
    taken = [title for title in run(entry["file"]).titles if same(title) in traps]
    assert taken == [], f"{entry['file']}: menu/chrome text taken as promotions: {taken}"


@pytest.mark.parametrize("entry", entries(lambda entry: not entry["titles"]))
def test_page_without_promotions_yields_nothing(entry: dict[str, Any]) -> None:
    assert run(entry["file"]).titles == []


def measure(scores: list[Score]) -> tuple[float, str]:
    expected = sum(len(s.expected) for s in scores)
    found = sum(len(s.found) for s in scores)
    correct = sum(s.correct for s in scores)
    recall = correct / expected if expected else 1.0
    precision = correct / found if found else 1.0
    return recall, (
        f"recall {recall:.3f} ({correct}/{expected}), "
        f"precision {precision:.3f} ({correct}/{found}) over {len(scores)} pages"
    )


def test_blind_recall_and_precision() -> None:
    scores = [score(entry) for entry in CORPUS]
    print()
    print(table(scores))
    newest = max(batch(entry) for entry in CORPUS)
    for number in sorted({batch(entry) for entry in CORPUS}):
        state = "blind" if number == newest and number > SEEN_BATCHES else "seen"
        part = [s for s in scores if batch(PAGES[s.file]) == number]
        print(f"batch {number} ({state}): {measure(part)[1]}")
    recall, totals = measure(scores)
    print(f"all: {totals}")
    assert recall >= MIN_RECALL, f"{totals}; the blind floor is {MIN_RECALL}"
    newest_recall, newest_totals = measure([s for s in scores if batch(PAGES[s.file]) == newest])
    assert newest_recall >= MIN_RECALL, f"batch {newest}: {newest_totals}"


# --- the blind set itself -------------------------------------------------------------


def searchable(text: str) -> tuple[str, str]:
    """A page's text two ways, whitespace-normalised and casefolded: its markup with
    entities decoded (attribute and JSON text count), and with the tags stripped."""
    raw = html.unescape(html.unescape(text))
    stripped = text.replace("<![CDATA[", " ").replace("]]>", " ")
    stripped = re.sub(r"<[^>]*>", " ", stripped)
    stripped = re.sub(r"<[^>]*>", " ", html.unescape(stripped))
    stripped = html.unescape(stripped)
    return same(raw), same(stripped)


def appears(text: str, haystacks: tuple[str, ...]) -> bool:
    return any(same(text) in haystack for haystack in haystacks)


def test_blind_set_is_separate_and_varied() -> None:
    files = [entry["file"] for entry in CORPUS]
    assert len(files) == len(set(files)), "a page is listed twice"
    assert len(CORPUS) >= 10
    main = Path(__file__).parent.parent / "fixtures" / "auto"
    assert not set(files) & {path.name for path in main.iterdir()}, "not a separate set"
    assert {entry["language"] for entry in CORPUS} == set(LANGUAGES)
    assert {"dom", "state", "jsonld", "none"} <= {entry["kind_expected"] for entry in CORPUS}


@pytest.mark.parametrize("entry", entries())
def test_blind_entry_is_well_formed(entry: dict[str, Any]) -> None:
    allowed = {"file", "url", "language", "kind_expected", "titles", "needs_browser", "never"}
    allowed |= {"feed", "feed_url", "data", "batch"}
    assert set(entry) - allowed == set(), "unknown keys (a typo?)"
    assert entry["url"].startswith("https://")
    assert entry["language"] in LANGUAGES
    assert entry["kind_expected"] in KINDS
    assert isinstance(entry["needs_browser"], bool)
    assert all(isinstance(title, str) and title for title in entry["titles"])
    assert all(isinstance(text, str) and text for text in entry["never"])
    assert entry["never"], "every page has traps"
    assert [normalise_space(title) for title in entry["titles"]] == entry["titles"]
    assert len({same(title) for title in entry["titles"]}) == len(entry["titles"])
    assert (entry["kind_expected"] == "none") == (not entry["titles"])
    titles = {same(title) for title in entry["titles"]}
    assert not titles & {same(text) for text in entry["never"]}, "a title is also a trap"


@pytest.mark.parametrize("entry", entries())
def test_blind_files_exist_and_are_utf8(entry: dict[str, Any]) -> None:
    for name in (entry["file"], entry.get("feed"), entry.get("data")):
        if name is not None:
            assert (BLIND / name).is_file(), f"{name} is missing"
            (BLIND / name).read_bytes().decode("utf-8")  # strict: raises on a bad byte


@pytest.mark.parametrize("entry", entries())
def test_every_trap_is_really_on_the_page(entry: dict[str, Any]) -> None:
    texts = searchable(read(entry["file"]))
    if "feed" in entry:
        texts += searchable(read(entry["feed"]))
    absent = [text for text in entry["never"] if not appears(text, texts)]
    assert absent == [], f"{entry['file']}: 'never' texts not on the page: {absent}"


@pytest.mark.parametrize("entry", entries())
def test_every_expected_title_is_really_on_the_page(entry: dict[str, Any]) -> None:
    source = entry.get("feed") or entry.get("data") or entry["file"]
    texts = searchable(read(source))
    absent = [title for title in entry["titles"] if not appears(title, texts)]
    assert absent == [], f"{source}: expected titles not in it: {absent}"


EMBEDDED_JSON = re.compile(
    r'<script[^>]*type="application/(?:ld\+)?json"[^>]*>(.*?)</script>', re.S
)
STATE_ASSIGNMENT = re.compile(r"window\.__\w+__\s*=\s*(\{.*?\});?\s*</script>", re.S)


@pytest.mark.parametrize("entry", entries(lambda entry: entry["file"].endswith(".html")))
def test_embedded_json_on_the_page_parses(entry: dict[str, Any]) -> None:
    text = read(entry["file"])
    for block in EMBEDDED_JSON.findall(text) + STATE_ASSIGNMENT.findall(text):
        json.loads(block)
