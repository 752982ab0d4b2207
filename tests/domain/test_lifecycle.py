"""The certification lifecycle: given these events, when this command, then what.

Each test starts a fresh certification, runs the commands of its "given" and
drains their events, then runs one command and looks only at what it added:
the new events with their key fields, or the error and an untouched aggregate.
"""

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from domain.actor import SCHEDULER, Actor
from domain.certification import Certification, PaymentRecord, Status
from domain.errors import (
    FeeMismatchError,
    InvalidCommandError,
    NotYetDueError,
    PaymentReferenceReusedError,
    RenewalClosedError,
    StatusConflictError,
    UnknownInfoRequestError,
)
from domain.fees import FeeKind
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    SubmissionForm,
)
from tests.factories import application_body, submission_body

APPLICANT = Actor(role="applicant", name="online-form")
BILLING = Actor(role="billing", name="payment-service")
OPERATOR = Actor(role="operator", name="reviewer-desk")

# One timeline for every test. The revenue of the application (250,000 USD)
# puts it in the 100k_to_500k tier: submission fee 150, annual fee 1,000.
STARTED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REVIEWED_AT = datetime(2026, 3, 16, 14, 30, tzinfo=UTC)
CERTIFIED_AT = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
VALID_UNTIL = date(2027, 4, 1)
DUE_ON = date(2027, 1, 31)  # 60 days (the default lead) before VALID_UNTIL
RENEWING_AT = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
DEADLINE = date(2027, 5, 1)  # 30 days (the default grace) after VALID_UNTIL
AFTER_DEADLINE = datetime(2027, 5, 2, 0, 0, tzinfo=UTC)
RENEWED_UNTIL = date(2028, 4, 1)

Step = Callable[[Certification], object]


# Commands, as steps that a "given" or a "when" runs against a certification.


def submit(at: datetime = STARTED_AT, **changes: Any) -> Step:
    form = SubmissionForm.model_validate(submission_body(**changes))
    return lambda cert: cert.submit(form, actor=APPLICANT, at=at)


def pay(kind: str, amount: str, reference: str, at: datetime) -> Step:
    form = PaymentForm(kind=kind, amount_usd=Decimal(amount), reference=reference)
    return lambda cert: cert.pay(form, actor=BILLING, at=at)


def pay_submission_fee(
    amount: str = "150", reference: str = "SUB-1", at: datetime = STARTED_AT
) -> Step:
    return pay("submission_fee", amount, reference, at)


def pay_annual_fee(
    amount: str = "1000", reference: str = "ANN-1", at: datetime = CERTIFIED_AT
) -> Step:
    return pay("annual_fee", amount, reference, at)


def request_info(
    request_id: str = "INFO-1",
    respond_by: date | None = None,
    at: datetime = REVIEWED_AT,
) -> Step:
    form = InfoRequestForm(
        questions=["Which agreement covers the news archive?"],
        respond_by=respond_by,
    )
    return lambda cert: cert.request_info(request_id, form, actor=OPERATOR, at=at)


def provide_info(request_id: str = "INFO-1", at: datetime = REVIEWED_AT) -> Step:
    form = InfoResponseForm(request_id=request_id, answers=["AGR-2026-001."])
    return lambda cert: cert.provide_info(form, actor=APPLICANT, at=at)


def decide(outcome: str, at: datetime = REVIEWED_AT) -> Step:
    form = DecisionForm(outcome=outcome, reason=f"Review outcome: {outcome}.")
    return lambda cert: cert.decide(form, actor=OPERATOR, at=at)


def raise_reevaluation_due(
    lead_days: int = 60, grace_days: int = 30, at: datetime = RENEWING_AT
) -> Step:
    return lambda cert: cert.raise_reevaluation_due(
        lead_days=lead_days, grace_days=grace_days, at=at
    )


def lapse(at: datetime = AFTER_DEADLINE) -> Step:
    return lambda cert: cert.lapse(at=at)


def suspend(at: datetime = RENEWING_AT) -> Step:
    return lambda cert: cert.suspend("Complaint under review.", actor=OPERATOR, at=at)


def reinstate(at: datetime = RENEWING_AT) -> Step:
    return lambda cert: cert.reinstate("Complaint dismissed.", actor=OPERATOR, at=at)


def revoke(at: datetime = RENEWING_AT) -> Step:
    return lambda cert: cert.revoke("False declaration.", actor=OPERATOR, at=at)


def withdraw(at: datetime = RENEWING_AT) -> Step:
    return lambda cert: cert.withdraw("No longer offered.", actor=APPLICANT, at=at)


# Given, when, then.


def start(revenue: int | str = 250_000, at: datetime = STARTED_AT) -> Certification:
    form = ApplicationForm.model_validate(application_body(revenue))
    return Certification.start(form, id=uuid.uuid4(), actor=APPLICANT, at=at)


def given(*steps: Step) -> Certification:
    """Return a certification that went through these steps, events drained."""
    cert = start()
    for step in steps:
        step(cert)
    cert.collect_events()

    return cert


