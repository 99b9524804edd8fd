"""What ``watcher check`` says about a config beyond "valid or not".

- :class:`Redactor` turns error text back into the file's own words: a value that came
  from ``${VAR}`` is shown as written (``tgram://${TG_TOKEN}/1``), an environment
  value anywhere else as ``${VAR}``, and a phone number masked. Every issue of a
  config that had variables substituted passes through it before anyone sees it.
- :func:`suggest` offers "did you mean `expires`?" for a misspelt key.
- :func:`config_warnings` lists settings that are valid but do nothing.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from watcher.errors import ConfigIssue
from watcher.masking import mask_phone

if TYPE_CHECKING:
    from watcher.config import Config

__all__ = ["Redactor", "config_warnings", "log_warnings", "suggest", "under"]

log = logging.getLogger("watcher.config")

# 10 to 15 digits, optionally after "+" and with a space, dash or bracket or two
# between them: a phone number however it is written. Dates (8 digits) never match.
_PHONE = re.compile(r"(?<![\d+])\+?\(?\d(?:[\s()\-]{0,2}\d){9,14}(?!\d)")
_SHORTEST_SECRET = 4  # shorter environment values are not hidden: "1" is in every number


# What a message shows of a value it cut short: the text before the ellipsis.
_CUT = re.compile(r"([^\s`'\"]+)…")


class Redactor:
    """Remembers what ``${VAR}`` substitution put into a config, to take it out of errors."""

    def __init__(self) -> None:
        self._written: dict[str, str] = {}  # substituted text -> the text as written
        self._values: dict[str, str] = {}  # an environment value -> "${NAME}"
        self._folded: dict[str, str] = {}  # each form of a value, case-folded -> "${NAME}"
        self._patterns: tuple[re.Pattern[str] | None, dict[str, str], re.Pattern[str] | None]
        self._patterns, self._stale = (None, {}, None), False

    def record(self, written: str, substituted: str, used: dict[str, str]) -> None:
        """``written`` (with its ``${VAR}``s) became ``substituted``, using ``used`` values."""
        if substituted != written:
            self._written[substituted] = written
        for name, value in used.items():
            self._values.setdefault(value, f"${{{name}}}")
        self._stale = True

    def clean(self, text: str) -> str:
        """``text`` with no substituted value in it, and every phone number masked.

        A substituted value is shown as written; then any environment value left (a
        validator may have lowercased or cut it) as ``${NAME}``, ignoring case. Each
        value is found as it is, and as quoted by ``repr`` and by JSON.
        """
        written, shown, values = self._compiled()
        if written is not None:
            text = written.sub(lambda m: shown[m.group()], text)
        text = _PHONE.sub(lambda m: mask_phone(m.group()), text)
        if values is not None:
            text = values.sub(lambda m: self._name_of(m.group()), text)
        if self._written or self._values:
            text = _CUT.sub(self._uncut, text)
        return text

    def _uncut(self, match: re.Match[str]) -> str:
        """A value a message cut short (``987654321:AAHdq…``) that begins a substituted
        one: shown as written (or by its variable's name), cut too."""
        part = match.group(1)
        if len(part) < _SHORTEST_SECRET:
            return match.group()
        for substituted, written in self._written.items():
            if substituted.startswith(part):
                return f"{written}…"
        for value, name in self._values.items():
            if value.startswith(part) or part.startswith(value):
                return f"{name}…"
        return match.group()

    def _compiled(
        self,
    ) -> tuple[re.Pattern[str] | None, dict[str, str], re.Pattern[str] | None]:
        # One alternation per kind, longest first: a file of 100,000 issues and many
        # variables is cleaned in one pass per issue.
        if self._stale:
            self._stale = False
            shown: dict[str, str] = {}
            for substituted, written in self._written.items():
                if len(substituted) < _SHORTEST_SECRET:
                    continue
                for form, as_written in (
                    (substituted, written),
                    (repr(substituted)[1:-1], repr(written)[1:-1]),
                    (json.dumps(substituted)[1:-1], json.dumps(written)[1:-1]),
                ):
                    shown.setdefault(form, as_written)
            self._folded = {
                form.casefold(): name
                for value, name in self._values.items()
                if len(value.strip()) >= _SHORTEST_SECRET
                for form in (value, value.strip(), repr(value)[1:-1], json.dumps(value)[1:-1])
            }
            self._patterns = (_alternation(shown, 0), shown, _alternation(self._folded, re.I))
        return self._patterns

    def _name_of(self, found: str) -> str:
        return self._folded.get(found.casefold(), "${...}")

    def issue(self, issue: ConfigIssue) -> ConfigIssue:
        message = self.clean(_without_dumps(issue.message))
        return ConfigIssue(issue.file, self.clean(issue.path), message)


def _alternation(forms: dict[str, str], flags: int) -> re.Pattern[str] | None:
    if not forms:
        return None
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(re.escape(form) for form in ordered), flags)


