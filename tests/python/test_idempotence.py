"""The idempotent producer: every record is written exactly once, in order, whatever is retried.

Goal: weir keeps Kafka's idempotent-producer contract. InitProducerId (v0-5)
hands out producer ids that are never reused, also across restarts and
``kill -9``, and refuses transactional ids (INVALID_REQUEST) while transactions
are not supported. Per partition, a retried batch (same producer, epoch, base
sequence and record count as one of the producer's last five) is answered with
its original base offset and not written again; a sequence gap or overlap is
OUT_OF_ORDER_SEQUENCE_NUMBER, an epoch below the producer's latest is
INVALID_PRODUCER_EPOCH, a new epoch must start at sequence 0, and a producer the
partition does not know may start anywhere (KIP-360). A Produce request with
more than one batch for a partition holding a producer batch is INVALID_RECORD,
a transactional batch INVALID_TXN_STATE. DescribeProducers (v0) reports each
partition's producers. The state survives a clean restart (Kafka's
``<offset>.snapshot``, which keeps each producer's last batch) and ``kill -9``
(rebuilt from the log), and idle producers expire. End to end, librdkafka's
idempotent producer delivers every record exactly once and in order while its
connections are cut under it and while the broker is killed and restarted.

Method: the protocol tests send hand-built batches with kproto (producer id,
epoch and base sequence written into the batch header) and check each answer's
error code and base offset, the log end offset (ListOffsets), DescribeProducers,
the snapshot files, and finally the exact batches in the log (Fetch: base
offset, producer id, epoch, base sequence, record count, record values). The
client tests run confluent-kafka (librdkafka) with ``enable.idempotence=true``
through a TCP proxy written here (the broker advertises the proxy's port). The
proxy decodes every Produce request it forwards and every answer, so a test
knows which batches reached the broker more than once and which were written
while their answer never reached the producer — the retries that must be
recognised as duplicates. In one test it cuts each connection after a random
few hundred KB client→broker (mid-request; the answers to requests already
sent are lost); in the other it holds the broker's answers back for a moment
and the broker is then killed with ``kill -9`` and restarted on its port.
Records carry their sequence number (support.keyed_record); support.assert_roundtrip
then checks exactly-once delivery, per-partition order, contiguous offsets and
the delivery reports.
"""

from __future__ import annotations

import collections
import random
import socket
import threading
import time

import pytest
from confluent_kafka import Producer

import kproto
import support

FLUSH_EVERY_MESSAGE = {"log.flush.interval.messages": 1}


# --- raw protocol helpers -----------------------------------------------------

def now_ms() -> int:
    return int(time.time() * 1000)


def make_batch(tag: str, producer_id: int, epoch: int, base_sequence: int, count: int,
               timestamp: int | None = None, transactional: bool = False) -> bytes:
    """count records with values '<tag>-<i>', timestamps timestamp..timestamp+count-1."""
    ts = now_ms() if timestamp is None else timestamp
    records = [(f"{tag}-key".encode(), f"{tag}-{i}".encode(), ts + i) for i in range(count)]
    return kproto.build_idempotent_batch(records, producer_id, epoch, base_sequence, transactional)


def send(conn, topic: str, partition: int, batch: bytes, version: int = 9) -> tuple[int, int]:
    """Produce (acks=-1); returns (error_code, base_offset)."""
    resp = kproto.produce(conn, topic, partition, batch, version=version, acks=-1)
    return resp.error_code, resp.base_offset


def send_error(conn, topic: str, partition: int, batch: bytes, version: int = 9) -> int:
    return send(conn, topic, partition, batch, version)[0]


def log_end(conn, topic: str, partition: int) -> int:
    error, _, offset = kproto.list_offsets(conn, topic, partition, kproto.LATEST_TIMESTAMP)
    assert error == 0, f"ListOffsets {topic}-{partition}: error {error}"
    return offset


def new_producer_id(conn, version: int = 4) -> int:
    resp = kproto.init_producer_id(conn, version)
    assert (resp.error_code, resp.producer_epoch) == (0, 0), resp
    assert resp.producer_id >= 0, resp
    return resp.producer_id


def log_batches(conn, topic: str, partition: int) -> list[tuple[int, int, int, int, int, list[bytes]]]:
    """Every batch of the partition: (base offset, producer id, epoch, base sequence, count, values)."""
    out = []
    offset, high_watermark = 0, None
    while high_watermark is None or offset < high_watermark:
        r = conn.request(kproto.FETCH, 4, kproto.encode_fetch_request(4, topic, partition, offset, max_wait_ms=0,
                                                                      max_bytes=1 << 20))
        (part,) = kproto.decode_fetch_response(r, 4)
        assert part.error_code == 0, part
        high_watermark = part.high_watermark
        batches = part.batches()
        assert batches or offset >= high_watermark, f"fetch at {offset} below {high_watermark} returned nothing"
        for b in batches:
            assert b.base_offset == offset, f"batch at {b.base_offset}, expected {offset}"
            out.append((b.base_offset, b.producer_id, b.producer_epoch, b.base_sequence, b.records_count,
                        [rec.value for rec in b.records()]))
            offset = b.last_offset + 1
    return out


