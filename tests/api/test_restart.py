"""A restarted server carries on from the store, having lost nothing."""

import signal
from collections.abc import Iterator

import pytest

from tests.api.server import POSITION, Api, ServerProcess
from tests.factories import application_body


@pytest.fixture
def api(own_server: ServerProcess) -> Iterator[Api]:
    steps = Api(own_server)
    yield steps
    steps.close()


def test_the_server_stops_cleanly_on_sigterm(own_server: ServerProcess) -> None:
    code = own_server.stop()

    # uvicorn ends by raising the signal it caught again, once it has shut down.
    assert code in {0, -signal.SIGTERM}, own_server.log()
    assert not own_server.is_running
    assert "Application shutdown complete" in own_server.log()


def test_a_restarted_server_keeps_state_and_history_and_goes_on(
    own_server: ServerProcess, api: Api
) -> None:
    cid = api.bring_to("in_review")
    asked = api.request_info(cid)
    view, history = api.view(cid), api.history(cid)
    last_position = int(asked.headers[POSITION])

    own_server.restart()

    assert api.view(cid) == view
    assert api.history(cid) == history
    answered = api.provide_info(cid, asked.json()["request_id"])
    assert answered.status_code == 200, answered.text
    assert int(answered.headers[POSITION]) > last_position
    assert api.decide(cid, "approved").status_code == 200
    assert api.pay_due(cid).status_code == 200
    assert api.view(cid)["status"] == "certified"
    assert api.event_types(cid)[len(history) :] == [
        "InfoProvided",
        "Approved",
        "AnnualFeePaid",
    ]


def test_a_restarted_server_still_knows_payments_and_keys(
    own_server: ServerProcess, api: Api
) -> None:
    cid = api.bring_to("submitted")
    paid = api.pay(cid, "submission_fee", "150", reference="before-restart")
    headers = {"Idempotency-Key": "before-restart"}
    started = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )

    own_server.restart()

    paid_again = api.pay(cid, "submission_fee", "150", reference="before-restart")
    started_again = api.applicant.post(
        "/v1/certifications", json=application_body(), headers=headers
    )
    assert paid_again.json() == paid.json()
    assert POSITION not in paid_again.headers
    assert started_again.json()["id"] == started.json()["id"]
    assert api.event_types(cid).count("SubmissionFeePaid") == 1


def test_every_certification_survives_two_restarts(
    own_server: ServerProcess, api: Api
) -> None:
    statuses = ["applied", "awaiting_info", "certified", "suspended", "withdrawn"]
    ids = {status: api.bring_to(status) for status in statuses}

    own_server.restart()
    own_server.restart()

    for status, cid in ids.items():
        assert api.view(cid)["status"] == status
    assert api.operate(ids["suspended"], "reinstatement").status_code == 200
    assert api.view(ids["suspended"])["is_certified"] is True