def when(cert: Certification, command: Step) -> list[Any]:
    """Run one command and return the events it recorded."""
    command(cert)

    return list(cert.collect_events())


def then(events: Sequence[object], *expected: tuple[str, dict[str, Any]]) -> None:
    """Check the events' class names, in order, and the given fields of each."""
    assert [type(event).__name__ for event in events] == [name for name, _ in expected]
    for event, (_, fields) in zip(events, expected, strict=True):
        assert {name: getattr(event, name) for name in fields} == fields


def then_refused(
    cert: Certification, command: Step, error: type[Exception]
) -> Exception:
    """Check that the command raises this error and leaves no trace."""
    status, version = cert.status, cert.version

    with pytest.raises(error) as raised:
        command(cert)

    assert cert.collect_events() == []
    assert cert.status is status
    assert cert.version == version
    return raised.value


def replay(events: Sequence[Any]) -> Certification:
    rebuilt: Certification = functools.reduce(
        lambda agg, event: event.mutate(agg), events, None
    )
    return rebuilt


# Every situation a certification can be in, as the steps that lead there.

APPLIED: list[Step] = []
SUBMITTED = [submit()]
IN_REVIEW = [*SUBMITTED, pay_submission_fee()]
AWAITING_INFO = [*IN_REVIEW, request_info()]
APPROVED = [*IN_REVIEW, decide("approved")]
REJECTED = [*IN_REVIEW, decide("rejected")]
CERTIFIED = [*APPROVED, pay_annual_fee()]
REEVALUATION_DUE = [*CERTIFIED, raise_reevaluation_due()]
RENEWAL_IN_REVIEW = [*REEVALUATION_DUE, submit(at=RENEWING_AT)]
RENEWAL_AWAITING_INFO = [*RENEWAL_IN_REVIEW, request_info(at=RENEWING_AT)]
RENEWAL_APPROVED = [*RENEWAL_IN_REVIEW, decide("approved", at=RENEWING_AT)]
RENEWED = [*RENEWAL_APPROVED, pay_annual_fee(reference="ANN-2", at=RENEWING_AT)]
LAPSED = [*REEVALUATION_DUE, lapse()]
SUSPENDED = [*CERTIFIED, suspend()]
SUSPENDED_WHILE_RENEWING = [*RENEWAL_AWAITING_INFO, suspend()]
REVOKED = [revoke()]
WITHDRAWN = [withdraw()]

SITUATIONS: dict[str, list[Step]] = {
    "applied": APPLIED,
    "submitted": SUBMITTED,
    "in_review": IN_REVIEW,
    "awaiting_info": AWAITING_INFO,
    "approved": APPROVED,
    "rejected": REJECTED,
    "certified": CERTIFIED,
    "reevaluation_due": REEVALUATION_DUE,
    "in_review during a renewal": RENEWAL_IN_REVIEW,
    "awaiting_info during a renewal": RENEWAL_AWAITING_INFO,
    "approved during a renewal": RENEWAL_APPROVED,
    "certified again": RENEWED,
    "lapsed": LAPSED,
    "suspended": SUSPENDED,
    "suspended during a renewal": SUSPENDED_WHILE_RENEWING,
    "revoked": REVOKED,
    "withdrawn": WITHDRAWN,
}
FINAL = ["rejected", "lapsed", "revoked", "withdrawn"]
NOT_FINAL = [name for name in SITUATIONS if name not in FINAL]
RENEWING = [
    "reevaluation_due",
    "in_review during a renewal",
    "awaiting_info during a renewal",
    "approved during a renewal",
]

# The lifecycle table of the contract: which commands each situation accepts.
# Every other pair must be refused as a status conflict.
EVERY_STATUS = {"revoke", "withdraw"}
RENEWAL = {"lapse", "suspend", *EVERY_STATUS}
ALLOWED: dict[str, set[str]] = {
    "applied": {"submit", *EVERY_STATUS},
    "submitted": {"pay_submission_fee", *EVERY_STATUS},
    "in_review": {"request_info", "decide", *EVERY_STATUS},
    "awaiting_info": {"provide_info", *EVERY_STATUS},
    "approved": {"pay_annual_fee", *EVERY_STATUS},
    "rejected": set(),
    "certified": {"raise_reevaluation_due", "suspend", *EVERY_STATUS},
    "reevaluation_due": {"submit", *RENEWAL},
    "in_review during a renewal": {"request_info", "decide", *RENEWAL},
    "awaiting_info during a renewal": {"provide_info", *RENEWAL},
    "approved during a renewal": {"pay_annual_fee", *RENEWAL},
    "certified again": {"raise_reevaluation_due", "suspend", *EVERY_STATUS},
    "lapsed": set(),
    "suspended": {"reinstate", *EVERY_STATUS},
    "suspended during a renewal": {"reinstate", *EVERY_STATUS},
    "revoked": set(),
    "withdrawn": set(),
}
# Each command at a time when its own date rules would let it through, so that
# only the status decides.
COMMANDS: dict[str, Step] = {
    "submit": submit(at=RENEWING_AT),
    "pay_submission_fee": pay_submission_fee(reference="SUB-X"),
    "pay_annual_fee": pay_annual_fee(reference="ANN-X", at=RENEWING_AT),
    "request_info": request_info(request_id="INFO-X", at=RENEWING_AT),
    "provide_info": provide_info(),
    "decide": decide("approved", at=RENEWING_AT),
    "raise_reevaluation_due": raise_reevaluation_due(
        at=datetime(2028, 3, 1, tzinfo=UTC)
    ),
    "lapse": lapse(),
    "suspend": suspend(),
    "reinstate": reinstate(),
    "revoke": revoke(),
    "withdraw": withdraw(),
}


