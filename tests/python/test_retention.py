"""Retention deletes old segments from disk and consumers below the log start reset.

Goal: (1) with ``retention.ms=1000`` every segment of records older than a second
leaves the disk (the active one too, after a roll), ListOffsets earliest moves to
the log end, and a consumer group whose committed offset was deleted, or a
consumer assigned at a deleted offset, resets per ``auto.offset.reset=earliest``
to exactly the first retained record; (2) with ``retention.bytes`` the ``.log``
bytes on disk stay within retention.bytes plus one segment while twenty times as
much is produced, and what remains is exactly the newest records; (3)
DeleteRecords through confluent-kafka's AdminClient moves the log start (to an
offset, and to the high watermark with OFFSET_END), refuses offsets past the high
watermark, and survives a restart.

Method: a broker with ``log.retention.check.interval.ms=200``; topics with
``segment.bytes=1024`` and one record per batch (``batch.num.messages=1``) so
segments hold about six batches; the partition directory listed to see which
``.log`` (and ``.deleted``) files exist; offsets checked through
``get_watermark_offsets``, raw ListOffsets and consumed records.
"""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

import kproto
import support

CHECK_INTERVAL_MS = 200
SEGMENT_BYTES = 1024
ONE_RECORD_PER_BATCH = {"batch.num.messages": 1, "linger.ms": 0}
RETENTION_BROKER = {"log.retention.check.interval.ms": CHECK_INTERVAL_MS}


