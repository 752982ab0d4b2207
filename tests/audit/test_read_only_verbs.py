"""The auditors' verbs only read: after each of them the store holds exactly
the events it held before, byte for byte."""

from pathlib import Path

import pytest

from tests.audit.cli import run_certd
from tests.audit.tables import StoredEvents
from tests.audit.test_tamper import three_certifications
from tests.projections.steps import Steps


def test_no_auditor_verb_changes_the_store(
    steps: Steps,
    tables: StoredEvents,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    first, *_ = three_certifications(steps)
    before = tables.run("SELECT * FROM stored_events ORDER BY {pos}")
    export = str(workdir / "export.jsonl")
    verbs = [
        ("history", str(first)),
        ("history", str(first), "--json"),
        ("state", str(first), "--as-of", "2030-01-01T00:00:00Z"),
        ("checkpoint",),
        ("verify",),
        ("export", "--out", export),
        ("verify", "--export", export),
    ]

    codes = [run_certd(capsys, monkeypatch, database_url, *verb).code for verb in verbs]

    assert codes == [0] * len(verbs)
    assert tables.run("SELECT * FROM stored_events ORDER BY {pos}") == before


def test_history_prints_every_event_oldest_first(
    steps: Steps,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    first, *_ = three_certifications(steps)

    ran = run_certd(capsys, monkeypatch, database_url, "history", str(first))

    headings = [line.split()[2] for line in ran.out.splitlines() if line[:4].strip()]
    assert headings == [
        "ApplicationStarted",
        "SubmissionReceived",
        "SubmissionFeePaid",
        "Approved",
        "AnnualFeePaid",
    ]
    assert "actor: billing/billing-0001" in ran.out