def test_the_situations_cover_every_status() -> None:
    reached = {given(*steps).status for steps in SITUATIONS.values()}

    assert reached == set(Status)


@pytest.mark.parametrize(
    ("situation", "command"),
    [
        pytest.param(situation, command, id=f"{situation}-{command}")
        for situation in SITUATIONS
        for command in COMMANDS
        if command not in ALLOWED[situation]
    ],
)
def test_a_command_that_does_not_fit_the_status_is_refused_naming_both(
    situation: str, command: str
) -> None:
    cert = given(*SITUATIONS[situation])
    status = cert.status

    error = then_refused(cert, COMMANDS[command], StatusConflictError)

    assert f"'{status}'" in str(error)
    assert command in str(error)


@pytest.mark.parametrize(
    ("situation", "command"),
    [
        pytest.param(situation, command, id=f"{situation}-{command}")
        for situation in SITUATIONS
        for command in sorted(ALLOWED[situation])
    ],
)
def test_a_command_that_fits_the_status_records_one_event(
    situation: str, command: str
) -> None:
    cert = given(*SITUATIONS[situation])

    events = when(cert, COMMANDS[command])

    assert len(events) == 1
    assert cert.version == events[0].originator_version


# ApplicationStarted


@pytest.mark.parametrize(
    ("revenue", "tier"),
    [
        ("0", "under_100k"),
        ("99999.99", "under_100k"),
        ("100000", "100k_to_500k"),
        ("750000", "500k_to_5m"),
        ("5000000", "5m_to_10m"),
        ("10000000", "10m_and_over"),
    ],
)
def test_starting_an_application_puts_it_in_the_tier_of_its_revenue(
    revenue: str, tier: str
) -> None:
    cert = start(revenue)

    then(
        cert.collect_events(),
        (
            "ApplicationStarted",
            {"annual_revenue_usd": Decimal(revenue), "tier": tier},
        ),
    )
    assert cert.status is Status.APPLIED
    assert cert.tier == tier


def test_an_application_records_who_it_is_from_and_its_models() -> None:
    cert = start()

    (event,) = cert.collect_events()

    assert event.organisation["name"] == "Acme Models Ltd"
    assert event.contact["email"] == "ann@acme.example"
    assert [model["name"] for model in event.models] == ["acme-text-1"]


# SubmissionReceived


def test_a_submission_moves_an_application_to_submitted() -> None:
    cert = given()

    events = when(cert, submit())

    then(
        events,
        (
            "SubmissionReceived",
            {
                "annual_revenue_usd": Decimal(250_000),
                "tier": "100k_to_500k",
                "findings": [],
            },
        ),
    )
    assert cert.status is Status.SUBMITTED
    assert cert.fees_due() == {FeeKind.SUBMISSION_FEE: Decimal(150)}


def test_a_submission_with_a_new_revenue_changes_the_tier() -> None:
    cert = given()

    events = when(cert, submit(annual_revenue_usd="600000"))

    then(
        events,
        (
            "SubmissionReceived",
            {"annual_revenue_usd": Decimal(600_000), "tier": "500k_to_5m"},
        ),
    )
    assert cert.fees_due() == {FeeKind.SUBMISSION_FEE: Decimal(250)}


def test_a_submission_records_the_findings_of_pre_screening() -> None:
    cert = given()
    sources = submission_body()["data_sources"]
    sources[1] = {**sources[1], "licence": "CC-BY-NC-4.0"}

    events = when(cert, submit(data_sources=sources))

    (event,) = events
    assert [finding["code"] for finding in event.findings] == ["licence_non_commercial"]
    assert event.findings[0]["subject"] == "Wikipedia dump"


def test_a_data_source_naming_a_declared_model_is_accepted() -> None:
    cert = given()
    sources = submission_body()["data_sources"]
    sources[0] = {**sources[0], "models": ["acme-text-1"]}

    events = when(cert, submit(data_sources=sources))

    then(events, ("SubmissionReceived", {}))


def test_a_data_source_naming_an_undeclared_model_is_refused_with_its_field() -> None:
    cert = given()
    sources = submission_body()["data_sources"]
    sources[1] = {**sources[1], "models": ["acme-text-1", "acme-image-9"]}

    error = then_refused(cert, submit(data_sources=sources), InvalidCommandError)

    assert isinstance(error, InvalidCommandError)
    assert error.field == "data_sources[1].models"
    assert "acme-image-9" in str(error)


# SubmissionFeePaid


