"""Auditors' checks: verify the hash chains, take checkpoints, export, re-verify.

Each sealed event's hash covers its content and the hash of its
certification's previous event (``service.ledger``): that proves content,
order and presence within a certification, all but its last events. The
store as a whole is summarised by a running root over every event in store
order, ``root = SHA-256(root ‖ position ‖ h)`` from 32 zero bytes: a chain
over positions, so the root at every position is a checkpoint, and each
depends on every event before it. A published checkpoint pins everything up
to its position, so a removed last event of a certification, events moved
between certifications or a cut-off tail show when the store is compared
with it. An export states the root after each of its events, so a published
export is a checkpoint at every position: compared with it, the first event
that differs is named exactly. Positions may have gaps (PostgreSQL skips the
ids of rolled-back inserts); the root covers the positions that exist, and
presence is proven by the chains and checkpoints, never by counting ids.

Nothing here parses an event's JSON: the hashes are sliced out of the stored
bytes, so a check runs at nearly the speed the store can be read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol
from uuid import UUID

from service.ledger import (
    EVENT_START,
    HASH_HEX,
    TOPIC_FRAMES,
    ZERO_HASH,
    event_hash,
    is_sealed,
    stated_hash,
    stated_previous,
    topic_frame,
)

ZERO_ROOT = bytes(32)
# One stored event: position, certification id (16 bytes), version, topic,
# stored bytes.
EventRow = tuple[int, bytes, int, str, bytes]
# Where the envelope's parts lie (see ``service.ledger``), for the fast path.
_H_SLICE = slice(6, 6 + HASH_HEX)
_P_MARK = slice(_H_SLICE.stop, _H_SLICE.stop + 7)
_P_SLICE = slice(_P_MARK.stop, _P_MARK.stop + HASH_HEX)
_E_MARK = slice(_P_SLICE.stop, EVENT_START)
_FRAMES = TOPIC_FRAMES
PAGE_SIZE = 5_000
Progress = Callable[[int], object]


class TamperedError(Exception):
    """The stored history does not match its hashes or a checkpoint."""

    def __init__(
        self,
        reason: str,
        position: int,
        certification_id: UUID | None = None,
        version: int | None = None,
    ) -> None:
        self.reason = reason
        self.position = position
        self.certification_id = certification_id
        self.version = version
        where = f"position {position}"
        if certification_id is not None:
            where = f"certification {certification_id} version {version} at {where}"
        super().__init__(f"{where}: {reason}")


class CheckpointFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The running root of the store's events up to ``position``, inclusive.

    ``last`` names the certification and version of the event at
    ``position``, so a cut-off tail or a removed event can be named even
    when it is gone.
    """

    position: int
    root: str
    events: int | None = None
    last: tuple[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"position": self.position, "root": self.root}
        if self.events is not None:
            document["events"] = self.events
        if self.last is not None:
            document["certification_id"], document["version"] = self.last
        return document

    def spelled(self) -> str:
        return f"{self.position}:{self.root}"

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Checkpoint:
        try:
            position = int(document["position"])
            root = str(document["root"])
        except (KeyError, TypeError, ValueError):
            msg = "a checkpoint needs an integer 'position' and a hex 'root'"
            raise CheckpointFormatError(msg) from None
        return cls(
            _checked_position(position),
            _checked_root(position, root),
            document.get("events"),
            _named_event(document),
        )

    # TODO: a file of checkpoints is held in memory whole (some 360 bytes a
    # line, so 360 MB for an export of a million events used as one);
    # reading it alongside the events, both being in position order, would
    # hold one line at a time.
    @classmethod
    def parse(cls, text: str) -> list[Checkpoint]:
        """Read ``POSITION:HASH``, or a file of JSON checkpoints (one a line).

        The file may be what ``certd checkpoint --json`` printed, several of
        them, or an export: its ``start`` and ``checkpoint`` lines and the
        root each event line states are taken, a checkpoint at every
        position it holds.
        """
        position, colon, root = text.partition(":")
        if colon and position.isdigit():
            return [cls(int(position), _checked_root(int(position), root))]
        path = Path(text)
        if not path.is_file():
            msg = f"{text!r} is neither POSITION:HASH nor a file of checkpoints"
            raise CheckpointFormatError(msg)
        with path.open("rb") as lines:
            found = [
                cls.from_dict(document)
                for document in _checkpoint_documents(text, lines)
            ]
        if not found:
            msg = f"{text} holds no checkpoint"
            raise CheckpointFormatError(msg)
        return found


