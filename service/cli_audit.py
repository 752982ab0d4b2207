"""The auditors' verbs of ``certd``: history, state, checkpoint, verify, export.

All of them only read: they open the store read-only and nothing else of the
service (:func:`run_read_only`), so they create, migrate or reset nothing,
and refuse (exit 2) a store that is not there. ``certd verify --export
FILE`` needs nothing but the file: no settings, no store (``offline``), so
an auditor can check an export on a machine of their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from tqdm import tqdm

from api.schemas import HistoryEntry, StatusView
from domain.certification import Certification, day_of
from projections.as_of import NotYetAppliedError
from projections.status_view import StatusRow, evolve
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
from service.audit_store import (
    StoreNotFoundError,
    StoreRows,
    certification_events,
    open_store_rows,
)
from service.settings import Settings
from service.store import DatabaseUrlError

# Exit statuses of ``certd verify`` beyond 0 (all verified).
TAMPERED = 1
BAD_INPUT = 2
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
    history.set_defaults(run=print_history, read_only=True)

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
    state.set_defaults(run=print_state, read_only=True)

    checkpoint = verbs.add_parser(
        "checkpoint",
        help="verify the store and print its checkpoint (position and root) to publish",
    )
    checkpoint.add_argument("--json", action="store_true")
    checkpoint.set_defaults(run=print_checkpoint, read_only=True)

    verify = verbs.add_parser(
        "verify",
        help="recompute every hash of the stored history (or of an export) "
        "and compare it with published checkpoints; exit 1 if anything was "
        "altered, removed or reordered, 2 if a checkpoint could not be read "
        "or checked, 3 if older events carry no hash",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=published_checkpoints,
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
    verify.set_defaults(run=verify_stored, read_only=True)

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
    export.set_defaults(run=export_stored, read_only=True)


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


def run_read_only(settings: Settings, args: argparse.Namespace) -> int:
    """Run an auditor's verb on the store opened read-only; exit 2, having
    created nothing, when there is no store to read."""
    try:
        rows = open_store_rows(settings.database_url)
    except (DatabaseUrlError, StoreNotFoundError) as error:
        print(f"certd: {error}", file=sys.stderr)
        return BAD_INPUT
    try:
        return int(args.run(rows, settings, args))
    finally:
        rows.close()


# Reading the history.


def print_history(rows: StoreRows, settings: Settings, args: argparse.Namespace) -> int:
    try:
        events = certification_events(rows, args.certification_id)
    except CertificationNotFoundError as error:
        print(f"certd: {error}", file=sys.stderr)
        return 1
    entries = [HistoryEntry.of(event) for _, event in events]
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


def print_state(rows: StoreRows, settings: Settings, args: argparse.Namespace) -> int:
    try:
        events = certification_events(rows, args.certification_id)
        row = _state_as_of(events, args.certification_id, args.as_of, settings)
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


def _state_as_of(
    events: list[tuple[int, Certification.Event]],
    certification_id: UUID,
    as_of: datetime,
    settings: Settings,
) -> StatusRow:
    """The status row replayed through the view's own ``evolve`` from the
    events up to ``as_of``, inclusive: no view table is read."""
    row: StatusRow | None = None
    for position, event in events:
        if event.timestamp > as_of:
            break
        row = evolve(row, event, position, settings.reevaluation_lead_days)
    if row is None:
        raise NotYetAppliedError(certification_id, as_of)
    return row


# Tamper evidence.


# TODO: keep each checkpoint taken in a table of the store and start the next
# from the latest that still matches, so taking one reads only what came
# since; today every checkpoint reads the whole history (10 to 15 s per
# million events on PostgreSQL, see bench/README.md).
def print_checkpoint(
    rows: StoreRows, settings: Settings, args: argparse.Namespace
) -> int:
    """Verify everything first: a checkpoint of a tampered store vouches for
    nothing and must not be published."""
    try:
        verifier = _verify_with_progress(rows, [])
    except TamperedError as error:
        print(f"certd: no checkpoint: the store was tampered with: {error}")
        return TAMPERED
    checkpoint = verifier.checkpoint()
    if args.json:
        print(json.dumps(checkpoint.as_dict()))
    else:
        print(checkpoint.spelled())
    return 0


def verify_stored(rows: StoreRows, settings: Settings, args: argparse.Namespace) -> int:
    try:
        verifier = _verify_with_progress(rows, _flat(args.checkpoint))
    except TamperedError as error:
        print(f"TAMPERED: {error}")
        return TAMPERED
    return _report(verifier, "the store")


def verify_exported(args: argparse.Namespace) -> int:
    """Check an export with no settings and no store."""
    try:
        with (
            args.export.open("rb") as lines,
            tqdm(unit="line", desc="verifying", file=sys.stderr) as bar,
        ):
            verifier = verify_export(lines, _flat(args.checkpoint), bar.update)
    except OSError as error:
        print(f"certd: {error}", file=sys.stderr)
        return BAD_INPUT
    except (TamperedError, ExportFormatError) as error:
        print(f"TAMPERED: {error}")
        return TAMPERED
    return _report(verifier, str(args.export))


def export_stored(rows: StoreRows, settings: Settings, args: argparse.Namespace) -> int:
    try:
        with (
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
        f"to {args.out}; closing checkpoint {closing.spelled()}"
    )
    return 0


def _verify_with_progress(
    rows: StoreRows, checkpoints: list[Checkpoint]
) -> ChainVerifier:
    stop = rows.last_position()
    with tqdm(total=stop, unit="event", desc="verifying", file=sys.stderr) as bar:
        return verify_store(rows, checkpoints, progress=bar.update, stop=stop)


def published_checkpoints(spec: str) -> list[Checkpoint]:
    """Read ``--checkpoint``: refused (exit 2) before the store is opened."""
    try:
        return Checkpoint.parse(spec)
    except (CheckpointFormatError, OSError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _flat(groups: list[list[Checkpoint]]) -> list[Checkpoint]:
    return [point for group in groups for point in group]


def _report(verifier: ChainVerifier, what: str) -> int:
    """Print what was verified; exit 2 if a published checkpoint could not
    be checked, else 3 if older events carry no hash, else 0."""
    here = verifier.checkpoint()
    print(
        f"verified {verifier.events} events of {len(verifier.heads)} "
        f"certifications in {what}, up to position {here.position}; "
        f"root {here.root}; {verifier.matched} published checkpoints matched"
    )
    unverifiable = _report_unsealed(verifier)
    if verifier.unchecked:
        _warn_unchecked(verifier.unchecked, what)
        return BAD_INPUT
    return UNSEALED if unverifiable else 0


def _report_unsealed(verifier: ChainVerifier) -> bool:
    unsealed = verifier.unsealed
    if unsealed.first is None:
        return False
    position, certification_id, version = unsealed.first
    print(
        f"UNVERIFIABLE: {unsealed.count} events were stored before tamper "
        f"evidence and carry no hash, the first is certification "
        f"{certification_id} version {version} at position {position}; only a "
        "checkpoint published since vouches for them"
    )
    return True


def _warn_unchecked(unchecked: list[Checkpoint], what: str) -> None:
    first, last = unchecked[0], unchecked[-1]
    named = (
        first.spelled() if first is last else f"{first.spelled()} to {last.spelled()}"
    )
    print(
        f"certd: NOT CHECKED: {len(unchecked)} published checkpoints come "
        f"before the start of {what} and could not be compared ({named}); "
        "check them against the store, or an export that starts before them",
        file=sys.stderr,
    )
