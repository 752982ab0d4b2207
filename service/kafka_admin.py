"""The service's Kafka topics, and ``certd topics ensure``, which creates them.

Three topics: the event stream (kept forever: it is the public history),
the inbound payments, and their dead-letter topic (kept forever: each message
there waits for a person). Creating is idempotent: a topic that exists is
reported with the partitions it has and left alone, even when the settings
ask for another count, because changing it would move keys between
partitions and break the order subscribers rely on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from service.settings import Settings

KEEP_FOREVER = -1


class TopicAdminError(RuntimeError):
    pass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    retention_ms: int

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms)}


@dataclass(frozen=True)
class TopicReport:
    spec: TopicSpec
    created: bool
    partitions: int

    def __str__(self) -> str:
        spec = self.spec
        if self.created:
            return (
                f"created {spec.name}: {self.partitions} partitions, "
                f"replication {spec.replication}, retention.ms {spec.retention_ms}"
            )
        line = f"exists  {spec.name}: {self.partitions} partitions"
        if self.partitions != spec.partitions:
            line += f" (settings ask for {spec.partitions}; left as it is)"
        return line


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics the settings name, with their partitions and retention."""
    partitions, replication = settings.kafka_partitions, settings.kafka_replication
    return [
        TopicSpec(settings.kafka_topic, partitions, replication, KEEP_FOREVER),
        TopicSpec(
            settings.kafka_payments_topic,
            partitions,
            replication,
            settings.kafka_payments_retention_ms,
        ),
        TopicSpec(settings.kafka_dlq_topic, partitions, replication, KEEP_FOREVER),
    ]


def ensure_topics(
    bootstrap: str, specs: Sequence[TopicSpec], timeout: float = 10.0
) -> list[TopicReport]:
    """Create the topics that do not exist yet; report on every one."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="certd-admin",
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
        )
    except KafkaError as error:
        msg = f"cannot reach the Kafka broker at {bootstrap} ({error})"
        raise TopicAdminError(msg) from error
    try:
        existing = set(admin.list_topics())
        created = _create(admin, [spec for spec in specs if spec.name not in existing])
        described = admin.describe_topics([spec.name for spec in specs])
    except KafkaError as error:
        msg = f"the Kafka broker at {bootstrap} refused: {error}"
        raise TopicAdminError(msg) from error
    finally:
        admin.close()
    partitions = {str(topic["name"]): len(topic["partitions"]) for topic in described}
    return [
        TopicReport(spec, spec.name in created, partitions.get(spec.name, 0))
        for spec in specs
    ]


def _create(admin: KafkaAdminClient, specs: Sequence[TopicSpec]) -> set[str]:
    """Create the topics; return the names of those this call created."""
    if not specs:
        return set()
    response = admin.create_topics(
        {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication,
                "configs": spec.configs(),
            }
            for spec in specs
        },
        raise_errors=False,
    )
    created: set[str] = set()
    for topic in response["topics"]:
        name, code = str(topic["name"]), int(topic["error_code"])
        if code == 0:
            created.add(name)
        elif code != TopicAlreadyExistsError.errno:  # another creator won a race
            reason = topic.get("error_message") or f"error code {code}"
            msg = f"could not create topic {name}: {reason}"
            raise TopicAdminError(msg)
    if created:
        admin.wait_for_topics(sorted(created))
    return created
