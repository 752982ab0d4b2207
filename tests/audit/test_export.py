"""``certd export`` and ``certd verify --export``: an export is checked with
no store at all, matches the store it came from, and shows a changed line."""

import json
from pathlib import Path

import pytest

from service.audit import Checkpoint
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

    assert offline.code == 0, offline.out
    tail_lines = tail.read_text().splitlines()
    assert json.loads(tail_lines[1])["position"] == 7
    (start,) = Checkpoint.parse(f"6:{json.loads(tail_lines[0])['root']}")
    whole_sixth = whole.read_text().splitlines()[6]
    assert json.loads(whole_sixth)["event"]["h"]  # the sixth event is in both
    assert Checkpoint.parse(str(whole))[-1].root == json.loads(tail_lines[-1])["root"]
    assert start.position == 6
