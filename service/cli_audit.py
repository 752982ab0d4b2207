"""The auditors' verbs of ``certd``: history, state, checkpoint, verify, export.

All of them only read. ``certd verify --export FILE`` needs nothing but the
file: no settings, no store (``offline``), so an auditor can check an export
on a machine of their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tqdm import tqdm

from api.schemas import HistoryEntry, StatusView
from domain.certification import day_of
from projections.as_of import state_as_of
from service.application import CertificationNotFoundError
from service.audit import (
    ChainVerifier,
    Checkpoint,
    CheckpointFormatError,
    ExportFormatError,
    TamperedError,
    export_store,
    verify_export,
    verify_store,
)
from service.audit_store import StoreRows

if TYPE_CHECKING:
    from service.composition import Runtime

# Exit statuses of ``certd verify`` beyond 0 (all verified).
TAMPERED = 1
UNSEALED = 3


def add_audit_verbs(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
    aware_instant: Callable[[str], datetime],
) -> None:
    """Add ``history``, ``state``, ``checkpoint``, ``verify`` and ``export``."""
    history = verbs.add_parser(
        "history", help="print every event of a certification, oldest first"
    )
    history.add_argument("certification_id", metavar="ID", type=UUID)
    history.add_argument("--json", action="store_true", help="as the HTTP API does")
    history.set_defaults(run=print_history)

    state = verbs.add_parser(
        "state", help="print a certification's status view as it stood at an instant"
    )
    state.add_argument("certification_id", metavar="ID", type=UUID)
    state.add_argument(
        "--as-of",
        required=True,
        type=aware_instant,
        help="ISO 8601 with a timezone; events up to it, inclusive, count",
    )
    state.add_argument("--json", action="store_true", help="as the HTTP API does")
    state.set_defaults(run=print_state)

    checkpoint = verbs.add_parser(
        "checkpoint",
        help="verify the store and print its checkpoint (position and root) to publish",
    )
    checkpoint.add_argument("--json", action="store_true")
    checkpoint.set_defaults(run=print_checkpoint)

    verify = verbs.add_parser(
        "verify",
        help="recompute every hash of the stored history (or of an export) "
        "and compare it with published checkpoints; exit 1 if anything was "
        "altered, removed or reordered, 3 if older events carry no hash",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="POSITION:HASH or FILE",
        help="a published checkpoint, or a file of them; may be repeated",
    )
    verify.add_argument(
        "--export",
        type=Path,
        action=_Offline,
        metavar="FILE",
        help="check this export instead of the store, with no database",
    )
    verify.set_defaults(run=verify_stored)

    export = verbs.add_parser(
        "export",
        help="write every event with its hashes as JSON Lines, closed by a "
        "checkpoint line",
    )
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    export.add_argument(
        "--since",
        type=int,
        default=0,
        metavar="POSITION",
        help="only the events after this position (the first line is the "
        "checkpoint there)",
    )
    export.set_defaults(run=export_stored)


class _Offline(argparse.Action):
    """``--export FILE`` makes ``verify`` run on the file alone."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.offline = True
        namespace.run = verify_exported


# Reading the history.


