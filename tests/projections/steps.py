"""Certifications driven through their lifecycle in-process, one command a step.

The steps go through the application service exactly as the HTTP API does, so
every event the views see was decided and stored by the real aggregate.
"""

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from domain.actor import Actor
from domain.certification import FINAL_STATUSES, Certification, day_of
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    SubmissionForm,
)
from projections.status_view import StatusRow
from service.application import CertificationService
from tests.factories import application_body, submission_body

APPLICANT = Actor(role="applicant", name="applicant-0001")
OPERATOR = Actor(role="operator", name="operator-0001")
BILLING = Actor(role="billing", name="billing-0001")
START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CERTD = Path(sys.executable).with_name("certd")


def morning_of(day: date) -> datetime:
    return datetime.combine(day, time(9, 0), tzinfo=UTC)


def submission_with_findings() -> dict[str, Any]:
    """A submission that screening flags once at each severity."""
    return submission_body(
        data_sources=[
            {
                "name": "Stock photo library",
                "basis": "contract",
                "provider": "Example Stock Agency",
                "agreement_ref": "AGR-2026-017",
                "via_intermediary": True,
                "purpose": "training",
            },
            {
                "name": "Forum archive",
                "basis": "open_licence",
                "licence": "CC-BY-NC-4.0",
                "provider": "Example Forum",
                "purpose": "training",
            },
            {
                "name": "Vendor corpus",
                "basis": "open_licence",
                "licence": "Vendor-Custom-1",
                "provider": "Example Vendor",
                "purpose": "fine_tuning",
            },
        ]
    )


class Steps:
    """The commands of the lifecycle, with valid bodies and exact fees."""

    def __init__(self, service: CertificationService) -> None:
        self.service = service

    def start(self, name: str = "Acme Models Ltd", revenue: int = 250_000) -> UUID:
        body = application_body(revenue=revenue)
        body["organisation"] = {**body["organisation"], "name": name}
        outcome = self.service.start_application(
            ApplicationForm.model_validate(body), APPLICANT
        )
        return outcome.certification.id

    def submit(self, cert_id: UUID, body: dict[str, Any] | None = None) -> None:
        form = SubmissionForm.model_validate(body or submission_body())
        self.service.submit(cert_id, form, APPLICANT)

    def pay_due(self, cert_id: UUID) -> Decimal:
        """Pay the one fee the certification owes, in full; return the amount."""
        ((kind, amount),) = self.service.get(cert_id).fees_due().items()
        form = PaymentForm(
            kind=kind.value, amount_usd=amount, reference=f"pay-{uuid4().hex[:12]}"
        )
        self.service.record_payment(cert_id, form, BILLING)
        return amount

    def request_info(self, cert_id: UUID, respond_by: date | None = None) -> str:
        form = InfoRequestForm(
            questions=["Which crawl fed the model?"], respond_by=respond_by
        )
        _, request_id = self.service.request_info(cert_id, form, OPERATOR)
        return request_id

    def provide_info(self, cert_id: UUID) -> None:
        request = self.service.get(cert_id).open_info_request
        assert request is not None
        form = InfoResponseForm(
            request_id=request["request_id"], answers=["The 2025 licensed crawl."]
        )
        self.service.provide_info(cert_id, form, APPLICANT)

    def approve(self, cert_id: UUID) -> None:
        form = DecisionForm(outcome="approved", reason="every source is licensed")
        self.service.decide(cert_id, form, OPERATOR)

    def reject(self, cert_id: UUID) -> None:
        form = DecisionForm(outcome="rejected", reason="scraped data without consent")
        self.service.decide(cert_id, form, OPERATOR)

    def suspend(self, cert_id: UUID) -> None:
        self.service.suspend(cert_id, "complaint under investigation", OPERATOR)

    def reinstate(self, cert_id: UUID) -> None:
        self.service.reinstate(cert_id, "complaint dismissed", OPERATOR)

    def revoke(self, cert_id: UUID) -> None:
        self.service.revoke(cert_id, "licence breach confirmed", OPERATOR)

    def withdraw(self, cert_id: UUID) -> None:
        self.service.withdraw(cert_id, "no longer offering the model", APPLICANT)

    def in_review(self, name: str, revenue: int = 250_000) -> UUID:
        cert_id = self.start(name, revenue)
        self.submit(cert_id)
        self.pay_due(cert_id)
        return cert_id

    def certify(self, name: str, revenue: int = 250_000) -> UUID:
        cert_id = self.in_review(name, revenue)
        self.approve(cert_id)
        self.pay_due(cert_id)
        return cert_id


