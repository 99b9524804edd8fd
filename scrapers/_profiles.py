"""Source profiles: the built-in ones in ``profiles.yaml``, and validation of any entry.

A profile is a :class:`~scrapers._models.Source` plus how often to fetch it and which of
its parts nobody has checked against the live site. :func:`load_profiles` reads the
built-in file (or another one); :func:`profile_from_dict` validates one entry, so the
daemon can hold users' ``sources:`` to the same rules.

Every problem raises :class:`~scrapers._errors.ProfileError` (a ScraperError) naming the
file, the entry and the field:
``profiles.yaml: kcell-promo.fields: unknown field 'titel'; use title, ...``.
Unknown keys are errors, not ignored: a typo must not silently disable a selector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml

from scrapers._errors import ExtractError, ProfileError
from scrapers._html import check_selector, parse_field_spec
from scrapers._json import parse_json_path
from scrapers._models import FIELD_NAMES, Render, Source, SourceKind

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_EVERY",
    "MIN_EVERY",
    "Profile",
    "load_profiles",
    "parse_every",
    "profile_from_dict",
]

BUILTIN_PROFILES = Path(__file__).with_name("profiles.yaml")
DEFAULT_EVERY = timedelta(hours=6)
MIN_EVERY = timedelta(minutes=5)
CHECKABLE = ("url", "kind", "items", "fields", "script")

_KEYS = (
    "id",
    "operator",
    "url",
    "kind",
    "render",
    "every",
    "items",
    "fields",
    "script",
    "unverified",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_EVERY = re.compile(r"^\s*([0-9]+)\s*([^\W\d_]*)\s*$")
_MINUTES = {"min": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
_EVERY_EXAMPLES = "30min, 6h, 1d, 1w"


@dataclass(frozen=True)
class Profile:
    """A source, how often to fetch it, and which of its parts are unverified."""

    source: Source
    every: timedelta = DEFAULT_EVERY
    unverified: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.source.id

    @property
    def verified(self) -> bool:
        """True only when someone checked every part against the live site."""
        return not self.unverified


def parse_every(value: object) -> timedelta:
    """``"30min"``, ``"6h"``, ``"1d"``, ``"2w"`` -> a timedelta of at least :data:`MIN_EVERY`.

    The grammar is SIM Watcher's one duration grammar (``watcher.durations``, which this
    library may not import; a test keeps the two in step): a whole number and one unit
    of ``min``, ``h``, ``d``, ``w``. A bare ``m`` is ambiguous and refused naming what
    to write; ``mo`` (months) has no fixed length. Raises a one-line ValueError.
    """
    if not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not an interval; write a whole number and a unit ({_EVERY_EXAMPLES})"
        )
    shown = " ".join(value.split())
    shown = shown if len(shown) <= 20 else shown[:19] + "…"
    match = _EVERY.match(value)
    if match is None or not match.group(2):
        raise ValueError(
            f"`{shown}` is not an interval; write a whole number and a unit ({_EVERY_EXAMPLES})"
        )
    digits, unit = match.group(1), match.group(2).lower()
    if unit == "m":
        raise ValueError(
            f"`{shown}` is ambiguous: write `{digits}min` for minutes or `{digits}mo` for months"
        )
    if unit == "mo":
        raise ValueError(
            f"`{int(digits)}mo` is calendar months, which have no fixed length; "
            "write min, h, d or w (30min, 6h, 1d, 1w)"
        )
    if unit not in _MINUTES:
        raise ValueError(
            f"`{shown}` has an unknown unit `{unit}`; write min, h, d or w ({_EVERY_EXAMPLES})"
        )
    if len(digits) > 4:
        raise ValueError(f"`{shown}` is too long an interval; at most 9999{unit}")
    every = timedelta(minutes=int(digits) * _MINUTES[unit])
    if every < MIN_EVERY:
        raise ValueError(f"`{shown}` is too often; the minimum is 5min")
    return every


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    """The profiles in ``path`` (default: the built-in ``profiles.yaml``), by id, in order.

    Raises :class:`ProfileError` for unreadable YAML or any invalid entry.
    """
    file = Path(path) if path is not None else BUILTIN_PROFILES
    where = file.name if path is None else str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data: Any = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping with a `sources:` list")
    unknown = set(data) - {"sources"}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(map(str, sorted(unknown)))}")
    entries = data.get("sources") or []
    if not isinstance(entries, list):
        raise ProfileError(f"{where}: sources: expected a list of sources")
    profiles: dict[str, Profile] = {}
    for index, entry in enumerate(entries):
        profile = profile_from_dict(entry, where, index)
        if profile.id in profiles:
            raise ProfileError(f"{where}: sources[{index}].id: duplicate id {profile.id!r}")
        profiles[profile.id] = profile
    return profiles


def profile_from_dict(entry: object, where: str = "profiles.yaml", index: int = 0) -> Profile:
    """Validate one source entry (as parsed from YAML) and build its Profile."""
    if not isinstance(entry, dict):
        raise ProfileError(f"{where}: sources[{index}]: expected a mapping, got {entry!r}")
    raw_id = entry.get("id")
    if not isinstance(raw_id, str) or not _ID.match(raw_id):
        label = f"sources[{index}].id"
        if raw_id is None:
            raise ProfileError(f"{where}: {label}: required")
        raise ProfileError(
            f"{where}: {label}: {raw_id!r} is not an id (lowercase letters, digits, - and _)"
        )
    checker = _Checker(where, raw_id)
    checker.check(entry)
    return checker.build(entry)


class _Checker:
    """Validation of one entry, with errors prefixed ``file: id.field:``."""

    def __init__(self, where: str, source_id: str) -> None:
        self.where = where
        self.id = source_id

    def fail(self, field: str, message: str) -> ProfileError:
        return ProfileError(f"{self.where}: {self.id}.{field}: {message}")

    def check(self, entry: Mapping[str, Any]) -> None:
        unknown = [str(key) for key in entry if key not in _KEYS]
        if unknown:
            raise ProfileError(
                f"{self.where}: {self.id}: unknown key(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(_KEYS)}"
            )

    def text(self, entry: Mapping[str, Any], field: str, required: bool = False) -> str | None:
        value = entry.get(field)
        if value is None:
            if required:
                raise self.fail(field, "required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"expected text, got {value!r}")
        return value.strip()

    def build(self, entry: Mapping[str, Any]) -> Profile:
        operator = self.text(entry, "operator")
        if operator is not None and not _ID.match(operator):
            raise self.fail("operator", f"{operator!r} is not an operator id")
        url = cast(str, self.text(entry, "url", required=True))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail("url", f"{url!r} is not an http(s) URL")
        items = self.text(entry, "items")
        # Without a kind, selectors mean html (as before auto existed); else auto.
        kind = self.text(entry, "kind") or ("html" if items is not None else "auto")
        if kind not in ("auto", "html", "feed", "json"):
            raise self.fail("kind", f"{kind!r} is not a kind; use auto, html, feed or json")
        render = self.text(entry, "render") or "http"
        if render not in ("http", "browser"):
            raise self.fail("render", f"{render!r} is not a way to render; use http or browser")
        script = self.text(entry, "script")
        fields = self.fields(entry.get("fields"), kind)
        self.check_kind(kind, items, fields, script)
        try:
            every = parse_every(entry["every"]) if "every" in entry else DEFAULT_EVERY
        except ValueError as exc:
            raise self.fail("every", str(exc)) from None
        unverified = self.unverified(entry.get("unverified"))
        try:
            source = Source(
                id=self.id,
                url=url,
                kind=cast(SourceKind, kind),
                items=items,
                fields=fields,
                operator=operator,
                script=script,
                render=cast(Render, render),
            )
        except ValueError as exc:  # pragma: no cover - the checks above come first
            raise ProfileError(f"{self.where}: {self.id}: {exc}") from None
        return Profile(source, every, unverified)

    def fields(self, value: object, kind: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("fields", f"expected a mapping of field: selector, got {value!r}")
        fields: dict[str, str] = {}
        for name, spec in value.items():
            if name not in FIELD_NAMES:
                raise self.fail("fields", f"unknown field {name!r}; use {', '.join(FIELD_NAMES)}")
            if not isinstance(spec, str) or not spec.strip():
                raise self.fail(f"fields.{name}", f"expected a selector, got {spec!r}")
            try:
                if kind == "json":
                    parse_json_path(spec, f"field {name}")
                else:
                    parse_field_spec(name, spec)
            except ExtractError as exc:
                raise self.fail(
                    f"fields.{name}", str(exc).removeprefix(f"field {name}: ")
                ) from None
            fields[name] = spec.strip()
        return fields

    def check_kind(
        self, kind: str, items: str | None, fields: Mapping[str, str], script: str | None
    ) -> None:
        if kind == "feed":
            for field, value in (("items", items), ("fields", fields)):
                if value:
                    raise self.fail(
                        field, "a feed takes none: items and fields are read as RSS/Atom"
                    )
        if kind == "auto" and fields:
            raise self.fail(
                "fields", "auto finds the fields itself; give items too to pin selectors"
            )
        if script is not None:
            if kind != "json":
                raise self.fail("script", "only a json source reads a <script>")
            try:
                check_selector(script, "script")
            except ExtractError as exc:
                raise self.fail("script", str(exc).removeprefix("script: ")) from None
        if kind == "html":
            if items is None:
                raise self.fail("items", "required: a CSS selector matching each promotion")
            try:
                check_selector(items, "items")
            except ExtractError as exc:
                raise self.fail("items", str(exc).removeprefix("items: ")) from None
        if kind == "json":
            if items is not None:
                try:
                    parse_json_path(items, "path")
                except ExtractError as exc:
                    raise self.fail("items", str(exc).removeprefix("path: ")) from None
            if "title" not in fields:
                raise self.fail("fields", "a json source needs a title path")

    def unverified(self, value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
            raise self.fail("unverified", f"expected a list such as [url, items], got {value!r}")
        wrong = [part for part in value if part not in CHECKABLE]
        if wrong:
            raise self.fail(
                "unverified", f"unknown part(s) {', '.join(wrong)}; use {', '.join(CHECKABLE)}"
            )
        return tuple(dict.fromkeys(value))
