"""The publisher's memory stays bounded however many certifications it has
published: it remembers the partitions of a bounded number of keys."""

import pytest
from kafka.partitioner.default import murmur2

from projections.publisher import EventPublisher
from tests.projections.steps import Steps
from tests.stream.topic import PARTITIONS, first_copies, publish_all, read_topic

pytestmark = pytest.mark.timeout(60)


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_the_partitions_remembered_never_exceed_the_bound(
    steps: Steps, publisher: EventPublisher
) -> None:
    publisher.PARTITION_KEYS_KEPT = 5
    certifications = [steps.certify(f"Bounded {n} Ltd") for n in range(12)]

    published = publish_all(publisher)

    remembered = publisher._partition_of_key
    assert published == 12 * 5
    assert len(remembered) == 5
    # The last certifications published are the ones remembered.
    assert set(remembered) == {str(c).encode() for c in certifications[-5:]}
    received = read_topic(publisher.bootstrap, publisher.topic)
    assert first_copies(received) == {str(c): [1, 2, 3, 4, 5] for c in certifications}
    for message in received:
        assert message.partition == kafka_partition(message.key, PARTITIONS)


def test_the_default_bound_holds_past_ten_thousand_certifications(
    publisher: EventPublisher,
) -> None:
    """Keys beyond the bound of 10,000 push the oldest out; each still gets
    its partition as Kafka's partitioner picks it."""
    publisher._partitions = list(range(PARTITIONS))
    bound = 10_000
    keys = [f"certification-{n:08}".encode() for n in range(bound + 2_500)]

    partitions = [publisher._partition(key) for key in keys]

    assert len(publisher._partition_of_key) == bound
    assert list(publisher._partition_of_key) == keys[-bound:]
    assert partitions == [kafka_partition(key, PARTITIONS) for key in keys]
