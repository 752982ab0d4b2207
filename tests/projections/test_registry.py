"""The public registry: organisations certified today, suspended ones marked,
and no one whose certification is over, expired or never was."""

import json
from datetime import date, datetime
from uuid import UUID

from domain.certification import Certification, Status, day_of
from domain.clock import FixedClock
from projections.status_view import StatusRow
from service.composition import Runtime
from tests.projections.steps import Steps, morning_of

DURING_REEVALUATION = morning_of(date(2027, 1, 5))
LAST_VALID_DAY = date(2027, 3, 1)
AFTER_GRACE = morning_of(date(2027, 4, 1))

LISTED_DURING_REEVALUATION = {
    "certified",
    "suspended",
    "reevaluation_due",
    "renewal_in_review",
    "renewal_approved",
    "renewal_suspended",
    "renewed",
    "lapsing",
}
NEVER_LISTED = {
    "applied",
    "submitted",
    "in_review",
    "approved",
    "rejected",
    "revoked",
    "withdrawn",
    "revoked_in_renewal",
}


def certify_everyone_differently(steps: Steps, clock: FixedClock) -> dict[str, UUID]:
    """Leave certifications on every path into and out of the registry."""
    ids = {
        name: steps.certify(f"{name.replace('_', ' ').title()} Co")
        for name in (
            "certified",
            "suspended",
            "revoked",
            "withdrawn",
            "reevaluation_due",
            "renewal_in_review",
            "renewal_approved",
            "renewal_suspended",
            "renewed",
            "lapsing",
            "revoked_in_renewal",
        )
    }
    ids["applied"] = steps.start("Applied Co")
    ids["submitted"] = steps.start("Submitted Co")
    steps.submit(ids["submitted"])
    ids["in_review"] = steps.in_review("In Review Co")
    ids["approved"] = steps.in_review("Approved Co")
    steps.approve(ids["approved"])
    ids["rejected"] = steps.in_review("Rejected Co")
    steps.reject(ids["rejected"])
    steps.suspend(ids["suspended"])
    steps.revoke(ids["revoked"])
    steps.withdraw(ids["withdrawn"])

    clock.set(DURING_REEVALUATION)
    renewing = [name for name in ids if "renew" in name or name == "lapsing"]
    for name in [*renewing, "reevaluation_due"]:
        steps.service.raise_reevaluation_due(ids[name])
    for name in ("renewal_in_review", "renewal_approved", "renewal_suspended"):
        steps.submit(ids[name])
    steps.submit(ids["renewed"])
    for name in ("renewal_approved", "renewal_suspended", "renewed"):
        steps.approve(ids[name])
    steps.pay_due(ids["renewed"])
    steps.suspend(ids["renewal_suspended"])
    steps.revoke(ids["revoked_in_renewal"])
    return ids


def listed_names(runtime: Runtime, ids: dict[str, UUID], today: date) -> set[str]:
    names = {cert_id: name for name, cert_id in ids.items()}
    return {names[row.id] for row in runtime.views.registry(today)}


def belongs_in_registry(certification: Certification, at: datetime) -> bool:
    """What the aggregate says: certified now, or suspended but unexpired."""
    unexpired = (
        certification.valid_until is not None
        and day_of(at) <= certification.valid_until
    )
    suspended = certification.status is Status.SUSPENDED
    return certification.is_certified(at) or (suspended and unexpired)