_CHECKPOINT_KINDS = {"start", "event", "checkpoint"}


def _checkpoint_documents(
    name: str, lines: Iterable[bytes]
) -> Iterator[dict[str, Any]]:
    """The JSON objects of a file that state a root: checkpoints, or the
    lines of an export (an event line's header only)."""
    for number, line in enumerate(lines, start=1):
        if b'"root"' not in line:
            continue
        try:
            document = (
                _event_header(number, line.rstrip(b"\n"))[0]
                if line.startswith(_EVENT_LINE)
                else _json(number, line)
            )
        except ExportFormatError as error:
            msg = f"{name}: {error}"
            raise CheckpointFormatError(msg) from None
        kind = document.get("kind", "checkpoint")
        if kind in _CHECKPOINT_KINDS and "root" in document:
            yield document


def _named_event(document: dict[str, Any]) -> tuple[str, int] | None:
    """The certification and version a checkpoint names, if it names one."""
    if "certification_id" not in document or "version" not in document:
        return None
    try:
        return str(UUID(str(document["certification_id"]))), int(document["version"])
    except (TypeError, ValueError):
        msg = (
            "a checkpoint names its event by a UUID 'certification_id' and a 'version'"
        )
        raise CheckpointFormatError(msg) from None


def _checked_position(position: int) -> int:
    if position < 0:
        msg = f"a checkpoint's position is 0 or more, got {position}"
        raise CheckpointFormatError(msg)
    return position


_HEX_ROOT = re.compile(r"[0-9a-f]{64}")


def _checked_root(position: int, root: str) -> str:
    if not _HEX_ROOT.fullmatch(root):
        msg = f"a checkpoint root is 64 lower-case hex digits, got {root!r}"
        raise CheckpointFormatError(msg)
    if position == 0 and root != ZERO_ROOT.hex():
        msg = "the root at position 0, before any event, is 64 zeros"
        raise CheckpointFormatError(msg)
    return root


@dataclass
class Unsealed:
    """Events stored before tamper evidence: they carry no hashes."""

    count: int = 0
    first: tuple[int, UUID, int] | None = None

    def note(self, position: int, certification_id: UUID, version: int) -> None:
        self.count += 1
        if self.first is None:
            self.first = (position, certification_id, version)


