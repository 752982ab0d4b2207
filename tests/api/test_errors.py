"""Refusals: each answers the right status with a JSON ``detail``, storing nothing."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.server import POSITION, Api
from tests.factories import application_body, submission_body

ID_ROUTES = [
    ("POST", "submission", submission_body()),
    (
        "POST",
        "payments",
        {"kind": "submission_fee", "amount_usd": "150", "reference": "e-1"},
    ),
    ("POST", "info-requests", {"questions": ["Who owns it?"]}),
    ("POST", "info-responses", {"request_id": "r-1", "answers": ["We do."]}),
    ("POST", "decision", {"outcome": "approved", "reason": "fine"}),
    ("POST", "suspension", {"reason": "r"}),
    ("POST", "reinstatement", {"reason": "r"}),
    ("POST", "revocation", {"reason": "r"}),
    ("POST", "withdrawal", {"reason": "r"}),
    ("GET", "", None),
    ("GET", "history", None),
]


def url(cid: str, route: str) -> str:
    return f"/v1/certifications/{cid}/{route}".rstrip("/")


def assert_refused(answer: httpx.Response, status: int) -> str:
    """Check the status and the JSON body of a refusal; return its detail."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert POSITION not in answer.headers
    detail = answer.json()["detail"]
    assert isinstance(detail, str)
    assert detail.strip()
    return detail


# Unknown and malformed ids.


@pytest.mark.parametrize(
    ("method", "route", "body"), ID_ROUTES, ids=[f"{m} {r}" for m, r, _ in ID_ROUTES]
)
def test_an_unknown_id_is_not_found(
    api: Api, method: str, route: str, body: dict[str, Any] | None
) -> None:
    unknown = str(uuid.uuid4())

    answer = api.operator.request(method, url(unknown, route), json=body)

    assert unknown in assert_refused(answer, 404)


@pytest.mark.parametrize("malformed", ["not-a-uuid", "1234", "%20", "g" * 32])
def test_a_malformed_id_is_not_found(api: Api, malformed: str) -> None:
    answer = api.auditor.get(f"/v1/certifications/{malformed}")

    assert_refused(answer, 404)


# Commands that do not fit the status: 409 naming both, nothing stored.

OUT_OF_TURN = [
    ("applied", "decision", {"outcome": "approved", "reason": "r"}, "decide"),
    (
        "applied",
        "payments",
        {"kind": "submission_fee", "amount_usd": "150", "reference": "o-1"},
        "pay_submission_fee",
    ),
    (
        "in_review",
        "payments",
        {"kind": "annual_fee", "amount_usd": "1000", "reference": "o-2"},
        "pay_annual_fee",
    ),
    ("submitted", "info-requests", {"questions": ["q"]}, "request_info"),
    (
        "in_review",
        "info-responses",
        {"request_id": "r", "answers": ["a"]},
        "provide_info",
    ),
    ("certified", "submission", submission_body(), "submit"),
    ("in_review", "suspension", {"reason": "r"}, "suspend"),
    ("certified", "reinstatement", {"reason": "r"}, "reinstate"),
    ("withdrawn", "revocation", {"reason": "r"}, "revoke"),
    ("revoked", "withdrawal", {"reason": "r"}, "withdraw"),
    ("rejected", "decision", {"outcome": "rejected", "reason": "r"}, "decide"),
    ("awaiting_info", "decision", {"outcome": "approved", "reason": "r"}, "decide"),
]


@pytest.mark.parametrize(
    ("status", "route", "body", "command"),
    OUT_OF_TURN,
    ids=[f"{route} when {status}" for status, route, _, _ in OUT_OF_TURN],
)
def test_a_command_that_does_not_fit_the_status_is_refused_and_stores_nothing(
    api: Api, status: str, route: str, body: dict[str, Any], command: str
) -> None:
    cid = api.bring_to(status)
    before = api.history(cid)

    answer = api.operator.post(url(cid, route), json=body)

    detail = assert_refused(answer, 409)
    assert f"'{status}'" in detail
    assert command in detail
    assert api.history(cid) == before
    assert api.view(cid)["status"] == status


def test_an_answer_to_another_information_request_is_refused(api: Api) -> None:
    cid = api.bring_to("awaiting_info")
    before = api.history(cid)

    answer = api.provide_info(cid, "not-the-open-request")

    assert "not-the-open-request" in assert_refused(answer, 409)
    assert api.history(cid) == before


# Invalid bodies: 422 naming the field, nothing stored.


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != key}