def test_the_registry_lists_certified_and_renewing_organisations(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_everyone_differently(steps, clock)

    runtime.runner.catch_up()

    assert listed_names(runtime, ids, DURING_REEVALUATION.date()) == (
        LISTED_DURING_REEVALUATION
    )


def test_the_registry_marks_suspended_organisations_and_only_those(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_everyone_differently(steps, clock)

    runtime.runner.catch_up()

    today = DURING_REEVALUATION.date()
    listed = runtime.views.registry(today)
    marked = {row.id for row in listed if row.status is Status.SUSPENDED}
    assert marked == {ids["suspended"], ids["renewal_suspended"]}
    assert all(row.is_certified(today) for row in listed if row.id not in marked)
    names = [row.organisation_name.casefold() for row in listed]
    assert names == sorted(names)


def test_the_registry_never_lists_revoked_withdrawn_rejected_or_uncertified_ones(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_everyone_differently(steps, clock)

    runtime.runner.catch_up()

    for day in (date(2026, 3, 1), DURING_REEVALUATION.date(), date(2027, 6, 1)):
        assert listed_names(runtime, ids, day).isdisjoint(NEVER_LISTED), day


def test_an_unrenewed_certification_leaves_the_registry_after_its_last_day(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_everyone_differently(steps, clock)

    runtime.runner.catch_up()

    on_last_day = listed_names(runtime, ids, LAST_VALID_DAY)
    day_after = listed_names(runtime, ids, date(2027, 3, 2))
    assert on_last_day == LISTED_DURING_REEVALUATION
    assert day_after == {"renewed"}
    assert listed_names(runtime, ids, date(2028, 3, 2)) == set()


def test_a_lapsed_certification_is_not_in_the_registry(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_everyone_differently(steps, clock)
    clock.set(AFTER_GRACE)
    steps.service.lapse(ids["lapsing"])

    runtime.runner.catch_up()

    lapsed = runtime.views.get(ids["lapsing"])
    assert lapsed is not None
    assert lapsed.status is Status.LAPSED
    assert listed_names(runtime, ids, AFTER_GRACE.date()) == {"renewed"}
    assert "lapsing" not in listed_names(runtime, ids, date(2027, 1, 5))


def test_the_registry_agrees_with_the_certifications_on_every_day(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_everyone_differently(steps, clock)

    runtime.runner.catch_up()

    certifications = [runtime.service.get(cert_id) for cert_id in ids.values()]
    for day in (date(2026, 3, 1), date(2027, 1, 5), LAST_VALID_DAY, date(2027, 3, 2)):
        at = morning_of(day)
        expected = {cert.id for cert in certifications if belongs_in_registry(cert, at)}
        assert {row.id for row in runtime.views.registry(day)} == expected, day


def test_the_registry_entries_the_database_builds_are_those_of_the_rows(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    certify_everyone_differently(steps, clock)
    runtime.runner.catch_up()

    for day in (date(2026, 3, 1), DURING_REEVALUATION.date(), date(2027, 3, 2)):
        built = json.loads(runtime.views.registry_entries(day))
        from_rows = [public_entry(row) for row in runtime.views.registry(day)]
        assert built == from_rows, day
    assert json.loads(runtime.views.registry_entries(date(2030, 1, 1))) == []


def public_entry(row: StatusRow) -> dict[str, object]:
    """What the public registry says of a listed row."""
    return {
        "organisation": row.organisation["name"],
        "website": row.organisation.get("website"),
        "country": row.organisation["country"],
        "models": [model["name"] for model in row.models],
        "certified_since": row.certified_since.isoformat()
        if row.certified_since
        else None,
        "valid_until": row.valid_until.isoformat() if row.valid_until else None,
        "suspended": row.status is Status.SUSPENDED,
    }


def test_an_earlier_view_table_gains_its_new_column_and_is_projected_again(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    certify_everyone_differently(steps, clock)
    runtime.runner.catch_up()
    today = DURING_REEVALUATION.date()
    with runtime.views.db.transaction() as cursor:
        cursor.execute(f"ALTER TABLE {runtime.views.table} DROP COLUMN registry_entry")

    runtime.views.create()
    position_after_upgrade = runtime.views.position()
    before_projected_again = runtime.views.registry_entries(today)
    runtime.runner.catch_up()

    assert position_after_upgrade == 0
    assert json.loads(before_projected_again) == []
    built = json.loads(runtime.views.registry_entries(today))
    assert built == [public_entry(row) for row in runtime.views.registry(today)]
    assert len(built) == len(LISTED_DURING_REEVALUATION)
