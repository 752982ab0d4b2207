"""``certd tail`` prints the event topic one readable line an event, and
filters by type."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from projections.publisher import EventPublisher
from service.composition import Runtime
from tests.projections.steps import Steps
from tests.stream.topic import CERTD, publish_all, read_topic

pytestmark = pytest.mark.timeout(60)

LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT[\d:.]+Z)  (?P<type>certification\.\w+)  "
    r"(?P<subject>[0-9a-f-]{36})  seq (?P<seq>\d+)  pos (?P<pos>\d+)  (?P<data>.*)$"
)


def tail(publisher: EventPublisher, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
    env |= {
        "CERTD_KAFKA_BOOTSTRAP": publisher.bootstrap,
        "CERTD_KAFKA_TOPIC": publisher.topic,
    }
    return subprocess.run(
        [str(CERTD), "tail", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def published(steps: Steps, publisher: EventPublisher) -> int:
    """Two certified certifications (five events each), on the topic."""
    steps.certify("Tail One Ltd")
    steps.certify("Tail Two Ltd")
    return publish_all(publisher)


def test_tail_from_the_beginning_prints_a_readable_line_per_event(
    runtime: Runtime, publisher: EventPublisher, published: int, tmp_path: Path
) -> None:
    result = tail(publisher, "--from-beginning", "--max", "7", "--timeout", "10")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    received = {
        (message.envelope["subject"], message.envelope["sequence"]): message.envelope
        for message in read_topic(publisher.bootstrap, publisher.topic)
    }
    for match in parsed:
        assert match is not None
        envelope = received[(match["subject"], int(match["seq"]))]
        assert match["type"] == envelope["type"]
        assert int(match["pos"]) == envelope["position"]
        assert match["time"] == envelope["time"]
        role, name = (
            envelope["data"]["actor"]["role"],
            envelope["data"]["actor"]["name"],
        )
        assert match["data"].startswith(f"by {role}/{name}: ")


def test_tail_shows_what_a_payment_was_and_never_the_contact_details(
    publisher: EventPublisher, published: int
) -> None:
    result = tail(publisher, "--from-beginning", "--timeout", "3")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == published
    started = [line for line in lines if "ApplicationStarted" in line]
    assert started
    assert all("contact={…}" in line for line in started)
    assert not any("ann@acme.example" in line for line in lines)
    fee = next(line for line in lines if "SubmissionFeePaid" in line)
    assert "amount_usd=150" in fee
    assert "reference=pay-" in fee


@pytest.mark.parametrize(
    "asked", ["SubmissionFeePaid", "certification.SubmissionFeePaid"]
)
def test_tail_by_type_prints_only_events_of_that_type(
    publisher: EventPublisher, published: int, asked: str
) -> None:
    result = tail(publisher, "--from-beginning", "--type", asked, "--timeout", "3")

    assert result.returncode == 0, result.stderr
    types = [LINE.match(line)["type"] for line in result.stdout.splitlines()]  # type: ignore[index]
    assert types == ["certification.SubmissionFeePaid"] * 2


def test_tail_without_from_beginning_prints_only_events_to_come(
    publisher: EventPublisher, published: int
) -> None:
    result = tail(publisher, "--timeout", "2")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_tail_of_a_topic_that_does_not_exist_says_so(
    publisher: EventPublisher,
) -> None:
    publisher.topic = "certification.events.nowhere"

    result = tail(publisher, "--from-beginning", "--timeout", "2")

    assert result.returncode == 1
    assert "topic certification.events.nowhere does not exist" in result.stderr


def test_tail_without_from_beginning_prints_the_events_that_come_next(
    steps: Steps, publisher: EventPublisher, published: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
    env |= {
        "CERTD_KAFKA_BOOTSTRAP": publisher.bootstrap,
        "CERTD_KAFKA_TOPIC": publisher.topic,
    }
    following = subprocess.Popen(
        [str(CERTD), "tail", "--max", "1", "--timeout", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    newcomers: list[str] = []
    try:
        # The tail may not be listening yet: keep applying until it prints.
        while following.poll() is None and len(newcomers) < 20:
            newcomers.append(str(steps.start(f"Newcomer {len(newcomers)} Ltd")))
            publish_all(publisher)
            time.sleep(0.5)
        out, err = following.communicate(timeout=20)
    finally:
        following.kill()

    assert following.returncode == 0, err
    (line,) = out.splitlines()
    match = LINE.match(line)
    assert match is not None
    assert match["type"] == "certification.ApplicationStarted"
    assert match["subject"] in newcomers
