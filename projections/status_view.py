"""The status view of one certification, evolved event by event.

A row holds what operations staff filter and sort on. ``evolve`` is pure: the
same events give the same row, which is what lets a rebuild be compared with
the live view.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.certification import RENEWAL_STATUSES, Certification, Status, day_of
from domain.fees import FeeKind, RevenueTier, fees_for_tier
from domain.screening import Severity


class Payment(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: FeeKind
    amount_usd: Decimal
    reference: str
    paid_at: datetime


class StatusRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    organisation_name: str
    organisation: dict[str, Any]
    models: list[dict[str, Any]]
    status: Status
    in_renewal: bool
    annual_revenue_usd: Decimal
    tier: RevenueTier
    payments: list[Payment]
    fees_invoiced_usd: Decimal
    fees_paid_usd: Decimal
    fee_due_kind: FeeKind | None
    fee_due_usd: Decimal
    certified_since: date | None
    valid_until: date | None
    reevaluation_due_on: date | None
    renew_by: date | None
    info_request_id: str | None
    info_respond_by: date | None
    findings_error: int
    findings_warning: int
    findings_info: int
    created_at: datetime
    last_event_at: datetime
    version: int
    position: int

    @property
    def holds_certificate(self) -> bool:
        """Whether the status keeps a paid certificate alive (expiry aside)."""
        return holds_certificate(self.status, self.in_renewal)

    def is_certified(self, today: date) -> bool:
        return (
            self.holds_certificate
            and self.valid_until is not None
            and today <= self.valid_until
        )


# The fields of a StatusRow while a batch of events evolves it.
Draft = dict[str, Any]


def holds_certificate(status: Status, in_renewal: bool) -> bool:
    """Whether a row in ``status`` keeps a paid certificate alive (expiry
    aside): certified, or any step of a renewal."""
    return status is Status.CERTIFIED or (in_renewal and status in RENEWAL_STATUSES)


def evolve(
    row: StatusRow | None,
    event: Certification.Event,
    position: int,
    lead_days: int,
) -> StatusRow:
    """Return the row after one more event of its certification."""
    draft = None if row is None else draft_of(row)
    return finish(advance(draft, event, position, lead_days))


def draft_of(row: StatusRow) -> Draft:
    """Return a row's fields as a draft that ``advance`` may change."""
    # A pydantic model keeps its field values in its __dict__; copying it is
    # twenty times quicker than dict(row), which walks the fields one by one.
    return vars(row).copy()


def finish(draft: Draft) -> StatusRow:
    """Return the row a draft describes.

    ``advance`` builds every value of a draft with its field's own type, so
    the row is not validated again: validating the organisation, models and
    payments of every changed row cost a catch-up as much as evolving them.
    Payments are kept in a draft as their fields, made a ``Payment`` here.
    """
    payments = [
        payment if isinstance(payment, Payment) else Payment.model_construct(**payment)
        for payment in draft["payments"]
    ]
    return StatusRow.model_construct(**{**draft, "payments": payments})


def advance(
    draft: Draft | None,
    event: Certification.Event,
    position: int,
    lead_days: int,
) -> Draft:
    """Change a draft by one more event of its certification and return it;
    the first event makes a new draft."""
    if isinstance(event, Certification.ApplicationStarted):
        return _started(event, position)
    if draft is None:
        msg = f"{type(event).__name__} came before ApplicationStarted"
        raise ValueError(msg)
    change = _CHANGES.get(type(event))
    if change is None:
        msg = f"the status view does not know the event {type(event).__name__}"
        raise ValueError(msg)
    change(draft, event)
    draft["last_event_at"] = event.timestamp
    draft["version"] = event.originator_version
    draft["position"] = position
    valid_until = draft["valid_until"]
    certified = valid_until is not None and draft["status"] is Status.CERTIFIED
    draft["reevaluation_due_on"] = (
        valid_until - timedelta(days=lead_days) if certified else None
    )
    return draft


def _started(event: Certification.ApplicationStarted, position: int) -> Draft:
    return {
        "id": event.originator_id,
        "organisation_name": event.organisation["name"],
        "organisation": event.organisation,
        "models": event.models,
        "status": Status.APPLIED,
        "in_renewal": False,
        "annual_revenue_usd": event.annual_revenue_usd,
        "tier": RevenueTier(event.tier),
        "payments": [],
        "fees_invoiced_usd": Decimal(0),
        "fees_paid_usd": Decimal(0),
        "fee_due_kind": None,
        "fee_due_usd": Decimal(0),
        "certified_since": None,
        "valid_until": None,
        "reevaluation_due_on": None,
        "renew_by": None,
        "info_request_id": None,
        "info_respond_by": None,
        "findings_error": 0,
        "findings_warning": 0,
        "findings_info": 0,
        "created_at": event.timestamp,
        "last_event_at": event.timestamp,
        "version": event.originator_version,
        "position": position,
    }


# Each change below mutates a draft by one event of its type.

_SEVERITIES = tuple(Severity)


def _submission_received(draft: Draft, event: Any) -> None:
    _take_submission(draft, event)
    draft["status"] = Status.SUBMITTED
    tier_fees = fees_for_tier(draft["tier"])
    _invoice(draft, FeeKind.SUBMISSION_FEE, tier_fees.submission_fee)


