"""Helpers shared by the test files: keyed workloads, confluent-kafka produce/consume, checks.

Goal: one definition of "the records came back right" for every client and
scenario, so each test states its workload and delegates the bookkeeping.

Method: every value starts with its zero-padded sequence number, so a
consumed record names its own place in the produce order. ``assert_roundtrip``
checks exactly-once delivery, byte-exact content, key→partition stickiness,
per-partition order and contiguous offsets from 0, and agreement with the
producer's delivery reports when the client gives them.
"""

from __future__ import annotations

import collections
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SEQUENCE_DIGITS = 8


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_FILLER = bytes(range(97, 123)) * 64


def keyed_record(seq: int, distinct_keys: int, payload_bytes: int = 40) -> tuple[bytes, bytes]:
    """Record number seq: value = b'<seq>|<key>|<filler>', so it carries its sequence number."""
    key = f"key-{seq % distinct_keys:05d}".encode()
    head = f"{seq:0{SEQUENCE_DIGITS}d}|".encode() + key + b"|"
    start = seq % 26
    return key, head + _FILLER[start:start + max(payload_bytes - len(head), 0)]


def keyed_records(count: int, distinct_keys: int, payload_bytes: int = 40,
                  first_seq: int = 0) -> list[tuple[bytes, bytes]]:
    return [keyed_record(seq, distinct_keys, payload_bytes) for seq in range(first_seq, first_seq + count)]


def sequence_of(value: bytes) -> int:
    return int(value[:SEQUENCE_DIGITS])


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict[str, str] | None = None,
                 timeout_s: float = 30.0, replication_factor: int = 1) -> None:
    """CreateTopics through confluent-kafka's AdminClient; waits until metadata shows every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                                            config=config or {})], operation_timeout=timeout_s,
                                  request_timeout=timeout_s)
    futures[topic].result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(topic=topic, timeout=5)
        entry = metadata.topics.get(topic)
        if entry is not None and entry.error is None and len(entry.partitions) == partitions \
                and all(p.leader >= 0 for p in entry.partitions.values()):
            return
        assert time.monotonic() < deadline, f"topic {topic} not visible with {partitions} partitions: {entry}"
        time.sleep(0.1)


def confluent_produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
                      config: dict[str, object] | None = None, timestamps: list[int] | None = None,
                      timeout_s: float = 60.0) -> list[tuple[int, int]]:
    """Produces records in order with acks=all; returns [(partition, offset)] per record.

    Any delivery error fails the caller's test."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
            "linger.ms": 5, "message.timeout.ms": int(timeout_s * 1000)}
    conf.update(config or {})
    producer = Producer(conf)
    delivered: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def on_delivery(index):
        def callback(err, msg):
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                delivered[index] = (msg.partition(), msg.offset())
        return callback

    deadline = time.monotonic() + timeout_s
    for index, (key, value) in enumerate(records):
        kwargs = {"key": key, "value": value, "on_delivery": on_delivery(index)}
        if timestamps is not None:
            kwargs["timestamp"] = timestamps[index]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
                assert time.monotonic() < deadline, "producer queue stayed full"
        if index % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(max(deadline - time.monotonic(), 1.0))
    assert remaining == 0, f"{remaining} records still undelivered after {timeout_s} s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert all(d is not None for d in delivered)
    return delivered  # type: ignore[return-value]


def confluent_consume(bootstrap: str, topic: str, partitions: int, expected: int,
                      timeout_s: float = 60.0, linger_s: float = 1.0,
                      config: dict[str, object] | None = None) -> list[tuple[int, int, bytes | None, bytes]]:
    """Reads every partition from the beginning with assign() (no group membership).

    Returns [(partition, offset, key, value)] in consumption order; keeps polling
    linger_s after reaching `expected` so that duplicates or extras are seen too."""
    conf = {"bootstrap.servers": bootstrap, "group.id": "weir-tests-unused", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False}
    conf.update(config or {})
    consumer = Consumer(conf)
    try:
        consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])  # OFFSET_BEGINNING
        out: list[tuple[int, int, bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout_s
        linger_until = None
        while True:
            now = time.monotonic()
            if linger_until is None and len(out) >= expected:
                linger_until = now + linger_s
            if linger_until is not None and now >= linger_until:
                break
            assert now < deadline, f"consumed {len(out)} of {expected} records within {timeout_s} s"
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                out.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def assert_roundtrip(records: list[tuple[bytes | None, bytes]],
                     consumed: list[tuple[int, int, bytes | None, bytes]],
                     partitions: int, delivered: list[tuple[int, int]] | None = None,
                     keyed: bool = True) -> None:
    """The consumed records are exactly the produced ones, placed and ordered as Kafka promises."""
    count = len(records)
    seqs = [sequence_of(value) for _, _, _, value in consumed]
    counts = collections.Counter(seqs)
    duplicated = sorted(s for s, c in counts.items() if c > 1)
    missing = sorted(set(range(count)) - counts.keys())
    unexpected = sorted(s for s in counts if not 0 <= s < count)
    assert not duplicated, f"{len(duplicated)} records consumed more than once, e.g. seq {duplicated[:10]}"
    assert not missing, f"{len(missing)} of {count} records never consumed, e.g. seq {missing[:10]}"
    assert not unexpected, f"records that were never produced: seq {unexpected[:10]}"
    assert len(consumed) == count

    for partition, offset, key, value in consumed:
        want_key, want_value = records[sequence_of(value)]
        assert (key, value) == (want_key, want_value), \
            f"partition {partition} offset {offset}: got {(key, value)!r}, produced {(want_key, want_value)!r}"

    by_partition: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for partition, offset, _, value in consumed:
        assert 0 <= partition < partitions, f"record on partition {partition} of a {partitions}-partition topic"
        by_partition[partition].append((offset, sequence_of(value)))
    for partition, entries in sorted(by_partition.items()):
        offsets = [o for o, _ in entries]
        assert offsets == list(range(len(offsets))), \
            f"partition {partition}: offsets not contiguous from 0 in consumption order: " \
            f"first break at index {next(i for i, o in enumerate(offsets) if o != i)}"
        partition_seqs = [s for _, s in entries]
        bad = next((i for i in range(1, len(partition_seqs)) if partition_seqs[i] <= partition_seqs[i - 1]), None)
        assert bad is None, f"partition {partition}: offset {bad} holds seq {partition_seqs[bad]} " \
                            f"after seq {partition_seqs[bad - 1]}: produce order not kept"

    if keyed:
        partitions_of_key: dict[bytes, set[int]] = collections.defaultdict(set)
        for partition, _, key, _ in consumed:
            partitions_of_key[key].add(partition)
        split = {k: sorted(v) for k, v in partitions_of_key.items() if len(v) > 1}
        assert not split, f"{len(split)} keys on several partitions, e.g. {list(split.items())[:3]}"
        if partitions > 1 and len(partitions_of_key) >= 10 * partitions:
            assert set(by_partition) == set(range(partitions)), \
                f"{len(partitions_of_key)} keys landed on partitions {sorted(by_partition)} only"

    if delivered is not None:
        assert len(delivered) == count
        at = {(p, o): sequence_of(v) for p, o, _, v in consumed}
        wrong = [(seq, pos, at.get(pos)) for seq, pos in enumerate(delivered) if at.get(pos) != seq]
        assert not wrong, f"{len(wrong)} delivery reports disagree with the log: " \
                          f"(seq, (partition, offset), seq found there) e.g. {wrong[:5]}"
