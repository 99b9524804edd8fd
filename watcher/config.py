"""The config file users write: loading, ``${VAR}`` substitution and validation.

Every problem is reported as a :class:`~watcher.errors.ConfigIssue` naming the file,
the path inside it (``users[0].sims[1].expires``) and what is wrong; all of them are
collected before :class:`~watcher.errors.ConfigError` is raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from stat import S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from scrapers import (
    FetchSettings,
    Profile,
    ProfileError,
    RenderSettings,
    load_profiles,
    profile_from_dict,
    render_unavailable,
)
from watcher.catalogue import Catalogue, OperatorEntry, load_catalogue, parse_overrides
from watcher.channels import CONSOLE_URL, Channels
from watcher.config_diagnostics import Redactor, under
from watcher.durations import Duration
from watcher.errors import ConfigError, ConfigIssue
from watcher.limits import Override
from watcher.masking import hide_in_logs, mask_url
from watcher.phones import normalise_number
from watcher.quiet import QuietHours, parse_clock
from watcher.reminders.rules import Kind, SimDates, out_of_calendar
from watcher.validation import (
    DurationField,
    StrictModel,
    issues_from,
    join_key,
    load_yaml,
    yaml_issue,
)

DEFAULT_REMIND_BEFORE = ("7d", "3d", "1d", "0d")
DEFAULT_REMIND_AFTER = ("1d", "3d", "7d")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SIM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BROWSER_HINT = (
    "render: browser needs Playwright and Chromium: pip install 'sim-watcher[browser]' "
    "and apt-get install chromium, or set scraping.browser_url"
)


# --- field types -------------------------------------------------------------------


def _parse_date(value: object) -> date:
    # YAML already turns 2026-12-01 into a date; a quoted string is accepted too, but
    # not an integer (pydantic would read 20261201 as a Unix timestamp).
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")


def _parse_zone(value: object) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-/]*", value):
        raise ValueError(f"expected an IANA time zone name such as Asia/Almaty, got {value!r}")
    try:
        return ZoneInfo(value)
    except Exception:  # ZoneInfo raises several types for bad keys
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Asia/Almaty"
        ) from None


DateField = Annotated[date, BeforeValidator(_parse_date)]
_HHMM = r"([01]?[0-9]|2[0-3]):[0-5][0-9]"
ClockField = Annotated[
    time,
    BeforeValidator(parse_clock),
    PlainSerializer(lambda value: f"{value:%H:%M}"),
    WithJsonSchema({"type": "string", "pattern": rf"^\s*{_HHMM}\s*$", "examples": ["10:00"]}),
]
ZoneField = Annotated[
    ZoneInfo,
    BeforeValidator(_parse_zone),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "description": "an IANA name", "examples": ["Asia/Almaty"]}),
]
QuietField = Annotated[
    QuietHours,
    BeforeValidator(QuietHours.parse),
    PlainSerializer(str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^\s*{_HHMM}\s*-\s*{_HHMM}\s*$",
            "examples": ["22:00-08:00"],
        }
    ),
]


# --- models ------------------------------------------------------------------------


DEFAULT_WORKERS = 64
"""Messages one daemon sends at once: enough to keep up with services answering in
200-500 ms (Telegram, SMTP over the internet); each waits on the network, not the CPU."""
MAX_WORKERS = 512


class SimConfig(StrictModel):
    """One SIM card."""

    id: str
    operator: str
    number: str
    plan: str | None = None
    expires: DateField | None = None
    renew_every: DurationField | None = None
    remind_before: list[DurationField] = Field(
        default_factory=lambda: [Duration.parse(d) for d in DEFAULT_REMIND_BEFORE]
    )
    remind_after: list[DurationField] = Field(
        default_factory=lambda: [Duration.parse(d) for d in DEFAULT_REMIND_AFTER]
    )
    balance_check_every: DurationField | None = None
    last_balance_check: DateField | None = None
    low_balance: Decimal | None = Field(default=None, ge=0)
    idle_limit: DurationField | None = None
    last_paid_activity: DateField | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _SIM_ID.match(value):
            raise ValueError(
                f"{value!r} is not a usable SIM id: use letters, digits, '-', '_' or '.', "
                "at most 64 characters"
            )
        return value

    @field_validator("operator")
    @classmethod
    def _operator_shape(cls, value: str) -> str:
        value = value.strip().lower()
        if not value:
            raise ValueError("operator cannot be empty")
        return value

    @field_validator("number", mode="before")
    @classmethod
    def _number_shape(cls, value: object) -> object:
        # Unquoted in YAML, 87011234567 (or +77011234567) is read as an integer.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return normalise_number(value) if isinstance(value, str) else value

    @field_validator("remind_before", "remind_after")
    @classmethod
    def _unique_offsets(cls, value: list[Duration]) -> list[Duration]:
        if len(set(value)) != len(value):
            raise ValueError("the same offset is listed twice")
        return value

    @field_validator("balance_check_every", "renew_every", "idle_limit")
    @classmethod
    def _positive(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.amount == 0:
            raise ValueError("must be longer than 0 days")
        return value

    @property
    def label(self) -> str:
        return self.plan or self.id


ChangeKind = Literal["new", "changed", "ended"]


class PromotionPrefs(StrictModel):
    """What promotions a user wants to hear about, and how often.

    Having the section at all is the opt-in: ``promotions: {}`` means "new promotions
    of my SIMs' operators, as they are found".
    """

    operators: list[str] | None = None  # default: the operators of the user's SIMs
    sources: list[str] | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    on: list[ChangeKind] = Field(default_factory=lambda: list[ChangeKind](["new"]))
    digest: Literal["immediate", "daily", "weekly"] = "immediate"

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted `on:` key as the boolean True.
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if key is True else key): item for key, item in value.items()}
        return value

    @field_validator("operators")
    @classmethod
    def _operator_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [name.strip().lower() for name in value]
        if not all(names):
            raise ValueError("an operator name cannot be empty")
        return names

    @field_validator("include", "exclude")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if any(not word.strip() for word in value):
            raise ValueError("a keyword cannot be empty")
        return value

    @field_validator("on")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one of new, changed, ended")
        if len(set(value)) != len(value):
            raise ValueError("the same kind is listed twice")
        return value


class ScrapingConfig(StrictModel):
    """How promotion pages are fetched (the defaults suit almost everyone)."""

    proxy: str | None = None  # else the standard HTTP(S)_PROXY / NO_PROXY variables
    user_agent: str | None = None
    respect_robots: bool = True
    # For sources with `render: browser`: a remote browser's DevTools endpoint
    # (ws://browser:3000), else the Chromium executable (default: found on the system).
    browser_url: str | None = None
    browser_path: str | None = None
    # Bounds of one rendered page: its whole time (seconds) and its HTML's size (bytes).
    render_timeout: float = Field(default=30.0, gt=0, le=600)
    render_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)

    @model_validator(mode="after")
    def _usable(self) -> ScrapingConfig:
        self.fetch_settings()  # FetchSettings' own rules; its messages hold no secrets
        self.render_settings()
        if self.proxy and self.proxy.lower().startswith("socks"):
            import importlib.util

            if importlib.util.find_spec("socksio") is None:
                raise ValueError(
                    "a socks5 proxy needs the socksio package: pip install 'httpx[socks]'"
                )
        return self

    def fetch_settings(self) -> FetchSettings:
        settings = FetchSettings(proxy=self.proxy, respect_robots=self.respect_robots)
        if self.user_agent is not None:
            settings = replace(settings, user_agent=self.user_agent)
        return settings

    def render_settings(self) -> RenderSettings:
        return RenderSettings(
            executable_path=self.browser_path,
            browser_url=self.browser_url,
            timeout=self.render_timeout,
            max_bytes=self.render_max_bytes,
        )


class HostLimitConfig(StrictModel):
    """``delivery.limits.HOST``: what one service's host may take (either or both)."""

    connections: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    per_second: float | None = Field(default=None, gt=0, le=10_000)

    @model_validator(mode="after")
    def _something(self) -> HostLimitConfig:
        if self.connections is None and self.per_second is None:
            raise ValueError("set connections, per_second or both")
        return self


