"""Kazakh and Russian grammar in messages, table by table, as a native reader expects.

Month names and Russian plural categories were checked against CLDR (Babel 2.18): the
same. CLDR has no Kazakh case forms, so those tables are written out here by hand.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from watcher.catalogue import load_catalogue
from watcher.messages import (
    PromotionItem,
    ReminderFacts,
    format_date,
    format_days,
    kazakh_case,
    render_promotions,
    render_reminder,
)

TODAY = date(2026, 11, 20)

# --- Kazakh: "дейін" takes the dative, "бастап" and "кейін" the ablative -----------------

KK_MONTHS = [
    # nominative, dative, ablative
    ("қаңтар", "қаңтарға", "қаңтардан"),
    ("ақпан", "ақпанға", "ақпаннан"),
    ("наурыз", "наурызға", "наурыздан"),
    ("сәуір", "сәуірге", "сәуірден"),
    ("мамыр", "мамырға", "мамырдан"),
    ("маусым", "маусымға", "маусымнан"),
    ("шілде", "шілдеге", "шілдеден"),
    ("тамыз", "тамызға", "тамыздан"),
    ("қыркүйек", "қыркүйекке", "қыркүйектен"),
    ("қазан", "қазанға", "қазаннан"),
    ("қараша", "қарашаға", "қарашадан"),
    ("желтоқсан", "желтоқсанға", "желтоқсаннан"),
]


@pytest.mark.parametrize(("month", "forms"), list(enumerate(KK_MONTHS, 1)))
def test_kazakh_month_names_take_the_dative_and_ablative_by_vowel_harmony(
    month: int, forms: tuple[str, str, str]
) -> None:
    nominative, dative, ablative = forms
    written = format_date(date(2027, month, 15), "kk")
    assert written == f"2027 жылғы 15 {nominative}"
    assert kazakh_case(written, "dative") == f"2027 жылғы 15 {dative}"
    assert kazakh_case(written, "ablative") == f"2027 жылғы 15 {ablative}"


KK_NUMERALS = {
    # number: (dative, ablative), by its last spoken word
    0: ("0-ге", "0-ден"),  # нөл
    1: ("1-ге", "1-ден"),  # бір
    2: ("2-ге", "2-ден"),  # екі
    3: ("3-ке", "3-тен"),  # үш
    4: ("4-ке", "4-тен"),  # төрт
    5: ("5-ке", "5-тен"),  # бес
    6: ("6-ға", "6-дан"),  # алты
    7: ("7-ге", "7-ден"),  # жеті
    8: ("8-ге", "8-ден"),  # сегіз
    9: ("9-ға", "9-дан"),  # тоғыз
    10: ("10-ға", "10-нан"),  # он
    15: ("15-ке", "15-тен"),  # он бес
    20: ("20-ға", "20-дан"),  # жиырма
    30: ("30-ға", "30-дан"),  # отыз
    40: ("40-қа", "40-тан"),  # қырық
    50: ("50-ге", "50-ден"),  # елу
    60: ("60-қа", "60-тан"),  # алпыс
    70: ("70-ке", "70-тен"),  # жетпіс
    80: ("80-ге", "80-нен"),  # сексен
    90: ("90-ға", "90-нан"),  # тоқсан
    100: ("100-ге", "100-ден"),  # жүз
    300: ("300-ге", "300-ден"),  # үш жүз
    1000: ("1000-ға", "1000-нан"),  # мың
    2026: ("2026-ға", "2026-дан"),  # екі мың жиырма алты
    2030: ("2030-ға", "2030-дан"),  # ... отыз
    1_000_000: ("1000000-ға", "1000000-нан"),  # миллион
    10**9: ("1000000000-қа", "1000000000-тан"),  # миллиард
}


@pytest.mark.parametrize(("number", "forms"), sorted(KK_NUMERALS.items()))
def test_kazakh_numerals_take_the_ending_of_their_last_word(
    number: int, forms: tuple[str, str]
) -> None:
    assert (kazakh_case(str(number), "dative"), kazakh_case(str(number), "ablative")) == forms


def test_a_kazakh_word_without_a_known_case_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="no Kazakh dative known"):
        kazakh_case("15 January", "dative")


PROMO = PromotionItem(kind="new", title="eSIM", source_name="Kcell")


@pytest.mark.parametrize(
    ("language", "starts", "ends", "expected"),
    [
        ("kk", None, date(2027, 1, 15), "2027 жылғы 15 қаңтарға дейін"),
        ("kk", None, date(2027, 9, 1), "2027 жылғы 1 қыркүйекке дейін"),
        ("kk", None, date(2027, 4, 30), "2027 жылғы 30 сәуірге дейін"),
        ("kk", None, date(2027, 7, 3), "2027 жылғы 3 шілдеге дейін"),
        ("kk", date(2027, 9, 1), None, "2027 жылғы 1 қыркүйектен бастап"),
        ("kk", date(2027, 6, 1), None, "2027 жылғы 1 маусымнан бастап"),
        ("kk", date(2027, 3, 8), None, "2027 жылғы 8 наурыздан бастап"),
        ("ru", None, date(2027, 1, 15), "до 15 января 2027"),
        ("ru", date(2027, 3, 8), None, "с 8 марта 2027"),
    ],
)
def test_promotion_dates_take_the_case_their_preposition_or_postposition_needs(
    language: str, starts: date | None, ends: date | None, expected: str
) -> None:
    body = render_promotions([replace(PROMO, starts=starts, ends=ends)], language).body
    assert body.splitlines()[1] == expected


def _reminder(kind: str, days_left: int, language: str) -> str:
    facts = ReminderFacts(
        kind=kind,  # type: ignore[arg-type]
        sim_id="main",
        label="Main",
        masked_number="+7 701 *** ** 67",
        operator=load_catalogue().get("kcell"),
        target=TODAY + timedelta(days=days_left),
        today=TODAY,
    )
    message = render_reminder(facts, language)
    return f"{message.title}\n{message.body}"


@pytest.mark.parametrize(
    ("kind", "days_left", "phrase"),
    [
        ("expiry", 1, "мерзімі 1 күннен кейін бітеді"),
        ("expiry", 5, "мерзімі 5 күннен кейін аяқталады — 2026 жылғы 25 қараша"),
        ("balance", 14, "балансты 14 күннен кейін тексеріңіз"),
        ("idle", 3, "нөмір 3 күннен кейін қауіпте"),
        ("expiry", -2, "мерзімі 2 күн бұрын бітті"),
    ],
)
def test_kazakh_reminders_count_days_in_the_ablative_before_kejin(
    kind: str, days_left: int, phrase: str
) -> None:
    assert phrase in _reminder(kind, days_left, "kk")


# --- Russian: plural forms of days and genitive month names ----------------------------

RU_DAYS = {
    1: "1 день", 2: "2 дня", 4: "4 дня", 5: "5 дней", 11: "11 дней", 12: "12 дней",
    14: "14 дней", 21: "21 день", 22: "22 дня", 25: "25 дней", 100: "100 дней",
    101: "101 день", 102: "102 дня", 111: "111 дней", 112: "112 дней", 121: "121 день",
    1001: "1001 день", 1011: "1011 дней",
}  # fmt: skip


@pytest.mark.parametrize(("count", "expected"), sorted(RU_DAYS.items()))
def test_russian_days_agree_with_their_number(count: int, expected: str) -> None:
    assert format_days(count, "ru") == expected


RU_MONTHS = [
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
]  # fmt: skip


@pytest.mark.parametrize(("month", "genitive"), list(enumerate(RU_MONTHS, 1)))
def test_russian_dates_use_the_genitive_month(month: int, genitive: str) -> None:
    assert format_date(date(2027, month, 15), "ru") == f"15 {genitive} 2027"


@pytest.mark.parametrize(
    ("kind", "days_left", "phrase"),
    [
        ("expiry", 1, "срок истекает через 1 день"),
        ("expiry", 2, "срок истекает через 2 дня"),
        ("expiry", 5, "срок действия истекает через 5 дней, 25 ноября 2026."),
        ("expiry", 21, "срок истекает через 21 день"),
        ("expiry", -11, "срок истёк 11 дней назад"),
        ("balance", -22, "проверка баланса просрочена на 22 дня"),
        ("idle", 111, "через 111 дней"),
    ],
)
def test_russian_reminders_agree_in_number(kind: str, days_left: int, phrase: str) -> None:
    assert phrase in _reminder(kind, days_left, "ru")
