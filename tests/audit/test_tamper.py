"""``certd verify`` finds each kind of tampering done with SQL on the store's
own table, and names the first certification and position that does not fit."""

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from service.audit import Checkpoint
from tests.audit.cli import Certd, Ran
from tests.audit.history import three_certifications
from tests.audit.tables import StoredEvents
from tests.projections.steps import Steps

Capsys = pytest.CaptureFixture[str]


Verify = Callable[..., Ran]


@pytest.fixture
def verify(certd: Certd) -> Verify:
    return partial(certd, "verify")


def test_an_untouched_store_verifies(steps: Steps, verify: Verify) -> None:
    three_certifications(steps)

    ran = verify()

    assert ran.code == 0, ran.out
    assert "verified 13 events of 3 certifications" in ran.out


def test_a_changed_payload_is_named_by_its_certification_and_position(
    steps: Steps, tables: StoredEvents, verify: Verify
) -> None:
    first, *_ = three_certifications(steps)
    position = tables.positions_of(first)[0]
    state = tables.row(position)[3]
    tables.set_state(position, state.replace(b"First Ltd", b"Frist Ltd"))

    ran = verify()

    assert ran.code == 1
    assert f"certification {first} version 1 at position {position}" in ran.out
    assert "altered" in ran.out


def test_a_deleted_event_is_found_at_the_next_event_of_its_certification(
    steps: Steps, tables: StoredEvents, verify: Verify
) -> None:
    first, *_ = three_certifications(steps)
    positions = tables.positions_of(first)
    tables.delete(positions[2])

    ran = verify()

    assert ran.code == 1
    assert f"certification {first} version 4 at position {positions[3]}" in ran.out
    assert "version 3 is due here" in ran.out


def test_two_swapped_events_are_found_where_the_first_one_stood(
    steps: Steps, tables: StoredEvents, verify: Verify
) -> None:
    first, *_ = three_certifications(steps)
    positions = tables.positions_of(first)
    tables.swap(positions[1], positions[2])

    ran = verify()

    assert ran.code == 1
    assert f"certification {first} version 3 at position {positions[1]}" in ran.out


def test_swapped_contents_of_two_events_are_found(
    steps: Steps, tables: StoredEvents, verify: Verify
) -> None:
    first, *_ = three_certifications(steps)
    one, two = tables.positions_of(first)[3:5]
    state_one, state_two = tables.row(one)[3], tables.row(two)[3]
    tables.set_state(one, state_two)
    tables.set_state(two, state_one)

    ran = verify()

    assert ran.code == 1
    assert f"certification {first} version 4 at position {one}" in ran.out


def test_a_truncated_tail_is_found_against_a_published_checkpoint(
    steps: Steps, tables: StoredEvents, verify: Verify, certd: Certd, workdir: Path
) -> None:
    first, *_ = three_certifications(steps)
    taken = certd("checkpoint", "--json")
    published = workdir / "checkpoint.json"
    published.write_text(taken.out)
    last = tables.last_position()
    tables.delete(last - 1, last)

    without = verify()
    ran = verify("--checkpoint", str(published))
    spelled = verify("--checkpoint", f"{last}:{json.loads(taken.out)['root']}")

    assert without.code == 0, "the chains alone cannot see a cut-off tail"
    assert ran.code == 1
    assert f"position {last}" in ran.out
    assert f"certification {first} version 5" in ran.out
    assert f"it ends at position {last - 2}" in ran.out
    assert spelled.code == 1


def test_a_removed_last_event_is_seen_in_a_range_by_one_checkpoint(
    steps: Steps, tables: StoredEvents, verify: Verify
) -> None:
    _, second, _ = three_certifications(steps)
    checkpoint = verify().out.split("root ")[1].split(";")[0]
    last = tables.last_position()
    tables.delete(tables.positions_of(second)[-1])

    ran = verify("--checkpoint", f"{last}:{checkpoint}")

    assert ran.code == 1
    assert f"position {last}: the events after position 0 up to here" in ran.out
    assert "(--checkpoint EXPORT)" in ran.out


def test_checkpoint_refuses_to_vouch_for_a_tampered_store(
    steps: Steps, tables: StoredEvents, certd: Certd
) -> None:
    first, *_ = three_certifications(steps)
    tables.delete(tables.positions_of(first)[1])

    ran = certd("checkpoint")

    assert ran.code == 1
    assert "no checkpoint" in ran.out


def test_a_checkpoint_is_its_position_and_the_root_there(
    steps: Steps, tables: StoredEvents, certd: Certd
) -> None:
    three_certifications(steps)

    plain = certd("checkpoint")
    as_json = certd("checkpoint", "--json")

    (point,) = Checkpoint.parse(plain.out.strip())
    assert point.position == tables.last_position() == 13
    assert json.loads(as_json.out)["root"] == point.root


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("12:not-hex", "a checkpoint root is 64 lower-case hex digits"),
        ("no-such-file.json", "is neither POSITION:HASH nor a file of checkpoints"),
        (f"0:{'1' * 64}", "the root at position 0, before any event, is 64 zeros"),
    ],
)
def test_an_unreadable_checkpoint_is_refused_before_the_store_is_opened(
    verify: Verify, capsys: Capsys, spec: str, named: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        verify("--checkpoint", spec)

    assert exited.value.code == 2
    assert named in capsys.readouterr().err
