"""``certd export`` and ``certd verify --export``: an export is checked with
no store at all, matches the store it came from, and shows a changed line."""

import json
import re
from pathlib import Path

import pytest

from tests.audit.cli import run_certd
from tests.audit.tables import StoredEvents
from tests.audit.test_tamper import three_certifications
from tests.projections.steps import Steps

Capsys = pytest.CaptureFixture[str]


def export(
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    out: Path,
    *more: str,
) -> None:
    ran = run_certd(
        capsys, monkeypatch, database_url, "export", "--out", str(out), *more
    )
    assert ran.code == 0, ran.out + ran.err


def test_an_export_verified_offline_matches_the_store(
    steps: Steps,
    tables: StoredEvents,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    out = workdir / "export.jsonl"
    export(capsys, monkeypatch, database_url, out)
    taken = run_certd(capsys, monkeypatch, database_url, "checkpoint")

    offline = run_certd(capsys, monkeypatch, None, "verify", "--export", str(out))

    assert offline.code == 0, offline.out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"kind": "start", "position": 0, "root": "0" * 64, "events": 0}
    events = lines[1:-1]
    assert [line["position"] for line in events] == list(range(1, 14))
    for line in events:
        _, version, topic, state = tables.row(line["position"])
        assert (line["version"], line["topic"]) == (version, topic)
        assert line["event"]["h"] == state[6:70].decode()
    closing = lines[-1]
    assert f"{closing['position']}:{closing['root']}" == taken.out.strip()
    assert f"root {closing['root']}" in offline.out


def test_a_changed_export_line_is_found_offline(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    first, *_ = three_certifications(steps)
    out = workdir / "export.jsonl"
    export(capsys, monkeypatch, database_url, out)
    lines = out.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"150"', b'"15"')
    out.write_bytes(b"".join(lines))

    offline = run_certd(capsys, monkeypatch, None, "verify", "--export", str(out))

    assert offline.code == 1
    assert f"certification {first} version 3 at position 4" in offline.out


def test_an_export_cut_short_is_found_offline(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    out = workdir / "export.jsonl"
    export(capsys, monkeypatch, database_url, out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-2]))

    offline = run_certd(capsys, monkeypatch, None, "verify", "--export", str(out))

    assert offline.code == 1
    assert "cut short" in offline.out


def test_an_export_since_a_position_continues_the_root_of_the_whole_store(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    whole, tail = workdir / "whole.jsonl", workdir / "tail.jsonl"
    export(capsys, monkeypatch, database_url, whole)
    export(capsys, monkeypatch, database_url, tail, "--since", "6")
    at_six, closing = (root_at(whole, 6), root_at(whole, 13))

    offline = run_certd(
        capsys,
        monkeypatch,
        None,
        "verify",
        "--export",
        str(tail),
        *("--checkpoint", f"6:{at_six}", "--checkpoint", f"13:{closing}"),
    )

    assert offline.code == 0, offline.out + offline.err
    assert "2 published checkpoints matched" in offline.out
    tail_lines = [json.loads(line) for line in tail.read_text().splitlines()]
    assert tail_lines[0]["kind"] == "start"
    assert (tail_lines[0]["position"], tail_lines[0]["root"]) == (6, at_six)
    assert [line["position"] for line in tail_lines[1:-1]] == list(range(7, 14))
    assert tail_lines[-1]["root"] == closing


def root_at(export: Path, position: int) -> str:
    """The root an export's line states after the event at ``position``."""
    for line in export.read_text().splitlines():
        document = json.loads(line)
        if document["kind"] == "event" and document["position"] == position:
            return str(document["root"])
    raise AssertionError(f"{export} has no event at position {position}")


def test_each_event_line_states_the_root_after_it(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    whole = workdir / "whole.jsonl"
    export(capsys, monkeypatch, database_url, whole)
    starts = {}
    for since in (1, 7, 12):
        part = workdir / f"since-{since}.jsonl"
        export(capsys, monkeypatch, database_url, part, "--since", str(since))
        starts[since] = json.loads(part.read_text().splitlines()[0])["root"]

    assert starts == {since: root_at(whole, since) for since in (1, 7, 12)}
    assert len(set(starts.values())) == 3


def test_a_checkpoint_before_an_exports_start_is_named_as_not_checked(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    tail = workdir / "tail.jsonl"
    export(capsys, monkeypatch, database_url, tail, "--since", "6")
    bogus = f"1:{'ab' * 32}"

    offline = run_certd(
        capsys,
        monkeypatch,
        None,
        "verify",
        "--export",
        str(tail),
        "--checkpoint",
        bogus,
    )

    assert offline.code == 2
    assert "0 published checkpoints matched" in offline.out
    assert f"1 published checkpoints come before the start of {tail}" in offline.err
    assert bogus in offline.err


def test_an_earlier_whole_export_checks_a_tail_only_from_its_start(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    whole, tail = workdir / "whole.jsonl", workdir / "tail.jsonl"
    export(capsys, monkeypatch, database_url, whole)
    export(capsys, monkeypatch, database_url, tail, "--since", "6")

    offline = run_certd(
        capsys,
        monkeypatch,
        None,
        "verify",
        "--export",
        str(tail),
        "--checkpoint",
        str(whole),
    )

    assert offline.code == 2
    # Its start (position 0) holds for any history; 6 to 13 are compared.
    assert "9 published checkpoints matched" in offline.out
    assert f"5 published checkpoints come before the start of {tail}" in offline.err
    assert f"(1:{root_at(whole, 1)} to 5:{root_at(whole, 5)})" in offline.err


def test_an_export_from_before_roots_per_line_still_verifies(
    steps: Steps,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    workdir: Path,
) -> None:
    three_certifications(steps)
    out = workdir / "export.jsonl"
    export(capsys, monkeypatch, database_url, out)
    older = re.sub(rb',"root":"[0-9a-f]{64}","event":', b',"event":', out.read_bytes())
    out.write_bytes(older)

    offline = run_certd(capsys, monkeypatch, None, "verify", "--export", str(out))

    assert older.count(b'"root"') == 2, "only the start and closing lines"
    assert offline.code == 0, offline.out
    assert "verified 13 events of 3 certifications" in offline.out