# TODO: the store's own events link positions only through the root, which
# a published checkpoint pins: events moved between certifications (each
# chain still in order) show only against one. Sealing each event with the
# hash of the event before it in store order too, computed under the
# recorder's insert lock, would let verify find such a move on its own.
@dataclass
class ChainVerifier:
    """Checks events fed in store order; raises at the first that does not fit.

    ``partial`` is for an export that starts after position 0: the first
    event it shows of a certification is taken as that chain's start.
    ``matched`` counts the published checkpoints compared and found equal;
    ``unchecked`` holds those before the start, which cannot be compared.
    """

    checkpoints: Sequence[Checkpoint] = ()
    partial: bool = False
    root: bytes = ZERO_ROOT
    position: int = 0
    events: int = 0
    unsealed: Unsealed = field(default_factory=Unsealed)
    # certification id (16 bytes) -> (version, hash, sealed)
    heads: dict[bytes, tuple[int, bytes, bool]] = field(default_factory=dict)
    last: tuple[bytes, int] | None = None
    # The position of the first sealed event: none may be bare after it.
    sealed_since: int = 0
    matched: int = 0
    unchecked: list[Checkpoint] = field(default_factory=list)
    _pending: deque[Checkpoint] = field(default_factory=deque)
    # The last position where the root is known to be the published one.
    _agreed_at: int | None = 0
    _start: int = 0

    def __post_init__(self) -> None:
        distinct = {(point.position, point.root): point for point in self.checkpoints}
        self._pending = deque(sorted(distinct.values(), key=_by_position))
        self._settle_up_to(self.position)

    def start_at(self, checkpoint: Checkpoint) -> None:
        """Continue a root from a checkpoint (the opening line of an export).

        Published checkpoints before it cannot be checked from here on: they
        go to ``unchecked``.
        """
        self.position = checkpoint.position
        self.root = bytes.fromhex(checkpoint.root)
        self._start = checkpoint.position
        self._agreed_at = 0 if checkpoint.position == 0 else None
        self._settle_up_to(checkpoint.position)

    def _settle_up_to(self, position: int) -> None:
        pending = self._pending
        while pending and pending[0].position < position:
            self.unchecked.append(pending.popleft())
        while pending and pending[0].position == position:
            self._compare(pending.popleft())

    def feed(
        self,
        position: int,
        certification_id: UUID,
        version: int,
        topic: str,
        state: bytes,
    ) -> None:
        """Check one event; raise :class:`TamperedError` if it does not fit."""
        if position <= self.position:
            reason = f"comes after position {self.position}: out of store order"
            raise TamperedError(reason, position, certification_id, version)
        if self._pending and self._pending[0].position < position:
            self._missing_checkpointed_event(self._pending[0], at_end=False)
        previous_position = self.position
        key = certification_id.bytes
        head = self.heads.get(key)
        self._check_order(head, position, certification_id, version)
        sealed = is_sealed(state)
        if sealed:
            h = stated_hash(state)
            self._check_seal(head, position, certification_id, version, topic, state)
            self.sealed_since = self.sealed_since or position
        else:
            self._check_may_be_unsealed(position, certification_id, version)
            previous = head[1] if head else ZERO_HASH
            h = event_hash(previous, certification_id, version, topic, state)
            self.unsealed.note(position, certification_id, version)
        self.heads[key] = (version, h, sealed)
        self.root = hashlib.sha256(self.root + position.to_bytes(8, "big") + h).digest()
        self.position = position
        self.events += 1
        self.last = (key, version)
        while self._pending and self._pending[0].position == position:
            self._compare(self._pending.popleft(), previous_position)

    def feed_page(
        self, page: Sequence[EventRow], roots: list[bytes] | None = None
    ) -> None:
        """Check a page of the store's events, in store order.

        The same checks as :meth:`feed`, inlined for the usual event (sealed,
        next in its chain, before the next checkpoint), because verification
        must keep pace with reading the store. Any other event goes through
        :meth:`feed`, which says what is wrong with it. ``roots``, when
        given, gets the root after each event.
        """
        heads, get, sha256, frames = self.heads, self.heads.get, hashlib.sha256, _FRAMES
        root, last_position, events = self.root, self.position, self.events
        next_checkpoint = self._next_checkpoint()
        for position, cid, version, topic, state in page:
            head = get(cid)
            p = state[_P_SLICE]
            if (
                last_position < position < next_checkpoint
                and state[:6] == b'{"h":"'
                and state[_P_MARK] == b'","p":"'
                and state[_E_MARK] == b'","e":'
                and state[-1:] == b"}"
                and (
                    (version == 1 and p == ZERO_HASH)
                    if head is None
                    else (version == head[0] + 1 and p == head[1])
                )
            ):
                h = state[_H_SLICE]
                frame = frames.get(topic) or topic_frame(topic)
                body = state[EVENT_START:-1]
                hashed = p + cid + version.to_bytes(8, "big") + frame + body
                if sha256(hashed).hexdigest().encode() == h:
                    heads[cid] = (version, h, True)
                    root = sha256(root + position.to_bytes(8, "big") + h).digest()
                    last_position = position
                    events += 1
                    if not self.sealed_since:
                        self.sealed_since = position
                    if roots is not None:
                        roots.append(root)
                    continue
            self.root, self.position, self.events = root, last_position, events
            self.feed(position, UUID(bytes=cid), version, topic, state)
            root, last_position, events = self.root, self.position, self.events
            if roots is not None:
                roots.append(root)
            next_checkpoint = self._next_checkpoint()
        self.root, self.position, self.events = root, last_position, events
        if page:
            self.last = (page[-1][1], page[-1][2])

    def _next_checkpoint(self) -> int | float:
        return self._pending[0].position if self._pending else float("inf")

    def finish(self) -> Checkpoint:
        """Check the checkpoints past the last event; return the checkpoint here.

        Every one still pending lies past the last event: its events are gone.
        """
        if self._pending:
            self._missing_checkpointed_event(self._pending[0], at_end=True)
        return self.checkpoint()

    def checkpoint(self) -> Checkpoint:
        last = None
        if self.last is not None:
            last = (str(UUID(bytes=self.last[0])), self.last[1])
        return Checkpoint(self.position, self.root.hex(), self.events, last)

    def _check_order(
        self,
        head: tuple[int, bytes, bool] | None,
        position: int,
        certification_id: UUID,
        version: int,
    ) -> None:
        if head is None:
            if version == 1 or self.partial:
                return
            reason = (
                "is the first event of its certification: versions 1 to "
                f"{version - 1} are missing"
            )
            raise TamperedError(reason, position, certification_id, version)
        expected = head[0] + 1
        if version == expected:
            return
        if version < expected:
            reason = f"comes after version {head[0]}: events out of order"
        else:
            reason = f"version {expected} is due here: it is missing or out of order"
        raise TamperedError(reason, position, certification_id, version)

    # TODO: a ``certd seal`` migration that wraps the older, bare events in
    # envelopes once (chained as they stand) would let verify vouch for a
    # whole upgraded store; until then they count as unverifiable (exit 3).
    def _check_may_be_unsealed(
        self, position: int, certification_id: UUID, version: int
    ) -> None:
        """Bare events come only before the first sealed one: older history.

        Once the service seals, it seals every event; a bare one after that
        had its envelope stripped, perhaps to hide a changed content.
        """
        if not self.sealed_since:
            return
        reason = (
            f"carries no hash although events are sealed since position "
            f"{self.sealed_since}: its envelope was removed"
        )
        raise TamperedError(reason, position, certification_id, version)

    def _check_seal(
        self,
        head: tuple[int, bytes, bool] | None,
        position: int,
        certification_id: UUID,
        version: int,
        topic: str,
        state: bytes,
    ) -> None:
        h, p = stated_hash(state), stated_previous(state)
        if event_hash(p, certification_id, version, topic, state[EVENT_START:-1]) != h:
            reason = "its content does not match its hash: the event was altered"
            raise TamperedError(reason, position, certification_id, version)
        if head is None:
            if p == ZERO_HASH or self.partial:
                return
        elif p == head[1] or (p == ZERO_HASH and not head[2]):
            return
        reason = (
            "its previous hash is not the hash of the certification's previous "
            "event: an event before it was altered, removed or replaced"
        )
        raise TamperedError(reason, position, certification_id, version)

    def _compare(self, checkpoint: Checkpoint, previous: int | None = None) -> None:
        """Compare the root here with a published checkpoint at this position.

        ``previous`` is the position of the event before this one: when the
        root agreed there, this event is the first that differs.
        """
        if self.root.hex() == checkpoint.root:
            self._agreed_at = checkpoint.position
            self.matched += 1
            return
        if previous is not None and previous == self._agreed_at and self.last:
            raise self._first_difference(checkpoint, self.last)
        reason = (
            f"{self._since_agreed()} do not match the published "
            f"checkpoint {checkpoint.spelled()}: one of them was altered (its "
            "hashes recomputed), removed, added or moved; compare with an "
            "export published then (--checkpoint EXPORT), a checkpoint at each "
            "of its events, to name the first"
        )
        raise TamperedError(reason, checkpoint.position)

    def _first_difference(
        self, checkpoint: Checkpoint, last: tuple[bytes, int]
    ) -> TamperedError:
        """This event, the one at the checkpoint, is the first that differs."""
        key, version = last
        here = (str(UUID(bytes=key)), version)
        if checkpoint.last is None:
            what = "the published history differs from this event on"
        elif checkpoint.last == here:
            what = (
                "the published history has this event here with another "
                "content: it was altered and its hashes recomputed"
            )
        else:
            published_id, published_version = checkpoint.last
            what = (
                f"the published history has certification {published_id} "
                f"version {published_version} here: events were removed, "
                "added or moved"
            )
        reason = (
            f"the first event that does not match the published checkpoint "
            f"{checkpoint.spelled()}: {what}"
        )
        return TamperedError(reason, self.position, UUID(bytes=key), version)

    def _since_agreed(self) -> str:
        """The events that may differ: those since the root last agreed."""
        if self._agreed_at is not None:
            return f"the events after position {self._agreed_at} up to here"
        if self.position == self._start:
            return "the events up to the export's start"
        return (
            f"the events up to here (from before the export's start at {self._start})"
        )

    def _missing_checkpointed_event(self, checkpoint: Checkpoint, at_end: bool) -> None:
        """The store has no event at a published checkpoint's position."""
        if at_end:
            outcome = f"it ends at position {self.position}: its tail was removed"
        else:
            outcome = "it was removed or moved"
        if self._agreed_at != self.position:
            outcome += f" (or {self._since_agreed()} differ)"
        reason = (
            f"the published checkpoint {checkpoint.spelled()} covers an event "
            f"here that the store no longer has: {outcome}"
        )
        if checkpoint.last is None:
            raise TamperedError(reason, checkpoint.position)
        certification_id, version = checkpoint.last
        raise TamperedError(
            reason, checkpoint.position, UUID(certification_id), version
        )