def values(tag: str, count: int) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


def producers_by_partition(conn, request: dict[str, list[int]]) -> dict[tuple[str, int], tuple[int, list]]:
    """DescribeProducers → {(topic, partition): (error_code, producers sorted by id)}; each asked once."""
    answer = kproto.describe_producers(conn, request)
    got = {(p.topic, p.partition): (p.error_code, sorted(p.active_producers, key=lambda s: s.producer_id))
           for p in answer}
    assert len(got) == len(answer), f"a partition answered twice: {answer}"
    assert set(got) == {(t, p) for t, ps in request.items() for p in ps}, answer
    return got


def state(producer_id: int, epoch: int, last_sequence: int, last_timestamp: int) -> kproto.ProducerState:
    return kproto.ProducerState(producer_id, epoch, last_sequence, last_timestamp, -1, -1)


def snapshot_offsets(broker, topic: str, partition: int) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in broker.partition_dir(topic, partition).glob("*.snapshot"))


# --- InitProducerId -----------------------------------------------------------

@pytest.mark.timeout_s(60)
def test_init_producer_id_v0_to_v5_hands_out_distinct_ids_at_epoch_0_and_refuses_transactional_ids(broker):
    ids = []
    with broker.connect() as conn:
        error, apis = kproto.api_versions(conn, 3)
        assert error == 0
        assert kproto.INIT_PRODUCER_ID in apis and apis[kproto.INIT_PRODUCER_ID][0] == 0 \
            and apis[kproto.INIT_PRODUCER_ID][1] >= 5, f"InitProducerId advertised as {apis.get(22)}"
        assert kproto.DESCRIBE_PRODUCERS in apis and apis[kproto.DESCRIBE_PRODUCERS][0] == 0, \
            f"DescribeProducers advertised as {apis.get(61)}"
        for version in range(6):
            for _ in range(3):
                ids.append(new_producer_id(conn, version))
        for version in range(6):
            resp = kproto.init_producer_id(conn, version, transactional_id="weir-txn")
            assert resp.error_code == kproto.INVALID_REQUEST, (version, resp)
        ids.append(new_producer_id(conn, 5))  # the connection is still usable
        # v3+ may name the producer's current id and epoch; without a transactional id Kafka
        # ignores them and hands out a fresh id at epoch 0.
        for version in (3, 4, 5):
            resp = kproto.init_producer_id(conn, version, producer_id=ids[-1], producer_epoch=0)
            assert resp.error_code == 0 and resp.producer_epoch == 0 and resp.producer_id >= 0, (version, resp)
            ids.append(resp.producer_id)
    # Connections spread over the shards (SO_REUSEPORT): ids must not collide between them.
    for _ in range(12):
        with broker.connect() as conn:
            ids += [new_producer_id(conn, 4), new_producer_id(conn, 0)]
    assert len(ids) == 6 * 3 + 1 + 3 + 12 * 2
    duplicates = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    assert not duplicates, f"producer ids handed out twice: {duplicates}"


@pytest.mark.timeout_s(90)
def test_producer_ids_after_a_restart_and_after_kill_9_are_above_every_id_handed_out_before(broker):
    def take(count: int) -> list[int]:
        out = []
        for _ in range(count):
            with broker.connect() as conn:
                out += [new_producer_id(conn, 3), new_producer_id(conn, 5)]
        return out

    first = take(5)
    broker.restart()
    second = take(5)
    assert min(second) > max(first), f"after a clean restart got {sorted(second)}, before {sorted(first)}"
    broker.kill9()
    broker.start()
    third = take(5)
    assert min(third) > max(first + second), f"after kill -9 got {sorted(third)}, before {sorted(first + second)}"
    everything = first + second + third
    assert len(set(everything)) == len(everything) == 30


# --- sequence, duplicate and epoch checks -------------------------------------

@pytest.mark.timeout_s(60)
def test_a_retried_batch_is_answered_with_its_original_offset_and_written_once(broker):
    topic = support.unique_topic("idem-dup")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect() as conn:
        pid = new_producer_id(conn)
        a = make_batch("a", pid, 0, 0, 3)
        assert send(conn, topic, 0, a) == (0, 0)
        for version in (9, 3, 11):
            assert send(conn, topic, 0, a, version) == (0, 0), f"retry at Produce v{version}"
        assert log_end(conn, topic, 0) == 3, "a retried batch was written again"

        b = make_batch("b", pid, 0, 3, 2)
        assert send(conn, topic, 0, b) == (0, 3)
        c = make_batch("c", pid, 0, 5, 4)
        assert send(conn, topic, 0, c) == (0, 5)
        # Any of the producer's last five batches is recognised, not only the latest.
        assert send(conn, topic, 0, a) == (0, 0)
        assert send(conn, topic, 0, c) == (0, 5)
        assert send(conn, topic, 0, b) == (0, 3)
        assert log_end(conn, topic, 0) == 9

        # Five more batches push `a` out of the producer's cache: its retry is now out of order.
        for i in range(5):
            assert send(conn, topic, 0, make_batch(f"d{i}", pid, 0, 9 + i, 1)) == (0, 9 + i)
        assert send_error(conn, topic, 0, a) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert send(conn, topic, 0, make_batch("d0", pid, 0, 9, 1)) == (0, 9), "d0 is still among the last five"
        assert log_end(conn, topic, 0) == 14

        assert log_batches(conn, topic, 0) == \
            [(0, pid, 0, 0, 3, values("a", 3)), (3, pid, 0, 3, 2, values("b", 2)), (5, pid, 0, 5, 4, values("c", 4))] \
            + [(9 + i, pid, 0, 9 + i, 1, values(f"d{i}", 1)) for i in range(5)]


