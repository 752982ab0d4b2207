"""The fee schedule, checked against the contract's table of fees."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fees import (
    FEE_SCHEDULE,
    FeeKind,
    RevenueTier,
    TierFees,
    fees_for_revenue,
    fees_for_tier,
)

# The contract's table, written out again so that the code is checked against
# it rather than against itself: lower bound (included), upper bound (not
# included), tier, submission fee, annual fee.
CONTRACT_TABLE: list[tuple[Decimal, Decimal | None, str, int, int]] = [
    (Decimal(0), Decimal(100_000), "under_100k", 150, 500),
    (Decimal(100_000), Decimal(500_000), "100k_to_500k", 150, 1_000),
    (Decimal(500_000), Decimal(5_000_000), "500k_to_5m", 250, 2_000),
    (Decimal(5_000_000), Decimal(10_000_000), "5m_to_10m", 350, 4_000),
    (Decimal(10_000_000), None, "10m_and_over", 500, 6_000),
]

revenues = st.decimals(
    min_value=0,
    max_value=Decimal("1e12"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)


def upper_bound(band: TierFees) -> Decimal | None:
    """Return where the band ends: the next band's start, or None for the top."""
    bands = list(FEE_SCHEDULE)
    index = bands.index(band)
    if index + 1 == len(bands):
        return None
    return bands[index + 1].revenue_from


@given(revenues)
def test_the_tier_of_a_revenue_contains_it(revenue: Decimal) -> None:
    band = fees_for_revenue(revenue)

    upper = upper_bound(band)
    assert band.revenue_from <= revenue
    assert upper is None or revenue < upper


@given(revenues)
def test_every_revenue_pays_the_fees_of_the_contract_table(revenue: Decimal) -> None:
    (row,) = [
        row
        for row in CONTRACT_TABLE
        if row[0] <= revenue and (row[1] is None or revenue < row[1])
    ]
    _, _, tier, submission_fee, annual_fee = row

    band = fees_for_revenue(revenue)

    assert band.tier == tier
    assert band.submission_fee == submission_fee
    assert band.annual_fee == annual_fee


@given(revenues, revenues)
def test_fees_never_fall_as_revenue_rises(first: Decimal, second: Decimal) -> None:
    lower, higher = sorted([first, second])

    low, high = fees_for_revenue(lower), fees_for_revenue(higher)

    assert low.submission_fee <= high.submission_fee
    assert low.annual_fee <= high.annual_fee


@pytest.mark.parametrize(
    ("revenue", "tier", "submission_fee", "annual_fee"),
    [
        ("0", "under_100k", 150, 500),
        ("0.01", "under_100k", 150, 500),
        ("99999.99", "under_100k", 150, 500),
        ("100000", "100k_to_500k", 150, 1_000),
        ("100000.00", "100k_to_500k", 150, 1_000),
        ("499999.99", "100k_to_500k", 150, 1_000),
        ("500000", "500k_to_5m", 250, 2_000),
        ("4999999.99", "500k_to_5m", 250, 2_000),
        ("5000000", "5m_to_10m", 350, 4_000),
        ("9999999.99", "5m_to_10m", 350, 4_000),
        ("10000000", "10m_and_over", 500, 6_000),
        ("1000000000000", "10m_and_over", 500, 6_000),
    ],
)
def test_each_band_starts_at_its_lower_bound(
    revenue: str, tier: str, submission_fee: int, annual_fee: int
) -> None:
    band = fees_for_revenue(Decimal(revenue))

    assert band.tier == tier
    assert band.fee(FeeKind.SUBMISSION_FEE) == submission_fee
    assert band.fee(FeeKind.ANNUAL_FEE) == annual_fee


@pytest.mark.parametrize("revenue", ["-0.01", "-1", "-100000"])
def test_a_negative_revenue_is_refused(revenue: str) -> None:
    with pytest.raises(ValueError, match="negative"):
        fees_for_revenue(Decimal(revenue))


@pytest.mark.parametrize("tier", list(RevenueTier))
def test_the_fees_of_a_tier_are_those_of_its_revenues(tier: RevenueTier) -> None:
    band = fees_for_tier(tier)

    assert band.tier is tier
    assert fees_for_revenue(band.revenue_from) == band
