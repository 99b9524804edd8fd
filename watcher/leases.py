"""Work done once across replicas: several `watcher run` on one PostgreSQL database.

Delivery shares out by itself (each sender claims rows with ``SKIP LOCKED``); what must
not be done by every replica at once takes a PostgreSQL advisory lock:

* syncing the config (:func:`hold_for_sync`): replicas starting together write the same
  users and SIMs, and the second insert of a user would fail on its primary key; one
  sync at a time, in its own transaction, makes the others find the rows in place;
* a scraping pass and a planning pass (:func:`exclusive`): one replica does it, the
  others skip that round. The lock is a session lock on a connection of its own, so a
  replica that dies mid-pass frees it with its connection, at once.

On SQLite (one machine, one writer at a time) every replica is its own leader.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from watcher.db.engine import Database

__all__ = ["LOCKS", "exclusive", "hold_for_sync"]

log = logging.getLogger(__name__)

# Advisory lock keys (64-bit, arbitrary but fixed; "SIMW" in ASCII, then a role).
LOCKS = {
    "sync": 0x53494D57_0001,
    "scrape": 0x53494D57_0002,
    "plan": 0x53494D57_0003,
}


def hold_for_sync(session: Session) -> None:
    """Wait for this transaction's turn to sync the config (PostgreSQL; else nothing).

    Held until the transaction ends, so a second replica's sync reads what the first
    one wrote.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCKS["sync"]})


@contextmanager
def exclusive(database: Database, role: str) -> Iterator[bool]:
    """``with exclusive(db, "scrape") as mine:`` -- ``mine`` is True if no other replica
    is doing ``role`` now (and none starts until the block ends), False if one is.

    Never waits: a replica that finds the lock taken skips its round, the holder's
    covers it.
    """
    if database.is_sqlite:
        yield True
        return
    key = LOCKS[role]
    with database.engine.connect() as connection:
        mine = bool(
            connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        )
        connection.commit()
        try:
            if not mine:
                log.debug("another replica is doing the %s pass; skipping this one", role)
            yield mine
        finally:
            if mine:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
