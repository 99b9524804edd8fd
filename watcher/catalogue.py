"""The operator catalogue: what SIM Watcher knows about each operator.

The built-in data is ``operators.yaml``: ``config/operators.yaml`` in a checkout,
``watcher/operators.yaml`` in an installed wheel. A user's ``operators:`` section is
validated with the same :class:`OperatorEntry` model, where every field is optional, and
merged over the built-in entry field by field (mappings key by key, everything else
replaced), so ``renew: {ru: ...}`` changes one text and keeps the rest. An id the
built-in file does not know adds a new operator.

Instruction texts never hold a USSD code literally: they name one as ``{name}`` and the
code must be listed under ``ussd:`` with ``verified: true``. Checking that at load time
is what keeps an unconfirmed code out of every reminder, whoever wrote the text.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, StringConstraints, ValidationError

from watcher.durations import Duration
from watcher.errors import ConfigError, ConfigIssue
from watcher.validation import DurationField, StrictModel, issues_from, load_yaml, yaml_issue

__all__ = [
    "FALLBACK_LANGUAGE",
    "LANGUAGES",
    "Catalogue",
    "Channel",
    "LocalizedText",
    "Operator",
    "OperatorEntry",
    "UssdCode",
    "builtin_entries",
    "builtin_path",
    "generic_operator",
    "load_catalogue",
    "parse_overrides",
    "read_operators_file",
    "resolve_language",
]

logger = logging.getLogger(__name__)

LANGUAGES: tuple[str, ...] = ("en", "ru", "zh", "kk")
"""Languages SIM Watcher writes; texts missing in one fall back to English."""

FALLBACK_LANGUAGE = "en"

# Advice for an operator the catalogue knows nothing about (or whose texts were cleared).
_GENERIC_RENEW: Mapping[str, str] = MappingProxyType(
    {
        "en": "Top up through your operator's app, website or an office.",
        "ru": "Пополните баланс через приложение или сайт оператора либо в его офисе.",
        "zh": "请通过运营商的应用、网站或营业厅充值。",
        "kk": "Балансты оператордың қосымшасы, сайты немесе кеңсесі арқылы толтырыңыз.",
    }
)
_GENERIC_BALANCE: Mapping[str, str] = MappingProxyType(
    {
        "en": "Check your balance in your operator's app or on its website.",
        "ru": "Проверьте баланс в приложении или на сайте оператора.",
        "zh": "请在运营商的应用或网站上查询余额。",
        "kk": "Балансты оператордың қосымшасынан немесе сайтынан тексеріңіз.",
    }
)

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_USSD = re.compile(r"^[*#][0-9*#]*#$")
# A code typed into a text by hand, e.g. "*102#": such a code would bypass `verified`.
_LITERAL_CODE = re.compile(r"[*#]\d[\d*#]*#")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def resolve_language(language: str) -> str:
    """The supported language for a user's setting: ``ru-RU`` -> ``ru``, unknown -> ``en``."""
    base = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return base if base in LANGUAGES else FALLBACK_LANGUAGE


# --- field types -----------------------------------------------------------------------


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+\.[^\s]+$", value):
        raise ValueError("expected an address starting with https:// or http://")
    return value


def _check_ussd(value: str) -> str:
    if not _USSD.match(value):
        raise ValueError("a USSD code looks like *100# or *111*3#; quote it, # starts a comment")
    return value


def _digits_as_text(value: object) -> object:
    # YAML reads `701` as an int; a prefix is text, but the user meant the same thing.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_prefix(value: str) -> str:
    if not re.fullmatch(r"\d{1,6}", value):
        raise ValueError("a prefix is the digits after the country code, e.g. '701'")
    return value


_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Url = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_url)]
_Prefix = Annotated[str, BeforeValidator(_digits_as_text), AfterValidator(_check_prefix)]
_CodeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
_Code = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_ussd)]


class LocalizedText(StrictModel):
    """One text per supported language; any may be missing (English is the fallback)."""

    en: _Text | None = None
    ru: _Text | None = None
    zh: _Text | None = None
    kk: _Text | None = None

    def texts(self) -> dict[str, str]:
        """The languages that have a text, in :data:`LANGUAGES` order."""
        found: dict[str, str] = {}
        for language in LANGUAGES:
            text = getattr(self, language)
            if isinstance(text, str):
                found[language] = text
        return found


