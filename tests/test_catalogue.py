"""The operator catalogue: built-in data, user overrides, and the verified-code rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.catalogue import (
    LANGUAGES,
    Catalogue,
    LocalizedText,
    OperatorEntry,
    builtin_entries,
    builtin_path,
    load_catalogue,
    parse_overrides,
    resolve_language,
)
from watcher.durations import Duration
from watcher.errors import ConfigError

BUILTIN_IDS = ["activ", "altel", "beeline", "kcell", "tele2"]
REPO = Path(__file__).resolve().parent.parent
USSD_LIKE = re.compile(r"[*#]\d[\d*#]*#")
KAZAKH_ONLY_LETTERS = set("әғқңөұүһі")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def raw_builtin() -> dict[str, Any]:
    """The built-in file as plain YAML, to check what its authors wrote explicitly."""
    data = yaml.safe_load(builtin_path().read_text(encoding="utf-8"))
    operators: dict[str, Any] = data["operators"]
    return operators


def catalogue_file(tmp_path: Path, operators: dict[str, Any]) -> Path:
    """A catalogue file holding ``operators``, for tests of the built-in file's checks."""
    path = tmp_path / "operators.yaml"
    path.write_text(yaml.safe_dump({"operators": operators}, allow_unicode=True), "utf-8")
    return path


def complete_entry(**fields: Any) -> dict[str, Any]:
    """A minimal operator entry the built-in checks accept, with ``fields`` on top."""
    texts = {language: f"Top up ({language})." for language in LANGUAGES}
    entry: dict[str, Any] = {"name": "Example", "renew": texts, "balance": texts}
    entry.update(fields)
    return entry


# --- the built-in data ------------------------------------------------------------------


def test_builtin_catalogue_knows_the_five_kazakh_operators_sorted(catalogue: Catalogue) -> None:
    assert catalogue.known_ids() == BUILTIN_IDS


def test_builtin_file_is_found_in_the_checkout() -> None:
    assert builtin_path() == REPO / "config" / "operators.yaml"


def test_builtin_file_is_parsed_once_per_process() -> None:
    first = builtin_entries()
    hits = builtin_entries.cache_info().hits
    load_catalogue()
    load_catalogue()
    assert builtin_entries() is first
    assert builtin_entries.cache_info().hits >= hits + 2