def test_paying_the_submission_fee_starts_the_review() -> None:
    cert = given(*SUBMITTED)
    form = PaymentForm(
        kind="submission_fee", amount_usd=Decimal("150.00"), reference="SUB-1"
    )

    record = cert.pay(form, actor=BILLING, at=REVIEWED_AT)

    then(
        cert.collect_events(),
        (
            "SubmissionFeePaid",
            {"amount_usd": Decimal(150), "reference": "SUB-1"},
        ),
    )
    assert cert.status is Status.IN_REVIEW
    assert cert.fees_due() == {}
    assert record == PaymentRecord(
        kind=FeeKind.SUBMISSION_FEE,
        amount_usd=Decimal(150),
        reference="SUB-1",
        paid_at=REVIEWED_AT,
        version=3,
    )


@pytest.mark.parametrize("amount", ["149.99", "150.01", "250", "1000"])
def test_a_submission_fee_of_another_amount_is_refused_naming_amount_usd(
    amount: str,
) -> None:
    cert = given(*SUBMITTED)

    error = then_refused(cert, pay_submission_fee(amount), FeeMismatchError)

    assert isinstance(error, FeeMismatchError)
    assert error.field == "amount_usd"
    assert amount in str(error)


def test_a_second_payment_with_the_same_reference_changes_nothing() -> None:
    cert = given(*SUBMITTED)
    first = pay_submission_fee(reference="SUB-1", at=STARTED_AT)(cert)
    cert.collect_events()
    repeat = pay_submission_fee(amount="150.00", reference="SUB-1", at=REVIEWED_AT)

    again = repeat(cert)

    assert again == first
    assert isinstance(again, PaymentRecord)
    assert again.paid_at == STARTED_AT
    assert cert.collect_events() == []
    assert cert.status is Status.IN_REVIEW
    assert list(cert.payments) == ["SUB-1"]


def test_a_known_reference_is_answered_again_once_the_review_moved_on() -> None:
    cert = given(*APPROVED)

    again = pay_submission_fee(reference="SUB-1", at=CERTIFIED_AT)(cert)

    assert again == cert.payments["SUB-1"]
    assert isinstance(again, PaymentRecord)
    assert again.paid_at == STARTED_AT
    assert cert.collect_events() == []
    assert cert.status is Status.APPROVED


def test_a_reference_used_again_for_another_amount_is_refused() -> None:
    cert = given(*IN_REVIEW)

    error = then_refused(
        cert, pay_submission_fee("250", "SUB-1"), PaymentReferenceReusedError
    )

    assert "SUB-1" in str(error)


def test_a_reference_used_again_for_another_fee_is_refused() -> None:
    cert = given(*APPROVED)

    then_refused(
        cert, pay_annual_fee("150", reference="SUB-1"), PaymentReferenceReusedError
    )

    assert cert.fees_due() == {FeeKind.ANNUAL_FEE: Decimal(1000)}


# InfoRequested and InfoProvided


def test_requesting_information_waits_for_the_applicant() -> None:
    cert = given(*IN_REVIEW)

    events = when(cert, request_info("INFO-7", respond_by=date(2026, 3, 30)))

    then(
        events,
        (
            "InfoRequested",
            {
                "request_id": "INFO-7",
                "questions": ["Which agreement covers the news archive?"],
                "respond_by": date(2026, 3, 30),
            },
        ),
    )
    assert cert.status is Status.AWAITING_INFO


def test_a_respond_by_date_of_today_is_accepted() -> None:
    cert = given(*IN_REVIEW)

    events = when(cert, request_info(respond_by=REVIEWED_AT.date()))

    then(events, ("InfoRequested", {"respond_by": REVIEWED_AT.date()}))


def test_a_respond_by_date_already_past_is_refused() -> None:
    cert = given(*IN_REVIEW)
    yesterday = date(2026, 3, 15)

    error = then_refused(cert, request_info(respond_by=yesterday), InvalidCommandError)

    assert isinstance(error, InvalidCommandError)
    assert error.field == "respond_by"


def test_answering_the_open_request_resumes_the_review() -> None:
    cert = given(*AWAITING_INFO)

    events = when(cert, provide_info("INFO-1"))

    then(
        events,
        ("InfoProvided", {"request_id": "INFO-1", "answers": ["AGR-2026-001."]}),
    )
    assert cert.status is Status.IN_REVIEW
    assert cert.open_info_request is None


def test_an_answer_to_another_request_is_refused() -> None:
    cert = given(*AWAITING_INFO)

    error = then_refused(cert, provide_info("INFO-2"), UnknownInfoRequestError)

    assert "INFO-2" in str(error)
    assert "INFO-1" in str(error)


def test_an_answered_request_cannot_be_answered_again() -> None:
    cert = given(*AWAITING_INFO, provide_info(), request_info("INFO-2"))

    then_refused(cert, provide_info("INFO-1"), UnknownInfoRequestError)


# Approved and Rejected


