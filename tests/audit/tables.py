"""The store's events table, reached with plain SQL, as someone tampering
with the database would: no library code in between."""

import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import psycopg
from psycopg.sql import SQL, Identifier


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


def database_snapshot(database_url: str) -> dict[str, Any]:
    """Everything a write could change: the schema (tables, columns,
    indexes, functions, extensions) and every row of every table."""
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        return _sqlite_snapshot(unquote(parts.path)[1:])
    return _postgres_snapshot(database_url)


def _sqlite_snapshot(path: str) -> dict[str, Any]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        schema = sorted(
            db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        )
        tables = [name for kind, name, _, _ in schema if kind == "table"]
        rows = {
            # The names come from the database's own catalogue.
            table: _sorted_rows(db.execute(f'SELECT * FROM "{table}"'))  # noqa: S608
            for table in tables
        }
        return {"schema": schema, "rows": rows, "counts": _counts(rows)}


_POSTGRES_SCHEMA = {
    "columns": "SELECT table_schema, table_name, column_name, data_type "
    "FROM information_schema.columns WHERE table_schema NOT IN "
    "('pg_catalog', 'information_schema')",
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    "functions": "SELECT n.nspname, p.proname, p.prosrc "
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
    "extensions": "SELECT extname, extversion FROM pg_extension",
}


def _postgres_snapshot(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as db:
        schema = {
            part: sorted(db.execute(sql).fetchall())
            for part, sql in _POSTGRES_SCHEMA.items()
        }
        tables = db.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname "
            "NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        rows = {
            f"{space}.{table}": _sorted_rows(
                db.execute(
                    SQL("SELECT * FROM {}.{}").format(*map(Identifier, (space, table)))
                )
            )
            for space, table in tables
        }
        return {"schema": schema, "rows": rows, "counts": _counts(rows)}


def _sorted_rows(cursor: Any) -> list[str]:
    return sorted(repr(row) for row in cursor.fetchall())


def _counts(rows: dict[str, list[str]]) -> dict[str, int]:
    return {table: len(content) for table, content in rows.items()}
