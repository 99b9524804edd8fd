"""Source profiles: the built-in file, validation messages, intervals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from scrapers._errors import ProfileError, ScraperError
from scrapers._profiles import (
    BUILTIN_PROFILES,
    DEFAULT_EVERY,
    MIN_EVERY,
    Profile,
    load_profiles,
    parse_every,
    profile_from_dict,
)

GOOD: dict[str, Any] = {
    "id": "my-promo",
    "operator": "kcell",
    "url": "https://example.kz/ru/promo",
    "items": ".card",
    "fields": {"title": ".card__title", "link": "a@href"},
}


def test_built_in_profiles_load_and_are_all_marked_unverified() -> None:
    profiles = load_profiles()
    assert list(profiles) == ["kcell-promo", "activ-promo", "beeline-promo"]
    for profile_id, profile in profiles.items():
        assert isinstance(profile, Profile)
        assert profile.id == profile_id
        assert profile.source.operator == profile_id.removesuffix("-promo")
        assert profile.source.url.startswith("https://")
        assert profile.every == DEFAULT_EVERY
        assert not profile.verified
        # A URL is enough: no selectors, and auto has not read the live page either.
        assert profile.source.kind == "auto"
        assert {"url", "kind"} <= set(profile.unverified)


def test_built_in_sources_are_on_their_operators_own_website() -> None:
    # The profiles own the promotion URLs; the catalogue owns each operator's website. A
    # built-in source on another host would be a page nobody researched.
    catalogue = yaml.safe_load(
        (Path(__file__).parents[2] / "config" / "operators.yaml").read_text(encoding="utf-8")
    )
    for profile in load_profiles().values():
        website = catalogue["operators"][profile.source.operator]["website"]
        home = urlsplit(website).hostname.removeprefix("www.")
        host = urlsplit(profile.source.url).hostname
        assert host == home or host.endswith(f".{home}"), profile.id


def test_every_built_in_profile_says_in_a_comment_what_is_unverified() -> None:
    lines = BUILTIN_PROFILES.read_text(encoding="utf-8").splitlines()
    for profile_id, profile in load_profiles().items():
        index = lines.index(f"  - id: {profile_id}")
        comment: list[str] = []
        while lines[index - 1].startswith("  #"):
            index -= 1
            comment.insert(0, lines[index])
        said = f"UNVERIFIED: {', '.join(profile.unverified)}"
        assert said in "\n".join(comment), profile_id


def test_a_user_file_replaces_the_built_in_one(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [GOOD | {"every": "30min"}]}), encoding="utf-8")
    profiles = load_profiles(path)
    assert list(profiles) == ["my-promo"]
    assert profiles["my-promo"].every == timedelta(minutes=30)
    assert profiles["my-promo"].unverified == ()
    assert profiles["my-promo"].verified


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6h", timedelta(hours=6)),
        ("5min", timedelta(minutes=5)),
        ("90min", timedelta(minutes=90)),
        (" 1D ", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_every(text: str, expected: timedelta) -> None:
    assert parse_every(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4min", "too often; the minimum is 5min"),
        ("0h", "too often"),
        ("6", "not an interval"),
        ("6 hours", "unknown unit `hours`"),
        ("1y", "unknown unit `y`"),
        ("300s", "unknown unit `s`"),
        ("5m", "`5m` is ambiguous: write `5min` for minutes or `5mo` for months"),
        ("1mo", "calendar months"),
        ("1h30min", "not an interval"),
        ("-1h", "not an interval"),
        ("", "not an interval"),
        (360, "not an interval"),
        (None, "not an interval"),
    ],
)
def test_parse_every_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_every(value)


def test_the_minimum_interval_is_five_minutes() -> None:
    assert parse_every("5min") == MIN_EVERY == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, r"sources\[0\]\.id: required"),
        ({"id": "Kcell Promo"}, r"sources\[0\]\.id: 'Kcell Promo' is not an id"),
        ({"id": 7}, r"sources\[0\]\.id: 7 is not an id"),
        ({"url": None}, "my-promo.url: required"),
        ({"url": "ftp://example.kz/"}, "my-promo.url: 'ftp://example.kz/' is not an http"),
        ({"url": "javascript:alert(1)"}, "my-promo.url: .* is not an http"),
        ({"url": 5}, "my-promo.url: expected text"),
        ({"operator": "Kcell!"}, "my-promo.operator: 'Kcell!' is not an operator id"),
        ({"kind": "rss"}, "my-promo.kind: 'rss' is not a kind; use auto, html, feed or json"),
        ({"kind": "html", "items": None}, "my-promo.items: required"),
        ({"render": "chrome"}, "my-promo.render: 'chrome' is not a way to render"),
        ({"items": None, "fields": {"title": "h3"}}, "my-promo.fields: auto finds the fields"),
        ({"items": "div["}, r"my-promo.items: invalid CSS selector 'div\['"),
        ({"fields": {"titel": ".t"}}, "my-promo.fields: unknown field 'titel'; use title, link"),
        ({"fields": {"title": "h3 >"}}, "my-promo.fields.title: invalid CSS selector 'h3 >'"),
        ({"fields": {"title": ""}}, "my-promo.fields.title: expected a selector"),
        ({"fields": {"title": None}}, "my-promo.fields.title: expected a selector"),
        ({"fields": ".t"}, "my-promo.fields: expected a mapping"),
        ({"every": "1min"}, "my-promo.every: `1min` is too often"),
        ({"every": "daily"}, "my-promo.every: `daily` is not an interval"),
        ({"script": "script#x"}, "my-promo.script: only a json source reads a <script>"),
        ({"unverified": ["selectors"]}, "my-promo.unverified: unknown part"),
        ({"unverified": "url"}, "my-promo.unverified: expected a list"),
        ({"selector": ".card"}, "my-promo: unknown key.s. selector; use id, operator"),
        ({"kind": "feed"}, "my-promo.items: a feed takes none"),
        ({"kind": "feed", "items": None}, "my-promo.fields: a feed takes none"),
        (
            {"kind": "json", "items": "a..b", "fields": {"title": "name"}},
            "my-promo.items: invalid JSON path 'a..b'",
        ),
        (
            {"kind": "json", "fields": {"link": "url"}, "items": None},
            "my-promo.fields: a json source needs a title path",
        ),
        (
            {"kind": "json", "script": "script[", "fields": {"title": "name"}},
            "my-promo.script: invalid CSS selector",
        ),
        (
            {"kind": "json", "items": None, "fields": {"title": "a.", "link": "u"}},
            "my-promo.fields.title: invalid JSON path",
        ),
    ],
)
def test_invalid_entries_name_the_file_the_profile_and_the_field(
    change: dict[str, Any], message: str
) -> None:
    entry = {key: value for key, value in (GOOD | change).items() if value is not None}
    if "id" in change and change["id"] is None:
        entry.pop("id", None)
    with pytest.raises(ProfileError, match=f"^sources.yaml: {message}"):
        profile_from_dict(entry, "sources.yaml")


def test_a_profile_error_is_a_scraper_error_not_a_value_error() -> None:
    assert issubclass(ProfileError, ScraperError)
    assert not issubclass(ProfileError, ValueError)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"id": "f", "url": "https://example.kz/rss", "kind": "feed"}, "feed"),
        (
            {
                "id": "j",
                "url": "https://example.kz/",
                "kind": "json",
                "script": 'script[type="application/ld+json"]',
                "items": "itemListElement",
                "fields": {"title": "item.name", "date": "."},
            },
            "json",
        ),
        (
            {
                "id": "api",
                "url": "https://example.kz/api",
                "kind": "json",
                "fields": {"title": "t"},
            },
            "json",
        ),
        ({"id": "h", "url": "http://example.kz/", "items": "li"}, "html"),  # title: item text
    ],
)
def test_valid_entries_of_every_kind(entry: dict[str, Any], kind: str) -> None:
    profile = profile_from_dict(entry)
    assert profile.source.kind == kind
    assert profile.every == DEFAULT_EVERY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a `sources:` list"),
        ("sources: {id: x}\n", "sources: expected a list"),
        ("profiles: []\n", "unknown key.s. profiles"),
        ("sources:\n  - just a string\n", r"sources\[0\]: expected a mapping"),
        (
            "sources:\n"
            "  - {id: a, url: 'https://e.kz/', items: li}\n"
            "  - {id: a, url: 'https://e.kz/b', items: li}\n",
            r"sources\[1\]\.id: duplicate id 'a'",
        ),
        (
            "sources:\n  - {id: a, url: 'https://e.kz/', items: li, fields: {title: @x}}\n",
            "not valid YAML",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=message) as caught:
        load_profiles(path)
    assert str(caught.value).startswith(str(path))


def test_an_empty_file_has_no_profiles(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert load_profiles(path) == {}


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profiles(tmp_path / "nope.yaml")
