"""Change detection: what one scrape changes, who hears about it, and what the admin is told."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrapers._build import title_key
from scrapers._changes import (
    CHANGE_FIELDS,
    HOLD_CAP,
    HOLD_FACTOR,
    HOLD_MARGIN,
    AdminEvent,
    Change,
    Known,
    Outcome,
    SourceState,
    changed_fields,
    fingerprint,
    matches,
    observe,
)
from scrapers._errors import ExtractError, FetchStatus, FetchTimeout, ScraperError
from scrapers._models import Promotion

SRC = "kcell-promo"
URL = "https://www.kcell.kz/ru/promo"
ERROR = FetchTimeout("read timed out", url=URL)

Result = list[Promotion] | ScraperError


def promo(key: str = "https://www.kcell.kz/ru/promo/1", **fields: Any) -> Promotion:
    fields.setdefault("title", "Скидка 50% на роуминг")
    return Promotion(source_id=SRC, key=key, **fields)


A = promo("https://www.kcell.kz/ru/promo/a", title="eSIM бесплатно")
B = promo("https://www.kcell.kz/ru/promo/b", title="Роуминг за 990 ₸")
C = promo("https://www.kcell.kz/ru/promo/c", title="Безлимит на соцсети")


def feed(
    state: SourceState, *results: Result, ended_after: int = 3, fail_after: int = 3
) -> list[Outcome]:
    """Observe each result in turn; the outcome of every scrape, in order."""
    outcomes = []
    for result in results:
        outcome = observe(SRC, state, result, ended_after=ended_after, fail_after=fail_after)
        outcomes.append(outcome)
        state = outcome.state
    return outcomes


def baseline(*promotions: Promotion) -> SourceState:
    return observe(SRC, SourceState(), list(promotions)).state


def kinds(outcome: Outcome) -> list[tuple[str, str]]:
    return [(change.kind, change.promotion.key) for change in outcome.changes]


def admin_kinds(outcomes: list[Outcome]) -> list[list[str]]:
    return [[event.kind for event in outcome.admin] for outcome in outcomes]


# --- baseline -------------------------------------------------------------------------


def test_first_good_scrape_is_a_baseline_that_alerts_nobody() -> None:
    outcome = observe(SRC, SourceState(), [A, B, C])
    assert outcome.changes == ()
    assert outcome.admin == ()
    assert outcome.state.baseline_done
    assert list(outcome.state.known) == [A.key, B.key, C.key]
    assert outcome.state.last_item_count == 3


def test_the_same_page_again_after_the_baseline_changes_nothing() -> None:
    [outcome] = feed(baseline(A, B), [A, B])
    assert outcome.changes == ()
    assert outcome.admin == ()


def test_run_counts_every_scrape_and_known_promotions_remember_when_they_were_first_seen() -> None:
    outcomes = feed(SourceState(), ERROR, [A], [A, B], [A, replace_title(B, "Новый роуминг")])
    assert [outcome.state.run for outcome in outcomes] == [1, 2, 3, 4]
    known = outcomes[-1].state.known
    assert (known[A.key].first_seen_run, known[A.key].last_seen_run) == (2, 4)
    # A change keeps when it was first seen: it is the same promotion.
    assert (known[B.key].first_seen_run, known[B.key].last_seen_run) == (3, 4)


def test_observe_leaves_the_state_it_was_given_untouched() -> None:
    state = baseline(A, B)
    snapshot = dict(state.known)
    feed(state, [C], [C], [C], ERROR, [])
    assert dict(state.known) == snapshot


def replace_title(promotion: Promotion, title: str) -> Promotion:
    return promo(promotion.key, title=title)


# --- new ------------------------------------------------------------------------------


def test_a_key_not_seen_before_is_new_after_the_baseline() -> None:
    [outcome] = feed(baseline(A), [A, B])
    assert outcome.changes == (Change("new", B),)
    assert outcome.state.known[B.key].first_seen_run == 2


def test_several_new_promotions_are_reported_in_page_order() -> None:
    [outcome] = feed(baseline(A), [C, A, B])
    assert kinds(outcome) == [("new", C.key), ("new", B.key)]


# --- changed --------------------------------------------------------------------------

BASE = promo(
    title="Роуминг по всему миру",
    summary="Интернет в 50 странах",
    date_text="с 1 по 30 ноября",
    starts=date(2026, 11, 1),
    ends=date(2026, 11, 30),
    price_text="2 990 ₸",
    price=Decimal("2990"),
    currency="KZT",
)


def variant(**fields: Any) -> Promotion:
    values = {name: getattr(BASE, name) for name in BASE.__dataclass_fields__}
    values.update(fields)
    return Promotion(**values)


@pytest.mark.parametrize(
    ("after", "fields"),
    [
        pytest.param(variant(title="Роуминг по всему миру -50%"), ("title",), id="title"),
        pytest.param(variant(summary="Интернет в 80 странах"), ("summary",), id="summary"),
        pytest.param(variant(summary=None), ("summary",), id="summary-removed"),
        pytest.param(variant(ends=date(2026, 12, 31)), ("dates",), id="end-date"),
        pytest.param(variant(starts=date(2026, 11, 15)), ("dates",), id="start-date"),
        pytest.param(
            variant(price=Decimal("1990"), price_text="1 990 ₸"), ("price",), id="price-amount"
        ),
        pytest.param(
            variant(price=Decimal("2990"), currency="USD"), ("price",), id="price-currency"
        ),
        pytest.param(
            variant(price=None, price_text="бесплатно"), ("price",), id="price-no-longer-a-number"
        ),
        pytest.param(
            variant(title="Роуминг -50%", price=Decimal("1495"), price_text="1 495 ₸"),
            ("title", "price"),
            id="title-and-price",
        ),
    ],
)
def test_a_known_promotion_whose_content_changed_is_reported_with_the_fields(
    after: Promotion, fields: tuple[str, ...]
) -> None:
    [outcome] = feed(baseline(BASE), [after])
    [change] = outcome.changes
    assert (change.kind, change.changed_fields) == ("changed", fields)
    assert change.promotion == after
    assert change.before is not None
    assert change.before.title == BASE.title
    assert change.before.price == BASE.price
    assert outcome.state.known[BASE.key].price == after.price


@pytest.mark.parametrize(
    ("before", "after", "fields"),
    [
        pytest.param(
            promo(date_text="до 31 декабря"),
            promo(date_text="до 15 января"),
            ("dates",),
            id="unparsed-date-text",
        ),
        pytest.param(
            promo(price_text="от 990 ₸"),
            promo(price_text="от 1 490 ₸"),
            ("price",),
            id="unparsed-price-text",
        ),
        pytest.param(
            promo(), promo(price_text="990 ₸", price=Decimal(990)), ("price",), id="price-appears"
        ),
        pytest.param(
            promo(starts=date(2026, 1, 1)), promo(), ("dates",), id="parsed-date-disappears"
        ),
    ],
)
def test_unparsed_values_are_compared_by_their_text(
    before: Promotion, after: Promotion, fields: tuple[str, ...]
) -> None:
    [outcome] = feed(baseline(before), [after])
    assert [(c.kind, c.changed_fields) for c in outcome.changes] == [("changed", fields)]


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(variant(title="  Роуминг   по всему\tмиру "), id="title-whitespace"),
        pytest.param(variant(title="РОУМИНГ по всему миру"), id="title-case"),
        pytest.param(variant(summary="Интернет\u00a0в 50\nстранах"), id="summary-nbsp-newline"),
        pytest.param(variant(price_text="2990 ₸"), id="price-digit-grouping"),
        pytest.param(variant(price=Decimal("2990.00")), id="price-trailing-zeros"),
        pytest.param(variant(date_text="01.11.2026 – 30.11.2026"), id="same-dates-other-words"),
        pytest.param(variant(link="https://www.kcell.kz/ru/promo/1?utm=x"), id="link-only"),
        pytest.param(variant(image="https://www.kcell.kz/banner.png"), id="image-only"),
        pytest.param(variant(data_gb=Decimal(50)), id="data-allowance-only"),
        pytest.param(variant(summary="ИНТЕРНЕТ в ５０ странах"), id="fullwidth-digits-and-case"),
    ],
)
def test_noise_is_not_a_change(after: Promotion) -> None:
    [outcome] = feed(baseline(BASE), [after])
    assert outcome.changes == ()
    assert fingerprint(BASE) == fingerprint(after)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            promo(price_text="2 990 ₸"),
            promo(price_text="2 990 ₸", price=Decimal(2990), currency="KZT"),
            id="price-parsed-by-a-newer-parser",
        ),
        pytest.param(
            promo(date_text="до 31 декабря"),
            promo(date_text="до 31 декабря", ends=date(2026, 12, 31)),
            id="date-parsed-by-a-newer-parser",
        ),
        pytest.param(
            promo(date_text="до 31 декабря", ends=date(2026, 12, 31)),
            promo(date_text="до 31 декабря"),
            id="date-no-longer-parsed",
        ),
        pytest.param(BASE, variant(currency=None), id="currency-not-recognised-this-time"),
    ],
)
def test_a_parser_reading_more_or_less_of_the_same_text_alerts_nobody(
    before: Promotion, after: Promotion
) -> None:
    [outcome] = feed(baseline(before), [after])
    assert outcome.changes == ()


def test_known_values_follow_the_page_even_when_the_difference_is_noise() -> None:
    noisy = variant(title="  РОУМИНГ по всему миру ")
    [outcome] = feed(baseline(BASE), [noisy])
    assert outcome.state.known[BASE.key].title == noisy.title


def test_known_fingerprint_equals_the_fingerprint_of_the_promotion_it_remembers() -> None:
    known = baseline(BASE).known[BASE.key]
    assert known.fingerprint == fingerprint(BASE)
    assert len(known.fingerprint) == 64
    assert known.fingerprint != fingerprint(variant(title="Другое"))


# --- ended ----------------------------------------------------------------------------


@pytest.mark.parametrize("ended_after", [1, 2, 3, 5])
def test_a_promotion_ends_after_exactly_ended_after_good_scrapes_without_it_and_only_once(
    ended_after: int,
) -> None:
    outcomes = feed(baseline(A, B), *([[A]] * (ended_after + 3)), ended_after=ended_after)
    ended_at = [i for i, outcome in enumerate(outcomes) if outcome.changes]
    assert ended_at == [ended_after - 1]
    [change] = outcomes[ended_after - 1].changes
    assert (change.kind, change.promotion.key) == ("ended", B.key)
    assert outcomes[-1].state.known[B.key].ended


def test_an_ended_change_carries_the_last_known_values_as_a_promotion() -> None:
    [*_, outcome] = feed(baseline(A, BASE), [A], [A], [A])
    [change] = outcome.changes
    assert change.kind == "ended"
    assert change.promotion == Promotion(
        source_id=SRC,
        key=BASE.key,
        title=BASE.title,
        summary=BASE.summary,
        date_text=BASE.date_text,
        starts=BASE.starts,
        ends=BASE.ends,
        price_text=BASE.price_text,
        price=BASE.price,
        currency=BASE.currency,
    )
    assert change.before is not None
    assert not change.before.ended


def test_being_seen_again_resets_the_absence_count() -> None:
    outcomes = feed(baseline(A, B), [A], [A], [A, B], [A], [A])
    assert all(outcome.changes == () for outcome in outcomes)
    assert outcomes[-1].state.known[B.key].missing_runs == 2


def test_a_short_absence_is_not_a_reappearance() -> None:
    outcomes = feed(baseline(A, B), [A], [A, B])
    assert outcomes[-1].changes == ()


# --- reappearance ---------------------------------------------------------------------


def test_an_ended_promotion_that_comes_back_is_new_again_with_what_was_known_before() -> None:
    back = variant(price=Decimal(1990), price_text="1 990 ₸")
    [*_, ended, returned] = feed(baseline(A, BASE), [A], [A], [A], [A, back])
    assert kinds(ended) == [("ended", BASE.key)]
    [change] = returned.changes
    assert (change.kind, change.changed_fields) == ("new", ("price",))
    assert change.before is not None and change.before.ended
    known = returned.state.known[BASE.key]
    assert (known.ended, known.missing_runs, known.first_seen_run) == (False, 0, 1)


def test_an_offer_rerun_word_for_word_is_still_news() -> None:
    [*_, returned] = feed(baseline(A, B), [A], [A], [A], [A], [A, B])
    assert [(c.kind, c.changed_fields) for c in returned.changes] == [("new", ())]


def test_a_returned_promotion_can_end_again() -> None:
    outcomes = feed(baseline(A, B), [A], [A], [A], [A, B], [A], [A], [A], ended_after=3)
    assert [kinds(o) for o in outcomes if o.changes] == [
        [("ended", B.key)],
        [("new", B.key)],
        [("ended", B.key)],
    ]


# --- failures -------------------------------------------------------------------------


def test_failed_scrapes_never_end_anything_nor_touch_what_is_known() -> None:
    state = baseline(A, B)
    outcomes = feed(state, *([ERROR] * 10), ended_after=1)
    assert all(outcome.changes == () for outcome in outcomes)
    assert outcomes[-1].state.known == state.known
    assert outcomes[-1].state.baseline_done


def test_the_same_page_after_an_outage_alerts_nobody() -> None:
    [*_, after] = feed(baseline(A, B), ERROR, ERROR, ERROR, ERROR, [A, B])
    assert after.changes == ()


def test_failed_scrapes_between_good_ones_do_not_break_the_absence_count() -> None:
    outcomes = feed(baseline(A, B), [A], ERROR, [A], ERROR, ERROR, [A])
    assert [kinds(o) for o in outcomes] == [[], [], [], [], [], [("ended", B.key)]]


def test_a_failure_before_any_good_scrape_sets_no_baseline() -> None:
    [failed, first] = feed(SourceState(), ERROR, [A, B])
    assert not failed.state.baseline_done
    assert first.changes == ()
    assert first.state.baseline_done


@pytest.mark.parametrize("fail_after", [1, 2, 3, 5])
def test_failing_is_reported_after_exactly_fail_after_failures_once_per_streak(
    fail_after: int,
) -> None:
    streak = [ERROR] * (2 * fail_after + 1)
    outcomes = feed(baseline(A), *streak, [A], *streak, fail_after=fail_after)
    alerted = [i for i, o in enumerate(outcomes) if [e.kind for e in o.admin] == ["failing"]]
    assert alerted == [fail_after - 1, len(streak) + 1 + fail_after - 1]
    recovered = [i for i, o in enumerate(outcomes) if [e.kind for e in o.admin] == ["recovered"]]
    assert recovered == [len(streak)]
    assert sum(len(o.admin) for o in outcomes) == 3


def test_a_streak_too_short_to_alert_recovers_silently() -> None:
    outcomes = feed(baseline(A), ERROR, ERROR, [A], ERROR, ERROR, [A])
    assert admin_kinds(outcomes) == [[]] * 6
    assert outcomes[2].state.failures == 0


def test_a_source_that_never_worked_is_reported_failing_too() -> None:
    outcomes = feed(SourceState(), ERROR, ERROR, ERROR)
    assert admin_kinds(outcomes) == [[], [], ["failing"]]


def test_failure_state_records_the_streak_and_the_latest_error() -> None:
    latest = FetchStatus("HTTP 503 Service Unavailable", url=URL, status=503)
    [*_, outcome] = feed(baseline(A), ERROR, latest)
    assert outcome.state.failures == 2
    assert outcome.state.last_error == f"HTTP 503 Service Unavailable ({URL})"
    assert not outcome.state.alerted_failure


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            ERROR,
            f"Source kcell-promo failed 3 scrapes in a row: read timed out ({URL}).",
            id="with-url",
        ),
        pytest.param(
            ExtractError(f"no items match '.promo-card' on {URL}.", url=URL),
            f"Source kcell-promo failed 3 scrapes in a row: no items match '.promo-card' on {URL}.",
            id="url-already-in-message",
        ),
        pytest.param(
            ExtractError(""),
            "Source kcell-promo failed 3 scrapes in a row: ExtractError.",
            id="no-message",
        ),
    ],
)
def test_the_failing_message_is_one_sentence_naming_the_source_and_the_error(
    error: ScraperError, expected: str
) -> None:
    [*_, outcome] = feed(baseline(A), error, error, error)
    assert outcome.admin == (AdminEvent("failing", SRC, expected),)


def test_the_recovered_message_names_the_source_and_the_streak() -> None:
    [*_, outcome] = feed(baseline(A), ERROR, ERROR, ERROR, ERROR, [A])
    assert outcome.admin == (
        AdminEvent(
            "recovered",
            SRC,
            "Source kcell-promo can be fetched and read again after 4 failed scrapes.",
        ),
    )
    assert (outcome.state.failures, outcome.state.last_error) == (0, None)


# --- a page that suddenly yields nothing ----------------------------------------------


def test_zero_items_after_items_never_ends_anything_nor_touches_what_is_known() -> None:
    state = baseline(A, B)
    outcomes = feed(state, *([[]] * 10), ended_after=1)
    assert all(outcome.changes == () for outcome in outcomes)
    assert outcomes[-1].state.known == state.known
    assert outcomes[-1].state.last_item_count == 2


def test_zero_items_is_reported_as_layout_changed_after_the_threshold_once_then_refilled() -> None:
    outcomes = feed(baseline(A, B), [], [], [], [], [], [A, B], [A, B])
    assert admin_kinds(outcomes) == [[], [], ["empty"], [], [], ["refilled"], []]
    assert outcomes[2].admin[0].message == (
        "Source kcell-promo has yielded no promotions for 3 scrapes in a row"
        " (it had 2 before); layout changed?"
    )
    assert outcomes[5].admin[0].message == "Source kcell-promo yields promotions again (2 found)."
    assert outcomes[5].changes == ()


def test_a_short_empty_spell_recovers_silently() -> None:
    outcomes = feed(baseline(A, B), [], [], [A, B], [], [])
    assert admin_kinds(outcomes) == [[]] * 5


def test_promotions_missing_after_a_refill_count_towards_ended_from_then_on() -> None:
    outcomes = feed(baseline(A, B), [], [], [], [A], [A], [A])
    assert [kinds(o) for o in outcomes] == [[], [], [], [], [], [("ended", B.key)]]


def test_failed_scrapes_neither_extend_nor_break_an_empty_streak() -> None:
    outcomes = feed(baseline(A), [], ERROR, [], ERROR, ERROR, [])
    assert admin_kinds(outcomes) == [[], [], [], [], [], ["empty"]]


def test_an_empty_page_ends_a_failure_streak_and_starts_an_empty_one() -> None:
    outcomes = feed(baseline(A), ERROR, ERROR, ERROR, [], [], [], [A])
    assert admin_kinds(outcomes) == [
        [],
        [],
        ["failing"],
        ["recovered"],
        [],
        ["empty"],
        ["refilled"],
    ]


@pytest.mark.parametrize("scrapes", [1, 3, 10])
def test_a_source_empty_from_the_start_reports_nothing_and_sets_no_baseline(scrapes: int) -> None:
    outcomes = feed(SourceState(), *([[]] * scrapes))
    assert all(o.changes == () and o.admin == () for o in outcomes)
    assert not outcomes[-1].state.baseline_done


def test_the_first_scrape_with_items_after_empty_ones_is_the_baseline_not_a_flood() -> None:
    [*_, first] = feed(SourceState(), [], [], [], [A, B, C])
    assert first.changes == ()
    assert first.admin == ()
    assert first.state.baseline_done


# --- duplicates -----------------------------------------------------------------------


def test_the_first_of_duplicate_keys_in_one_result_wins() -> None:
    again = replace_title(A, "Совсем другое")
    outcome = observe(SRC, SourceState(), [A, B, again])
    assert outcome.state.known[A.key].title == A.title
    assert outcome.state.last_item_count == 2
    [after] = feed(outcome.state, [A, again])
    assert after.changes == ()


def test_a_duplicate_new_key_is_reported_once() -> None:
    [outcome] = feed(baseline(A), [B, B, replace_title(B, "Другое")])
    assert outcome.changes == (Change("new", B),)


# --- arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["ended_after", "fail_after"])
def test_thresholds_below_one_are_refused(option: str) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        observe(SRC, SourceState(), [A], **{option: 0})


def test_a_promotion_from_another_source_is_refused() -> None:
    stray = Promotion(source_id="beeline-promo", key="x", title="Чужая акция")
    with pytest.raises(ValueError, match="beeline-promo"):
        observe(SRC, SourceState(), [A, stray])


def test_a_state_whose_keys_do_not_match_its_promotions_is_refused() -> None:
    with pytest.raises(ValueError, match="keyed"):
        SourceState(known={"a": Known(key="b", title="B")})


def test_negative_counters_are_refused() -> None:
    with pytest.raises(ValueError, match="failures"):
        SourceState(failures=-1)
    with pytest.raises(ValueError, match="missing_runs"):
        Known(key="a", title="A", missing_runs=-1)


# --- keyword filter -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "summary", "include", "exclude", "expected"),
    [
        ("Скидка на роуминг", None, [], [], True),
        ("Скидка на роуминг", None, ["eSIM", "роуминг"], [], True),
        ("РОУМИНГ без границ", None, ["роуминг"], [], True),
        ("Роуминг без границ", None, ["РОУМИНГ"], [], True),
        ("Скидка 20% на роуминга пакеты", None, ["роуминг"], [], True),
        ("Новая ESIM", None, ["eSIM"], [], True),
        ("Тариф", "Подключите esim за 0 ₸", ["eSIM"], [], True),
        ("Тариф Smart", "Безлимит на соцсети", ["eSIM", "роуминг"], [], False),
        ("Всё включено", None, ["все включено"], [], True),
        ("Все включено", None, ["ВСЁ"], [], True),
        ("Strasse-Tarif", None, ["STRASSE"], [], True),
        ("Straße-Tarif", None, ["strasse"], [], True),
        ("eSIM  для\u00a0бизнеса", None, ["esim для бизнеса"], [], True),
        ("eSIM для бизнеса", "Корпоративным клиентам", ["eSIM"], ["корпоратив"], False),
        ("КОРПОРАТИВНЫЙ роуминг", None, ["роуминг"], ["корпоратив"], False),
        ("Роуминг", None, [], ["корпоратив"], True),
        ("Роуминг", None, ["", "  "], [], True),
        ("Роуминг", None, ["eSIM"], [""], False),
        ("Интернет 50 ГБ", None, [], [""], True),
    ],
)
def test_keywords_select_promotions_case_insensitively(
    title: str, summary: str | None, include: list[str], exclude: list[str], expected: bool
) -> None:
    assert matches(promo(title=title, summary=summary), include, exclude) is expected


def test_a_bare_string_of_keywords_is_refused_rather_than_matched_letter_by_letter() -> None:
    with pytest.raises(TypeError, match="include"):
        matches(A, "eSIM", [])
    with pytest.raises(TypeError, match="exclude"):
        matches(A, [], "корпоратив")


# --- properties -----------------------------------------------------------------------

# Link keys: two links are two promotions, however alike their titles (an unknown
# title key would be matched by title; see the refused-link tests).
_KEYS = [f"https://www.kcell.kz/ru/promo/k{n}" for n in range(1, 5)]
_scrape = st.one_of(
    st.just(None),  # a failed scrape
    st.lists(st.tuples(st.sampled_from(_KEYS), st.sampled_from(["Акция", "АКЦИЯ ", "Скидка"]))),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_scrape, max_size=30), st.integers(1, 4), st.integers(1, 4))
def test_news_never_outnumber_reappearances_and_bad_scrapes_change_nothing(
    scrapes: list[list[tuple[str, str]] | None], ended_after: int, fail_after: int
) -> None:
    state = SourceState()
    last_good: set[str] = set()
    reappearances: Counter[str] = Counter()
    news: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    failing = recovered = 0
    for scrape in scrapes:
        result: Result = (
            ERROR if scrape is None else [promo(key, title=title) for key, title in scrape]
        )
        outcome = observe(SRC, state, result, ended_after=ended_after, fail_after=fail_after)
        assert outcome.state.run == state.run + 1
        if not scrape:  # failed, or empty
            assert outcome.changes == ()
            assert outcome.state.known == state.known
            assert outcome.state.baseline_done == state.baseline_done
        else:
            present = {key for key, _ in scrape}
            if state.baseline_done:
                reappearances.update(present - last_good)
            else:
                assert outcome.changes == ()
            last_good = present
        changed_keys = [change.promotion.key for change in outcome.changes]
        assert len(changed_keys) == len(set(changed_keys))
        news.update(c.promotion.key for c in outcome.changes if c.kind == "new")
        ended.update(c.promotion.key for c in outcome.changes if c.kind == "ended")
        for event in outcome.admin:
            if event.kind == "failing":
                assert scrape is None and outcome.state.failures >= fail_after
                failing += 1
            elif event.kind == "recovered":
                recovered += 1
                assert recovered <= failing
        state = outcome.state
    for key in _KEYS:
        assert news[key] <= reappearances[key]
        # Every end but the first needs a return in between.
        assert ended[key] <= news[key] + 1


@settings(max_examples=400, deadline=None)
@given(st.lists(_scrape, max_size=30), st.integers(1, 4))
def test_new_and_ended_follow_a_reference_model_of_good_scrapes(
    scrapes: list[list[tuple[str, str]] | None], ended_after: int
) -> None:
    # The model sees only good scrapes (with items); everything else is invisible to it.
    state = SourceState()
    seen: set[str] | None = None  # None until the baseline
    absent: Counter[str] = Counter()
    for scrape in scrapes:
        result: Result = (
            ERROR if scrape is None else [promo(key, title=title) for key, title in scrape]
        )
        outcome = observe(SRC, state, result, ended_after=ended_after)
        state = outcome.state
        if not scrape:
            continue
        present = {key for key, _ in scrape}
        if seen is None:
            seen, expected_new, expected_ended = set(present), set(), set()
        else:
            expected_new = {k for k in present if k not in seen or absent[k] >= ended_after}
            expected_ended = {k for k in seen - present if absent[k] + 1 == ended_after}
            seen |= present
        for key in seen:
            absent[key] = 0 if key in present else absent[key] + 1
        assert {c.promotion.key for c in outcome.changes if c.kind == "new"} == expected_new
        assert {c.promotion.key for c in outcome.changes if c.kind == "ended"} == expected_ended


_text = st.sampled_from(["Акция", " акция ", "АКЦИЯ", "Скидка", "", None])
_price_text = st.sampled_from(["2 990 ₸", "2990₸", "1 990 ₸", None])
_amount = st.sampled_from([Decimal("2990"), Decimal("2990.00"), Decimal("1990"), None])
_day = st.sampled_from([date(2026, 12, 31), date(2026, 11, 30), None])


@st.composite
def _promotions(draw: st.DrawFn) -> Promotion:
    return promo(
        title=draw(st.sampled_from(["Акция", " акция ", "Скидка"])),
        summary=draw(_text),
        date_text=draw(st.sampled_from(["до 31 декабря", "До 31  декабря", "до 30 ноября", None])),
        ends=draw(_day),
        price_text=draw(_price_text),
        price=draw(_amount),
        currency=draw(st.sampled_from(["KZT", "kzt", "USD", None])),
    )


@settings(max_examples=400, deadline=None)
@given(_promotions(), _promotions())
def test_equal_fingerprints_never_make_a_change_and_comparison_is_symmetric(
    before: Promotion, after: Promotion
) -> None:
    fields = changed_fields(before, after)
    assert fields == changed_fields(after, before)
    assert set(fields) <= set(CHANGE_FIELDS)
    if fingerprint(before) == fingerprint(after):
        assert fields == ()
    assert changed_fields(before, before) == ()


# --- refused links: identity by title ---------------------------------------------------


def _unlinked(promotion: Promotion) -> Promotion:
    """The same card with its link refused: keyed by its title, as _build keys it."""
    return replace(promotion, key=title_key(promotion.title), link=None)


_card_titles = st.lists(
    st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=12),
    min_size=1,
    max_size=6,
    unique_by=lambda title: unicodedata.normalize("NFKC", title).casefold(),
)


@settings(max_examples=200, deadline=None)
@given(_card_titles, st.lists(st.sets(st.integers(0, 5)), min_size=1, max_size=8))
def test_cards_whose_links_come_and_go_keep_their_identity(
    titles: list[str], unlinked_runs: list[set[int]]
) -> None:
    cards = [
        promo(f"https://www.kcell.kz/ru/promo/{n}", title=title, link=f"https://x.kz/{n}")
        for n, title in enumerate(titles)
    ]
    state = baseline(*cards)
    for unlinked in [*unlinked_runs, set()]:  # ends with every link back
        page = [_unlinked(card) if n in unlinked else card for n, card in enumerate(cards)]
        outcome = observe(SRC, state, page, ended_after=1)
        assert outcome.changes == ()
        assert set(outcome.state.known) == {card.key for card in cards}
        state = outcome.state


def test_a_baseline_of_refused_links_keeps_its_keys_when_the_links_return() -> None:
    unlinked = _unlinked(A)
    state = baseline(unlinked)
    outcome = observe(SRC, state, [A], ended_after=1)
    assert outcome.changes == ()
    assert outcome.aliases == {A.key: unlinked.key}
    assert outcome.state.known[unlinked.key].link == A.link


def test_a_refused_link_is_matched_to_the_same_content_among_equal_titles() -> None:
    first = promo("https://www.kcell.kz/ru/promo/1", title="Акция", price_text="100 ₸")
    second = promo("https://www.kcell.kz/ru/promo/2", title="Акция", price_text="200 ₸")
    state = baseline(first, second)
    outcome = observe(SRC, state, [first, _unlinked(second)], ended_after=1)
    assert outcome.changes == ()
    assert outcome.aliases == {title_key("Акция"): second.key}


def test_two_links_with_the_same_title_are_two_promotions() -> None:
    moved = replace(A, key="https://www.kcell.kz/ru/promo/a2")
    outcome = observe(SRC, baseline(A), [moved], ended_after=1)
    assert kinds(outcome) == [("new", moved.key), ("ended", A.key)]


def test_a_new_card_with_a_refused_link_is_new() -> None:
    fresh = _unlinked(promo(title="Совсем новая акция"))
    outcome = observe(SRC, baseline(A, B), [_unlinked(A), B, fresh])
    assert kinds(outcome) == [("new", fresh.key)]


# --- a page that balloons is held -------------------------------------------------------


def _many(count: int, start: int = 0) -> list[Promotion]:
    return [
        promo(f"https://www.kcell.kz/ru/promo/n{n}", title=f"Акция {n}")
        for n in range(start, start + count)
    ]


FIVE = _many(5)


def test_a_page_that_balloons_is_held_alerts_nobody_and_tells_the_admin_once() -> None:
    state = baseline(*FIVE)
    outcomes = feed(state, _many(10_000), _many(10_000), ERROR, [], _many(9_000))
    assert [o.changes for o in outcomes] == [()] * 5
    assert [o.held for o in outcomes] == [True, True, False, False, True]
    assert admin_kinds(outcomes) == [["held"], [], [], [], []]
    assert "10000 promotions (it had 5)" in outcomes[0].admin[0].message
    last = outcomes[-1].state
    assert last.known == state.known  # the baseline is kept, absences did not count
    assert (last.held_count, last.last_item_count) == (9_000, 5)


def test_a_held_source_is_released_when_the_page_looks_normal_again() -> None:
    state = baseline(*FIVE)
    held, back, later = feed(state, _many(10_000), [*FIVE, C], FIVE)
    assert admin_kinds([held, back, later]) == [["held"], ["released"], []]
    assert kinds(back) == [("new", C.key)]
    assert back.state.held_count == 0
    assert "looks normal again (6 promotions); the page of 10000" in back.admin[0].message


def test_an_accepted_page_becomes_a_silent_new_baseline() -> None:
    state = feed(baseline(*FIVE), _many(10_000))[-1].state
    accepted = replace(state, accept_held=True)
    taken, after = feed(accepted, _many(10_000), _many(10_001))
    assert (taken.changes, taken.admin, taken.held) == ((), (), False)
    assert (taken.state.held_count, taken.state.accept_held) == (0, False)
    assert taken.state.last_item_count == 10_000 and len(taken.state.known) == 10_000
    assert kinds(after) == [("new", _many(1, start=10_000)[0].key)]


def test_an_acceptance_is_spent_on_a_normal_page_too() -> None:
    state = replace(feed(baseline(*FIVE), _many(10_000))[-1].state, accept_held=True)
    normal = observe(SRC, state, FIVE)
    assert normal.state.accept_held is False
    assert observe(SRC, normal.state, _many(10_000)).held


@pytest.mark.parametrize(
    ("usual", "count", "held"),
    [
        (5, 35, False),  # 30 more: within the margin
        (5, 36, True),
        (20, 60, False),  # three times as many: within the factor
        (20, 61, True),
        (200, 500, False),
        (200, 501, True),  # over the absolute cap
        (600, 700, False),  # a source accepted above the cap grows normally
        (0, 500, False),  # a first scrape within the cap is the baseline
        (0, 501, True),
    ],
)
def test_what_counts_as_a_balloon(usual: int, count: int, held: bool) -> None:
    # A baseline over the cap is what an admin's acceptance leaves.
    state = observe(SRC, SourceState(), _many(usual), hold_cap=10**6).state
    assert observe(SRC, state, _many(count)).held is held


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 600), st.integers(1, 5000))
def test_a_held_scrape_never_alerts_and_keeps_what_is_known(usual: int, count: int) -> None:
    state = observe(SRC, SourceState(), _many(usual), hold_cap=10**6).state
    outcome = observe(SRC, state, _many(count, start=usual // 2))
    if outcome.held:
        assert outcome.changes == ()
        assert outcome.state.known == state.known
        assert outcome.state.last_item_count == usual
    else:
        assert count <= max(HOLD_CAP, usual * HOLD_FACTOR) or count - usual <= HOLD_MARGIN


def test_a_first_scrape_over_the_cap_is_held_rather_than_taken_as_the_baseline() -> None:
    outcome = observe(SRC, SourceState(), _many(501))
    assert outcome.held and not outcome.state.baseline_done and outcome.state.known == {}
    [event] = outcome.admin
    assert "lists 501 promotions, over the cap of 500" in event.message
