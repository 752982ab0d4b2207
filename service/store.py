"""Translate a database URL into the ``eventsourcing`` persistence settings."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import make_conninfo

from projections.database import (
    PostgresViewDatabase,
    SQLiteViewDatabase,
    ViewDatabase,
)


class DatabaseUrlError(ValueError):
    pass


def persistence_env(database_url: str, pool_size: int = 10) -> dict[str, str]:
    """Return the ``eventsourcing`` environment for ``sqlite:`` or ``postgresql:``.

    A SQLite path is relative to the working directory unless it starts with
    a fourth slash (``sqlite:////abs/path``); its folder is created.
    """
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        return _sqlite_env(unquote(parts.path)[1:])
    if parts.scheme in {"postgresql", "postgres"}:
        return _postgres_env(database_url, pool_size)
    msg = (
        f"CERTD_DATABASE_URL must start with sqlite:/// or postgresql://, "
        f"got scheme '{parts.scheme}'"
    )
    raise DatabaseUrlError(msg)


def _sqlite_env(path: str) -> dict[str, str]:
    if not path:
        msg = "CERTD_DATABASE_URL names no SQLite file: use sqlite:///PATH"
        raise DatabaseUrlError(msg)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def _postgres_env(database_url: str, pool_size: int) -> dict[str, str]:
    parts = urlsplit(database_url)
    dbname = unquote(parts.path.lstrip("/"))
    if not (parts.hostname and parts.username and dbname):
        msg = (
            "CERTD_DATABASE_URL for PostgreSQL needs a user, a host and a "
            "database: postgresql://USER@HOST:PORT/DB"
        )
        raise DatabaseUrlError(msg)
    schema = parse_qs(parts.query).get("schema", [""])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        # No check on checkout: while PostgreSQL keeps ending connections,
        # psycopg_pool's check loop backs off for the whole pool timeout, and
        # eventsourcing retries that ten times, so a command hung for about
        # 50 s. Without it a dead connection fails its statement, which
        # eventsourcing retries on a fresh one, and a command answers 503 in
        # about 2 s when the database stays away.
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_CONNECT_TIMEOUT": "5",
    }


def view_database(database_url: str, pool_size: int = 4) -> ViewDatabase:
    """Open the database of the status views: the store's own database."""
    env = persistence_env(database_url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        return SQLiteViewDatabase(env["SQLITE_DBNAME"])
    return PostgresViewDatabase(postgres_conninfo(database_url), pool_size)


def postgres_conninfo(database_url: str) -> str:
    """Return the libpq connection string of a ``postgresql:`` URL."""
    env = persistence_env(database_url)
    conninfo = urlunsplit(urlsplit(database_url)._replace(query=""))
    if env["POSTGRES_SCHEMA"]:
        search_path = f"-c search_path={env['POSTGRES_SCHEMA']}"
        conninfo = make_conninfo(conninfo, options=search_path)
    return conninfo


@contextmanager
def store_setup_lock(database_url: str) -> Iterator[None]:
    """Let one process at a time set up the store's tables and functions.

    ``eventsourcing`` creates its tables and replaces its insert function
    each time an application starts; two replicas starting together on one
    PostgreSQL database fail with "tuple concurrently updated". SQLite needs
    no lock: its writes are serialised already.
    """
    if persistence_env(database_url)["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        yield
        return
    with psycopg.connect(postgres_conninfo(database_url), autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
        try:
            yield
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))


_SETUP_LOCK_KEY = int.from_bytes(b"certd.st", "big")
