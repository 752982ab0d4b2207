"""A renewal from end to end through the service, opened by the scheduler.

Certified on 2026-03-01 with a revenue of 250,000 USD (fees 150 / 1,000),
valid until 2027-03-01; the re-evaluation falls due on 2026-12-31.
"""

from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from domain.certification import Status
from domain.clock import FixedClock
from domain.errors import FeeMismatchError, RenewalClosedError
from domain.fees import FeeKind, RevenueTier
from domain.forms import PaymentForm
from service.composition import Runtime
from tests.factories import submission_body
from tests.projections.steps import BILLING, Steps
from tests.scheduler.checks import at, view_against_aggregates

DUE_ON = date(2026, 12, 31)


def agree(runtime: Runtime, cert_id: UUID) -> bool:
    """Whether the view says what the aggregate says; fail with the fields."""
    ((_, differences),) = view_against_aggregates(runtime, [cert_id]).values()
    assert differences == {}
    return True


def test_a_renewal_goes_straight_to_review_and_adds_a_year_once_paid(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    cert_id = steps.certify("Renewing Models Ltd", revenue=250_000)
    clock.set(at(DUE_ON, 6))
    runtime.scheduler_pass.run()
    assert runtime.service.get(cert_id).status is Status.REEVALUATION_DUE
    clock.set(at(date(2027, 1, 10), 12))

    steps.submit(cert_id, submission_body(annual_revenue_usd=7_000_000))

    renewing = runtime.service.get(cert_id)
    assert type(runtime.service.history(cert_id)[-1]).__name__ == (
        "ReevaluationSubmitted"
    )
    assert renewing.status is Status.IN_REVIEW
    assert renewing.fees_due() == {}
    assert renewing.tier is RevenueTier.FROM_5M_TO_10M
    assert renewing.is_certified(clock.now())
    assert agree(runtime, cert_id)
    row = runtime.views.get(cert_id)
    assert row is not None
    assert (row.fee_due_usd, row.fees_invoiced_usd) == (Decimal(0), Decimal(1_150))

    clock.set(at(date(2027, 1, 20), 12))
    steps.approve(cert_id)

    approved = runtime.service.get(cert_id)
    assert approved.fees_due() == {FeeKind.ANNUAL_FEE: Decimal(4_000)}
    assert approved.is_certified(clock.now())
    assert agree(runtime, cert_id)
    old_fee = PaymentForm(kind="annual_fee", amount_usd=Decimal(1_000), reference="r1")
    with pytest.raises(FeeMismatchError, match="4000"):
        runtime.service.record_payment(cert_id, old_fee, BILLING)

    clock.set(at(date(2027, 2, 1), 12))
    paid = steps.pay_due(cert_id)

    renewed = runtime.service.get(cert_id)
    assert paid == Decimal(4_000)
    assert renewed.status is Status.CERTIFIED
    assert (renewed.valid_until, renewed.renew_by) == (date(2028, 3, 1), None)
    assert renewed.certified_since == date(2026, 3, 1)
    assert sorted(p.amount_usd for p in renewed.payments.values()) == [
        Decimal(150),
        Decimal(1_000),
        Decimal(4_000),
    ]
    assert renewed.is_certified(clock.now())
    assert agree(runtime, cert_id)


def test_a_renewal_stays_certified_until_valid_until_and_then_lapses_unpaid(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    cert_id = steps.certify("Unpaid Renewal Ltd")
    clock.set(at(DUE_ON, 6))
    runtime.scheduler_pass.run()
    steps.submit(cert_id)
    steps.approve(cert_id)

    clock.set(at(date(2027, 3, 1), 23))
    on_its_last_day = runtime.service.get(cert_id).is_certified(clock.now())
    clock.set(at(date(2027, 3, 2), 0))
    in_grace = runtime.service.get(cert_id)
    certified_in_grace = in_grace.is_certified(clock.now())
    clock.set(at(date(2027, 3, 31), 6))
    last_chance = runtime.scheduler_pass.run()
    clock.set(at(date(2027, 4, 1), 1))
    with pytest.raises(RenewalClosedError, match="2027-03-31"):
        steps.pay_due(cert_id)
    clock.set(at(date(2027, 4, 1), 6))
    lapsing = runtime.scheduler_pass.run()

    assert on_its_last_day
    assert not certified_in_grace
    assert in_grace.status is Status.APPROVED
    assert last_chance.raised == []
    assert lapsing.raised == [(cert_id, "CertificationLapsed")]
    assert runtime.service.get(cert_id).status is Status.LAPSED
    assert agree(runtime, cert_id)
