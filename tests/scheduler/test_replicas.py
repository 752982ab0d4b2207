"""Scheduler replicas on one PostgreSQL store: three passes at once.

Each pass runs in a thread with a runtime of its own (its own connections,
views object and runner), built from the same settings and the same clock
time, as three ``certd schedule`` processes would be. A barrier starts them
together.
"""

import logging
import threading
from collections import Counter
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from structlog.testing import capture_logs

from domain.certification import Certification
from domain.clock import FixedClock
from projections.views import LIVE_TABLE, StatusViews
from scheduler.passes import PassReport
from service.composition import Runtime, build_runtime
from service.settings import Settings
from service.store import view_database
from tests.projections.steps import START, Steps
from tests.scheduler.checks import stored_facts, view_against_aggregates

REPLICAS = 3
# 15 certified on START (valid until 2027-03-01, renewal closes 2027-03-31)
# and 15 sixty days later (valid until 2027-04-30, due since 2027-03-01).
EACH_GROUP = 15
PASS_AT = datetime(2027, 4, 1, 6, 0, tzinfo=UTC)
ERROR_LEVELS = {"error", "exception", "critical"}


@pytest.fixture
def store(postgres_url: str) -> tuple[str, list[UUID], list[UUID]]:
    """The store's URL, the certifications that lapse in the pass, and those
    that only fall due."""
    clock = FixedClock(START)
    runtime = build_runtime(Settings(database_url=postgres_url), clock)
    steps = Steps(runtime.service)
    lapsing = [steps.certify(f"Lapsing {n:02d} Ltd") for n in range(EACH_GROUP)]
    clock.advance(timedelta(days=60))
    falling_due = [steps.certify(f"Due {n:02d} Ltd") for n in range(EACH_GROUP)]
    runtime.runner.catch_up()
    runtime.close()
    return postgres_url, lapsing, falling_due


def passes_at_once(url: str, count: int) -> list[PassReport]:
    """Run ``count`` passes in threads started together; return their reports.

    The runtimes are built one after the other: ``eventsourcing`` replaces its
    insert function at every start, and PostgreSQL refuses two of those at
    once ("tuple concurrently updated"), which is a start-up matter, not the
    scheduler's.
    """
    # Each replica's clock a microsecond apart, as processes' clocks are:
    # events made at the very same instant would be equal to the byte, and
    # the store answers an event it holds to the byte as stored by whoever
    # stores it again (a retried insert looks just the same).
    runtimes = [
        build_runtime(
            Settings(database_url=url),
            FixedClock(PASS_AT + timedelta(microseconds=replica)),
        )
        for replica in range(count)
    ]
    barrier = threading.Barrier(count)
    reports: list[PassReport] = []
    failures: list[BaseException] = []

    def replica(runtime: Runtime) -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(runtime.scheduler_pass.run())
        except BaseException as failure:  # re-raised in the test's thread
            barrier.abort()
            failures.append(failure)

    threads = [threading.Thread(target=replica, args=(r,)) for r in runtimes]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for runtime in runtimes:
            runtime.close()
    if failures:
        raise failures[0]
    return reports


@pytest.mark.parametrize("attempt", range(3))
def test_three_passes_at_once_raise_each_fact_exactly_once(
    store: tuple[str, list[UUID], list[UUID]],
    caplog: pytest.LogCaptureFixture,
    attempt: int,
) -> None:
    url, lapsing, falling_due = store

    with caplog.at_level(logging.WARNING), capture_logs() as logs:
        reports = passes_at_once(url, REPLICAS)

    runtime = build_runtime(Settings(database_url=url), FixedClock(PASS_AT))
    try:
        for cert_id in lapsing + falling_due:
            due = stored_facts(runtime.service, cert_id, Certification.ReevaluationDue)
            lapsed = stored_facts(
                runtime.service, cert_id, Certification.CertificationLapsed
            )
            assert len(due) == 1, cert_id
            assert len(lapsed) == (1 if cert_id in lapsing else 0), cert_id
        compared = view_against_aggregates(runtime, lapsing + falling_due)
    finally:
        runtime.close()
    assert {cert_id: found for cert_id, (_, found) in compared.items() if found} == {}
    raised = Counter(fact for report in reports for fact in report.raised)
    assert set(raised.values()) == {1}
    assert raised.keys() == {
        *((cert_id, "ReevaluationDue") for cert_id in lapsing + falling_due),
        *((cert_id, "CertificationLapsed") for cert_id in lapsing),
    }
    skips = [entry for entry in logs if entry["event"] == "scheduler_skipped"]
    assert len(skips) == sum(report.skipped for report in reports) > 0
    assert all(entry["log_level"] == "info" for entry in skips)
    assert errors_in(logs, caplog) == []


def errors_in(
    logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The lines of either log that a lost race must never produce."""
    return [
        str(entry["event"]) for entry in logs if entry["log_level"] in ERROR_LEVELS
    ] + [record.getMessage() for record in caplog.records if record.levelno >= 40]


def test_a_pass_after_the_replicas_finds_nothing_left_to_raise(
    store: tuple[str, list[UUID], list[UUID]],
) -> None:
    url, _, _ = store
    passes_at_once(url, REPLICAS)
    runtime = build_runtime(Settings(database_url=url), FixedClock(PASS_AT))

    try:
        late = runtime.scheduler_pass.run()
    finally:
        runtime.close()

    assert (late.raised, late.skipped) == ([], 0)


def test_replicas_starting_together_on_a_fresh_database_create_the_views_once(
    postgres_url: str,
) -> None:
    databases = [view_database(postgres_url) for _ in range(REPLICAS)]
    barrier = threading.Barrier(REPLICAS)
    failures: list[BaseException] = []

    def start(views: StatusViews) -> None:
        try:
            barrier.wait(timeout=30)
            views.create()
        except BaseException as failure:
            failures.append(failure)

    threads = [
        threading.Thread(target=start, args=(StatusViews(db),)) for db in databases
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        tracked = databases[0].query("SELECT name, position FROM view_tracking")
    finally:
        for db in databases:
            db.close()

    assert failures == []
    assert tracked == [{"name": LIVE_TABLE, "position": 0}]
