"""The store's events as plain rows, for the auditors' checks.

A check needs only each event's position, certification id, version, topic
and stored bytes. Reading them straight from the events table, as tuples
with the id as its 16 bytes, costs a quarter of what the library's
notifications cost (a UUID, a dict and an object per event): verification
then keeps pace with the store. It reads on a connection of its own, and
only reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from service.audit import PAGE_SIZE, EventRow
from service.store import persistence_env, postgres_conninfo


class StoreRows:
    """Pages of ``(position, id bytes, version, topic, state)`` in store order."""

    def __init__(self, database_url: str, table: str) -> None:
        env = persistence_env(database_url)
        self.sqlite = env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
        position = "rowid" if self.sqlite else "notification_id"
        originator_id = "originator_id" if self.sqlite else "uuid_send(originator_id)"
        # The table's name is the library's own, never a caller's.
        self._select = (
            f"SELECT {position}, {originator_id}, originator_version, topic, state "  # noqa: S608
            f"FROM {table} WHERE {position} > %s AND {position} <= %s "
            f"ORDER BY {position} LIMIT %s"
        )
        self._last = f"SELECT MAX({position}) FROM {table}"  # noqa: S608
        self._connection: Any
        if self.sqlite:
            uri = Path(env["SQLITE_DBNAME"]).absolute().as_uri() + "?mode=ro"
            self._connection = sqlite3.connect(uri, uri=True)
            self._select = self._select.replace("%s", "?")
        else:
            self._connection = psycopg.connect(
                postgres_conninfo(database_url), autocommit=True
            )

    def close(self) -> None:
        self._connection.close()

    def last_position(self) -> int:
        row = self._connection.execute(self._last).fetchone()
        return int(row[0] or 0) if row else 0

    def page(self, after: int, stop: int, limit: int = PAGE_SIZE) -> list[EventRow]:
        """The events after position ``after`` up to ``stop``, at most ``limit``."""
        rows = self._connection.execute(self._select, (after, stop, limit)).fetchall()
        if not self.sqlite:
            return rows  # type: ignore[no-any-return]
        # SQLite keeps the id as 32 hex digits.
        fromhex = bytes.fromhex
        return [(row[0], fromhex(row[1]), row[2], row[3], row[4]) for row in rows]

    def pages(
        self, after: int = 0, stop: int | None = None
    ) -> Iterator[list[EventRow]]:
        """Every page after ``after`` up to ``stop`` (default: the last now)."""
        if stop is None:
            stop = self.last_position()
        while page := self.page(after, stop):
            yield page
            after = page[-1][0]
