"""What changed between two scrapes of one source: a pure function over plain data.

``observe(source_id, state, result)`` takes what is remembered about a source and the
result of one scrape (its promotions, or the ScraperError that stopped it) and returns
the state to remember next, the changes subscribers may hear about and the events for
the admin channel. It reads no clock and stores nothing: the daemon persists
``Outcome.state`` and delivers the rest.

The rules (issue 3, "Change detection") and the choices made where it is silent:

- Identity is ``Promotion.key``; within one result the first item with a key wins.
  A card whose link was refused (``javascript:``, ``data:``...) or is missing has a
  title key instead of its link, so an item whose key is unknown is first matched by
  title against the known promotions missing from this scrape, unless both sides are
  keyed by a link (two links are two pages): among those with its title, the one with
  the same content, else the first. A match keeps the known key (and its link, if the
  page gave none), so one scrape with script links is neither five "new" now nor five
  "ended" later. ``Outcome.aliases`` says which page keys were read as which.
- A scrape is *good* when it yields at least one promotion. The first good scrape is
  the baseline: everything is remembered and nobody is alerted. An empty first scrape
  is no baseline: it is far more often a selector that matches nothing than a page
  without promotions, and a baseline taken then would turn the first real page into a
  flood of "new" once the selector is fixed.
- After the baseline an unknown key is ``new``; a known key whose title, dates, price
  or summary differ is ``changed`` (whitespace, case and Unicode form are noise); a key
  absent from ``ended_after`` consecutive good scrapes is ``ended``, once.
- An ended promotion that comes back is ``new`` again, with ``before`` set to what was
  last known. Operators re-run seasonal offers under the same link, and to a subscriber
  that is news whether or not the text changed: "changed" would stay silent when an
  offer returns word for word, and the default subscription is ``on: [new]``. It also
  lets the daemon forget ended promotions without changing any alert.
- A failed scrape counts as nothing: it never ends a promotion, never resets the
  baseline, never touches what is known. ``fail_after`` failures in a row send one
  "failing" event naming the error; the next scrape that fetches and reads the page
  sends "recovered" (only if "failing" was sent).
- Zero promotions from a source that had some last time is treated the same way
  (suspect, not evidence) but on its own counter, so the admin is told the right cause:
  ``fail_after`` such scrapes in a row send one "empty" ("layout changed?"), and the
  first scrape with items again sends "refilled". Failed scrapes in between neither
  extend nor break that streak (they say nothing about the layout); an empty scrape
  does end a failure streak, since the page was fetched and read. A source that never
  had items sends neither.
- A parser that learns to read a price or a date it could not read before must not
  alert anyone, so when only one side of a comparison was parsed, the texts decide.
- A page that balloons is held, not announced: more than ``hold_cap`` items when the
  source had no more than that, or more than ``hold_factor`` times its last count and
  over ``hold_margin`` more, is far more often a broken page (a selector matching every
  link, a template gone wrong, someone else's list) than that many new promotions. A
  held scrape counts as nothing, like a failed one: nobody is alerted, the baseline
  and absences stay as they were, and the admin is told once ("held"). The first
  scrape that looks normal again ends the hold ("released"); or the admin accepts the
  page (``accept_held``), and the next scrape that would be held is taken as a silent
  new baseline instead.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from decimal import Decimal
from typing import Literal, Protocol

from scrapers._errors import ScraperError
from scrapers._models import Promotion

ChangeKind = Literal["new", "changed", "ended"]
AdminKind = Literal["failing", "recovered", "empty", "refilled", "held", "released"]

# The fields whose change counts, in the order Change.changed_fields lists them.
CHANGE_FIELDS = ("title", "dates", "price", "summary")
# When a page has ballooned (see the module doc).
HOLD_CAP = 500
HOLD_FACTOR = 3
HOLD_MARGIN = 30


class _Content(Protocol):
    """What a Promotion and a Known share: the values compared between scrapes."""

    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str | None: ...
    @property
    def date_text(self) -> str | None: ...
    @property
    def starts(self) -> date | None: ...
    @property
    def ends(self) -> date | None: ...
    @property
    def price_text(self) -> str | None: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...


@dataclass(frozen=True, kw_only=True)
class Known:
    """What is remembered about one promotion of a source between scrapes.

    The values are the latest seen, kept so a change can be described ("price was
    2 990 ₸") and an ended promotion reported. ``missing_runs`` counts the consecutive
    good scrapes it was absent from; ``first_seen_run`` and ``last_seen_run`` are
    ``SourceState.run`` numbers.
    """

    key: str
    title: str
    link: str | None = None
    summary: str | None = None
    date_text: str | None = None
    starts: date | None = None
    ends: date | None = None
    price_text: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    missing_runs: int = 0
    ended: bool = False
    first_seen_run: int = 0
    last_seen_run: int = 0

    def __post_init__(self) -> None:
        if self.missing_runs < 0:
            raise ValueError(f"missing_runs must not be negative, got {self.missing_runs}")

    @property
    def fingerprint(self) -> str:
        """The hash of the normalised values whose change counts (see ``fingerprint``)."""
        return fingerprint(self)

    def to_promotion(self, source_id: str) -> Promotion:
        """The last known values as a Promotion (how an ended promotion is reported)."""
        return Promotion(source_id=source_id, **{name: getattr(self, name) for name in _SHARED})


# What is remembered of a Promotion: every Known field a Promotion has too. Image and
# data allowance are not compared, so not remembered; the caller stores them if it wants.
_SHARED = tuple(
    known.name for known in fields(Known) if known.name in Promotion.__dataclass_fields__
)


@dataclass(frozen=True, kw_only=True)
class SourceState:
    """Everything change detection remembers about one source; ``SourceState()`` is new.

    ``run`` counts observe() calls, so the daemon can tell which scrape a promotion was
    first seen in. ``failures`` and ``empty_runs`` are the current streaks of failed and
    of suspiciously empty scrapes; ``alerted_failure`` / ``alerted_empty`` say whether
    the admin was told about the current one. ``last_item_count`` is the number of
    promotions in the last scrape that had any (and was not held). ``held_count`` is
    the number in the scrape that put the source on hold (0: not held);
    ``accept_held`` says the admin accepted that page as the new normal.
    """

    known: Mapping[str, Known] = field(default_factory=dict)
    baseline_done: bool = False
    run: int = 0
    failures: int = 0
    last_error: str | None = None
    alerted_failure: bool = False
    empty_runs: int = 0
    last_item_count: int = 0
    alerted_empty: bool = False
    held_count: int = 0
    accept_held: bool = False

    def __post_init__(self) -> None:
        for name in ("run", "failures", "empty_runs", "last_item_count", "held_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for key, known in self.known.items():
            if key != known.key:
                raise ValueError(f"known[{key!r}] holds the promotion keyed {known.key!r}")


@dataclass(frozen=True)
class Change:
    """Something subscribers may be alerted about.

    ``promotion`` is the promotion as now seen (for "ended": as last seen). ``before``
    is what was known until now: set for "changed" and "ended", and for a "new" that is
    an ended promotion coming back. ``changed_fields`` names which of CHANGE_FIELDS
    differ from ``before``.
    """

    kind: ChangeKind
    promotion: Promotion
    before: Known | None = None
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdminEvent:
    """A message for the admin channel about the health of one source."""

    kind: AdminKind
    source_id: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The result of observing one scrape: the state to store and what to tell whom."""

    state: SourceState
    changes: tuple[Change, ...] = ()
    admin: tuple[AdminEvent, ...] = ()
    # Keys of this scrape's promotions matched to a known promotion by title: page key
    # -> the known key they keep (see the module doc).
    aliases: Mapping[str, str] = field(default_factory=dict)
    held: bool = False  # this scrape ballooned and was held: nothing of it is kept


def observe(
    source_id: str,
    state: SourceState,
    result: Sequence[Promotion] | ScraperError,
    *,
    ended_after: int = 3,
    fail_after: int = 3,
    hold_cap: int = HOLD_CAP,
    hold_factor: int = HOLD_FACTOR,
    hold_margin: int = HOLD_MARGIN,
) -> Outcome:
    """Fold one scrape of ``source_id`` into its state (the rules are in the module doc).

    ``result`` is what the scrape produced: its promotions, or the error that stopped it.
    """
    if ended_after < 1 or fail_after < 1:
        raise ValueError(
            f"ended_after and fail_after must be at least 1, got {ended_after} and {fail_after}"
        )
    if hold_cap < 1 or hold_factor < 1 or hold_margin < 0:
        raise ValueError(
            "hold_cap and hold_factor must be at least 1 and hold_margin at least 0, got"
            f" {hold_cap}, {hold_factor} and {hold_margin}"
        )
    run = state.run + 1
    if isinstance(result, ScraperError):
        return _failed(source_id, state, result, run, fail_after)

    promotions = _unique(source_id, result)
    admin: list[AdminEvent] = []
    if state.alerted_failure:
        admin.append(
            AdminEvent(
                "recovered",
                source_id,
                f"Source {source_id} can be fetched and read again"
                f" after {_scrapes(state.failures, 'failed ')}.",
            )
        )
    fetched = replace(state, run=run, failures=0, last_error=None, alerted_failure=False)

    if not promotions:
        if state.last_item_count == 0:
            return Outcome(fetched, (), tuple(admin))
        empty_runs = state.empty_runs + 1
        alert = empty_runs >= fail_after and not state.alerted_empty
        if alert:
            admin.append(
                AdminEvent(
                    "empty",
                    source_id,
                    f"Source {source_id} has yielded no promotions for {_scrapes(empty_runs)}"
                    f" in a row (it had {state.last_item_count} before); layout changed?",
                )
            )
        emptied = replace(
            fetched, empty_runs=empty_runs, alerted_empty=state.alerted_empty or alert
        )
        return Outcome(emptied, (), tuple(admin))

    usual, count = state.last_item_count, len(promotions)
    ballooned = count > hold_cap >= usual or (
        usual > 0 and count > usual * hold_factor and count - usual > hold_margin
    )
    if ballooned and not state.accept_held:
        if not state.held_count:
            admin.append(
                AdminEvent(
                    "held",
                    source_id,
                    f"Source {source_id} suddenly lists {count} promotions"
                    + (f" (it had {usual});" if usual else f", over the cap of {hold_cap};")
                    + " nobody is alerted about this page and what is known is kept until it"
                    " looks normal again. If the page is right, accept it with"
                    f" `watcher sources accept {source_id}`.",
                )
            )
        return Outcome(replace(fetched, held_count=count), (), tuple(admin), held=True)
    if state.held_count and not ballooned:
        admin.append(
            AdminEvent(
                "released",
                source_id,
                f"Source {source_id} looks normal again ({count} promotions); the page of"
                f" {state.held_count} was dropped.",
            )
        )
    fetched = replace(fetched, held_count=0, accept_held=False)
    if state.alerted_empty:
        admin.append(
            AdminEvent(
                "refilled",
                source_id,
                f"Source {source_id} yields promotions again ({len(promotions)} found).",
            )
        )
    good = replace(fetched, empty_runs=0, alerted_empty=False, last_item_count=len(promotions))
    if not state.baseline_done or ballooned:  # ballooned here: accepted by the admin
        baseline = {p.key: _remember(p, run, run) for p in promotions}
        return Outcome(replace(good, known=baseline, baseline_done=True), (), tuple(admin))
    promotions, aliases = _identify(state.known, promotions)
    known, changes = _compare(source_id, state.known, promotions, run, ended_after)
    return Outcome(replace(good, known=known), changes, tuple(admin), aliases)


def matches(promotion: Promotion, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a subscriber's keywords select a promotion (its title and summary).

    Case-insensitive by Unicode casefolding, with ё read as е and whitespace collapsed.
    A keyword matches inside a word, so "роуминг" finds "роуминга": Russian and Kazakh
    inflect, and a whole-word match would miss most of them. ``include`` selects
    promotions with any of its keywords (none: all); ``exclude`` drops those with any.
    Blank keywords are ignored.
    """
    for name, words in (("include", include), ("exclude", exclude)):
        if isinstance(words, str):
            # A bare string is a Sequence[str] too, and would match letter by letter.
            raise TypeError(f"{name} must be a sequence of keywords, not the string {words!r}")
    text = _fold(f"{promotion.title} {promotion.summary or ''}")
    wanted = [word for word in map(_fold, include) if word]
    unwanted = [word for word in map(_fold, exclude) if word]
    if any(word in text for word in unwanted):
        return False
    return not wanted or any(word in text for word in wanted)


def fingerprint(content: Promotion | Known) -> str:
    """A hash of the normalised title, dates, price and summary.

    Equal fingerprints never make a "changed". The converse holds except where only one
    side's date, price or currency was parsed and the rest agrees (see ``changed_fields``).
    """
    parts = (_norm(content.title), _dates_key(content), _price_key(content), _norm(content.summary))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def changed_fields(before: Promotion | Known, after: Promotion | Known) -> tuple[str, ...]:
    """Which of CHANGE_FIELDS differ between two versions of a promotion, ignoring noise."""
    differs = {
        "title": _norm(before.title) != _norm(after.title),
        "dates": not _same_dates(before, after),
        "price": not _same_price(before, after),
        "summary": _norm(before.summary) != _norm(after.summary),
    }
    return tuple(name for name in CHANGE_FIELDS if differs[name])


def _failed(
    source_id: str, state: SourceState, error: ScraperError, run: int, fail_after: int
) -> Outcome:
    failures = state.failures + 1
    described = _describe(error)
    alert = failures >= fail_after and not state.alerted_failure
    admin: tuple[AdminEvent, ...] = ()
    if alert:
        message = f"Source {source_id} failed {_scrapes(failures)} in a row: {described}."
        admin = (AdminEvent("failing", source_id, message),)
    new_state = replace(
        state,
        run=run,
        failures=failures,
        last_error=described,
        alerted_failure=state.alerted_failure or alert,
    )
    return Outcome(new_state, (), admin)


def _unique(source_id: str, result: Sequence[Promotion]) -> list[Promotion]:
    seen: set[str] = set()
    unique: list[Promotion] = []
    for promotion in result:
        if promotion.source_id != source_id:
            raise ValueError(
                f"promotion {promotion.key!r} is from source {promotion.source_id!r},"
                f" not {source_id!r}"
            )
        if promotion.key not in seen:
            seen.add(promotion.key)
            unique.append(promotion)
    return unique


def _identify(
    previous: Mapping[str, Known], promotions: Sequence[Promotion]
) -> tuple[list[Promotion], dict[str, str]]:
    """``promotions`` with unknown keys matched by title to known ones (module doc)."""
    present = {promotion.key for promotion in promotions}
    if all(key in previous for key in present):
        return list(promotions), {}
    by_title: dict[str, list[Known]] = {}
    for key, known in previous.items():
        if key not in present and not known.ended:
            by_title.setdefault(_norm(known.title), []).append(known)
    if not by_title:
        return list(promotions), {}
    identified: list[Promotion] = []
    aliases: dict[str, str] = {}
    for promotion in promotions:
        candidates = by_title.get(_norm(promotion.title), [])
        if promotion.key in previous or not candidates:
            identified.append(promotion)
            continue
        linked = _link_keyed(promotion.key)
        usable = [known for known in candidates if not (linked and _link_keyed(known.key))]
        if not usable:
            identified.append(promotion)
            continue
        wanted = fingerprint(promotion)
        before = next((known for known in usable if known.fingerprint == wanted), usable[0])
        candidates.remove(before)
        aliases[promotion.key] = before.key
        identified.append(replace(promotion, key=before.key, link=promotion.link or before.link))
    return identified, aliases


def _link_keyed(key: str) -> bool:
    return key.startswith(("http://", "https://"))


def _compare(
    source_id: str,
    previous: Mapping[str, Known],
    promotions: Sequence[Promotion],
    run: int,
    ended_after: int,
) -> tuple[dict[str, Known], tuple[Change, ...]]:
    known = dict(previous)
    changes: list[Change] = []
    for promotion in promotions:
        before = previous.get(promotion.key)
        if before is None:
            changes.append(Change("new", promotion))
            known[promotion.key] = _remember(promotion, run, run)
            continue
        fields = changed_fields(before, promotion)
        if before.ended:
            changes.append(Change("new", promotion, before, fields))
        elif fields:
            changes.append(Change("changed", promotion, before, fields))
        known[promotion.key] = _remember(promotion, before.first_seen_run, run)

    present = {promotion.key for promotion in promotions}
    for key, before in previous.items():
        if key in present or before.ended:
            continue
        missing = before.missing_runs + 1
        ended = missing >= ended_after
        known[key] = replace(before, missing_runs=missing, ended=ended)
        if ended:
            changes.append(Change("ended", before.to_promotion(source_id), before))
    return known, tuple(changes)


def _remember(promotion: Promotion, first_seen_run: int, run: int) -> Known:
    values = {name: getattr(promotion, name) for name in _SHARED}
    return Known(**values, first_seen_run=first_seen_run, last_seen_run=run)


def _norm(text: str | None) -> str:
    """Text with Unicode form, whitespace and case noise removed."""
    if not text:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _fold(text: str) -> str:
    return _norm(text).replace("ё", "е")


def _tight(text: str | None) -> str:
    # Prices group digits with spaces, thin spaces or nothing: "2 990 ₸" == "2990₸".
    return "".join(_norm(text).split())


def _amount(value: Decimal) -> str:
    # 2990 and 2990.00 are the same price.
    return format(value.normalize(), "f") if value.is_finite() else str(value)


def _has_dates(content: _Content) -> bool:
    return content.starts is not None or content.ends is not None


def _dates_key(content: _Content) -> str:
    if _has_dates(content):
        return f"parsed {content.starts} {content.ends}"
    return f"text {_norm(content.date_text)}"


def _price_key(content: _Content) -> str:
    if content.price is not None:
        return f"parsed {_amount(content.price)} {_norm(content.currency)}"
    return f"text {_tight(content.price_text)}"


def _same_dates(a: _Content, b: _Content) -> bool:
    if _has_dates(a) and _has_dates(b):
        return (a.starts, a.ends) == (b.starts, b.ends)
    text_a, text_b = _norm(a.date_text), _norm(b.date_text)
    if _has_dates(a) or _has_dates(b):
        # Only one side was parsed: the texts decide, when there is one to compare.
        return text_a != "" and text_a == text_b
    return text_a == text_b


def _same_price(a: _Content, b: _Content) -> bool:
    if a.price is not None and b.price is not None:
        # A currency that one side could not tell is no evidence of a change.
        currencies = {_norm(a.currency), _norm(b.currency)} - {""}
        return _amount(a.price) == _amount(b.price) and len(currencies) <= 1
    text_a, text_b = _tight(a.price_text), _tight(b.price_text)
    if a.price is not None or b.price is not None:
        return text_a != "" and text_a == text_b
    return text_a == text_b


def _describe(error: ScraperError) -> str:
    text = str(error).strip().rstrip(".") or type(error).__name__
    if error.url and error.url not in text:
        text = f"{text} ({error.url})"
    return text


def _scrapes(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}scrape" + ("" if count == 1 else "s")
