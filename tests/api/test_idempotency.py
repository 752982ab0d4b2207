"""Repeats: a payment or an application sent twice has the effect of one."""

from tests.api.server import POSITION, Api
from tests.factories import application_body


def test_a_second_payment_with_the_same_reference_changes_nothing(api: Api) -> None:
    cid = api.bring_to("submitted")

    first = api.pay(cid, "submission_fee", "150", reference="bank-0001")
    second = api.pay(cid, "submission_fee", "150", reference="bank-0001")

    assert first.status_code == 200, first.text
    assert POSITION in first.headers
    assert second.status_code == first.status_code
    assert second.json() == first.json()
    assert POSITION not in second.headers
    assert api.event_types(cid).count("SubmissionFeePaid") == 1
    assert len(api.history(cid)) == 3


def test_a_payment_delivered_again_later_answers_as_the_first_time(
    api: Api,
) -> None:
    cid = api.bring_to("submitted")
    first = api.pay(cid, "submission_fee", "150", reference="bank-0002")
    api.decide(cid, "approved")
    api.pay_due(cid)
    history = api.history(cid)

    again = api.pay(cid, "submission_fee", "150", reference="bank-0002")

    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert POSITION not in again.headers
    assert api.history(cid) == history
    assert api.view(cid)["status"] == "certified"


def test_the_same_reference_with_another_amount_is_refused(api: Api) -> None:
    cid = api.bring_to("approved")
    api.pay(cid, "annual_fee", "1000", reference="bank-0003")
    history = api.history(cid)

    answer = api.pay(cid, "annual_fee", "999", reference="bank-0003")

    assert answer.status_code == 409, answer.text
    assert "bank-0003" in answer.json()["detail"]
    assert api.history(cid) == history


def test_the_same_reference_for_another_fee_is_refused(api: Api) -> None:
    cid = api.bring_to("submitted")
    api.pay(cid, "submission_fee", "150", reference="bank-0004")
    api.decide(cid, "approved")
    history = api.history(cid)

    answer = api.pay(cid, "annual_fee", "1000", reference="bank-0004")

    assert answer.status_code == 409, answer.text
    assert api.history(cid) == history


def test_a_reference_is_known_only_to_its_own_certification(api: Api) -> None:
    one = api.bring_to("submitted")
    other = api.bring_to("submitted")

    first = api.pay(one, "submission_fee", "150", reference="bank-0005")
    second = api.pay(other, "submission_fee", "150", reference="bank-0005")

    assert second.status_code == 200, second.text
    assert POSITION in second.headers
    assert second.json()["certification_id"] == other
    assert first.json()["certification_id"] == one


def test_an_application_sent_twice_with_one_key_starts_one_certification(
    api: Api,
) -> None:
    headers = {"Idempotency-Key": "form-session-0001"}

    first = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )
    second = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )

    assert first.status_code == 201, first.text
    assert second.status_code == first.status_code, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Location"] == first.headers["Location"]
    assert POSITION in first.headers
    assert POSITION not in second.headers
    assert api.event_types(first.json()["id"]) == ["ApplicationStarted"]


def test_a_repeated_application_answers_the_certification_as_it_now_stands(
    api: Api,
) -> None:
    headers = {"Idempotency-Key": "form-session-0002"}
    first = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )
    cid = first.json()["id"]
    api.submit(cid)

    again = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )

    assert again.json()["id"] == cid
    assert again.json()["status"] == "submitted"
    assert api.event_types(cid) == ["ApplicationStarted", "SubmissionReceived"]


def test_one_key_with_another_body_is_refused(api: Api) -> None:
    headers = {"Idempotency-Key": "form-session-0003"}
    first = api.applicant.post(
        "/v1/certifications", json=application_body(revenue=1_000), headers=headers
    )

    second = api.applicant.post(
        "/v1/certifications", json=application_body(revenue=2_000), headers=headers
    )

    assert second.status_code == 422, second.text
    assert "Idempotency-Key" in second.json()["detail"]
    assert api.event_types(first.json()["id"]) == ["ApplicationStarted"]
    assert api.view(first.json()["id"])["annual_revenue_usd"] == "1000"


def test_a_key_belongs_to_the_credential_that_sent_it(api: Api) -> None:
    headers = {"Idempotency-Key": "form-session-0004"}

    by_applicant = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )
    by_operator = api.operator.post(
        "/v1/certifications", json=application_body(), headers=headers
    )

    assert by_operator.status_code == 201, by_operator.text
    assert by_operator.json()["id"] != by_applicant.json()["id"]


def test_applications_without_a_key_are_each_started(api: Api) -> None:
    first = api.apply(application_body())
    second = api.apply(application_body())

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
