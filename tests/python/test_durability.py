"""What weir acknowledged survives a crash, and a damaged log tail is repaired.

Goal: (1) with ``log.flush.interval.messages=1`` every record acknowledged
with acks=all is still at its acknowledged offset after ``kill -9`` and
restart, and new records continue the offsets with no gap or duplicate,
whether appends go through io_uring or ``pwrite`` (``weir.log.segment.writes``);
(2) after a crash that leaves a torn or corrupt tail in a segment (garbage
appended, a batch cut in half, a bit flipped in the last batch), the broker
starts, reports the truncation (file and byte position) on stderr, serves
every earlier record, and appends new batches at the right offset, leaving a
segment file that parses cleanly to its end.

Method: (1) a confluent-kafka producer records its delivery reports while the
broker is killed mid-stream; after restart every partition is read from 0 and
compared with the reports, then more records are produced and their offsets
checked. (2) ten raw Produce requests of ten records each (so batch
boundaries are known), ``kill -9``, the segment parsed and damaged in place
with kproto, restart, then ListOffsets, consume, raw produce, clean stop and a
strict parse of the segment file.
"""

from __future__ import annotations

import random
import re
import struct
import time

import pytest
from confluent_kafka import Producer

import kproto
import support

FLUSH_EVERY_MESSAGE = {"log.flush.interval.messages": 1}


@pytest.mark.timeout_s(150)
@pytest.mark.parametrize("segment_writes", ["io_uring", "pwrite"])
def test_acknowledged_records_survive_kill_9_and_offsets_continue_without_gaps(make_broker, segment_writes):
    partitions = 3
    broker = make_broker({**FLUSH_EVERY_MESSAGE, "weir.log.segment.writes": segment_writes})
    mode = {"io_uring": "IoUring", "pwrite": "Pwrite"}[segment_writes]
    assert re.search(rf"segment appends.*segment_writes\S*=\S*{mode}", broker.stderr_path.read_text()), \
        "the broker names the segment write mode it uses"
    topic = support.unique_topic("crash")
    support.create_topic(broker.bootstrap, topic, partitions)

    acknowledged: dict[int, tuple[int, int, bytes]] = {}  # seq -> (partition, offset, value)
    failed: set[int] = set()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False,
                         "linger.ms": 2, "message.timeout.ms": 4000, "socket.timeout.ms": 3000,
                         "reconnect.backoff.max.ms": 500})

    def on_delivery(seq):
        def callback(err, msg):
            if err is None:
                acknowledged[seq] = (msg.partition(), msg.offset(), msg.value())
            else:
                failed.add(seq)
        return callback

    seq = 0
    killed_at = None
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, f"only {len(acknowledged)} records acknowledged before the deadline"
        in_flight = seq - len(acknowledged) - len(failed)
        if in_flight < 2_000:  # keep the producer busy, without queueing far ahead of the broker
            for _ in range(50):
                key, value = support.keyed_record(seq, 300)
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery(seq))
                seq += 1
        producer.poll(0.005)
        if killed_at is None and len(acknowledged) >= 5_000:
            broker.kill9()  # mid-stream: the producer has requests in flight right now
            killed_at = seq
        if killed_at is not None and seq >= killed_at + 500:
            break
    assert producer.flush(20) == 0, "producer still has undelivered records 20 s after the crash"
    produced = seq
    assert len(acknowledged) + len(failed) == produced
    assert failed, "no delivery failed: the broker was not killed while records were in flight"

    broker.start()
    consumed = support.confluent_consume(broker.bootstrap, topic, partitions, len(acknowledged), linger_s=2.0)
    at = {(p, o): (k, v) for p, o, k, v in consumed}
    assert len(at) == len(consumed), "the same (partition, offset) was consumed twice"
    lost = [(s, p, o) for s, (p, o, v) in sorted(acknowledged.items()) if at.get((p, o), (None, None))[1] != v]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged records missing or changed after kill -9, " \
                     f"e.g. (seq, partition, offset) {lost[:5]}"
    end_offsets = {}
    for partition in range(partitions):
        offsets = sorted(o for p, o in at if p == partition)
        assert offsets == list(range(len(offsets))), f"partition {partition}: offsets after recovery have gaps"
        end_offsets[partition] = len(offsets)
    seqs = [support.sequence_of(v) for _, _, _, v in consumed]
    assert len(seqs) == len(set(seqs)), "a record was stored twice"
    assert all(s < produced for s in seqs)

    more = support.keyed_records(3_000, 300, first_seq=produced)
    delivered = support.confluent_produce(broker.bootstrap, topic, more)
    for partition in range(partitions):
        new_offsets = sorted(o for p, o in delivered if p == partition)
        assert new_offsets == list(range(end_offsets[partition], end_offsets[partition] + len(new_offsets))), \
            f"partition {partition}: after recovery to end offset {end_offsets[partition]}, new records got " \
            f"offsets {new_offsets[:3]}...{new_offsets[-3:]}"
    total = len(consumed) + len(more)
    everything = support.confluent_consume(broker.bootstrap, topic, partitions, total)
    assert len(everything) == total
    final = {(p, o): v for p, o, _, v in everything}
    assert all(final[pos] == value for pos, (_, value) in zip(delivered, more))


