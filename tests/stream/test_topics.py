"""``certd topics ensure`` creates the service's topics once, as the settings
say, and after that reports them and changes nothing."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from service.embedded_broker import free_port
from service.kafka_admin import TopicSpec, ensure_topics
from tests.stream.topic import CERTD

pytestmark = pytest.mark.timeout(60)


def topics_ensure(workdir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
    env |= {f"CERTD_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [str(CERTD), "topics", "ensure"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def described(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str]]:
    """Each topic's partition count and retention.ms, as the broker says."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        partitions = {
            topic["name"]: len(topic["partitions"])
            for topic in admin.describe_topics(names)
        }
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        configs = admin.describe_configs(resources, config_filter="all")["topic"]
    finally:
        admin.close()
    return {
        name: (partitions[name], configs[name]["retention.ms"]["value"])
        for name in names
    }


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return {
        "kafka_topic": f"certification.events.{suffix}",
        "kafka_payments_topic": f"billing.payments.{suffix}",
        "kafka_dlq_topic": f"billing.payments.dlq.{suffix}",
    }


def test_topics_ensure_creates_each_topic_with_the_partitions_and_retention_asked(
    kafka_bootstrap: str, names: dict[str, str], tmp_path: Path
) -> None:
    first = topics_ensure(
        tmp_path, kafka_bootstrap=kafka_bootstrap, kafka_partitions="4", **names
    )

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"created {names['kafka_topic']}: 4 partitions, replication 1, retention.ms -1",
        f"created {names['kafka_payments_topic']}: 4 partitions, replication 1, "
        "retention.ms 604800000",
        f"created {names['kafka_dlq_topic']}: 4 partitions, replication 1, "
        "retention.ms -1",
    ]
    assert described(kafka_bootstrap, list(names.values())) == {
        names["kafka_topic"]: (4, "-1"),
        names["kafka_payments_topic"]: (4, "604800000"),
        names["kafka_dlq_topic"]: (4, "-1"),
    }
    assert not (tmp_path / "var").exists(), "topics ensure needs no store"


def test_topics_ensure_run_again_reports_the_topics_and_changes_nothing(
    kafka_bootstrap: str, names: dict[str, str], tmp_path: Path
) -> None:
    topics_ensure(
        tmp_path, kafka_bootstrap=kafka_bootstrap, kafka_partitions="4", **names
    )
    before = described(kafka_bootstrap, list(names.values()))

    again = topics_ensure(
        tmp_path, kafka_bootstrap=kafka_bootstrap, kafka_partitions="4", **names
    )

    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"exists  {name}: 4 partitions" for name in names.values()
    ]
    assert described(kafka_bootstrap, list(names.values())) == before


def test_a_topic_with_another_partition_count_is_reported_and_left_alone(
    kafka_bootstrap: str, names: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(kafka_bootstrap, [TopicSpec(names["kafka_topic"], 2, 1, -1)])

    result = topics_ensure(
        tmp_path, kafka_bootstrap=kafka_bootstrap, kafka_partitions="4", **names
    )

    assert result.returncode == 0, result.stderr
    assert (
        f"exists  {names['kafka_topic']}: 2 partitions "
        "(settings ask for 4; left as it is)"
    ) in result.stdout.splitlines()
    assert described(kafka_bootstrap, [names["kafka_topic"]]) == {
        names["kafka_topic"]: (2, "-1")
    }


def test_topics_ensure_without_a_broker_setting_says_what_to_set(
    tmp_path: Path,
) -> None:
    result = topics_ensure(tmp_path)

    assert result.returncode == 2
    assert "CERTD_KAFKA_BOOTSTRAP" in result.stderr


def test_topics_ensure_with_no_broker_to_reach_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"

    result = topics_ensure(tmp_path, kafka_bootstrap=bootstrap)

    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"certd: cannot reach the Kafka broker at {bootstrap} (")
