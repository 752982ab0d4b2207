"""Compared with a published export (a checkpoint at each of its events),
``certd verify`` names the first event that differs, by certification,
version and position, even where each certification's chain still holds:
events moved between certifications, a certification's last event removed,
an edit whose hashes were all recomputed."""

import json
from pathlib import Path
from uuid import UUID

from service.ledger import ZERO_HASH, envelope, event_hash, inner_state, stated_hash
from tests.audit.cli import Certd
from tests.audit.history import Published, root_at
from tests.audit.tables import StoredEvents

# Where three_certifications stores them: the second's last event, then the
# first's fourth; the first's third (a payment) lies at 4.
SECOND_LAST, FIRST_FOURTH, FIRST_PAYMENT, LAST = 11, 12, 4, 13


def reseal(tables: StoredEvents, certification_id: UUID) -> None:
    """Recompute every hash of a certification's chain, as someone who can
    write to the store would after changing one of its events."""
    previous = ZERO_HASH
    for position in tables.positions_of(certification_id):
        _, version, topic, stored = tables.row(position)
        state = inner_state(stored)
        h = event_hash(previous, certification_id, version, topic, state)
        tables.set_state(position, envelope(h, previous, state))
        previous = stated_hash(envelope(h, previous, state))


def test_events_of_two_certifications_swapped_are_named_against_an_export(
    published: Published,
    tables: StoredEvents,
    certd: Certd,
    workdir: Path,
) -> None:
    (first, second, _), reference = published
    tables.swap(SECOND_LAST, FIRST_FOURTH)
    now = workdir / "now.jsonl"

    alone = certd("verify")
    against_export = certd("verify", "--checkpoint", str(reference))
    exported = certd("export", "--out", str(now))
    checked = certd.offline(
        "verify", "--export", str(now), "--checkpoint", str(reference)
    )

    # Each chain is still in order: only the published roots see the move.
    assert alone.code == 0, alone.out
    assert exported.code == 0, exported.out
    for ran in (against_export, checked):
        assert ran.code == 1, ran.out
        assert f"certification {first} version 4 at position {SECOND_LAST}" in ran.out
        assert f"has certification {second} version 3 here" in ran.out


def test_a_removed_last_event_of_a_certification_is_named_by_its_position(
    published: Published, tables: StoredEvents, certd: Certd
) -> None:
    (_, second, _), reference = published
    tables.delete(SECOND_LAST)

    alone = certd("verify")
    ran = certd("verify", "--checkpoint", str(reference))

    assert alone.code == 0, "no later event of its certification points at it"
    assert ran.code == 1
    assert f"certification {second} version 3 at position {SECOND_LAST}" in ran.out
    assert "that the store no longer has: it was removed or moved" in ran.out


def test_an_edit_with_every_hash_recomputed_is_caught_only_by_a_publication(
    published: Published, tables: StoredEvents, certd: Certd
) -> None:
    (first, _, _), reference = published
    stored = tables.row(FIRST_PAYMENT)[3]
    tables.set_state(FIRST_PAYMENT, stored.replace(b'"150"', b'"15"'))
    reseal(tables, first)

    alone = certd("verify")
    one_checkpoint = certd(
        "verify", "--checkpoint", f"{LAST}:{root_at(reference, LAST)}"
    )
    against_export = certd("verify", "--checkpoint", str(reference))

    assert alone.code == 0, alone.out
    assert "verified 13 events" in alone.out
    assert one_checkpoint.code == 1
    assert (
        f"position {LAST}: the events after position 0 up to here" in one_checkpoint.out
    )
    assert against_export.code == 1
    assert f"certification {first} version 3 at position {FIRST_PAYMENT}" in (
        against_export.out
    )
    assert "altered and its hashes recomputed" in against_export.out


def test_checkpoints_published_over_time_narrow_a_change_down_to_between_them(
    published: Published,
    tables: StoredEvents,
    certd: Certd,
    workdir: Path,
) -> None:
    (_, second, _), reference = published
    checkpoints = workdir / "checkpoints.jsonl"
    checkpoints.write_text(
        "".join(
            json.dumps({"position": at, "root": root_at(reference, at)}) + "\n"
            for at in (9, LAST)
        )
    )
    stored = tables.row(SECOND_LAST)[3]
    tables.set_state(SECOND_LAST, stored.replace(b'"150"', b'"15"'))
    reseal(tables, second)

    ran = certd("verify", "--checkpoint", str(checkpoints))

    assert ran.code == 1
    assert f"position {LAST}: the events after position 9 up to here" in ran.out


def test_a_line_removed_from_an_export_is_found_at_the_next_by_its_root(
    published: Published, certd: Certd
) -> None:
    (first, _, _), reference = published
    lines = reference.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if f'"position":{SECOND_LAST},'.encode() not in line]
    reference.write_bytes(b"".join(kept))

    ran = certd.offline("verify", "--export", str(reference))

    assert len(kept) == len(lines) - 1
    assert ran.code == 1
    assert f"certification {first} version 4 at position {FIRST_FOURTH}" in ran.out
    assert "lines before it were changed, removed or reordered" in ran.out
