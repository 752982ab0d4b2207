"""No token and no contact email is ever handed to a logger, in-process.

A whole lifecycle, with refusals, invalid input and bad credentials, goes
through the application in-process while structlog's ``capture_logs`` keeps
every event dict before any processor or renderer sees it, and pytest keeps
every record of the standard library's logging. Every key and value of every
one, however deeply nested, is searched. ``test_secrets_in_logs.py`` searches
the lines a real server writes at ``debug``.
"""

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from projections.runner import start_in_thread
from service.composition import build_app, build_runtime
from service.settings import Settings
from tests.factories import application_body, submission_body

TOKENS = {
    "applicant": "applicant-secret-token-41c7",
    "operator": "operator-secret-token-92ad",
    "billing": "billing-secret-token-0be3",
    "auditor": "auditor-secret-token-7e55",
}
UNKNOWN_TOKEN = "unknown-secret-token-d81f"
EMAIL = "leak.check.31b9@secret-contact.example"
BAD_EMAIL = "not-an-email-6a2e@@secret-contact.example"
DECISION = {"outcome": "approved", "reason": "all sources licensed"}
SECRETS = (*TOKENS.values(), UNKNOWN_TOKEN, EMAIL, BAD_EMAIL, "secret-contact")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'certd.sqlite'}",
        api_tokens=",".join(f"{role}:{token}" for role, token in TOKENS.items()),
    )
    runtime = build_runtime(settings)
    thread, stopping = start_in_thread(runtime.runner)
    try:
        with TestClient(build_app(runtime)) as client:
            yield client
    finally:
        stopping.set()
        thread.join(timeout=10)
        runtime.close()


def as_(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def certify(client: TestClient) -> str:
    """Take an application with the contact's email to certified."""
    body = application_body(contact={"name": "Leak Check", "email": EMAIL})
    started = client.post("/v1/certifications", json=body, headers=as_("applicant"))
    assert started.status_code == 201, started.text
    one = f"/v1/certifications/{started.json()['id']}"
    steps = [
        ("applicant", "submission", submission_body()),
        ("billing", "payments", payment("submission_fee", "150")),
        ("operator", "decision", DECISION),
        ("billing", "payments", payment("annual_fee", "1000")),
    ]
    for role, path, step in steps:
        answer = client.post(f"{one}/{path}", json=step, headers=as_(role))
        assert answer.status_code == 200, answer.text
    return one


def payment(kind: str, amount: str) -> dict[str, str]:
    return {"kind": kind, "amount_usd": amount, "reference": f"{kind}-ref"}


def refuse_and_reject(client: TestClient, one: str) -> list[int]:
    """Send refused, invalid, forbidden and unauthenticated calls; return
    their statuses."""
    bad_body = application_body(contact={"name": "Leak", "email": BAD_EMAIL})
    calls = [
        ("POST", "/v1/certifications", bad_body, as_("applicant")),
        (
            "POST",
            f"{one}/decision",
            {"outcome": "approved", "reason": "again"},
            as_("operator"),
        ),
        ("GET", f"{one}/history", None, as_("billing")),
        ("GET", one, None, {"Authorization": f"Bearer {UNKNOWN_TOKEN}"}),
        ("GET", one, None, {"Authorization": UNKNOWN_TOKEN}),
        ("GET", one, None, {"Authorization": f"Basic {EMAIL}"}),
    ]
    return [
        client.request(method, path, json=body, headers=headers).status_code
        for method, path, body, headers in calls
    ]


def read_everything(client: TestClient, one: str) -> list[int]:
    reads = [one, f"{one}/history", "/v1/certifications?q=Acme", "/v1/stats"]
    statuses = [client.get(path, headers=as_("operator")).status_code for path in reads]
    return [*statuses, client.get("/v1/registry").status_code]


def flattened(value: Any) -> Iterator[str]:
    """Every key and value inside ``value``, each as str and repr."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flattened(key)
            yield from flattened(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from flattened(item)
    else:
        yield str(value)
        yield repr(value)


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    yield record.getMessage()
    yield from flattened(record.args)
    yield from flattened(vars(record))


def test_no_logger_is_handed_a_token_or_a_contact_email(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        one = certify(client)
        refused = refuse_and_reject(client, one)
        read = read_everything(client, one)

    assert refused == [422, 409, 403, 401, 401, 401]
    assert read == [200, 200, 200, 200, 200]
    assert {"command_handled", "request_handled"} <= {e["event"] for e in events}
    texts = [*flattened(events)]
    texts += [text for record in caplog.records for text in record_texts(record)]
    assert [secret for secret in SECRETS if any(secret in t for t in texts)] == []
