"""The store's events table, reached with plain SQL, as someone tampering
with the database would: no library code in between."""

import sqlite3
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import psycopg


class StoredEvents:
    """Read and change rows of ``stored_events`` by store position."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        self.sqlite = parts.scheme == "sqlite"
        self.position = "rowid" if self.sqlite else "notification_id"
        # eventsourcing names the table after the application on PostgreSQL.
        self.table = "stored_events" if self.sqlite else "certifications_events"
        self._db: Any = (
            sqlite3.connect(unquote(parts.path)[1:], isolation_level=None)
            if self.sqlite
            else psycopg.connect(database_url, autocommit=True)
        )
        self._mark = "?" if self.sqlite else "%s"

    def close(self) -> None:
        self._db.close()

    def run(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        sql = sql.replace("{pos}", self.position).replace("?", self._mark)
        sql = sql.replace("stored_events", self.table)
        cursor = self._db.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def row(self, position: int) -> tuple[UUID, int, str, bytes]:
        (found,) = self.run(
            "SELECT originator_id, originator_version, topic, state "
            "FROM stored_events WHERE {pos} = ?",
            position,
        )
        originator_id = found[0] if isinstance(found[0], UUID) else UUID(found[0])
        return originator_id, found[1], found[2], bytes(found[3])

    def positions_of(self, certification_id: UUID) -> list[int]:
        key = certification_id.hex if self.sqlite else certification_id
        rows = self.run(
            "SELECT {pos} FROM stored_events WHERE originator_id = ? "
            "ORDER BY originator_version",
            key,
        )
        return [row[0] for row in rows]

    def set_state(self, position: int, state: bytes) -> None:
        self.run("UPDATE stored_events SET state = ? WHERE {pos} = ?", state, position)

    def delete(self, *positions: int) -> None:
        for position in positions:
            self.run("DELETE FROM stored_events WHERE {pos} = ?", position)

    def swap(self, first: int, second: int) -> None:
        """Exchange the store positions of two events."""
        move = "UPDATE stored_events SET {pos} = ? WHERE {pos} = ?"
        self.run(move, -1, first)
        self.run(move, first, second)
        self.run(move, second, -1)

    def last_position(self) -> int:
        ((last,),) = self.run("SELECT MAX({pos}) FROM stored_events")
        return int(last or 0)
