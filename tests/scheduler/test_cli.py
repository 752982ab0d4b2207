"""``certd schedule --once --now TIMESTAMP``: one pass with a pretend clock,
run as operations staff would run it, in a process of its own."""

from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.clock import FixedClock
from service.composition import build_runtime
from service.settings import Settings
from tests.projections.steps import START, Steps, certd

REHEARSAL = "2027-01-05T06:00:00Z"
LAST_HOUR_OF_GRACE = "2027-04-01T01:00:00+02:00"


def certified_store(url: str, count: int) -> list[UUID]:
    """Certify ``count`` certifications on START (valid until 2027-03-01), and
    leave one more in review."""
    runtime = build_runtime(Settings(database_url=url), FixedClock(START))
    try:
        steps = Steps(runtime.service)
        ids = [steps.certify(f"Rehearsal {n} Ltd") for n in range(count)]
        steps.in_review("Still In Review Ltd")
    finally:
        runtime.close()
    return ids


def printed_facts(stdout: str) -> list[tuple[str, UUID]]:
    facts = []
    for line in stdout.splitlines()[:-1]:
        fact, cert_id = line.split()
        facts.append((fact, UUID(cert_id)))
    return facts


def test_a_rehearsal_prints_each_fact_it_raised_then_a_summary(
    database_url: str,
) -> None:
    ids = certified_store(database_url, 3)

    first = certd(database_url, "schedule", "--once", "--now", REHEARSAL)
    again = certd(database_url, "schedule", "--once", "--now", REHEARSAL)
    later = certd(database_url, "schedule", "--once", "--now", LAST_HOUR_OF_GRACE)

    assert first.returncode == 0, first.stderr
    assert sorted(printed_facts(first.stdout)) == sorted(
        ("ReevaluationDue", cert_id) for cert_id in ids
    )
    assert first.stdout.splitlines()[-1].startswith("pass for 2027-01-05: raised 3,")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "pass for 2027-01-05: raised 0, skipped 0 already raised elsewhere"
    ]
    # 01:00 at UTC+2 is still 31 March in UTC, the renewals' last day.
    assert later.stdout.splitlines() == [
        "pass for 2027-03-31: raised 0, skipped 0 already raised elsewhere"
    ]


def test_the_pretend_time_is_the_time_of_the_facts_raised(sqlite_url: str) -> None:
    (cert_id,) = certified_store(sqlite_url, 1)

    certd(sqlite_url, "schedule", "--once", "--now", REHEARSAL)
    lapse = certd(sqlite_url, "schedule", "--once", "--now", "2027-04-01T00:00Z")

    assert printed_facts(lapse.stdout) == [("CertificationLapsed", cert_id)]
    runtime = build_runtime(Settings(database_url=sqlite_url), FixedClock(START))
    try:
        history = runtime.service.history(cert_id)
    finally:
        runtime.close()
    assert [(type(event).__name__, event.timestamp) for event in history[-2:]] == [
        ("ReevaluationDue", datetime(2027, 1, 5, 6, tzinfo=UTC)),
        ("CertificationLapsed", datetime(2027, 4, 1, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("--once", "--now", "2027-01-05T06:00:00"), "has no timezone"),
        (("--once", "--now", "next tuesday"), "is not an ISO 8601 time"),
        (("--now", REHEARSAL), "add --once"),
    ],
    ids=["naive-time", "not-a-time", "now-without-once"],
)
def test_a_pretend_time_that_cannot_be_used_stops_with_exit_2_and_names_it(
    sqlite_url: str, arguments: tuple[str, ...], problem: str
) -> None:
    certified_store(sqlite_url, 1)

    refused = certd(sqlite_url, "schedule", *arguments)

    assert refused.returncode == 2
    assert problem in refused.stderr
    assert refused.stdout == ""