def _by_position(checkpoint: Checkpoint) -> int:
    return checkpoint.position


# The store.


class EventRows(Protocol):
    """The store's events as rows, a page at a time (``service.audit_store``)."""

    def last_position(self) -> int: ...

    def pages(
        self, after: int = 0, stop: int | None = None
    ) -> Iterator[Sequence[EventRow]]: ...


def verify_store(
    rows: EventRows,
    checkpoints: Sequence[Checkpoint] = (),
    progress: Progress | None = None,
    stop: int | None = None,
) -> ChainVerifier:
    """Check every stored event up to ``stop`` (default: the last one now)."""
    if stop is None:
        stop = rows.last_position()
    verifier = ChainVerifier(checkpoints)
    for page in rows.pages(stop=stop):
        verifier.feed_page(page)
        if progress is not None:
            progress(len(page))
    verifier.finish()
    return verifier


def export_store(
    rows: EventRows,
    out: IO[bytes],
    since: int = 0,
    progress: Progress | None = None,
) -> tuple[Checkpoint, int]:
    """Write every event after ``since`` as JSON Lines, with its hashes.

    The first line is the checkpoint at ``since`` (found by checking every
    event up to there), the last the checkpoint at the export's end. Each
    event line holds the stored envelope byte for byte, so it can be
    checked again with no store (:func:`verify_export`), and the root after
    it, so a published export is a checkpoint at each of its events.
    Returns the closing checkpoint and the number of events written.
    """
    stop = rows.last_position()
    verifier = verify_store(rows, stop=since, progress=progress)
    out.write(_line({"kind": "start", **verifier.checkpoint().as_dict()}))
    before = verifier.events
    for page in rows.pages(after=verifier.position, stop=stop):
        roots: list[bytes] = []
        verifier.feed_page(page, roots)
        out.writelines(map(_event_line, page, roots))
        if progress is not None:
            progress(len(page))
    closing = verifier.finish()
    out.write(_line({"kind": "checkpoint", **closing.as_dict()}))
    return closing, verifier.events - before


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


