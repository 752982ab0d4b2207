"""Commands racing on one certification: one wins, the rest store nothing."""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.server import Api
from tests.factories import application_body

RACERS = 20

Send = Callable[[httpx.Client], httpx.Response]


def race(api: Api, role: str, send: Send, racers: int = RACERS) -> list[httpx.Response]:
    """Send the same request from ``racers`` threads at once, each on its own line."""
    clients = [api.server.client(role) for _ in range(racers)]
    for client in clients:
        client.get("/healthz")  # open each connection before the start
    start = threading.Barrier(racers)

    def run(client: httpx.Client) -> httpx.Response:
        start.wait(timeout=30)
        return send(client)

    try:
        with ThreadPoolExecutor(max_workers=racers) as pool:
            answers = list(pool.map(run, clients))
    finally:
        for client in clients:
            client.close()
    # These clients are not the Api's own: note the positions they stored,
    # so that the Api's next read waits for them.
    for answer in answers:
        api.note_position(answer)
    return answers


def statuses(answers: list[httpx.Response]) -> Counter[int]:
    return Counter(answer.status_code for answer in answers)


def test_of_concurrent_approvals_exactly_one_is_stored(api: Api) -> None:
    cid = api.bring_to("in_review")
    before = len(api.history(cid))
    body = {"outcome": "approved", "reason": "approved in a race"}

    answers = race(
        api,
        "operator",
        lambda c: c.post(f"/v1/certifications/{cid}/decision", json=body),
    )

    assert statuses(answers) == {200: 1, 409: RACERS - 1}, [a.text for a in answers]
    assert all(
        answer.json()["detail"] for answer in answers if answer.status_code == 409
    )
    assert api.event_types(cid)[before:] == ["Approved"]
    assert api.view(cid)["status"] == "approved"


def test_of_concurrent_decisions_either_way_exactly_one_is_stored(api: Api) -> None:
    cid = api.bring_to("in_review")
    before = len(api.history(cid))
    outcomes = iter(["approved", "rejected"] * RACERS)
    lock = threading.Lock()

    def decide(client: httpx.Client) -> httpx.Response:
        with lock:
            outcome = next(outcomes)
        body = {"outcome": outcome, "reason": "decided in a race"}
        return client.post(f"/v1/certifications/{cid}/decision", json=body)

    answers = race(api, "operator", decide)

    assert statuses(answers) == {200: 1, 409: RACERS - 1}, [a.text for a in answers]
    (winner,) = [answer for answer in answers if answer.status_code == 200]
    assert api.view(cid)["status"] == winner.json()["status"]
    assert len(api.history(cid)) == before + 1


def test_of_concurrent_information_requests_exactly_one_is_stored(api: Api) -> None:
    cid = api.bring_to("in_review")
    before = len(api.history(cid))
    body = {"questions": ["Asked in a race?"]}

    answers = race(
        api,
        "operator",
        lambda c: c.post(f"/v1/certifications/{cid}/info-requests", json=body),
    )

    assert statuses(answers) == {200: 1, 409: RACERS - 1}, [a.text for a in answers]
    (winner,) = [answer for answer in answers if answer.status_code == 200]
    history = api.history(cid)
    assert [entry["type"] for entry in history[before:]] == ["InfoRequested"]
    assert history[-1]["data"]["request_id"] == winner.json()["request_id"]


def test_concurrent_deliveries_of_one_payment_all_get_the_same_receipt(
    api: Api,
) -> None:
    cid = api.bring_to("submitted")
    before = len(api.history(cid))
    body = {"kind": "submission_fee", "amount_usd": "150", "reference": "race-1"}

    answers = race(
        api,
        "billing",
        lambda c: c.post(f"/v1/certifications/{cid}/payments", json=body),
    )

    assert statuses(answers) == {200: RACERS}, [a.text for a in answers]
    assert len({answer.content for answer in answers}) == 1
    assert sum("Store-Position" in answer.headers for answer in answers) == 1
    assert api.event_types(cid)[before:] == ["SubmissionFeePaid"]
    assert api.view(cid)["status"] == "in_review"


def test_concurrent_applications_with_one_key_start_one_certification(
    api: Api,
) -> None:
    headers = {"Idempotency-Key": "race-form-1"}

    answers = race(
        api,
        "applicant",
        lambda c: c.post(
            "/v1/certifications", json=application_body(), headers=headers
        ),
    )

    assert statuses(answers) == {201: RACERS}, [a.text for a in answers]
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == 1
    assert api.event_types(ids.pop()) == ["ApplicationStarted"]


def test_commands_on_different_certifications_do_not_conflict(api: Api) -> None:
    ids = iter([api.bring_to("in_review") for _ in range(RACERS)])
    lock = threading.Lock()

    def approve_one(client: httpx.Client) -> httpx.Response:
        with lock:
            cid = next(ids)
        body = {"outcome": "approved", "reason": "one each"}
        return client.post(f"/v1/certifications/{cid}/decision", json=body)

    answers = race(api, "operator", approve_one)

    assert statuses(answers) == {200: RACERS}, [a.text for a in answers]