class DeliveryConfig(StrictModel):
    """How many messages one daemon sends at once, and what each service may take."""

    workers: int = Field(default=DEFAULT_WORKERS, ge=1, le=MAX_WORKERS)
    limits: dict[str, HostLimitConfig] = Field(default_factory=dict)

    @field_validator("limits", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        hosts: dict[str, object] = {}
        for key, limit in value.items():
            host = str(key).strip().lower().rstrip(".")
            if not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\]", host):
                raise ValueError(
                    f"{str(key)[:80]!r} is not a host name: write the host as in the URL "
                    "(smtp.example.org, or api.telegram.org for each Telegram bot)"
                )
            if host in hosts:
                raise ValueError(f"{host!r} is listed twice")
            hosts[host] = limit
        return hosts

    def overrides(self) -> dict[str, Override]:
        return {
            host: Override(limit.connections, limit.per_second)
            for host, limit in self.limits.items()
        }


class UserConfig(StrictModel):
    """A person who gets reminders, and their SIMs."""

    name: str = Field(min_length=1, max_length=64)
    timezone: ZoneField | None = None
    language: str = Field("en", json_schema_extra={"enum": ["en", "ru", "zh", "kk"]})
    notify: list[str] = Field(min_length=1)
    quiet_hours: QuietField | None = None
    remind_at: ClockField | None = None
    sims: list[SimConfig] = Field(default_factory=list)
    promotions: PromotionPrefs | None = None

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("en", "ru", "zh", "kk"):
            raise ValueError(f"unsupported language {value!r}; use en, ru, zh or kk")
        return value


