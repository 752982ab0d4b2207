"""Each status view row says what its certification's aggregate says."""

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest

import projections.runner as runner_module
from domain.certification import Status
from domain.clock import FixedClock
from projections.runner import ProjectionRunner
from projections.views import StatusViews, row_json
from service.composition import Runtime
from tests.projections.steps import (
    START,
    Steps,
    disagreements,
    last_positions,
    morning_of,
    submission_with_findings,
)

# Certified on START, so valid until 2027-03-01, due for re-evaluation from
# 2026-12-31 (60 days before) and lapsing after 2027-03-31 (30 days' grace).
DURING_REEVALUATION = morning_of(date(2027, 1, 5))
AFTER_GRACE = morning_of(date(2027, 4, 1))
INSTANTS = (
    START,
    DURING_REEVALUATION,
    datetime(2027, 3, 1, 23, 59, tzinfo=UTC),
    datetime(2027, 3, 2, 0, 0, tzinfo=UTC),
    AFTER_GRACE,
    datetime(2028, 3, 2, tzinfo=UTC),
)


def drive_every_situation(steps: Steps, clock: FixedClock) -> dict[str, UUID]:
    """Leave one certification in each situation of the lifecycle."""
    ids: dict[str, UUID] = {}
    ids["applied"] = steps.start("Applied Co")
    ids["submitted"] = steps.start("Submitted Co", revenue=7_000_000)
    steps.submit(ids["submitted"], submission_with_findings())
    ids["in_review"] = steps.in_review("Reviewed Co", revenue=50_000)
    ids["awaiting_info"] = steps.in_review("Asked Co")
    steps.request_info(ids["awaiting_info"], respond_by=date(2026, 3, 20))
    ids["info_provided"] = steps.in_review("Answered Co")
    steps.request_info(ids["info_provided"], respond_by=date(2026, 3, 20))
    steps.provide_info(ids["info_provided"])
    ids["approved"] = steps.in_review("Approved Co", revenue=20_000_000)
    steps.approve(ids["approved"])
    ids["rejected"] = steps.in_review("Rejected Co")
    steps.reject(ids["rejected"])
    ids["certified"] = steps.certify("Certified Co")
    ids["suspended"] = steps.certify("Suspended Co")
    steps.suspend(ids["suspended"])
    ids["reinstated"] = steps.certify("Reinstated Co")
    steps.suspend(ids["reinstated"])
    steps.reinstate(ids["reinstated"])
    ids["revoked"] = steps.certify("Revoked Co")
    steps.revoke(ids["revoked"])
    ids["withdrawn_awaiting_info"] = steps.in_review("Withdrawn Co")
    steps.request_info(ids["withdrawn_awaiting_info"], respond_by=date(2026, 4, 1))
    steps.withdraw(ids["withdrawn_awaiting_info"])
    ids["withdrawn_approved"] = steps.in_review("Withdrawn Approved Co")
    steps.approve(ids["withdrawn_approved"])
    steps.withdraw(ids["withdrawn_approved"])
    renewing = {
        name: steps.certify(f"{name.replace('_', ' ').title()} Co")
        for name in (
            "reevaluation_due",
            "renewal_in_review",
            "renewal_awaiting_info",
            "renewal_approved",
            "renewal_suspended",
            "renewal_reinstated",
            "renewed",
            "lapsed",
        )
    }
    ids.update(renewing)

    clock.set(DURING_REEVALUATION)
    service = steps.service
    for cert_id in renewing.values():
        service.raise_reevaluation_due(cert_id)
    resubmission = submission_with_findings()
    resubmission["annual_revenue_usd"] = "6000000"
    for name in list(renewing)[1:-1]:
        steps.submit(ids[name], resubmission if name != "renewed" else None)
    steps.request_info(ids["renewal_awaiting_info"], respond_by=date(2027, 2, 1))
    for name in ("renewal_approved", "renewal_suspended", "renewal_reinstated"):
        steps.approve(ids[name])
    steps.suspend(ids["renewal_suspended"])
    steps.suspend(ids["renewal_reinstated"])
    steps.reinstate(ids["renewal_reinstated"])
    steps.approve(ids["renewed"])
    steps.pay_due(ids["renewed"])

    clock.set(AFTER_GRACE)
    service.lapse(ids["lapsed"])
    return ids


