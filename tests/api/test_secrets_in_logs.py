"""Bearer tokens and contact emails never reach the logs, at any level.

The server is a real ``certd serve`` logging JSON lines at ``debug``, with its
publisher sending the email on the event stream as it should; every
role's token, unknown tokens and an applicant's email go through every kind
of answer (accepted, refused, invalid, unauthenticated), then the whole log
is searched for them.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.server import ROLES, Api, ServerProcess
from tests.factories import application_body
from tests.stream.topic import new_topic, read_topic

EMAIL = "leak.check.7f3a@secret-contact.example"
BAD_EMAIL = "not-an-email-9c1e@@secret-contact.example"
UNKNOWN_TOKEN = "unknown-token-that-must-never-be-logged-5d2b"


@pytest.fixture
def debug_server(
    sqlite_url: str, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[ServerProcess]:
    """The whole service at ``debug``, its publisher and payment consumer too."""
    topic = new_topic(kafka_bootstrap)
    server = ServerProcess(
        sqlite_url,
        tmp_path,
        settings={
            "log_level": "debug",
            "kafka_bootstrap": kafka_bootstrap,
            "kafka_topic": topic,
        },
    )
    server.start()
    yield server
    server.stop()


def exercise_every_answer(api: Api) -> None:
    """Send the tokens and the email through accepted, refused and bad calls."""
    body = application_body(contact={"name": "Leak Check", "email": EMAIL})
    cid = api.start(body)
    api.applicant.post(
        "/v1/certifications",
        json=application_body(contact={"name": "Leak", "email": BAD_EMAIL}),
    )
    for role in ROLES:
        client = api.clients[role]
        client.get(f"/v1/certifications/{cid}")
        client.get(f"/v1/certifications/{cid}/history")
        client.post(f"/v1/certifications/{cid}/decision", json={"outcome": "x"})
        client.post(f"/v1/certifications/{cid}/suspension", json={"reason": "r"})
    for header in (f"Bearer {UNKNOWN_TOKEN}", UNKNOWN_TOKEN, f"Basic {EMAIL}"):
        api.anonymous.get(
            f"/v1/certifications/{cid}", headers={"Authorization": header}
        )
    api.anonymous.get("/v1/registry")
    api.operate(cid, "withdrawal")


def test_no_token_and_no_contact_email_is_ever_logged(
    debug_server: ServerProcess,
) -> None:
    api = Api(debug_server)
    try:
        exercise_every_answer(api)
    finally:
        api.close()
    published = read_topic(
        debug_server.settings["kafka_bootstrap"], debug_server.settings["kafka_topic"]
    )
    debug_server.stop()

    log = debug_server.log()

    assert "command_handled" in log, "the log holds the commands"
    assert any(EMAIL in str(message.envelope) for message in published)
    secrets = [*debug_server.tokens.values(), UNKNOWN_TOKEN, EMAIL, BAD_EMAIL]
    leaked = [secret for secret in secrets if secret in log]
    assert leaked == []
    assert "secret-contact" not in log