def payments_total(certification: Certification) -> Decimal:
    return sum(
        (payment.amount_usd for payment in certification.payments.values()),
        Decimal(0),
    )


def last_positions(service: CertificationService) -> dict[UUID, int]:
    """The store position of each certification's last event."""
    last = service.recorder.max_notification_id() or 0
    notifications = service.recorder.select_notifications(start=1, limit=last)
    return {note.originator_id: note.id for note in notifications}


def disagreements(
    row: StatusRow, certification: Certification, position: int, at: datetime
) -> dict[str, tuple[object, object]]:
    """Each field where the row says something else than the aggregate:
    the field's name, then what the row says and what the aggregate says."""
    due = certification.fees_due()
    severities = Counter(finding["severity"] for finding in certification.findings)
    request = certification.open_info_request
    # A final status closes the request, even where the aggregate keeps a copy.
    if request is None or certification.status in FINAL_STATUSES:
        open_request = (None, None)
    else:
        open_request = (request["request_id"], request["respond_by"])
    pairs: dict[str, tuple[object, object]] = {
        "status": (row.status, certification.status),
        "is_certified": (row.is_certified(day_of(at)), certification.is_certified(at)),
        "tier": (row.tier, certification.tier),
        "annual_revenue_usd": (
            row.annual_revenue_usd,
            certification.annual_revenue_usd,
        ),
        "valid_until": (row.valid_until, certification.valid_until),
        "certified_since": (row.certified_since, certification.certified_since),
        "renew_by": (row.renew_by, certification.renew_by),
        "in_renewal": (row.in_renewal, certification.in_renewal),
        "fee_due": (
            (row.fee_due_kind, row.fee_due_usd),
            (next(iter(due), None), sum(due.values(), Decimal(0))),
        ),
        "fees_paid_usd": (row.fees_paid_usd, payments_total(certification)),
        "payments": (
            sorted(payment.reference for payment in row.payments),
            sorted(certification.payments),
        ),
        "findings": (
            (row.findings_error, row.findings_warning, row.findings_info),
            (severities["error"], severities["warning"], severities["info"]),
        ),
        "open_info_request": ((row.info_request_id, row.info_respond_by), open_request),
        "version": (row.version, certification.version),
        "position": (row.position, position),
    }
    return {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}


def certd(
    database_url: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``certd`` on the store, and wait for it."""
    return subprocess.run(
        [str(CERTD), *args],
        env=certd_env(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def certd_env(database_url: str, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "CERTD_DATABASE_URL": database_url,
        "CERTD_LOG_FORMAT": "json",
        **{f"CERTD_{name.upper()}": value for name, value in settings.items()},
    }


def one_lifecycle(steps: Steps, index: int) -> UUID:
    """Take a new certification down one of several paths, by ``index``."""
    name = f"Traffic {index:04d} Ltd"
    path = index % 5
    if path == 0:
        cert_id = steps.in_review(name)
        steps.request_info(cert_id)
        steps.withdraw(cert_id)
        return cert_id
    cert_id = steps.certify(
        name, revenue=[50_000, 250_000, 700_000, 12_000_000][path - 1]
    )
    if path == 2:
        steps.suspend(cert_id)
        steps.reinstate(cert_id)
    elif path == 3:
        steps.revoke(cert_id)
    return cert_id
