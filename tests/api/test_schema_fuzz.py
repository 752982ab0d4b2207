"""Hostile input generated from the service's own OpenAPI document.

Schemathesis sends each route bodies, parameters and headers that fit the
schema (positive mode) and that do not (negative mode), in-process against the
real ASGI application on a real SQLite store. Whatever arrives, the service
answers no 5xx and every 4xx is ``application/json`` with a ``detail``; only a
query waiting for a store position may answer 503 (README, "HTTP API"). Most
ids are replaced by those of real certifications in several statuses, so that
commands reach the aggregate; the rest are sent as generated, to reach the
404 and the id checks.
"""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from domain.clock import FixedClock
from projections.runner import start_in_thread
from service.composition import Runtime, build_app, build_runtime
from service.settings import Settings
from tests.projections.steps import START, Steps

TOKEN = "fuzz-operator-token"
EXAMPLES_PER_ROUTE_AND_MODE = 50
STATUSES = ("applied", "submitted", "in_review", "certified")
AS_GENERATED = "as generated"  # the id the fuzzer made is sent unchanged
ID_CHOICES = (*STATUSES, AS_GENERATED)


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


@dataclass
class Sent:
    """How many generated requests went out, and what came back."""

    by_mode: Counter[GenerationMode] = field(default_factory=Counter)
    ids_as_generated: int = 0
    negative_reached: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)


def test_no_input_gets_a_server_error_and_every_refusal_says_why(
    openapi: Any, certifications: dict[str, str]
) -> None:
    operations = [result.ok() for result in openapi.get_all_operations()]
    sent = Sent()

    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE, certifications, sent)
        if has_invalid_input(operation):
            fuzz(operation, GenerationMode.NEGATIVE, certifications, sent)

    with_body = {label(op) for op in operations if op.body}
    assert len(operations) >= 15
    assert with_body
    assert with_body <= sent.negative_reached
    assert sent.ids_as_generated > 0
    assert sent.statuses[404] > 0
    assert sent.statuses[422] > 0
    print(
        f"sent {sent.by_mode.total()} generated requests to {len(operations)} "
        f"operations: {sent.by_mode[GenerationMode.POSITIVE]} valid, "
        f"{sent.by_mode[GenerationMode.NEGATIVE]} invalid to "
        f"{len(sent.negative_reached)} operations, {sent.ids_as_generated} with "
        f"the generated id; statuses {dict(sorted(sent.statuses.items()))}"
    )


def label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def has_invalid_input(operation: Any) -> bool:
    """Whether the schema leaves any input to make invalid: a body, a query
    or a header. A path's id is any string, so none of its values is wrong."""
    return bool(operation.body or operation.query or operation.headers)


def fuzz(
    operation: Any,
    mode: GenerationMode,
    certifications: dict[str, str],
    sent: Sent,
) -> None:
    """Send one operation up to ``EXAMPLES_PER_ROUTE_AND_MODE`` generated
    requests of ``mode``, each checked by :func:`check_answer`."""

    @given(
        case=operation.as_strategy(generation_mode=mode),
        choice=st.sampled_from(ID_CHOICES),
    )
    @settings(
        max_examples=EXAMPLES_PER_ROUTE_AND_MODE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def send(case: Any, choice: str) -> None:
        path = case.path_parameters or {}
        if "certification_id" in path:
            if choice == AS_GENERATED:
                sent.ids_as_generated += 1
            else:
                path["certification_id"] = certifications[choice]
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
        sent.by_mode[mode] += 1
        sent.statuses[response.status_code] += 1
        if mode is GenerationMode.NEGATIVE:
            sent.negative_reached.add(label(operation))
        check_answer(case, response)

    send()


def check_answer(case: Any, response: Any) -> None:
    """No 5xx (but a 503 to a query waiting for a position); every refusal
    JSON with a non-empty ``detail``."""
    where = f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}"
    status = response.status_code
    allowed_5xx = {503} if waits_for_a_position(case) else set()
    assert status < 500 or status in allowed_5xx, (where, status, response.text)
    if status >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.split(";")[0] == "application/json", (where, content_type)
        body = json.loads(response.content)
        assert isinstance(body["detail"], str), (where, body)
        assert body["detail"].strip(), (where, body)