@pytest.mark.timeout_s(60)
def test_sequence_gaps_and_overlaps_are_out_of_order_and_a_new_producer_may_start_anywhere(broker):
    topic = support.unique_topic("idem-seq")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect() as conn:
        pid = new_producer_id(conn)
        assert send(conn, topic, 0, make_batch("a", pid, 0, 0, 3)) == (0, 0)
        for base_sequence, count, why in [(4, 1, "gap of one"), (100, 2, "far ahead"),
                                          (2, 2, "overlaps the last batch"), (1, 2, "inside the last batch"),
                                          (0, 2, "same start, different count")]:
            error = send_error(conn, topic, 0, make_batch("bad", pid, 0, base_sequence, count))
            assert error == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER, (why, error)
        assert log_end(conn, topic, 0) == 3, "a rejected batch was written"
        assert send(conn, topic, 0, make_batch("b", pid, 0, 3, 2)) == (0, 3), "the next sequence is still 3"

        # KIP-360: a producer id this partition has no state for may start at any sequence...
        other = new_producer_id(conn)
        assert send(conn, topic, 0, make_batch("c", other, 0, 17, 2)) == (0, 5)
        # ...and from then on it is held to its sequence like any other.
        assert send_error(conn, topic, 0, make_batch("bad", other, 0, 20, 1)) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert send(conn, topic, 0, make_batch("d", other, 0, 19, 1)) == (0, 7)
        # Each producer has its own sequence: the first one continues at 5.
        assert send(conn, topic, 0, make_batch("e", pid, 0, 5, 1)) == (0, 8)

        assert log_batches(conn, topic, 0) == [
            (0, pid, 0, 0, 3, values("a", 3)), (3, pid, 0, 3, 2, values("b", 2)),
            (5, other, 0, 17, 2, values("c", 2)), (7, other, 0, 19, 1, values("d", 1)),
            (8, pid, 0, 5, 1, values("e", 1))]


@pytest.mark.timeout_s(60)
def test_a_stale_epoch_is_fenced_and_a_new_epoch_must_start_at_sequence_0(broker):
    topic = support.unique_topic("idem-epoch")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect() as conn:
        pid = new_producer_id(conn)
        t0 = now_ms() - 5_000
        first = make_batch("a", pid, 1, 0, 2, t0)
        assert send(conn, topic, 0, first) == (0, 0), "an unknown producer may start at any epoch"
        for base_sequence in (2, 0):
            error = send_error(conn, topic, 0, make_batch("stale", pid, 0, base_sequence, 1))
            assert error == kproto.INVALID_PRODUCER_EPOCH, (base_sequence, error)
        assert send_error(conn, topic, 0, make_batch("bump", pid, 2, 5, 1)) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert log_end(conn, topic, 0) == 2, "a rejected batch was written"

        assert send(conn, topic, 0, make_batch("b", pid, 2, 0, 3)) == (0, 2), "a new epoch starts at sequence 0"
        # Epoch 1 is now fenced, even for an exact retry of its own batch.
        assert send_error(conn, topic, 0, make_batch("stale", pid, 1, 2, 1)) == kproto.INVALID_PRODUCER_EPOCH
        assert send_error(conn, topic, 0, first) == kproto.INVALID_PRODUCER_EPOCH
        assert send(conn, topic, 0, make_batch("c", pid, 2, 3, 1, t0 + 10)) == (0, 5)
        assert log_end(conn, topic, 0) == 6

        assert log_batches(conn, topic, 0) == [
            (0, pid, 1, 0, 2, values("a", 2)), (2, pid, 2, 0, 3, values("b", 3)), (5, pid, 2, 3, 1, values("c", 1))]
        assert producers_by_partition(conn, {topic: [0]}) == {(topic, 0): (0, [state(pid, 2, 3, t0 + 10)])}


