"""The config file's JSON Schema, for editors: completion, hover help and checks as you type.

Generated from the pydantic models (:class:`watcher.config.Config`), so it cannot say
other than what ``watcher check`` enforces; ``config/schema.json`` is this output, and a
test keeps the two equal. ``sources:`` entries are checked by the scrapers library's
own rules, not by a model, so their schema is written here from the same constants.
The schema is the editor's help; ``watcher check`` stays the judge (cross-references
such as unknown channel names are beyond a schema).
"""

from __future__ import annotations

import json
from typing import Any

from scrapers import CHECKABLE, FIELD_NAMES

SCHEMA_FILE = "schema.json"
"""The name ``watcher init`` writes the schema under, beside the config."""
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_INTERVAL_PATTERN = r"^\s*[0-9]{1,4}\s*([mM][iI][nN]|[hH]|[dD]|[wW])\s*$"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, as a dict."""
    from watcher.config import Config

    schema = Config.model_json_schema(mode="validation")
    properties = schema["properties"]
    properties["sources"]["items"] = _source_schema()
    # What the validators accept beyond the annotated type: a channel may be one URL.
    urls = properties["channels"]["additionalProperties"]
    properties["channels"]["additionalProperties"] = {"anyOf": [{"type": "string"}, urls]}
    # Defaults as a user writes them (pydantic renders a time as 10:00:00).
    properties["remind_at"]["default"] = f"{Config.model_fields['remind_at'].default:%H:%M}"
    return {"$schema": _DIALECT, "title": "SIM Watcher config", **schema}


def schema_text() -> str:
    """What ``watcher schema`` prints and ``config/schema.json`` holds."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def _source_schema() -> dict[str, Any]:
    selector = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "description": "A promotion page to watch; a built-in id replaces that source.",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
            "operator": {"type": "string"},
            "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
            "kind": {"enum": ["auto", "html", "feed", "json"], "default": "auto"},
            "render": {"enum": ["http", "browser"], "default": "http"},
            "every": {
                "type": "string",
                "pattern": _INTERVAL_PATTERN,
                "description": "how often to fetch: a whole number and min, h, d or w "
                "(at least 5min)",
                "default": "6h",
                "examples": ["30min", "6h", "1d"],
            },
            "items": selector,
            "fields": {
                "type": "object",
                "additionalProperties": False,
                "properties": dict.fromkeys(FIELD_NAMES, selector),
            },
            "script": selector,
            "unverified": {"type": "array", "items": {"enum": list(CHECKABLE)}},
        },
    }
