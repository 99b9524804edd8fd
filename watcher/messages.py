"""Message texts in the user's language.

Every language is one :class:`_Language` record: month names, how a date and a number
of days are written, and a flat table of templates. The functions below only choose
template keys; adding a language means adding a record, not touching the logic. An
unknown language falls back to English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from watcher.catalogue import LANGUAGES, Operator, resolve_language

__all__ = [
    "LANGUAGES",
    "Message",
    "PromotionItem",
    "ReminderFacts",
    "ReminderKind",
    "format_date",
    "format_days",
    "format_money",
    "kazakh_case",
    "render_dead_letter",
    "render_promotions",
    "render_reminder",
    "render_test",
]

ReminderKind = Literal["expiry", "balance", "idle", "low_balance"]


@dataclass(frozen=True)
class Message:
    """A notification ready for a channel: a short title and a plain-text body."""

    title: str
    body: str


@dataclass(frozen=True)
class ReminderFacts:
    """Everything a reminder says; dates are already in the user's time zone."""

    kind: ReminderKind
    sim_id: str
    label: str  # the plan name if given, else the SIM id
    masked_number: str  # "+7 701 *** ** 67"
    operator: Operator
    target: date  # expiry date, balance-check due date, or idle deadline
    today: date  # today in the user's time zone (days left = target - today)
    last_balance_check: date | None = None
    balance: Decimal | None = None  # last recorded balance, if any
    low_balance: Decimal | None = None  # the user's threshold, if any


@dataclass(frozen=True)
class PromotionItem:
    """One promotion change a user is told about, as stored (texts are the page's own)."""

    kind: Literal["new", "changed", "ended"]
    title: str
    source_name: str  # the operator's display name, else the source id
    link: str | None = None
    summary: str | None = None
    starts: date | None = None
    ends: date | None = None
    price_text: str | None = None
    before_title: str | None = None  # for a change: what the changed fields read before
    before_date_text: str | None = None
    before_price_text: str | None = None
    changed_fields: tuple[str, ...] = ()


def _russian_plural(count: int, one: str, few: str, many: str) -> str:
    """The noun form after ``count``: 1 день, 2 дня, 5 дней, 11 дней, 21 день."""
    count = abs(count)
    if count % 10 == 1 and count % 100 != 11:
        return one
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return few
    return many


# Kazakh case endings follow vowel harmony (back а о ұ ы take -ға/-дан, front ә е ө ү і
# take -ге/-ден) and the last sound (-қа/-ке, -тан/-тен after a voiceless consonant;
# -нан/-нен after м н ң). The words a Kazakh date or count can end in, with their
# dative and ablative, written out and checked by hand: CLDR (Babel) has month names
# but no case forms.
_KK_WORDS: Mapping[str, tuple[str, str]] = {
    "қаңтар": ("қаңтарға", "қаңтардан"),
    "ақпан": ("ақпанға", "ақпаннан"),
    "наурыз": ("наурызға", "наурыздан"),
    "сәуір": ("сәуірге", "сәуірден"),
    "мамыр": ("мамырға", "мамырдан"),
    "маусым": ("маусымға", "маусымнан"),
    "шілде": ("шілдеге", "шілдеден"),
    "тамыз": ("тамызға", "тамыздан"),
    "қыркүйек": ("қыркүйекке", "қыркүйектен"),
    "қазан": ("қазанға", "қазаннан"),
    "қараша": ("қарашаға", "қарашадан"),
    "желтоқсан": ("желтоқсанға", "желтоқсаннан"),
    "күн": ("күнге", "күннен"),
}
# A numeral written in digits takes the ending of its last spoken word after a hyphen:
# 15 (он бес) -> 15-ке, 2026 (... алты) -> 2026-ға, 100 (жүз) -> 100-ге.
_KK_UNITS = {  # бір екі үш төрт бес алты жеті сегіз тоғыз
    1: ("ге", "ден"),
    2: ("ге", "ден"),
    3: ("ке", "тен"),
    4: ("ке", "тен"),
    5: ("ке", "тен"),
    6: ("ға", "дан"),
    7: ("ге", "ден"),
    8: ("ге", "ден"),
    9: ("ға", "дан"),
}
_KK_TENS = {  # он жиырма отыз қырық елу алпыс жетпіс сексен тоқсан
    1: ("ға", "нан"),
    2: ("ға", "дан"),
    3: ("ға", "дан"),
    4: ("қа", "тан"),
    5: ("ге", "ден"),
    6: ("қа", "тан"),
    7: ("ке", "тен"),
    8: ("ге", "нен"),
    9: ("ға", "нан"),
}
_KK_POWERS = (  # жүз, мың, миллион; then миллиард
    (10**3, ("ге", "ден")),
    (10**6, ("ға", "нан")),
    (10**9, ("ға", "нан")),
)
_KK_BILLION = ("қа", "тан")
KazakhCase = Literal["dative", "ablative"]