def test_an_approval_asks_for_the_annual_fee() -> None:
    cert = given(*IN_REVIEW)

    events = when(cert, decide("approved"))

    then(events, ("Approved", {"reason": "Review outcome: approved."}))
    assert cert.status is Status.APPROVED
    assert cert.fees_due() == {FeeKind.ANNUAL_FEE: Decimal(1000)}
    assert not cert.is_certified(REVIEWED_AT)


def test_a_rejection_is_final() -> None:
    cert = given(*IN_REVIEW)

    events = when(cert, decide("rejected"))

    then(events, ("Rejected", {"reason": "Review outcome: rejected."}))
    assert cert.status is Status.REJECTED
    assert cert.fees_due() == {}
    then_refused(cert, withdraw(), StatusConflictError)


# AnnualFeePaid


def test_paying_the_annual_fee_certifies_for_one_year_from_the_day_paid() -> None:
    cert = given(*APPROVED)

    events = when(cert, pay_annual_fee(at=CERTIFIED_AT))

    then(
        events,
        (
            "AnnualFeePaid",
            {
                "amount_usd": Decimal(1000),
                "reference": "ANN-1",
                "valid_until": VALID_UNTIL,
            },
        ),
    )
    assert cert.status is Status.CERTIFIED
    assert cert.valid_until == VALID_UNTIL


def test_an_annual_fee_paid_on_29_february_runs_to_28_february() -> None:
    cert = given(*APPROVED)

    events = when(cert, pay_annual_fee(at=datetime(2028, 2, 29, 23, 0, tzinfo=UTC)))

    then(events, ("AnnualFeePaid", {"valid_until": date(2029, 2, 28)}))


@pytest.mark.parametrize("amount", ["500", "999.99", "2000"])
def test_an_annual_fee_of_another_amount_is_refused_naming_amount_usd(
    amount: str,
) -> None:
    cert = given(*APPROVED)

    error = then_refused(cert, pay_annual_fee(amount), FeeMismatchError)

    assert isinstance(error, FeeMismatchError)
    assert error.field == "amount_usd"


def test_a_renewal_adds_a_year_to_the_previous_valid_until() -> None:
    cert = given(*RENEWAL_APPROVED)

    events = when(cert, pay_annual_fee(reference="ANN-2", at=RENEWING_AT))

    then(
        events,
        ("AnnualFeePaid", {"reference": "ANN-2", "valid_until": RENEWED_UNTIL}),
    )
    assert cert.status is Status.CERTIFIED
    assert cert.valid_until == RENEWED_UNTIL


def test_a_renewal_paid_within_the_grace_days_still_runs_from_valid_until() -> None:
    cert = given(*RENEWAL_APPROVED)
    in_grace = datetime(2027, 4, 20, 12, 0, tzinfo=UTC)

    events = when(cert, pay_annual_fee(reference="ANN-2", at=in_grace))

    then(events, ("AnnualFeePaid", {"valid_until": RENEWED_UNTIL}))


# ReevaluationDue


def test_reevaluation_falls_due_lead_days_before_valid_until() -> None:
    cert = given(*CERTIFIED)
    on_due_day = datetime(2027, 1, 31, 0, 0, tzinfo=UTC)

    events = when(cert, raise_reevaluation_due(lead_days=60, at=on_due_day))

    then(
        events,
        (
            "ReevaluationDue",
            {
                "cycle": 1,
                "valid_until": VALID_UNTIL,
                "due_on": DUE_ON,
                "actor": SCHEDULER.as_record(),
            },
        ),
    )
    assert cert.status is Status.REEVALUATION_DUE


@pytest.mark.parametrize(
    ("lead_days", "day_before"),
    [(60, date(2027, 1, 30)), (90, date(2026, 12, 31)), (0, date(2027, 3, 31))],
)
def test_reevaluation_is_refused_before_its_due_date(
    lead_days: int, day_before: date
) -> None:
    cert = given(*CERTIFIED)
    late_that_day = datetime(
        day_before.year, day_before.month, day_before.day, 23, 59, tzinfo=UTC
    )

    then_refused(
        cert,
        raise_reevaluation_due(lead_days=lead_days, at=late_that_day),
        NotYetDueError,
    )


def test_reevaluation_is_raised_once_per_cycle() -> None:
    cert = given(*REEVALUATION_DUE)

    error = then_refused(cert, raise_reevaluation_due(), StatusConflictError)

    assert "raise_reevaluation_due" in str(error)


def test_the_next_reevaluation_falls_due_a_year_later() -> None:
    cert = given(*RENEWED)
    then_refused(cert, raise_reevaluation_due(at=RENEWING_AT), NotYetDueError)

    events = when(cert, raise_reevaluation_due(at=datetime(2028, 2, 1, tzinfo=UTC)))

    then(
        events,
        (
            "ReevaluationDue",
            {"cycle": 2, "valid_until": RENEWED_UNTIL, "due_on": date(2028, 2, 1)},
        ),
    )


# ReevaluationSubmitted


def test_a_resubmission_goes_to_review_without_a_submission_fee() -> None:
    cert = given(*REEVALUATION_DUE)

    events = when(cert, submit(at=RENEWING_AT))

    then(
        events,
        (
            "ReevaluationSubmitted",
            {"annual_revenue_usd": Decimal(250_000), "tier": "100k_to_500k"},
        ),
    )
    assert cert.status is Status.IN_REVIEW
    assert cert.fees_due() == {}
    assert set(cert.payments) == {"SUB-1", "ANN-1"}


