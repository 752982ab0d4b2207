"""Whether the store, the status views, the event topic and the answers the
clients got all tell the same story.

The store is the truth. Each successful answer must name an event the store
holds (the certification, the kind of event, the version); the views must say
what each aggregate says; the topic must hold each stored event, in order per
certification, and nothing that was never stored.
"""

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest

from service.application import CertificationService
from service.composition import Runtime, build_runtime
from service.settings import Settings
from tests.projections.steps import disagreements, last_positions
from tests.reliability.load import (
    EVENTS_OF,
    ONCE_PER_CERTIFICATION,
    UNCLEAR,
    Answer,
    Tally,
)
from tests.stream.topic import first_copies, read_topic

SCHEDULER_FACTS = {"ReevaluationDue", "CertificationLapsed"}


@dataclass(frozen=True)
class Stored:
    """One stored event, as the notification log holds it."""

    position: int
    cid: str
    version: int
    type: str


@contextmanager
def store_of(database_url: str) -> Iterator[Runtime]:
    """The store, views and runner of the database, for reading only."""
    runtime = build_runtime(Settings(database_url=database_url))
    try:
        yield runtime
    finally:
        runtime.close()


@dataclass(frozen=True)
class Verdict:
    """What the store holds, and everything the answers and views say that
    it does not."""

    stored: dict[int, Stored]
    wrong_answers: list[str]
    unexplained_events: list[str]
    repeated_events: list[str]
    views: dict[UUID, dict[str, object]]

    @property
    def problems(self) -> list[object]:
        views: list[object] = [self.views] if self.views else []
        return [
            *self.wrong_answers,
            *self.unexplained_events,
            *self.repeated_events,
            *views,
        ]


def judge(database_url: str, tally: Tally) -> Verdict:
    """Hold the answers of a load and the views against the store."""
    with store_of(database_url) as runtime:
        stored = stored_events(runtime.service)
        views = views_disagreements(runtime)
    return Verdict(
        stored,
        wrong_answers(tally, stored),
        unanswered_events(tally, stored),
        repeated_events(stored),
        views,
    )


def stored_events(service: CertificationService) -> dict[int, Stored]:
    """Every stored event, by position."""
    last = service.recorder.max_notification_id() or 0
    notifications = service.recorder.select_notifications(start=1, limit=last)
    return {
        note.id: Stored(
            note.id,
            str(note.originator_id),
            note.originator_version,
            note.topic.rsplit(".", 1)[-1],
        )
        for note in notifications
    }


def wrong_answers(tally: Tally, stored: dict[int, Stored]) -> list[str]:
    """Each successful answer that does not match what the store holds."""
    wrong = []
    versions = Counter(event.cid for event in stored.values())
    claimed: Counter[int] = Counter()
    for answer in tally.answers:
        if not answer.succeeded:
            continue
        if answer.position is None:  # a repeat: the event was stored before
            if versions[str(answer.cid)] < (answer.version or 0):
                wrong.append(f"repeat beyond the store: {answer}")
            continue
        claimed[answer.position] += 1
        event = stored.get(answer.position)
        if event is None:
            wrong.append(f"no stored event at the answered position: {answer}")
        elif (event.cid, event.version) != (answer.cid, answer.version) or (
            event.type not in EVENTS_OF[answer.command]
        ):
            wrong.append(f"the store holds {event} for {answer}")
    wrong += [f"position {p} answered {n} times" for p, n in claimed.items() if n > 1]
    return wrong


def unanswered_events(tally: Tally, stored: dict[int, Stored]) -> list[str]:
    """Each certification with more stored commands than answers can explain.

    A stored command is explained by the 2xx that answered its position, or
    else by one unclear answer (the connection broke, 503) of its
    certification, or one answered as a repeat (a start or payment whose first
    try the store kept while its reply was lost). A 409 explains nothing: it
    says the command stored nothing. One stored beyond every answer was a lost
    update or a phantom.
    """
    answered = {
        a.position for a in tally.answers if a.succeeded and a.position is not None
    }
    unclear = Counter(a.cid for a in tally.answers if _leaves_open(a))
    unexplained = Counter(
        event.cid
        for position, event in stored.items()
        if position not in answered and event.type not in SCHEDULER_FACTS
    )
    return [
        f"{cid}: {count} stored events nobody was answered for, "
        f"{unclear[cid]} unclear answers"
        for cid, count in unexplained.items()
        if count > unclear[cid]
    ]


def _leaves_open(answer: Answer) -> bool:
    """Whether a command's answer may stand for it stored at no answered
    position: an unclear answer, or a repeat."""
    is_repeat = answer.succeeded and answer.position is None
    return answer.command in EVENTS_OF and (answer.status in UNCLEAR or is_repeat)


def repeated_events(stored: dict[int, Stored]) -> list[str]:
    """Each event the load makes once per certification, stored more often."""
    kinds = Counter(
        (event.cid, event.type)
        for event in stored.values()
        if event.type in ONCE_PER_CERTIFICATION
    )
    return [
        f"{cid}: {kind} stored {count} times"
        for (cid, kind), count in kinds.items()
        if count > 1
    ]


def views_disagreements(runtime: Runtime) -> dict[UUID, dict[str, object]]:
    """Each certification whose view row says something its aggregate does not."""
    positions = last_positions(runtime.service)
    rows = runtime.views.load(positions)
    now = runtime.service.clock.now()
    found: dict[UUID, dict[str, object]] = {}
    for cid, position in positions.items():
        row = rows.get(cid)
        if row is None:
            found[cid] = {"row": "missing"}
            continue
        differences = disagreements(row, runtime.service.get(cid), position, now)
        if differences:
            found[cid] = dict(differences)
    return found


def topic_disagreements(
    stored: dict[int, Stored], bootstrap: str, topic: str
) -> list[str]:
    """What the topic lacks, holds beyond the store, or holds out of order."""
    received = read_topic(bootstrap, topic, timeout=60)
    on_topic = {message.identity for message in received}
    in_store = {(event.cid, event.version) for event in stored.values()}
    problems = [f"missing from the topic: {e}" for e in sorted(in_store - on_topic)]
    problems += [f"never stored: {e}" for e in sorted(on_topic - in_store)]
    for cid, versions in first_copies(received).items():
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{cid} out of order on the topic: {versions}")
    return problems


def wait_until_caught_up(base_url: str, timeout: float = 60.0) -> dict[str, object]:
    """Wait until a server's views and publisher hold the store's last event."""
    deadline = time.monotonic() + timeout
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=5, trust_env=False)
            body = answer.json()
        except (httpx.TransportError, ValueError):
            body = {}
        if _caught_up(body):
            return body
        time.sleep(0.2)
    pytest.fail(f"{base_url} did not catch up within {timeout} s: {body}")


def _caught_up(body: dict[str, object]) -> bool:
    views = body.get("views")
    publisher = body.get("publisher", {"lag": 0})
    return (
        body.get("status") == "ready"
        and isinstance(views, dict)
        and views.get("lag") == 0
        and isinstance(publisher, dict)
        and publisher.get("lag") == 0
    )
