from pathlib import Path

import pytest

from service.store import DatabaseUrlError, persistence_env


def test_a_sqlite_url_names_a_file_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    env = persistence_env("sqlite:///var/certd.sqlite")

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == "var/certd.sqlite"
    assert (tmp_path / "var").is_dir()


def test_a_sqlite_url_with_four_slashes_names_an_absolute_path(
    tmp_path: Path,
) -> None:
    env = persistence_env(f"sqlite:///{tmp_path}/store.sqlite")

    assert env["SQLITE_DBNAME"] == f"{tmp_path}/store.sqlite"


def test_a_postgres_url_gives_every_connection_setting() -> None:
    env = persistence_env(
        "postgresql://certd:s%40cret@db.internal:6543/certs?schema=live", 7
    )

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert env["POSTGRES_HOST"] == "db.internal"
    assert env["POSTGRES_PORT"] == "6543"
    assert env["POSTGRES_USER"] == "certd"
    assert env["POSTGRES_PASSWORD"] == "s@cret"
    assert env["POSTGRES_DBNAME"] == "certs"
    assert env["POSTGRES_SCHEMA"] == "live"
    assert env["POSTGRES_POOL_SIZE"] == "7"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://root@localhost/db", "scheme 'mysql'"),
        ("sqlite://", "names no SQLite file"),
        ("postgresql://localhost/db", "needs a user, a host and a database"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_refused_with_the_reason(
    url: str, named: str
) -> None:
    with pytest.raises(DatabaseUrlError, match=named):
        persistence_env(url)