def print_history(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        events = runtime.service.history(args.certification_id)
    except CertificationNotFoundError as error:
        print(f"certd: {error}", file=sys.stderr)
        return 1
    entries = [HistoryEntry.of(event) for event in events]
    if args.json:
        print(json.dumps([entry.model_dump(mode="json") for entry in entries]))
        return 0
    for entry in entries:
        print(_history_block(entry))
    return 0


def _history_block(entry: HistoryEntry) -> str:
    actor = f"{entry.actor.get('role', '?')}/{entry.actor.get('name', '?')}"
    lines = [f"{entry.version:>4}  {entry.occurred_at.isoformat()}  {entry.type}"]
    lines.append(f"      actor: {actor}")
    data = entry.model_dump(mode="json")["data"]
    for name, value in data.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        if len(shown) > 100:
            shown = shown[:97] + "..."
        lines.append(f"      {name}: {shown}")
    return "\n".join(lines)


def print_state(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        row = state_as_of(
            runtime.service,
            runtime.views.db,
            args.certification_id,
            args.as_of,
            runtime.settings.reevaluation_lead_days,
        )
    except CertificationNotFoundError as error:
        print(f"certd: {error}", file=sys.stderr)
        return 1
    view = StatusView.of(row, day_of(args.as_of))
    if args.json:
        print(view.model_dump_json())
        return 0
    for name, value in view.model_dump(mode="json").items():
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        print(f"{name:>20}  {shown}")
    return 0


# Tamper evidence.


# TODO: keep each checkpoint taken in a table of the store and start the next
# from the latest that still matches, so taking one reads only what came
# since; today every checkpoint reads the whole history (10 to 15 s per
# million events on PostgreSQL, see bench/README.md).
def print_checkpoint(runtime: Runtime, args: argparse.Namespace) -> int:
    """Verify everything first: a checkpoint of a tampered store vouches for
    nothing and must not be published."""
    try:
        verifier = _verify_with_progress(runtime, [])
    except TamperedError as error:
        print(f"certd: no checkpoint: the store was tampered with: {error}")
        return TAMPERED
    checkpoint = verifier.checkpoint()
    if args.json:
        print(json.dumps(checkpoint.as_dict()))
    else:
        print(f"{checkpoint.position}:{checkpoint.root}")
    return 0


def verify_stored(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        checkpoints = _checkpoints(args.checkpoint)
        verifier = _verify_with_progress(runtime, checkpoints)
    except CheckpointFormatError as error:
        print(f"certd: {error}", file=sys.stderr)
        return 2
    except TamperedError as error:
        print(f"TAMPERED: {error}")
        return TAMPERED
    return _report(verifier, checkpoints, "the store")


def verify_exported(args: argparse.Namespace) -> int:
    """Check an export with no settings and no store."""
    try:
        checkpoints = _checkpoints(args.checkpoint)
        with (
            args.export.open("rb") as lines,
            tqdm(unit="line", desc="verifying", file=sys.stderr) as bar,
        ):
            verifier = verify_export(lines, checkpoints, progress=bar.update)
    except (CheckpointFormatError, OSError) as error:
        print(f"certd: {error}", file=sys.stderr)
        return 2
    except (TamperedError, ExportFormatError) as error:
        print(f"TAMPERED: {error}")
        return TAMPERED
    return _report(verifier, checkpoints, str(args.export))


def export_stored(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        with (
            _store_rows(runtime) as rows,
            args.out.open("wb") as out,
            tqdm(
                total=rows.last_position(),
                unit="event",
                desc="exporting",
                file=sys.stderr,
            ) as bar,
        ):
            closing, written = export_store(rows, out, args.since, bar.update)
    except TamperedError as error:
        print(f"certd: export stopped: the store was tampered with: {error}")
        return TAMPERED
    print(
        f"exported {written} events "
        f"to {args.out}; closing checkpoint {closing.position}:{closing.root}"
    )
    return 0


def _verify_with_progress(
    runtime: Runtime, checkpoints: list[Checkpoint]
) -> ChainVerifier:
    with _store_rows(runtime) as rows:
        stop = rows.last_position()
        with tqdm(total=stop, unit="event", desc="verifying", file=sys.stderr) as bar:
            return verify_store(rows, checkpoints, progress=bar.update, stop=stop)


@contextmanager
def _store_rows(runtime: Runtime) -> Iterator[StoreRows]:
    table: str = runtime.service.recorder.events_table_name  # type: ignore[attr-defined]
    rows = StoreRows(runtime.settings.database_url, table)
    try:
        yield rows
    finally:
        rows.close()


def _checkpoints(specs: list[str]) -> list[Checkpoint]:
    return [point for spec in specs for point in Checkpoint.parse(spec)]


def _report(verifier: ChainVerifier, checkpoints: list[Checkpoint], what: str) -> int:
    here = verifier.checkpoint()
    print(
        f"verified {verifier.events} events of {len(verifier.heads)} "
        f"certifications in {what}, up to position {here.position}; "
        f"root {here.root}; {len(checkpoints)} published checkpoints matched"
    )
    unsealed = verifier.unsealed
    if unsealed.first is None:
        return 0
    position, certification_id, version = unsealed.first
    print(
        f"UNVERIFIABLE: {unsealed.count} events were stored before tamper "
        f"evidence and carry no hash, the first is certification "
        f"{certification_id} version {version} at position {position}; only a "
        "checkpoint published since vouches for them"
    )
    return UNSEALED
