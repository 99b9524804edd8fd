"""Phone numbers: every way a Kazakh number is written reads as the same number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import WriteConfig
from watcher.cli import main
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.masking import mask_phone
from watcher.phones import format_number, normalise_number

MOBILE_CODES = ["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777"]


@pytest.mark.parametrize(
    "written",
    [
        "87011234567",
        "7011234567",
        "+7 (701) 123-45-67",
        "8 701 123 45 67",
        "+77011234567",
        "+7 701 123 45 67",
        "8 (701) 123-45-67",
    ],
)
def test_local_forms_are_the_international_number(written: str) -> None:
    number = normalise_number(written)
    assert number == "+77011234567"
    assert format_number(number) == "+7 701 123 45 67"
    assert mask_phone(number) == "+7 701 *** ** 67"


def sim(number: str, database: str = "sqlite:///:memory:") -> str:
    return f"""
        database: "{database}"
        channels:
          console: "console://"
        users:
          - name: alice
            notify: [console]
            sims:
              - id: alice-kcell
                operator: kcell
                number: {number}
        """


@pytest.mark.parametrize("written", ['"87011234567"', "87011234567", "+77011234567", "7011234567"])
def test_the_config_stores_one_form_quoted_or_not(write_config: WriteConfig, written: str) -> None:
    path = write_config(sim(written))
    [user] = load_config(path).config.users
    assert user.sims[0].number == "+77011234567"


def written_forms(national: str) -> st.SearchStrategy[str]:
    """Ways people write the number whose 10 national digits are ``national``."""
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return st.sampled_from(
        [
            f"8{national}",
            national,
            f"+7{national}",
            f"+7 ({a}) {b}-{c}-{d}",
            f"8 {a} {b} {c} {d}",
            f"8 ({a}) {b} {c} {d}",
            f"+7 {a} {b} {c} {d}",
            f"8-{a}-{b}-{c}-{d}",
            f" +7 {a} {b}{c}{d} ",
        ]
    )


nationals = st.builds(
    lambda code, rest: code + rest,
    st.sampled_from(MOBILE_CODES),
    st.from_regex(r"[0-9]{7}", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(st.data(), nationals)
def test_every_written_form_normalises_and_masks_alike(data: st.DataObject, national: str) -> None:
    written = data.draw(written_forms(national))
    number = normalise_number(written)
    assert number == f"+7{national}"
    assert format_number(number) == (
        f"+7 {national[:3]} {national[3:6]} {national[6:8]} {national[8:]}"
    )
    masked = mask_phone(number)
    assert masked == f"+7 {national[:3]} *** ** {national[8:]}"
    assert mask_phone(written) == masked  # also a number stored before it was normalised


impossible = st.one_of(
    st.from_regex(r"[0-9]{1,6}", fullmatch=True),  # too short for any country
    st.from_regex(r"\+?[0-9]{18,30}", fullmatch=True),  # too long for any country
    st.from_regex(r"(8 ?|\+7 ?)0[0-9]{2} ?[0-9]{7}", fullmatch=True),  # no +7 code starts with 0
    st.from_regex(r"[A-Za-z][A-Za-z ]{2,12}", fullmatch=True),  # "call me"
    st.just("+7 701 123 45 6"),
)


@settings(max_examples=200, deadline=None)
@given(impossible)
def test_a_number_that_cannot_exist_is_refused_without_repeating_it(written: str) -> None:
    example = "expected a phone number such as +7 7XX XXX XX XX or 8 7XX XXX XX XX"
    with pytest.raises(ValueError, match=f"^{re.escape(example)}") as caught:
        normalise_number(written)
    message = str(caught.value)
    digits = "".join(c for c in written if c.isdigit())
    if len(digits) >= 4:
        assert digits not in message.removeprefix(example).replace(" ", "")


def test_check_names_the_field_of_a_bad_number_in_one_line(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(sim('"8 701 123 45"'))
    with pytest.raises(ConfigError):
        load_config(path)
    assert main(["check", "-c", str(path)]) == 2
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line == (
        f"error: {path}: users[0].sims[0].number: expected a phone number such as "
        "+7 7XX XXX XX XX or 8 7XX XXX XX XX: it has too few digits"
    )
    assert "Traceback" not in out + err


def test_check_shows_a_local_number_masked(
    write_config: WriteConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_config(sim('"87011234567"', database=f"sqlite:///{tmp_path / 'w.db'}"))
    assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "+7 701 *** ** 67" in out
    assert "1234567" not in out
