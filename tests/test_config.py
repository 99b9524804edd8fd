"""The config file: what loads, and the one-line error for each kind of mistake."""

from __future__ import annotations

import string
from datetime import date, time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config import load_config, parse_config
from watcher.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
timezone: Asia/Almaty
sources:
  - id: my-shop
    operator: kcell
    url: "https://shop.example.com/offers"
    items: ".card"
    fields: {title: "h2", link: "a@href"}
    every: 30min
remind_at: "10:00"
channels:
  console: "console://"
  hook: ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]
users:
  - name: alice
    language: ru
    notify: [console, hook]
    quiet_hours: "22:00-08:00"
    sims:
      - id: alice-kcell
        operator: Kcell
        number: "+7 701 123 45 67"
        expires: 2026-12-01
        renew_every: 1mo
    promotions:
      operators: [kcell]
      sources: [my-shop]
      include: ["eSIM", "роуминг"]
      exclude: ["корпоратив"]
      on: [new, changed]
      digest: daily
  - name: bob
    notify: [console]
    sims:
      - id: bob-tele2
        operator: tele2
        number: "+77071234567"
"""


def issues(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", env or {})
    return [str(issue) for issue in caught.value.issues]


def test_example_config_is_valid() -> None:
    loaded = load_config(ROOT / "config" / "example.yaml", {})
    assert loaded.config.users
    assert loaded.config.channels["console"] == ["console://"]


@pytest.mark.parametrize("path", ["config/example.yaml", "watcher/starter.yaml"])
def test_the_commented_promotions_section_is_valid_once_uncommented(path: str) -> None:
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    opened = [
        line.replace("# ", "", 1) if line.startswith(("    # promotions:", "    #   ")) else line
        for line in lines
    ]
    assert opened != lines
    config = parse_config("\n".join(opened), path, {}).config
    alice = config.users[0]
    assert alice.promotions is not None
    assert config.promotion_sources(alice) == ["kcell-promo"]


def test_starter_config_is_valid() -> None:
    assert load_config(ROOT / "watcher" / "starter.yaml", {}).config.users


def test_a_good_config_is_read_with_defaults() -> None:
    config = parse_config(GOOD, "cfg.yaml", {}).config
    alice, bob = config.users
    sim = alice.sims[0]
    assert sim.operator == "kcell"
    assert sim.number == "+77011234567"
    assert sim.expires == date(2026, 12, 1)
    assert [str(x) for x in sim.remind_before] == ["7d", "3d", "1d", "0d"]
    assert [str(x) for x in sim.remind_after] == ["1d", "3d", "7d"]
    assert str(alice.quiet_hours) == "22:00-08:00"
    assert config.user_timezone(bob).key == "Asia/Almaty"
    assert bob.language == "en"
    assert config.channels["hook"] == ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]


def test_unquoted_time_of_day_is_understood() -> None:
    # YAML 1.1 reads 10:30 as the base-60 number 630.
    config = parse_config(GOOD.replace('remind_at: "10:00"', "remind_at: 10:30"), "c", {}).config
    assert config.remind_at == time(10, 30)


def test_environment_variables_are_substituted() -> None:
    text = GOOD.replace('"console://"', '"${CHANNEL_URL}"')
    config = parse_config(text, "cfg.yaml", {"CHANNEL_URL": "json://127.0.0.1:9/x"}).config
    assert config.channels["console"] == ["json://127.0.0.1:9/x"]


def test_environment_default_is_used_when_unset() -> None:
    text = GOOD.replace('"console://"', '"${CHANNEL_URL:-console://}"')
    assert parse_config(text, "cfg.yaml", {}).config.channels["console"] == ["console://"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "expires: 2026-12-01",
            "expires: 2026-13-01",
            "cfg.yaml: users[0].sims[0].expires: expected a date as YYYY-MM-DD, got '2026-13-01'",
        ),
        (
            "expires: 2026-12-01",
            "expires: 20261201",
            "cfg.yaml: users[0].sims[0].expires: expected a date as YYYY-MM-DD, got 20261201",
        ),
        (
            "renew_every: 1mo",
            "renew_every: 1y",
            "cfg.yaml: users[0].sims[0].renew_every: `1y` has an unknown unit `y`",
        ),
        (
            "renew_every: 1mo",
            "renew_every: 0d",
            "cfg.yaml: users[0].sims[0].renew_every: must be longer than 0 days",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almatyy",
            "cfg.yaml: timezone: unknown time zone 'Asia/Almatyy'",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: '+05:00'",
            "cfg.yaml: timezone: expected an IANA time zone name",
        ),
        (
            "notify: [console, hook]",
            "notify: [console, mail]",
            "cfg.yaml: users[0].notify[1]: unknown channel 'mail' (defined: console, hook)",
        ),
        (
            "id: bob-tele2",
            "id: alice-kcell",
            "cfg.yaml: users[1].sims[0].id: SIM id 'alice-kcell' is already used at "
            "users[0].sims[0]",
        ),
        (
            "    language: ru",
            "    language: de",
            "cfg.yaml: users[0].language: unsupported language 'de'",
        ),
        (
            'quiet_hours: "22:00-08:00"',
            'quiet_hours: "22:00"',
            'cfg.yaml: users[0].quiet_hours: expected quiet hours as "HH:MM-HH:MM"',
        ),
        (
            'remind_at: "10:00"',
            'remind_at: "25:00"',
            "cfg.yaml: remind_at: expected a time of day as HH:MM",
        ),
        (
            "expires: 2026-12-01",
            "expirs: 2026-12-01",
            "cfg.yaml: users[0].sims[0].expirs: unknown setting; did you mean `expires`?",
        ),
        (
            'number: "+77071234567"',
            'number: "call me"',
            "cfg.yaml: users[1].sims[0].number: expected a phone number",
        ),
        ("operator: tele2", "operator: ''", "cfg.yaml: users[1].sims[0].operator: operator cannot"),
        (
            'hook: ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]',
            'hook: "nosuch://x"',
            "cfg.yaml: channels: channel 'hook': nosuch://*** is not a notification URL",
        ),
        (
            'console: "console://"',
            'console: "${MISSING_VAR}"',
            "cfg.yaml: channels.console: environment variable MISSING_VAR is not set",
        ),
        (
            "    sims:\n      - id: bob-tele2",
            "    sim:\n      - id: bob-tele2",
            "cfg.yaml: users[1].sim: unknown setting; did you mean `sims`?",
        ),
        (
            'url: "https://shop.example.com/offers"',
            'url: "javascript:alert(1)"',
            "cfg.yaml: sources[0].url: 'javascript:alert(1)' is not an http(s) URL",
        ),
        ("every: 30min", "every: 1min", "cfg.yaml: sources[0].every: `1min` is too often"),
        (
            "renew_every: 1mo",
            "renew_every: 3m",
            "cfg.yaml: users[0].sims[0].renew_every: `3m` is ambiguous: write `3min` for minutes "
            "or `3mo` for months",
        ),
        (
            "every: 30min",
            "every: 30m",
            "cfg.yaml: sources[0].every: `30m` is ambiguous: write `30min` for minutes "
            "or `30mo` for months",
        ),
        (
            "renew_every: 1mo",
            "renew_every: 12h",
            "cfg.yaml: users[0].sims[0].renew_every: `12h` is not whole days",
        ),
        (
            'fields: {title: "h2", link: "a@href"}',
            'fields: {titel: "h2"}',
            "cfg.yaml: sources[0].fields: unknown field 'titel'",
        ),
        (
            "sources: [my-shop]",
            "sources: [my-shopp]",
            "cfg.yaml: users[0].promotions.sources[0]: unknown source 'my-shopp' (known: ",
        ),
        (
            "operators: [kcell]",
            "operators: [kcell, tele2]",
            "cfg.yaml: users[0].promotions.operators[1]: no promotion source watches operator "
            "'tele2' (sources exist for activ, beeline, kcell); add one under sources:",
        ),
        (
            "digest: daily",
            "digest: hourly",
            "cfg.yaml: users[0].promotions.digest: "
            "Input should be 'immediate', 'daily' or 'weekly'",
        ),
        (
            "on: [new, changed]",
            "on: [new, removed]",
            "cfg.yaml: users[0].promotions.on[1]: Input should be 'new', 'changed' or 'ended'",
        ),
        (
            "on: [new, changed]",
            "on: []",
            "cfg.yaml: users[0].promotions.on: list at least one of new, changed, ended",
        ),
        (
            'exclude: ["корпоратив"]',
            'exclude: ["  "]',
            "cfg.yaml: users[0].promotions.exclude: a keyword cannot be empty",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\nscraping: {proxy: 'ftp://user:pw@proxy.example.com'}",
            "cfg.yaml: scraping: proxy must be an http://, https:// or socks5:// URL with a host",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\nscraping: {proxy: 'socks5://127.0.0.1:1080'}",
            "cfg.yaml: scraping: a socks5 proxy needs the socksio package",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\nscraping: {respect_robots: maybe}",
            "cfg.yaml: scraping.respect_robots: Input should be a valid boolean",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\ndelivery: {workers: 0}",
            "cfg.yaml: delivery.workers: Input should be greater than or equal to 1",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\ndelivery: {limits: {'https://smtp.example.org': "
            "{connections: 2}}}",
            "cfg.yaml: delivery.limits: 'https://smtp.example.org' is not a host name: "
            "write the host as in the URL",
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\ndelivery: {limits: {smtp.example.org: {}}}",
            'cfg.yaml: delivery.limits["smtp.example.org"]: set connections, per_second or both',
        ),
        (
            "timezone: Asia/Almaty",
            "timezone: Asia/Almaty\ndelivery: {limits: {smtp.example.org: {per_second: 0}}}",
            'cfg.yaml: delivery.limits["smtp.example.org"].per_second: Input should be '
            "greater than 0",
        ),
        (
            "digest: daily",
            "digest: daily\n      every: 1h",
            "cfg.yaml: users[0].promotions.every: unknown setting (check the spelling)",
        ),
    ],
)
def test_each_mistake_gets_one_line_with_file_path_and_problem(
    old: str, new: str, expected: str | None
) -> None:
    assert old in GOOD
    found = issues(GOOD.replace(old, new, 1))
    assert any(line.startswith(expected) for line in found), found
    assert all("\n" not in line for line in found)


def test_every_issue_is_reported_not_just_the_first() -> None:
    text = GOOD.replace("expires: 2026-12-01", "expires: soon").replace(
        "timezone: Asia/Almaty", "timezone: Mars/Base"
    )
    found = issues(text)
    assert len(found) == 2
    assert any("users[0].sims[0].expires" in line for line in found)
    assert any(line.startswith("cfg.yaml: timezone") for line in found)


def test_secrets_never_appear_in_errors() -> None:
    text = GOOD.replace('"console://"', '"mailtos://me:hunter2secret@smtp.example.com?to=x@y.z"')
    text = text.replace("    language: ru", "    language: xx")
    found = issues(text)
    assert found and not any("hunter2secret" in line for line in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("users: [", "cfg.yaml: line 2, column 1: invalid YAML"),
        ("- a\n- b", "cfg.yaml: expected a mapping of settings at the top"),
        ("users: 5", "cfg.yaml: users: Input should be a valid list"),
        ("\t: bad", "cfg.yaml: line 1"),
    ],
)
def test_broken_yaml_is_a_clean_error(text: str, expected: str) -> None:
    found = issues(text)
    assert found[0].startswith(expected), found


def test_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", {})


def test_empty_file_is_a_valid_config_with_nothing_to_do() -> None:
    assert parse_config("", "cfg.yaml", {}).config.users == []


# --- fuzzing: any input is a clean error or a valid config, never a traceback -------

_base = yaml.safe_load(GOOD)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["7d", "1mo", "1m", "5min", "2026-02-30", "${X}", "25:61", "+7", ""]),
    st.dates(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


_all_paths = [p for p in _paths(_base) if p]


def _mutate(path: tuple[object, ...], value: object) -> object:
    import copy

    doc = copy.deepcopy(_base)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _load_cleanly(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml", {"X": "1"})
    except ConfigError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert str(issue).startswith("fuzz.yaml")
            assert "\n" not in str(issue)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_all_paths), _values)
def test_fuzz_mutated_fields_give_a_clean_error_or_a_valid_config(
    path: tuple[object, ...], value: object
) -> None:
    _load_cleanly(yaml.safe_dump(_mutate(path, value), allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "ёж€\x00", max_size=200))
def test_fuzz_arbitrary_text_gives_a_clean_error_or_a_valid_config(text: str) -> None:
    _load_cleanly(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_give_a_clean_error_or_a_valid_config(data: bytes) -> None:
    try:
        parse_config(data, "fuzz.yaml", {})
    except ConfigError as exc:
        assert all("\n" not in str(issue) for issue in exc.issues)


def test_scraping_settings_reach_the_fetcher() -> None:
    text = GOOD.replace(
        "timezone: Asia/Almaty",
        "timezone: Asia/Almaty\n"
        "scraping: {proxy: 'http://127.0.0.1:3128', user_agent: 'MyWatcher/1', "
        "respect_robots: false}",
    )
    settings = parse_config(text, "cfg.yaml", {}).config.scraping.fetch_settings()
    assert settings.proxy == "http://127.0.0.1:3128"
    assert settings.user_agent == "MyWatcher/1"
    assert settings.respect_robots is False
    default = parse_config(GOOD, "cfg.yaml", {}).config.scraping.fetch_settings()
    assert default.respect_robots is True
    assert default.user_agent.startswith("SIMWatcher/")


def test_promotion_subscriptions_resolve_to_sources() -> None:
    config = parse_config(GOOD, "cfg.yaml", {}).config
    alice, bob = config.users
    assert alice.promotions is not None
    assert alice.promotions.on == ["new", "changed"]  # YAML 1.1 reads `on:` as true
    assert config.promotion_sources(alice) == ["kcell-promo", "my-shop"]
    assert config.promotion_sources(bob) == []  # no promotions section: not opted in
    assert list(config.watched_sources()) == ["kcell-promo", "my-shop"]
    # With neither operators nor sources, the operators of the user's SIMs are meant.
    text = GOOD.replace("      operators: [kcell]\n      sources: [my-shop]\n", "")
    config = parse_config(text, "cfg.yaml", {}).config
    assert config.promotion_sources(config.users[0]) == ["kcell-promo", "my-shop"]
    # Only sources: the SIMs' operators are not added.
    text = GOOD.replace("      operators: [kcell]\n", "").replace("[my-shop]", "[activ-promo]")
    config = parse_config(text, "cfg.yaml", {}).config
    assert config.promotion_sources(config.users[0]) == ["activ-promo"]


def test_a_config_source_is_added_to_the_built_in_ones_and_can_replace_one() -> None:
    profiles = parse_config(GOOD, "cfg.yaml", {}).config.source_profiles()
    assert profiles["my-shop"].source.url == "https://shop.example.com/offers"
    assert str(profiles["my-shop"].every) == "0:30:00"
    assert "kcell-promo" in profiles  # built in
    replaced = GOOD.replace("id: my-shop", "id: kcell-promo").replace("[my-shop]", "[kcell-promo]")
    kcell = parse_config(replaced, "cfg.yaml", {}).config.source_profiles()["kcell-promo"]
    assert kcell.source.items == ".card"


BROWSER_SOURCE = GOOD.replace("    every: 30min\n", "    every: 30min\n    render: browser\n")


def test_a_browser_source_without_a_browser_is_one_line_naming_the_source_and_the_fix(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-chromium"
    text = BROWSER_SOURCE.replace(
        "timezone: Asia/Almaty", f"timezone: Asia/Almaty\nscraping: {{browser_path: '{missing}'}}"
    )

    found = issues(text)

    assert len(found) == 1
    assert found[0].startswith("cfg.yaml: sources[0].render: render: browser needs Playwright")
    assert "pip install 'sim-watcher[browser]'" in found[0]
    assert "apt-get install chromium" in found[0]
    assert "scraping.browser_url" in found[0]
    assert "\n" not in found[0]


def test_a_browser_url_stands_in_for_a_local_chromium(tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="needs Playwright: pip install 'sim-watcher[browser]'")
    text = BROWSER_SOURCE.replace(
        "timezone: Asia/Almaty",
        "timezone: Asia/Almaty\n"
        f"scraping: {{browser_path: '{tmp_path / 'none'}', browser_url: 'ws://browser:3000'}}",
    )

    config = parse_config(text, "cfg.yaml", {}).config

    assert config.source_profiles()["my-shop"].source.render == "browser"
    assert config.scraping.render_settings().browser_url == "ws://browser:3000"


def test_without_a_browser_source_no_browser_is_needed(tmp_path: Path) -> None:
    text = GOOD.replace(
        "timezone: Asia/Almaty",
        f"timezone: Asia/Almaty\nscraping: {{browser_path: '{tmp_path / 'none'}'}}",
    )

    assert parse_config(text, "cfg.yaml", {}).config.scraping.browser_path


def test_a_browser_url_must_be_a_web_socket() -> None:
    text = GOOD.replace(
        "timezone: Asia/Almaty",
        "timezone: Asia/Almaty\nscraping: {browser_url: 'http://user:s3cret@browser:3000'}",
    )

    found = issues(text)

    assert any("browser_url must be a ws:// or wss:// URL" in issue for issue in found)
    assert not any("s3cret" in issue for issue in found)


def test_render_bounds_reach_the_renderer() -> None:
    text = GOOD.replace(
        "timezone: Asia/Almaty",
        "timezone: Asia/Almaty\nscraping: {render_timeout: 12.5, render_max_bytes: 65536}",
    )

    settings = parse_config(text, "cfg.yaml", {}).config.scraping.render_settings()

    assert (settings.timeout, settings.max_bytes) == (12.5, 65536)


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("render_timeout: 0", "scraping.render_timeout"),
        ("render_timeout: 601", "scraping.render_timeout"),
        ("render_timeout: .nan", "scraping.render_timeout"),
        ("render_max_bytes: 10", "scraping.render_max_bytes"),
        ("render_max_bytes: 1e12", "scraping.render_max_bytes"),
    ],
)
def test_render_bounds_out_of_range_are_one_line_errors(setting: str, field: str) -> None:
    text = GOOD.replace("timezone: Asia/Almaty", f"timezone: Asia/Almaty\nscraping: {{{setting}}}")

    found = issues(text)

    assert len(found) == 1 and field in found[0] and "\n" not in found[0]
