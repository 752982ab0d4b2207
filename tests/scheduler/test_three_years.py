"""Three simulated years of several certifications.

Every part of the service reads one clock, which the test moves a day (or a
week) at a time. The scheduler passes at 06:00; applicants, reviewers and
billing act at noon. After every pass the status view says what the
aggregates say, and the facts raised so far are exactly the expected ones.
"""

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from uuid import UUID

import pytest

from domain.certification import Certification, Status
from domain.clock import FixedClock
from service.composition import Runtime, build_runtime
from service.settings import Settings
from tests.factories import submission_body
from tests.projections.steps import Steps
from tests.scheduler.checks import at, stored_facts, view_against_aggregates

PASS_HOUR = 6
OFFICE_HOUR = 12
FIRST_DAY = date(2026, 3, 1)
LAST_DAY = date(2029, 3, 1)

# What people do, by day: (day, certification, step).
OFFICE = [
    ("2026-03-01", "renewed", "certify"),
    ("2026-03-01", "revoked", "certify"),
    ("2026-03-15", "lapsed", "certify"),
    ("2026-04-01", "suspended_then_lapsed", "certify"),
    ("2026-05-01", "suspended_then_renewed", "certify"),
    ("2026-06-01", "late_payer", "certify"),
    # The first renewal states a higher revenue and answers a question.
    ("2027-01-07", "renewed", "resubmit_with_new_revenue"),
    ("2027-01-10", "renewed", "request_info"),
    ("2027-01-14", "renewed", "provide_info"),
    ("2027-01-15", "revoked", "revoke"),
    ("2027-01-20", "renewed", "approve"),
    ("2027-01-21", "renewed", "pay_due"),
    ("2027-02-15", "suspended_then_lapsed", "suspend"),
    ("2027-03-10", "suspended_then_renewed", "suspend"),
    ("2027-04-10", "suspended_then_renewed", "reinstate"),
    ("2027-04-12", "suspended_then_renewed", "resubmit"),
    ("2027-04-20", "suspended_then_renewed", "approve"),
    ("2027-04-20", "late_payer", "resubmit"),
    ("2027-04-25", "suspended_then_renewed", "pay_due"),
    ("2027-05-25", "late_payer", "approve"),
    # Reinstated a month after its renewal's deadline (2027-05-01).
    ("2027-06-01", "suspended_then_lapsed", "reinstate"),
    # After its valid_until (2027-06-01), within the grace days.
    ("2027-06-10", "late_payer", "pay_due"),
    ("2028-01-08", "renewed", "resubmit"),
    ("2028-01-20", "renewed", "approve"),
    ("2028-02-20", "renewed", "pay_due"),
]

# What the scheduler raises, each on the first pass on or after its day:
# a ReevaluationDue 60 days before valid_until, a lapse the day after
# valid_until + 30 days, or after the reinstatement that re-opened it.
FACTS = [
    ("2026-12-31", "renewed", "ReevaluationDue"),
    ("2026-12-31", "revoked", "ReevaluationDue"),
    ("2027-01-14", "lapsed", "ReevaluationDue"),
    ("2027-01-31", "suspended_then_lapsed", "ReevaluationDue"),
    ("2027-03-02", "suspended_then_renewed", "ReevaluationDue"),
    ("2027-04-02", "late_payer", "ReevaluationDue"),
    ("2027-04-15", "lapsed", "CertificationLapsed"),
    ("2027-06-02", "suspended_then_lapsed", "CertificationLapsed"),
    ("2028-01-01", "renewed", "ReevaluationDue"),
    ("2028-03-02", "suspended_then_renewed", "ReevaluationDue"),
    ("2028-04-02", "late_payer", "ReevaluationDue"),
    ("2028-06-01", "suspended_then_renewed", "CertificationLapsed"),
    ("2028-07-02", "late_payer", "CertificationLapsed"),
    ("2028-12-31", "renewed", "ReevaluationDue"),
]

# The days (both ends included) on which a pass finds each one certified.
CERTIFIED_DAYS = {
    # Never a day without, re-evaluation included.
    "renewed": [("2026-03-02", "2029-03-01")],
    "revoked": [("2026-03-02", "2027-01-15")],
    "lapsed": [("2026-03-16", "2027-03-15")],
    "suspended_then_lapsed": [("2026-04-02", "2027-02-15")],
    "suspended_then_renewed": [
        ("2026-05-02", "2027-03-10"),
        ("2027-04-11", "2028-05-01"),
    ],
    # Expired from 2027-06-02 until its late annual fee on 2027-06-10 (noon).
    "late_payer": [("2026-06-02", "2027-06-01"), ("2027-06-11", "2028-06-01")],
}

