"""A connection whose requests name partitions of one other shard moves to that shard.

Goal: after 16 Produce or Fetch requests in a row that name only partitions another
shard owns, a connection continues on that shard (``engine/src/conn.rs``), and
nothing about it changes for the client: answers keep coming in request order,
records land at the right offsets, requests it had already sent (read ahead by the
broker) are served after the move, and fetches on the moved connection read back
what was produced. A connection whose requests name partitions of both shards
never moves.

Method: a broker with 2 shards, where partitions 0 and 1 of a topic always live on
different shards (a partition's shard is the topic's hash plus the partition
number, modulo the shard count). Each of 6 raw connections sends 24 one-record
produce requests to partition 0 one at a time, then 24 to partition 1 written at
once (with ApiVersions between them) before reading any answer; so whichever shard
accepted it, each connection names a partition of the other shard 16 times in a
row at least once. Every answer is checked, then each connection reads both
partitions back and the broker's debug log (``WEIR_LOG=weir_engine::conn=debug``)
must show a move for every connection. Then one connection sends 40 requests that
each name partitions 0 and 1 and must not move.
"""

from __future__ import annotations

import re

import kproto
import support

CONNECTIONS = 6
PER_PHASE = 24
MOVED = re.compile(r"connection moved to the shard of its partitions")


def moves_logged(broker) -> int:
    text = re.sub(r"\x1b\[[0-9;]*m", "", broker.stderr_path.read_text(errors="replace"))
    return len(MOVED.findall(text))


def produce_body(topic: str, partition: int, value: bytes) -> bytes:
    return kproto.encode_produce_request(9, topic, partition, kproto.build_batch([(None, value, 0)]), acks=1)


def test_connections_move_to_the_shard_of_their_partitions_and_keep_working(make_broker):
    broker = make_broker(shards=2, start=False)
    broker.prefix = ["env", "WEIR_LOG=weir_engine::conn=debug"]
    broker.start()
    topic = support.unique_topic("moves")
    support.create_topic(broker.bootstrap, topic, 2)
    expected: dict[int, list[bytes]] = {0: [], 1: []}
    connections = [broker.connect(timeout_s=30) for _ in range(CONNECTIONS)]
    try:
        for index, conn in enumerate(connections):
            # One at a time to partition 0.
            for i in range(PER_PHASE):
                value = f"c{index}-p0-{i}".encode()
                response = kproto.produce(conn, topic, 0, kproto.build_batch([(None, value, 0)]), acks=1)
                assert (response.error_code, response.base_offset) == (0, len(expected[0])), response
                expected[0].append(value)
            # All at once to partition 1, ApiVersions in between: the broker reads ahead.
            sent = []
            for i in range(PER_PHASE):
                value = f"c{index}-p1-{i}".encode()
                sent.append(("produce", conn.send(kproto.PRODUCE, 9, produce_body(topic, 1, value)), value))
                if i % 8 == 0:
                    sent.append(("versions", conn.send(kproto.API_VERSIONS, 3,
                                                       kproto.encode_api_versions_request(3)), None))
            for kind, correlation_id, value in sent:
                if kind == "versions":
                    reader = conn.recv_response(correlation_id, flexible_header=False)
                    assert kproto.decode_api_versions_response(reader, 3)[0] == 0
                    continue
                (response,) = kproto.decode_produce_response(
                    conn.recv_response(correlation_id, flexible_header=True), 9)
                assert (response.error_code, response.base_offset) == (0, len(expected[1])), response
                expected[1].append(value)
        for conn in connections:
            assert kproto.fetch_values(conn, topic, 0) == expected[0]
            assert kproto.fetch_values(conn, topic, 1) == expected[1]
    finally:
        for conn in connections:
            conn.close()
    moved = moves_logged(broker)
    assert moved >= CONNECTIONS, f"{moved} moves logged for {CONNECTIONS} connections"

    # Requests naming both shards' partitions keep a connection where it is.
    with broker.connect(timeout_s=30) as conn:
        for i in range(40):
            value = f"both-{i}".encode()
            w = kproto.Writer()
            w.compact_string(None).int16(1).int32(10_000)
            w.array_len(1, True).compact_string(topic).array_len(2, True)
            for partition in (0, 1):
                w.int32(partition).compact_bytes(kproto.build_batch([(None, value, 0)])).tagged_fields()
            w.tagged_fields().tagged_fields()
            responses = kproto.decode_produce_response(
                conn.recv_response(conn.send(kproto.PRODUCE, 9, w.getvalue()), flexible_header=True), 9)
            assert [(r.partition, r.error_code) for r in responses] == [(0, 0), (1, 0)], responses
    assert moves_logged(broker) == moved
    assert broker.stop() == 0