_EVENT_LINE = b'{"kind":"event"'
_SEALED_KEY = b',"event":'
_UNSEALED_KEY = b',"unsealed":'


def _event_line(row: EventRow, root: bytes) -> bytes:
    position, certification_id, version, topic, state = row
    key = _SEALED_KEY if is_sealed(state) else _UNSEALED_KEY
    header = (
        f'{{"kind":"event","position":{position},"certification_id":'
        f'"{UUID(bytes=certification_id)}","version":{version},'
        f'"topic":{json.dumps(topic)},"root":"{root.hex()}"'
    )
    return header.encode() + key + state + b"}\n"


# An export, offline.


class ExportFormatError(ValueError):
    pass


def verify_export(
    lines: Iterable[bytes],
    checkpoints: Sequence[Checkpoint] = (),
    progress: Progress | None = None,
) -> ChainVerifier:
    """Check an export with nothing but its lines (and published checkpoints).

    Raises :class:`TamperedError` at the first line that does not fit, and
    :class:`ExportFormatError` if the export is not whole.
    """
    verifier = ChainVerifier(checkpoints)
    closing: Checkpoint | None = None
    for number, line in enumerate(lines, start=1):
        if closing is not None:
            msg = f"line {number} follows the closing checkpoint"
            raise ExportFormatError(msg)
        if number == 1:
            _open(verifier, line)
        elif line.startswith(_EVENT_LINE):
            _feed_line(verifier, number, line)
        else:
            closing = Checkpoint.from_dict(_json(number, line))
        if progress is not None:
            progress(1)
    if closing is None:
        msg = "the export has no closing checkpoint line: it was cut short"
        raise ExportFormatError(msg)
    verifier.finish()
    here = verifier.checkpoint()
    if (here.position, here.root) != (closing.position, closing.root):
        reason = (
            f"the export's events give the root {here.root} but its closing "
            f"line states {closing.position}:{closing.root}: lines were removed "
            "or reordered"
        )
        raise TamperedError(reason, here.position)
    return verifier


