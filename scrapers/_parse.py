"""Pure parsers for what promotion cards say: dates, prices and data allowances.

Every function here takes text and returns values or None: malformed, impossible or
hostile input never raises (``31 февраля`` is None, not a ValueError), and the work is
linear in the length of the text. Russian, Kazakh (where the grammar allows a simple
reading) and English are understood.

Dates (:func:`parse_dates`) come back as ``(starts, ends)``:

- ``до 31 декабря``, ``по 15.11``, ``until 31 December``, ``31 желтоқсанға дейін``: an end;
- ``с 1 ноября``, ``from 1 November``, ``1 қарашадан``, ``1 қарашадан бастап``: a start;
- ``с 1 по 15 ноября``, ``1–15 November 2026``, ``01.11–15.11.2026``,
  ``1 қарашадан 15 қарашаға дейін``, ``Nov 1 – Dec 15, 2026``: a range; the first date
  borrows the month and year of the second when it lacks them;
- a lone date with no word around it (``31.12.2026``, ``Dec 31, 2026``) is read as the
  start. On listing cards such a date is most often the publication or launch date,
  while deadlines nearly always say до / until / дейін. When any date in the text is
  marked, unmarked ones are ignored ("Итоги 15 ноября, акция до 31 декабря" has only
  an end);
- a start that would fall after its end is dropped: the end is what readers act on.

Numeric dates are day first (``31.12.2026``, ``31.12.26``) or ISO (``2026-12-31``).
Slashed dates (``12/11/2026``) are not read: day-first and month-first both occur and
a wrong guess is worse than none. ``dd.mm`` without a year is read only next to a word
or a dash that makes it a date (``до 15.11``, ``01.11–15.11.2026``): on its own it is
too often a price or a version.

A year left out is inferred from ``today`` (the caller's date; nothing here reads a clock):

- an end date is the first of last year, this year or next year that is not more than
  :data:`RECENT_PAST` (60 days) before ``today``: "до 31 мая" read on 1 June is the
  31 May just gone (the card may be stale), read in September it is next May;
- a start date in a range takes the end's year, or the year before when that would put
  it after the end (``с 15 декабря по 15 января``);
- an end whose start has an explicit year is the first such date on or after the start;
- a lone start date is the one nearest to ``today``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal

__all__ = ["RECENT_PAST", "normalise_space", "parse_data_gb", "parse_dates", "parse_price"]

RECENT_PAST = timedelta(days=60)
_MIN_YEAR, _MAX_YEAR = 1990, 2100

# Zero-width characters and the soft hyphen: invisible, but they split words and keys.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_DIGIT = re.compile(r"\d")


def normalise_space(text: str) -> str:
    """Collapse every run of Unicode whitespace (NBSP, thin spaces, newlines...) to one
    space, drop zero-width characters and soft hyphens, and strip both ends."""
    for char in _INVISIBLE:  # (cheaper than a regex or translate when, as usual, absent)
        if char in text:
            text = text.replace(char, "")
    return " ".join(text.split())


# --- dates --------------------------------------------------------------------------

_NOT_LETTER = r"(?![^\W\d_])"  # the word ends here
_KK_SUFFIX = r"[а-яәғқңөұүһіi]{0,6}"  # Kazakh case and possessive endings: -ға, -дан, -ынан...

# Month number -> alternatives: Russian (genitive, nominative, abbreviations), Kazakh
# (stem; any case ending follows) and English (full name, abbreviation).
_MONTHS: dict[int, tuple[str, str, str]] = {
    1: (r"январ[ья]|янв", r"қаңтар", r"january|jan"),
    2: (r"феврал[ья]|февр?", r"ақпан", r"february|feb"),
    3: (r"марта?|мар", r"наурыз", r"march|mar"),
    4: (r"апрел[ья]|апр", r"сәу[іi]р", r"april|apr"),
    5: (r"ма[йя]", r"мамыр", r"may"),
    6: (r"июн[ья]?", r"маусым", r"june|jun"),
    7: (r"июл[ья]?", r"ш[іi]лде", r"july|jul"),
    8: (r"августа?|авг", r"тамыз", r"august|aug"),
    9: (r"сентябр[ья]|сент?", r"қырк[үу]йек", r"september|sept?"),
    10: (r"октябр[ья]|окт", r"қазан", r"october|oct"),
    11: (r"ноябр[ья]|нояб?", r"қараша", r"november|nov"),
    12: (r"декабр[ья]|дек", r"желтоқсан", r"december|dec"),
}


def _month_pattern(ru: str, kk: str, en: str) -> str:
    return rf"(?:(?:{ru}|{en})\.?{_NOT_LETTER}|(?:{kk}){_KK_SUFFIX}{_NOT_LETTER})"


# Every month word above is told apart by its first three letters (мар/мая, июн/июл...).
_MONTH_BY_PREFIX = {
    "янв": 1, "фев": 2, "мар": 3, "апр": 4, "май": 5, "мая": 5, "июн": 6, "июл": 7,
    "авг": 8, "сен": 9, "окт": 10, "ноя": 11, "дек": 12,
    "қаң": 1, "ақп": 2, "нау": 3, "сәу": 4, "мам": 5, "мау": 6, "шіл": 7, "шiл": 7,
    "там": 8, "қыр": 9, "қаз": 10, "қар": 11, "жел": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_ANY_MONTH = "|".join(_month_pattern(*forms) for forms in _MONTHS.values())
_EN_MONTH = "|".join(rf"(?:{forms[2]})\.?{_NOT_LETTER}" for forms in _MONTHS.values())

# Any four digits after a day and month are its year (out of range: no date at all),
# unless they are really an amount ("1 ноября 2000 тенге бонусом").
_YEAR = r"\d{4}(?!\d)(?!\s*+(?:₸|тг|тенге|теңге|kzt|\$|руб|%|гб|мб|gb|mb|мин|sms|смс))"
_ORDINAL = r"(?:\s*+-?+\s*+(?:го|ое|е|ші|шы|st|nd|rd|th)(?![^\W\d_]))?"
_CONNECTOR = r"(?:\s*+[–—-]\s*+|\s++(?:по|до|to|until|till|through|and|и)\s++)"

_DATE_RE = re.compile(
    # Matched against lowercased text (case-insensitive matching is several times slower).
    # Whitespace is matched possessively (\s*+): a month cannot start with a space or a
    # dash, so giving any back could never help, and backtracking over long runs of
    # spaces would make the work quadratic.
    # Every form starts with a digit or an English month: reject other positions at once.
    r"(?=[\djfmasond])(?:"
    # ISO: 2026-12-31 (a time may follow)
    rf"(?<![\d.])(?P<iso_y>(?:19|20)\d\d)-(?P<iso_m>\d\d?)-(?P<iso_d>\d\d?)(?!\d)"
    # 31 декабря 2026 г. / 1-го ноября / 2026 жылғы 31 желтоқсанға / 31st of December
    rf"|(?:(?P<kk_y>(?:19|20)\d\d)\s*+(?:ж\.|жыл{_KK_SUFFIX})\s*+)?"
    rf"(?<![\d.,:])(?P<t_d>\d\d?){_ORDINAL}(?:\s++of)?\s*+-?+\s*+(?P<t_m>{_ANY_MONTH})"
    rf"(?:\s*+,?+\s*+(?P<t_y>{_YEAR}))?"
    # December 31, 2026 / Dec 1–15, 2026
    rf"|(?P<mf_m>{_EN_MONTH})\s*+(?P<mf_d>\d\d?){_ORDINAL}"
    rf"(?:\s*+[–—-]\s*+(?P<mf_d2>\d\d?){_ORDINAL})?(?!\d)(?:\s*+,?+\s*+(?P<mf_y>{_YEAR}))?"
    # 31.12.2026 / 31.12.26 / 31.12
    r"|(?<![\d.,])(?P<n_d>\d\d?)\.(?P<n_m>\d\d?)(?:\.(?P<n_y>(?:19|20)\d\d|\d\d))?(?!\d|[.,]\d)"
    # the "1" of "с 1 по 15 ноября" / "1–15 November": a day that borrows its month
    rf"|(?<![\d.,:])(?P<o_d>\d\d?)(?={_CONNECTOR}\d\d?{_ORDINAL}(?:\s++of)?\s*+-?+\s*+(?:{_ANY_MONTH}))"
    r")"
)
# Something every date needs besides a digit: a month's first letters, or a separator.
_DATE_HINTS = (
    *(".", "-"),
    *("янв", "фев", "мар", "апр", "ма", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
    *("қаң", "ақп", "нау", "сәу", "мам", "мау", "шіл", "шiл", "там", "қыр", "қаз", "қар", "жел"),
    *("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
)
_DATE_HINT = re.compile("|".join(map(re.escape, _DATE_HINTS)))

# The word just before a date (lowercased, "the" skipped) that makes it a start or an end.
_START_WORDS = frozenset({"с", "со", "c", "from", "since", "starting", "start", "starts", "старт"})
_START_WORDS |= {"стартует", "начиная"}  # "начиная с" ends in "с" anyway
_END_WORDS = frozenset({"до", "по", "until", "till", "through", "thru", "to", "by", "before"})
_END_WORDS |= {"end", "ends", "expire", "expires", "ending"}
_ON_WORDS = {"on", "the"}  # "starts on", "ends on the"
_DASHES = frozenset({"-", "–", "—"})
_WORD_EDGES = '([«"\'.,:;!?)]»"'
_END_AFTER = re.compile(r"^\s*(?:ж\.?\s*|жыл\w*\s*)?(?:дейін|шейін|дейiн|дейн)", re.IGNORECASE)
_START_AFTER = re.compile(r"^\s*(?:ж\.?\s*|жыл\w*\s*)?бастап", re.IGNORECASE)
_KK_ABLATIVE = re.compile(r"(?:дан|ден|тан|тен|нан|нен)$", re.IGNORECASE)

_Role = Literal["start", "end"] | None


@dataclass
class _Mention:
    start: int
    end: int
    day: int
    month: int | None
    year: int | None
    weak: bool = False  # dd.mm without a year: a date only if marked or in a range
    role: _Role = None


def parse_dates(text: str, today: date) -> tuple[date | None, date | None]:
    """``(starts, ends)`` of the period a text describes; either may be None.

    See the module docstring for the forms read and how a missing year is inferred.
    Impossible dates (``31 февраля``) are None; nothing raises.
    """
    text = text.lower()
    if not _DIGIT.search(text) or not _DATE_HINT.search(text):
        return None, None  # every date has a digit, and a month or a separator
    mentions = _mentions(text)
    if not mentions:
        return None, None
    _assign_roles(text, mentions)
    mentions = [m for m in mentions if m.month is not None and (m.role or not m.weak)]
    start = next((m for m in mentions if m.role == "start"), None)
    end = next((m for m in mentions if m.role == "end"), None)
    if start is None and end is None and mentions:
        start = mentions[0]  # a lone date with no word around it: see the module docstring
    return _resolve(start, end, today)


def _mentions(text: str) -> list[_Mention]:
    found: list[_Mention] = []
    for match in _DATE_RE.finditer(text):
        group = match.group
        span = match.span()
        if group("iso_y"):
            found.append(
                _Mention(*span, int(group("iso_d")), int(group("iso_m")), int(group("iso_y")))
            )
        elif group("t_d"):
            year = group("t_y") or group("kk_y")
            mention = _Mention(*span, int(group("t_d")), _month(group("t_m")), _int(year))
            if _KK_ABLATIVE.search(group("t_m")):
                mention.role = "start"
            found.append(mention)
        elif group("mf_m"):
            month, year = _month(group("mf_m")), _int(group("mf_y"))
            if group("mf_d2"):  # Dec 1–15: two mentions, a range
                first = _Mention(span[0], span[0], int(group("mf_d")), month, year, role="start")
                found += [first, _Mention(*span, int(group("mf_d2")), month, year, role="end")]
            else:
                found.append(_Mention(*span, int(group("mf_d")), month, year))
        elif group("n_d"):
            day_text, month_text, year_text = group("n_d"), group("n_m"), group("n_y")
            if year_text is None and (len(day_text) != 2 or len(month_text) != 2):
                continue  # "1.5 ГБ", "2.99": not dates
            found.append(
                _Mention(
                    *span,
                    int(day_text),
                    int(month_text),
                    _year(year_text),
                    weak=year_text is None,
                )
            )
        else:
            found.append(_Mention(*span, int(group("o_d")), None, None, role="start"))
    # A bare day ("с 1 по 15 ноября") takes the month and year of the date after it.
    for mention, following in itertools.pairwise(found):
        if mention.month is None and following.month is not None:
            mention.month, mention.year = following.month, following.year
            if following.role is None:
                following.role = "end"
    return found


def _assign_roles(text: str, mentions: list[_Mention]) -> None:
    previous_end = 0
    for index, mention in enumerate(mentions):
        before = text[max(previous_end, mention.start - 40) : mention.start]
        next_start = mentions[index + 1].start if index + 1 < len(mentions) else len(text)
        after = text[mention.end : min(next_start, mention.end + 30)]
        if mention.role is None:
            word = _word_before(before)
            if word in _START_WORDS:
                mention.role = "start"
            elif word in _END_WORDS:
                mention.role = "end"
            elif index and before.strip() in _DASHES:
                mention.role = "end"
                if mentions[index - 1].role is None:
                    mentions[index - 1].role = "start"
        if _END_AFTER.match(after):
            mention.role = "end"
        elif _START_AFTER.match(after):
            mention.role = "start"
        previous_end = mention.end


def _word_before(context: str) -> str:
    """The last word of ``context`` that is not "on"/"the", without punctuation."""
    words = context.rsplit(None, 3)
    for word in reversed(words):
        word = word.strip(_WORD_EDGES)
        if word and word not in _ON_WORDS:
            return word
    return ""


def _resolve(
    start: _Mention | None, end: _Mention | None, today: date
) -> tuple[date | None, date | None]:
    starts = ends = None
    if end is not None and end.year is None and start is not None and start.year is not None:
        starts = _make(start.year, start.month, start.day)
        ends = _first_on_or_after(end, starts) if starts else _infer_end(end, today)
        return starts, ends
    if end is not None:
        ends = _make(end.year, end.month, end.day) if end.year else _infer_end(end, today)
    if start is not None:
        if start.year is not None:
            starts = _make(start.year, start.month, start.day)
        elif ends is not None:
            starts = _make(ends.year, start.month, start.day)
            if starts is not None and starts > ends and starts.month > ends.month:
                starts = _make(ends.year - 1, start.month, start.day)  # across New Year
        elif end is None:
            starts = _nearest(start, today)
    if starts is not None and ends is not None and starts > ends:
        starts = None  # a contradiction: keep the deadline, which is what readers act on
    return starts, ends


def _infer_end(mention: _Mention, today: date) -> date | None:
    horizon = today - RECENT_PAST
    for year in (today.year - 1, today.year, today.year + 1):
        candidate = _make(year, mention.month, mention.day)
        if candidate is not None and candidate >= horizon:
            return candidate
    return None


def _first_on_or_after(mention: _Mention, floor: date) -> date | None:
    for year in (floor.year, floor.year + 1):
        candidate = _make(year, mention.month, mention.day)
        if candidate is not None and candidate >= floor:
            return candidate
    return None


def _nearest(mention: _Mention, today: date) -> date | None:
    candidates = [
        d
        for year in (today.year + 1, today.year, today.year - 1)
        if (d := _make(year, mention.month, mention.day)) is not None
    ]
    return min(candidates, key=lambda d: abs((d - today).days), default=None)


def _make(year: int | None, month: int | None, day: int) -> date | None:
    if year is None or month is None or not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month(word: str) -> int | None:
    """The number of a month word the date pattern matched (lowercase)."""
    return _MONTH_BY_PREFIX.get(word[:3])


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _year(text: str | None) -> int | None:
    if not text:
        return None
    return 2000 + int(text) if len(text) == 2 else int(text)


# --- prices -------------------------------------------------------------------------

_CURRENCIES: tuple[tuple[str, str], ...] = (
    ("KZT", r"₸|тг\.?|тнг|тенге|теңге|kzt|tenge|〒"),
    ("USD", r"\$|usd|долл(?:ар\w*)?\.?"),
    ("EUR", r"€|eur|евро"),
    ("RUB", r"₽|руб(?:л\w*)?\.?|rub"),
)
_CURRENCY_RES = [(code, re.compile(rf"(?:{alts})", re.IGNORECASE)) for code, alts in _CURRENCIES]
_CURRENCY = r"(?<![^\W\d_])(?:" + "|".join(alts for _, alts in _CURRENCIES) + rf"){_NOT_LETTER}"
_SPACES = "\u0020\u00a0\u2007\u2009\u202f"
_NUMBER = rf"(?P<int>\d{{1,3}}(?:[{_SPACES}]\d{{3}})+|\d+)(?:[.,](?P<frac>\d{{1,3}}))?(?!\d)"
_PRICE_RE = re.compile(  # matched against lowercased text, like _DATE_RE
    # a digit or the first letter of a currency; other positions fail at once
    r"(?=[\d₸〒$€₽тkuдеeрrt])"
    rf"(?:(?P<pre>{_CURRENCY})\s*)?(?<![\d.,]){_NUMBER}(?:\s*(?P<post>{_CURRENCY}))?"
)
_CURRENCY_HINTS = (
    *("₸", "〒", "$", "€", "₽", "тг", "тнг", "тенге", "теңге", "kzt", "tenge"),
    *("usd", "долл", "eur", "евро", "руб", "rub"),
)
_CURRENCY_HINT = re.compile("|".join(map(re.escape, _CURRENCY_HINTS)))


def parse_price(text: str, *, bare_ok: bool = False) -> tuple[Decimal | None, str | None]:
    """The first amount with a currency: ``"от 2 990 ₸/мес"`` -> ``(Decimal("2990"), "KZT")``.

    Thousands may be grouped by spaces of any kind (``2 990``, NBSP, thin space) and the
    decimal separator is a comma or a dot (``1 500,50``); a group of exactly three digits
    after a dot or comma is a thousands group (``2.990 ₸`` is 2990). Currency signs,
    codes and words: ₸ / тг / тенге / теңге / KZT, $ / USD, € / EUR, ₽ / руб / RUB.

    With ``bare_ok`` (a field that holds nothing but the price) a number without a
    currency is accepted as ``(amount, None)``. ``(None, None)`` when there is no price.
    """
    bare: Decimal | None = None
    text = text.lower()
    if not _DIGIT.search(text):
        return None, None
    if not bare_ok and not _CURRENCY_HINT.search(text):
        return None, None
    for match in _PRICE_RE.finditer(text):
        amount = _amount(match.group("int"), match.group("frac"))
        if amount is None:
            continue
        sign = match.group("pre") or match.group("post")
        if sign:
            return amount, _currency_code(sign)
        if bare is None:
            bare = amount
    return (bare, None) if bare_ok and bare is not None else (None, None)


def _amount(whole: str, fraction: str | None) -> Decimal | None:
    digits = re.sub(rf"[{_SPACES}]", "", whole)
    if fraction is not None and len(fraction) == 3:  # "2.990": a thousands group
        digits, fraction = digits + fraction, None
    try:
        return Decimal(f"{digits}.{fraction}" if fraction else digits)
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None


def _currency_code(sign: str) -> str | None:
    for code, pattern in _CURRENCY_RES:
        if pattern.fullmatch(sign):
            return code
    return None  # pragma: no cover - every sign the pattern matches has a code


# --- data allowances ----------------------------------------------------------------

_DATA_RE = re.compile(
    r"(?<![\d.,])(?P<num>\d+(?:[.,]\d+)?)\s*"
    r"(?P<unit>гб|гбайт|гигабайт\w*|gb|gib|gbyte|мб|мбайт|мегабайт\w*|mb|mib|тб|tb)" + _NOT_LETTER
)  # matched against lowercased text
_DATA_HINTS = ("гб", "гиг", "gb", "gib", "мб", "мег", "mb", "mib", "тб", "tb")
_DATA_HINT = re.compile("|".join(map(re.escape, _DATA_HINTS)))
_UNIT_FACTOR = {"g": Decimal(1), "m": Decimal("0.001"), "t": Decimal(1000)}
_UNIT_KIND = {"г": "g", "g": "g", "м": "m", "m": "m", "т": "t", "t": "t"}


def parse_data_gb(text: str) -> Decimal | None:
    """The first data allowance in gigabytes: ``"50 ГБ"`` -> 50, ``"500 МБ"`` -> 0.5.

    Megabytes and terabytes convert by 1000, as operators advertise them. "Безлимит",
    "unlimited" and "шексіз" give None, like a text with no allowance at all: there is
    no figure to compare. A text with both ("безлимит на соцсети + 20 ГБ") gives the
    figure. Speeds (``10 Мбит/с``) are not allowances.
    """
    text = text.lower()
    hinted = _DIGIT.search(text) and _DATA_HINT.search(text)
    match = _DATA_RE.search(text) if hinted else None
    if match is None:
        return None
    try:
        number = Decimal(match.group("num").replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None
    value = number * _UNIT_FACTOR[_UNIT_KIND[match.group("unit")[0].lower()]]
    # 500 MB is 0.5, not 0.500; 50 GB stays 50, not 5E+1.
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
