"""Log lines for people (text) or for log collectors (JSON, one object per line).

Either way the secrets filter of :mod:`watcher.masking` has already run on the record's
message when it is formatted; the JSON form scrubs the fields given with ``extra=`` too.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from watcher.clock import ZonedLogFormatter
from watcher.masking import current_secrets, scrub

__all__ = ["FORMATS", "TEXT_FORMAT", "JsonFormatter", "formatter"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """``{"time": ..., "level": ..., "logger": ..., "message": ..., <fields>}`` per line.

    ``time`` is the record's instant in UTC (ISO 8601, milliseconds). An exception is
    one ``exception`` string (its traceback), so a line stays one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        secrets = current_secrets()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage(), secrets),
        }
        for name, value in vars(record).items():
            if name in _STANDARD or name.startswith("_"):
                continue
            entry[name] = _plain(value, secrets)
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info), secrets)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _plain(value: Any, secrets: list[str]) -> Any:
    """A field's value as JSON can hold it, with secrets scrubbed from its text."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, secrets) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, secrets) for key, item in value.items()}
    return scrub(str(value), secrets)


def formatter(kind: str) -> logging.Formatter:
    """The formatter for ``--log-format``: ``text`` or ``json``."""
    if kind == "json":
        return JsonFormatter()
    if kind == "text":
        # Stamped with the UTC offset, as status and sources print times: they can be matched.
        return ZonedLogFormatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {kind!r}")