class Config(StrictModel):
    """A whole config file, validated."""

    timezone: ZoneField = Field(default_factory=lambda: ZoneInfo("UTC"))
    database: str | None = None
    remind_at: ClockField = time(10, 0)
    channels: dict[str, list[str]] = Field(default_factory=dict)
    admin: list[str] = Field(default_factory=list)
    operators: dict[str, OperatorEntry] = Field(default_factory=dict)
    # Promotion sources: checked by scrapers' own profile rules in parse_config.
    sources: list[Any] = Field(default_factory=list)
    scraping: ScrapingConfig = Field(default_factory=ScrapingConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    users: list[UserConfig] = Field(default_factory=list)
    _profiles: dict[str, Profile] = PrivateAttr(default_factory=dict)

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_lists(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("channels")
    @classmethod
    def _channel_urls(
        cls, value: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        # Asking Apprise loads every one of its plugins (a quarter of a second): only
        # when the caller wants the URLs checked (see parse_config).
        check = (info.context or {}).get("channels", True)
        for name, urls in value.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"channel name {name!r}: use letters, digits, '-', '_' or '.'")
            if not urls:
                raise ValueError(f"channel {name!r} has no URL")
            for url in urls:
                if url.strip() == CONSOLE_URL or not check:
                    continue
                import apprise

                if not apprise.Apprise.instantiate(url, suppress_exceptions=True):
                    raise ValueError(
                        f"channel {name!r}: {mask_url(url)} is not a notification URL "
                        "Apprise understands"
                    )
        return value

    def source_profiles(self) -> dict[str, Profile]:
        """The built-in promotion sources, with the config's ``sources:`` added or replacing."""
        return dict(self._profiles)

    def promotion_sources(self, user: UserConfig) -> list[str]:
        """The ids of the sources a user subscribed to, in profile order (none if not opted in).

        ``operators`` and ``sources`` add up; with neither, the operators of the user's
        SIMs are meant.
        """
        prefs = user.promotions
        if prefs is None:
            return []
        operators = prefs.operators
        if operators is None and prefs.sources is None:
            operators = [sim.operator for sim in user.sims]
        wanted_ops = set(operators or [])
        wanted_ids = set(prefs.sources or [])
        return [
            profile.id
            for profile in self._profiles.values()
            if profile.id in wanted_ids or profile.source.operator in wanted_ops
        ]

    def watched_sources(self) -> dict[str, Profile]:
        """The sources the daemon scrapes: subscribed ones, and all listed under ``sources:``."""
        listed = {entry.get("id") for entry in self.sources if isinstance(entry, dict)}
        for user in self.users:
            listed.update(self.promotion_sources(user))
        return {pid: profile for pid, profile in self._profiles.items() if pid in listed}

    def user_timezone(self, user: UserConfig) -> ZoneInfo:
        return user.timezone or self.timezone

    def user_remind_at(self, user: UserConfig) -> time:
        return user.remind_at or self.remind_at

    def channel_languages(self, channel: str) -> list[str]:
        """The languages of the users a channel notifies, in file order; English if none
        (a channel only ``admin`` uses gets English, as admin messages are)."""
        languages = [user.language for user in self.users if channel in user.notify]
        return list(dict.fromkeys(languages)) or ["en"]

    def sims(self) -> list[tuple[UserConfig, SimConfig]]:
        return [(user, sim) for user in self.users for sim in user.sims]


def _known(names: set[str]) -> str:
    if not names:
        return " (no channels are defined)"
    # A name that is not a plain word is quoted, so a newline in it cannot break the line.
    shown = (n if re.fullmatch(r"[\w.-]+", n) else json.dumps(n, ensure_ascii=False) for n in names)
    return f" (defined: {', '.join(sorted(shown))})"


# --- loading -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with what is built from it, and where it came from.

    The catalogue (built-in operators with the config's ``operators:`` merged over
    them) and the channels are built and checked with the config, so a config that
    loads is usable as a whole, and a reload swaps all of them or none.
    """

    path: Path
    config: Config
    catalogue: Catalogue
    channels: Channels
    mtime_ns: int = 0
    digest: str = ""  # SHA-256 of the file's bytes: tells one version from another

    def admin_targets(self) -> list[str]:
        """The delivery targets of the ``admin`` channels."""
        return [t for name in self.config.admin for t in self.channels.targets(name)]


MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""The largest config file read (a 10,000-SIM config is about 2.3 MB)."""


def read_config_file(path: Path | str) -> tuple[bytes, int]:
    """The file's bytes and modification time; a file that cannot be read is a ConfigError.

    Only a regular file is read, and at most :data:`MAX_CONFIG_BYTES` of it: a FIFO
    would block and ``/dev/zero`` never ends. It is opened without blocking and checked
    on the open descriptor, so nothing can be swapped in between.
    """
    path = Path(path)

    def refuse(problem: str) -> ConfigError:
        return ConfigError([ConfigIssue(str(path), "", problem)])

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise refuse("file not found") from None
    except OSError as exc:
        raise refuse(f"cannot read: {exc.strerror}") from None
    try:
        stat = os.fstat(fd)
        if not S_ISREG(stat.st_mode):
            raise refuse(f"not a regular file ({_file_kind(stat.st_mode)})")
        if stat.st_size > MAX_CONFIG_BYTES:
            raise refuse(f"larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:  # grew while being read
        raise refuse(f"larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB")
    return data, stat.st_mtime_ns


def _file_kind(mode: int) -> str:
    kinds = ((S_ISDIR, "a directory"), (S_ISFIFO, "a FIFO"), (S_ISCHR, "a device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_config(
    path: Path | str, env: Mapping[str, str] | None = None, *, check_channels: bool = True
) -> LoadedConfig:
    """Read, substitute and validate a config file; raise ConfigError listing every issue."""
    data, mtime_ns = read_config_file(path)
    env = os.environ if env is None else env
    loaded = parse_config(data, str(path), env, check_channels=check_channels)
    return replace(loaded, mtime_ns=mtime_ns)


def parse_config(
    data: bytes | str, file: str, env: Mapping[str, str], *, check_channels: bool = True
) -> LoadedConfig:
    """Validate config text, with its catalogue and channels; ``file`` names it in errors.

    ``check_channels=False`` skips asking Apprise whether it understands each channel
    URL (it loads every plugin to answer): for commands that send nothing, such as
    ``status`` and ``health``, which the container runs every minute.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(file, "", f"not UTF-8 text (byte {exc.start})")]) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_issue(exc, file)]) from None
    except RecursionError:
        raise ConfigError([ConfigIssue(file, "", "YAML nests too deeply")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(file, "", "expected a mapping of settings at the top")])
    unset: list[ConfigIssue] = []
    redactor = Redactor()
    raw = _substitute(raw, "", env, file, unset, redactor)
    try:
        loaded = _validate(raw, data, file, check_channels=check_channels)
    except ConfigError as exc:
        # An unset variable is reported with every other problem, but what its empty
        # value broke (that field, and the checks of what holds it) is not news.
        issues = unset + [
            issue
            for issue in exc.issues
            if not any(
                issue.path and (under(issue.path, u.path) or under(u.path, issue.path))
                for u in unset
            )
        ]
        raise ConfigError([redactor.issue(issue) for issue in issues]) from None
    if unset:
        raise ConfigError([redactor.issue(issue) for issue in unset])
    return loaded


def _validate(
    raw: dict[Any, Any], data: bytes | str, file: str, *, check_channels: bool
) -> LoadedConfig:
    """The substituted config's checks, all of them; raise ConfigError listing each issue."""
    # Validating a channel URL makes Apprise log it at DEBUG: hide its secrets first.
    scraping = raw.get("scraping")
    hidden = (
        [scraping.get(k) for k in ("proxy", "browser_url")] if isinstance(scraping, dict) else []
    )
    hide_in_logs(_raw_urls(raw.get("channels")) + [url for url in hidden if isinstance(url, str)])
    # Cross-references are checked on the raw data so they are reported even when
    # some field is also invalid: `watcher check` lists every problem at once.
    issues = [ConfigIssue(file, path, problem) for path, problem in _cross_references(raw)]
    config: Config | None = None
    try:
        config = Config.model_validate(raw, context={"channels": check_channels})
    except ValidationError as exc:
        issues = issues_from(exc, file, model=Config) + issues
    except RecursionError:
        issues.append(ConfigIssue(file, "", "YAML nests too deeply"))
    catalogue, catalogue_issues = _catalogue(raw.get("operators"), file)
    issues += [issue for issue in catalogue_issues if issue not in issues]
    entries = raw.get("sources")
    profiles, source_issues = _source_profiles(entries if isinstance(entries, list) else [], file)
    issues += source_issues
    issues += [
        ConfigIssue(file, path, problem)
        for path, problem in _subscription_references(raw.get("users"), profiles)
    ]
    if config is not None:
        issues += _browser_issues(entries if isinstance(entries, list) else [], config, file)
        if catalogue is not None:
            issues += _calendar_issues(config, catalogue, file)
    if issues or config is None or catalogue is None:
        raise ConfigError(issues)
    config._profiles = profiles
    return LoadedConfig(
        Path(file),
        config,
        catalogue,
        Channels(config.channels),
        digest=digest_of(data if isinstance(data, bytes) else data.encode("utf-8")),
    )


def _catalogue(operators: object, file: str) -> tuple[Catalogue | None, list[ConfigIssue]]:
    """The built-in catalogue with the config's ``operators:`` merged over it, or its issues.

    The Config model reports the section's shape too, in the same words: the caller
    drops the issues it already has. What only shows here (an id that is not lowercase,
    a text quoting an unverified code once merged) is reported once.
    """
    try:
        overrides = parse_overrides(operators if isinstance(operators, dict) else None, source=file)
    except ConfigError as exc:
        return None, exc.issues
    try:
        return load_catalogue(overrides, source=file), []
    except ConfigError as exc:
        return None, exc.issues


def _source_profiles(entries: list[Any], file: str) -> tuple[dict[str, Profile], list[ConfigIssue]]:
    """Built-in profiles, then the config's entries by id (an entry replaces a built-in)."""
    try:
        profiles = load_profiles()
    except ProfileError as exc:  # a broken installation, but still a one-line error
        raise ConfigError([ConfigIssue("profiles.yaml", "", str(exc))]) from None
    issues: list[ConfigIssue] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            profile = profile_from_dict(entry, file, index)
        except ProfileError as exc:
            # Its message reads "FILE: ID.field: problem" or "FILE: sources[i].field: ...".
            text = str(exc).removeprefix(f"{file}: ")
            path, _, problem = text.partition(": ")
            source_id = entry.get("id") if isinstance(entry, dict) else None
            if isinstance(source_id, str) and path.startswith(f"{source_id}."):
                path = f"sources[{index}]" + path[len(source_id) :]
            elif isinstance(source_id, str) and path == source_id:
                path = f"sources[{index}]"
            issues.append(ConfigIssue(file, path, problem or text))
            continue
        if profile.id in seen:
            issues.append(
                ConfigIssue(file, f"sources[{index}].id", f"source {profile.id!r} is defined twice")
            )
        seen.add(profile.id)
        profiles[profile.id] = profile
    return profiles, issues


def _browser_issues(entries: list[Any], config: Config, file: str) -> list[ConfigIssue]:
    """A ``render: browser`` source when no browser can be used: one issue, on the first."""
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("render") == "browser":
            reason = render_unavailable(config.scraping.render_settings())
            if reason is None:
                return []
            return [ConfigIssue(file, f"sources[{index}].render", f"{BROWSER_HINT} ({reason})")]
    return []


_DATE_FIELDS: dict[Kind, str] = {
    "expiry": "expires",
    "balance": "last_balance_check",
    "idle": "last_paid_activity",
}


def _calendar_issues(config: Config, catalogue: Catalogue, file: str) -> list[ConfigIssue]:
    """Dates whose reminders, at some offset, would fall past 9999-12-31 (or before year 1).

    Checked with the same rule that schedules them, so a config that loads can be
    planned. (The first-seen time only matters without a last balance check, and then
    any time will do.)
    """
    issues = []
    for u, user in enumerate(config.users):
        for s, sim in enumerate(user.sims):
            dates = SimDates(
                timezone=config.user_timezone(user),
                remind_at=config.user_remind_at(user),
                first_seen=datetime(2000, 1, 1, tzinfo=UTC),
                expires=sim.expires,
                remind_before=tuple(sim.remind_before),
                remind_after=tuple(sim.remind_after),
                balance_check_every=sim.balance_check_every,
                last_balance_check=sim.last_balance_check,
                idle_limit=sim.idle_limit or catalogue.get(sim.operator).idle_limit,
                last_paid_activity=sim.last_paid_activity,
            )
            for kind, reason in out_of_calendar(dates).items():
                field = _DATE_FIELDS[kind]
                issues.append(
                    ConfigIssue(
                        file,
                        f"users[{u}].sims[{s}].{field}",
                        f"reminders for {getattr(sim, field)} fall outside the calendar "
                        f"({reason}); use an earlier date or shorter offsets",
                    )
                )
    return issues


def _subscription_references(
    users: object, profiles: Mapping[str, Profile]
) -> list[tuple[str, str]]:
    """Unknown source ids, and operators no source watches, in ``users[].promotions``."""
    problems: list[tuple[str, str]] = []
    operators = {p.source.operator for p in profiles.values() if p.source.operator}
    for u, user in enumerate(users if isinstance(users, list) else []):
        prefs = user.get("promotions") if isinstance(user, dict) else None
        if not isinstance(prefs, dict):
            continue
        where = f"users[{u}].promotions"
        ids = prefs.get("sources")
        for i, source_id in enumerate(ids if isinstance(ids, list) else []):
            if isinstance(source_id, str) and source_id not in profiles:
                known = ", ".join(profiles) or "none"
                problems.append(
                    (f"{where}.sources[{i}]", f"unknown source {source_id!r} (known: {known})")
                )
        names = prefs.get("operators")
        for i, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name.strip() and name.strip().lower() not in operators:
                problems.append(
                    (
                        f"{where}.operators[{i}]",
                        f"no promotion source watches operator {name.strip()!r} (sources exist "
                        f"for {', '.join(sorted(operators)) or 'none'}); add one under sources:",
                    )
                )
    return problems


def _raw_urls(channels: object) -> list[str]:
    if not isinstance(channels, dict):
        return []
    values = [
        v for value in channels.values() for v in (value if isinstance(value, list) else [value])
    ]
    return [value for value in values if isinstance(value, str)]


def _cross_references(raw: dict[Any, Any]) -> list[tuple[str, str]]:
    """Unknown channel names and duplicate user names or SIM ids, as (path, problem)."""
    problems: list[tuple[str, str]] = []
    channels = raw.get("channels")
    known = {str(name) for name in channels} if isinstance(channels, dict) else set()

    def check_names(names: object, where: str) -> None:
        if isinstance(names, list):
            for i, name in enumerate(names):
                if isinstance(name, str) and name not in known:
                    problems.append((f"{where}[{i}]", f"unknown channel {name!r}{_known(known)}"))

    check_names(raw.get("admin"), "admin")
    users = raw.get("users")
    if not isinstance(users, list):
        return problems
    seen_users: set[str] = set()
    seen_sims: dict[str, str] = {}
    for u, user in enumerate(users):
        if not isinstance(user, dict):
            continue
        name = user.get("name")
        if isinstance(name, str):
            if name in seen_users:
                problems.append((f"users[{u}].name", f"user {name!r} is defined twice"))
            seen_users.add(name)
        check_names(user.get("notify"), f"users[{u}].notify")
        sims = user.get("sims")
        for s_index, sim in enumerate(sims if isinstance(sims, list) else []):
            sim_id = sim.get("id") if isinstance(sim, dict) else None
            if not isinstance(sim_id, str):
                continue
            where = f"users[{u}].sims[{s_index}]"
            if sim_id in seen_sims:
                problems.append(
                    (f"{where}.id", f"SIM id {sim_id!r} is already used at {seen_sims[sim_id]}")
                )
            else:
                seen_sims[sim_id] = where
    return problems


def _substitute(
    value: Any,
    path: str,
    env: Mapping[str, str],
    file: str,
    issues: list[ConfigIssue],
    redactor: Redactor,
) -> Any:
    if isinstance(value, str):
        used: dict[str, str] = {}

        def fill(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                used[name] = env[name]
                return env[name]
            if default is not None:
                return default
            issues.append(
                ConfigIssue(
                    file, path, f"environment variable {name} is not set (used as ${{{name}}})"
                )
            )
            return ""

        filled = _ENV_REF.sub(fill, value)
        redactor.record(value, filled, used)
        return filled
    if isinstance(value, dict):
        return {
            k: _substitute(v, join_key(path, k), env, file, issues, redactor)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute(v, f"{path}[{i}]", env, file, issues, redactor) for i, v in enumerate(value)
        ]
    return value
