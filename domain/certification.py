"""The Certification aggregate: one organisation's Licensed Model certification.

Every method that changes a certification checks its rules first and then
records one event; only an event's ``apply`` changes state, so replaying the
stored events rebuilds exactly the certification that was decided on.
Every event records who caused it (``actor``) and takes its timestamp from
the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.actor import SCHEDULER, Actor
from domain.errors import (
    FeeMismatchError,
    InvalidCommandError,
    NotYetDueError,
    PaymentReferenceReusedError,
    RenewalClosedError,
    StatusConflictError,
    UnknownInfoRequestError,
)
from domain.fees import FeeKind, RevenueTier, TierFees, fees_for_revenue, fees_for_tier
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    DeclaredModel,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    SubmissionForm,
)
from domain.screening import screen


class Status(StrEnum):
    APPLIED = "applied"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    AWAITING_INFO = "awaiting_info"
    APPROVED = "approved"
    REJECTED = "rejected"
    CERTIFIED = "certified"
    REEVALUATION_DUE = "reevaluation_due"
    LAPSED = "lapsed"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"


FINAL_STATUSES = frozenset(
    {Status.REJECTED, Status.LAPSED, Status.REVOKED, Status.WITHDRAWN}
)
# The statuses a renewal passes through before its annual fee is paid.
RENEWAL_STATUSES = frozenset(
    {Status.REEVALUATION_DUE, Status.IN_REVIEW, Status.AWAITING_INFO, Status.APPROVED}
)
NON_FINAL_STATUSES = frozenset(Status) - FINAL_STATUSES
# Every fee is paid in USD; payment events say so since their version 2.
PAYMENT_CURRENCY = "USD"


@dataclass(frozen=True)
class PaymentRecord:
    kind: FeeKind
    amount_usd: Decimal
    reference: str
    paid_at: datetime
    version: int


def day_of(instant: datetime) -> date:
    """Return the UTC calendar day of an instant; every deadline is a UTC day."""
    return instant.astimezone(UTC).date()


def add_one_year(day: date) -> date:
    """Return the same day a year later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