FINAL_STATUS = {
    "renewed": Status.REEVALUATION_DUE,
    "revoked": Status.REVOKED,
    "lapsed": Status.LAPSED,
    "suspended_then_lapsed": Status.LAPSED,
    "suspended_then_renewed": Status.LAPSED,
    "late_payer": Status.LAPSED,
}


def day(text: str) -> date:
    return date.fromisoformat(text)


def certified_on(name: str, today: date) -> bool:
    return any(day(first) <= today <= day(last) for first, last in CERTIFIED_DAYS[name])


def first_pass_on_or_after(today: date, every_days: int) -> date:
    waited = -((today - FIRST_DAY).days // -every_days)
    return FIRST_DAY + timedelta(days=waited * every_days)


def act(steps: Steps, ids: dict[str, UUID], name: str, step: str) -> None:
    if step == "certify":
        ids[name] = steps.certify(f"{name.replace('_', ' ').title()} Ltd")
    elif step == "resubmit_with_new_revenue":
        steps.submit(ids[name], submission_body(annual_revenue_usd=12_000_000))
    elif step == "resubmit":
        steps.submit(ids[name])
    else:
        getattr(steps, step)(ids[name])


@pytest.fixture(
    params=[("sqlite", 1), ("sqlite", 7), ("postgres", 7)],
    ids=["sqlite-daily", "sqlite-weekly", "postgres-weekly"],
)
def cadence(request: pytest.FixtureRequest) -> Iterator[tuple[Runtime, int]]:
    """The runtime on a fresh store, and the days between two passes."""
    store, every_days = request.param
    url: str = request.getfixturevalue(f"{store}_url")
    runtime = build_runtime(Settings(database_url=url), FixedClock(at(FIRST_DAY, 0)))
    yield runtime, every_days
    runtime.close()


def test_three_years_of_passes_raise_each_fact_once_on_its_day(
    cadence: tuple[Runtime, int],
) -> None:
    runtime, every_days = cadence
    clock = runtime.service.clock
    assert isinstance(clock, FixedClock)
    steps = Steps(runtime.service)
    office: dict[date, list[tuple[str, str]]] = defaultdict(list)
    for when, name, step in OFFICE:
        office[day(when)].append((name, step))
    ids: dict[str, UUID] = {}
    raised: list[tuple[date, str, str]] = []

    today = FIRST_DAY
    while today <= LAST_DAY:
        if (today - FIRST_DAY).days % every_days == 0:
            clock.set(at(today, PASS_HOUR))
            report = runtime.scheduler_pass.run()
            names = {cert_id: name for name, cert_id in ids.items()}
            raised += [(today, names[cert_id], fact) for cert_id, fact in report.raised]
            compared = view_against_aggregates(runtime, list(ids.values()))
            for name, cert_id in ids.items():
                certification, differences = compared[cert_id]
                assert differences == {}, f"{name} on {today}"
                assert certification.is_certified(clock.now()) is certified_on(
                    name, today
                ), f"{name} on {today}"
        for name, step in office[today]:
            clock.set(at(today, OFFICE_HOUR))
            act(steps, ids, name, step)
        today += timedelta(days=1)

    expected = [
        (first_pass_on_or_after(day(when), every_days), name, fact)
        for when, name, fact in FACTS
    ]
    assert sorted(raised) == sorted(expected)
    for name, status in FINAL_STATUS.items():
        assert runtime.service.get(ids[name]).status is status, name
    cycles = stored_facts(
        runtime.service, ids["renewed"], Certification.ReevaluationDue
    )
    assert [
        (fact.cycle, fact.due_on, fact.valid_until, fact.renew_by) for fact in cycles
    ] == [
        (1, day("2026-12-31"), day("2027-03-01"), day("2027-03-31")),
        (2, day("2028-01-01"), day("2028-03-01"), day("2028-03-31")),
        (3, day("2028-12-31"), day("2029-03-01"), day("2029-03-31")),
    ]
    renewals = stored_facts(
        runtime.service, ids["renewed"], Certification.AnnualFeePaid
    )
    assert [fee.valid_until for fee in renewals] == [
        day("2027-03-01"),
        day("2028-03-01"),
        day("2029-03-01"),
    ]