@pytest.mark.timeout_s(60)
def test_a_request_with_several_batches_for_a_partition_is_invalid_record_when_one_has_a_producer(broker):
    topic = support.unique_topic("idem-multi")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect() as conn:
        pid = new_producer_id(conn)
        two = make_batch("a", pid, 0, 0, 2) + make_batch("b", pid, 0, 2, 2)
        plain_then_idempotent = kproto.build_batch([(b"k", b"plain", now_ms())]) + make_batch("c", pid, 0, 0, 1)
        for version in (3, 9):
            assert send_error(conn, topic, 0, two, version) == kproto.INVALID_RECORD, version
            assert send_error(conn, topic, 0, plain_then_idempotent, version) == kproto.INVALID_RECORD, version
        assert log_end(conn, topic, 0) == 0, "a rejected request wrote records"
        assert producers_by_partition(conn, {topic: [0]}) == {(topic, 0): (0, [])}, \
            "a rejected batch registered its producer"
        # The same batches one per request are fine.
        assert send(conn, topic, 0, make_batch("a", pid, 0, 0, 2)) == (0, 0)
        assert send(conn, topic, 0, make_batch("b", pid, 0, 2, 2)) == (0, 2)
        assert log_batches(conn, topic, 0) == [(0, pid, 0, 0, 2, values("a", 2)), (2, pid, 0, 2, 2, values("b", 2))]


@pytest.mark.timeout_s(60)
def test_a_transactional_batch_is_invalid_txn_state_while_transactions_are_not_supported(broker):
    topic = support.unique_topic("idem-txn")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect() as conn:
        pid = new_producer_id(conn)
        for version in (3, 9):
            error = send_error(conn, topic, 0, make_batch("t", pid, 0, 0, 2, transactional=True), version)
            assert error == kproto.INVALID_TXN_STATE, version
        assert log_end(conn, topic, 0) == 0, "a transactional batch was written"
        assert producers_by_partition(conn, {topic: [0]}) == {(topic, 0): (0, [])}
        assert send(conn, topic, 0, make_batch("a", pid, 0, 0, 2)) == (0, 0)
        assert [b[:5] for b in log_batches(conn, topic, 0)] == [(0, pid, 0, 0, 2)]


# --- DescribeProducers --------------------------------------------------------

@pytest.mark.timeout_s(60)
def test_describe_producers_lists_each_partitions_producers_with_epoch_last_sequence_and_timestamp(broker):
    topic = support.unique_topic("idem-describe")
    missing = support.unique_topic("idem-missing")
    support.create_topic(broker.bootstrap, topic, 3)
    t0 = now_ms() - 5_000
    with broker.connect() as conn:
        p, q = new_producer_id(conn), new_producer_id(conn)
        assert send(conn, topic, 0, make_batch("p0", p, 0, 0, 3, t0)) == (0, 0)
        last_p0 = make_batch("p1", p, 0, 3, 2, t0 + 100)
        assert send(conn, topic, 0, last_p0) == (0, 3)
        assert send(conn, topic, 0, make_batch("q0", q, 3, 0, 1, t0 + 50)) == (0, 5)
        assert send(conn, topic, 1, make_batch("p2", p, 0, 0, 10, t0 + 200)) == (0, 0)
        assert send(conn, topic, 2, kproto.build_batch([(b"k", b"no producer", t0)])) == (0, 0)
        # Neither a retry nor a rejected batch changes what is reported.
        assert send(conn, topic, 0, last_p0) == (0, 3)
        assert send_error(conn, topic, 0, make_batch("x", p, 0, 9, 1, t0 + 900)) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER

        got = producers_by_partition(conn, {topic: [0, 1, 2, 7], missing: [0]})
    assert got[(topic, 0)] == (0, sorted([state(p, 0, 4, t0 + 101), state(q, 3, 0, t0 + 50)],
                                         key=lambda s: s.producer_id))
    assert got[(topic, 1)] == (0, [state(p, 0, 9, t0 + 209)])
    assert got[(topic, 2)] == (0, []), "a batch without a producer id registered a producer"
    assert got[(topic, 7)] == (kproto.UNKNOWN_TOPIC_OR_PARTITION, [])
    assert got[(missing, 0)] == (kproto.UNKNOWN_TOPIC_OR_PARTITION, [])


# --- restarts -------------------------------------------------------------------