def wait_for(condition, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        time.sleep(0.1)


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "weir-tests-unused"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        consumer.close()


def earliest(broker, topic: str, partition: int = 0) -> int:
    with broker.connect() as conn:
        error, _, offset = kproto.list_offsets(conn, topic, partition, kproto.EARLIEST_TIMESTAMP)
    assert error == 0
    return offset


def log_files(broker, topic: str, partition: int = 0) -> dict[int, int]:
    """Base offset -> size of every live .log file of a partition (retention may remove
    one between listing and stat: it is gone then)."""
    files = {}
    for path in broker.segment_files(topic, partition):
        try:
            files[int(path.name.split(".")[0])] = path.stat().st_size
        except FileNotFoundError:
            pass
    return files


def deleted_files(broker, topic: str) -> list[str]:
    return sorted(path.name for path in broker.partition_dir(topic, 0).glob("*.deleted"))


def consume(bootstrap: str, topic: str, config: dict, expected: int, assign_offset: int | None = None,
            partition: int = 0, timeout_s: float = 30.0) -> list[tuple[int, bytes]]:
    """(offset, value) of what a consumer reads: assigned at `assign_offset`, or at the
    group's committed offset when None. Keeps polling a second past `expected`."""
    conf = {"bootstrap.servers": bootstrap, "enable.auto.commit": False, "enable.partition.eof": False}
    conf.update(config)
    consumer = Consumer(conf)
    try:
        if assign_offset is None:
            consumer.assign([TopicPartition(topic, partition)])
        else:
            consumer.assign([TopicPartition(topic, partition, assign_offset)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout_s
        linger_until = None
        while linger_until is None or time.monotonic() < linger_until:
            assert time.monotonic() < deadline, f"consumed {len(out)} of {expected}"
            for msg in consumer.consume(100, timeout=0.2):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                out.append((msg.offset(), msg.value()))
            if linger_until is None and len(out) >= expected:
                linger_until = time.monotonic() + 1.0
        return out
    finally:
        consumer.close()


@pytest.mark.timeout_s(120)
def test_time_retention_deletes_expired_segments_and_consumers_below_the_start_reset_to_earliest(make_broker):
    broker = make_broker(RETENTION_BROKER)
    topic = support.unique_topic("time-retention")
    support.create_topic(broker.bootstrap, topic, 1, {
        "retention.ms": "1000", "segment.bytes": str(SEGMENT_BYTES), "file.delete.delay.ms": "300"})
    old = support.keyed_records(40, 1, payload_bytes=100)
    delivered = support.confluent_produce(broker.bootstrap, topic, old, config=ONE_RECORD_PER_BATCH)
    assert delivered == [(0, offset) for offset in range(40)]

    # A group commits offset 5 before retention gets there.
    group = support.unique_topic("group")
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    finally:
        committer.close()

    # A second after their timestamps, every segment is expired: the active one rolls
    # and goes too, an empty segment stays at the log end, and the files leave the disk.
    wait_for(lambda: earliest(broker, topic) == 40, "log start at the log end (40)")
    assert watermarks(broker.bootstrap, topic) == (40, 40)
    wait_for(lambda: log_files(broker, topic) == {40: 0} and not deleted_files(broker, topic),
             f"only the empty segment 40 left (files: {log_files(broker, topic)}, {deleted_files(broker, topic)})")
    # Retention logs what it deleted: all 40 offsets, in several segments.
    lines = [line for line in broker.stderr_text().splitlines() if "deleted segments" in line and topic in line]
    assert lines, "retention logs what it deleted"
    segments = sum(int(re.search(r"segments=(\d+)", line).group(1)) for line in lines)
    assert segments >= 5, lines
    assert "log_start_offset=40" in lines[-1], lines

    # Newer records, stamped an hour ahead so they do not expire during the test.
    future_ms = int(time.time() * 1000) + 3_600_000
    fresh = support.keyed_records(20, 1, payload_bytes=100, first_seq=40)
    delivered = support.confluent_produce(broker.bootstrap, topic, fresh, config=ONE_RECORD_PER_BATCH,
                                          timestamps=[future_ms] * len(fresh))
    assert delivered == [(0, offset) for offset in range(40, 60)]
    expected = [(40 + index, value) for index, (_, value) in enumerate(fresh)]

    # The group's committed offset 5 is gone: OFFSET_OUT_OF_RANGE, reset to earliest (40).
    got = consume(broker.bootstrap, topic, {"group.id": group, "auto.offset.reset": "earliest"}, len(expected))
    assert got == expected
    # So does a consumer assigned at a deleted offset.
    got = consume(broker.bootstrap, topic, {"group.id": "weir-tests-unused", "auto.offset.reset": "earliest"},
                  len(expected), assign_offset=3)
    assert got == expected
    assert earliest(broker, topic) == 40, "records stamped in the future are kept"


@pytest.mark.timeout_s(150)
def test_size_retention_keeps_disk_use_within_retention_bytes_plus_one_segment_and_the_newest_records(make_broker):
    broker = make_broker(RETENTION_BROKER)
    topic = support.unique_topic("size-retention")
    retention_bytes = 4 * SEGMENT_BYTES
    support.create_topic(broker.bootstrap, topic, 1, {
        "retention.bytes": str(retention_bytes), "segment.bytes": str(SEGMENT_BYTES),
        "file.delete.delay.ms": "0"})
    rounds, per_round = 20, 30  # about 5 KiB of batches a round: 26 times retention.bytes in all
    produced = []
    sizes = []
    for round_number in range(rounds):
        records = support.keyed_records(per_round, 7, payload_bytes=100, first_seq=len(produced))
        delivered = support.confluent_produce(broker.bootstrap, topic, records, config=ONE_RECORD_PER_BATCH)
        assert delivered == [(0, offset) for offset in range(len(produced), len(produced) + per_round)]
        produced += records
        # Once a retention pass ran, the log is within bounds (Kafka deletes a segment
        # only while the rest still holds retention.bytes).
        size = wait_for(lambda: (total := sum(log_files(broker, topic).values())) <= retention_bytes + SEGMENT_BYTES
                        and total, f"round {round_number}: .log bytes within {retention_bytes} + {SEGMENT_BYTES}")
        sizes.append(size)
    total_produced = sum(len(key) + len(value) for key, value in produced)
    assert total_produced >= 15 * retention_bytes, total_produced
    assert all(retention_bytes <= size <= retention_bytes + SEGMENT_BYTES for size in sizes), sizes

    # What remains is exactly the newest records, from the first kept segment's base on.
    files = log_files(broker, topic)
    start = min(files)
    assert earliest(broker, topic) == start
    assert watermarks(broker.bootstrap, topic) == (start, len(produced))
    assert 0 < start < len(produced) - 20
    got = consume(broker.bootstrap, topic, {"group.id": "weir-tests-unused", "auto.offset.reset": "earliest"},
                  len(produced) - start, assign_offset=0)
    assert got == [(offset, produced[offset][1]) for offset in range(start, len(produced))]


@pytest.mark.timeout_s(90)
def test_delete_records_through_the_admin_client_moves_the_log_start_and_survives_a_restart(make_broker):
    broker = make_broker()
    topic = support.unique_topic("delete-records")
    support.create_topic(broker.bootstrap, topic, 2, {"segment.bytes": str(SEGMENT_BYTES),
                                                       "file.delete.delay.ms": "0"})
    # One key: every record lands on one partition, the other stays empty.
    records = support.keyed_records(60, 1, payload_bytes=100)
    delivered = support.confluent_produce(broker.bootstrap, topic, records, config=ONE_RECORD_PER_BATCH)
    full = delivered[0][0]
    empty = 1 - full
    assert delivered == [(full, offset) for offset in range(60)]
    before = log_files(broker, topic, full)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.delete_records([TopicPartition(topic, full, 25), TopicPartition(topic, empty, OFFSET_END)])
    results = {tp.partition: future.result(timeout=30) for tp, future in futures.items()}
    assert results[full].low_watermark == 25
    assert results[empty].low_watermark == 0, "an empty partition: the high watermark is 0"
    assert watermarks(broker.bootstrap, topic, full) == (25, 60)
    assert earliest(broker, topic, full) == 25
    # Whole segments below 25 left the disk; the one holding 25 stayed.
    after = log_files(broker, topic, full)
    holding = max(base for base in before if base <= 25)
    assert sorted(after) == sorted(base for base in before if base >= holding)
    assert min(before) < holding

    got = consume(broker.bootstrap, topic, {"group.id": "weir-tests-unused", "auto.offset.reset": "earliest"},
                  35, assign_offset=0, partition=full)
    assert got == [(offset, records[offset][1]) for offset in range(25, 60)]

    (future,) = admin.delete_records([TopicPartition(topic, full, 61)]).values()
    with pytest.raises(KafkaException) as refused:
        future.result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert earliest(broker, topic, full) == 25

    broker.restart()
    assert watermarks(broker.bootstrap, topic, full) == (25, 60)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    (future,) = admin.delete_records([TopicPartition(topic, full, OFFSET_END)]).values()
    assert future.result(timeout=30).low_watermark == 60
    broker.kill9()
    broker.start()
    assert earliest(broker, topic, full) == 60


def test_retention_changed_live_with_weir_configs_applies_at_once_and_holds_after_restart(make_broker):
    """The issue's operator story: a topic keeps everything (the default 7 days) until
    `weir configs --alter` sets retention.ms; the next retention pass deletes the old
    segments, and after a restart the topic still has the setting and keeps applying it."""
    import subprocess

    from conftest import WEIR_BIN

    broker = make_broker(RETENTION_BROKER)
    topic = support.unique_topic("live-retention")
    support.create_topic(broker.bootstrap, topic, 1, {"segment.bytes": str(SEGMENT_BYTES),
                                                      "file.delete.delay.ms": "0"})
    hour_ago_ms = int(time.time() * 1000) - 3_600_000
    old = support.keyed_records(30, 1, payload_bytes=100)
    support.confluent_produce(broker.bootstrap, topic, old, config=ONE_RECORD_PER_BATCH,
                              timestamps=[hour_ago_ms] * len(old))
    time.sleep(3 * CHECK_INTERVAL_MS / 1000)
    assert earliest(broker, topic) == 0, "the default retention (7 days) keeps hour-old records"
    assert len(log_files(broker, topic)) >= 4

    def alter(*args: str) -> None:
        result = subprocess.run([WEIR_BIN, "configs", "--bootstrap-server", broker.bootstrap, "--alter",
                                 "--topic", topic, *args], capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == \
            (0, f"Completed updating config for topic {topic}.\n", ""), result

    alter("--add-config", "retention.ms=60000")
    wait_for(lambda: earliest(broker, topic) == 30, "hour-old segments deleted after the change")
    assert log_files(broker, topic) == {30: 0}

    broker.restart()
    result = subprocess.run([WEIR_BIN, "configs", "--bootstrap-server", broker.bootstrap, "--describe",
                             "--topic", topic], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "  retention.ms=60000 sensitive=false" in result.stdout, result
    more = support.keyed_records(30, 1, payload_bytes=100, first_seq=30)
    support.confluent_produce(broker.bootstrap, topic, more, config=ONE_RECORD_PER_BATCH,
                              timestamps=[hour_ago_ms] * len(more))
    wait_for(lambda: earliest(broker, topic) == 60, "the restored setting still deletes hour-old segments")
    # Removing the override restores the default: new hour-old records stay.
    alter("--delete-config", "retention.ms")
    support.confluent_produce(broker.bootstrap, topic, more, config=ONE_RECORD_PER_BATCH,
                              timestamps=[hour_ago_ms] * len(more))
    time.sleep(3 * CHECK_INTERVAL_MS / 1000)
    assert earliest(broker, topic) == 60
