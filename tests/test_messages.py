"""Reminder, test and dead-letter texts in every supported language."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, get_args

import pytest

from watcher.catalogue import LANGUAGES, Catalogue, load_catalogue
from watcher.masking import mask_phone
from watcher.messages import (
    PromotionItem,
    ReminderFacts,
    ReminderKind,
    format_date,
    format_days,
    format_money,
    render_dead_letter,
    render_promotions,
    render_reminder,
    render_test,
)

KINDS: tuple[ReminderKind, ...] = get_args(ReminderKind)
TODAY = date(2026, 11, 20)
RAW_NUMBER = "+77011234567"
USSD_LIKE = re.compile(r"[*#]\d[\d*#]*#")
TODAY_WORD = {"en": "today", "ru": "сегодня", "zh": "今天", "kk": "бүгін"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def make_facts(catalogue: Catalogue) -> Any:
    """A factory: reminder facts for a Kcell SIM, ``days_left`` from today, with overrides."""

    def make(kind: ReminderKind = "expiry", days_left: int = 5, **changes: Any) -> ReminderFacts:
        facts = ReminderFacts(
            kind=kind,
            sim_id="main",
            label="Main line",
            masked_number=mask_phone(RAW_NUMBER),
            operator=catalogue.get("kcell"),
            target=TODAY + timedelta(days=days_left),
            today=TODAY,
        )
        return replace(facts, **changes)

    return make


# --- numbers, days and dates ------------------------------------------------------------

RUSSIAN_DAYS = {
    0: "0 дней", 1: "1 день", 2: "2 дня", 3: "3 дня", 4: "4 дня", 5: "5 дней",
    6: "6 дней", 7: "7 дней", 8: "8 дней", 9: "9 дней", 10: "10 дней", 11: "11 дней",
    12: "12 дней", 13: "13 дней", 14: "14 дней", 15: "15 дней", 16: "16 дней",
    17: "17 дней", 18: "18 дней", 19: "19 дней", 20: "20 дней", 21: "21 день",
    22: "22 дня", 23: "23 дня", 24: "24 дня", 25: "25 дней", 101: "101 день",
    111: "111 дней",
}  # fmt: skip


@pytest.mark.parametrize(("count", "expected"), sorted(RUSSIAN_DAYS.items()))
def test_russian_days_take_the_right_plural_form(count: int, expected: str) -> None:
    assert format_days(count, "ru") == expected


@pytest.mark.parametrize(
    ("language", "count", "expected"),
    [
        ("en", 0, "0 days"), ("en", 1, "1 day"), ("en", 2, "2 days"), ("en", 21, "21 days"),
        ("kk", 1, "1 күн"), ("kk", 2, "2 күн"), ("kk", 25, "25 күн"),
        ("zh", 1, "1天"), ("zh", 11, "11天"),
        ("fr", 2, "2 days"),
    ],
)  # fmt: skip
def test_days_are_counted_in_each_language(language: str, count: int, expected: str) -> None:
    assert format_days(count, language) == expected


@pytest.mark.parametrize(
    ("day", "language", "expected"),
    [
        (date(2026, 12, 1), "en", "1 December 2026"),
        (date(2026, 12, 1), "ru", "1 декабря 2026"),
        (date(2026, 12, 1), "zh", "2026年12月1日"),
        (date(2026, 12, 1), "kk", "2026 жылғы 1 желтоқсан"),
        (date(2027, 3, 8), "en", "8 March 2027"),
        (date(2027, 3, 8), "ru", "8 марта 2027"),
        (date(2027, 3, 8), "zh", "2027年3月8日"),
        (date(2027, 3, 8), "kk", "2027 жылғы 8 наурыз"),
        (date(2027, 5, 15), "ru", "15 мая 2027"),
        (date(2027, 8, 31), "ru", "31 августа 2027"),
        (date(2027, 4, 2), "kk", "2027 жылғы 2 сәуір"),
        (date(2027, 1, 2), "fr", "2 January 2027"),
    ],
)
def test_dates_are_written_as_people_of_each_language_write_them(
    day: date, language: str, expected: str
) -> None:
    assert format_date(day, language) == expected


@pytest.mark.parametrize(
    ("amount", "language", "expected"),
    [
        (Decimal("1500.50"), "en", "1,500.50"),
        (Decimal("1500.50"), "ru", "1\u00a0500,50"),
        (Decimal("1500"), "kk", "1\u00a0500"),
        (Decimal("-20"), "zh", "-20"),
    ],
)
def test_money_uses_the_language_separators(amount: Decimal, language: str, expected: str) -> None:
    assert format_money(amount, language) == expected


# --- what every reminder says -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("days_left", [-3, 0, 1, 5, 21])
def test_every_reminder_names_the_sim_date_days_and_what_to_do(
    make_facts: Any, kind: ReminderKind, language: str, days_left: int
) -> None:
    facts = make_facts(kind, days_left)
    message = render_reminder(facts, language)
    instructions = (
        facts.operator.balance_instructions(language)
        if kind == "balance"
        else facts.operator.renew_instructions(language)
    )

    assert "Main line" in message.title
    for part in ("Main line", "+7 701 *** ** 67", "Kcell", format_date(facts.target, language)):
        assert part in message.body
    if days_left:
        assert format_days(abs(days_left), language) in message.body
    else:
        assert TODAY_WORD[language] in message.body.lower()
    assert message.body.endswith(instructions)
    assert "{" not in message.title + message.body


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_reminder_contains_the_raw_phone_number(
    make_facts: Any, kind: ReminderKind, language: str
) -> None:
    message = render_reminder(make_facts(kind), language)
    digits = re.sub(r"\D", "", message.title + message.body)
    assert "7011234567" not in digits
    assert "1234567" not in digits


@pytest.mark.parametrize(
    ("days_left", "title", "sentence"),
    [
        (5, "Main line: expires in 5 days", "expires in 5 days, on 25 November 2026."),
        (1, "Main line: expires in 1 day", "expires in 1 day, on 21 November 2026."),
        (0, "Main line: expires today", "expires today, 20 November 2026."),
        (-3, "Main line: expired 3 days ago", "expired 3 days ago, on 17 November 2026. Renew now"),
    ],
)
def test_expiry_reminder_says_when_the_sim_expires(
    make_facts: Any, days_left: int, title: str, sentence: str
) -> None:
    message = render_reminder(make_facts("expiry", days_left), "en")
    assert message.title == title
    assert sentence in message.body


@pytest.mark.parametrize(
    ("days_left", "phrase"),
    [(21, "истекает через 21 день"), (3, "истекает через 3 дня"), (-11, "истёк 11 дней назад")],
)
def test_russian_expiry_reminder_uses_the_right_plural(
    make_facts: Any, days_left: int, phrase: str
) -> None:
    message = render_reminder(make_facts("expiry", days_left), "ru")
    assert phrase in message.title
    assert phrase in message.body


@pytest.mark.parametrize(
    ("language", "recorded", "never"),
    [
        ("en", "Last balance check: 2 October 2026.", "No balance check recorded yet."),
        ("ru", "Последняя проверка баланса: 2 октября 2026.", "Проверок баланса пока не записано."),
        ("zh", "上次查询余额：2026年10月2日。", "尚无余额查询记录。"),
        ("kk", "Соңғы тексеру: 2026 жылғы 2 қазан.", "Баланс тексерісі әлі жазылмаған."),
    ],
)
def test_balance_reminder_mentions_the_last_check_or_that_there_was_none(
    make_facts: Any, language: str, recorded: str, never: str
) -> None:
    checked = make_facts("balance", last_balance_check=date(2026, 10, 2))
    assert recorded in render_reminder(checked, language).body
    assert never in render_reminder(make_facts("balance"), language).body


@pytest.mark.parametrize(
    ("balance", "threshold", "warned"),
    [
        (Decimal("300"), Decimal("1000"), True),
        (Decimal("1000"), Decimal("1000"), False),
        (Decimal("2500"), Decimal("1000"), False),
        (Decimal("300"), None, False),
        (None, Decimal("1000"), False),
    ],
)
def test_balance_reminder_warns_only_when_the_balance_is_below_the_threshold(
    make_facts: Any, balance: Decimal | None, threshold: Decimal | None, warned: bool
) -> None:
    facts = make_facts("balance", balance=balance, low_balance=threshold)
    body = render_reminder(facts, "en").body
    assert ("is below your threshold of 1,000" in body) is warned


def test_balance_reminder_quotes_balance_instructions(make_facts: Any) -> None:
    body = render_reminder(make_facts("balance"), "en").body
    assert "*100#" in body  # Kcell's verified package code
    assert "*245#" not in body  # the app password belongs to renewal advice


@pytest.mark.parametrize(
    ("language", "amounts"),
    [
        ("en", "is 300.50, below your threshold of 1,000."),
        ("ru", "записанный баланс 300,50 ниже вашего порога 1\u00a0000."),
        ("zh", "记录的余额 300.50 低于您设定的阈值 1,000。"),
        ("kk", "жазылған баланс 300,50, бұл сіз белгілеген 1\u00a0000 шегінен төмен."),
    ],
)
def test_low_balance_reminder_states_balance_and_threshold(
    make_facts: Any, language: str, amounts: str
) -> None:
    facts = make_facts("low_balance", balance=Decimal("300.50"), low_balance=Decimal("1000"))
    assert amounts in render_reminder(facts, language).body


def test_low_balance_reminder_without_amounts_still_reads_well(make_facts: Any) -> None:
    body = render_reminder(make_facts("low_balance", 4), "en").body
    assert "is below your threshold." in body
    assert "Top up before the monthly fee on 24 November 2026, in 4 days." in body


@pytest.mark.parametrize(
    ("days_left", "sentence"),
    [
        (10, "may be reclaimed for inactivity in 10 days, on 30 November 2026."),
        (0, "may be reclaimed for inactivity today, 20 November 2026."),
        (-2, "passed 2 days ago, on 18 November 2026. Make a paid action now"),
    ],
)
def test_idle_reminder_asks_for_a_paid_action(
    make_facts: Any, days_left: int, sentence: str
) -> None:
    body = render_reminder(make_facts("idle", days_left), "en").body
    assert sentence in body
    assert "top-up" in body


# --- languages --------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["fr", "de-DE", "", "xx"])
@pytest.mark.parametrize("kind", KINDS)
def test_unsupported_language_falls_back_to_english(
    make_facts: Any, language: str, kind: ReminderKind
) -> None:
    facts = make_facts(kind)
    assert render_reminder(facts, language) == render_reminder(facts, "en")


@pytest.mark.parametrize(("regional", "language"), [("ru-RU", "ru"), ("kk_KZ", "kk"), ("ZH", "zh")])
def test_regional_language_tags_use_the_base_language(
    make_facts: Any, regional: str, language: str
) -> None:
    assert render_reminder(make_facts(), regional) == render_reminder(make_facts(), language)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("days_left", [-3, 0, 5])
@pytest.mark.parametrize("language", ["ru", "zh", "kk"])
def test_every_template_is_translated(
    make_facts: Any, kind: ReminderKind, days_left: int, language: str
) -> None:
    facts = make_facts(
        kind,
        days_left,
        last_balance_check=date(2026, 10, 2),
        balance=Decimal(1),
        low_balance=Decimal(2),
    )
    english = render_reminder(facts, "en")
    translated = render_reminder(facts, language)
    assert translated.title != english.title
    assert translated.body.split("\n\n")[0] != english.body.split("\n\n")[0]


# --- the verified-code rule across everything a user can receive ------------------------


def test_no_message_quotes_an_unverified_code(catalogue: Catalogue, make_facts: Any) -> None:
    unverified = {"*105#"}  # Tele2 Russia's balance code: never right for Kazakhstan
    for operator_id in catalogue.known_ids():
        for code in catalogue.get(operator_id).ussd.values():
            if not code.verified and code.code:
                unverified.add(code.code)
    assert "*102#" in unverified  # the scan below really looks for something

    for operator_id in [*catalogue.known_ids(), "unknown-operator"]:
        operator = catalogue.get(operator_id)
        allowed = set(operator.verified_codes().values())
        for kind in KINDS:
            for language in [*LANGUAGES, "fr"]:
                for days_left in (-3, 0, 5):
                    facts = make_facts(kind, days_left, operator=operator)
                    message = render_reminder(facts, language)
                    text = message.title + message.body
                    assert not any(code in text for code in unverified), (operator_id, kind)
                    assert set(USSD_LIKE.findall(text)) <= allowed, (operator_id, kind)


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_operator_reminder_is_named_as_written_with_generic_advice(
    catalogue: Catalogue, make_facts: Any, language: str
) -> None:
    operator = catalogue.get("Freedom Mobile")
    body = render_reminder(make_facts("expiry", operator=operator), language).body
    assert "Freedom Mobile" in body
    assert body.endswith(operator.renew_instructions(language))
    assert not USSD_LIKE.search(body)


# --- test and dead-letter messages ------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "title"),
    [
        ("en", "SIM Watcher: test notification"),
        ("ru", "SIM Watcher: тестовое уведомление"),
        ("zh", "SIM Watcher：测试通知"),
        ("kk", "SIM Watcher: сынақ хабарламасы"),
        ("fr", "SIM Watcher: test notification"),
    ],
)
def test_test_notification_names_the_channel(language: str, title: str) -> None:
    message = render_test(language, "family-telegram")
    assert message.title == title
    assert "family-telegram" in message.body


def test_test_notification_never_shows_a_channel_url() -> None:
    message = render_test("en", "tgram://123456:SECRETTOKEN/987")
    assert "SECRETTOKEN" not in message.body
    assert "tgram://***" in message.body


def test_dead_letter_tells_the_admin_what_was_given_up() -> None:
    message = render_dead_letter(
        "family-email", "Main line: expires in 5 days", "2026-11-20 09:00 UTC", "SMTP timeout"
    )
    assert "family-email" in message.title
    for part in (
        '"Main line: expires in 5 days"',
        "channel family-email",
        "since 2026-11-20 09:00 UTC",
        "Last error: SMTP timeout",
        "given up",
    ):
        assert part in message.body


# --- promotions ----------------------------------------------------------------------

ESIM = PromotionItem(
    kind="new",
    title="eSIM за 0 ₸",
    source_name="Kcell",
    link="https://www.kcell.kz/ru/p/esim",
    summary="Подключите eSIM   бесплатно\nв приложении",
    ends=date(2026, 12, 31),
    price_text="0 ₸",
)


@pytest.mark.parametrize(
    ("language", "title", "until"),
    [
        ("en", "New promotion: eSIM за 0 ₸", "until 31 December 2026"),
        ("ru", "Новая акция: eSIM за 0 ₸", "до 31 декабря 2026"),
        ("zh", "新优惠：eSIM за 0 ₸", "截至2026年12月31日"),
        ("kk", "Жаңа акция: eSIM за 0 ₸", "2026 жылғы 31 желтоқсанға дейін"),
    ],
)
def test_a_new_promotion_names_itself_its_source_dates_price_and_link(
    language: str, title: str, until: str
) -> None:
    message = render_promotions([ESIM], language)
    assert message.title == title
    assert "eSIM за 0 ₸ — Kcell" in message.body
    assert until in message.body
    assert "0 ₸" in message.body
    assert "Подключите eSIM бесплатно в приложении" in message.body  # whitespace collapsed
    assert message.body.endswith("https://www.kcell.kz/ru/p/esim")


def test_a_changed_promotion_says_what_it_was() -> None:
    changed = PromotionItem(
        kind="changed",
        title="Роуминг 10 ГБ",
        source_name="Beeline",
        price_text="1 990 ₸",
        before_price_text="2 990 ₸",
        before_title="Роуминг 5 ГБ",
        changed_fields=("price",),
    )
    message = render_promotions([changed], "en")
    assert message.title == "Promotion changed: Роуминг 10 ГБ"
    assert "was: 2 990 ₸" in message.body
    assert "Роуминг 5 ГБ" not in message.body  # the title did not change


def test_several_promotions_make_one_message_and_a_long_list_is_cut_with_a_count() -> None:
    items = [replace(ESIM, title=f"Offer {n}") for n in range(30)]
    message = render_promotions(items, "en")
    assert message.title == "30 promotion updates"
    assert "Offer 24" in message.body
    assert "Offer 25" not in message.body
    assert "…and 5 more: `watcher promotions` lists them all." in message.body
    digest = render_promotions(items[:2], "ru", digest=True)
    assert digest.title == "Дайджест акций: 2"


def test_a_huge_page_title_is_cut_in_the_message() -> None:
    message = render_promotions([replace(ESIM, title="Очень " * 200)], "en")
    assert len(message.title) < 120
    first_line = message.body.splitlines()[0]
    assert len(first_line) < 200
    assert first_line.count("Очень") < 40