class UssdCode(StrictModel):
    """A named USSD code; only ``verified: true`` codes ever reach a message."""

    code: _Code | None = None  # optional so an override may change only the note
    purpose: Literal["balance", "packages", "other"] = "other"
    verified: bool = False  # a code nobody vouched for stays out of messages
    note: _Text | None = None


class Channel(StrictModel):
    """One way to top up or renew: an app, a bank, a terminal network, an office..."""

    kind: Literal["app", "bank", "terminal", "office", "website", "ussd"]
    name: _Text
    url: _Url | None = None
    note: _Text | None = None


class OperatorEntry(StrictModel):
    """One operator as written in operators.yaml or in a user's ``operators:`` section.

    Every field is optional: in a user's config an entry only says what differs from the
    built-in operator of the same id (see :func:`load_catalogue` for the merge rules).
    """

    name: _Text | None = None
    website: _Url | None = None
    prefixes: list[_Prefix] | None = None
    idle_limit: DurationField | None = None
    ussd: dict[_CodeName, UssdCode] | None = None
    channels: list[Channel] | None = None
    billing: list[_Text] | None = None
    renew: LocalizedText | None = None
    balance: LocalizedText | None = None


class _CatalogueFile(StrictModel):
    operators: dict[str, OperatorEntry]


# --- resolved operators ------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    """A resolved operator, ready for messages.

    ``renew_texts`` and ``balance_texts`` hold finished paragraphs per language, with
    verified codes already filled in; use :meth:`renew_instructions` and
    :meth:`balance_instructions` rather than reading them directly.
    """

    id: str
    name: str
    website: str | None = None
    idle_limit: Duration | None = None
    prefixes: list[str] = field(default_factory=list, hash=False)
    ussd: Mapping[str, UssdCode] = field(default_factory=dict, hash=False)
    channels: list[Channel] = field(default_factory=list, hash=False)
    billing: list[str] = field(default_factory=list, hash=False)
    renew_texts: Mapping[str, str] = field(default_factory=dict, hash=False)
    balance_texts: Mapping[str, str] = field(default_factory=dict, hash=False)
    known: bool = True  # False for the generic stand-in of an id nobody described

    def renew_instructions(self, language: str) -> str:
        """How to top up or renew, one short paragraph in ``language`` (else English)."""
        return _pick(self.renew_texts, language, _GENERIC_RENEW)

    def balance_instructions(self, language: str) -> str:
        """How to check the balance, one short paragraph in ``language`` (else English)."""
        return _pick(self.balance_texts, language, _GENERIC_BALANCE)

    def verified_codes(self) -> dict[str, str]:
        """Name -> code for the codes that may be quoted to users."""
        return {
            name: entry.code for name, entry in self.ussd.items() if entry.verified and entry.code
        }


def _pick(texts: Mapping[str, str], language: str, generic: Mapping[str, str]) -> str:
    wanted = resolve_language(language)
    return texts.get(wanted) or texts.get(FALLBACK_LANGUAGE) or generic[wanted]


def generic_operator(operator_id: str) -> Operator:
    """The stand-in for an operator nobody described: named as written, generic advice."""
    return Operator(id=operator_id, name=operator_id.strip() or operator_id, known=False)


class Catalogue:
    """The operators SIM Watcher knows, built-in and user-added, looked up by id."""

    def __init__(self, operators: Iterable[Operator]) -> None:
        self._operators = {operator.id: operator for operator in operators}

    def get(self, operator_id: str) -> Operator:
        """The operator with this id (case-insensitive), or a generic one named as given."""
        found = self._operators.get(operator_id.strip().lower())
        return found if found is not None else generic_operator(operator_id)

    def known_ids(self) -> list[str]:
        """Ids of every described operator, sorted."""
        return sorted(self._operators)

    def __contains__(self, operator_id: object) -> bool:
        return isinstance(operator_id, str) and operator_id.strip().lower() in self._operators

    def __len__(self) -> int:
        return len(self._operators)


# --- loading -----------------------------------------------------------------------------


def builtin_path() -> Path:
    """Where the built-in ``operators.yaml`` is: inside the package, else in the checkout."""
    package_dir = Path(__file__).resolve().parent
    packaged = package_dir / "operators.yaml"  # a wheel install force-includes it here
    if packaged.is_file():
        return packaged
    return package_dir.parent / "config" / "operators.yaml"


@functools.cache
def builtin_entries() -> Mapping[str, OperatorEntry]:
    """The built-in catalogue, parsed and checked once per process."""
    path = builtin_path()
    entries = read_operators_file(path)
    logger.debug("loaded %d built-in operators from %s", len(entries), path)
    return MappingProxyType(entries)


def read_operators_file(path: Path) -> dict[str, OperatorEntry]:
    """Parse and check a catalogue file with the strictness the built-in one must meet.

    Beyond the schema, every operator needs a name, every USSD entry says ``verified``
    explicitly and carries a note, and both instruction texts exist in every language.
    Raises :class:`ConfigError` listing every problem found.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigIssue(file, "", f"cannot read it: {reason}")]) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_issue(exc, file)]) from None
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(file, "", "expected a mapping with an `operators:` key")])
    try:
        entries = _CatalogueFile.model_validate(raw).operators
    except ValidationError as exc:
        raise ConfigError(issues_from(exc, file, model=_CatalogueFile)) from None

    issues = _id_issues(entries, file)
    for operator_id, entry in entries.items():
        issues.extend(_completeness_issues(operator_id, entry, file))
        issues.extend(_resolve(operator_id, entry, file)[1])
    if issues:
        raise ConfigError(issues)
    return entries


