"""The whole lifecycle of a certification, over HTTP, on each store."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.clock import FixedClock
from service.composition import build_service
from service.settings import Settings
from tests.api.server import POSITION, ROLES, Api, one_year_after
from tests.factories import application_body, submission_body

NON_COMMERCIAL_SOURCE = {
    "name": "Research image set",
    "basis": "open_licence",
    "licence": "CC-BY-NC-4.0",
    "provider": "Example University",
    "purpose": "training",
}


def position_of(answer: Any) -> int:
    return int(answer.headers[POSITION])


def test_a_certification_goes_from_application_to_certified(api: Api) -> None:
    positions = []

    applied = api.apply(application_body(revenue=250_000))
    assert applied.status_code == 201, applied.text
    cid = applied.json()["id"]
    assert applied.json()["status"] == "applied"
    assert applied.headers["Location"] == f"/v1/certifications/{cid}"
    positions.append(position_of(applied))

    submitted = api.submit(cid)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["fees"]["due"] == [
        {"kind": "submission_fee", "amount_usd": "150"}
    ]
    positions.append(position_of(submitted))

    fee = api.pay(cid, "submission_fee", "150", reference="sub-fee-1")
    assert fee.status_code == 200, fee.text
    assert fee.json()["kind"] == "submission_fee"
    assert fee.json()["amount_usd"] == "150"
    assert fee.json()["reference"] == "sub-fee-1"
    assert fee.json()["certification_id"] == cid
    assert api.view(cid)["status"] == "in_review"
    positions.append(position_of(fee))

    asked = api.request_info(cid, "Which contract covers the news archive?")
    assert asked.status_code == 200, asked.text
    request_id = asked.json()["request_id"]
    assert asked.json()["status"] == "awaiting_info"
    assert asked.json()["open_info_request"]["request_id"] == request_id
    assert api.history(cid)[-1]["data"]["request_id"] == request_id
    positions.append(position_of(asked))

    answered = api.provide_info(cid, request_id)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "in_review"
    assert answered.json()["open_info_request"] is None
    positions.append(position_of(answered))

    approved = api.decide(cid, "approved")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["is_certified"] is False
    assert approved.json()["fees"]["due"] == [
        {"kind": "annual_fee", "amount_usd": "1000"}
    ]
    positions.append(position_of(approved))

    annual = api.pay(cid, "annual_fee", "1000", reference="annual-1")
    assert annual.status_code == 200, annual.text
    positions.append(position_of(annual))

    paid_on = datetime.fromisoformat(annual.json()["paid_at"]).astimezone(UTC).date()
    view = api.view(cid)
    assert view["status"] == "certified"
    assert view["is_certified"] is True
    assert view["certified_since"] == paid_on.isoformat()
    assert view["valid_until"] == one_year_after(paid_on).isoformat()
    assert view["fees"]["due"] == []
    assert [fee["reference"] for fee in view["fees"]["paid"]] == [
        "sub-fee-1",
        "annual-1",
    ]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def test_one_view_answers_the_same_for_every_reader(api: Api) -> None:
    cid = api.bring_to("certified")

    views = [
        api.clients[role].get(f"/v1/certifications/{cid}")
        for role in ("applicant", "operator", "auditor")
    ]

    assert [view.status_code for view in views] == [200, 200, 200]
    assert views[0].json() == views[1].json() == views[2].json()
    assert views[0].json()["id"] == cid
    assert views[0].json()["version"] == 5


def test_the_history_holds_every_event_oldest_first_with_its_actor(api: Api) -> None:
    cid = api.bring_to("in_review")
    request_id = api.request_info(cid).json()["request_id"]
    api.provide_info(cid, request_id)
    api.decide(cid, "approved")
    api.pay_due(cid)

    history = api.history(cid)

    assert [entry["type"] for entry in history] == [
        "ApplicationStarted",
        "SubmissionReceived",
        "SubmissionFeePaid",
        "InfoRequested",
        "InfoProvided",
        "Approved",
        "AnnualFeePaid",
    ]
    assert [entry["version"] for entry in history] == list(range(1, 8))
    assert [entry["actor"]["role"] for entry in history] == [
        "applicant",
        "applicant",
        "billing",
        "operator",
        "applicant",
        "operator",
        "billing",
    ]
    times = [datetime.fromisoformat(entry["occurred_at"]) for entry in history]
    assert all(moment.tzinfo is not None for moment in times)
    assert times == sorted(times)
    for entry in history:
        assert set(entry) == {"type", "version", "occurred_at", "data", "actor"}
        assert set(entry["actor"]) == {"role", "name"}
        assert entry["actor"]["name"]
    assert history[0]["data"]["organisation"]["name"] == "Acme Models Ltd"
    assert history[3]["data"]["request_id"] == request_id
    assert history[6]["data"]["amount_usd"] == "1000"


def test_neither_the_history_nor_the_log_holds_a_token(api: Api) -> None:
    cid = api.bring_to("certified")
    api.operate(cid, "suspension")

    history = api.operator.get(f"/v1/certifications/{cid}/history").text

    for role in ROLES:
        assert api.server.tokens[role] not in history
        assert api.server.tokens[role] not in api.server.log()
    assert '"role":"operator"' in history


@pytest.mark.parametrize(
    ("revenue", "tier", "submission_fee", "annual_fee"),
    [
        ("99999.99", "under_100k", "150", "500"),
        (100_000, "100k_to_500k", "150", "1000"),
        (499_999, "100k_to_500k", "150", "1000"),
        (500_000, "500k_to_5m", "250", "2000"),
        (5_000_000, "5m_to_10m", "350", "4000"),
        (10_000_000, "10m_and_over", "500", "6000"),
    ],
)
def test_the_submission_fixes_the_fees_by_the_revenue_it_states(
    api: Api, revenue: Any, tier: str, submission_fee: str, annual_fee: str
) -> None:
    cid = api.start(application_body(revenue=1))

    answer = api.submit(cid, submission_body(annual_revenue_usd=revenue))

    assert answer.status_code == 200, answer.text
    assert answer.json()["tier"] == tier
    assert answer.json()["fees"]["submission_fee_usd"] == submission_fee
    assert answer.json()["fees"]["annual_fee_usd"] == annual_fee
    assert answer.json()["fees"]["due"] == [
        {"kind": "submission_fee", "amount_usd": submission_fee}
    ]


def test_a_submission_without_revenue_keeps_the_tier_of_the_application(
    api: Api,
) -> None:
    cid = api.start(application_body(revenue=600_000))

    answer = api.submit(cid, submission_body())

    assert answer.json()["tier"] == "500k_to_5m"
    assert answer.json()["fees"]["submission_fee_usd"] == "250"


def test_the_submission_answers_its_pre_screening_findings(api: Api) -> None:
    cid = api.start()
    body = submission_body()
    body["data_sources"].append(NON_COMMERCIAL_SOURCE)

    answer = api.submit(cid, body)

    assert answer.status_code == 200, answer.text
    findings = answer.json()["findings"]
    assert {"licence_non_commercial"} <= {finding["code"] for finding in findings}
    flagged = next(f for f in findings if f["code"] == "licence_non_commercial")
    assert flagged["subject"] == "Research image set"
    assert flagged["severity"] == "error"
    assert api.history(cid)[-1]["data"]["findings"] == findings


def test_a_clean_submission_has_no_findings(api: Api) -> None:
    cid = api.start()

    answer = api.submit(cid)

    assert answer.json()["findings"] == []


def test_a_rejected_certification_is_final(api: Api) -> None:
    cid = api.bring_to("in_review")

    rejected = api.decide(cid, "rejected")

    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["is_certified"] is False
    assert api.history(cid)[-1]["type"] == "Rejected"
    assert api.history(cid)[-1]["data"]["reason"] == "rejected after review"
    for refused in (
        api.decide(cid, "approved"),
        api.pay(cid, "annual_fee", "1000"),
        api.operate(cid, "withdrawal", api.applicant),
        api.operate(cid, "revocation"),
    ):
        assert refused.status_code == 409, refused.text
    assert api.view(cid)["status"] == "rejected"


def test_a_suspended_certification_is_not_certified_until_reinstated(
    api: Api,
) -> None:
    cid = api.bring_to("certified")

    suspended = api.operate(cid, "suspension")

    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["is_certified"] is False
    assert api.history(cid)[-1]["data"]["previous_status"] == "certified"

    reinstated = api.operate(cid, "reinstatement")

    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["status"] == "certified"
    assert reinstated.json()["is_certified"] is True
    assert api.event_types(cid)[-2:] == ["Suspended", "Reinstated"]


def test_a_revoked_certification_is_final(api: Api) -> None:
    cid = api.bring_to("certified")

    revoked = api.operate(cid, "revocation")

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["is_certified"] is False
    assert api.history(cid)[-1]["type"] == "Revoked"
    assert api.operate(cid, "reinstatement").status_code == 409
    assert api.operate(cid, "suspension").status_code == 409


@pytest.mark.parametrize("status", ["applied", "in_review", "awaiting_info"])
def test_the_applicant_can_withdraw_before_a_decision(api: Api, status: str) -> None:
    cid = api.bring_to(status)

    withdrawn = api.operate(cid, "withdrawal", api.applicant)

    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert api.history(cid)[-1]["type"] == "Withdrawn"
    assert api.history(cid)[-1]["actor"]["role"] == "applicant"
    assert api.submit(cid).status_code == 409


def raise_reevaluation_due_in_process(
    api: Api, database_url: str, cid: str, on: date
) -> None:
    """Do what the scheduler will do: raise the re-evaluation, on ``on``."""
    clock = FixedClock(datetime.combine(on, time(9), tzinfo=UTC))
    service = build_service(Settings(database_url=database_url), clock=clock)
    try:
        outcome = service.raise_reevaluation_due(UUID(cid))
    finally:
        service.close()
    assert outcome.position is not None
    api.last_position = outcome.position


def test_a_renewal_keeps_the_certification_and_adds_a_year(
    api: Api, module_database_url: str
) -> None:
    cid = api.bring_to("certified")
    first = api.view(cid)
    valid_until = date.fromisoformat(first["valid_until"])
    due_on = date.fromisoformat(first["reevaluation_due_on"])
    assert due_on == valid_until - timedelta(days=60)

    raise_reevaluation_due_in_process(api, module_database_url, cid, on=due_on)

    due = api.view(cid)
    assert due["status"] == "reevaluation_due"
    assert due["is_certified"] is True
    assert api.history(cid)[-1]["type"] == "ReevaluationDue"
    assert api.history(cid)[-1]["actor"]["role"] == "system"

    resubmitted = api.submit(cid, submission_body(annual_revenue_usd=6_000_000))

    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["status"] == "in_review"
    assert resubmitted.json()["is_certified"] is True
    assert resubmitted.json()["tier"] == "5m_to_10m"
    assert resubmitted.json()["fees"]["due"] == []
    assert api.history(cid)[-1]["type"] == "ReevaluationSubmitted"
    assert api.pay(cid, "submission_fee", "350").status_code == 409

    approved = api.decide(cid, "approved")
    assert approved.json()["is_certified"] is True
    renewed = api.pay(cid, "annual_fee", "4000")

    assert renewed.status_code == 200, renewed.text
    view = api.view(cid)
    assert view["status"] == "certified"
    assert view["is_certified"] is True
    assert view["valid_until"] == one_year_after(valid_until).isoformat()
    assert view["certified_since"] == first["certified_since"]
    assert api.event_types(cid)[-4:] == [
        "ReevaluationDue",
        "ReevaluationSubmitted",
        "Approved",
        "AnnualFeePaid",
    ]


def test_a_renewal_under_way_can_be_suspended_and_reinstated(
    api: Api, module_database_url: str
) -> None:
    cid = api.bring_to("certified")
    due_on = date.fromisoformat(api.view(cid)["reevaluation_due_on"])
    raise_reevaluation_due_in_process(api, module_database_url, cid, on=due_on)
    api.submit(cid)

    suspended = api.operate(cid, "suspension")
    reinstated = api.operate(cid, "reinstatement")

    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["is_certified"] is False
    assert reinstated.json()["status"] == "in_review"
    assert reinstated.json()["is_certified"] is True
