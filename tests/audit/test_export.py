"""``certd export`` and ``certd verify --export``: an export is checked with
no store at all, matches the store it came from, and shows a changed line."""

import json
import re
from pathlib import Path

from tests.audit.cli import Certd, Ran
from tests.audit.history import Published, export, root_at
from tests.audit.tables import StoredEvents


def verify_offline(certd: Certd, out: Path, *checkpoints: str) -> Ran:
    """``certd verify --export OUT``, each of ``checkpoints`` published."""
    published = [arg for spec in checkpoints for arg in ("--checkpoint", spec)]
    return certd.offline("verify", "--export", str(out), *published)


def tail_since_six(certd: Certd, workdir: Path) -> Path:
    tail = workdir / "tail.jsonl"
    export(certd, tail, "--since", "6")
    return tail


def test_an_export_verified_offline_matches_the_store(
    published: Published, tables: StoredEvents, certd: Certd
) -> None:
    taken = certd("checkpoint")

    offline = verify_offline(certd, published.export)

    assert offline.code == 0, offline.out
    lines = [json.loads(line) for line in published.export.read_text().splitlines()]
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
    published: Published, certd: Certd
) -> None:
    first, *_ = published.certifications
    lines = published.export.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"150"', b'"15"')
    published.export.write_bytes(b"".join(lines))

    offline = verify_offline(certd, published.export)

    assert offline.code == 1
    assert f"certification {first} version 3 at position 4" in offline.out


def test_an_export_cut_short_is_found_offline(
    published: Published, certd: Certd
) -> None:
    lines = published.export.read_bytes().splitlines(keepends=True)
    published.export.write_bytes(b"".join(lines[:-2]))

    offline = verify_offline(certd, published.export)

    assert offline.code == 1
    assert "cut short" in offline.out


def test_an_export_since_a_position_continues_the_root_of_the_whole_store(
    published: Published, certd: Certd, workdir: Path
) -> None:
    tail = tail_since_six(certd, workdir)
    at_six, closing = root_at(published.export, 6), root_at(published.export, 13)

    offline = verify_offline(certd, tail, f"6:{at_six}", f"13:{closing}")

    assert offline.code == 0, offline.out + offline.err
    assert "2 published checkpoints matched" in offline.out
    tail_lines = [json.loads(line) for line in tail.read_text().splitlines()]
    assert tail_lines[0]["kind"] == "start"
    assert (tail_lines[0]["position"], tail_lines[0]["root"]) == (6, at_six)
    assert [line["position"] for line in tail_lines[1:-1]] == list(range(7, 14))
    assert tail_lines[-1]["root"] == closing


def test_each_event_line_states_the_root_after_it(
    published: Published, certd: Certd, workdir: Path
) -> None:
    starts = {}
    for since in (1, 7, 12):
        part = workdir / f"since-{since}.jsonl"
        export(certd, part, "--since", str(since))
        starts[since] = json.loads(part.read_text().splitlines()[0])["root"]

    whole = published.export
    assert starts == {since: root_at(whole, since) for since in (1, 7, 12)}
    assert len(set(starts.values())) == 3


def test_a_checkpoint_before_an_exports_start_is_named_as_not_checked(
    published: Published, certd: Certd, workdir: Path
) -> None:
    tail = tail_since_six(certd, workdir)
    bogus = f"1:{'ab' * 32}"

    offline = verify_offline(certd, tail, bogus)

    assert offline.code == 2
    assert "0 published checkpoints matched" in offline.out
    assert f"1 published checkpoints come before the start of {tail}" in offline.err
    assert bogus in offline.err


def test_an_earlier_whole_export_checks_a_tail_only_from_its_start(
    published: Published, certd: Certd, workdir: Path
) -> None:
    whole = published.export
    tail = tail_since_six(certd, workdir)

    offline = verify_offline(certd, tail, str(whole))

    assert offline.code == 2
    # Its start (position 0) holds for any history; 6 to 13 are compared.
    assert "9 published checkpoints matched" in offline.out
    assert f"5 published checkpoints come before the start of {tail}" in offline.err
    assert f"(1:{root_at(whole, 1)} to 5:{root_at(whole, 5)})" in offline.err


def test_an_export_from_before_roots_per_line_still_verifies(
    published: Published, certd: Certd
) -> None:
    out = published.export
    older = re.sub(rb',"root":"[0-9a-f]{64}","event":', b',"event":', out.read_bytes())
    out.write_bytes(older)

    offline = verify_offline(certd, out)

    assert older.count(b'"root"') == 2, "only the start and closing lines"
    assert offline.code == 0, offline.out
    assert "verified 13 events of 3 certifications" in offline.out
