"""The auditors' verbs only read: they work on a store they cannot write (a
SQLite file made read-only, a PostgreSQL role with nothing but SELECT), leave
the database exactly as it was, schema and rows, and refuse a store that is
not there instead of creating one."""

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from domain.clock import FixedClock
from service.composition import build_service
from service.settings import Settings
from tests.audit.cli import Certd
from tests.audit.history import three_certifications
from tests.audit.tables import database_snapshot
from tests.projections.steps import START, Steps


def auditor_verbs(certification_id: UUID, export: Path) -> list[tuple[str, ...]]:
    return [
        ("history", str(certification_id)),
        ("history", str(certification_id), "--json"),
        ("state", str(certification_id), "--as-of", "2030-01-01T00:00:00Z"),
        ("state", str(certification_id), "--as-of", "2030-01-01T00:00:00Z", "--json"),
        ("checkpoint",),
        ("checkpoint", "--json"),
        ("verify",),
        ("export", "--out", str(export)),
        ("export", "--out", str(export), "--since", "6"),
    ]


@pytest.fixture
def stored(database_url: str) -> list[UUID]:
    """Three certifications stored by the service alone: the database holds
    the event store and nothing else (no status views), so a verb that set
    up anything more would show."""
    service = build_service(Settings(database_url=database_url), FixedClock(START))
    try:
        return three_certifications(Steps(service))
    finally:
        service.close()


@pytest.fixture
def read_only_url(database_url: str, stored: list[UUID]) -> Iterator[str]:
    """The store, reachable only for reading: a SQLite file made read-only,
    or a PostgreSQL role granted SELECT and nothing else."""
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        Path(unquote(parts.path)[1:]).chmod(0o444)
        yield database_url
        return
    with select_only_role(database_url) as url:
        yield url


@contextmanager
def select_only_role(database_url: str) -> Iterator[str]:
    """A login role that may only SELECT from the database's tables; dropped
    afterwards, with its grants."""
    name = f"certd_auditor_{uuid4().hex[:12]}"
    role = Identifier(name)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(SQL("CREATE ROLE {} LOGIN").format(role))
        admin.execute(
            SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role)
        )
    parts = urlsplit(database_url)
    netloc = f"{name}@{parts.hostname}:{parts.port or 5432}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(SQL("DROP OWNED BY {}").format(role))
            admin.execute(SQL("DROP ROLE {}").format(role))


def test_every_auditor_verb_works_on_a_read_only_store_and_changes_nothing(
    stored: list[UUID],
    read_only_url: str,
    database_url: str,
    certd: Certd,
    workdir: Path,
) -> None:
    first, *_ = stored
    export = workdir / "export.jsonl"
    before = database_snapshot(database_url)

    ran = {
        verb: certd.on(read_only_url, *verb) for verb in auditor_verbs(first, export)
    }

    failed = {verb: (r.code, r.out, r.err) for verb, r in ran.items() if r.code}
    assert not failed
    assert database_snapshot(database_url) == before
    assert before["counts"], "the snapshot holds the store's tables"
    assert "verified 13 events of 3 certifications" in ran[("verify",)].out
    assert ran[("checkpoint",)].out.startswith("13:")
    state = ran[("state", str(first), "--as-of", "2030-01-01T00:00:00Z", "--json")]
    assert '"status":"certified"' in state.out


def test_the_owner_running_every_verb_changes_nothing_either(
    stored: list[UUID], database_url: str, certd: Certd, workdir: Path
) -> None:
    first, *_ = stored
    before = database_snapshot(database_url)

    codes = [
        certd(*verb).code for verb in auditor_verbs(first, workdir / "export.jsonl")
    ]

    assert codes == [0] * len(codes)
    assert database_snapshot(database_url) == before


@pytest.mark.parametrize(
    "verb",
    [
        ("history", str(uuid4())),
        ("state", str(uuid4()), "--as-of", "2030-01-01T00:00:00Z"),
        ("checkpoint",),
        ("verify",),
        ("export", "--out", "export.jsonl"),
    ],
    ids=lambda verb: verb[0],
)
def test_a_missing_sqlite_store_is_refused_and_not_created(
    tmp_path: Path, certd: Certd, monkeypatch: pytest.MonkeyPatch, verb: tuple[str, ...]
) -> None:
    folder = tmp_path / "nowhere"
    monkeypatch.chdir(tmp_path)

    ran = certd.on(f"sqlite:///{folder / 'c.sqlite'}", *verb)

    assert ran.code == 2
    assert f"there is no SQLite store at {folder / 'c.sqlite'}" in ran.err
    assert sorted(tmp_path.iterdir()) == []


def test_a_database_without_an_event_store_is_refused_and_left_alone(
    database_url: str, certd: Certd
) -> None:
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        with closing(sqlite3.connect(unquote(parts.path)[1:])) as db:
            db.execute("CREATE TABLE unrelated (x)")
            db.commit()
    before = database_snapshot(database_url)

    ran = certd("verify")

    assert ran.code == 2
    assert "holds no event store" in ran.err
    assert "verified" not in ran.out
    assert database_snapshot(database_url) == before


@pytest.mark.parametrize(
    "verb", [("history",), ("state", "--as-of", "2030-01-01T00:00:00Z")]
)
def test_an_unknown_certification_exits_1(
    stored: list[UUID], certd: Certd, verb: tuple[str, ...]
) -> None:
    unknown = uuid4()
    name, *rest = verb

    ran = certd(name, str(unknown), *rest)

    assert ran.code == 1
    assert f"no certification has the id '{unknown}'" in ran.err


def test_history_prints_every_event_oldest_first(
    stored: list[UUID], certd: Certd
) -> None:
    first, *_ = stored

    ran = certd("history", str(first))

    headings = [line.split()[2] for line in ran.out.splitlines() if line[:4].strip()]
    assert headings == [
        "ApplicationStarted",
        "SubmissionReceived",
        "SubmissionFeePaid",
        "Approved",
        "AnnualFeePaid",
    ]
    assert "actor: billing/billing-0001" in ran.out
