"""The application service on the real stores, SQLite and PostgreSQL."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from domain.actor import Actor
from domain.certification import Certification, Status
from domain.clock import FixedClock
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    PaymentForm,
    SubmissionForm,
)
from service.application import (
    CertificationNotFoundError,
    CertificationService,
    ConcurrentWriteError,
    IdempotencyKeyReusedError,
)
from tests.factories import application_body, submission_body

APPLICANT = Actor(role="applicant", name="applicant-0001")
OPERATOR = Actor(role="operator", name="operator-0001")
BILLING = Actor(role="billing", name="billing-0001")
START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def certify(service: CertificationService) -> Certification:
    """Drive a new certification through its first year's process."""
    outcome = service.start_application(
        ApplicationForm.model_validate(application_body()), APPLICANT
    )
    cert_id = outcome.certification.id
    service.submit(cert_id, SubmissionForm.model_validate(submission_body()), APPLICANT)
    pay(service, cert_id, "submission_fee", "150", "sub-1")
    service.decide(
        cert_id,
        DecisionForm(outcome="approved", reason="all sources licensed"),
        OPERATOR,
    )
    pay(service, cert_id, "annual_fee", "1000", "ann-1")
    return service.get(cert_id)


def pay(
    service: CertificationService, cert_id: object, kind: str, amount: str, ref: str
) -> None:
    form = PaymentForm.model_validate(
        {"kind": kind, "amount_usd": amount, "reference": ref}
    )
    service.record_payment(cert_id, form, BILLING)  # type: ignore[arg-type]


def test_a_reloaded_certification_keeps_money_dates_and_times_exactly(
    service: CertificationService,
) -> None:
    cert = certify(service)

    reloaded = service.get(cert.id)

    assert reloaded.status is Status.CERTIFIED
    assert reloaded.valid_until == date(2027, 3, 1)
    assert reloaded.payments["ann-1"].amount_usd == Decimal("1000")
    assert reloaded.payments["ann-1"].paid_at == START
    assert reloaded.annual_revenue_usd == Decimal(250_000)
    assert [type(event).__name__ for event in service.history(cert.id)] == [
        "ApplicationStarted",
        "SubmissionReceived",
        "SubmissionFeePaid",
        "Approved",
        "AnnualFeePaid",
    ]


def test_each_command_reports_the_store_position_of_its_event(
    service: CertificationService,
) -> None:
    first = service.start_application(
        ApplicationForm.model_validate(application_body()), APPLICANT
    )
    second = service.submit(
        first.certification.id,
        SubmissionForm.model_validate(submission_body()),
        APPLICANT,
    )

    assert first.position is not None
    assert second.position == first.position + 1
    assert service.ping_store() == second.position


def test_a_command_decided_on_a_stale_copy_stores_nothing(
    service: CertificationService, clock: FixedClock
) -> None:
    cert = certify(service)
    stale = service.get(cert.id)
    service.suspend(cert.id, "complaint under investigation", OPERATOR)

    stale.revoke("licence breach", actor=OPERATOR, at=clock.now())
    with pytest.raises(ConcurrentWriteError, match="changed by another command"):
        service.store_changes(stale)

    assert service.get(cert.id).status is Status.SUSPENDED
    assert len(service.history(cert.id)) == 6


def test_an_idempotency_key_is_scoped_to_the_credential_that_sent_it(
    service: CertificationService, clock: FixedClock
) -> None:
    form = ApplicationForm.model_validate(application_body())

    first = service.start_application(form, APPLICANT, idempotency_key="k-1")
    # A client's repeat comes later. One at the very same instant would be
    # the same event to the byte, which the store answers as stored: the
    # library's retry of an insert that had committed looks just the same.
    clock.advance(timedelta(seconds=1))
    repeat = service.start_application(form, APPLICANT, idempotency_key="k-1")
    other = service.start_application(form, OPERATOR, idempotency_key="k-1")

    assert repeat.certification.id == first.certification.id
    assert repeat.position is None
    assert other.certification.id != first.certification.id
    assert len(service.history(first.certification.id)) == 1


def test_an_idempotency_key_reused_for_another_application_is_refused(
    service: CertificationService,
) -> None:
    service.start_application(
        ApplicationForm.model_validate(application_body()), APPLICANT, "k-2"
    )

    with pytest.raises(IdempotencyKeyReusedError, match="Idempotency-Key"):
        service.start_application(
            ApplicationForm.model_validate(application_body(revenue=1)),
            APPLICANT,
            "k-2",
        )


def test_an_unknown_certification_is_not_found(
    service: CertificationService,
) -> None:
    unknown = "6f1c0d52-0000-4000-8000-000000000000"

    with pytest.raises(CertificationNotFoundError, match=unknown):
        service.get(unknown)  # type: ignore[arg-type]
    with pytest.raises(CertificationNotFoundError):
        service.history(unknown)  # type: ignore[arg-type]


def test_the_scheduler_commands_use_the_configured_lead_and_grace(
    service: CertificationService, clock: FixedClock
) -> None:
    cert = certify(service)
    due_on = date(2027, 3, 1) - timedelta(days=60)

    clock.set(datetime.combine(due_on, datetime.min.time(), tzinfo=UTC))
    service.raise_reevaluation_due(cert.id)
    clock.set(datetime(2027, 3, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(Exception, match="2027-03-31"):
        service.lapse(cert.id)
    clock.set(datetime(2027, 4, 1, tzinfo=UTC))
    service.lapse(cert.id)

    assert service.get(cert.id).status is Status.LAPSED


def test_every_command_is_logged_once_with_its_outcome_and_no_personal_data(
    service: CertificationService,
) -> None:
    with capture_logs() as logs:
        cert = certify(service)
        with pytest.raises(Exception, match="cannot request_info"):
            service.request_info(
                cert.id, InfoRequestForm(questions=["Which crawl?"]), OPERATOR
            )

    commands = [entry for entry in logs if entry["event"] == "command_handled"]
    assert [(entry["command"], entry["outcome"]) for entry in commands] == [
        ("start", "accepted"),
        ("submit", "accepted"),
        ("pay", "accepted"),
        ("decide", "accepted"),
        ("pay", "accepted"),
        ("request_info", "refused"),
    ]
    assert all(entry["certification_id"] == str(cert.id) for entry in commands)
    assert "ann@acme.example" not in repr(logs)
