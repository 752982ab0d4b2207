"""``certd list`` prints the status views for staff at a terminal, or as JSON
lines for scripts."""

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.certification import add_one_year, day_of
from domain.clock import FixedClock
from service.composition import Runtime
from tests.projections.steps import Steps, certd


@pytest.fixture
def clock() -> FixedClock:
    """Today's clock: ``certd list`` tells certified from not by the real day."""
    return FixedClock(datetime.now(UTC))


def a_few_of_each(runtime: Runtime, steps: Steps) -> dict[str, UUID]:
    ids = {
        "certified": steps.certify("Certified One Ltd"),
        "also_certified": steps.certify("Certified Two Ltd"),
        "in_review": steps.in_review("Reviewed Ltd", revenue=20_000_000),
        "revoked": steps.certify("Revoked Ltd"),
        "applied": steps.start("Applied Ltd"),
    }
    steps.revoke(ids["revoked"])
    runtime.runner.catch_up()
    return ids


def test_certd_list_prints_a_table_with_one_line_per_certification(
    runtime: Runtime, steps: Steps, clock: FixedClock, database_url: str
) -> None:
    ids = a_few_of_each(runtime, steps)

    listing = certd(database_url, "list")

    assert listing.returncode == 0, listing.stderr
    header, *lines = listing.stdout.splitlines()
    assert header.split() == [
        "id",
        "organisation",
        "status",
        "tier",
        "certified",
        "valid",
        "until",
    ]
    by_id = {line.split()[0]: line.split() for line in lines}
    assert by_id.keys() == {str(cert_id) for cert_id in ids.values()}
    valid_until = add_one_year(day_of(clock.now())).isoformat()
    assert by_id[str(ids["certified"])][1:] == [
        "Certified",
        "One",
        "Ltd",
        "certified",
        "100k_to_500k",
        "yes",
        valid_until,
    ]
    assert by_id[str(ids["revoked"])][1:] == [
        "Revoked",
        "Ltd",
        "revoked",
        "100k_to_500k",
        "no",
        valid_until,
    ]
    assert by_id[str(ids["in_review"])][1:] == [
        "Reviewed",
        "Ltd",
        "in_review",
        "10m_and_over",
        "no",
        "-",
    ]


def test_certd_list_of_certified_ones_as_json_prints_one_row_a_line(
    runtime: Runtime, steps: Steps, database_url: str
) -> None:
    ids = a_few_of_each(runtime, steps)

    listing = certd(database_url, "list", "--status", "certified", "--json")

    assert listing.returncode == 0, listing.stderr
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert {row["id"] for row in rows} == {
        str(ids["certified"]),
        str(ids["also_certified"]),
    }
    assert {row["status"] for row in rows} == {"certified"}
    assert all(row["fees_paid_usd"] == "1150" for row in rows)


def test_certd_list_of_an_empty_view_prints_only_the_header(
    runtime: Runtime, database_url: str
) -> None:
    listing = certd(database_url, "list")
    as_json = certd(database_url, "list", "--json")

    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == [
        "id",
        "organisation",
        "status",
        "tier",
        "certified",
        "valid",
        "until",
    ]
    assert as_json.stdout == ""