def test_a_resubmission_with_a_new_revenue_changes_tier_and_annual_fee() -> None:
    cert = given(
        *REEVALUATION_DUE,
        submit(at=RENEWING_AT, annual_revenue_usd="6000000"),
        decide("approved", at=RENEWING_AT),
    )
    assert cert.tier == "5m_to_10m"
    assert cert.fees_due() == {FeeKind.ANNUAL_FEE: Decimal(4000)}
    then_refused(cert, pay_annual_fee("1000", "ANN-2"), FeeMismatchError)

    events = when(cert, pay_annual_fee("4000", "ANN-2", at=RENEWING_AT))

    then(events, ("AnnualFeePaid", {"amount_usd": Decimal(4000)}))


# CertificationLapsed


@pytest.mark.parametrize("situation", RENEWING)
def test_a_renewal_not_completed_in_time_lapses_after_the_grace_days(
    situation: str,
) -> None:
    cert = given(*SITUATIONS[situation])

    events = when(cert, lapse(at=AFTER_DEADLINE))

    then(
        events,
        (
            "CertificationLapsed",
            {
                "valid_until": VALID_UNTIL,
                "renew_by": DEADLINE,
                "actor": SCHEDULER.as_record(),
            },
        ),
    )
    assert cert.status is Status.LAPSED


@pytest.mark.parametrize("situation", RENEWING)
def test_a_renewal_cannot_lapse_on_or_before_its_deadline(situation: str) -> None:
    cert = given(*SITUATIONS[situation])
    last_day = datetime(2027, 5, 1, 23, 59, tzinfo=UTC)

    error = then_refused(cert, lapse(at=last_day), NotYetDueError)

    assert DEADLINE.isoformat() in str(error)


def test_the_grace_days_move_the_lapse_deadline() -> None:
    longer = given(*CERTIFIED, raise_reevaluation_due(grace_days=31))
    then_refused(longer, lapse(at=AFTER_DEADLINE), NotYetDueError)
    none = given(*CERTIFIED, raise_reevaluation_due(grace_days=0))

    events = when(none, lapse(at=datetime(2027, 4, 2, tzinfo=UTC)))

    then(events, ("CertificationLapsed", {"renew_by": VALID_UNTIL}))


@pytest.mark.parametrize(
    ("situation", "step"),
    [
        ("reevaluation_due", submit(at=AFTER_DEADLINE)),
        ("in_review during a renewal", request_info(at=AFTER_DEADLINE)),
        ("in_review during a renewal", decide("approved", at=AFTER_DEADLINE)),
        ("awaiting_info during a renewal", provide_info(at=AFTER_DEADLINE)),
        (
            "approved during a renewal",
            pay_annual_fee(reference="ANN-2", at=AFTER_DEADLINE),
        ),
    ],
)
def test_a_renewal_cannot_move_on_after_its_deadline(
    situation: str, step: Step
) -> None:
    cert = given(*SITUATIONS[situation])

    error = then_refused(cert, step, RenewalClosedError)

    assert DEADLINE.isoformat() in str(error)
    assert "lapses" in str(error)


def test_a_renewal_paid_on_its_last_day_renews() -> None:
    cert = given(*RENEWAL_APPROVED)
    last_day = datetime(2027, 5, 1, 23, 59, tzinfo=UTC)

    events = when(cert, pay_annual_fee(reference="ANN-2", at=last_day))

    then(events, ("AnnualFeePaid", {"valid_until": RENEWED_UNTIL}))


def test_deadlines_are_counted_in_utc_days_whatever_the_callers_timezone() -> None:
    cert = given(*REEVALUATION_DUE)
    # 2 May 01:30 in UTC+3 is still 1 May, the last day, in UTC.
    early_in_utc_plus_3 = datetime(
        2027, 5, 2, 1, 30, tzinfo=timezone(timedelta(hours=3))
    )

    then_refused(cert, lapse(at=early_in_utc_plus_3), NotYetDueError)


@pytest.mark.parametrize("situation", ["in_review", "awaiting_info", "approved"])
def test_a_first_certification_under_review_cannot_lapse(situation: str) -> None:
    cert = given(*SITUATIONS[situation])

    error = then_refused(cert, lapse(), StatusConflictError)

    assert "lapse" in str(error)
    assert situation in str(error)


# Suspended and Reinstated


@pytest.mark.parametrize("situation", ["certified", "certified again", *RENEWING])
def test_a_certified_or_renewing_certification_can_be_suspended(
    situation: str,
) -> None:
    cert = given(*SITUATIONS[situation])
    before = cert.status

    events = when(cert, suspend())

    then(
        events,
        (
            "Suspended",
            {"reason": "Complaint under review.", "previous_status": before.value},
        ),
    )
    assert cert.status is Status.SUSPENDED


