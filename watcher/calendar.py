"""A user's dates as an iCalendar feed: ``watcher calendar`` and ``/calendar/<user>.ics``.

Each active SIM gives up to three all-day events, on the dates ``watcher status`` shows:
its expiry, its next balance check and its idle-number deadline. Each carries alarms
at the user's ``remind_before`` offsets (at their ``remind_at`` hour, in their zone),
the SIM's id and masked number (never the full number), and the operator's renewal or
balance instructions in the user's language. UIDs are stable (SIM id and date kind),
so a subscribed calendar app moves an event when a renewal moves its date instead of
adding a second one.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import Session

from watcher import __version__
from watcher.catalogue import Catalogue
from watcher.clock import Clock
from watcher.db.engine import Database, dialect_insert
from watcher.db.models import CalendarToken, SimRow, UserRow
from watcher.masking import mask_phone
from watcher.reminders.slots import sim_dates
from watcher.reminders.status import sim_statuses

__all__ = ["calendar_for", "calendar_route", "calendar_token", "token_matches"]

_TITLES = {
    "expiry": {
        "en": "{sim}: plan expires",
        "ru": "{sim}: заканчивается тариф",
        "kk": "{sim}: тариф мерзімі бітеді",
    },
    "balance": {
        "en": "{sim}: check the balance",
        "ru": "{sim}: проверить баланс",
        "kk": "{sim}: балансты тексеру",
    },
    "idle": {
        "en": "{sim}: last day to use the number",
        "ru": "{sim}: последний день, чтобы использовать номер",
        "kk": "{sim}: нөмірді пайдаланудың соңғы күні",
    },
}


def calendar_for(session: Session, catalogue: Catalogue, user_name: str, now: datetime) -> bytes:
    """The user's calendar as iCalendar bytes; KeyError if there is no such user."""
    user = session.get(UserRow, user_name)
    if user is None or not user.active:
        raise KeyError(user_name)
    language = user.language if user.language in ("en", "ru", "kk") else "en"
    zone = ZoneInfo(user.timezone)
    feed = Calendar()
    feed.add("prodid", f"-//SIM Watcher {__version__}//sim-watcher//EN")
    feed.add("version", "2.0")
    feed.add("calscale", "GREGORIAN")
    feed.add("x-wr-calname", f"SIM Watcher: {user.name}")
    feed.add("x-wr-timezone", user.timezone)
    hour, minute = (int(part) for part in user.remind_at.split(":"))
    remind_at = time(hour, minute)
    # This user's SIMs only: a feed request must not read every user's rows.
    rows = {
        row.id: row
        for row in session.scalars(
            select(SimRow).where(SimRow.active, SimRow.user_name == user_name)
        )
    }
    for status in sim_statuses(session, now, user_name=user_name):
        operator = catalogue.get(status.operator)
        label = f"{status.sim_id} ({mask_phone(status.number)})"
        offsets = sim_dates(rows[status.sim_id], user).remind_before
        for kind, day, text in (
            ("expiry", status.expires, operator.renew_instructions(language)),
            ("balance", status.next_balance_check, operator.balance_instructions(language)),
            ("idle", status.idle_deadline, operator.renew_instructions(language)),
        ):
            if day is None:
                continue
            event = Event()
            event.add("uid", f"{status.sim_id}-{kind}@sim-watcher")
            event.add("dtstamp", now.astimezone(UTC))
            event.add("summary", _TITLES[kind][language].format(sim=label))
            event.add("dtstart", day)
            event.add("dtend", day + timedelta(days=1))
            event.add("description", f"{operator.name}: {text}")
            event.add("transp", "TRANSPARENT")
            if kind != "balance":
                for offset in offsets:
                    try:
                        alarm_day = offset.subtract_from(day)
                    except ValueError:
                        continue  # an offset before the calendar's start: no alarm
                    alarm = Alarm()
                    alarm.add("action", "DISPLAY")
                    alarm.add("description", _TITLES[kind][language].format(sim=label))
                    at = datetime.combine(alarm_day, remind_at, zone).astimezone(UTC)
                    alarm.add("trigger", at)
                    event.add_component(alarm)
            feed.add_component(event)
    return bytes(feed.to_ical())


def calendar_route(
    database: Callable[[], Database], catalogue: Callable[[], Catalogue], clock: Clock
) -> Callable[[str, dict[str, list[str]]], tuple[int, str, bytes] | None]:
    """The HTTP route for ``/calendar/<user>.ics?token=...``: 404 without the right token."""

    def route(path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes] | None:
        match = _CALENDAR_PATH.fullmatch(path)
        if match is None:
            return None
        user_name = unquote(match.group(1))
        token = (query.get("token") or [""])[0]
        with database().session() as session:
            if not token_matches(session, user_name, token):
                return 404, "text/plain", b"not found\n"
            try:
                body = calendar_for(session, catalogue(), user_name, clock.now())
            except KeyError:
                return 404, "text/plain", b"not found\n"
        return 200, "text/calendar; charset=utf-8", body

    return route


_CALENDAR_PATH = re.compile(r"/calendar/([^/]{1,200})\.ics")


def calendar_token(session: Session, user_name: str, now: datetime) -> str:
    """The user's feed token, made (random, 32 bytes) and kept on first use."""
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(
        insert(CalendarToken)
        .values(user_name=user_name, token=secrets.token_urlsafe(32), created_at=now)
        .on_conflict_do_nothing(index_elements=["user_name"])
    )
    row = session.get(CalendarToken, user_name)
    assert row is not None
    return row.token


def token_matches(session: Session, user_name: str, token: str) -> bool:
    """Whether ``token`` is the user's feed token (compared in constant time)."""
    row = session.get(CalendarToken, user_name)
    return row is not None and bool(token) and hmac.compare_digest(row.token, token)