@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("how", ["clean_stop", "kill_9"])
def test_duplicates_are_still_detected_after_a_restart(make_broker, how):
    broker = make_broker(FLUSH_EVERY_MESSAGE)
    topic = support.unique_topic("idem-restart")
    support.create_topic(broker.bootstrap, topic, 2)
    t0 = now_ms() - 10_000
    with broker.connect() as conn:
        p, q = new_producer_id(conn), new_producer_id(conn)
        p_batches = [make_batch(f"p{i}", p, 0, 3 * i, 3, t0 + 10 * i) for i in range(4)]
        for i, batch in enumerate(p_batches):
            assert send(conn, topic, 0, batch) == (0, 3 * i)
        q_batches = [make_batch(f"q{i}", q, 4, 2 * i, 2, t0 + 100 + i) for i in range(2)]
        for i, batch in enumerate(q_batches):
            assert send(conn, topic, 1, batch) == (0, 2 * i)
        before = producers_by_partition(conn, {topic: [0, 1]})
    assert before == {(topic, 0): (0, [state(p, 0, 11, t0 + 32)]), (topic, 1): (0, [state(q, 4, 3, t0 + 102)])}

    if how == "clean_stop":
        assert broker.stop() == 0, "broker did not exit cleanly on SIGTERM"
        # Kafka's snapshot at the log end: each producer's last batch.
        assert snapshot_offsets(broker, topic, 0)[-1:] == [12]
        assert kproto.read_producer_snapshot(broker.partition_dir(topic, 0) / f"{12:020d}.snapshot") == \
            [kproto.SnapshotEntry(p, 0, 11, 11, 2, t0 + 32, -1, -1)]
        assert snapshot_offsets(broker, topic, 1)[-1:] == [4]
        assert kproto.read_producer_snapshot(broker.partition_dir(topic, 1) / f"{4:020d}.snapshot") == \
            [kproto.SnapshotEntry(q, 4, 3, 3, 1, t0 + 102, -1, -1)]
    else:
        broker.kill9()
        assert snapshot_offsets(broker, topic, 0) == [], "no snapshot is expected before a roll or a clean stop"
    broker.start()

    with broker.connect() as conn:
        assert producers_by_partition(conn, {topic: [0, 1]}) == before
        assert send(conn, topic, 0, p_batches[-1]) == (0, 9)
        assert send(conn, topic, 1, q_batches[-1]) == (0, 2)
        if how == "kill_9":
            # Rebuilt from the log, the producer's cache holds its last five batches again.
            for i, batch in enumerate(p_batches):
                assert send(conn, topic, 0, batch) == (0, 3 * i), f"retry of batch {i} after kill -9"
            assert send(conn, topic, 1, q_batches[0]) == (0, 0)
        else:
            # Loaded from the snapshot, which (as Kafka's) keeps only the last batch: an older
            # retry is out of order. A broker that ignored the snapshot and replayed the log
            # would call it a duplicate.
            assert send_error(conn, topic, 0, p_batches[-2]) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert (log_end(conn, topic, 0), log_end(conn, topic, 1)) == (12, 4), "a retry was written again"

        assert send_error(conn, topic, 0, make_batch("gap", p, 0, 20, 1)) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert send_error(conn, topic, 1, make_batch("old", q, 3, 4, 1)) == kproto.INVALID_PRODUCER_EPOCH
        assert send(conn, topic, 0, make_batch("p4", p, 0, 12, 1)) == (0, 12)
        assert send(conn, topic, 1, make_batch("q2", q, 4, 4, 1)) == (0, 4)
        assert log_batches(conn, topic, 0) == [(3 * i, p, 0, 3 * i, 3, values(f"p{i}", 3)) for i in range(4)] + \
            [(12, p, 0, 12, 1, values("p4", 1))]
        assert log_batches(conn, topic, 1) == [(2 * i, q, 4, 2 * i, 2, values(f"q{i}", 2)) for i in range(2)] + \
            [(4, q, 4, 4, 1, values("q2", 1))]


@pytest.mark.timeout_s(90)
def test_after_a_crash_state_comes_from_the_last_snapshot_plus_the_log_written_after_it(make_broker):
    broker = make_broker(FLUSH_EVERY_MESSAGE)
    topic = support.unique_topic("idem-replay")
    support.create_topic(broker.bootstrap, topic, 1)
    t0 = now_ms() - 10_000
    with broker.connect() as conn:
        p, r = new_producer_id(conn), new_producer_id(conn)
        p0, p1 = make_batch("p0", p, 0, 0, 3, t0), make_batch("p1", p, 0, 3, 3, t0 + 1)
        r0 = make_batch("r0", r, 0, 0, 2, t0 + 2)
        assert [send(conn, topic, 0, b) for b in (p0, p1, r0)] == [(0, 0), (0, 3), (0, 6)]
    broker.restart()  # snapshot at offset 8: p's last batch p1, r's r0
    assert snapshot_offsets(broker, topic, 0)[-1:] == [8]
    with broker.connect() as conn:
        p2, p3 = make_batch("p2", p, 0, 6, 3, t0 + 3), make_batch("p3", p, 0, 9, 3, t0 + 4)
        assert [send(conn, topic, 0, b) for b in (p2, p3)] == [(0, 8), (0, 11)]
    broker.kill9()
    broker.start()

    with broker.connect() as conn:
        assert producers_by_partition(conn, {topic: [0]}) == \
            {(topic, 0): (0, sorted([state(p, 0, 11, t0 + 6), state(r, 0, 1, t0 + 3)], key=lambda s: s.producer_id))}
        # p3 and p2 are known from replaying the log after the snapshot, p1 and r0 from the snapshot.
        assert send(conn, topic, 0, p3) == (0, 11)
        assert send(conn, topic, 0, p2) == (0, 8)
        assert send(conn, topic, 0, p1) == (0, 3)
        assert send(conn, topic, 0, r0) == (0, 6)
        # p0 is older than the snapshot's last batch of p (Kafka's snapshot keeps one batch per
        # producer): out of order. A broker that rebuilt everything from the log would call it a duplicate.
        assert send_error(conn, topic, 0, p0) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert log_end(conn, topic, 0) == 14, "a retry was written again"
        assert send(conn, topic, 0, make_batch("p4", p, 0, 12, 1, t0 + 7)) == (0, 14)
        assert send(conn, topic, 0, make_batch("r1", r, 0, 2, 1, t0 + 8)) == (0, 15)
        assert [b[:5] for b in log_batches(conn, topic, 0)] == [
            (0, p, 0, 0, 3), (3, p, 0, 3, 3), (6, r, 0, 0, 2), (8, p, 0, 6, 3), (11, p, 0, 9, 3),
            (14, p, 0, 12, 1), (15, r, 0, 2, 1)]