def parse_overrides(raw: object, *, source: str = "config") -> dict[str, OperatorEntry]:
    """Validate a user's raw ``operators:`` mapping; problems raise :class:`ConfigError`.

    ``source`` names the user's file in each issue.
    """
    if raw is None:
        return {}
    try:
        entries = _CatalogueFile.model_validate({"operators": raw}).operators
    except ValidationError as exc:
        raise ConfigError(issues_from(exc, source, model=_CatalogueFile)) from None
    issues = _id_issues(entries, source)
    if issues:
        raise ConfigError(issues)
    return entries


def load_catalogue(
    overrides: Mapping[str, OperatorEntry] | None = None,
    *,
    source: str = "config",
    builtin_file: Path | None = None,
) -> Catalogue:
    """The built-in catalogue with a user's ``operators:`` entries merged over it.

    Merge rules: a field the override does not set keeps the built-in value; mappings
    (``ussd``, ``renew``, ``balance`` and each code inside ``ussd``) merge key by key;
    lists and plain values replace; an explicit ``null`` clears. ``source`` names the
    user's file in errors; ``builtin_file`` replaces the built-in file (uncached), for
    tests and for people trying out an edited catalogue.
    """
    builtin = builtin_entries() if builtin_file is None else read_operators_file(builtin_file)
    overrides = overrides or {}
    issues = _id_issues(overrides, source)
    merged: dict[str, OperatorEntry] = dict(builtin)
    for operator_id, entry in overrides.items():
        base = merged.get(operator_id)
        merged[operator_id] = entry if base is None else _merge(base, entry)

    operators: list[Operator] = []
    for operator_id, entry in merged.items():
        # Built-in entries were checked on their own, so a problem here comes from the
        # user's override even when its path points into a built-in text.
        file = source if operator_id in overrides else str(builtin_file or builtin_path())
        operator, found = _resolve(operator_id, entry, file)
        issues.extend(found)
        operators.append(operator)
    if issues:
        raise ConfigError(issues)
    return Catalogue(operators)


_M = TypeVar("_M", bound=BaseModel)


def _merge(base: _M, override: _M) -> _M:
    """``base`` with every field the override explicitly set merged in."""
    updates = {
        name: _merge_value(getattr(base, name), getattr(override, name))
        for name in override.model_fields_set
    }
    # The pieces were validated on their own; model_copy keeps them typed as they are.
    return base.model_copy(update=updates)


