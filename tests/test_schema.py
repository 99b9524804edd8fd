"""The config's JSON Schema: generated, shipped, pointed at by the starter, and true."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.test_config import GOOD
from watcher.cli import main
from watcher.schema import config_schema, schema_text
from watcher.validation import load_yaml

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "schema.json"
EXAMPLE = ROOT / "config" / "example.yaml"
STARTER = ROOT / "watcher" / "starter.yaml"
_MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def _as_editors_read(value: Any) -> Any:
    # Editors read YAML 1.2, where an `on:` key is text; PyYAML (1.1) makes it True.
    if isinstance(value, dict):
        return {("on" if k is True else k): _as_editors_read(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_editors_read(item) for item in value]
    return value


def _errors(text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(config_schema())
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(_as_editors_read(load_yaml(text)))
    ]


def test_the_shipped_schema_is_the_generated_one() -> None:
    # If this fails: watcher schema > config/schema.json
    assert SHIPPED.read_text(encoding="utf-8") == schema_text()


def test_watcher_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out == schema_text()
    schema: dict[str, Any] = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", [EXAMPLE, STARTER])
def test_the_shipped_configs_pass_the_schema(path: Path) -> None:
    assert _errors(path.read_text(encoding="utf-8")) == []


def test_a_full_config_passes_the_schema() -> None:
    assert _errors(GOOD) == []


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("        renew_every: 1mo\n", "        renew_every: 3m\n", "users.0.sims.0.renew_every"),
        ("        expires: 2026-12-01\n", "        expirs: 2026-12-01\n", "users.0.sims.0"),
        ("    every: 30min\n", "    every: 30m\n", "sources.0.every"),
        ('quiet_hours: "22:00-08:00"', 'quiet_hours: "22-08"', "users.0.quiet_hours"),
        ("language: ru", "language: de", "users.0.language"),
    ],
)
def test_the_schema_flags_what_check_refuses(old: str, new: str, path: str) -> None:
    assert old in GOOD
    assert [e.split(":")[0] for e in _errors(GOOD.replace(old, new, 1))] == [path]


@pytest.mark.parametrize("path", [EXAMPLE, STARTER])
def test_the_first_line_points_editors_at_a_schema_beside_the_file(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = _MODELINE.match(first)
    assert match, first
    assert "://" not in match.group(1)  # a file beside the config, never a made-up URL
    if path == EXAMPLE:
        assert (path.parent / match.group(1)).resolve() == SHIPPED


def test_init_writes_the_schema_the_starter_points_at(tmp_path: Path) -> None:
    config = tmp_path / "watcher.yaml"
    assert main(["init", "-c", str(config)]) == 0
    match = _MODELINE.match(config.read_text(encoding="utf-8").splitlines()[0])
    assert match
    assert (tmp_path / match.group(1)).read_text(encoding="utf-8") == schema_text()


def test_init_keeps_a_schema_file_already_there(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text("{}", encoding="utf-8")
    assert main(["init", "-c", str(tmp_path / "watcher.yaml")]) == 0
    assert (tmp_path / "schema.json").read_text(encoding="utf-8") == "{}"