@pytest.mark.timeout_s(60)
def test_an_idle_producer_expires_and_is_then_treated_as_new(make_broker):
    broker = make_broker({"producer.id.expiration.ms": 2_000, "producer.id.expiration.check.interval.ms": 100})
    topic = support.unique_topic("idem-expire")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect() as conn:
        p, q = new_producer_id(conn), new_producer_id(conn)
        a = make_batch("a", p, 0, 0, 2)
        assert send(conn, topic, 0, a) == (0, 0)
        assert send(conn, topic, 0, make_batch("b", q, 0, 0, 1)) == (0, 2)
        assert send(conn, topic, 0, a) == (0, 0), "an exact retry right away is a duplicate"
        listed = [s.producer_id for s in kproto.describe_producers(conn, {topic: [0]})[0].active_producers]
        assert sorted(listed) == sorted([p, q])
        deadline = time.monotonic() + 15
        while kproto.describe_producers(conn, {topic: [0]})[0].active_producers:
            assert time.monotonic() < deadline, "producers still listed 15 s after their last batch (expiry 2 s)"
            time.sleep(0.2)
        # Forgotten: the same batch is new data now, and a sequence far ahead is accepted.
        # (Rebuilt with a current timestamp: a producer's age is its last batch's
        # timestamp, as in Kafka, so the old one would expire again at the next check.)
        a = make_batch("a", p, 0, 0, 2)
        assert send(conn, topic, 0, a) == (0, 3)
        assert send(conn, topic, 0, make_batch("c", q, 0, 40, 1)) == (0, 5)
        # From here on both are tracked again.
        assert send(conn, topic, 0, a) == (0, 3)
        assert send_error(conn, topic, 0, make_batch("d", q, 0, 45, 1)) == kproto.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert [b[:5] for b in log_batches(conn, topic, 0)] == \
            [(0, p, 0, 0, 2), (2, q, 0, 0, 1), (3, p, 0, 0, 2), (5, q, 0, 40, 1)]


# --- librdkafka end to end ----------------------------------------------------

def split_frames(buffer: bytearray) -> list[bytes]:
    """Removes and returns the whole size-prefixed frames at the start of buffer."""
    frames = []
    while len(buffer) >= 4:
        size = int.from_bytes(buffer[:4], "big", signed=True)
        if len(buffer) < 4 + size:
            break
        frames.append(bytes(buffer[4:4 + size]))
        del buffer[:4 + size]
    return frames


BatchKey = tuple  # (topic, partition, producer id, epoch, base sequence, record count)


