"""acks=all honours min.insync.replicas, as a Kafka leader does.

Goal: a produce with acks=all to a partition whose ISR is smaller than
`min.insync.replicas` is refused with NOT_ENOUGH_REPLICAS and writes nothing, while
acks=1 still works; lowering the topic config (or the broker default) lets acks=all
through again. A single broker is each partition's whole ISR, so min.insync.replicas=2
can never be met there.

Method: kafka-python producers with retries=0 (so the broker's error reaches the
test unchanged), confluent-kafka's AdminClient for configs, and ListOffsets to prove
that a refused produce left no record behind.
"""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasError

import support


def producer(broker, acks) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=broker.bootstrap, acks=acks, retries=0,
                         request_timeout_ms=10_000)


def log_end(broker, topic: str) -> int:
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return high
    finally:
        consumer.close()


def set_topic_config(broker, topic: str, key: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=10)


def test_acks_all_below_min_insync_replicas_is_refused_and_writes_nothing(broker):
    topic = support.unique_topic("minisr")
    support.create_topic(broker.bootstrap, topic, 1, config={"min.insync.replicas": "2"})
    strict = producer(broker, "all")
    with pytest.raises(NotEnoughReplicasError):
        strict.send(topic, b"refused", partition=0).get(timeout=15)
    assert log_end(broker, topic) == 0, "a refused produce writes nothing"

    leader_only = producer(broker, 1)
    metadata = leader_only.send(topic, b"acks=1 is the leader alone", partition=0).get(timeout=15)
    assert metadata.offset == 0

    set_topic_config(broker, topic, "min.insync.replicas", "1")
    metadata = strict.send(topic, b"now the ISR is enough", partition=0).get(timeout=15)
    assert metadata.offset == 1
    assert log_end(broker, topic) == 2
    strict.close()
    leader_only.close()


def test_the_broker_default_applies_to_topics_without_their_own(make_broker):
    broker = make_broker({"min.insync.replicas": 2})
    topic = support.unique_topic("minisr-default")
    support.create_topic(broker.bootstrap, topic, 1)
    strict = producer(broker, "all")
    with pytest.raises(NotEnoughReplicasError):
        strict.send(topic, b"refused", partition=0).get(timeout=15)
    set_topic_config(broker, topic, "min.insync.replicas", "1")
    assert strict.send(topic, b"the topic's own value wins", partition=0).get(timeout=15).offset == 0
    strict.close()