def test_every_row_agrees_with_its_certification_in_every_situation(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = drive_every_situation(steps, clock)

    runtime.runner.catch_up()

    positions = last_positions(runtime.service)
    rows = {row.id: row for row in runtime.views.all_rows()}
    assert {row.status for row in rows.values()} == set(Status)
    assert rows.keys() == set(ids.values())
    mismatches = {
        (name, at.isoformat()): found
        for name, cert_id in ids.items()
        for at in INSTANTS
        if (
            found := disagreements(
                rows[cert_id], runtime.service.get(cert_id), positions[cert_id], at
            )
        )
    }
    assert mismatches == {}


def test_a_renewal_moves_the_tier_and_adds_a_year_to_the_row(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = drive_every_situation(steps, clock)

    runtime.runner.catch_up()

    renewed = runtime.views.get(ids["renewed"])
    approved = runtime.views.get(ids["renewal_approved"])
    assert renewed is not None
    assert approved is not None
    assert renewed.valid_until == date(2028, 3, 1)
    assert renewed.certified_since == START.date()
    assert renewed.is_certified(AFTER_GRACE.date())
    assert approved.tier.value == "5m_to_10m"
    assert (approved.fee_due_kind, approved.fee_due_usd) == ("annual_fee", 4_000)
    assert approved.fees_paid_usd == 150 + 1_000
    assert (approved.findings_error, approved.findings_warning) == (1, 1)
    assert approved.findings_info == 1


def fees_seen(runtime: Runtime, cert_id: UUID) -> tuple[object, ...]:
    """Status, fee due and fees invoiced of a row, once the view caught up."""
    runtime.runner.catch_up()
    row = runtime.views.get(cert_id)
    assert row is not None
    return (row.status, row.fee_due_usd, row.fees_invoiced_usd)


def test_a_suspended_renewal_owes_its_fee_again_only_once_reinstated(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    cert_id = steps.certify("Paused Co")
    clock.set(DURING_REEVALUATION)
    runtime.service.raise_reevaluation_due(cert_id)
    steps.submit(cert_id)
    steps.approve(cert_id)

    approved = fees_seen(runtime, cert_id)
    steps.suspend(cert_id)
    suspended = fees_seen(runtime, cert_id)
    steps.reinstate(cert_id)
    reinstated = fees_seen(runtime, cert_id)

    assert [approved, suspended, reinstated] == [
        (Status.APPROVED, 1_000, 150 + 1_000 + 1_000),
        (Status.SUSPENDED, 0, 150 + 1_000 + 1_000),
        (Status.APPROVED, 1_000, 150 + 1_000 + 1_000),
    ]


def test_the_lag_is_zero_after_catching_up_and_grows_with_each_new_event(
    runtime: Runtime, steps: Steps
) -> None:
    cert_id = steps.certify("Lagging Co")

    runtime.runner.catch_up()
    caught_up = runtime.runner.lag()
    steps.suspend(cert_id)
    behind = runtime.runner.lag()
    steps.reinstate(cert_id)
    further_behind = runtime.runner.lag()
    runtime.runner.catch_up()

    assert caught_up == 0
    assert (behind, further_behind) == (1, 2)
    assert runtime.runner.lag() == 0
    assert runtime.views.position() == runtime.service.ping_store()


def test_a_catch_up_in_batches_of_one_event_gives_the_rows_of_one_batch(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    """Each batch starts from the rows the batch before it wrote."""
    drive_every_situation(steps, clock)
    lead_days = runtime.settings.reevaluation_lead_days
    one_by_one = StatusViews(runtime.views.db, "status_one_by_one")
    one_by_one.create()

    runtime.runner.catch_up()
    ProjectionRunner(runtime.service, one_by_one, lead_days, batch_size=1).catch_up()

    assert one_by_one.position() == runtime.views.position()
    assert list(one_by_one.all_rows()) == list(runtime.views.all_rows())


def test_a_first_long_catch_up_loads_without_indexes_and_builds_them_after(
    runtime: Runtime,
    steps: Steps,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drive_every_situation(steps, clock)
    expected_indexes = index_names(runtime.views)
    lead_days = runtime.settings.reevaluation_lead_days
    reference = StatusViews(runtime.views.db, "status_reference")
    reference.create()
    ProjectionRunner(runtime.service, reference, lead_days).catch_up()
    monkeypatch.setattr(runner_module, "BULK_LOAD_EVENTS", 1)
    seen_while_loading: list[set[str]] = []
    save_drafts = runtime.views.save_drafts

    def save_and_look(*args: Any) -> None:
        seen_while_loading.append(index_names(runtime.views))
        save_drafts(*args)

    monkeypatch.setattr(runtime.views, "save_drafts", save_and_look)

    runtime.runner.catch_up()

    assert seen_while_loading
    assert all(not seen for seen in seen_while_loading)
    assert index_names(runtime.views) == expected_indexes
    assert list(runtime.views.all_rows()) == list(reference.all_rows())


def index_names(views: StatusViews) -> set[str]:
    """The secondary indexes of the views' table, by the database's catalogue."""
    catalogue = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = :table AND sql IS NOT NULL",
        "postgres": "SELECT indexname AS name FROM pg_indexes WHERE tablename = :table",
    }[views.db.dialect]
    found = views.db.query(catalogue, {"table": views.table})
    return {row["name"] for row in found} - {f"{views.table}_pkey"}


def test_a_row_is_stored_as_json_that_pydantic_would_write(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = drive_every_situation(steps, clock)
    runtime.runner.catch_up()

    rows = list(runtime.views.all_rows())

    assert len(rows) == len(ids)
    assert [row_json(vars(row)) for row in rows] == [
        row.model_dump_json() for row in rows
    ]