def _kk_number_ending(number: int, case: KazakhCase) -> str:
    index = 0 if case == "dative" else 1
    if number == 0:
        return ("ге", "ден")[index]  # нөл
    if number % 10:
        return _KK_UNITS[number % 10][index]
    if number % 100:
        return _KK_TENS[number % 100 // 10][index]
    # A round number ends in the word of its lowest non-zero group: 300 жүз, 2000 мың.
    for modulus, endings in _KK_POWERS:
        if number % modulus:
            return endings[index]
    return _KK_BILLION[index]


def kazakh_case(text: str, case: KazakhCase) -> str:
    """``text`` with its last word in the dative (``дейін`` takes it) or the ablative
    (``бастап``, ``кейін`` take it): 15 қаңтар -> 15 қаңтарға, 5 күн -> 5 күннен,
    15 -> 15-ке. Raises ValueError for a last word the table does not know."""
    head, _, last = text.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last in _KK_WORDS:
        return prefix + _KK_WORDS[last][0 if case == "dative" else 1]
    if last.isascii() and last.isdigit():
        return f"{prefix}{last}-{_kk_number_ending(int(last), case)}"
    raise ValueError(f"no Kazakh {case} known for {last!r}")


@dataclass(frozen=True)
class _Language:
    months: tuple[str, ...]  # January first, in the form a date uses (Russian: genitive)
    date: str  # with {day}, {month}, {year}
    days: Callable[[int], str]  # "5 days": the count with its noun
    sim: str  # how a SIM is named in a sentence, from {label}, {number}, {operator}
    thousands: str  # separators for format_money
    decimal: str
    sentence_gap: str  # what goes between two sentences of a paragraph
    templates: Mapping[str, str]


# Template keys: "<kind>.<state>" and "<kind>.title.<state>" with state future/today/past,
# the extra sentences of balance and low_balance reminders, and the test message.
# Placeholders: {sim} {label} {date} {days} {last} {balance} {threshold} {channel}; a
# Kazakh text may put {days}, {date}, {start} and {end} in a case: {days_abl}, {end_dat}...

_EN = _Language(
    months=(
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    date="{day} {month} {year}",
    days=lambda n: f"{n} day" if n == 1 else f"{n} days",
    sim="{label} ({number}, {operator})",
    thousands=",",
    decimal=".",
    sentence_gap=" ",
    templates={
        "expiry.title.future": "{label}: expires in {days}",
        "expiry.title.today": "{label}: expires today",
        "expiry.title.past": "{label}: expired {days} ago",
        "expiry.future": "{sim} expires in {days}, on {date}.",
        "expiry.today": "{sim} expires today, {date}.",
        "expiry.past": "{sim} expired {days} ago, on {date}. Renew now to keep the number.",
        "balance.title.future": "{label}: check the balance in {days}",
        "balance.title.today": "{label}: check the balance today",
        "balance.title.past": "{label}: balance check overdue",
        "balance.future": "A balance check of {sim} is due in {days}, on {date}.",
        "balance.today": "A balance check of {sim} is due today, {date}.",
        "balance.past": "A balance check of {sim} was due {days} ago, on {date}.",
        "balance.last": "Last balance check: {last}.",
        "balance.none": "No balance check recorded yet.",
        "balance.low": (
            "The last recorded balance, {balance}, is below your threshold of {threshold}."
        ),
        "idle.title.future": "{label}: number at risk in {days}",
        "idle.title.today": "{label}: number at risk today",
        "idle.title.past": "{label}: number at risk",
        "idle.future": (
            "{sim} may be reclaimed for inactivity in {days}, on {date}. Make a paid action "
            "before then, such as a top-up or a paid service, to keep the number."
        ),
        "idle.today": (
            "{sim} may be reclaimed for inactivity today, {date}. Make a paid action today, "
            "such as a top-up or a paid service, to keep the number."
        ),
        "idle.past": (
            "The inactivity deadline of {sim} passed {days} ago, on {date}. Make a paid "
            "action now, such as a top-up; the number may already be at risk."
        ),
        "low_balance.title.future": "{label}: low balance",
        "low_balance.title.today": "{label}: low balance",
        "low_balance.title.past": "{label}: low balance",
        "low_balance.amounts": (
            "The recorded balance of {sim} is {balance}, below your threshold of {threshold}."
        ),
        "low_balance.unknown": "The recorded balance of {sim} is below your threshold.",
        "low_balance.future": "Top up before the monthly fee on {date}, in {days}.",
        "low_balance.today": "The monthly fee is due today, {date}: top up now.",
        "low_balance.past": "The monthly fee was due {days} ago, on {date}: top up now.",
        "test.title": "SIM Watcher: test notification",
        "test.body": (
            'This is a test notification from SIM Watcher to the channel "{channel}". '
            "If you can read it, the channel works."
        ),
        "promo.title.new": "New promotion: {title}",
        "promo.title.changed": "Promotion changed: {title}",
        "promo.title.ended": "Promotion ended: {title}",
        "promo.title.many": "{count} promotion updates",
        "promo.title.digest": "Promotions digest: {count} updates",
        "promo.new": "New",
        "promo.changed": "Changed",
        "promo.ended": "Ended",
        "promo.until": "until {end}",
        "promo.from": "from {start}",
        "promo.period": "{start} – {end}",
        "promo.was": "was: {before}",
        "promo.more": "…and {count} more: `watcher promotions` lists them all.",
    },
)

_RU = _Language(
    months=(
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ),
    date="{day} {month} {year}",
    days=lambda n: f"{n} {_russian_plural(n, 'день', 'дня', 'дней')}",
    sim="{label} ({number}, {operator})",
    thousands="\u00a0",  # a no-break space, so 1 500 never breaks across lines
    decimal=",",
    sentence_gap=" ",
    templates={
        "expiry.title.future": "{label}: срок истекает через {days}",
        "expiry.title.today": "{label}: срок истекает сегодня",
        "expiry.title.past": "{label}: срок истёк {days} назад",
        "expiry.future": "{sim}: срок действия истекает через {days}, {date}.",
        "expiry.today": "{sim}: срок действия истекает сегодня, {date}.",
        "expiry.past": (
            "{sim}: срок действия истёк {days} назад, {date}. "
            "Продлите сейчас, чтобы сохранить номер."
        ),
        "balance.title.future": "{label}: проверьте баланс через {days}",
        "balance.title.today": "{label}: проверьте баланс сегодня",
        "balance.title.past": "{label}: проверка баланса просрочена",
        "balance.future": "{sim}: проверить баланс нужно через {days}, {date}.",
        "balance.today": "{sim}: проверить баланс нужно сегодня, {date}.",
        "balance.past": "{sim}: проверка баланса просрочена на {days}, срок был {date}.",
        "balance.last": "Последняя проверка баланса: {last}.",
        "balance.none": "Проверок баланса пока не записано.",
        "balance.low": "Последний записанный баланс, {balance}, ниже вашего порога {threshold}.",
        "idle.title.future": "{label}: номер под угрозой через {days}",
        "idle.title.today": "{label}: номер под угрозой сегодня",
        "idle.title.past": "{label}: номер под угрозой",
        "idle.future": (
            "{sim}: номер могут отозвать за неактивность через {days}, {date}. Чтобы сохранить "
            "номер, до этого совершите платное действие, например пополните баланс или "
            "воспользуйтесь платной услугой."
        ),
        "idle.today": (
            "{sim}: номер могут отозвать за неактивность сегодня, {date}. Чтобы сохранить "
            "номер, совершите платное действие сегодня, например пополните баланс или "
            "воспользуйтесь платной услугой."
        ),
        "idle.past": (
            "{sim}: срок неактивности истёк {days} назад, {date}. Совершите платное действие "
            "прямо сейчас, например пополните баланс: номер уже может быть под угрозой."
        ),
        "low_balance.title.future": "{label}: низкий баланс",
        "low_balance.title.today": "{label}: низкий баланс",
        "low_balance.title.past": "{label}: низкий баланс",
        "low_balance.amounts": "{sim}: записанный баланс {balance} ниже вашего порога {threshold}.",
        "low_balance.unknown": "{sim}: записанный баланс ниже вашего порога.",
        "low_balance.future": "Пополните баланс до ежемесячного списания: {date}, через {days}.",
        "low_balance.today": (
            "Ежемесячная плата списывается сегодня, {date}: пополните баланс сейчас."
        ),
        "low_balance.past": (
            "Ежемесячная плата должна была списаться {days} назад, {date}: пополните баланс сейчас."
        ),
        "test.title": "SIM Watcher: тестовое уведомление",
        "test.body": (
            "Это тестовое уведомление SIM Watcher для канала «{channel}». "
            "Если вы его видите, канал работает."
        ),
        "promo.title.new": "Новая акция: {title}",
        "promo.title.changed": "Акция изменилась: {title}",
        "promo.title.ended": "Акция завершилась: {title}",
        "promo.title.many": "Новости акций: {count}",
        "promo.title.digest": "Дайджест акций: {count}",
        "promo.new": "Новая",
        "promo.changed": "Изменилась",
        "promo.ended": "Завершилась",
        "promo.until": "до {end}",
        "promo.from": "с {start}",
        "promo.period": "{start} – {end}",
        "promo.was": "было: {before}",
        "promo.more": "…и ещё {count}: все показывает `watcher promotions`.",
    },
)

_ZH = _Language(
    months=tuple(str(month) for month in range(1, 13)),
    date="{year}年{month}月{day}日",
    days=lambda n: f"{n}天",
    sim="{label}（{number}，{operator}）",
    thousands=",",
    decimal=".",
    sentence_gap="",  # Chinese puts no space after a full stop
    templates={
        "expiry.title.future": "{label}：{days}后到期",
        "expiry.title.today": "{label}：今天到期",
        "expiry.title.past": "{label}：已过期{days}",
        "expiry.future": "{sim}将在{days}后到期：{date}。",
        "expiry.today": "{sim}今天到期：{date}。",
        "expiry.past": "{sim}已于{days}前到期：{date}。请立即续费以保留号码。",
        "balance.title.future": "{label}：{days}后查询余额",
        "balance.title.today": "{label}：今天查询余额",
        "balance.title.past": "{label}：余额查询已逾期",
        "balance.future": "{sim}需在{days}后查询余额：{date}。",
        "balance.today": "{sim}今天需要查询余额：{date}。",
        "balance.past": "{sim}的余额查询已逾期{days}：{date}。",
        "balance.last": "上次查询余额：{last}。",
        "balance.none": "尚无余额查询记录。",
        "balance.low": "最近记录的余额 {balance} 低于您设定的阈值 {threshold}。",
        "idle.title.future": "{label}：号码{days}后有被收回风险",
        "idle.title.today": "{label}：号码今天有被收回风险",
        "idle.title.past": "{label}：号码有被收回风险",
        "idle.future": (
            "{sim}可能因长期未使用在{days}后被收回：{date}。"
            "请在此之前进行一次付费操作，例如充值或使用付费服务，以保留号码。"
        ),
        "idle.today": (
            "{sim}可能在今天因长期未使用被收回：{date}。"
            "请今天进行一次付费操作，例如充值或使用付费服务，以保留号码。"
        ),
        "idle.past": (
            "{sim}的未使用期限已于{days}前到期：{date}。"
            "请立即进行一次付费操作，例如充值；号码可能已有被收回的风险。"
        ),
        "low_balance.title.future": "{label}：余额不足",
        "low_balance.title.today": "{label}：余额不足",
        "low_balance.title.past": "{label}：余额不足",
        "low_balance.amounts": "{sim}记录的余额 {balance} 低于您设定的阈值 {threshold}。",
        "low_balance.unknown": "{sim}记录的余额低于您设定的阈值。",
        "low_balance.future": "请在月费扣款前充值：{date}，还有{days}。",
        "low_balance.today": "月费今天扣款：{date}，请立即充值。",
        "low_balance.past": "月费已于{days}前到期：{date}，请立即充值。",
        "test.title": "SIM Watcher：测试通知",
        "test.body": (
            "这是 SIM Watcher 发往渠道“{channel}”的测试通知。"
            "如果您能看到这条消息，说明该渠道工作正常。"
        ),
        "promo.title.new": "新优惠：{title}",
        "promo.title.changed": "优惠有变：{title}",
        "promo.title.ended": "优惠已结束：{title}",
        "promo.title.many": "{count} 条优惠更新",
        "promo.title.digest": "优惠摘要：{count} 条更新",
        "promo.new": "新",
        "promo.changed": "变更",
        "promo.ended": "结束",
        "promo.until": "截至{end}",
        "promo.from": "{start}起",
        "promo.period": "{start} – {end}",
        "promo.was": "原为：{before}",
        "promo.more": "……还有 {count} 条：运行 `watcher promotions` 查看全部。",
    },
)

# Kazakh: a noun after a numeral stays singular (5 күн), and sentences put the date
# after a dash in the nominative so that no case ending has to agree with it.
_KK = _Language(
    months=(
        "қаңтар",
        "ақпан",
        "наурыз",
        "сәуір",
        "мамыр",
        "маусым",
        "шілде",
        "тамыз",
        "қыркүйек",
        "қазан",
        "қараша",
        "желтоқсан",
    ),
    date="{year} жылғы {day} {month}",
    days=lambda n: f"{n} күн",
    sim="{label} ({number}, {operator})",
    thousands="\u00a0",
    decimal=",",
    sentence_gap=" ",
    templates={
        "expiry.title.future": "{label}: мерзімі {days_abl} кейін бітеді",
        "expiry.title.today": "{label}: мерзімі бүгін бітеді",
        "expiry.title.past": "{label}: мерзімі {days} бұрын бітті",
        "expiry.future": "{sim}: мерзімі {days_abl} кейін аяқталады — {date}.",
        "expiry.today": "{sim}: мерзімі бүгін аяқталады — {date}.",
        "expiry.past": (
            "{sim}: мерзімі {days} бұрын аяқталды — {date}. "
            "Нөмірді сақтап қалу үшін оны қазір ұзартыңыз."
        ),
        "balance.title.future": "{label}: балансты {days_abl} кейін тексеріңіз",
        "balance.title.today": "{label}: балансты бүгін тексеріңіз",
        "balance.title.past": "{label}: баланс тексерісі кешікті",
        "balance.future": "{sim}: балансты {days_abl} кейін тексеру керек — {date}.",
        "balance.today": "{sim}: балансты бүгін тексеру керек — {date}.",
        "balance.past": "{sim}: балансты тексеру мерзімі {days} бұрын өтті — {date}.",
        "balance.last": "Соңғы тексеру: {last}.",
        "balance.none": "Баланс тексерісі әлі жазылмаған.",
        "balance.low": (
            "Соңғы жазылған баланс ({balance}) сіз белгілеген шектен ({threshold}) төмен."
        ),
        "idle.title.future": "{label}: нөмір {days_abl} кейін қауіпте",
        "idle.title.today": "{label}: нөмір бүгін қауіпте",
        "idle.title.past": "{label}: нөмір қауіпте",
        "idle.future": (
            "{sim}: нөмір пайдаланылмағаны үшін {days_abl} кейін қайтарып алынуы мүмкін — "
            "{date}. Нөмірді сақтау үшін оған дейін ақылы әрекет жасаңыз, мысалы, балансты "
            "толтырыңыз немесе ақылы қызметті пайдаланыңыз."
        ),
        "idle.today": (
            "{sim}: нөмір пайдаланылмағаны үшін бүгін қайтарып алынуы мүмкін — {date}. "
            "Нөмірді сақтау үшін бүгін ақылы әрекет жасаңыз, мысалы, балансты толтырыңыз "
            "немесе ақылы қызметті пайдаланыңыз."
        ),
        "idle.past": (
            "{sim}: пайдаланбау мерзімі {days} бұрын өтті — {date}. Дереу ақылы әрекет "
            "жасаңыз, мысалы, балансты толтырыңыз: нөмір қауіпте болуы мүмкін."
        ),
        "low_balance.title.future": "{label}: баланс төмен",
        "low_balance.title.today": "{label}: баланс төмен",
        "low_balance.title.past": "{label}: баланс төмен",
        "low_balance.amounts": (
            "{sim}: жазылған баланс {balance}, бұл сіз белгілеген {threshold} шегінен төмен."
        ),
        "low_balance.unknown": "{sim}: жазылған баланс сіз белгілеген шектен төмен.",
        "low_balance.future": (
            "Ай сайынғы төлемге дейін балансты толтырыңыз — {date}, {days} қалды."
        ),
        "low_balance.today": "Ай сайынғы төлем бүгін алынады — {date}: балансты қазір толтырыңыз.",
        "low_balance.past": (
            "Ай сайынғы төлем мерзімі {days} бұрын өтті — {date}: балансты қазір толтырыңыз."
        ),
        "test.title": "SIM Watcher: сынақ хабарламасы",
        "test.body": (
            "Бұл — «{channel}» арнасына жіберілген SIM Watcher сынақ хабарламасы. "
            "Оны оқи алсаңыз, арна жұмыс істейді."
        ),
        "promo.title.new": "Жаңа акция: {title}",
        "promo.title.changed": "Акция өзгерді: {title}",
        "promo.title.ended": "Акция аяқталды: {title}",
        "promo.title.many": "Акция жаңалықтары: {count}",
        "promo.title.digest": "Акциялар дайджесі: {count}",
        "promo.new": "Жаңа",
        "promo.changed": "Өзгерді",
        "promo.ended": "Аяқталды",
        "promo.until": "{end_dat} дейін",
        "promo.from": "{start_abl} бастап",
        "promo.period": "{start} – {end}",
        "promo.was": "бұрын: {before}",
        "promo.more": "…тағы {count}: барлығын `watcher promotions` көрсетеді.",
    },
)

_LANGUAGE_DATA: Mapping[str, _Language] = {"en": _EN, "ru": _RU, "zh": _ZH, "kk": _KK}


def _data(language: str) -> _Language:
    return _LANGUAGE_DATA[resolve_language(language)]


def format_date(day: date, language: str) -> str:
    """``day`` as people write it: 1 December 2026, 1 декабря 2026, 2026年12月1日..."""
    data = _data(language)
    return data.date.format(day=day.day, month=data.months[day.month - 1], year=day.year)


def format_days(count: int, language: str) -> str:
    """A number of days with the right noun form: 1 day, 2 дня, 5 дней, 3天, 5 күн."""
    return _data(language).days(count)


def format_money(amount: Decimal, language: str) -> str:
    """An amount with the language's separators: 1,500.50 or 1 500,50. No currency:
    SIM Watcher records balances as the user typed them."""
    data = _data(language)
    english = f"{amount:,f}"
    return "".join(
        data.thousands if char == "," else data.decimal if char == "." else char for char in english
    )


def _in_cases(lang: str, values: Mapping[str, str], *keys: str) -> dict[str, str]:
    """``values[key]`` in the dative (``key_dat``) and ablative (``key_abl``) for Kazakh
    templates; other languages need no case and get the values as they are."""
    cased = {}
    for key in keys:
        text = values[key]
        cased[f"{key}_dat"] = kazakh_case(text, "dative") if lang == "kk" and text else text
        cased[f"{key}_abl"] = kazakh_case(text, "ablative") if lang == "kk" and text else text
    return {**values, **cased}


def render_reminder(facts: ReminderFacts, language: str) -> Message:
    """The reminder for ``facts`` in ``language`` (English if it is not supported)."""
    lang = resolve_language(language)
    data = _LANGUAGE_DATA[lang]
    left = (facts.target - facts.today).days
    state = "future" if left > 0 else "today" if left == 0 else "past"
    values = {
        "label": facts.label,
        "sim": data.sim.format(
            label=facts.label, number=facts.masked_number, operator=facts.operator.name
        ),
        "date": format_date(facts.target, lang),
        "days": format_days(abs(left), lang),
        "last": format_date(facts.last_balance_check, lang) if facts.last_balance_check else "",
        "balance": format_money(facts.balance, lang) if facts.balance is not None else "",
        "threshold": format_money(facts.low_balance, lang) if facts.low_balance is not None else "",
    }
    values |= _in_cases(lang, values, "date", "days")
    keys: list[str]
    if facts.kind == "balance":
        keys = [f"balance.{state}", "balance.last" if facts.last_balance_check else "balance.none"]
        if _below(facts.balance, facts.low_balance):
            keys.append("balance.low")
        instructions = facts.operator.balance_instructions(lang)
    else:
        if facts.kind == "low_balance":
            amounts_known = facts.balance is not None and facts.low_balance is not None
            keys = ["low_balance.amounts" if amounts_known else "low_balance.unknown"]
            keys.append(f"low_balance.{state}")
        else:
            keys = [f"{facts.kind}.{state}"]
        instructions = facts.operator.renew_instructions(lang)

    # format_map fills our placeholders only; braces inside the values are left alone.
    situation = data.sentence_gap.join(data.templates[key].format_map(values) for key in keys)
    title = data.templates[f"{facts.kind}.title.{state}"].format_map(values)
    return Message(title=title, body=f"{situation}\n\n{instructions}")


# Page texts are the operator's, not ours: long ones are cut so a message stays readable.
_TITLE_LIMIT = 160
_SUMMARY_LIMIT = 300
PROMOTIONS_PER_MESSAGE = 25


def render_promotions(
    items: Sequence[PromotionItem], language: str, *, digest: bool = False
) -> Message:
    """One message about ``items`` (at least one): a single change, or a list of them.

    Items are listed in the order given, at most :data:`PROMOTIONS_PER_MESSAGE`;
    the rest are counted. Each shows its kind, title, source, dates, price, summary,
    what changed from, and its link.
    """
    if not items:
        raise ValueError("render_promotions needs at least one item")
    lang = resolve_language(language)
    data = _LANGUAGE_DATA[lang]
    t = data.templates
    if len(items) == 1 and not digest:
        title = t[f"promo.title.{items[0].kind}"].format_map({"title": _cut(items[0].title, 80)})
    else:
        key = "promo.title.digest" if digest else "promo.title.many"
        title = t[key].format_map({"count": len(items)})
    shown = items[:PROMOTIONS_PER_MESSAGE]
    blocks = [_promotion_block(item, lang, data) for item in shown]
    if len(items) > len(shown):
        blocks.append(t["promo.more"].format_map({"count": len(items) - len(shown)}))
    return Message(title=title, body="\n\n".join(blocks))


def _promotion_block(item: PromotionItem, lang: str, data: _Language) -> str:
    t = data.templates
    lines = [f"[{t['promo.' + item.kind]}] {_cut(item.title, _TITLE_LIMIT)} — {item.source_name}"]
    facts = []
    start = format_date(item.starts, lang) if item.starts else None
    end = format_date(item.ends, lang) if item.ends else None
    dates = _in_cases(lang, {"start": start or "", "end": end or ""}, "start", "end")
    if start and end:
        facts.append(t["promo.period"].format_map(dates))
    elif end:
        facts.append(t["promo.until"].format_map(dates))
    elif start:
        facts.append(t["promo.from"].format_map(dates))
    if item.price_text:
        facts.append(_cut(item.price_text, 60))
    if facts:
        lines.append(" · ".join(facts))
    if item.summary:
        lines.append(_cut(item.summary, _SUMMARY_LIMIT))
    if item.kind == "changed":
        before = [
            _cut(text, _TITLE_LIMIT)
            for name, text in (
                ("title", item.before_title),
                ("dates", item.before_date_text),
                ("price", item.before_price_text),
            )
            if name in item.changed_fields and text
        ]
        if before:
            lines.append(t["promo.was"].format_map({"before": " · ".join(before)}))
    if item.link:
        lines.append(item.link)
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _below(balance: Decimal | None, threshold: Decimal | None) -> bool:
    return balance is not None and threshold is not None and balance < threshold


def render_test(language: str | Sequence[str], channel: str) -> Message:
    """A test notification naming the channel by its configured name.

    A channel that users of several languages share gets one message in all of them
    (titled in the first), so each reader sees the test in their own.
    """
    languages = [language] if isinstance(language, str) else list(language) or ["en"]
    values = {"channel": _safe_channel_name(channel)}
    texts = [_data(lang).templates for lang in languages]
    return Message(
        title=texts[0]["test.title"].format_map(values),
        body="\n\n".join(text["test.body"].format_map(values) for text in texts),
    )


def render_dead_letter(channel: str, title: str, first_attempt: str, error: str) -> Message:
    """The English admin notice for a message SIM Watcher gave up delivering."""
    name = _safe_channel_name(channel)
    return Message(
        title=f"SIM Watcher: gave up delivering to {name}",
        body=(
            f'A message titled "{title}" could not be delivered to channel {name} since '
            f"{first_attempt}. Last error: {error}. SIM Watcher has given up on it and will "
            "not try again."
        ),
    )


def _safe_channel_name(channel: str) -> str:
    # Callers pass the channel's name; should a URL slip through, its secrets must not.
    if "://" in channel:
        return channel.split("://", 1)[0] + "://***"
    return channel
