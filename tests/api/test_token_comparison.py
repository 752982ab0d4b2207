"""Bearer tokens are compared in constant time, against every configured one.

``api/auth.py`` hashes the token a request sends with SHA-256 and compares the
digest with the digest of every configured token through
``hmac.compare_digest``, without stopping at the first match: how long the
check takes tells nothing about which token, or how much of one, matched.
These tests count the comparisons of each request in-process.
"""

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import api.auth
from service.composition import build_app, build_runtime
from service.settings import Settings
from tests.factories import application_body

# The same token with two roles is two configured credentials.
TOKENS = {
    "applicant": "applicant-token-1",
    "operator": "operator-and-auditor-token",
    "auditor": "operator-and-auditor-token",
    "billing": "billing-token-1",
}
UNKNOWN_TOKEN = "a-token-nobody-was-given"
CONFIGURED_DIGESTS = sorted(
    hashlib.sha256(token.encode()).digest() for token in TOKENS.values()
)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'certd.sqlite'}",
        api_tokens=",".join(f"{role}:{token}" for role, token in TOKENS.items()),
    )
    runtime = build_runtime(settings)
    try:
        with TestClient(build_app(runtime)) as client:
            yield client
    finally:
        runtime.close()


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every pair ``hmac.compare_digest`` is asked about, as api/auth.py
    calls it, in order."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counted(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.auth.hmac, "compare_digest", counted)
    return seen


def start(client: TestClient, token: str) -> int:
    answer = client.post(
        "/v1/certifications",
        json=application_body(),
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.status_code


CASES = {
    "an applicant's token": ("applicant-token-1", 201),
    "a token of two roles": ("operator-and-auditor-token", 201),
    "a token whose role may not": ("billing-token-1", 403),
    "an unknown token": (UNKNOWN_TOKEN, 401),
    "a configured token but its last character": ("applicant-token-", 401),
    "a configured token with one more character": ("applicant-token-12", 401),
}


@pytest.mark.parametrize("case", CASES)
def test_each_request_compares_its_token_with_every_configured_one(
    client: TestClient, comparisons: list[tuple[bytes, bytes]], case: str
) -> None:
    token, status = CASES[case]

    answered = start(client, token)

    assert answered == status
    assert sorted(configured for configured, _ in comparisons) == CONFIGURED_DIGESTS
    assert {sent for _, sent in comparisons} == {digest(token)}


def test_requests_without_a_bearer_token_compare_nothing(
    client: TestClient, comparisons: list[tuple[bytes, bytes]]
) -> None:
    answers = [
        client.post("/v1/certifications", json=application_body(), headers=headers)
        for headers in ({}, {"Authorization": "Basic applicant-token-1"})
    ]

    assert [answer.status_code for answer in answers] == [401, 401]
    assert comparisons == []