@pytest.mark.parametrize(
    "situation", ["applied", "submitted", "in_review", "awaiting_info", "approved"]
)
def test_a_certification_never_certified_cannot_be_suspended(situation: str) -> None:
    cert = given(*SITUATIONS[situation])

    error = then_refused(cert, suspend(), StatusConflictError)

    assert "suspend" in str(error)


@pytest.mark.parametrize("situation", ["certified", *RENEWING])
def test_reinstatement_returns_to_the_exact_status_before_suspension(
    situation: str,
) -> None:
    cert = given(*SITUATIONS[situation], suspend())
    expected = given(*SITUATIONS[situation]).status

    events = when(cert, reinstate())

    then(
        events,
        ("Reinstated", {"reason": "Complaint dismissed.", "status": expected.value}),
    )
    assert cert.status is expected


def test_a_renewal_reinstated_in_awaiting_info_takes_up_where_it_stopped() -> None:
    cert = given(*SUSPENDED_WHILE_RENEWING, reinstate())
    assert cert.status is Status.AWAITING_INFO

    events = when(cert, provide_info("INFO-1", at=RENEWING_AT))

    then(events, ("InfoProvided", {"request_id": "INFO-1"}))
    assert cert.is_renewing


def test_a_renewal_reinstated_late_can_still_lapse() -> None:
    cert = given(*SUSPENDED_WHILE_RENEWING, reinstate())

    events = when(cert, lapse())

    then(events, ("CertificationLapsed", {}))


# Revoked and Withdrawn


@pytest.mark.parametrize("situation", NOT_FINAL)
def test_any_certification_not_final_can_be_revoked(situation: str) -> None:
    cert = given(*SITUATIONS[situation])

    events = when(cert, revoke())

    then(events, ("Revoked", {"reason": "False declaration."}))
    assert cert.status is Status.REVOKED


@pytest.mark.parametrize("situation", NOT_FINAL)
def test_any_certification_not_final_can_be_withdrawn(situation: str) -> None:
    cert = given(*SITUATIONS[situation])

    events = when(cert, withdraw())

    then(
        events,
        (
            "Withdrawn",
            {"reason": "No longer offered.", "actor": APPLICANT.as_record()},
        ),
    )
    assert cert.status is Status.WITHDRAWN


@pytest.mark.parametrize("situation", FINAL)
@pytest.mark.parametrize("command", ["revoke", "withdraw"])
def test_a_final_certification_can_be_neither_revoked_nor_withdrawn(
    situation: str, command: str
) -> None:
    cert = given(*SITUATIONS[situation])

    error = then_refused(cert, COMMANDS[command], StatusConflictError)

    assert command in str(error)
    assert f"'{cert.status}'" in str(error)


# What every event records


def full_lifecycle() -> tuple[Certification, list[Any]]:
    """Run a certification through every kind of step, keeping all events."""
    cert = start(at=STARTED_AT)
    for step in [
        submit(at=datetime(2026, 3, 3, 8, 15, 30, 123456, tzinfo=UTC)),
        pay_submission_fee(at=datetime(2026, 3, 4, 11, 0, tzinfo=UTC)),
        request_info(at=datetime(2026, 3, 5, 12, 0, tzinfo=UTC)),
        provide_info(at=datetime(2026, 3, 6, 13, 0, tzinfo=UTC)),
        decide("approved", at=datetime(2026, 3, 7, 14, 0, tzinfo=UTC)),
        pay_annual_fee(at=CERTIFIED_AT),
        raise_reevaluation_due(at=datetime(2027, 1, 31, 0, 5, tzinfo=UTC)),
        submit(at=datetime(2027, 2, 2, 9, 0, tzinfo=UTC)),
        suspend(at=datetime(2027, 2, 3, 9, 0, tzinfo=UTC)),
        reinstate(at=datetime(2027, 2, 4, 9, 0, tzinfo=UTC)),
        decide("approved", at=datetime(2027, 2, 5, 9, 0, tzinfo=UTC)),
        pay_annual_fee(reference="ANN-2", at=datetime(2027, 2, 6, 9, 0, tzinfo=UTC)),
        withdraw(at=datetime(2027, 6, 1, 9, 0, tzinfo=UTC)),
    ]:
        step(cert)
    return cert, list(cert.collect_events())


def test_every_event_records_its_actor_and_nothing_more_of_the_credential() -> None:
    _, events = full_lifecycle()

    actors = [event.actor for event in events]

    assert actors == [
        record.as_record()
        for record in [
            APPLICANT,
            APPLICANT,
            BILLING,
            OPERATOR,
            APPLICANT,
            OPERATOR,
            BILLING,
            SCHEDULER,
            APPLICANT,
            OPERATOR,
            OPERATOR,
            OPERATOR,
            BILLING,
            APPLICANT,
        ]
    ]
    assert all(set(event.actor) == {"role", "name"} for event in events)


