"""Fixtures of the auditor tests: the store's own tables to tamper with, a
folder for exports, ``certd`` run in-process, and a published export."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit.cli import Certd
from tests.audit.history import Published, export, three_certifications
from tests.audit.tables import StoredEvents
from tests.projections.steps import Steps


@pytest.fixture
def tables(database_url: str) -> Iterator[StoredEvents]:
    events = StoredEvents(database_url)
    yield events
    events.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    folder.mkdir()
    return folder


@pytest.fixture
def certd(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> Certd:
    return Certd(capsys, monkeypatch, database_url)


@pytest.fixture
def published(steps: Steps, certd: Certd, workdir: Path) -> Published:
    certifications = three_certifications(steps)
    out = workdir / "published.jsonl"
    export(certd, out)
    return Published(certifications, out)