@pytest.mark.parametrize("operator_id", BUILTIN_IDS)
@pytest.mark.parametrize("kind", ["renew", "balance"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_builtin_operator_has_its_own_instructions_in_every_language(
    catalogue: Catalogue, operator_id: str, kind: str, language: str
) -> None:
    operator = catalogue.get(operator_id)
    generic = catalogue.get("no-such-operator")
    text = getattr(operator, f"{kind}_instructions")(language)
    english = getattr(operator, f"{kind}_instructions")("en")

    assert text
    assert "\n" not in text
    assert text != getattr(generic, f"{kind}_instructions")(language)
    assert "{" not in text  # every placeholder was filled
    if language != "en":
        assert text != english  # a real translation, not the English fallback
    if language in ("ru", "kk"):
        assert re.search("[а-яё]", text, re.IGNORECASE)
    if language == "kk":
        assert KAZAKH_ONLY_LETTERS & set(text.lower())
    if language == "zh":
        assert re.search("[\u4e00-\u9fff]", text)


@pytest.mark.parametrize(
    ("operator_id", "name", "website", "prefixes"),
    [
        ("kcell", "Kcell", "https://www.kcell.kz", ["701", "702", "775", "778"]),
        ("activ", "activ", "https://www.activ.kz", ["701", "702", "775", "778"]),
        ("beeline", "Beeline", "https://beeline.kz", ["705", "706", "771", "776", "777"]),
        ("tele2", "Tele2", "https://tele2.kz", ["700", "707", "708", "747"]),
        ("altel", "Altel", "https://altel.kz", ["700", "707", "708", "747"]),
    ],
)
def test_builtin_operator_has_the_researched_name_site_and_prefixes(
    catalogue: Catalogue, operator_id: str, name: str, website: str, prefixes: list[str]
) -> None:
    operator = catalogue.get(operator_id)
    assert (operator.name, operator.website, operator.prefixes) == (name, website, prefixes)


@pytest.mark.parametrize("operator_id", BUILTIN_IDS)
def test_no_builtin_operator_claims_an_idle_limit(
    catalogue: Catalogue, raw_builtin: dict[str, Any], operator_id: str
) -> None:
    assert catalogue.get(operator_id).idle_limit is None
    assert "idle_limit" not in raw_builtin[operator_id]


@pytest.mark.parametrize("operator_id", BUILTIN_IDS)
def test_every_builtin_ussd_code_says_verified_explicitly_and_has_a_note(
    raw_builtin: dict[str, Any], operator_id: str
) -> None:
    for name, code in raw_builtin[operator_id]["ussd"].items():
        assert isinstance(code["verified"], bool), name
        assert code["note"].strip(), name


@pytest.mark.parametrize(
    ("operator_id", "verified", "unverified"),
    [
        ("kcell", {"*100#", "*245#", "*911*2*2#"}, set()),
        ("activ", {"*111*3#", "*110#", "*167#"}, set()),
        ("beeline", {"*106#"}, {"*102#"}),
        ("tele2", set(), set()),
        ("altel", {"*111#"}, set()),
    ],
)
def test_builtin_codes_are_exactly_the_researched_ones(
    catalogue: Catalogue, operator_id: str, verified: set[str], unverified: set[str]
) -> None:
    codes = catalogue.get(operator_id).ussd.values()
    assert {code.code for code in codes if code.verified} == verified
    assert {code.code for code in codes if not code.verified} == unverified


def test_kcell_has_no_main_balance_code_because_none_was_verified(catalogue: Catalogue) -> None:
    assert all(code.purpose != "balance" for code in catalogue.get("kcell").ussd.values())


def test_tele2_russia_balance_code_is_not_in_the_data(raw_builtin: dict[str, Any]) -> None:
    assert "*105#" not in yaml.safe_dump(raw_builtin, allow_unicode=True)


@pytest.mark.parametrize("operator_id", BUILTIN_IDS)
@pytest.mark.parametrize("language", [*LANGUAGES, "fr"])
def test_instructions_quote_only_verified_codes(
    catalogue: Catalogue, operator_id: str, language: str
) -> None:
    operator = catalogue.get(operator_id)
    allowed = set(operator.verified_codes().values())
    for text in (operator.renew_instructions(language), operator.balance_instructions(language)):
        assert set(USSD_LIKE.findall(text)) <= allowed


def test_the_catalogue_holds_no_promotion_pages_the_source_profiles_own_them(
    raw_builtin: dict[str, Any],
) -> None:
    assert all("promotions" not in entry for entry in raw_builtin.values())
    with pytest.raises(ConfigError, match=r"operators\.kcell\.promotions: unknown setting"):
        parse_overrides({"kcell": {"promotions": []}}, source="watcher.yaml")


def test_localized_text_has_a_field_per_supported_language() -> None:
    assert tuple(LocalizedText.model_fields) == LANGUAGES


# --- lookup and languages ---------------------------------------------------------------


@pytest.mark.parametrize("written", ["Vodafone", "my-operator", "Izi Mobile"])
def test_unknown_operator_is_named_as_written_with_generic_advice(
    catalogue: Catalogue, written: str
) -> None:
    operator = catalogue.get(written)
    assert (operator.name, operator.known) == (written, False)
    assert operator.renew_instructions("en") == (
        "Top up through your operator's app, website or an office."
    )
    for language in LANGUAGES:
        assert operator.renew_instructions(language)
        assert operator.balance_instructions(language)
        assert not USSD_LIKE.search(operator.renew_instructions(language))
    assert len({operator.renew_instructions(language) for language in LANGUAGES}) == 4


@pytest.mark.parametrize("written", ["kcell", "Kcell", " KCELL "])
def test_lookup_ignores_case_and_surrounding_spaces(catalogue: Catalogue, written: str) -> None:
    assert catalogue.get(written).id == "kcell"
    assert written in catalogue


@pytest.mark.parametrize(
    ("setting", "language"),
    [("en", "en"), ("ru", "ru"), ("ru-RU", "ru"), ("kk_KZ", "kk"), ("ZH", "zh"),
     ("zh-CN", "zh"), ("fr", "en"), ("", "en")],
)  # fmt: skip
def test_language_setting_resolves_to_a_supported_language(setting: str, language: str) -> None:
    assert resolve_language(setting) == language


@pytest.mark.parametrize("language", ["fr", "de-DE", ""])
def test_unsupported_language_gets_the_english_instructions(
    catalogue: Catalogue, language: str
) -> None:
    kcell = catalogue.get("kcell")
    assert kcell.renew_instructions(language) == kcell.renew_instructions("en")
    assert kcell.balance_instructions(language) == kcell.balance_instructions("en")


# --- user overrides ---------------------------------------------------------------------


def test_override_of_one_text_keeps_every_other_field(catalogue: Catalogue) -> None:
    overrides = parse_overrides({"kcell": {"renew": {"ru": "Пополняю через Kaspi.kz."}}})
    merged = load_catalogue(overrides).get("kcell")
    builtin = catalogue.get("kcell")

    assert merged.renew_instructions("ru") == "Пополняю через Kaspi.kz."
    for language in ("en", "zh", "kk"):
        assert merged.renew_instructions(language) == builtin.renew_instructions(language)
    assert merged.balance_texts == builtin.balance_texts
    assert (merged.name, merged.prefixes, merged.ussd) == (
        builtin.name,
        builtin.prefixes,
        builtin.ussd,
    )


def test_override_of_one_code_field_keeps_the_rest_of_that_code(catalogue: Catalogue) -> None:
    overrides = parse_overrides({"kcell": {"ussd": {"packages": {"note": "Checked 2026."}}}})
    code = load_catalogue(overrides).get("kcell").ussd["packages"]
    assert (code.code, code.verified, code.note) == ("*100#", True, "Checked 2026.")
    assert set(load_catalogue(overrides).get("kcell").ussd) == set(catalogue.get("kcell").ussd)


def test_override_can_vouch_for_a_code_and_quote_it() -> None:
    overrides = parse_overrides(
        {
            "beeline": {
                "ussd": {"balance": {"verified": True, "note": "Confirmed on beeline.kz."}},
                "balance": {"en": "Dial {balance}."},
            }
        }
    )
    assert load_catalogue(overrides).get("beeline").balance_instructions("en") == "Dial *102#."


@pytest.mark.parametrize(
    ("written", "expected"),
    [("90d", Duration(90, "d")), ("2w", Duration(2, "w")), ("3mo", Duration(3, "mo"))],
)
def test_override_sets_an_idle_limit_written_as_text(written: str, expected: Duration) -> None:
    overrides = parse_overrides({"altel": {"idle_limit": written}})
    assert load_catalogue(overrides).get("altel").idle_limit == expected


def test_duration_fields_accept_text_in_the_model_itself() -> None:
    assert OperatorEntry.model_validate({"idle_limit": "30d"}).idle_limit == Duration(30, "d")


def test_override_lists_replace_the_builtin_list() -> None:
    overrides = parse_overrides({"tele2": {"prefixes": [707, "747"]}})
    assert load_catalogue(overrides).get("tele2").prefixes == ["707", "747"]


def test_null_in_an_override_clears_the_builtin_value() -> None:
    overrides = parse_overrides({"kcell": {"website": None}})
    assert load_catalogue(overrides).get("kcell").website is None


def test_user_can_add_an_operator_the_catalogue_does_not_ship() -> None:
    overrides = parse_overrides(
        {
            "izi": {
                "name": "izi",
                "prefixes": ["707"],
                "ussd": {"balance": {"code": "*111#", "verified": True, "note": "mine"}},
                "renew": {"en": "Top up in the izi app.", "ru": "Пополните в приложении izi."},
                "balance": {"en": "Dial {balance}."},
            }
        }
    )
    catalogue = load_catalogue(overrides)
    izi = catalogue.get("izi")

    assert catalogue.known_ids() == sorted([*BUILTIN_IDS, "izi"])
    assert (izi.name, izi.known, izi.prefixes) == ("izi", True, ["707"])
    assert izi.renew_instructions("ru") == "Пополните в приложении izi."
    assert izi.renew_instructions("zh") == "Top up in the izi app."  # falls back to English
    assert izi.balance_instructions("kk") == "Dial *111#."


def test_new_operator_without_texts_gets_generic_advice_and_its_id_as_name() -> None:
    catalogue = load_catalogue(parse_overrides({"izi": {}}))
    izi = catalogue.get("izi")
    generic = catalogue.get("unknown")
    assert izi.name == "izi"
    for language in LANGUAGES:
        assert izi.renew_instructions(language) == generic.renew_instructions(language)


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"kcell": {"idle_limit": "90 days"}}, "operators.kcell.idle_limit", "unknown unit `days`"),
        ({"kcell": {"renew": {"rus": "x"}}}, "operators.kcell.renew.rus", "unknown setting"),
        ({"kcell": {"colour": "blue"}}, "operators.kcell.colour", "unknown setting"),
        ({"kcell": {"website": "kcell.kz"}}, "operators.kcell.website", "https://"),
        ({"kcell": {"prefixes": ["70a"]}}, "operators.kcell.prefixes[0]", "digits"),
        ({"kcell": {"ussd": {"x": {"code": "100"}}}}, "operators.kcell.ussd.x.code", "*100#"),
        (
            {"kcell": {"channels": [{"kind": "shop", "name": "x"}]}},
            "operators.kcell.channels[0].kind",
            "'app', 'bank'",
        ),
        ({"Kcell": {}}, "operators.Kcell", "lowercase"),
    ],
)
def test_malformed_override_is_a_config_error_naming_file_and_path(
    raw: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides(raw, source="watcher.yaml")
    [issue] = caught.value.issues
    assert (issue.file, issue.path) == ("watcher.yaml", path)
    assert message in issue.message


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (
            {"beeline": {"balance": {"en": "Dial {balance} for the balance."}}},
            "operators.beeline.balance.en",
            "verified: false",
        ),
        (
            {"tele2": {"balance": {"ru": "Наберите *105#."}}},
            "operators.tele2.balance.ru",
            "*105# is written into the text",
        ),
        (
            {"kcell": {"renew": {"en": "Dial {main_balance}."}}},
            "operators.kcell.renew.en",
            "names no code",
        ),
        (
            {"izi": {"ussd": {"balance": {"verified": True}}}},
            "operators.izi.ussd.balance.code",
            "missing",
        ),
    ],
)
def test_override_that_would_quote_an_unverified_code_is_a_config_error(
    raw: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalogue(parse_overrides(raw), source="watcher.yaml")
    issue = caught.value.issues[0]
    assert (issue.file, issue.path) == ("watcher.yaml", path)
    assert message in issue.message


def test_unverifying_a_code_that_builtin_texts_quote_names_every_affected_text() -> None:
    overrides = parse_overrides({"kcell": {"ussd": {"packages": {"verified": False}}}})
    with pytest.raises(ConfigError) as caught:
        load_catalogue(overrides, source="watcher.yaml")
    paths = [issue.path for issue in caught.value.issues]
    assert paths == [f"operators.kcell.balance.{language}" for language in LANGUAGES]


def test_bad_override_passed_as_a_model_is_also_caught_at_load() -> None:
    entry = OperatorEntry.model_validate({"renew": {"en": "Dial *102#."}})
    with pytest.raises(ConfigError, match=r"operators\.beeline\.renew\.en"):
        load_catalogue({"beeline": entry})


# --- a broken built-in file -------------------------------------------------------------


@pytest.mark.parametrize(
    ("operators", "path", "message"),
    [
        ({"x": complete_entry(colour="blue")}, "operators.x.colour", "unknown setting"),
        (
            {"x": complete_entry(renew={"en": "Top up.", "ru": "Пополните.", "zh": "充值。"})},
            "operators.x.renew.kk",
            "missing",
        ),
        ({"x": complete_entry(name=None)}, "operators.x.name", "missing"),
        (
            {"x": complete_entry(ussd={"b": {"code": "*1#", "note": "n"}})},
            "operators.x.ussd.b.verified",
            "explicitly",
        ),
        (
            {"x": complete_entry(ussd={"b": {"code": "*1#", "verified": False}})},
            "operators.x.ussd.b.note",
            "missing",
        ),
        (
            {
                "x": complete_entry(
                    ussd={"b": {"code": "*1#", "verified": False, "note": "n"}},
                    balance=dict.fromkeys(LANGUAGES, "Dial {b}."),
                )
            },
            "operators.x.balance.en",
            "verified: false",
        ),
    ],
)
def test_broken_builtin_file_is_a_config_error_naming_the_path(
    tmp_path: Path, operators: dict[str, Any], path: str, message: str
) -> None:
    broken = catalogue_file(tmp_path, operators)
    with pytest.raises(ConfigError) as caught:
        load_catalogue(builtin_file=broken)
    issue = caught.value.issues[0]
    assert (issue.file, issue.path) == (str(broken), path)
    assert message in issue.message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("operators: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("{}\n", "operators: required setting is missing"),
    ],
)
def test_unparseable_builtin_file_is_a_config_error(
    tmp_path: Path, content: str, message: str
) -> None:
    broken = tmp_path / "operators.yaml"
    broken.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_catalogue(builtin_file=broken)
    assert message in str(caught.value)


def test_missing_builtin_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_catalogue(builtin_file=tmp_path / "absent.yaml")


def test_a_complete_alternative_file_replaces_the_builtin_one(tmp_path: Path) -> None:
    catalogue = load_catalogue(builtin_file=catalogue_file(tmp_path, {"x": complete_entry()}))
    assert catalogue.known_ids() == ["x"]
    assert catalogue.get("x").renew_instructions("kk") == "Top up (kk)."
