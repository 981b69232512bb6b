"""Pipelined produce requests on one connection land and are answered in request order.

Goal: a connection hands its next produce request to the partitions' owner shards
while the previous one is still being written (api/produce.rs, turns.rs), so the
records of back-to-back requests must still land in request order on every
partition, idempotent sequences must never look out of order, and the answers must
come back in request order, interleaved with other APIs.

Method: a broker with 2 shards and a 4-partition topic (partitions on both shards);
one raw connection writes hundreds of acks=1 produce requests (and ApiVersions
between them) without reading, then reads every answer; then Fetch reads each
partition back. A second run pipelines 100 idempotent batches to one partition. A
third pipelines requests that each name every partition (and one that does not
exist), so each request's appends run on both shards.
"""

from __future__ import annotations

import socket
import threading
import time

import kproto
import support

PARTITIONS = 4
REQUESTS = 400


def test_pipelined_produce_requests_land_and_answer_in_request_order(make_broker):
    broker = make_broker(shards=2)
    topic = support.unique_topic("pipelined-acks1")
    support.create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = []  # (kind, correlation id, partition)
    with broker.connect(timeout_s=30) as conn:
        for i in range(REQUESTS):
            partition = i % PARTITIONS
            batch = kproto.build_batch([(None, f"{i}".encode(), 0)])
            body = kproto.encode_produce_request(9, topic, partition, batch, acks=1)
            sent.append(("produce", conn.send(kproto.PRODUCE, 9, body), partition))
            if i % 50 == 0:
                versions = kproto.encode_api_versions_request(3)
                sent.append(("versions", conn.send(kproto.API_VERSIONS, 3, versions), None))
        offsets: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        for kind, correlation_id, partition in sent:
            if kind == "versions":
                reader = conn.recv_response(correlation_id, flexible_header=False)
                assert kproto.decode_api_versions_response(reader, 3)[0] == 0
                continue
            reader = conn.recv_response(correlation_id, flexible_header=True)
            (response,) = kproto.decode_produce_response(reader, 9)
            assert response.error_code == 0, response
            offsets[partition].append(response.base_offset)
        per_partition = REQUESTS // PARTITIONS
        for partition in range(PARTITIONS):
            assert offsets[partition] == list(range(per_partition)), (partition, offsets[partition])
            expected = [f"{i}".encode() for i in range(partition, REQUESTS, PARTITIONS)]
            assert kproto.fetch_values(conn, topic, partition) == expected


def test_pipelined_requests_for_partitions_on_both_shards_land_in_request_order(make_broker):
    broker = make_broker(shards=2)
    topic = support.unique_topic("pipelined-spread")
    support.create_topic(broker.bootstrap, topic, PARTITIONS)
    missing = PARTITIONS + 5
    requests = 150
    with broker.connect(timeout_s=30) as conn:
        ids = []
        for i in range(requests):
            batches = {partition: kproto.build_batch([(None, f"{i}-{partition}".encode(), 0)])
                       for partition in [missing, *range(PARTITIONS)]}
            ids.append(conn.send(kproto.PRODUCE, 9,
                                 kproto.encode_produce_request_to(9, topic, batches, acks=1)))
        for i, correlation_id in enumerate(ids):
            responses = kproto.decode_produce_response(
                conn.recv_response(correlation_id, flexible_header=True), 9)
            assert [r.partition for r in responses] == [missing, *range(PARTITIONS)]
            assert responses[0].error_code == kproto.UNKNOWN_TOPIC_OR_PARTITION, responses[0]
            for response in responses[1:]:
                assert (response.error_code, response.base_offset) == (0, i), response
        for partition in range(PARTITIONS):
            expected = [f"{i}-{partition}".encode() for i in range(requests)]
            assert kproto.fetch_values(conn, topic, partition) == expected


def test_pipelined_idempotent_batches_keep_their_sequence_order(make_broker):
    broker = make_broker(shards=2)
    topic = support.unique_topic("pipelined-idempotent")
    support.create_topic(broker.bootstrap, topic, 1)
    with broker.connect(timeout_s=30) as conn:
        producer = kproto.init_producer_id(conn)
        assert producer.error_code == 0, producer
        ids = []
        for sequence in range(100):
            batch = kproto.build_idempotent_batch([(None, f"{sequence}".encode(), 0)],
                                                  producer.producer_id, producer.producer_epoch,
                                                  sequence)
            body = kproto.encode_produce_request(9, topic, 0, batch, acks=-1)
            ids.append(conn.send(kproto.PRODUCE, 9, body))
        for sequence, correlation_id in enumerate(ids):
            (response,) = kproto.decode_produce_response(
                conn.recv_response(correlation_id, flexible_header=True), 9)
            assert (response.error_code, response.base_offset) == (0, sequence), response
        assert kproto.fetch_values(conn, topic, 0) == [f"{i}".encode() for i in range(100)]


def test_a_producer_that_never_reads_its_answers_does_not_hold_up_its_partition(make_broker):
    # One shard: every append is local to the connection that sent it. The first
    # connection pipelines produce requests without reading a single answer until its
    # socket is full and the broker blocks writing to it; appends that connection had
    # already handed over must still finish, or the partition's line would stop there.
    broker = make_broker(shards=1)
    topic = support.unique_topic("unread-answers")
    support.create_topic(broker.bootstrap, topic, 1)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect((broker.host, broker.port))
    request = kproto.encode_request(
        kproto.PRODUCE, 9, 1,
        kproto.encode_produce_request(9, topic, 0, kproto.build_batch([(None, b"x" * 100, 0)]), acks=1))

    def flood():
        try:
            while True:
                stuck.sendall(request * 100)
        except OSError:
            pass  # closed at the end of the test

    threading.Thread(target=flood, daemon=True).start()
    with broker.connect(timeout_s=10) as other:
        # Wait until the flooding connection no longer gets its appends written (its
        # answers are not read, so the broker stops reading from it).
        last, deadline = -1, time.monotonic() + 60
        while True:
            time.sleep(0.5)
            end = kproto.list_offsets(other, topic, 0, -1)[2]
            if end == last:
                break
            assert time.monotonic() < deadline, "the unread answers never filled the socket"
            last = end
        response = kproto.produce(other, topic, 0, kproto.build_batch([(None, b"after", 0)]),
                                  acks=1, timeout_s=10)
        assert response.error_code == 0, response
        assert response.base_offset >= last
        body = kproto.encode_fetch_request(4, topic, 0, response.base_offset, max_wait_ms=0)
        (fetched,) = kproto.decode_fetch_response(other.request(kproto.FETCH, 4, body, 10), 4)
        assert [record.value for batch in fetched.batches() for record in batch.records()] == [b"after"]
    stuck.close()