def _without_dumps(text: str) -> str:
    """Each Python-printed mapping or list in ``text`` replaced by its kind.

    A block indented one level too far arrives as another setting's value, and a
    message quoting that value would print the whole block (a ``channels:`` section
    with its tokens): whatever the message, it says "a mapping" instead.
    """
    start = _DUMP.search(text)
    while start is not None:
        end = _closing(text, start.start())
        if end is None:
            break
        kind = "a mapping" if text[start.start()] == "{" else "a list"
        text = text[: start.start()] + kind + text[end + 1 :]
        start = _DUMP.search(text, start.start() + len(kind))
    return text


_DUMP = re.compile(r"[{\[](?=['\"{\[])")


def _closing(text: str, opening: int) -> int | None:
    """Where the bracket at ``opening`` closes, skipping quoted text; None if it never does."""
    depth, quote, index = 0, "", opening
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def under(path: str, other: str) -> bool:
    """True if ``path`` is ``other`` or inside it (``users[0].notify[1]`` is in ``users[0]``)."""
    return path == other or path.startswith((f"{other}.", f"{other}["))


def suggest(key: object, names: Iterable[str]) -> str | None:
    """The known name ``key`` was most likely meant to be, if one is close enough."""
    if not isinstance(key, str) or len(key) > 64:
        return None
    close = difflib.get_close_matches(key.lower(), list(names), n=1, cutoff=0.7)
    return close[0] if close else None


# --- settings that do nothing ------------------------------------------------------


def config_warnings(config: Config, file: str) -> list[ConfigIssue]:
    """Settings that are valid but have no effect; the config still loads with them."""
    found: list[ConfigIssue] = []

    def warn(path: str, message: str) -> None:
        found.append(ConfigIssue(file, path, message))

    if not config.users:
        warn("users", "no users: nobody will be reminded of anything")
    for u, user in enumerate(config.users):
        for s, sim in enumerate(user.sims):
            where = f"users[{u}].sims[{s}]"
            if sim.idle_limit is not None and sim.last_paid_activity is None:
                warn(
                    f"{where}.idle_limit",
                    "does nothing without last_paid_activity (or a renewal recorded "
                    "with `watcher renew`)",
                )
            if sim.expires is not None and not sim.remind_before and not sim.remind_after:
                warn(
                    f"{where}.expires",
                    "remind_before and remind_after are both empty: no expiry reminder is sent",
                )
            if (
                sim.expires is None
                and sim.balance_check_every is None
                and sim.low_balance is None
                and (sim.idle_limit is None or sim.last_paid_activity is None)
            ):
                warn(
                    where,
                    "nothing to remind of: set expires, balance_check_every, low_balance "
                    "or idle_limit with last_paid_activity",
                )
        if user.promotions is not None and not config.promotion_sources(user):
            warn(
                f"users[{u}].promotions",
                "no promotion source serves this subscription: no promotion will be sent; "
                "list operators or sources that have one, or add one under sources:",
            )
    return found


def log_warnings(config: Config, file: str) -> None:
    """Log each warning of a config the daemon has just taken up."""
    for warning in config_warnings(config, file):
        log.warning("config: %s", warning)