def source(**changes: Any) -> dict[str, Any]:
    first: dict[str, Any] = submission_body()["data_sources"][0]
    return {**first, **changes}


OPEN_LICENCE_WITHOUT_LICENCE = without(submission_body()["data_sources"][1], "licence")

INVALID_SUBMISSIONS = {
    "a basis outside the four": (
        submission_body(data_sources=[source(basis="fair_use")]),
        "data_sources[0].basis",
    ),
    "no due diligence": (without(submission_body(), "due_diligence"), "due_diligence"),
    "no record keeping": (
        without(submission_body(), "record_keeping"),
        "record_keeping",
    ),
    "no data sources": (submission_body(data_sources=[]), "data_sources"),
    "open licence without licence": (
        submission_body(data_sources=[OPEN_LICENCE_WITHOUT_LICENCE]),
        "licence",
    ),
    "contract without agreement": (
        submission_body(data_sources=[without(source(), "agreement_ref")]),
        "agreement_ref",
    ),
    "a purpose outside the four": (
        submission_body(data_sources=[source(purpose="marketing")]),
        "data_sources[0].purpose",
    ),
    "a third-party model without role": (
        submission_body(third_party_models=[{"name": "base", "provider": "x"}]),
        "third_party_models[0].role",
    ),
    "a source feeding an undeclared model": (
        submission_body(data_sources=[source(models=["not-declared"])]),
        "data_sources[0].models",
    ),
    "retention as words": (
        submission_body(record_keeping={"process": "p", "retention_months": "many"}),
        "record_keeping.retention_months",
    ),
    "revenue as words": (
        submission_body(annual_revenue_usd="lots"),
        "annual_revenue_usd",
    ),
    "negative revenue": (submission_body(annual_revenue_usd=-1), "annual_revenue_usd"),
    "an unknown field": (submission_body(comment="hi"), "comment"),
    "sources as a string": (submission_body(data_sources="all"), "data_sources"),
}


@pytest.mark.parametrize(
    ("body", "field"), INVALID_SUBMISSIONS.values(), ids=INVALID_SUBMISSIONS.keys()
)
def test_an_invalid_submission_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    cid = api.start()

    answer = api.submit(cid, body)

    assert field in assert_refused(answer, 422)
    assert api.event_types(cid) == ["ApplicationStarted"]


def test_the_refusal_of_an_open_licence_without_licence_names_the_source(
    api: Api,
) -> None:
    cid = api.start()
    body = submission_body(data_sources=[source(), OPEN_LICENCE_WITHOUT_LICENCE])

    answer = api.submit(cid, body)

    detail = assert_refused(answer, 422)
    assert "data_sources[1]" in detail
    assert "licence" in detail


INVALID_APPLICATIONS = {
    "revenue as words": (application_body(revenue="lots"), "annual_revenue_usd"),
    "revenue not finite": (application_body(revenue="NaN"), "annual_revenue_usd"),
    "revenue past cents": (application_body(revenue="10.001"), "annual_revenue_usd"),
    "models as a string": (application_body(models="acme"), "models"),
    "no models": (application_body(models=[]), "models"),
    "no organisation": (without(application_body(), "organisation"), "organisation"),
    "a bad email": (
        application_body(contact={"name": "Ann", "email": "ann"}),
        "contact.email",
    ),
    "a number for a name": (
        application_body(organisation={"name": 7, "country": "GB"}),
        "organisation.name",
    ),
}


@pytest.mark.parametrize(
    ("body", "field"), INVALID_APPLICATIONS.values(), ids=INVALID_APPLICATIONS.keys()
)
def test_an_invalid_application_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    answer = api.apply(body)

    assert field in assert_refused(answer, 422)


def test_a_payment_of_the_wrong_amount_is_refused_and_stores_nothing(
    api: Api,
) -> None:
    cid = api.bring_to("submitted")
    before = api.history(cid)

    answer = api.pay(cid, "submission_fee", "149.99")

    detail = assert_refused(answer, 422)
    assert "amount_usd" in detail
    assert "150" in detail
    assert api.history(cid) == before
    assert api.view(cid)["fees"]["due"] == [
        {"kind": "submission_fee", "amount_usd": "150"}
    ]