def test_every_event_is_stamped_with_the_time_it_was_given() -> None:
    _, events = full_lifecycle()

    assert [event.timestamp for event in events] == [
        STARTED_AT,
        datetime(2026, 3, 3, 8, 15, 30, 123456, tzinfo=UTC),
        datetime(2026, 3, 4, 11, 0, tzinfo=UTC),
        datetime(2026, 3, 5, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 6, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 7, 14, 0, tzinfo=UTC),
        CERTIFIED_AT,
        datetime(2027, 1, 31, 0, 5, tzinfo=UTC),
        datetime(2027, 2, 2, 9, 0, tzinfo=UTC),
        datetime(2027, 2, 3, 9, 0, tzinfo=UTC),
        datetime(2027, 2, 4, 9, 0, tzinfo=UTC),
        datetime(2027, 2, 5, 9, 0, tzinfo=UTC),
        datetime(2027, 2, 6, 9, 0, tzinfo=UTC),
        datetime(2027, 6, 1, 9, 0, tzinfo=UTC),
    ]
    assert all(event.timestamp.tzinfo is UTC for event in events)


def test_the_versions_of_the_events_follow_each_other() -> None:
    cert, events = full_lifecycle()

    assert [event.originator_version for event in events] == list(
        range(1, len(events) + 1)
    )
    assert {event.originator_id for event in events} == {cert.id}


# is_certified


@pytest.mark.parametrize(
    "situation", ["applied", "submitted", "in_review", "awaiting_info", "approved"]
)
def test_a_certification_is_not_held_before_the_first_annual_fee(
    situation: str,
) -> None:
    cert = given(*SITUATIONS[situation])

    assert not cert.is_certified(CERTIFIED_AT)


def test_a_paid_certification_is_held_from_the_day_paid_to_valid_until() -> None:
    cert = given(*CERTIFIED)

    assert cert.is_certified(CERTIFIED_AT)
    assert cert.is_certified(datetime(2027, 4, 1, 23, 59, tzinfo=UTC))
    assert not cert.is_certified(datetime(2027, 4, 2, 0, 0, tzinfo=UTC))


@pytest.mark.parametrize("situation", RENEWING)
def test_a_certification_is_held_during_reevaluation_until_valid_until(
    situation: str,
) -> None:
    cert = given(*SITUATIONS[situation])

    assert cert.is_certified(RENEWING_AT)
    assert cert.is_certified(datetime(2027, 4, 1, 12, 0, tzinfo=UTC))
    assert not cert.is_certified(datetime(2027, 4, 2, 12, 0, tzinfo=UTC))


def test_a_renewed_certification_is_held_for_another_year() -> None:
    cert = given(*RENEWED)

    assert cert.is_certified(datetime(2028, 4, 1, 12, 0, tzinfo=UTC))
    assert not cert.is_certified(datetime(2028, 4, 2, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([*CERTIFIED, suspend()], id="suspended"),
        pytest.param(SUSPENDED_WHILE_RENEWING, id="suspended during a renewal"),
        pytest.param([*CERTIFIED, revoke()], id="revoked"),
        pytest.param([*RENEWAL_IN_REVIEW, withdraw()], id="withdrawn"),
        pytest.param(LAPSED, id="lapsed"),
    ],
)
def test_a_certification_is_not_held_once_suspended_revoked_lapsed_or_withdrawn(
    steps: list[Step],
) -> None:
    cert = given(*steps)

    assert cert.valid_until == VALID_UNTIL
    assert not cert.is_certified(RENEWING_AT)


def test_a_reinstated_certification_is_held_again() -> None:
    cert = given(*SUSPENDED)

    when(cert, reinstate())

    assert cert.is_certified(RENEWING_AT)


# Replay


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_replaying_the_events_rebuilds_the_same_certification(situation: str) -> None:
    cert = start()
    for step in SITUATIONS[situation]:
        step(cert)
    events = list(cert.collect_events())

    rebuilt = replay(events)

    assert rebuilt.status is cert.status
    assert rebuilt.valid_until == cert.valid_until
    assert rebuilt.payments == cert.payments
    assert rebuilt == cert


def test_replaying_a_full_lifecycle_rebuilds_its_payments() -> None:
    cert, events = full_lifecycle()

    rebuilt = replay(events)

    assert rebuilt.payments == {
        "SUB-1": PaymentRecord(
            FeeKind.SUBMISSION_FEE,
            Decimal(150),
            "SUB-1",
            datetime(2026, 3, 4, 11, 0, tzinfo=UTC),
            3,
        ),
        "ANN-1": PaymentRecord(
            FeeKind.ANNUAL_FEE, Decimal(1000), "ANN-1", CERTIFIED_AT, 7
        ),
        "ANN-2": PaymentRecord(
            FeeKind.ANNUAL_FEE,
            Decimal(1000),
            "ANN-2",
            datetime(2027, 2, 6, 9, 0, tzinfo=UTC),
            13,
        ),
    }
    assert rebuilt.status is Status.WITHDRAWN
    assert rebuilt.valid_until == RENEWED_UNTIL
    assert rebuilt == cert


@pytest.mark.parametrize("end", [revoke, withdraw])
def test_ending_a_certification_closes_its_open_info_request(
    end: Callable[[], Step],
) -> None:
    cert = given(*AWAITING_INFO)

    when(cert, end())

    assert cert.open_info_request is None
