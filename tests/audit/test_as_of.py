"""``certd state ID --as-of T``: the status view replayed from the events
recorded up to T, inclusive, at the exact instants of events and between."""

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import pytest

from domain.clock import FixedClock
from service.composition import Runtime
from tests.audit.cli import Certd, Ran
from tests.projections.steps import START, Steps

STEP = timedelta(days=3)


def lifecycle_at_known_instants(steps: Steps, clock: FixedClock) -> UUID:
    """Start on START, submit 3 days later, pay 3 days after that, approve."""
    cert_id = steps.start()
    for step in (steps.submit, steps.pay_due, steps.approve):
        clock.advance(STEP)
        step(cert_id)
    return cert_id


State = Callable[[UUID, str], Ran]


@pytest.fixture
def state(certd: Certd) -> State:
    def run(cert_id: UUID, as_of: str) -> Ran:
        return certd("state", str(cert_id), "--as-of", as_of, "--json")

    return run


@pytest.mark.parametrize(
    ("offset", "status", "version"),
    [
        (timedelta(0), "applied", 1),
        (STEP - timedelta(microseconds=1), "applied", 1),
        (STEP, "submitted", 2),
        (STEP + timedelta(hours=5), "submitted", 2),
        (2 * STEP, "in_review", 3),
        (3 * STEP, "approved", 4),
        (30 * STEP, "approved", 4),
    ],
)
def test_the_state_at_an_instant_holds_the_events_up_to_it_inclusive(
    steps: Steps,
    clock: FixedClock,
    state: State,
    offset: timedelta,
    status: str,
    version: int,
) -> None:
    cert_id = lifecycle_at_known_instants(steps, clock)

    ran = state(cert_id, (START + offset).isoformat())

    assert ran.code == 0, ran.err
    view = json.loads(ran.out)
    assert (view["status"], view["version"]) == (status, version)
    assert datetime.fromisoformat(view["last_event_at"]) <= START + offset


def test_the_state_as_of_now_equals_the_live_status_view(
    steps: Steps, clock: FixedClock, state: State, runtime: Runtime
) -> None:
    cert_id = lifecycle_at_known_instants(steps, clock)
    runtime.runner.catch_up()
    (live,) = list(runtime.views.load({cert_id}).values())

    ran = state(cert_id, clock.now().isoformat())

    view = json.loads(ran.out)
    assert view["position"] == live.position
    assert view["fees"]["invoiced_usd"] == str(live.fees_invoiced_usd)
    assert view["fees"]["due"][0]["kind"] == "annual_fee"


def test_an_instant_before_the_application_finds_nothing(
    steps: Steps, clock: FixedClock, state: State
) -> None:
    cert_id = lifecycle_at_known_instants(steps, clock)

    ran = state(cert_id, (START - timedelta(microseconds=1)).isoformat())

    assert ran.code == 1
    assert "had not been applied for" in ran.err


def test_a_time_without_timezone_is_refused(
    steps: Steps, clock: FixedClock, state: State
) -> None:
    cert_id = lifecycle_at_known_instants(steps, clock)

    with pytest.raises(SystemExit) as exited:
        state(cert_id, "2026-03-02T09:30:00")

    assert exited.value.code == 2