def _merge_value(old: Any, new: Any) -> Any:
    if isinstance(old, BaseModel) and type(new) is type(old):
        return _merge(old, new)
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = _merge_value(old[key], value) if key in old else value
        return merged
    return new


def _resolve(
    operator_id: str, entry: OperatorEntry, file: str
) -> tuple[Operator, list[ConfigIssue]]:
    """Turn an entry into an :class:`Operator`, filling verified codes into the texts."""
    at = f"operators.{operator_id}"
    issues: list[ConfigIssue] = []
    codes = entry.ussd or {}
    for name, code in codes.items():
        if code.code is None:
            issues.append(ConfigIssue(file, f"{at}.ussd.{name}.code", "missing: say which code"))

    texts: dict[str, dict[str, str]] = {}
    for kind in ("renew", "balance"):
        localized: LocalizedText | None = getattr(entry, kind)
        texts[kind] = {}
        for language, text in (localized.texts() if localized else {}).items():
            filled, problems = _fill_codes(text, codes)
            issues.extend(ConfigIssue(file, f"{at}.{kind}.{language}", p) for p in problems)
            texts[kind][language] = filled

    operator = Operator(
        id=operator_id,
        name=entry.name or operator_id,
        website=entry.website,
        idle_limit=entry.idle_limit,
        prefixes=list(entry.prefixes or []),
        ussd=MappingProxyType(dict(codes)),
        channels=list(entry.channels or []),
        billing=list(entry.billing or []),
        renew_texts=MappingProxyType(texts["renew"]),
        balance_texts=MappingProxyType(texts["balance"]),
    )
    return operator, issues


def _fill_codes(text: str, codes: Mapping[str, UssdCode]) -> tuple[str, list[str]]:
    """``text`` as one paragraph with ``{name}`` replaced by verified codes, and problems."""
    problems: list[str] = []
    literal = _LITERAL_CODE.search(text)
    if literal:
        problems.append(
            f"{literal.group()} is written into the text; list it under `ussd:` with a "
            "note and `verified: true`, then write its name in braces, e.g. {balance}"
        )
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1)
        code = codes.get(name)
        if code is None:
            known = ", ".join(sorted(codes)) or "none"
            problems.append(f"{{{name}}} names no code under `ussd:` (known: {known})")
        elif not code.verified:
            problems.append(
                f"{{{name}}} is `verified: false`, so messages may not quote it; "
                "mark it verified once confirmed, or reword this text"
            )
        elif code.code is None:
            problems.append(f"{{{name}}} has no code to fill in")

    def fill(match: re.Match[str]) -> str:
        code = codes.get(match.group(1))
        return code.code if code is not None and code.code else match.group()

    # Folded YAML leaves line breaks and double spaces; a message wants one paragraph.
    return " ".join(_PLACEHOLDER.sub(fill, text).split()), problems


def _id_issues(entries: Mapping[str, object], file: str) -> list[ConfigIssue]:
    return [
        ConfigIssue(
            file,
            f"operators.{operator_id}",
            "an operator id is lowercase letters, digits, - and _ (e.g. kcell)",
        )
        for operator_id in entries
        if not _ID.match(operator_id)
    ]


def _completeness_issues(operator_id: str, entry: OperatorEntry, file: str) -> list[ConfigIssue]:
    at = f"operators.{operator_id}"
    issues: list[ConfigIssue] = []
    if entry.name is None:
        issues.append(ConfigIssue(file, f"{at}.name", "missing: every operator needs a name"))
    for name, code in (entry.ussd or {}).items():
        if "verified" not in code.model_fields_set:
            issues.append(
                ConfigIssue(file, f"{at}.ussd.{name}.verified", "say true or false explicitly")
            )
        if code.note is None:
            issues.append(
                ConfigIssue(file, f"{at}.ussd.{name}.note", "missing: what it does, and the source")
            )
    for kind in ("renew", "balance"):
        localized: LocalizedText | None = getattr(entry, kind)
        present = localized.texts() if localized else {}
        for language in LANGUAGES:
            if language not in present:
                issues.append(ConfigIssue(file, f"{at}.{kind}.{language}", "missing text"))
    return issues