class Link:
    """One client connection through the proxy and its connection to the broker."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.client_gone = False
        self.requests: dict[int, tuple[int, dict[int, BatchKey]]] = {}  # correlation id -> (version, batches)


class Proxy:
    """A TCP proxy on an ephemeral 127.0.0.1 port in front of one broker port.

    With cut_after=(lo, hi), each connection is cut after a random lo..hi bytes
    client→broker: the bytes up to the limit go to the broker (usually ending
    inside a request), the client's socket is closed at once, and the broker's
    side stays open for LINGER_AFTER_CUT_S so that the answers to the requests
    it already has are read (and recorded) but never reach the client — the
    batches written for those requests are exactly the ones whose retry must be
    recognised as a duplicate.

    Every Produce request forwarded whole and every answer to one is decoded,
    per batch (topic, partition, producer id, epoch, base sequence, count):
    forwarded counts the requests that reached the broker, answered the
    error-free answers that reached the client, unanswered the error-free
    answers the broker sent after the client was cut (or while holding). While
    holding, the broker's answers are read and recorded but never forwarded
    (the connections are then useless: end them by stopping the broker). While
    paused, new connections are closed at once, as by a broker that is down."""

    LINGER_AFTER_CUT_S = 0.3

    def __init__(self, upstream_port: int, cut_after: tuple[int, int] | None = None, seed: int = 1) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cutting = cut_after is not None
        self.paused = False
        self.holding = False
        self.rng = random.Random(seed)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.refused = 0
        self.cuts = 0
        self.forwarded: collections.Counter = collections.Counter()
        self.answered: collections.Counter = collections.Counter()
        self.unanswered: collections.Counter = collections.Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._links: list[Link] = []
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop, "proxy-accept")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def snapshot(self) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
        """Copies of (forwarded, answered, unanswered)."""
        with self.lock:
            return collections.Counter(self.forwarded), collections.Counter(self.answered), \
                collections.Counter(self.unanswered)

    def _spawn(self, target, name, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self.lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # listener closed
            upstream = None
            if not self.paused and not self._stop.is_set():
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                    upstream.settimeout(None)
                except OSError:
                    upstream = None  # broker down
            if upstream is None:
                with self.lock:
                    self.refused += 1
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(client, upstream)
            with self.lock:
                self.connections += 1
                self._links.append(link)
                limit = self.rng.randint(*self.cut_after) if self.cut_after else None
            self._spawn(self._client_to_broker, "proxy-up", link, limit)
            self._spawn(self._broker_to_client, "proxy-down", link)

    @staticmethod
    def _close(s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)  # also wakes a thread blocked in recv on it
        except OSError:
            pass
        s.close()

    def _client_to_broker(self, link: Link, limit: int | None) -> None:
        forwarded = 0
        pending = bytearray()
        try:
            while True:
                data = link.client.recv(1 << 16)
                if not data:
                    return
                cut = self.cutting and limit is not None and forwarded + len(data) >= limit
                if cut:
                    data = data[:limit - forwarded]
                pending += data
                for frame in split_frames(pending):  # noted before the broker can answer
                    self._note_request(link, frame)
                link.upstream.sendall(data)
                forwarded += len(data)
                if cut:
                    with self.lock:
                        self.cuts += 1
                        link.client_gone = True
                    self._close(link.client)
                    self._stop.wait(self.LINGER_AFTER_CUT_S)
                    return
        except OSError:
            return
        except Exception as e:  # noqa: BLE001 - a decoding bug must fail the test, not hang it
            with self.lock:
                self.errors.append(f"request: {e!r}")
        finally:
            self._close_link(link)

    def _close_link(self, link: Link) -> None:
        with self.lock:
            link.client_gone = True
        self._close(link.client)
        self._close(link.upstream)

    def _note_request(self, link: Link, frame: bytes) -> None:
        request = kproto.decode_produce_request(frame)
        if request is None:
            return
        batches = {}
        for topic, partition, records in request.partitions:
            (b,), _ = kproto.parse_batches(records)
            batches[partition] = (topic, partition, b.producer_id, b.producer_epoch, b.base_sequence,
                                  b.records_count)
        with self.lock:
            self.forwarded.update(batches.values())
            if request.acks != 0:
                link.requests[request.correlation_id] = (request.version, batches)

    def _broker_to_client(self, link: Link) -> None:
        pending = bytearray()
        try:
            while True:
                data = link.upstream.recv(1 << 16)
                if not data:
                    return
                delivered = False
                if self.holding:
                    with self.lock:
                        link.client_gone = True
                if not link.client_gone:
                    try:
                        link.client.sendall(data)
                        delivered = True
                    except OSError:
                        with self.lock:
                            link.client_gone = True
                pending += data
                for frame in split_frames(pending):
                    self._note_response(link, frame, delivered)
        except OSError:
            return
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append(f"response: {e!r}")
        finally:
            self._close_link(link)

    def _note_response(self, link: Link, frame: bytes, delivered: bool) -> None:
        correlation_id = int.from_bytes(frame[:4], "big", signed=True)
        with self.lock:
            request = link.requests.pop(correlation_id, None)
        if request is None:
            return  # not a Produce request
        version, batches = request
        ok = [batches[p.partition] for p in kproto.decode_produce_response_frame(frame, version)
              if p.error_code == 0 and p.partition in batches]
        with self.lock:
            (self.answered if delivered else self.unanswered).update(ok)

    def close(self) -> None:
        self._stop.set()
        self._close(self.listener)
        with self.lock:
            links, threads = list(self._links), list(self._threads)
        for link in links:
            self._close(link.client)
            self._close(link.upstream)
        for thread in threads:
            thread.join(timeout=5)


IDEMPOTENT_PRODUCER = {
    "enable.idempotence": True, "acks": "all", "max.in.flight.requests.per.connection": 5,
    "linger.ms": 2,
    # Small batches: a request never outgrows a connection's cut limit, and many are in flight.
    "batch.size": 16_384,
    "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 10,
    "log.connection.close": False,  # the cuts are the point; do not log each one
}


def start_behind_proxy(make_broker, overrides: dict | None = None, **proxy_args) -> tuple[object, Proxy]:
    """A broker that advertises a Proxy in front of it (so clients only ever connect through it)."""
    broker = make_broker(overrides, start=False)
    proxy = Proxy(broker.port, **proxy_args)
    broker.overrides["advertised.listeners"] = f"PLAINTEXT://{proxy.address}"
    try:
        broker.start()
    except BaseException:
        proxy.close()
        raise
    return broker, proxy


@pytest.mark.timeout_s(150)
def test_librdkafka_idempotent_producer_writes_every_record_once_while_a_proxy_cuts_its_connections(make_broker):
    partitions, count = 4, 100_000
    broker, proxy = start_behind_proxy(make_broker, cut_after=(100_000, 400_000), seed=20261122)
    try:
        topic = support.unique_topic("idem-proxy")
        support.create_topic(broker.bootstrap, topic, partitions)
        records = support.keyed_records(count, 1_000, payload_bytes=100)
        delivered = support.confluent_produce(proxy.address, topic, records, config=IDEMPOTENT_PRODUCER,
                                              timeout_s=100)
        proxy.cutting = False
        forwarded, answered, unanswered = proxy.snapshot()
        assert not proxy.errors, f"the proxy failed to decode: {proxy.errors[:3]}"
        assert proxy.cuts >= 20, f"the proxy cut only {proxy.cuts} connections"
        producer_ids = {key[2] for key in forwarded}
        assert len(producer_ids) == 1 and min(producer_ids) >= 0, f"batches carried producer ids {producer_ids}"
        resent = [key for key, n in forwarded.items() if n > 1]
        assert len(resent) >= 10, f"only {len(resent)} batches reached the broker twice: the cuts caused no retries"
        # Written, but the answer was lost with the connection: the retry must be a duplicate.
        assert len(unanswered) >= 5, f"only {len(unanswered)} written batches lost their answer to a cut"
        never_answered = [key for key in unanswered if answered[key] == 0]
        assert not never_answered, f"written batches whose retry was never answered: {never_answered[:5]}"

        consumed = support.confluent_consume(proxy.address, topic, partitions, count, linger_s=2.0)
        support.assert_roundtrip(records, consumed, partitions, delivered)
        with broker.connect() as conn:
            in_log = [key for p in range(partitions)
                      for key in ((topic, p, *b[1:5]) for b in log_batches(conn, topic, p))]
        assert len(in_log) == len(set(in_log)), "a batch is in the log twice"
        assert set(in_log) == {key for key in forwarded if answered[key]}, \
            "the log's batches are not exactly the batches answered without error"
    finally:
        proxy.close()


@pytest.mark.timeout_s(150)
def test_librdkafka_idempotent_producer_writes_every_record_once_across_a_broker_kill_9(make_broker):
    partitions, count, kill_after_acks = 4, 40_000, 12_000
    broker, proxy = start_behind_proxy(make_broker, FLUSH_EVERY_MESSAGE)  # forwards and records, never cuts
    try:
        topic = support.unique_topic("idem-kill")
        support.create_topic(broker.bootstrap, topic, partitions)
        records = support.keyed_records(count, 1_000, payload_bytes=100)

        delivered: list[tuple[int, int] | None] = [None] * count
        errors: list[str] = []
        acked = 0

        def on_delivery(seq):
            def callback(err, msg):
                nonlocal acked
                if err is not None:
                    errors.append(f"record {seq}: {err}")
                else:
                    delivered[seq] = (msg.partition(), msg.offset())
                    acked += 1
            return callback

        producer = Producer({"bootstrap.servers": proxy.address, "message.timeout.ms": 120_000,
                             **IDEMPOTENT_PRODUCER, "batch.size": 65_536})
        seq = 0
        unacknowledged = None  # batches in the log after the restart whose answer never reached the client
        deadline = time.monotonic() + 100
        while seq < count:
            assert time.monotonic() < deadline, f"only {acked} of {count} records acknowledged in time"
            if seq - acked < 5_000:  # keep requests in flight without queueing far ahead
                for _ in range(100):
                    key, value = records[seq]
                    producer.produce(topic, key=key, value=value, on_delivery=on_delivery(seq))
                    seq += 1
            producer.poll(0.002)
            if unacknowledged is None and acked >= kill_after_acks:
                # Crash right after writes whose answers are still on their way: hold the answers
                # back until the broker has answered some batches, then kill it mid-stream.
                proxy.holding = True
                hold_deadline = time.monotonic() + 10
                while not proxy.snapshot()[2]:
                    assert time.monotonic() < hold_deadline, "no answer arrived within 10 s"
                    producer.poll(0.005)
                producer.poll(0.2)  # let the answers to the other requests in flight pile up too
                broker.kill9()
                proxy.holding = False
                proxy.paused = True  # the producer cannot reach the restarted broker before we looked
                broker.start()
                with broker.connect() as conn:
                    in_log = {(topic, p, *b[1:5]) for p in range(partitions) for b in log_batches(conn, topic, p)}
                forwarded_before, answered_before, held = proxy.snapshot()
                assert min(key[2] for key in forwarded_before) >= 0, "a batch without a producer id"
                unacknowledged = {key for key in in_log if not answered_before[key]}
                assert set(held) <= unacknowledged, \
                    f"batches answered without error are missing after kill -9: {sorted(set(held) - in_log)[:5]}"
                proxy.paused = False
        assert unacknowledged is not None, "the broker was never killed"
        assert producer.flush(60) == 0, f"records undelivered 60 s after the restart: {len(producer)}"
        assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
        assert all(d is not None for d in delivered)
        assert not proxy.errors, f"the proxy failed to decode: {proxy.errors[:3]}"
        forwarded, answered, _ = proxy.snapshot()
        # The producer sent those again after the restart, and the broker answered them without error.
        assert all(forwarded[key] > forwarded_before[key] and answered[key] for key in unacknowledged), \
            [(key, forwarded_before[key], forwarded[key], answered[key]) for key in unacknowledged]

        consumed = support.confluent_consume(proxy.address, topic, partitions, count, linger_s=2.0)
        support.assert_roundtrip(records, consumed, partitions, delivered)  # type: ignore[arg-type]
    finally:
        proxy.close()
