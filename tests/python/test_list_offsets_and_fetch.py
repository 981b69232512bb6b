"""ListOffsets finds records by time and position; Fetch long polls wait and wake correctly.

Goal: ListOffsets answers earliest (-2), latest (-1), max timestamp (-3) and
"first offset with timestamp >= T" as Kafka does, through confluent-kafka and
raw requests of old (v1) and new (v7) versions; a Fetch with max_wait_ms and
min_bytes=1 on an idle partition waits about max_wait_ms, returns at once
when data is already there, and wakes promptly when a record is appended
during the wait.

Method: records with explicit, known timestamps (one out of order, so the
max-timestamp record is not the last one) produced by confluent-kafka, queried
with ``offsets_for_times``/``get_watermark_offsets`` and kproto.list_offsets;
long polls timed with raw Fetch v4 requests on one connection while another
connection produces.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

import kproto
import support

# Timestamps t0 + 1000*i for offsets 0..9, then offset 10 goes back to t0 + 500.
STEP_MS = 1_000
IN_ORDER = 10


def produce_timestamped(broker, topic):
    t0 = (int(time.time() * 1000) // 1000) * 1000 - 3_600_000
    timestamps = [t0 + i * STEP_MS for i in range(IN_ORDER)] + [t0 + 500]
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(len(timestamps))]
    delivered = support.confluent_produce(broker.bootstrap, topic, records, timestamps=timestamps)
    assert delivered == [(0, i) for i in range(len(records))]
    return t0, timestamps


@pytest.mark.timeout_s(60)
def test_list_offsets_by_timestamp_earliest_latest_and_max_timestamp(broker):
    topic = support.unique_topic("timestamps")
    support.create_topic(broker.bootstrap, topic, 1)
    t0, timestamps = produce_timestamped(broker, topic)
    end = len(timestamps)

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "weir-tests-unused",
                         "enable.auto.commit": False})
    try:
        # target timestamp -> first offset whose timestamp is >= target (-1: none)
        cases = {t0 - 1: 0, t0: 0, t0 + 400: 1, t0 + 3_500: 4, t0 + 9_000: 9, t0 + 9_001: -1}
        got = {}
        for target in cases:  # one request each: librdkafka merges duplicates of a partition
            (answer,) = consumer.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert answer.error is None, answer
            got[target] = answer.offset
        assert got == cases
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, end)

        consumer.assign([TopicPartition(topic, 0, 0)])
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < end:
            assert time.monotonic() < deadline, f"consumed {len(seen)} of {end}"
            for msg in consumer.consume(end, timeout=0.5):
                assert msg.error() is None, msg.error()
                seen.append((msg.offset(), msg.timestamp()[1]))
        assert seen == list(enumerate(timestamps)), "record timestamps were not stored as produced"
    finally:
        consumer.close()

    with broker.connect() as conn:
        for version in (1, 7):
            error, _, offset = kproto.list_offsets(conn, topic, 0, kproto.EARLIEST_TIMESTAMP, version)
            assert (error, offset) == (0, 0), f"v{version} earliest"
            error, _, offset = kproto.list_offsets(conn, topic, 0, kproto.LATEST_TIMESTAMP, version)
            assert (error, offset) == (0, end), f"v{version} latest"
            assert kproto.list_offsets(conn, topic, 0, t0 + 3_500, version) == (0, t0 + 4_000, 4), \
                f"v{version} by timestamp"
        assert kproto.list_offsets(conn, topic, 0, kproto.MAX_TIMESTAMP, 7) == (0, t0 + 9_000, 9), \
            "max timestamp (-3) must name the record with the largest timestamp, not the last record"


def fetch_v4(conn, topic, fetch_offset, max_wait_ms):
    body = kproto.encode_fetch_request(4, topic, 0, fetch_offset, max_wait_ms, min_bytes=1)
    return conn.send(kproto.FETCH, 4, body)


def fetch_result(conn, correlation_id, timeout_s):
    (partition,) = kproto.decode_fetch_response(conn.recv_response(correlation_id, False, timeout_s), 4)
    assert partition.error_code == 0, partition
    return partition


def produce_one(broker, topic, value: bytes):
    with broker.connect() as conn:
        batch = kproto.build_batch([(b"k", value, int(time.time() * 1000))])
        resp = kproto.produce(conn, topic, 0, batch, version=9, acks=1)
        assert resp.error_code == 0, resp
        return resp.base_offset


@pytest.mark.timeout_s(60)
def test_fetch_long_poll_waits_max_wait_on_an_idle_partition_and_not_when_data_is_there(broker):
    topic = support.unique_topic("long-poll-idle")
    support.create_topic(broker.bootstrap, topic, 1)
    assert [produce_one(broker, topic, f"r{i}".encode()) for i in range(5)] == list(range(5))

    with broker.connect() as conn:
        for _ in range(2):  # the first wait could include a cold start; both must hold
            started = time.monotonic()
            partition = fetch_result(conn, fetch_v4(conn, topic, 5, 1_000), timeout_s=10)
            elapsed = time.monotonic() - started
            assert 0.8 <= elapsed <= 3.0, f"idle Fetch with max_wait_ms=1000 returned after {elapsed:.3f} s"
            assert (partition.high_watermark, partition.batches()) == (5, [])

        started = time.monotonic()
        partition = fetch_result(conn, fetch_v4(conn, topic, 0, 5_000), timeout_s=10)
        elapsed = time.monotonic() - started
        assert elapsed < 0.5, f"Fetch with data available waited {elapsed:.3f} s"
        records = [r for b in partition.batches() for r in b.records()]
        assert [(r.offset, r.value) for r in records] == [(i, f"r{i}".encode()) for i in range(5)]


@pytest.mark.timeout_s(60)
def test_fetch_long_poll_wakes_on_append(broker):
    topic = support.unique_topic("long-poll-wake")
    support.create_topic(broker.bootstrap, topic, 1)
    assert produce_one(broker, topic, b"before") == 0

    with broker.connect() as conn:
        started = time.monotonic()
        correlation_id = fetch_v4(conn, topic, 1, 5_000)
        time.sleep(0.5)
        produce_sent = time.monotonic()
        assert produce_one(broker, topic, b"during the wait") == 1
        partition = fetch_result(conn, correlation_id, timeout_s=10)
        answered = time.monotonic()
    records = [r for b in partition.batches() for r in b.records()]
    assert [(r.offset, r.value) for r in records] == [(1, b"during the wait")]
    assert answered - produce_sent < 0.5, \
        f"long poll answered {answered - produce_sent:.3f} s after the produce (waited " \
        f"{answered - started:.3f} s of max_wait 5 s)"
    assert partition.high_watermark == 2


def broker_cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of the broker, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.timeout_s(60)
def test_fetch_with_some_data_below_min_bytes_parks_idle_until_appends_bring_enough(broker):
    """Less data than min_bytes: the fetch waits (the broker idle, not re-reading in a
    loop) until max_wait, or until appends bring min_bytes, whichever comes first."""
    topic = support.unique_topic("min-bytes")
    support.create_topic(broker.bootstrap, topic, 1)
    assert produce_one(broker, topic, b"small") == 0

    with broker.connect() as conn:
        ticks = broker_cpu_ticks(broker.proc.pid)
        started = time.monotonic()
        body = kproto.encode_fetch_request(4, topic, 0, 0, 1_500, min_bytes=50_000)
        partition = fetch_result(conn, conn.send(kproto.FETCH, 4, body), timeout_s=10)
        elapsed = time.monotonic() - started
        ticks = broker_cpu_ticks(broker.proc.pid) - ticks
    records = [r for b in partition.batches() for r in b.records()]
    assert [(r.offset, r.value) for r in records] == [(0, b"small")]
    assert 1.2 <= elapsed <= 4.0, f"answered after {elapsed:.3f} s of max_wait 1.5 s"
    # Re-reading in a loop keeps a core busy: ~150 ticks in 1.5 s.
    assert ticks < 40, f"the broker used {ticks} CPU ticks while one fetch waited 1.5 s"

    with broker.connect() as conn:
        started = time.monotonic()
        body = kproto.encode_fetch_request(4, topic, 0, 0, 20_000, min_bytes=55_000)
        correlation_id = conn.send(kproto.FETCH, 4, body)
        time.sleep(0.3)
        values = [bytes([65 + i]) * 10_000 for i in range(6)]
        for offset, value in enumerate(values, start=1):
            assert produce_one(broker, topic, value) == offset
        produced = time.monotonic()
        partition = fetch_result(conn, correlation_id, timeout_s=30)
        answered = time.monotonic()
    records = [r for b in partition.batches() for r in b.records()]
    assert [(r.offset, r.value) for r in records] == [(0, b"small")] + list(enumerate(values, 1))
    assert answered - produced < 2.0, \
        f"answered {answered - produced:.3f} s after enough data arrived (max_wait 20 s)"
