"""The status view of one certification, evolved event by event.

A row holds what operations staff filter and sort on. ``evolve`` is pure: the
same events give the same row, which is what lets a rebuild be compared with
the live view.
"""

from __future__ import annotations

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
        return self.status is Status.CERTIFIED or (
            self.in_renewal and self.status in RENEWAL_STATUSES
        )

    def is_certified(self, today: date) -> bool:
        return (
            self.holds_certificate
            and self.valid_until is not None
            and today <= self.valid_until
        )


# TODO: evolve plain dicts within a batch and build one StatusRow per changed
# row at its end; two model_copy calls per event keep catch-up at about a third
# of the raw read's rate, short of the half the benchmark asks for.
def evolve(
    row: StatusRow | None,
    event: Certification.Event,
    position: int,
    lead_days: int,
) -> StatusRow:
    """Return the row after one more event of its certification."""
    if isinstance(event, Certification.ApplicationStarted):
        return _started(event, position)
    if row is None:
        msg = f"{type(event).__name__} came before ApplicationStarted"
        raise ValueError(msg)
    changes = _changes(row, event)
    changes.update(
        last_event_at=event.timestamp,
        version=event.originator_version,
        position=position,
    )
    evolved = row.model_copy(update=changes)
    due_on = (
        evolved.valid_until - timedelta(days=lead_days)
        if evolved.valid_until is not None and evolved.status is Status.CERTIFIED
        else None
    )
    return evolved.model_copy(update={"reevaluation_due_on": due_on})


def _started(event: Certification.ApplicationStarted, position: int) -> StatusRow:
    return StatusRow(
        id=event.originator_id,
        organisation_name=event.organisation["name"],
        organisation=event.organisation,
        models=event.models,
        status=Status.APPLIED,
        in_renewal=False,
        annual_revenue_usd=event.annual_revenue_usd,
        tier=RevenueTier(event.tier),
        payments=[],
        fees_invoiced_usd=Decimal(0),
        fees_paid_usd=Decimal(0),
        fee_due_kind=None,
        fee_due_usd=Decimal(0),
        certified_since=None,
        valid_until=None,
        reevaluation_due_on=None,
        renew_by=None,
        info_request_id=None,
        info_respond_by=None,
        findings_error=0,
        findings_warning=0,
        findings_info=0,
        created_at=event.timestamp,
        last_event_at=event.timestamp,
        version=event.originator_version,
        position=position,
    )


def _changes(row: StatusRow, event: Certification.Event) -> dict[str, Any]:
    # Subclasses before their bases: ReevaluationSubmitted is a SubmissionReceived.
    if isinstance(event, Certification.ReevaluationSubmitted):
        return {**_submitted(event), "status": Status.IN_REVIEW}
    if isinstance(event, Certification.SubmissionReceived):
        tier_fees = fees_for_tier(RevenueTier(event.tier))
        return {
            **_submitted(event),
            "status": Status.SUBMITTED,
            **_invoice(row, FeeKind.SUBMISSION_FEE, tier_fees.submission_fee),
        }
    if isinstance(event, Certification.SubmissionFeePaid | Certification.AnnualFeePaid):
        return _paid(row, event)
    if isinstance(event, Certification.InfoRequested):
        return {
            "status": Status.AWAITING_INFO,
            "info_request_id": event.request_id,
            "info_respond_by": event.respond_by,
        }
    if isinstance(event, Certification.InfoProvided):
        return {
            "status": Status.IN_REVIEW,
            "info_request_id": None,
            "info_respond_by": None,
        }
    if isinstance(event, Certification.Approved):
        annual_fee = fees_for_tier(row.tier).annual_fee
        return {
            "status": Status.APPROVED,
            **_invoice(row, FeeKind.ANNUAL_FEE, annual_fee),
        }
    return _end_or_interrupt(row, event)


def _end_or_interrupt(row: StatusRow, event: Certification.Event) -> dict[str, Any]:
    if isinstance(event, Certification.ReevaluationDue):
        return {
            "status": Status.REEVALUATION_DUE,
            "in_renewal": True,
            "renew_by": event.renew_by,
        }
    if isinstance(event, Certification.Suspended):
        # Nothing can be paid while suspended; the fee falls due again on
        # reinstatement, as the aggregate's ``fees_due`` says.
        return {"status": Status.SUSPENDED, **_fee_due(None, Decimal(0))}
    if isinstance(event, Certification.Reinstated):
        restored = Status(event.status)
        return {"status": restored, **_fee_due_in(restored, row.tier)}
    final = {
        Certification.Rejected: Status.REJECTED,
        Certification.CertificationLapsed: Status.LAPSED,
        Certification.Revoked: Status.REVOKED,
        Certification.Withdrawn: Status.WITHDRAWN,
    }
    status = final.get(type(event))
    if status is None:
        msg = f"the status view does not know the event {type(event).__name__}"
        raise ValueError(msg)
    return {
        "status": status,
        "fee_due_kind": None,
        "fee_due_usd": Decimal(0),
        "info_request_id": None,
        "info_respond_by": None,
    }


def _submitted(event: Certification.SubmissionReceived) -> dict[str, Any]:
    counts = dict.fromkeys(Severity, 0)
    for finding in event.findings:
        counts[Severity(finding["severity"])] += 1
    return {
        "annual_revenue_usd": event.annual_revenue_usd,
        "tier": RevenueTier(event.tier),
        "findings_error": counts[Severity.ERROR],
        "findings_warning": counts[Severity.WARNING],
        "findings_info": counts[Severity.INFO],
    }


def _fee_due(kind: FeeKind | None, amount: Decimal) -> dict[str, Any]:
    return {"fee_due_kind": kind, "fee_due_usd": amount}


def _fee_due_in(status: Status, tier: RevenueTier) -> dict[str, Any]:
    """Return the fee a certification in ``status`` owes, invoiced before."""
    tier_fees = fees_for_tier(tier)
    if status is Status.SUBMITTED:
        return _fee_due(FeeKind.SUBMISSION_FEE, tier_fees.submission_fee)
    if status is Status.APPROVED:
        return _fee_due(FeeKind.ANNUAL_FEE, tier_fees.annual_fee)
    return _fee_due(None, Decimal(0))


def _invoice(row: StatusRow, kind: FeeKind, amount: Decimal) -> dict[str, Any]:
    return {
        "fee_due_kind": kind,
        "fee_due_usd": amount,
        "fees_invoiced_usd": row.fees_invoiced_usd + amount,
    }


def _paid(
    row: StatusRow,
    event: Certification.SubmissionFeePaid | Certification.AnnualFeePaid,
) -> dict[str, Any]:
    is_annual = isinstance(event, Certification.AnnualFeePaid)
    payment = Payment(
        kind=FeeKind.ANNUAL_FEE if is_annual else FeeKind.SUBMISSION_FEE,
        amount_usd=event.amount_usd,
        reference=event.reference,
        paid_at=event.timestamp,
    )
    changes: dict[str, Any] = {
        "status": Status.IN_REVIEW,
        "payments": [*row.payments, payment],
        "fee_due_kind": None,
        "fee_due_usd": Decimal(0),
        "fees_paid_usd": row.fees_paid_usd + event.amount_usd,
    }
    if isinstance(event, Certification.AnnualFeePaid):
        changes.update(
            status=Status.CERTIFIED,
            in_renewal=False,
            renew_by=None,
            valid_until=event.valid_until,
            certified_since=row.certified_since or day_of(event.timestamp),
        )
    return changes
