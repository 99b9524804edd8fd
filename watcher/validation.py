"""What the config file and the operator catalogue share: YAML reading and pydantic errors.

Both files are YAML checked by pydantic models. Whatever goes wrong is turned into
:class:`~watcher.errors.ConfigIssue` lines here, worded one way for both: the file, the
path inside it (``users[0].sims[1].expires``, ``operators.kcell.renew.en``) and the
problem. An issue never repeats the offending value: after ``${VAR}`` substitution it
may be a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails

from watcher import yamlload
from watcher.config_diagnostics import suggest
from watcher.durations import DAYS_PATTERN, Duration
from watcher.errors import ConfigIssue

__all__ = [
    "DurationField",
    "StrictModel",
    "issues_from",
    "join_key",
    "load_yaml",
    "yaml_issue",
]


class StrictModel(BaseModel):
    """The base of every model a user writes: unknown keys are errors, values are frozen.

    Frozen because the built-in catalogue is cached and shared, and a loaded config is
    swapped whole on reload, never edited in place.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True
    )


def _whole_days(value: object) -> Duration:
    return Duration.parse(value).whole_days()


DurationField = Annotated[
    Duration,
    BeforeValidator(_whole_days),
    PlainSerializer(str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DAYS_PATTERN,
            "description": "a whole number and d, w or mo (a calendar month): 7d, 2w, 1mo",
            "examples": ["7d", "2w", "1mo"],
        }
    ),
]
"""A :class:`Duration` of whole days as users write it: ``90d``, ``2w``, ``1mo``."""


def load_yaml(text: str) -> Any:
    """Parse YAML text safely and within bounds; raises ``yaml.YAMLError`` (see :func:`yaml_issue`).

    Dates stay text for the validators; alias bombs, self-referencing aliases and
    giant numbers are YAML errors (:mod:`watcher.yamlload`).
    """
    return yamlload.load(text)


def yaml_issue(exc: yaml.YAMLError, file: str) -> ConfigIssue:
    """The one-line issue for text that is not valid YAML, with its line and column."""
    mark = getattr(exc, "problem_mark", None)
    where = "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None)
    return ConfigIssue(file, where, f"invalid YAML: {problem}" if problem else "invalid YAML")


def issues_from(
    exc: ValidationError, file: str, prefix: str = "", model: type[BaseModel] | None = None
) -> list[ConfigIssue]:
    """One :class:`ConfigIssue` per pydantic error; ``prefix`` is the model's own path.

    A model validator may report several ``path: problem`` lines in one error; each
    becomes an issue of its own. With the ``model`` validated, a misspelt key gets a
    "did you mean" from the names that model has at that place.
    """
    issues = []
    suggestions = 0
    for error in exc.errors(include_url=False):
        path = _path(prefix, error["loc"])
        message = _message(error)
        unknown = error["type"] == "extra_forbidden"
        if unknown and model is not None and suggestions < _SUGGEST_AT_MOST:
            suggestions += 1  # 100,000 unknown keys must not take 100,000 look-ups
            near = suggest(error["loc"][-1], _field_names(model, error["loc"][:-1]))
            if near is not None:
                message = f"unknown setting; did you mean `{near}`?"
        for line in message.splitlines():
            sub_path, sep, sub_message = line.partition(": ")
            if sep and not path and re.match(r"^[\w.\[\]-]+$", sub_path):
                issues.append(ConfigIssue(file, sub_path, sub_message))
            else:
                issues.append(ConfigIssue(file, path, line))
    return issues


_SUGGEST_AT_MOST = 100


def _message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown setting (check the spelling)"
    if error["type"] == "missing":
        return "required setting is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, dict | list) and value:
        # A block indented one level too far arrives as a field's value: name its
        # shape, never dump it (it may hold a whole channels: section).
        shown = repr(value)
        kind = "a mapping" if isinstance(value, dict) else "a list"
        message = message.replace(shown, f"{kind} (is the next block indented too far?)")
    elif isinstance(value, str) and len(value) > 80:
        message = message.replace(repr(value), repr(value[:40] + "…"))
    return message


def _field_names(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model`` (none if not a model)."""
    current: Any = model
    for part in loc:
        current = _inner(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:  # a list index or a dict key: step into the container's items
            args = [a for a in get_args(current) if a is not type(None)]
            if not args:
                return []
            current = args[-1]
    current = _inner(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner(annotation: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _path(prefix: str, loc: Sequence[int | str]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]" or part.startswith("function-") or part in ("list[str]", "str"):
            continue  # pydantic's names for a bad key, union members, validators
        else:
            path = join_key(path, part)
    return path


def join_key(path: str, key: object) -> str:
    """``path.key``, or ``path["odd key"]`` when the key is not a plain word (keeps one line)."""
    text = str(key)
    if re.fullmatch(r"[\w-]+", text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"