def _open(verifier: ChainVerifier, line: bytes) -> None:
    document = _json(1, line)
    if document.get("kind") != "start":
        msg = "line 1 is not the export's opening checkpoint"
        raise ExportFormatError(msg)
    start = Checkpoint.from_dict(document)
    verifier.start_at(start)
    verifier.partial = start.position > 0


def _feed_line(verifier: ChainVerifier, number: int, line: bytes) -> None:
    header, state = _event_header(number, line.rstrip(b"\n"))
    try:
        position = int(header["position"])
        certification_id = UUID(header["certification_id"])
        version = int(header["version"])
        topic = str(header["topic"])
    except (KeyError, ValueError) as error:
        msg = f"line {number} is not an event line of an export ({error})"
        raise ExportFormatError(msg) from None
    verifier.feed(position, certification_id, version, topic, state)
    stated = header.get("root")
    if stated is not None and stated != verifier.root.hex():
        reason = (
            f"the line states the root {stated} after this event, but the "
            f"export's events up to here give {verifier.root.hex()}: lines "
            "before it were changed, removed or reordered"
        )
        raise TamperedError(reason, position, certification_id, version)


def _event_header(number: int, line: bytes) -> tuple[dict[str, Any], bytes]:
    """An event line's header (everything but the event) and the stored
    event's bytes; an export from before roots per line has no ``root``."""
    found = [(line.find(key), key) for key in (_SEALED_KEY, _UNSEALED_KEY)]
    cuts = [(cut, key) for cut, key in found if cut >= 0]
    if not cuts or not line.endswith(b"}"):
        msg = f"line {number} is not an event line of an export"
        raise ExportFormatError(msg)
    cut, key = min(cuts)
    return _json(number, line[:cut] + b"}"), line[cut + len(key) : -1]


def _json(number: int, line: bytes) -> dict[str, Any]:
    try:
        document = json.loads(line)
    except ValueError:
        msg = f"line {number} is not JSON"
        raise ExportFormatError(msg) from None
    if not isinstance(document, dict):
        msg = f"line {number} is not a JSON object"
        raise ExportFormatError(msg)
    return document
