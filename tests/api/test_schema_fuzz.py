"""Hostile input generated from the service's own OpenAPI document.

Schemathesis sends each route bodies, parameters and headers that fit the
schema and that do not, in-process against the real ASGI application on a real
SQLite store. Whatever arrives, the service answers no 500 and every refusal
is JSON with a ``detail``; only a query waiting for a store position may
answer 503 (README, "HTTP API"). Ids are those of real certifications in several
statuses, so that commands reach the aggregate, not only the 404.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.clock import FixedClock
from projections.runner import start_in_thread
from service.composition import Runtime, build_app, build_runtime
from service.settings import Settings
from tests.projections.steps import START, Steps

TOKEN = "fuzz-operator-token"
EXAMPLES_PER_ROUTE = 100
STATUSES = ("applied", "submitted", "in_review", "certified")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    store = Path(tmp_path_factory.mktemp("fuzz")) / "certd.sqlite"
    settings = Settings(
        database_url=f"sqlite:///{store}",
        api_tokens=f"operator:{TOKEN}",
        read_wait_seconds=0.05,
    )
    runtime = build_runtime(settings, FixedClock(START))
    thread, stopping = start_in_thread(runtime.runner)
    yield runtime
    stopping.set()
    thread.join(timeout=10)
    runtime.close()


@pytest.fixture(scope="module")
def certifications(runtime: Runtime) -> dict[str, str]:
    """One certification in each of ``STATUSES``, by status."""
    steps = Steps(runtime.service)
    submitted = steps.start("Submitted Ltd")
    steps.submit(submitted)
    ids = {
        "applied": steps.start("Applied Ltd"),
        "submitted": submitted,
        "in_review": steps.in_review("In Review Ltd"),
        "certified": steps.certify("Certified Ltd"),
    }
    return {status: str(cid) for status, cid in ids.items()}


@pytest.fixture(scope="module")
def app(runtime: Runtime) -> FastAPI:
    return build_app(runtime)


@pytest.fixture(scope="module")
def openapi(app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def waits_for_a_position(case: Any) -> bool:
    """Whether a query asks for a store position, which it may answer 503:
    a position the store has not reached is waited for, then refused so."""
    return "min_position" in (case.query or {})


def test_no_input_gets_a_server_error_and_every_refusal_says_why(
    openapi: Any, certifications: dict[str, str]
) -> None:
    operations = [result.ok() for result in openapi.get_all_operations()]

    sent = [fuzz(operation, certifications) for operation in operations]

    assert len(operations) >= 15
    print(f"sent {sum(sent)} generated requests to {len(operations)} operations")


def fuzz(operation: Any, certifications: dict[str, str]) -> int:
    """Send one operation up to ``EXAMPLES_PER_ROUTE`` generated requests;
    return how many were sent."""
    sent = 0

    @given(case=operation.as_strategy(), status=st.sampled_from(STATUSES))
    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def send(case: Any, status: str) -> None:
        if "certification_id" in (case.path_parameters or {}):
            case.path_parameters["certification_id"] = certifications[status]

        nonlocal sent
        sent += 1
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})

        where = f"{case.method} {case.formatted_path}"
        if waits_for_a_position(case):
            assert response.status_code != 500, (where, response.text)
        else:
            assert response.status_code < 500, (where, response.text)
        if response.status_code >= 400:
            body = json.loads(response.content)
            assert isinstance(body["detail"], str), (where, body)
            assert body["detail"].strip(), (where, body)

    send()
    return sent
