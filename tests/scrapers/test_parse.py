"""The pure parsers: dates, prices, data allowances, whitespace. Tables first."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrapers._parse import normalise_space, parse_data_gb, parse_dates, parse_price

TODAY = date(2026, 6, 1)
D = date


@pytest.mark.parametrize(
    ("text", "starts", "ends"),
    [
        # Russian
        ("до 31 декабря", None, D(2026, 12, 31)),
        ("Акция действует до 31 декабря 2026 года", None, D(2026, 12, 31)),
        ("с 1 по 15 ноября", D(2026, 11, 1), D(2026, 11, 15)),
        ("с 1 ноября по 15 декабря 2026", D(2026, 11, 1), D(2026, 12, 15)),
        ("С 1 ноября по 15 декабря 2026 г.", D(2026, 11, 1), D(2026, 12, 15)),
        ("c 1 ноября", D(2026, 11, 1), None),  # a Latin "c", as typed on a Russian keyboard
        ("до 31.12.2026", None, D(2026, 12, 31)),
        ("по 15.11", None, D(2026, 11, 15)),
        ("01.11–15.11.2026", D(2026, 11, 1), D(2026, 11, 15)),
        ("01.11.2026 - 15.11.2026", D(2026, 11, 1), D(2026, 11, 15)),
        ("31 декабря 2026 г.", D(2026, 12, 31), None),  # a lone date is the start
        ("1-го ноября", D(2026, 11, 1), None),
        ("до 5 янв.", None, D(2027, 1, 5)),
        ("до 1 мая", None, D(2026, 5, 1)),  # a month ago: the card is stale, not next year's
        ("до 31 марта", None, D(2027, 3, 31)),  # more than 60 days ago: next year
        ("с 15 декабря по 15 января", D(2026, 12, 15), D(2027, 1, 15)),
        ("с 1 ноября 2026 по 15 января", D(2026, 11, 1), D(2027, 1, 15)),
        ("начиная с 10 июня", D(2026, 6, 10), None),
        ("Период: с 04.09.2018 года по 30.09.2018 года до 23:59", D(2018, 9, 4), D(2018, 9, 30)),
        # with a marked date about, an unmarked one is not read (results, publication...)
        ("Итоги 15 ноября, акция до 31 декабря", None, D(2026, 12, 31)),
        ("до 31.12.26", None, D(2026, 12, 31)),
        ("1 ноября 2000 тенге бонусом", D(2026, 11, 1), None),  # 2000 is money, not a year
        # Kazakh
        ("31 желтоқсанға дейін", None, D(2026, 12, 31)),
        ("1 қарашадан 15 қарашаға дейін", D(2026, 11, 1), D(2026, 11, 15)),
        ("1 қарашадан бастап", D(2026, 11, 1), None),
        ("2026 жылғы 31 желтоқсанға дейін", None, D(2026, 12, 31)),
        ("2011 жылдың 28-наурызынан 2011 жылдың 15-сәуіріне дейін", D(2011, 3, 28), D(2011, 4, 15)),
        ("31.12.2026 ж. дейін", None, D(2026, 12, 31)),
        ("5 шілдеге дейін", None, D(2026, 7, 5)),
        # English
        ("until 31 December", None, D(2026, 12, 31)),
        ("valid until 31 December 2026", None, D(2026, 12, 31)),
        ("1–15 November 2026", D(2026, 11, 1), D(2026, 11, 15)),
        ("Dec 31, 2026", D(2026, 12, 31), None),
        ("Offer ends Dec 31", None, D(2026, 12, 31)),
        ("from 1 November to 15 December 2026", D(2026, 11, 1), D(2026, 12, 15)),
        ("Nov 1 – Dec 15, 2026", D(2026, 11, 1), D(2026, 12, 15)),
        ("Dec 1–15, 2026", D(2026, 12, 1), D(2026, 12, 15)),
        ("through the 31st of December", None, D(2026, 12, 31)),
        ("September 5th", D(2026, 9, 5), None),
        # numeric and ISO
        ("31.12.2026", D(2026, 12, 31), None),
        ("2026-12-31", D(2026, 12, 31), None),
        ("2026-12-31T23:59:59+05:00", D(2026, 12, 31), None),
        ("from 2026-11-01 to 2026-11-30", D(2026, 11, 1), D(2026, 11, 30)),
        # not dates, or impossible ones: None, never an exception
        ("", None, None),
        ("Тариф без переплат", None, None),
        ("31 февраля", None, None),
        ("до 31 февраля 2026", None, None),
        ("до 30.02.2026", None, None),
        ("32.01.2026", None, None),
        ("2026-13-01", None, None),
        ("до 29 февраля", None, None),  # no leap day within a year either way
        ("10.50 USD", None, None),  # a price, not the 10th of a 50th month
        ("15.11", None, None),  # dd.mm alone is too often not a date
        ("1.5 ГБ", None, None),
        ("версия 2.10", None, None),
        ("25 маркетинговых акций", None, None),
        ("с 10:00 до 18:00", None, None),
        ("от 1 до 5 ГБ", None, None),
        ("31 декабря 1812 года", None, None),  # out of range
        ("с 15 по 1 ноября", None, D(2026, 11, 1)),  # backwards: keep the deadline
    ],
)
def test_parse_dates(text: str, starts: date | None, ends: date | None) -> None:
    assert parse_dates(text, TODAY) == (starts, ends)


@pytest.mark.parametrize(
    ("month", "words"),
    [
        (1, ["января", "январь", "янв.", "Января", "қаңтар", "қаңтарға", "January", "Jan"]),
        (2, ["февраля", "февр.", "фев", "ақпан", "ақпаннан", "February", "Feb."]),
        (3, ["марта", "март", "мар", "наурыз", "наурызынан", "March", "Mar"]),
        (4, ["апреля", "апр", "сәуір", "сәуірге", "сәуіріне", "April", "Apr"]),
        (5, ["мая", "май", "мамыр", "мамырға", "May"]),
        (6, ["июня", "июнь", "июн", "маусым", "маусымнан", "June", "Jun"]),
        (7, ["июля", "июль", "июл", "шілде", "шілдеге", "шiлде", "July", "Jul"]),
        (8, ["августа", "август", "авг.", "тамыз", "тамызда", "August", "Aug"]),
        (9, ["сентября", "сент.", "сен", "қыркүйек", "қыркүйекке", "September", "Sept", "Sep"]),
        (10, ["октября", "окт", "қазан", "қазанға", "October", "Oct"]),
        (11, ["ноября", "нояб.", "ноя", "қараша", "қарашаның", "November", "Nov"]),
        (12, ["декабря", "дек.", "желтоқсан", "желтоқсанда", "December", "Dec"]),
    ],
)
def test_every_month_word(month: int, words: list[str]) -> None:
    for word in words:
        assert parse_dates(f"7 {word} 2027", TODAY) == (D(2027, month, 7), None), word


@pytest.mark.parametrize(
    ("today", "text", "ends"),
    [
        (D(2026, 1, 10), "до 31 декабря", D(2025, 12, 31)),  # ten days ago: just ended
        (D(2026, 3, 15), "до 31 декабря", D(2026, 12, 31)),
        (D(2026, 12, 20), "до 15 января", D(2027, 1, 15)),
        (D(2026, 7, 31), "до 1 июня", D(2026, 6, 1)),  # 60 days back: still this year
        (D(2026, 8, 1), "до 1 июня", D(2027, 6, 1)),  # 61 days back: next year
        (D(2027, 12, 1), "до 29 февраля", D(2028, 2, 29)),  # the next leap day
    ],
)
def test_a_missing_year_is_the_nearest_sensible_one(today: date, text: str, ends: date) -> None:
    assert parse_dates(text, today) == (None, ends)


def test_a_lone_start_without_year_is_the_nearest_one() -> None:
    assert parse_dates("с 1 декабря", D(2026, 1, 20)) == (D(2025, 12, 1), None)
    assert parse_dates("с 1 марта", D(2026, 1, 20)) == (D(2026, 3, 1), None)


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("2 990 ₸", "2990", "KZT"),
        ("2\u00a0990\u00a0₸", "2990", "KZT"),  # NBSP
        ("2\u2009990 ₸", "2990", "KZT"),  # thin space
        ("2\u202f990₸", "2990", "KZT"),  # narrow NBSP
        ("2990 тг", "2990", "KZT"),
        ("2990 тг.", "2990", "KZT"),
        ("2 990 тенге", "2990", "KZT"),
        ("2 990 теңге", "2990", "KZT"),
        ("₸ 1 500", "1500", "KZT"),
        ("KZT 1500", "1500", "KZT"),
        ("1 500,50 ₸", "1500.50", "KZT"),
        ("1500.5 KZT", "1500.5", "KZT"),
        ("2.990 ₸", "2990", "KZT"),  # a dot before three digits groups thousands
        ("1 000 000 ₸", "1000000", "KZT"),
        ("$5", "5", "USD"),
        ("$5.99", "5.99", "USD"),
        ("5 USD", "5", "USD"),
        ("10 долларов", "10", "USD"),
        ("€ 12,50", "12.50", "EUR"),
        ("100 руб.", "100", "RUB"),
        ("200 ₽", "200", "RUB"),
        ("от 1990 ₸/мес", "1990", "KZT"),
        ("50 ГБ за 2 990 ₸", "2990", "KZT"),
        ("Тариф 5 990 ₸ в месяц, 30 дней", "5990", "KZT"),
        ("0 ₸", "0", "KZT"),
        ("2 990 ₸ вместо 5 990 ₸", "2990", "KZT"),  # the first price
    ],
)
def test_parse_price(text: str, amount: str, currency: str) -> None:
    assert parse_price(text) == (Decimal(amount), currency)


@pytest.mark.parametrize(
    "text",
    ["", "Бесплатно", "50 ГБ", "скидка 50%", "20 %", "*720*1#", "12 месяцев", "тг", "₸", "1.5"],
)
def test_no_price(text: str) -> None:
    assert parse_price(text) == (None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 990", (Decimal(2990), None)),
        ("1 500,50", (Decimal("1500.50"), None)),
        ("нет", (None, None)),
    ],
)
def test_a_bare_number_is_a_price_only_when_asked(
    text: str, expected: tuple[Decimal | None, str | None]
) -> None:
    assert parse_price(text, bare_ok=True) == expected
    assert parse_price(text) == (None, None)


@pytest.mark.parametrize(
    ("text", "gigabytes"),
    [
        ("50 ГБ", "50"),
        ("50 GB", "50"),
        ("50GB", "50"),
        ("30 Гб", "30"),
        ("30 гб", "30"),
        ("500 МБ", "0.5"),
        ("500 MB", "0.5"),
        ("1,5 ГБ", "1.5"),
        ("2.5 GB", "2.5"),
        ("1 ТБ", "1000"),
        ("10 гигабайт", "10"),
        ("Пакет «Интернет 20 ГБ» за 1 990 ₸", "20"),
        ("безлимит на соцсети + 20 ГБ", "20"),
        ("20 ГБ сыйлық", "20"),
    ],
)
def test_parse_data_gb(text: str, gigabytes: str) -> None:
    value = parse_data_gb(text)
    assert value == Decimal(gigabytes)
    assert str(value) == gigabytes  # 0.5 not 0.500, 50 not 5E+1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "безлимит",
        "Безлимитный интернет",
        "unlimited data",
        "шексіз интернет",
        "10 Мбит/с",
        "5G",
    ],
)
def test_no_data_allowance(text: str) -> None:
    assert parse_data_gb(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a  b  ", "a b"),
        ("a\u00a0b\u2009c\u202fd", "a b c d"),
        ("a\n\t\r b", "a b"),
        ("a\u200bb", "ab"),  # zero-width space
        ("по\u00adка", "пока"),  # soft hyphen
        ("\ufeffBOM", "BOM"),
        ("", ""),
    ],
)
def test_normalise_space(text: str, expected: str) -> None:
    assert normalise_space(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.dates(min_value=D(1991, 1, 1), max_value=D(2099, 1, 1)))
def test_parsers_never_raise(text: str, today: date) -> None:
    starts, ends = parse_dates(text, today)
    assert starts is None or ends is None or starts <= ends
    parse_price(text, bare_ok=True)
    parse_data_gb(text)
    assert normalise_space(normalise_space(text)) == normalise_space(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "до",
                "с",
                "по",
                "31",
                "1",
                "декабря",
                "қарашадан",
                "дейін",
                "–",
                ".",
                "2026",
                " ",
                "12",
            ]
        ),
        max_size=30,
    )
)
def test_date_like_noise_never_raises(words: list[str]) -> None:
    parse_dates(" ".join(words), TODAY)
    parse_dates("".join(words), TODAY)


def test_parsing_stays_linear_on_long_text() -> None:
    text = "до 31 декабря 2 990 ₸ 50 ГБ " * 20_000 + "1" * 100_000
    assert parse_dates(text, TODAY)[1] == D(2026, 12, 31)
    assert parse_price(text) == (Decimal(2990), "KZT")
    assert parse_data_gb(text) == Decimal(50)


@pytest.mark.parametrize(
    "text",
    [
        "1" + " " * 10_000 + "-" + " " * 10_000 + "x",  # was 19 s before possessive \s*+
        "1 ноября" + " " * 10_000 + "," + " " * 10_000 + "x",
        "dec" + " " * 10_000 + "1" + " " * 10_000 + "-" + " " * 10_000,
        "2026" + " " * 10_000 + "жыл" + " " * 10_000,
        ("1" + " " * 300 + "по" + " " * 300) * 50,
        ("2" + "\u00a0" * 300) * 100 + "₸",
        "1." * 20_000,
        "1-" * 20_000 + "ноября",
        "1 of" * 5_000 + " x",
    ],
    ids=["dash", "comma", "month-first", "kk-year", "connector", "nbsp", "dots", "dashes", "of"],
)
def test_long_runs_of_whitespace_and_separators_stay_fast(text: str) -> None:
    started = time.perf_counter()
    parse_dates(text, TODAY)
    parse_price(text, bare_ok=True)
    parse_data_gb(text)
    assert time.perf_counter() - started < 1
