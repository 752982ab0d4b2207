"""Rebuild the status views from the first event, compare, and swap them in.

A rebuild goes into a table of its own, up to the position the live view had
when it began; only rows the live view had not moved past are compared. A
swap copies the rebuilt rows over the live ones and sets the live position
back to the rebuild's, in one transaction: the live runner then re-projects
whatever came after, so nothing is lost while the service keeps running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.application import Application
from pydantic_core import to_jsonable_python

from projections.runner import ProjectionRunner
from projections.status_view import StatusRow
from projections.views import LIVE_TABLE, StatusViews

REBUILD_TABLE = f"{LIVE_TABLE}_rebuild"

Progress = Callable[[int], object]


@dataclass(frozen=True)
class Difference:
    certification_id: UUID
    field: str
    live: object
    rebuilt: object

    def __str__(self) -> str:
        # Shown as JSON values ('revoked', '2027-03-01'), not Python reprs.
        live = to_jsonable_python(self.live)
        rebuilt = to_jsonable_python(self.rebuilt)
        return (
            f"{self.certification_id} {self.field}: live {live!r}, rebuilt {rebuilt!r}"
        )


@dataclass(frozen=True)
class ReplayReport:
    position: int
    rows: int
    differences: list[Difference]
    moved_on: int


def rebuild(
    store: Application[UUID],
    live: StatusViews,
    lead_days: int,
    progress: Progress | None = None,
) -> tuple[StatusViews, int]:
    """Project every event up to the live view's position into a fresh table."""
    target = live.position()
    rebuilt = StatusViews(live.db, REBUILD_TABLE)
    rebuilt.drop()
    rebuilt.create()
    runner = ProjectionRunner(store, rebuilt, lead_days, batch_size=2_000)
    while rebuilt.position() < target:
        done = runner.run_once(stop=target)
        if progress is not None:
            progress(done)
        if not done:
            break
    return rebuilt, target


def compare(live: StatusViews, rebuilt: StatusViews, position: int) -> ReplayReport:
    """List every difference between the views, up to ``position``."""
    live_rows = {row.id: row for row in live.all_rows()}
    rebuilt_rows = {row.id: row for row in rebuilt.all_rows()}
    differences: list[Difference] = []
    moved_on = 0
    for certification_id in sorted(live_rows.keys() | rebuilt_rows.keys(), key=str):
        live_row = live_rows.get(certification_id)
        if live_row is not None and live_row.position > position:
            moved_on += 1
            continue
        differences.extend(
            _differences(certification_id, live_row, rebuilt_rows.get(certification_id))
        )
    differences.extend(
        Difference(certification_id, f"column {name}", stored, expected)
        for certification_id, name, stored, expected in live.column_drift()
        if live_rows[certification_id].position <= position
    )
    return ReplayReport(position, len(rebuilt_rows), differences, moved_on)


def swap(live: StatusViews, rebuilt: StatusViews) -> None:
    """Put the rebuilt rows in place of the live ones, and drop the rebuild."""
    live.replace_with(rebuilt)
    rebuilt.drop()


def _differences(
    certification_id: UUID, live: StatusRow | None, rebuilt: StatusRow | None
) -> list[Difference]:
    if live is None or rebuilt is None:
        return [
            Difference(
                certification_id,
                "row",
                "present" if live else "missing",
                "present" if rebuilt else "missing",
            )
        ]
    live_fields, rebuilt_fields = live.model_dump(), rebuilt.model_dump()
    return [
        Difference(certification_id, name, value, rebuilt_fields[name])
        for name, value in live_fields.items()
        if value != rebuilt_fields[name]
    ]
