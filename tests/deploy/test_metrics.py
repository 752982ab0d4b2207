"""The metrics after a lifecycle: commands driven through ``certd api``, the
views kept by ``certd project`` and the stream by ``certd publish``, each a
process of its own on one database, scraped as Prometheus scrapes them.

The dead-letter and scheduler counters move in the processes of ``certd
consume`` and ``certd schedule``, which a lifecycle through the API does not
involve: tests/deploy/test_roles.py runs each of those roles with a message
to dead-letter and certifications fallen due, and reads the counters there.
Here the API shows them at 0, as every process shows every counter.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from service.embedded_broker import free_port
from tests.deploy.conftest import LaunchRole
from tests.deploy.roles import RoleProcess, Scrape, wait_until
from tests.factories import application_body, submission_body
from tests.stream.topic import new_topic

pytestmark = pytest.mark.timeout(120)

TOKENS = {
    "applicant": "applicant-secret-token",
    "operator": "operator-secret-token",
    "billing": "billing-secret-token",
}


@dataclass
class Deployment:
    api: RoleProcess
    client: httpx.Client
    last_position: int = 0

    def call(self, role: str, path: str, body: dict[str, object]) -> httpx.Response:
        answer = self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {TOKENS[role]}"}
        )
        if "store-position" in answer.headers:
            self.last_position = int(answer.headers["store-position"])
        return answer

    def scrape(self, role: str = "operator") -> httpx.Response:
        return self.client.get(
            "/metrics", headers={"Authorization": f"Bearer {TOKENS[role]}"}
        )


@pytest.fixture
def deployment(
    launch: LaunchRole, postgres_url: str, kafka_bootstrap: str
) -> Iterator[Deployment]:
    settings = {
        "database_url": postgres_url,
        "kafka_bootstrap": kafka_bootstrap,
        "kafka_topic": new_topic(kafka_bootstrap),
    }
    port = free_port()
    tokens = ",".join(f"{role}:{token}" for role, token in TOKENS.items())
    api = launch("api", "--port", str(port), api_tokens=tokens, **settings)
    launch("project", **settings)
    launch("publish", **settings)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30
    ) as client:
        yield Deployment(api, client)


def drive_a_lifecycle(deployment: Deployment) -> None:
    """Certify one certification (a payment sent twice on the way) and have
    another refused a decision it is not ready for."""
    started = deployment.call("applicant", "/v1/certifications", application_body())
    path = f"/v1/certifications/{started.json()['id']}"
    submitted = deployment.call("applicant", f"{path}/submission", submission_body())
    fee = {"kind": "submission_fee", "amount_usd": "150", "reference": "fee-1"}
    approval = {"outcome": "approved", "reason": "complete"}
    annual = {"kind": "annual_fee", "amount_usd": "1000", "reference": "fee-2"}
    answers = [
        started,
        submitted,
        deployment.call("billing", f"{path}/payments", fee),
        deployment.call("billing", f"{path}/payments", fee),
        deployment.call("operator", f"{path}/decision", approval),
        deployment.call("billing", f"{path}/payments", annual),
    ]
    assert [answer.status_code for answer in answers] == [201] + [200] * 5
    other = deployment.call("applicant", "/v1/certifications", application_body())
    early = deployment.call(
        "operator", f"/v1/certifications/{other.json()['id']}/decision", approval
    )
    assert early.status_code == 409, early.text


def caught_up(deployment: Deployment) -> bool:
    scrape = Scrape(deployment.scrape().text)
    return (
        scrape.value("certd_view_lag_positions") == 0
        and scrape.value("certd_publisher_lag_positions") == 0
    )


def test_the_api_counts_commands_by_outcome_and_reports_lags_after_a_lifecycle(
    deployment: Deployment,
) -> None:
    drive_a_lifecycle(deployment)
    wait_until(lambda: caught_up(deployment), 30, "the views and the stream")

    answer = deployment.scrape()
    scrape = Scrape(answer.text)

    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    counted = {
        (labels["command"], labels["outcome"]): value
        for (name, label_set), value in scrape.samples.items()
        if name == "certd_commands_total" and value > 0
        for labels in [dict(label_set)]
    }
    assert counted == {
        ("start", "accepted"): 2,
        ("submit", "accepted"): 1,
        ("pay", "accepted"): 2,
        ("pay", "repeat"): 1,
        ("decide", "accepted"): 1,
        ("decide", "refused"): 1,
    }
    assert (
        scrape.value(
            "certd_commands_total", command="decide", outcome="store_unavailable"
        )
        == 0
    )
    assert scrape.value("certd_dead_letters_total", reason="invalid") == 0
    assert scrape.value("certd_scheduler_passes_total", outcome="done") == 0
    assert scrape.value("certd_store_up") == 1
    assert scrape.value("certd_store_position") == deployment.last_position
    assert scrape.value("certd_view_position") == deployment.last_position
    assert scrape.value("certd_publisher_position") == deployment.last_position


def test_the_internal_metrics_port_shows_the_same_counts_without_a_token(
    deployment: Deployment,
) -> None:
    drive_a_lifecycle(deployment)

    internal = deployment.api.scrape()
    public = Scrape(deployment.scrape().text)

    for outcome in ("accepted", "refused"):
        assert internal.value(
            "certd_commands_total", command="decide", outcome=outcome
        ) == public.value("certd_commands_total", command="decide", outcome=outcome)


def test_metrics_on_the_api_port_are_for_operators_only_and_name_no_token(
    deployment: Deployment,
) -> None:
    drive_a_lifecycle(deployment)

    anonymous = deployment.client.get("/metrics")
    billing = deployment.scrape("billing")
    text = deployment.scrape().text + deployment.api.scrape().text

    assert anonymous.status_code == 401
    assert billing.status_code == 403
    for token in TOKENS.values():
        assert token not in text
        assert token not in deployment.api.log()
