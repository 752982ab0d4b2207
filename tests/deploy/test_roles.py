"""Each role started alone, as its container starts it: a real process on a
fresh PostgreSQL database (and the test broker where it needs one). Each
answers its health check, stops on SIGTERM with status 0 within seconds, and
loses nothing it was doing when it stopped."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from domain.certification import Certification
from domain.clock import Clock, FixedClock
from projections.replay import compare, rebuild
from service.composition import Runtime, build_runtime
from service.roles import STOP_TIMEOUT_SECONDS as ROLE_STOP_BOUND_SECONDS
from service.settings import Settings
from tests.api.server import free_port
from tests.deploy.conftest import LaunchRole
from tests.deploy.roles import STOP_TIMEOUT_SECONDS, wait_until
from tests.deploy.slowed import with_endless_scheduler_pass, with_gated_http_startup
from tests.factories import application_body
from tests.projections.steps import START, Steps, one_lifecycle
from tests.stream.payment_steps import (
    Billing,
    create_topics,
    dead_letters,
    fees_paid,
    payment,
    stream_settings,
    submitted_certification,
)
from tests.stream.topic import new_topic, read_topic

pytestmark = pytest.mark.timeout(120)


def open_runtime(database_url: str, clock: Clock | None = None) -> Runtime:
    return build_runtime(
        Settings(database_url=database_url), clock or FixedClock(START)
    )


@pytest.fixture
def runtime(postgres_url: str) -> Iterator[Runtime]:
    """The test's own view of the role's database, to write and check with."""
    runtime = open_runtime(postgres_url)
    yield runtime
    runtime.close()


def store_position(runtime: Runtime) -> int:
    return runtime.service.recorder.max_notification_id() or 0


def stored_events(runtime: Runtime) -> set[tuple[str, int]]:
    """Every stored event, as certification id and version."""
    notifications = runtime.service.recorder.select_notifications(
        start=1, limit=100_000
    )
    events = map(runtime.service.mapper.to_domain_event, notifications)
    return {
        (str(event.originator_id), event.originator_version)
        for event in events
        if isinstance(event, Certification.Event)
    }


def assert_stopped_cleanly(stopped: tuple[int, float]) -> None:
    status, seconds = stopped
    assert status == 0
    assert seconds < STOP_TIMEOUT_SECONDS


def test_project_alone_keeps_the_views_within_the_store_and_resumes_after_sigterm(
    launch: LaunchRole, runtime: Runtime, postgres_url: str
) -> None:
    steps = Steps(runtime.service)
    project = launch("project", database_url=postgres_url, projection_batch="4")
    assert project.healthz().json() == {"status": "ok", "role": "project"}

    behind_or_level = []
    for index in range(10):
        one_lifecycle(steps, index)
        # The view first: a store position read after it can only be later.
        view = runtime.views.position()
        behind_or_level.append(view <= store_position(runtime))
    stopped = project.stop()  # it may be in the middle of a batch
    position_at_stop = runtime.views.position()
    for index in range(10, 14):
        one_lifecycle(steps, index)
    project.start()
    wait_until(
        lambda: runtime.views.position() == store_position(runtime),
        30,
        "the restarted runner to reach the store",
    )
    rebuilt, position = rebuild(
        runtime.service, runtime.views, runtime.settings.reevaluation_lead_days
    )
    report = compare(runtime.views, rebuilt, position)
    rebuilt.drop()

    assert_stopped_cleanly(stopped)
    assert all(behind_or_level)
    assert position_at_stop <= store_position(runtime)
    assert report.differences == []
    assert report.rows == 14
    assert project.errors() == []


def test_publish_alone_puts_every_event_stored_around_a_sigterm_on_the_topic(
    launch: LaunchRole, runtime: Runtime, postgres_url: str, kafka_bootstrap: str
) -> None:
    topic = new_topic(kafka_bootstrap)
    steps = Steps(runtime.service)
    for index in range(3):
        one_lifecycle(steps, index)
    publish = launch(
        "publish",
        database_url=postgres_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=topic,
        publisher_batch="3",
    )

    for index in range(3, 6):
        one_lifecycle(steps, index)
    stopped = publish.stop()
    for index in range(6, 8):
        one_lifecycle(steps, index)  # stored while no publisher runs
    publish.start()
    wait_until(
        lambda: publish.scrape().value("certd_publisher_lag_positions") == 0,
        30,
        "the publisher to catch up",
    )
    scrape = publish.scrape()
    on_topic = {message.identity for message in read_topic(kafka_bootstrap, topic)}

    assert_stopped_cleanly(stopped)
    assert on_topic == stored_events(runtime)
    assert scrape.value("certd_publisher_position") == store_position(runtime)
    assert publish.errors() == []


def test_consume_alone_records_payments_counts_dead_letters_and_resumes_after_sigterm(
    launch: LaunchRole, postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = stream_settings(postgres_url, kafka_bootstrap)
    create_topics(settings)
    runtime = open_runtime(postgres_url)
    billing = Billing(settings)
    try:
        paid_before, paid_while_stopped = (
            submitted_certification(runtime.service) for _ in range(2)
        )
        consume = launch(
            "consume",
            database_url=postgres_url,
            kafka_bootstrap=kafka_bootstrap,
            kafka_payments_topic=settings.kafka_payments_topic,
            kafka_dlq_topic=settings.kafka_dlq_topic,
            kafka_consumer_group=settings.kafka_consumer_group,
        )
        wait_until(
            lambda: bool(consume.events("payment_consumer_started")),
            40,
            "the consumer to join its group",
        )
        billing.send(payment(paid_before, "pay-before"))
        billing.send(b"not a payment", key=paid_before)
        wait_until(
            lambda: (
                consume.scrape().value("certd_payments_total", outcome="recorded") == 1
                and consume.scrape().value("certd_dead_letters_total", reason="invalid")
                == 1
            ),
            30,
            "the payment and the dead letter to be counted",
        )
        stopped = consume.stop()
        billing.send(payment(paid_while_stopped, "pay-while-stopped"))
        consume.start()
        wait_until(
            lambda: (
                fees_paid(runtime.service, paid_while_stopped) == ["pay-while-stopped"]
            ),
            40,
            "the payment sent while stopped to be recorded",
        )
        scrape = consume.scrape()
        fees = fees_paid(runtime.service, paid_before)
    finally:
        billing.close()
        runtime.close()

    assert_stopped_cleanly(stopped)
    assert fees == ["pay-before"]
    assert [letter.value for letter in dead_letters(settings, 1)] == [b"not a payment"]
    # The restarted process counts afresh: one payment, no dead letter.
    assert scrape.value("certd_payments_total", outcome="recorded") == 1
    assert scrape.value("certd_payments_total", outcome="dead_lettered") == 0


def test_two_schedulers_raise_each_fact_once_between_them_and_count_it(
    launch: LaunchRole, postgres_url: str
) -> None:
    # Certified long enough ago that re-evaluation fell due and the renewal
    # deadline passed, whatever today is.
    long_ago = FixedClock(datetime.now(UTC) - timedelta(days=500))
    runtime = open_runtime(postgres_url, long_ago)
    try:
        ids = [Steps(runtime.service).certify(f"Overdue {n} Ltd") for n in range(3)]
    finally:
        runtime.close()

    replicas = [
        launch("schedule", database_url=postgres_url, start=False) for _ in range(2)
    ]
    for replica in replicas:
        replica.start(wait=False)
    for replica in replicas:
        replica.wait_until_healthy()
    wait_until(
        lambda: all(
            replica.scrape().value("certd_scheduler_passes_total", outcome="done") >= 1
            for replica in replicas
        ),
        30,
        "a pass of each replica",
    )
    scrapes = [replica.scrape() for replica in replicas]
    stopped = [replica.stop() for replica in replicas]
    runtime = open_runtime(postgres_url)
    try:
        facts = [
            [type(event).__name__ for event in runtime.service.history(cert_id)[-2:]]
            for cert_id in ids
        ]
    finally:
        runtime.close()

    for fact in ("ReevaluationDue", "CertificationLapsed"):
        raised = [s.value("certd_scheduler_raised_total", fact=fact) for s in scrapes]
        assert sum(raised) == 3, fact
    assert facts == [["ReevaluationDue", "CertificationLapsed"]] * 3
    for replica_stopped in stopped:
        assert_stopped_cleanly(replica_stopped)


# The schedule role, and certd serve with its scheduler in a thread; serve
# listens on a port of its own and gets the small pool the roles have.
ENDLESS_PASS_LAUNCHES = {
    "schedule": (),
    "serve": ("--port", "PORT"),
}


@pytest.mark.parametrize("verb", sorted(ENDLESS_PASS_LAUNCHES))
def test_a_scheduler_stopped_in_an_endless_pass_leaves_it_within_the_bound(
    launch: LaunchRole, postgres_url: str, verb: str
) -> None:
    args = [str(free_port()) if a == "PORT" else a for a in ENDLESS_PASS_LAUNCHES[verb]]
    process = launch(
        verb,
        *args,
        database_url=postgres_url,
        postgres_pool_size="2",
        program=with_endless_scheduler_pass(),
    )
    wait_until(
        lambda: bool(process.events("endless_pass_started")), 30, "the pass to start"
    )

    status, seconds = process.stop(timeout=ROLE_STOP_BOUND_SECONDS + 10)

    assert status == 0
    assert seconds < ROLE_STOP_BOUND_SECONDS + 5
    assert [e["role"] for e in process.events("role_work_abandoned")] == [verb]


def test_api_alone_answers_commands_but_leaves_the_views_to_the_runner(
    launch: LaunchRole, postgres_url: str, tmp_path: Path
) -> None:
    port = free_port()
    listen = tmp_path / "listen"
    api = launch(
        "api",
        "--port",
        str(port),
        start=False,
        program=with_gated_http_startup(listen),
        database_url=postgres_url,
        api_tokens="applicant:applicant-token",
        # No broker listens there: the API alone neither uses nor needs one.
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
    )
    api.start(wait=False)
    wait_until(lambda: api.health_status() is not None, 30, "the health endpoint")
    health_before_listening = api.health_status()
    listen.touch()
    api.wait_until_healthy()
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        started = client.post(
            "/v1/certifications",
            json=application_body(),
            headers={"Authorization": "Bearer applicant-token"},
        )
        healthz = client.get("/healthz")
        # A runner inside would have projected it at once (NOTIFY wakes it).
        time.sleep(1.5)
        ready = client.get("/readyz")
        lag_without_runner = ready.json()["views"]["lag"]
        project = launch("project", database_url=postgres_url)
        wait_until(
            lambda: client.get("/readyz").json()["views"]["lag"] == 0,
            30,
            "the runner to bring the views up",
        )

    assert health_before_listening == 503
    assert started.status_code == 201, started.text
    assert healthz.status_code == 200
    assert api.healthz().json() == {"status": "ok", "role": "api"}
    assert ready.status_code == 200
    assert "broker" not in ready.json()
    assert lag_without_runner == 1
    assert_stopped_cleanly(api.stop())
    assert_stopped_cleanly(project.stop())
    assert api.errors() == []
