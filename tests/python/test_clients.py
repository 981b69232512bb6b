"""Real Kafka clients round-trip keyed records through weir unchanged.

Goal: the clients people actually use — confluent-kafka (librdkafka 2.x from
PyPI), kafka-python, Debian's stock kcat (librdkafka 2.0.2, which trips on
sloppy tagged fields) and kafkajs — create a topic, produce and consume against
weir with no weir-specific settings, and every record comes back exactly once,
byte for byte, in produce order per partition, each key on one partition, at
contiguous offsets from 0.

Method: per client, a fresh broker, a 6-partition topic created with that
client's admin API (kcat has none: confluent-kafka's AdminClient creates it),
100,000 keyed records (1,000 distinct keys, values carrying their sequence
number) produced with acks=all (kafka-python and kafkajs as idempotent
producers, the Java client's default; librdkafka and kcat without), then read back from the beginning of every
partition with manual assignment (weir has no consumer groups yet). Checks are
in support.assert_roundtrip; delivery reports, where the client gives them,
must agree with where each record was found.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

import support

PARTITIONS = 6
RECORDS = 100_000
DISTINCT_KEYS = 1_000
JS_DIR = pathlib.Path(__file__).resolve().parents[1] / "js"


@pytest.mark.timeout_s(150)
def test_confluent_kafka_round_trips_100k_keyed_records(broker):
    topic = support.unique_topic("confluent")
    support.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = support.keyed_records(RECORDS, DISTINCT_KEYS)

    delivered = support.confluent_produce(broker.bootstrap, topic, records)
    consumed = support.confluent_consume(broker.bootstrap, topic, PARTITIONS, RECORDS)

    support.assert_roundtrip(records, consumed, PARTITIONS, delivered)


@pytest.mark.timeout_s(150)
def test_kafka_python_round_trips_100k_keyed_records(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = support.unique_topic("kafka-python")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                            timeout_ms=10_000)
        described = admin.describe_topics([topic])
        assert [(t["name"], t["error_code"]) for t in described] == [(topic, 0)]
        assert sorted((p["partition_index"], p["error_code"], p["leader_id"]) for p in described[0]["partitions"]) \
            == [(p, 0, 0) for p in range(PARTITIONS)]
    finally:
        admin.close()

    records = support.keyed_records(RECORDS, DISTINCT_KEYS)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                             linger_ms=5, batch_size=64 * 1024, request_timeout_ms=30_000)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in records]
        producer.flush(timeout=60)
        delivered = []
        for future in futures:
            metadata = future.get(timeout=1)
            delivered.append((metadata.partition, metadata.offset))
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30_000)
    consumed = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 90
        linger_until = None
        while linger_until is None or time.monotonic() < linger_until:
            assert time.monotonic() < deadline, f"kafka-python consumed {len(consumed)} of {RECORDS}"
            for tp, messages in consumer.poll(timeout_ms=200, max_records=10_000).items():
                consumed.extend((tp.partition, m.offset, m.key, m.value) for m in messages)
            if linger_until is None and len(consumed) >= RECORDS:
                linger_until = time.monotonic() + 1.0
    finally:
        consumer.close()

    support.assert_roundtrip(records, consumed, PARTITIONS, delivered)


@pytest.mark.timeout_s(150)
def test_kcat_round_trips_100k_keyed_records(broker, tmp_path):
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (tests/run installs Debian's kcat)"
    topic = support.unique_topic("kcat")
    support.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = support.keyed_records(RECORDS, DISTINCT_KEYS)
    input_path = tmp_path / "kcat-input.txt"
    input_path.write_bytes(b"".join(k + b":" + v + b"\n" for k, v in records))

    with open(input_path, "rb") as stdin:
        produced = subprocess.run([kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-K:",
                                   "-X", "acks=all", "-X", "linger.ms=5"],
                                  stdin=stdin, capture_output=True, timeout=90)
    assert produced.returncode == 0, f"kcat -P exited {produced.returncode}: {produced.stderr.decode()[-2000:]}"
    assert b"ERROR" not in produced.stderr and b"failed" not in produced.stderr.lower(), produced.stderr[-2000:]

    consumed_run = subprocess.run([kcat, "-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e",
                                   "-q", "-f", "%p %o %k %s\n"], capture_output=True, timeout=90)
    assert consumed_run.returncode == 0, \
        f"kcat -C exited {consumed_run.returncode}: {consumed_run.stderr.decode()[-2000:]}"
    consumed = []
    for line in consumed_run.stdout.splitlines():
        partition, offset, key, value = line.split(b" ", 3)
        consumed.append((int(partition), int(offset), key, value))

    support.assert_roundtrip(records, consumed, PARTITIONS)


@pytest.mark.timeout_s(150)
def test_kafkajs_round_trips_100k_keyed_records(broker, tmp_path):
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), "run `npm install` in tests/js (tests/run does)"
    topic = support.unique_topic("kafkajs")
    out_path = tmp_path / "kafkajs.json"

    run = subprocess.run([node, str(JS_DIR / "roundtrip.js"), broker.bootstrap, topic, str(PARTITIONS),
                          str(RECORDS), str(DISTINCT_KEYS), str(out_path)],
                         capture_output=True, timeout=120, cwd=JS_DIR,
                         env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
    assert run.returncode == 0, f"kafkajs script exited {run.returncode}:\n{run.stderr.decode()[-3000:]}" \
                                f"\n{run.stdout.decode()[-2000:]}"
    result = json.loads(out_path.read_text())

    records = support.keyed_records(RECORDS, DISTINCT_KEYS)
    assert [seq for seq, _, _ in result["produced"]] == list(range(RECORDS))
    delivered = [(partition, offset) for _, partition, offset in result["produced"]]
    consumed = [(p, o, k.encode(), v.encode()) for p, o, k, v in result["consumed"]]
    support.assert_roundtrip(records, consumed, PARTITIONS, delivered)
