"""Storage: typed SQLAlchemy models, engine set-up and Alembic migrations.

The names below load on first use: ``watcher.db.plain`` (what ``watcher status`` and
``watcher health`` read through, without SQLAlchemy) lives in this package, and
importing the package must not import SQLAlchemy for it (issue 11).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watcher.db.engine import (
        Database,
        default_database_url,
        dialect_insert,
        open_database,
        open_database_readonly,
    )
    from watcher.db.models import (
        Base,
        CalendarToken,
        Event,
        Heartbeat,
        OutboxRow,
        PromotionChangeRow,
        PromotionRow,
        ScheduleRow,
        SimRow,
        SourceRow,
        UserChannel,
        UserRow,
    )

__all__ = [
    "Base",
    "CalendarToken",
    "Database",
    "Event",
    "Heartbeat",
    "OutboxRow",
    "PromotionChangeRow",
    "PromotionRow",
    "ScheduleRow",
    "SimRow",
    "SourceRow",
    "UserChannel",
    "UserRow",
    "default_database_url",
    "dialect_insert",
    "open_database",
    "open_database_readonly",
]

_ENGINE = {
    "Database",
    "default_database_url",
    "dialect_insert",
    "open_database",
    "open_database_readonly",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = "watcher.db.engine" if name in _ENGINE else "watcher.db.models"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
