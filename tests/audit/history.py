"""The history the auditor tests work on, and exports of it."""

import json
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

from tests.audit.cli import Certd
from tests.projections.steps import Steps


class Published(NamedTuple):
    """Three certifications, and an export of them handed to the auditors."""

    certifications: list[UUID]
    export: Path


def three_certifications(steps: Steps) -> list[UUID]:
    """Three certifications of 5, 3 and 5 events, interleaved in the store."""
    first = steps.start("First Ltd")
    second = steps.start("Second Ltd")
    steps.submit(first)
    steps.pay_due(first)
    third = steps.certify("Third Ltd")
    steps.submit(second)
    steps.pay_due(second)
    steps.approve(first)
    steps.pay_due(first)
    return [first, second, third]


def export(certd: Certd, out: Path, *more: str) -> None:
    ran = certd("export", "--out", str(out), *more)
    assert ran.code == 0, ran.out + ran.err


def root_at(export: Path, position: int) -> str:
    """The root an export's line states after the event at ``position``."""
    for line in export.read_text().splitlines():
        document = json.loads(line)
        if document["kind"] == "event" and document["position"] == position:
            return str(document["root"])
    raise AssertionError(f"{export} has no event at position {position}")
