"""Log compaction through the real broker: the latest value per key survives, offsets stay.

Goal: (1) the course's driver-location table compacts to the latest location of each
driver at its original offset; (2) a tombstone survives one cleaning with a delete
horizon, then vanishes after ``delete.retention.ms``; (3) 1,000,000 records over
10,000 keys compact to exactly one record per key, the latest; (4) ``kill -9`` while
the cleaner is writing leaves a log without loss or duplicate, and the cleaning
completes after restart; (5) ``__consumer_offsets`` is compacted by the same cleaner
and the committed offset survives a restart.

Method: topics with ``cleanup.policy=compact``, ``min.cleanable.dirty.ratio=0.01`` and
small segments; the broker runs with ``log.cleaner.backoff.ms=100``. Kafka (and weir)
roll a segment only when an append arrives, and the cleaner never touches the active
segment, so each test appends one record with a separate key after the records under
test (after ``segment.ms`` when needed) to seal them. Every read goes from the log
start to the high watermark with confluent-kafka; values carry their sequence number,
which in a one-partition topic is also the offset they were written at.
"""

from __future__ import annotations

import collections
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

import support

FAST_CLEANER = {"log.cleaner.backoff.ms": 100}
COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"}


def read_partition(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of partition 0 from the log start to the high watermark: (offset, key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "weir-tests-unused",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, -2)])
        out: list[tuple[int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        done = high == 0
        while not done:
            assert time.monotonic() < deadline, f"read {len(out)} records, high watermark {high}"
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() == -191:  # _PARTITION_EOF
                        done = True
                        continue
                    raise AssertionError(msg.error())
                out.append((msg.offset(), msg.key(), msg.value()))
                if msg.offset() >= high - 1:
                    done = True
        offsets = [offset for offset, _, _ in out]
        assert offsets == sorted(set(offsets)), "offsets strictly increase: no duplicate, no reordering"
        return out
    finally:
        consumer.close()


def wait_for(predicate, what: str, broker, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s\n" + broker.stderr_tail()
        time.sleep(0.2)


def produce_one(bootstrap: str, topic: str, key: bytes, value: bytes | None) -> int:
    [(_, offset)] = support.confluent_produce(bootstrap, topic, [(key, value)], config={"linger.ms": 0})
    return offset


@pytest.mark.timeout_s(90)
def test_the_course_table_compacts_to_the_latest_location_of_each_driver(make_broker):
    broker = make_broker(FAST_CLEANER)
    topic = support.unique_topic("drivers")
    # Every append rolls a segment: two one-record batches never fit in 100 bytes.
    support.create_topic(broker.bootstrap, topic, 1, {**COMPACTED, "segment.bytes": "100"})
    table = [(b"driver-1", b"location-1a"), (b"driver-1", b"location-1b"), (b"driver-2", b"location-2a"),
             (b"driver-1", b"location-1c"), (b"driver-2", b"location-2b")]
    offsets = [produce_one(broker.bootstrap, topic, key, value) for key, value in table]
    assert offsets == [0, 1, 2, 3, 4]
    assert produce_one(broker.bootstrap, topic, b"roll", b"seals offset 4") == 5

    expected = [(3, b"driver-1", b"location-1c"), (4, b"driver-2", b"location-2b"),
                (5, b"roll", b"seals offset 4")]
    wait_for(lambda: read_partition(broker.bootstrap, topic) == expected, "the table compacted", broker)
    assert "cleaned log" in broker.stderr_text()
    # A keyless record is refused on a compacted topic (Kafka: INVALID_RECORD).
    with pytest.raises(AssertionError, match="INVALID_RECORD|Broker: Invalid record"):
        support.confluent_produce(broker.bootstrap, topic, [(None, b"no key")],
                                  config={"retries": 0, "linger.ms": 0}, timeout_s=10)
    broker.restart()
    assert read_partition(broker.bootstrap, topic) == expected


@pytest.mark.timeout_s(90)
def test_tombstones_outlive_one_cleaning_then_vanish_after_delete_retention(make_broker):
    broker = make_broker(FAST_CLEANER)
    topic = support.unique_topic("tombstones")
    support.create_topic(broker.bootstrap, topic, 1,
                         {**COMPACTED, "segment.bytes": "100", "delete.retention.ms": "3000"})
    for key, value in [(b"k1", b"v1"), (b"k2", b"v2"), (b"k1", None), (b"k3", b"seals the tombstone")]:
        produce_one(broker.bootstrap, topic, key, value)
    after_first = [(1, b"k2", b"v2"), (2, b"k1", None), (3, b"k3", b"seals the tombstone")]
    wait_for(lambda: read_partition(broker.bootstrap, topic) == after_first,
             "the first cleaning keeps the tombstone", broker)
    first_cleaned = time.monotonic()
    time.sleep(3.5)
    # New dirty data lets the cleaner run again; the tombstone's horizon has passed.
    produce_one(broker.bootstrap, topic, b"k4", b"v4")
    produce_one(broker.bootstrap, topic, b"k5", b"seals k4")
    expected = [(1, b"k2", b"v2"), (3, b"k3", b"seals the tombstone"), (4, b"k4", b"v4"), (5, b"k5", b"seals k4")]
    wait_for(lambda: read_partition(broker.bootstrap, topic) == expected, "the tombstone gone", broker)
    assert time.monotonic() - first_cleaned >= 3.0


def kcat_produce(bootstrap: str, topic: str, first_seq: int, count: int, distinct_keys: int) -> None:
    """Produces keyed_record(seq) for seq in [first_seq, first_seq + count) with kcat (fast)."""
    lines = []
    for seq in range(first_seq, first_seq + count):
        key, value = support.keyed_record(seq, distinct_keys, payload_bytes=30)
        lines.append(key + b"\t" + value)
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-K", "\t", "-z", "lz4",
                    "-X", "linger.ms=20", "-X", "batch.num.messages=10000", "-X", "acks=all"],
                   input=b"\n".join(lines) + b"\n", check=True, timeout=120)


def assert_latest_per_key(records, produced: int, distinct_keys: int, extra_keys: set[bytes]) -> None:
    latest = {f"key-{k:05d}".encode(): max(range(k, produced, distinct_keys)) for k in range(distinct_keys)}
    seen = collections.Counter(key for _, key, _ in records)
    keyed = [(offset, key, value) for offset, key, value in records if key not in extra_keys]
    assert {key for _, key, _ in keyed} == set(latest), "every key is still there"
    duplicates = [key for key, count in seen.items() if count > 1]
    assert not duplicates, f"{len(duplicates)} keys appear more than once, e.g. {duplicates[:5]}"
    for offset, key, value in keyed:
        assert support.sequence_of(value) == offset == latest[key], (offset, key, value[:20])


@pytest.mark.timeout_s(150)
def test_a_million_records_over_ten_thousand_keys_compact_to_the_latest_value_of_each(make_broker):
    broker = make_broker(FAST_CLEANER)
    topic = support.unique_topic("million")
    support.create_topic(broker.bootstrap, topic, 1,
                         {**COMPACTED, "segment.bytes": str(4 << 20), "segment.ms": "3000"})
    count, keys = 1_000_000, 10_000
    started = time.monotonic()
    kcat_produce(broker.bootstrap, topic, 0, count, keys)
    produced_s = time.monotonic() - started
    time.sleep(3.2)  # segment.ms: the next append rolls the active segment
    assert produce_one(broker.bootstrap, topic, b"roll", b"seals the last segment") == count
    records = wait_for(lambda: (lambda r: r if len(r) == keys + 1 else None)(read_partition(broker.bootstrap, topic)),
                       "compaction down to one record per key", broker, timeout_s=60)
    assert_latest_per_key(records, count, keys, {b"roll"})
    print(f"produced {count} records in {produced_s:.1f} s, compacted and read back "
          f"{time.monotonic() - started - produced_s:.1f} s later")


@pytest.mark.timeout_s(150)
def test_kill_9_during_compaction_then_restart_loses_nothing_and_duplicates_nothing(make_broker):
    # A slow cleaner (I/O budget of 1 MB/s) so the kill lands while it writes.
    broker = make_broker({**FAST_CLEANER, "log.cleaner.io.max.bytes.per.second": 1_000_000})
    topic = support.unique_topic("crashclean")
    support.create_topic(broker.bootstrap, topic, 1,
                         {**COMPACTED, "segment.bytes": str(1 << 20), "segment.ms": "2000"})
    count, keys = 200_000, 1_000
    kcat_produce(broker.bootstrap, topic, 0, count, keys)
    time.sleep(2.2)
    assert produce_one(broker.bootstrap, topic, b"roll", b"seals the last segment") == count
    partition_dir = broker.partition_dir(topic, 0)
    wait_for(lambda: list(partition_dir.glob("*.cleaned")), "a .cleaned file", broker, timeout_s=30)
    broker.kill9()

    broker.overrides["log.cleaner.io.max.bytes.per.second"] = 1e12
    broker.start()
    # Right after restart: every key's latest value is there, at its own offset.
    records = read_partition(broker.bootstrap, topic)
    latest = {f"key-{k:05d}".encode(): max(range(k, count, keys)) for k in range(keys)}
    by_key = collections.defaultdict(list)
    for offset, key, value in records:
        if key != b"roll":
            assert support.sequence_of(value) == offset, "a record sits at the offset it was written at"
            by_key[key].append(offset)
    assert set(by_key) == set(latest)
    assert all(offsets[-1] == latest[key] for key, offsets in by_key.items())
    # And the cleaning completes.
    records = wait_for(lambda: (lambda r: r if len(r) == keys + 1 else None)(read_partition(broker.bootstrap, topic)),
                       "compaction after the restart", broker, timeout_s=60)
    assert_latest_per_key(records, count, keys, {b"roll"})
    assert not list(partition_dir.glob("*.swap"))


@pytest.mark.timeout_s(120)
def test_consumer_offsets_are_compacted_and_the_committed_offset_survives_a_restart(make_broker):
    broker = make_broker({**FAST_CLEANER, "offsets.topic.num.partitions": 1,
                          "offsets.topic.segment.bytes": 2048})
    topic = support.unique_topic("committed")
    support.create_topic(broker.bootstrap, topic, 1)
    group = support.unique_topic("group")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    commits = 300
    try:
        for offset in range(1, commits + 1):
            consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()
    offsets_dir = broker.partition_dir("__consumer_offsets", 0)

    def log_bytes() -> int:
        return sum(path.stat().st_size for path in offsets_dir.glob("*.log"))

    written = commits * 100  # each commit record is well over 100 bytes
    wait_for(lambda: log_bytes() < written // 5, "__consumer_offsets compacted", broker)
    assert "cleaned log" in broker.stderr_text()

    def committed() -> int:
        reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
        try:
            [tp] = reader.committed([TopicPartition(topic, 0)], timeout=10)
            return tp.offset
        finally:
            reader.close()

    assert committed() == commits
    broker.restart()
    assert committed() == commits
    broker.kill9()
    broker.start()
    assert committed() == commits
