"""What the HTTP API answers: frozen read models built from a certification.

Money is a decimal string of USD (``"150"``), so no client rounds it.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.certification import Certification, PaymentRecord, Status
from domain.fees import FeeKind, RevenueTier, fees_for_tier
from domain.screening import Finding
from projections.status_view import StatusRow
from service.application import event_data


class ReadModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class FeeDue(ReadModel):
    kind: FeeKind
    amount_usd: Decimal


class FeePaid(ReadModel):
    kind: FeeKind
    amount_usd: Decimal
    reference: str
    paid_at: datetime


class Fees(ReadModel):
    tier: RevenueTier
    submission_fee_usd: Decimal
    annual_fee_usd: Decimal
    due: list[FeeDue]
    paid: list[FeePaid]


class InfoRequest(ReadModel):
    request_id: str
    questions: list[str]
    respond_by: date | None
    requested_at: datetime


class CertificationView(ReadModel):
    id: UUID
    status: Status
    is_certified: bool
    organisation: dict[str, Any]
    contact: dict[str, Any]
    models: list[dict[str, Any]]
    annual_revenue_usd: Decimal
    tier: RevenueTier
    fees: Fees
    findings: list[Finding]
    open_info_request: InfoRequest | None
    certified_since: date | None
    valid_until: date | None
    reevaluation_due_on: date | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls, cert: Certification, now: datetime, lead_days: int
    ) -> "CertificationView":
        return cls(
            id=cert.id,
            status=cert.status,
            is_certified=cert.is_certified(now),
            organisation=cert.organisation,
            contact=cert.contact,
            models=cert.models,
            annual_revenue_usd=cert.annual_revenue_usd,
            tier=cert.tier,
            fees=_fees_of(cert),
            findings=[Finding.model_validate(item) for item in cert.findings],
            open_info_request=(
                InfoRequest.model_validate(cert.open_info_request)
                if cert.open_info_request
                else None
            ),
            certified_since=cert.certified_since,
            valid_until=cert.valid_until,
            reevaluation_due_on=(
                cert.valid_until - timedelta(days=lead_days)
                if cert.valid_until and cert.status is Status.CERTIFIED
                else None
            ),
            version=cert.version,
            created_at=cert.created_on,
            updated_at=cert.modified_on,
        )


class InfoRequestAccepted(CertificationView):
    request_id: str


class PaymentReceipt(ReadModel):
    """The answer to a payment, the same for every delivery of it."""

    certification_id: UUID
    kind: FeeKind
    amount_usd: Decimal
    reference: str
    paid_at: datetime
    version: int

    @classmethod
    def of(cls, certification_id: UUID, record: PaymentRecord) -> "PaymentReceipt":
        return cls(
            certification_id=certification_id,
            kind=record.kind,
            amount_usd=record.amount_usd,
            reference=record.reference,
            paid_at=record.paid_at,
            version=record.version,
        )


class HistoryEntry(ReadModel):
    type: str
    version: int
    occurred_at: datetime
    actor: dict[str, str]
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Certification.Event) -> "HistoryEntry":
        """An event as the history shows it, over HTTP and on the command line."""
        return cls(
            type=type(event).__name__,
            version=event.originator_version,
            occurred_at=event.timestamp,
            actor=event.actor,
            data=event_data(event),
        )


class ErrorBody(ReadModel):
    detail: str


def _fees_of(cert: Certification) -> Fees:
    return Fees(
        tier=cert.tier,
        submission_fee_usd=cert.fees.submission_fee,
        annual_fee_usd=cert.fees.annual_fee,
        due=[
            FeeDue(kind=kind, amount_usd=amount)
            for kind, amount in cert.fees_due().items()
        ],
        paid=[
            FeePaid(
                kind=record.kind,
                amount_usd=record.amount_usd,
                reference=record.reference,
                paid_at=record.paid_at,
            )
            for record in cert.payments.values()
        ],
    )


class StatusFees(ReadModel):
    tier: RevenueTier
    submission_fee_usd: Decimal
    annual_fee_usd: Decimal
    due: list[FeeDue]
    paid: list[FeePaid]
    invoiced_usd: Decimal
    paid_usd: Decimal
    outstanding_usd: Decimal


class OpenInfoRequest(ReadModel):
    request_id: str
    respond_by: date | None


class FindingCounts(ReadModel):
    error: int
    warning: int
    info: int


class StatusView(ReadModel):
    """One certification as the status views hold it."""

    id: UUID
    status: Status
    is_certified: bool
    organisation: dict[str, Any]
    models: list[dict[str, Any]]
    annual_revenue_usd: Decimal
    tier: RevenueTier
    fees: StatusFees
    findings: FindingCounts
    open_info_request: OpenInfoRequest | None
    certified_since: date | None
    valid_until: date | None
    reevaluation_due_on: date | None
    renew_by: date | None
    created_at: datetime
    last_event_at: datetime
    version: int
    position: int

    @classmethod
    def of(cls, row: StatusRow, today: date) -> "StatusView":
        tier_fees = fees_for_tier(row.tier)
        due = (
            [FeeDue(kind=row.fee_due_kind, amount_usd=row.fee_due_usd)]
            if row.fee_due_kind
            else []
        )
        return cls(
            id=row.id,
            status=row.status,
            is_certified=row.is_certified(today),
            organisation=row.organisation,
            models=row.models,
            annual_revenue_usd=row.annual_revenue_usd,
            tier=row.tier,
            fees=StatusFees(
                tier=row.tier,
                submission_fee_usd=tier_fees.submission_fee,
                annual_fee_usd=tier_fees.annual_fee,
                due=due,
                paid=[FeePaid(**dict(payment)) for payment in row.payments],
                invoiced_usd=row.fees_invoiced_usd,
                paid_usd=row.fees_paid_usd,
                outstanding_usd=row.fee_due_usd,
            ),
            findings=FindingCounts(
                error=row.findings_error,
                warning=row.findings_warning,
                info=row.findings_info,
            ),
            open_info_request=(
                OpenInfoRequest(
                    request_id=row.info_request_id, respond_by=row.info_respond_by
                )
                if row.info_request_id
                else None
            ),
            certified_since=row.certified_since,
            valid_until=row.valid_until,
            reevaluation_due_on=row.reevaluation_due_on,
            renew_by=row.renew_by,
            created_at=row.created_at,
            last_event_at=row.last_event_at,
            version=row.version,
            position=row.position,
        )


class StatusPage(ReadModel):
    items: list[StatusView]
    next_cursor: str | None
    view_position: int


class StatusTierCount(ReadModel):
    status: Status
    tier: RevenueTier
    count: int


class TierFees(ReadModel):
    tier: RevenueTier
    certifications: int
    certified: int
    invoiced_usd: Decimal
    paid_usd: Decimal
    outstanding_usd: Decimal


class Stats(ReadModel):
    counts: list[StatusTierCount]
    by_status: dict[Status, int]
    fees_by_tier: list[TierFees]
    view_position: int


class RegistryEntry(ReadModel):
    organisation: str
    website: str | None
    country: str
    models: list[str]
    certified_since: date | None
    valid_until: date | None
    suspended: bool


class Registry(ReadModel):
    as_of: date
    organisations: list[RegistryEntry]
