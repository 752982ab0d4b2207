"""Auditors' checks: verify the hash chains, take checkpoints, export, re-verify.

Each sealed event's hash covers its content and the hash of its
certification's previous event (``service.ledger``): that proves content,
order and presence within a certification, all but its last events. The
store as a whole is summarised by a running root over every event in store
order, ``root = SHA-256(root ‖ position ‖ h)`` from 32 zero bytes: a
checkpoint is a position and the root there. A published checkpoint pins
everything up to its position, so a removed last event of a certification or
a cut-off tail shows when the store is compared with it. Positions may have
gaps (PostgreSQL skips the ids of rolled-back inserts); the root covers the
positions that exist, and presence is proven by the chains and checkpoints,
never by counting ids.

Nothing here parses an event's JSON: the hashes are sliced out of the stored
bytes, so a check runs at nearly the speed the store can be read.
"""

from __future__ import annotations

import hashlib
import json
import re
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


@dataclass(frozen=True)
class Checkpoint:
    """The running root of the store's events up to ``position``, inclusive.

    ``last`` names the certification and version of the event at
    ``position``, so a cut-off tail can be named even when it is gone.
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

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Checkpoint:
        try:
            position = int(document["position"])
            root = str(document["root"])
        except (KeyError, TypeError, ValueError):
            msg = "a checkpoint needs an integer 'position' and a hex 'root'"
            raise CheckpointFormatError(msg) from None
        last = None
        if "certification_id" in document and "version" in document:
            last = (str(document["certification_id"]), int(document["version"]))
        return cls(position, _checked_root(root), document.get("events"), last)

    @classmethod
    def parse(cls, text: str) -> list[Checkpoint]:
        """Read ``POSITION:HASH``, or a file of JSON checkpoints (one a line).

        The file may be what ``certd checkpoint --json`` printed, several of
        them, or an export: its ``checkpoint`` lines are taken.
        """
        position, colon, root = text.partition(":")
        if colon and position.isdigit():
            return [cls(int(position), _checked_root(root))]
        path = Path(text)
        if not path.is_file():
            msg = f"{text!r} is neither POSITION:HASH nor a file of checkpoints"
            raise CheckpointFormatError(msg)
        found = []
        with path.open("rb") as lines:
            for line in lines:
                if b'"root"' not in line:
                    continue
                try:
                    document = json.loads(line)
                except ValueError:
                    msg = f"{text} holds a line that is not JSON"
                    raise CheckpointFormatError(msg) from None
                if document.get("kind", "checkpoint") == "checkpoint":
                    found.append(cls.from_dict(document))
        if not found:
            msg = f"{text} holds no checkpoint"
            raise CheckpointFormatError(msg)
        return found


_HEX_ROOT = re.compile(r"[0-9a-f]{64}")


def _checked_root(root: str) -> str:
    if not _HEX_ROOT.fullmatch(root):
        msg = f"a checkpoint root is 64 lower-case hex digits, got {root!r}"
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


@dataclass
class ChainVerifier:
    """Checks events fed in store order; raises at the first that does not fit.

    ``partial`` is for an export that starts after position 0: the first
    event it shows of a certification is taken as that chain's start.
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
    _pending: list[Checkpoint] = field(default_factory=list)
    _matched: int = 0

    def __post_init__(self) -> None:
        self._pending = sorted(self.checkpoints, key=lambda point: point.position)

    def start_at(self, checkpoint: Checkpoint) -> None:
        """Continue a root from a checkpoint (the opening line of an export)."""
        self.position = checkpoint.position
        self.root = bytes.fromhex(checkpoint.root)
        self._matched = checkpoint.position
        while self._pending and self._pending[0].position <= checkpoint.position:
            earlier = self._pending.pop(0)
            # Those before the start cannot be checked from here on.
            if earlier.position == checkpoint.position:
                self._compare(earlier)

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
            self._missing_checkpointed_event(self._pending[0])
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
        if self._pending and self._pending[0].position == position:
            self._compare(self._pending.pop(0))

    def feed_page(self, page: Sequence[EventRow]) -> None:
        """Check a page of the store's events, in store order.

        The same checks as :meth:`feed`, inlined for the usual event (sealed,
        next in its chain, before the next checkpoint), because verification
        must keep pace with reading the store. Any other event goes through
        :meth:`feed`, which says what is wrong with it.
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
                    continue
            self.root, self.position, self.events = root, last_position, events
            self.feed(position, UUID(bytes=cid), version, topic, state)
            root, last_position, events = self.root, self.position, self.events
            next_checkpoint = self._next_checkpoint()
        self.root, self.position, self.events = root, last_position, events
        if page:
            self.last = (page[-1][1], page[-1][2])

    def _next_checkpoint(self) -> int | float:
        return self._pending[0].position if self._pending else float("inf")

    def finish(self) -> Checkpoint:
        """Check the checkpoints past the last event; return the checkpoint here."""
        for checkpoint in self._pending:
            if checkpoint.position == self.position:
                self._compare(checkpoint)
            else:
                self._missing_checkpointed_event(checkpoint)
        self._pending = []
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

    def _compare(self, checkpoint: Checkpoint) -> None:
        if self.root.hex() == checkpoint.root:
            self._matched = checkpoint.position
            return
        reason = (
            f"the events after position {self._matched} up to here do not match "
            f"the checkpoint {checkpoint.position}:{checkpoint.root}: an event "
            "was removed, added or reordered in that range"
        )
        raise TamperedError(reason, checkpoint.position)

    def _missing_checkpointed_event(self, checkpoint: Checkpoint) -> None:
        named = ""
        if checkpoint.last is not None:
            named = (
                f" (certification {checkpoint.last[0]} version {checkpoint.last[1]})"
            )
        reason = (
            f"the checkpoint {checkpoint.position}:{checkpoint.root} covers an "
            f"event here{named} that the history no longer has; it ends at "
            f"position {self.position}: its tail was removed"
        )
        raise TamperedError(reason, checkpoint.position)


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
    checked again with no store (:func:`verify_export`). Returns the
    closing checkpoint and the number of events written.
    """
    stop = rows.last_position()
    verifier = verify_store(rows, stop=since, progress=progress)
    out.write(_line({"kind": "start", **verifier.checkpoint().as_dict()}))
    before = verifier.events
    for page in rows.pages(after=verifier.position, stop=stop):
        verifier.feed_page(page)
        out.writelines(_event_line(*row) for row in page)
        if progress is not None:
            progress(len(page))
    closing = verifier.finish()
    out.write(_line({"kind": "checkpoint", **closing.as_dict()}))
    return closing, verifier.events - before


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _event_line(
    position: int, certification_id: bytes, version: int, topic: str, state: bytes
) -> bytes:
    key = b',"event":' if is_sealed(state) else b',"unsealed":'
    header = (
        f'{{"kind":"event","position":{position},"certification_id":'
        f'"{UUID(bytes=certification_id)}","version":{version},'
        f'"topic":{json.dumps(topic)}'
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
        elif line.startswith(b'{"kind":"event"'):
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
    line = line.rstrip(b"\n")
    cut = line.find(b',"event":')
    key_length = len(b',"event":')
    if cut < 0:
        cut = line.find(b',"unsealed":')
        key_length = len(b',"unsealed":')
    if cut < 0 or not line.endswith(b"}"):
        msg = f"line {number} is not an event line of an export"
        raise ExportFormatError(msg)
    header = _json(number, line[:cut] + b"}")
    try:
        verifier.feed(
            int(header["position"]),
            UUID(header["certification_id"]),
            int(header["version"]),
            str(header["topic"]),
            line[cut + key_length : -1],
        )
    except (KeyError, ValueError) as error:
        msg = f"line {number} is not an event line of an export ({error})"
        raise ExportFormatError(msg) from None


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