def _reevaluation_submitted(draft: Draft, event: Any) -> None:
    _take_submission(draft, event)
    draft["status"] = Status.IN_REVIEW


def _take_submission(draft: Draft, event: Certification.SubmissionReceived) -> None:
    severities = dict.fromkeys(_SEVERITIES, 0)
    for finding in event.findings:
        severity = finding["severity"]
        if severity in severities:
            severities[severity] += 1
    draft["annual_revenue_usd"] = event.annual_revenue_usd
    draft["tier"] = RevenueTier(event.tier)
    draft["findings_error"] = severities[Severity.ERROR]
    draft["findings_warning"] = severities[Severity.WARNING]
    draft["findings_info"] = severities[Severity.INFO]


def _submission_fee_paid(draft: Draft, event: Any) -> None:
    _take_payment(draft, FeeKind.SUBMISSION_FEE, event)
    draft["status"] = Status.IN_REVIEW


def _annual_fee_paid(draft: Draft, event: Any) -> None:
    _take_payment(draft, FeeKind.ANNUAL_FEE, event)
    draft["status"] = Status.CERTIFIED
    draft["in_renewal"] = False
    draft["renew_by"] = None
    draft["valid_until"] = event.valid_until
    draft["certified_since"] = draft["certified_since"] or day_of(event.timestamp)


def _take_payment(
    draft: Draft,
    kind: FeeKind,
    event: Certification.SubmissionFeePaid | Certification.AnnualFeePaid,
) -> None:
    # A payment's fields, typed already by the event: ``finish`` makes them
    # a Payment, and a catch-up writes them as they are.
    payment = {
        "kind": kind,
        "amount_usd": event.amount_usd,
        "reference": event.reference,
        "paid_at": event.timestamp,
    }
    draft["payments"] = [*draft["payments"], payment]
    draft["fees_paid_usd"] = draft["fees_paid_usd"] + event.amount_usd
    _fee_due(draft, None, Decimal(0))


def _info_requested(draft: Draft, event: Any) -> None:
    draft["status"] = Status.AWAITING_INFO
    draft["info_request_id"] = event.request_id
    draft["info_respond_by"] = event.respond_by


def _info_provided(draft: Draft, event: Any) -> None:
    draft["status"] = Status.IN_REVIEW
    draft["info_request_id"] = None
    draft["info_respond_by"] = None


def _approved(draft: Draft, event: Any) -> None:
    draft["status"] = Status.APPROVED
    _invoice(draft, FeeKind.ANNUAL_FEE, fees_for_tier(draft["tier"]).annual_fee)


def _reevaluation_due(draft: Draft, event: Any) -> None:
    draft["status"] = Status.REEVALUATION_DUE
    draft["in_renewal"] = True
    draft["renew_by"] = event.renew_by


def _suspended(draft: Draft, event: Any) -> None:
    # Nothing can be paid while suspended; the fee falls due again on
    # reinstatement, as the aggregate's ``fees_due`` says.
    draft["status"] = Status.SUSPENDED
    _fee_due(draft, None, Decimal(0))


def _reinstated(draft: Draft, event: Any) -> None:
    restored = Status(event.status)
    draft["status"] = restored
    tier_fees = fees_for_tier(draft["tier"])
    if restored is Status.SUBMITTED:
        _fee_due(draft, FeeKind.SUBMISSION_FEE, tier_fees.submission_fee)
    elif restored is Status.APPROVED:
        _fee_due(draft, FeeKind.ANNUAL_FEE, tier_fees.annual_fee)
    else:
        _fee_due(draft, None, Decimal(0))


def _ended_as(status: Status) -> Callable[[Draft, Any], None]:
    def end(draft: Draft, event: Any) -> None:
        draft["status"] = status
        draft["info_request_id"] = None
        draft["info_respond_by"] = None
        _fee_due(draft, None, Decimal(0))

    return end


def _fee_due(draft: Draft, kind: FeeKind | None, amount: Decimal) -> None:
    draft["fee_due_kind"] = kind
    draft["fee_due_usd"] = amount


def _invoice(draft: Draft, kind: FeeKind, amount: Decimal) -> None:
    _fee_due(draft, kind, amount)
    draft["fees_invoiced_usd"] = draft["fees_invoiced_usd"] + amount


# Keyed by the exact type: ReevaluationSubmitted is a SubmissionReceived that
# changes a row differently.
_CHANGES: dict[type, Callable[[Draft, Any], None]] = {
    Certification.SubmissionReceived: _submission_received,
    Certification.ReevaluationSubmitted: _reevaluation_submitted,
    Certification.SubmissionFeePaid: _submission_fee_paid,
    Certification.AnnualFeePaid: _annual_fee_paid,
    Certification.InfoRequested: _info_requested,
    Certification.InfoProvided: _info_provided,
    Certification.Approved: _approved,
    Certification.ReevaluationDue: _reevaluation_due,
    Certification.Suspended: _suspended,
    Certification.Reinstated: _reinstated,
    Certification.Rejected: _ended_as(Status.REJECTED),
    Certification.CertificationLapsed: _ended_as(Status.LAPSED),
    Certification.Revoked: _ended_as(Status.REVOKED),
    Certification.Withdrawn: _ended_as(Status.WITHDRAWN),
}