BATCHES = 10
RECORDS_PER_BATCH = 10


def produce_known_batches(broker, topic, first_offset, batches, base_ts):
    """Raw Produce v9, one batch per request; returns the [(key, value)] written, in offset order."""
    written = []
    with broker.connect() as conn:
        for b in range(batches):
            offset = first_offset + b * RECORDS_PER_BATCH
            batch = [(f"k{offset + i}".encode(), f"value-{offset + i:06d}".encode() * 3, base_ts + offset + i)
                     for i in range(RECORDS_PER_BATCH)]
            resp = kproto.produce(conn, topic, 0, kproto.build_batch(batch), version=9, acks=-1)
            assert (resp.error_code, resp.base_offset) == (0, offset), resp
            written += [(k, v) for k, v, _ in batch]
    return written


def damage(segment, batches, how):
    """Damages the tail of a segment file; returns (truncation position, records that survive)."""
    data = bytearray(segment.read_bytes())
    last = batches[-1]
    assert last.position + last.size_bytes == len(data)
    if how == "garbage_appended":
        # A frame that looks like a batch (sane length, magic 2) but whose content is noise:
        # only the CRC can tell.
        rng = random.Random(20240611)
        body = bytearray(rng.randbytes(188))
        body[4] = 2  # magic, after partitionLeaderEpoch
        garbage = struct.pack(">qi", last.last_offset + 1, len(body)) + bytes(body)
        segment.write_bytes(bytes(data) + garbage)
        return len(data), BATCHES * RECORDS_PER_BATCH
    if how == "last_batch_torn":
        with open(segment, "r+b") as f:
            f.truncate(last.position + last.size_bytes // 2)
        return last.position, (BATCHES - 1) * RECORDS_PER_BATCH
    if how == "bit_flipped_in_last_batch":
        data[last.position + kproto.RECORD_BATCH_HEADER_BYTES + 7] ^= 0x10  # inside the records, under the CRC
        segment.write_bytes(bytes(data))
        return last.position, (BATCHES - 1) * RECORDS_PER_BATCH
    raise ValueError(how)


@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("how", ["garbage_appended", "last_batch_torn", "bit_flipped_in_last_batch"])
def test_recovery_truncates_a_damaged_tail_and_appends_continue(make_broker, how):
    broker = make_broker(FLUSH_EVERY_MESSAGE)
    topic = support.unique_topic("torn")
    support.create_topic(broker.bootstrap, topic, 1)
    base_ts = int(time.time() * 1000) - 60_000
    written = produce_known_batches(broker, topic, 0, BATCHES, base_ts)
    broker.kill9()

    (segment,) = broker.segment_files(topic, 0)
    batches = kproto.read_log_file(segment)
    assert [(b.base_offset, b.records_count) for b in batches] == \
        [(i * RECORDS_PER_BATCH, RECORDS_PER_BATCH) for i in range(BATCHES)], "segment does not hold what was acked"
    assert [(r.key, r.value) for b in batches for r in b.records()] == written

    position, surviving = damage(segment, batches, how)
    broker.start()

    log = broker.stderr_text(since_last_start=True)
    lines = [line for line in log.splitlines() if re.search("truncat", line, re.IGNORECASE)]
    assert lines, f"no truncation reported on stderr after {how}:\n{log[-3000:]}"
    naming = [line for line in lines if segment.name in line and segment.parent.name in line
              and re.search(rf"(?<!\d){position}(?!\d)", line)]
    assert naming, f"no truncation line names {segment} and position {position}:\n" + "\n".join(lines)

    with broker.connect() as conn:
        assert kproto.list_offsets(conn, topic, 0, kproto.LATEST_TIMESTAMP)[2] == surviving
        assert kproto.list_offsets(conn, topic, 0, kproto.EARLIEST_TIMESTAMP)[2] == 0
    consumed = support.confluent_consume(broker.bootstrap, topic, 1, surviving)
    assert [(o, k, v) for _, o, k, v in consumed] == [(o, k, v) for o, (k, v) in enumerate(written[:surviving])]

    appended = produce_known_batches(broker, topic, surviving, 2, base_ts)
    assert broker.stop() == 0, "broker did not exit cleanly on SIGTERM"
    after = kproto.read_log_file(segment)  # strict: no stray byte anywhere in the file
    assert [(r.offset, r.key, r.value) for b in after for r in b.records()] == \
        [(o, k, v) for o, (k, v) in enumerate(written[:surviving] + appended)]