class Certification(Aggregate):
    def __init__(
        self,
        organisation: dict[str, Any],
        contact: dict[str, Any],
        models: list[dict[str, Any]],
        annual_revenue_usd: Decimal,
        tier: str,
    ) -> None:
        self.status = Status.APPLIED
        self.organisation = organisation
        self.contact = contact
        self.models = models
        self.annual_revenue_usd = annual_revenue_usd
        self.tier = RevenueTier(tier)
        self.submission: dict[str, Any] | None = None
        self.findings: list[dict[str, Any]] = []
        self.payments: dict[str, PaymentRecord] = {}
        self.open_info_request: dict[str, Any] | None = None
        self.valid_until: date | None = None
        self.certified_since: date | None = None
        self.in_renewal = False
        self.reevaluation_cycle = 0
        self.renew_by: date | None = None
        self.status_before_suspension: Status | None = None

    class Event(Aggregate.Event):
        actor: dict[str, str]

    class ApplicationStarted(Event, Aggregate.Created):
        organisation: dict[str, Any]
        contact: dict[str, Any]
        models: list[dict[str, Any]]
        annual_revenue_usd: Decimal
        tier: str

    class SubmissionReceived(Event):
        submission: dict[str, Any]
        annual_revenue_usd: Decimal
        tier: str
        findings: list[dict[str, Any]]

        def apply(self, cert: Certification) -> None:
            cert.status = Status.SUBMITTED
            cert.take_submission(self)

    class ReevaluationSubmitted(SubmissionReceived):
        def apply(self, cert: Certification) -> None:
            cert.status = Status.IN_REVIEW
            cert.take_submission(self)

    class SubmissionFeePaid(Event):
        """Version 2 names the currency; version 1 events are read as USD."""

        class_version = 2
        amount_usd: Decimal
        reference: str
        currency: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["currency"] = PAYMENT_CURRENCY

        def apply(self, cert: Certification) -> None:
            cert.status = Status.IN_REVIEW
            cert.take_payment(FeeKind.SUBMISSION_FEE, self)

    class InfoRequested(Event):
        request_id: str
        questions: list[str]
        respond_by: date | None

        def apply(self, cert: Certification) -> None:
            cert.status = Status.AWAITING_INFO
            cert.open_info_request = {
                "request_id": self.request_id,
                "questions": self.questions,
                "respond_by": self.respond_by,
                "requested_at": self.timestamp,
            }

    class InfoProvided(Event):
        request_id: str
        answers: list[str]

        def apply(self, cert: Certification) -> None:
            cert.status = Status.IN_REVIEW
            cert.open_info_request = None

    class Approved(Event):
        reason: str

        def apply(self, cert: Certification) -> None:
            cert.status = Status.APPROVED

    class Rejected(Event):
        reason: str

        def apply(self, cert: Certification) -> None:
            cert.status = Status.REJECTED
            cert.open_info_request = None

    class AnnualFeePaid(Event):
        """Version 2 names the currency; version 1 events are read as USD."""

        class_version = 2
        amount_usd: Decimal
        reference: str
        valid_until: date
        currency: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["currency"] = PAYMENT_CURRENCY

        def apply(self, cert: Certification) -> None:
            cert.status = Status.CERTIFIED
            cert.take_payment(FeeKind.ANNUAL_FEE, self)
            if cert.certified_since is None:
                cert.certified_since = day_of(self.timestamp)
            cert.valid_until = self.valid_until
            cert.in_renewal = False
            cert.renew_by = None

    class ReevaluationDue(Event):
        cycle: int
        valid_until: date
        due_on: date
        renew_by: date

        def apply(self, cert: Certification) -> None:
            cert.status = Status.REEVALUATION_DUE
            cert.in_renewal = True
            cert.reevaluation_cycle = self.cycle
            cert.renew_by = self.renew_by

    class CertificationLapsed(Event):
        valid_until: date
        renew_by: date

        def apply(self, cert: Certification) -> None:
            cert.status = Status.LAPSED
            cert.open_info_request = None

    class Suspended(Event):
        reason: str
        previous_status: str

        def apply(self, cert: Certification) -> None:
            cert.status_before_suspension = Status(self.previous_status)
            cert.status = Status.SUSPENDED

    class Reinstated(Event):
        reason: str
        status: str

        def apply(self, cert: Certification) -> None:
            cert.status = Status(self.status)
            cert.status_before_suspension = None

    class Revoked(Event):
        reason: str

        def apply(self, cert: Certification) -> None:
            cert.status = Status.REVOKED
            cert.open_info_request = None

    class Withdrawn(Event):
        reason: str

        def apply(self, cert: Certification) -> None:
            cert.status = Status.WITHDRAWN
            cert.open_info_request = None

    # Commands.

    @classmethod
    def start(
        cls, form: ApplicationForm, *, id: UUID, actor: Actor, at: datetime
    ) -> Certification:
        return cls._create(
            cls.ApplicationStarted,
            id=id,
            timestamp=at,
            actor=actor.as_record(),
            organisation=form.organisation.model_dump(mode="json"),
            contact=form.contact.model_dump(mode="json"),
            models=[model.model_dump(mode="json") for model in form.models],
            annual_revenue_usd=form.annual_revenue_usd,
            tier=fees_for_revenue(form.annual_revenue_usd).tier.value,
        )

    def submit(self, form: SubmissionForm, *, actor: Actor, at: datetime) -> None:
        """Take the written submission, or the re-submission of a renewal.

        A renewal goes straight to review: its submission fee is not charged.
        """
        self._require("submit", Status.APPLIED, Status.REEVALUATION_DUE)
        self._require_renewal_open("submit", at)
        self._check_model_references(form)
        revenue = form.annual_revenue_usd
        if revenue is None:
            revenue = self.annual_revenue_usd
        event_class = (
            self.ReevaluationSubmitted
            if self.status is Status.REEVALUATION_DUE
            else self.SubmissionReceived
        )
        findings = screen(form, self.declared_models)
        self._record(
            event_class,
            actor,
            at,
            submission=form.model_dump(mode="json"),
            annual_revenue_usd=revenue,
            tier=fees_for_revenue(revenue).tier.value,
            findings=[finding.model_dump(mode="json") for finding in findings],
        )

    def pay(self, form: PaymentForm, *, actor: Actor, at: datetime) -> PaymentRecord:
        """Record a fee paid in full; a known reference changes nothing."""
        known = self.payments.get(form.reference)
        if known is not None:
            return self._confirm_repeat(known, form)
        kind = FeeKind(form.kind)
        if kind is FeeKind.SUBMISSION_FEE:
            self._require("pay_submission_fee", Status.SUBMITTED)
        else:
            self._require("pay_annual_fee", Status.APPROVED)
            self._require_renewal_open("pay_annual_fee", at)
        self._require_exact_fee(kind, form.amount_usd)
        if kind is FeeKind.SUBMISSION_FEE:
            self._record(
                self.SubmissionFeePaid,
                actor,
                at,
                amount_usd=form.amount_usd,
                reference=form.reference,
                currency=PAYMENT_CURRENCY,
            )
        else:
            self._record(
                self.AnnualFeePaid,
                actor,
                at,
                amount_usd=form.amount_usd,
                reference=form.reference,
                valid_until=self._next_valid_until(at),
                currency=PAYMENT_CURRENCY,
            )
        return self.payments[form.reference]

    def request_info(
        self, request_id: str, form: InfoRequestForm, *, actor: Actor, at: datetime
    ) -> None:
        self._require("request_info", Status.IN_REVIEW)
        self._require_renewal_open("request_info", at)
        if form.respond_by is not None and form.respond_by < day_of(at):
            raise InvalidCommandError(
                "respond_by", f"{form.respond_by.isoformat()} is already past"
            )
        self._record(
            self.InfoRequested,
            actor,
            at,
            request_id=request_id,
            questions=list(form.questions),
            respond_by=form.respond_by,
        )

    def provide_info(
        self, form: InfoResponseForm, *, actor: Actor, at: datetime
    ) -> None:
        self._require("provide_info", Status.AWAITING_INFO)
        self._require_renewal_open("provide_info", at)
        assert self.open_info_request is not None  # noqa: S101 (set with the status)
        open_id = self.open_info_request["request_id"]
        if form.request_id != open_id:
            msg = (
                f"information request '{form.request_id}' is not the open one; "
                f"answer request '{open_id}'"
            )
            raise UnknownInfoRequestError(msg)
        self._record(
            self.InfoProvided,
            actor,
            at,
            request_id=form.request_id,
            answers=list(form.answers),
        )

    def decide(self, form: DecisionForm, *, actor: Actor, at: datetime) -> None:
        self._require("decide", Status.IN_REVIEW)
        self._require_renewal_open("decide", at)
        event_class = self.Approved if form.outcome == "approved" else self.Rejected
        self._record(event_class, actor, at, reason=form.reason)

    def raise_reevaluation_due(
        self, *, lead_days: int, grace_days: int, at: datetime
    ) -> None:
        """Open this year's re-evaluation, ``lead_days`` before expiry.

        Only a certified certification can fall due, and the status it moves
        to refuses a second call, so each cycle is raised once. The renewal
        must be approved and paid by ``valid_until`` plus ``grace_days``; the
        event fixes that day, so a later change of settings cannot move it.
        """
        self._require("raise_reevaluation_due", Status.CERTIFIED)
        assert self.valid_until is not None  # noqa: S101 (set when certified)
        due_on = self.valid_until - timedelta(days=lead_days)
        if day_of(at) < due_on:
            msg = (
                f"re-evaluation of the certification valid until "
                f"{self.valid_until.isoformat()} is due on {due_on.isoformat()}"
            )
            raise NotYetDueError(msg)
        self._record(
            self.ReevaluationDue,
            SCHEDULER,
            at,
            cycle=self.reevaluation_cycle + 1,
            valid_until=self.valid_until,
            due_on=due_on,
            renew_by=self.valid_until + timedelta(days=grace_days),
        )

    def lapse(self, *, at: datetime) -> None:
        """End a certification whose renewal was not approved and paid in time."""
        if not self.is_renewing:
            raise StatusConflictError("lapse", self.status, "a renewal in progress")
        assert self.renew_by is not None  # noqa: S101 (set with the renewal)
        if day_of(at) <= self.renew_by:
            msg = f"the renewal may still be approved and paid until {self.renew_by}"
            raise NotYetDueError(msg)
        self._record(
            self.CertificationLapsed,
            SCHEDULER,
            at,
            valid_until=self.valid_until,
            renew_by=self.renew_by,
        )

    def suspend(self, reason: str, *, actor: Actor, at: datetime) -> None:
        if not (self.status is Status.CERTIFIED or self.is_renewing):
            raise StatusConflictError(
                "suspend", self.status, "'certified' or a renewal in progress"
            )
        self._record(
            self.Suspended, actor, at, reason=reason, previous_status=self.status.value
        )

    def reinstate(self, reason: str, *, actor: Actor, at: datetime) -> None:
        self._require("reinstate", Status.SUSPENDED)
        assert self.status_before_suspension is not None  # noqa: S101
        self._record(
            self.Reinstated,
            actor,
            at,
            reason=reason,
            status=self.status_before_suspension.value,
        )

    def revoke(self, reason: str, *, actor: Actor, at: datetime) -> None:
        self._require("revoke", *NON_FINAL_STATUSES)
        self._record(self.Revoked, actor, at, reason=reason)

    def withdraw(self, reason: str, *, actor: Actor, at: datetime) -> None:
        self._require("withdraw", *NON_FINAL_STATUSES)
        self._record(self.Withdrawn, actor, at, reason=reason)

    # Queries.

    @property
    def fees(self) -> TierFees:
        return fees_for_tier(self.tier)

    @property
    def declared_models(self) -> list[DeclaredModel]:
        return [DeclaredModel.model_validate(model) for model in self.models]

    @property
    def is_renewing(self) -> bool:
        return self.in_renewal and self.status in RENEWAL_STATUSES

    def is_certified(self, at: datetime) -> bool:
        """Whether a paid, unexpired, unsuspended, unrevoked certification exists.

        It stays true while a renewal is under way, until ``valid_until``.
        """
        if self.valid_until is None or day_of(at) > self.valid_until:
            return False
        return self.status is Status.CERTIFIED or self.is_renewing

    def fees_due(self) -> dict[FeeKind, Decimal]:
        if self.status is Status.SUBMITTED:
            return {FeeKind.SUBMISSION_FEE: self.fees.submission_fee}
        if self.status is Status.APPROVED:
            return {FeeKind.ANNUAL_FEE: self.fees.annual_fee}
        return {}

    # Steps shared by the events' apply methods.

    def take_submission(self, event: SubmissionReceived) -> None:
        self.submission = event.submission
        self.annual_revenue_usd = event.annual_revenue_usd
        self.tier = RevenueTier(event.tier)
        self.findings = event.findings

    def take_payment(
        self, kind: FeeKind, event: SubmissionFeePaid | AnnualFeePaid
    ) -> None:
        self.payments[event.reference] = PaymentRecord(
            kind=kind,
            amount_usd=event.amount_usd,
            reference=event.reference,
            paid_at=event.timestamp,
            version=event.originator_version,
        )

    # Rules shared by the commands.

    def _record(
        self,
        event_class: type[Certification.Event],
        actor: Actor,
        at: datetime,
        **fields: Any,
    ) -> None:
        self.trigger_event(event_class, timestamp=at, actor=actor.as_record(), **fields)

    def _require(self, command: str, *allowed: Status) -> None:
        if self.status not in allowed:
            expected = ", ".join(f"'{status}'" for status in sorted(allowed))
            raise StatusConflictError(command, self.status, expected)

    def _require_renewal_open(self, command: str, at: datetime) -> None:
        """Refuse to move a renewal on after its deadline: it can only lapse."""
        if self.in_renewal and self.renew_by is not None and day_of(at) > self.renew_by:
            msg = (
                f"cannot {command}: the renewal had to be approved and paid "
                f"by {self.renew_by}; the certification lapses"
            )
            raise RenewalClosedError(msg)

    def _require_exact_fee(self, kind: FeeKind, amount_usd: Decimal) -> None:
        due = self.fees.fee(kind)
        if amount_usd != due:
            raise FeeMismatchError(
                "amount_usd",
                f"the {kind.value} of tier {self.tier.value} is {due} USD, "
                f"paid in full in one payment; {amount_usd} USD was refused",
            )

    def _confirm_repeat(self, known: PaymentRecord, form: PaymentForm) -> PaymentRecord:
        if known.kind != form.kind or known.amount_usd != form.amount_usd:
            msg = (
                f"payment reference '{form.reference}' was already used for "
                f"{known.kind.value} of {known.amount_usd} USD"
            )
            raise PaymentReferenceReusedError(msg)
        return known

    def _check_model_references(self, form: SubmissionForm) -> None:
        declared = {model["name"] for model in self.models}
        for index, source in enumerate(form.data_sources):
            unknown = sorted(set(source.models or ()) - declared)
            if unknown:
                raise InvalidCommandError(
                    f"data_sources[{index}].models",
                    f"{', '.join(unknown)} not among the declared models "
                    f"({', '.join(sorted(declared))})",
                )

    def _next_valid_until(self, at: datetime) -> date:
        if self.valid_until is None:
            return add_one_year(day_of(at))
        return add_one_year(self.valid_until)