INVALID_COMMANDS = {
    "a payment in euros": (
        "payments",
        {
            "kind": "submission_fee",
            "amount_usd": "150",
            "reference": "x",
            "currency": "EUR",
        },
        "currency",
    ),
    "a payment of no amount": (
        "payments",
        {"kind": "submission_fee", "amount_usd": "0", "reference": "x"},
        "amount_usd",
    ),
    "a payment amount as a list": (
        "payments",
        {"kind": "submission_fee", "amount_usd": [150], "reference": "x"},
        "amount_usd",
    ),
    "a payment of an unknown kind": (
        "payments",
        {"kind": "tip", "amount_usd": "150", "reference": "x"},
        "kind",
    ),
    "questions as a string": ("info-requests", {"questions": "why?"}, "questions"),
    "a reply date in the past": (
        "info-requests",
        {"questions": ["why?"], "respond_by": "2000-01-01"},
        "respond_by",
    ),
    "a reply date that is no date": (
        "info-requests",
        {"questions": ["why?"], "respond_by": "soon"},
        "respond_by",
    ),
    "an outcome outside the two": (
        "decision",
        {"outcome": "maybe", "reason": "r"},
        "outcome",
    ),
    "a decision without reason": ("decision", {"outcome": "approved"}, "reason"),
    "a blank reason": ("suspension", {"reason": "   "}, "reason"),
    "a reason as a number": ("revocation", {"reason": 42}, "reason"),
}


@pytest.mark.parametrize(
    ("route", "body", "field"), INVALID_COMMANDS.values(), ids=INVALID_COMMANDS.keys()
)
def test_an_invalid_command_is_refused_naming_the_field(
    api: Api, route: str, body: dict[str, Any], field: str
) -> None:
    status = "submitted" if route == "payments" else "in_review"
    cid = api.bring_to(status)
    before = api.history(cid)

    answer = api.operator.post(url(cid, route), json=body)

    assert field in assert_refused(answer, 422)
    assert api.history(cid) == before


def test_a_reply_date_still_ahead_is_accepted(api: Api) -> None:
    cid = api.bring_to("in_review")
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()

    answer = api.operator.post(
        url(cid, "info-requests"), json={"questions": ["q"], "respond_by": tomorrow}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["open_info_request"]["respond_by"] == tomorrow


def test_a_body_that_is_not_json_is_refused(api: Api) -> None:
    headers = {"content-type": "application/json"}

    answer = api.applicant.post(
        "/v1/certifications", content=b'{"organisation": ', headers=headers
    )

    detail = assert_refused(answer, 422)
    assert detail.startswith("body: is not JSON")


def test_a_header_too_long_is_refused_naming_it(api: Api) -> None:
    answer = api.applicant.post(
        "/v1/certifications",
        json=application_body(),
        headers={"Idempotency-Key": "k" * 201},
    )

    assert "idempotency-key" in assert_refused(answer, 422).lower()


# Whatever arrives, the answer is a 422 naming what was wrong, never a 500.

GARBAGE = {
    "nothing": b"",
    "null": b"null",
    "a list": b"[1, 2]",
    "a number": b"12",
    "a string": b'"hello"',
    "cut short": b'{"reason": ',
    "not utf-8": b'{"reason": "\xff\xfe"}',
    "a lone surrogate": b'{"reason": "\\ud800"}',
    "deep nesting": b"[" * 10_000 + b"]" * 10_000,
    "a huge number": b'{"amount_usd": 1e999999, "reason": 1e999999}',
    "every field wrong": (
        b'{"kind": 1, "amount_usd": {}, "reference": [], "questions": 2,'
        b' "outcome": null, "reason": false, "request_id": {}, "answers": "a",'
        b' "data_sources": {}, "due_diligence": 3}'
    ),
}
COMMAND_ROUTES = [route for method, route, _ in ID_ROUTES if method == "POST"]


@pytest.fixture(scope="module")
def reviewed(api: Api) -> Iterator[str]:
    """One certification in review, which no garbled command may change."""
    cid = api.bring_to("in_review")
    before = api.history(cid)
    yield cid
    assert api.history(cid) == before


@pytest.mark.parametrize("route", COMMAND_ROUTES)
@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_garbled_body_never_gets_a_server_error(
    api: Api, reviewed: str, route: str, garbage: bytes
) -> None:
    headers = {"content-type": "application/json"}

    answer = api.operator.post(url(reviewed, route), content=garbage, headers=headers)

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
    assert len(api.history(reviewed)) == 3


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_garbled_application_never_gets_a_server_error(
    api: Api, garbage: bytes
) -> None:
    headers = {"content-type": "application/json"}

    answer = api.applicant.post("/v1/certifications", content=garbage, headers=headers)

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
