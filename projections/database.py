"""The database the views live in: the same one as the event store.

SQL is written once with ``:name`` parameters; the PostgreSQL side rewrites
them to psycopg's ``%(name)s``. Both sides offer one thing: a transaction
that commits everything written in it, or nothing.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

Params = Mapping[str, Any]
Row = dict[str, Any]

_NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


class ViewsUnavailableError(Exception):
    """The views' database could not be reached; nothing was written."""


class Cursor(Protocol):
    def execute(self, sql: str, params: Params | None = None) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...
    def fetchall(self) -> list[Row]: ...
    def fetchone(self) -> Row | None: ...


class ViewDatabase(ABC):
    dialect: str

    @abstractmethod
    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Cursor]:
        """Yield a cursor; commit when the block ends, roll back if it raises."""

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        with self.transaction(write=False) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    @abstractmethod
    def wait_for_news(self, channel: str, timeout: float) -> None:
        """Return when the store may have new events, or after ``timeout``."""

    @abstractmethod
    def close(self) -> None: ...


class _SQLiteCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._cursor.execute(sql, params or {})

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._cursor.executemany(sql, rows)

    def fetchall(self) -> list[Row]:
        return [dict(row) for row in self._cursor.fetchall()]

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return None if row is None else dict(row)


class SQLiteViewDatabase(ViewDatabase):
    """A connection for writes and one for reads, each used by one thread at
    a time, in WAL mode: a read never waits for a write to finish."""

    dialect = "sqlite"

    def __init__(self, path: str, poll_interval: float = 0.05) -> None:
        self._writer = _SQLiteConnection(path)
        # An in-memory database is private to its connection.
        is_in_memory = path == ":memory:" or "mode=memory" in path
        self._reader = self._writer if is_in_memory else _SQLiteConnection(path)
        self._poll_interval = poll_interval

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Cursor]:
        connection = self._writer if write else self._reader
        with connection.transaction(write=write) as cursor:
            yield cursor

    def wait_for_news(self, channel: str, timeout: float) -> None:
        # SQLite tells no one about a commit: poll.
        time.sleep(min(self._poll_interval, timeout))

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class _SQLiteConnection:
    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10
        )
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        # A view and its tracking position commit together, so a commit lost
        # to a power cut only sets both back to an earlier, consistent point:
        # a full sync of every batch buys nothing.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SQLiteCursor(cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()


class _PostgresCursor:
    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params | None = None) -> None:
        self._cursor.execute(_to_psycopg(sql), params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._cursor.executemany(_to_psycopg(sql), rows)

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone()


class PostgresViewDatabase(ViewDatabase):
    dialect = "postgres"

    def __init__(self, conninfo: str, pool_size: int = 4) -> None:
        self._conninfo = conninfo
        # No check on checkout: while PostgreSQL keeps ending connections, the
        # pool's check loop backs off until its timeout and a read hangs. A
        # dead connection fails its statement instead, and a read is retried.
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs={"row_factory": dict_row},
            timeout=5.0,
            open=True,
        )
        self._attempts = pool_size + 1  # every pooled connection may be dead
        self._listener: psycopg.Connection[Any] | None = None

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Cursor]:
        """Yield a cursor in a transaction; raise ViewsUnavailableError when
        the connection is lost or none can be had."""
        try:
            with (
                self._pool.connection() as connection,
                connection.transaction(),
                connection.cursor() as cursor,
            ):
                yield _PostgresCursor(cursor)
        except psycopg.OperationalError as error:
            msg = f"the views' database is unavailable ({type(error).__name__})"
            raise ViewsUnavailableError(msg) from error

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run a read; on a lost connection, again on another one."""
        for _ in range(self._attempts - 1):
            with contextlib.suppress(ViewsUnavailableError):
                return super().query(sql, params)
        return super().query(sql, params)

    def wait_for_news(self, channel: str, timeout: float) -> None:
        """Block on LISTEN until the store's NOTIFY, or the timeout."""
        try:
            listener = self._listen(channel)
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                break
        except psycopg.OperationalError:
            self._drop_listener()
            time.sleep(min(timeout, 0.5))

    def _listen(self, channel: str) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            self._listener = psycopg.connect(self._conninfo, autocommit=True)
            self._listener.execute(
                psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel))
            )
        return self._listener

    def _drop_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._listener = None

    def close(self) -> None:
        self._drop_listener()
        self._pool.close()


def _to_psycopg(sql: str) -> str:
    return _NAMED_PARAMETER.sub(r"%(\1)s", sql)
