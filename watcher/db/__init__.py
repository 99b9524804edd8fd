"""Storage: typed SQLAlchemy models, engine set-up and Alembic migrations."""

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
