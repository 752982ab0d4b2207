"""Fresh PostgreSQL databases for tests and benchmarks, dropped afterwards.

``CERTD_TEST_POSTGRES_URL`` names the server (and a database on it to connect
to while creating and dropping); by default the one at 127.0.0.1:5432.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get(
    "CERTD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextmanager
def fresh_postgres_database(
    prefix: str = "certd_test", admin_url: str = ADMIN_URL
) -> Iterator[str]:
    """Yield the URL of an empty database of its own; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
