"""The store's events as plain rows, for the auditors' checks, read only.

A check needs only each event's position, certification id, version, topic
and stored bytes. Reading them straight from the events table, as tuples
with the id as its 16 bytes, costs a quarter of what the library's
notifications cost (a UUID, a dict and an object per event): verification
then keeps pace with the store.

The auditors' verbs open the store through :func:`open_store_rows` and
nothing else: a connection of its own that cannot write (SQLite opened
``mode=ro``, PostgreSQL sessions with ``default_transaction_read_only``).
It creates no file, folder, table or extension, and refuses a store that is
not there rather than making an empty one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import psycopg
from eventsourcing.persistence import Mapper, StoredEvent
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from domain.certification import Certification
from domain.clock import SystemClock
from service.application import CertificationNotFoundError, CertificationService
from service.audit import PAGE_SIZE, EventRow
from service.ledger import event_reader
from service.store import DatabaseUrlError, persistence_env, postgres_conninfo

# The library's name for the events table: fixed on SQLite, after the
# application on PostgreSQL.
SQLITE_EVENTS_TABLE = "stored_events"
POSTGRES_EVENTS_TABLE = f"{CertificationService.name}_events"
READ_ONLY_SESSION = "-c default_transaction_read_only=on"


class StoreNotFoundError(Exception):
    """There is no event store to read where the settings point."""


class StoreRows:
    """Pages of ``(position, id bytes, version, topic, state)`` in store order."""

    def __init__(self, database_url: str, table: str) -> None:
        env = persistence_env(database_url)
        self.sqlite = env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
        self.table = table
        position = "rowid" if self.sqlite else "notification_id"
        originator_id = "originator_id" if self.sqlite else "uuid_send(originator_id)"
        # The table's name is the library's own, never a caller's.
        columns = f"{position}, {originator_id}, originator_version, topic, state"
        self._select = (
            f"SELECT {columns} FROM {table} "  # noqa: S608
            f"WHERE {position} > %s AND {position} <= %s "
            f"ORDER BY {position} LIMIT %s"
        )
        self._select_one = (
            f"SELECT {columns} FROM {table} "  # noqa: S608
            "WHERE originator_id = %s ORDER BY originator_version"
        )
        self._last = f"SELECT MAX({position}) FROM {table}"  # noqa: S608
        self._connection: Any
        if self.sqlite:
            self._connection = _sqlite_read_only(env["SQLITE_DBNAME"])
            self._select = self._select.replace("%s", "?")
            self._select_one = self._select_one.replace("%s", "?")
        else:
            self._connection = _postgres_read_only(database_url)

    def close(self) -> None:
        self._connection.close()

    def has_events_table(self) -> bool:
        if self.sqlite:
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 WHERE to_regclass(%s) IS NOT NULL"
        return self._connection.execute(sql, (self.table,)).fetchone() is not None

    def last_position(self) -> int:
        row = self._connection.execute(self._last).fetchone()
        return int(row[0] or 0) if row else 0

    def page(self, after: int, stop: int, limit: int = PAGE_SIZE) -> list[EventRow]:
        """The events after position ``after`` up to ``stop``, at most ``limit``."""
        rows = self._connection.execute(self._select, (after, stop, limit)).fetchall()
        return self._as_event_rows(rows)

    def pages(
        self, after: int = 0, stop: int | None = None
    ) -> Iterator[list[EventRow]]:
        """Every page after ``after`` up to ``stop`` (default: the last now)."""
        if stop is None:
            stop = self.last_position()
        while page := self.page(after, stop):
            yield page
            after = page[-1][0]

    def rows_of(self, certification_id: UUID) -> list[EventRow]:
        """Every event of one certification, oldest first."""
        key: str | UUID = certification_id.hex if self.sqlite else certification_id
        rows = self._connection.execute(self._select_one, (key,)).fetchall()
        return self._as_event_rows(rows)

    def _as_event_rows(self, rows: list[Any]) -> list[EventRow]:
        if not self.sqlite:
            return rows
        # SQLite keeps the id as 32 hex digits.
        fromhex = bytes.fromhex
        return [(row[0], fromhex(row[1]), row[2], row[3], row[4]) for row in rows]


def open_store_rows(database_url: str) -> StoreRows:
    """Open the store for reading only; raise :class:`StoreNotFoundError`
    when it is not there, having created nothing."""
    sqlite_file = _sqlite_file(database_url)
    if sqlite_file is not None and not sqlite_file.is_file():
        msg = f"there is no SQLite store at {sqlite_file}: nothing to read"
        raise StoreNotFoundError(msg)
    table = SQLITE_EVENTS_TABLE if sqlite_file else POSTGRES_EVENTS_TABLE
    try:
        rows = StoreRows(database_url, table)
    except psycopg.Error as error:
        msg = f"cannot open the store: {error}"
        raise StoreNotFoundError(msg) from None
    try:
        present = rows.has_events_table()
    except (sqlite3.Error, psycopg.Error) as error:
        rows.close()
        msg = f"cannot read the store: {error}"
        raise StoreNotFoundError(msg) from None
    if not present:
        rows.close()
        msg = f"the database holds no event store (no table {table}): nothing to read"
        raise StoreNotFoundError(msg)
    return rows


def _sqlite_file(database_url: str) -> Path | None:
    """The SQLite file a ``sqlite:`` URL names (None for another scheme)."""
    parts = urlsplit(database_url)
    if parts.scheme != "sqlite":
        return None
    path = unquote(parts.path)[1:]
    if not path:
        msg = "CERTD_DATABASE_URL names no SQLite file: use sqlite:///PATH"
        raise DatabaseUrlError(msg)
    return Path(path)


def _sqlite_read_only(path: str) -> sqlite3.Connection:
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True)


def _postgres_read_only(database_url: str) -> psycopg.Connection[Any]:
    conninfo = postgres_conninfo(database_url)
    options = conninfo_to_dict(conninfo).get("options") or ""
    read_only = make_conninfo(conninfo, options=f"{options} {READ_ONLY_SESSION}")
    return psycopg.connect(read_only, autocommit=True)


def certification_events(
    rows: StoreRows, certification_id: UUID
) -> list[tuple[int, Certification.Event]]:
    """Every event of a certification, oldest first, with its store position,
    read as the service reads it (with its upcasting)."""
    read = event_reader(_service_mapper())
    events = []
    for position, _, version, topic, state in rows.rows_of(certification_id):
        stored = StoredEvent(
            originator_id=certification_id,
            originator_version=version,
            topic=topic,
            state=bytes(state),
        )
        event = read(stored)
        if isinstance(event, Certification.Event):
            events.append((position, event))
    if not events:
        raise CertificationNotFoundError(certification_id)
    return events


def _service_mapper() -> Mapper[UUID]:
    """The service's own mapper (its transcodings and upcasting), taken from
    an instance over memory: no store is opened."""
    return CertificationService(env={}, clock=SystemClock()).mapper
