"""The fee schedule of the Licensed Model certification.

Fees are fixed by the applicant's annual revenue in USD, as stated in the
latest (re-)submission. Money is always a :class:`~decimal.Decimal` of USD;
a fee is paid in full, in one payment, or not at all.
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class FeeKind(StrEnum):
    SUBMISSION_FEE = "submission_fee"
    ANNUAL_FEE = "annual_fee"


class RevenueTier(StrEnum):
    """Revenue bands, named by their lower and upper bounds in USD."""

    UNDER_100K = "under_100k"
    FROM_100K_TO_500K = "100k_to_500k"
    FROM_500K_TO_5M = "500k_to_5m"
    FROM_5M_TO_10M = "5m_to_10m"
    FROM_10M = "10m_and_over"


@dataclass(frozen=True)
class TierFees:
    tier: RevenueTier
    revenue_from: Decimal
    submission_fee: Decimal
    annual_fee: Decimal

    def fee(self, kind: FeeKind) -> Decimal:
        if kind is FeeKind.SUBMISSION_FEE:
            return self.submission_fee
        return self.annual_fee


# Ordered by revenue_from; each band runs up to, not including, the next one.
FEE_SCHEDULE: tuple[TierFees, ...] = (
    TierFees(RevenueTier.UNDER_100K, Decimal(0), Decimal(150), Decimal(500)),
    TierFees(
        RevenueTier.FROM_100K_TO_500K, Decimal(100_000), Decimal(150), Decimal(1_000)
    ),
    TierFees(
        RevenueTier.FROM_500K_TO_5M, Decimal(500_000), Decimal(250), Decimal(2_000)
    ),
    TierFees(
        RevenueTier.FROM_5M_TO_10M, Decimal(5_000_000), Decimal(350), Decimal(4_000)
    ),
    TierFees(RevenueTier.FROM_10M, Decimal(10_000_000), Decimal(500), Decimal(6_000)),
)


def fees_for_revenue(annual_revenue_usd: Decimal) -> TierFees:
    """Return the fees of the band that holds this revenue.

    A band includes its lower bound: 100,000 is in the second band while
    99,999.99 is in the first.
    """
    if annual_revenue_usd < 0:
        msg = f"annual revenue cannot be negative, got {annual_revenue_usd} USD"
        raise ValueError(msg)
    band = FEE_SCHEDULE[0]
    for candidate in FEE_SCHEDULE:
        if annual_revenue_usd >= candidate.revenue_from:
            band = candidate
    return band


_FEES_BY_TIER = {band.tier: band for band in FEE_SCHEDULE}


def fees_for_tier(tier: RevenueTier) -> TierFees:
    return _FEES_BY_TIER[tier]
