"""Malformed and unsupported requests get the documented answer and harm nothing else.

Goal: bytes that are not Kafka (garbage, a 2 GiB size prefix, a frame cut
short, an unknown API key) close only the offending connection; known APIs at
versions outside the advertised range close the connection as in Kafka, except
ApiVersions, which gets a v0-encoded UNSUPPORTED_VERSION (35) reply that still
lists the APIs (KIP-511); Produce v0-2 and Fetch v0-3, advertised for old
clients' feature detection, get UNSUPPORTED_VERSION per partition; bad record batches get
their per-partition error (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
UNKNOWN_TOPIC_OR_PARTITION) and append nothing. After each, a normal client
still produces and consumes, and the records acknowledged before are intact.

Method: each test starts its own broker, produces a baseline with
confluent-kafka, sends the bad input over a raw socket with kproto, checks the
exact answer (or the close), checks the log end offset did not move, then
produces more records and consumes everything with confluent-kafka
(exact offsets, keys and values against all delivery reports).
"""

from __future__ import annotations

import struct
import time

import pytest

import kproto
import support

BASELINE = 200
AFTERWARDS = 50
# The contract's advertised ranges (DESIGN.md §2, the ApiVersions registry).
REQUIRED_RANGES = {kproto.PRODUCE: (0, 9), kproto.FETCH: (4, 12), kproto.LIST_OFFSETS: (1, 8),
                   kproto.METADATA: (0, 12), kproto.API_VERSIONS: (0, 4)}


class Baseline:
    """A topic holding BASELINE acknowledged records; check() proves the broker still serves it."""

    def __init__(self, broker, producer_config=None):
        self.broker = broker
        self.producer_config = producer_config
        self.topic = support.unique_topic("bad-input")
        support.create_topic(broker.bootstrap, self.topic, 1)
        self.records = support.keyed_records(BASELINE + AFTERWARDS, 10)
        self.delivered = support.confluent_produce(broker.bootstrap, self.topic, self.records[:BASELINE],
                                                   config=producer_config)

    def log_end_offset(self) -> int:
        with self.broker.connect() as conn:
            error, _, offset = kproto.list_offsets(conn, self.topic, 0, kproto.LATEST_TIMESTAMP)
            assert error == 0
            return offset

    def check(self, extra: list[tuple[bytes, bytes]] = ()) -> None:
        """The broker runs, the log holds exactly baseline + extra, and a client appends and reads on.

        extra: records a test appended on purpose (raw) right after the baseline."""
        assert self.broker.is_running(), "broker process died\n" + self.broker.stderr_tail()
        assert self.log_end_offset() == BASELINE + len(extra), "the bad request changed the log end offset"
        afterwards = support.confluent_produce(self.broker.bootstrap, self.topic, self.records[BASELINE:],
                                               config=self.producer_config)
        end = BASELINE + len(extra) + AFTERWARDS
        assert self.delivered + afterwards == [(0, o) for o in range(BASELINE)] + \
            [(0, o) for o in range(BASELINE + len(extra), end)], "delivery reports: wrong offsets"
        consumed = support.confluent_consume(self.broker.bootstrap, self.topic, 1, end)
        expected = self.records[:BASELINE] + list(extra) + self.records[BASELINE:]
        assert len(consumed) == end, f"consumed {len(consumed)} records, the log holds {end}"
        mismatches = [(o, (k, v), expected[i]) for i, (_, o, k, v) in enumerate(consumed)
                      if (o, k, v) != (i, *expected[i])]
        assert not mismatches, f"{len(mismatches)} records differ: (offset, got, expected) {mismatches[:3]}"


def send_and_expect_close(broker, data: bytes, close_write_side: bool = False) -> None:
    with broker.connect() as conn:
        conn.send_raw(data)
        if close_write_side:
            conn.sock.shutdown(1)  # SHUT_WR
        assert conn.closed_by_peer(timeout_s=5.0), "broker kept the connection open after a bad frame"


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",  # size prefix 'GET ' = 1.2 GB
    struct.pack(">i", 16) + b"\xff" * 16,          # a small frame of noise: api key -1
], ids=["http_request", "small_frame_of_noise"])
def test_garbage_bytes_close_the_connection_and_the_broker_keeps_serving(broker, garbage):
    baseline = Baseline(broker)
    send_and_expect_close(broker, garbage)
    baseline.check()


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("size_prefix", [b"\x80\x00\x00\x00", b"\x7f\xff\xff\xff"], ids=["2GiB", "2GiB_minus_1"])
def test_a_2_gib_size_prefix_closes_the_connection_without_allocating(broker, size_prefix):
    baseline = Baseline(broker)
    send_and_expect_close(broker, size_prefix + b"\x00\x12\x00\x00" + b"\x00" * 64)
    baseline.check()


@pytest.mark.timeout_s(60)
def test_a_truncated_frame_neither_blocks_nor_harms_the_broker(broker):
    baseline = Baseline(broker)
    # A frame that promises 100 bytes and delivers 10, left hanging while others are served...
    hanging = broker.connect()
    try:
        hanging.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x00")
        with broker.connect() as conn:
            assert kproto.api_versions(conn, 3)[0] == 0
    finally:
        hanging.close()
    # ...and one whose sender closes its side mid-frame.
    send_and_expect_close(broker, struct.pack(">i", 100) + b"\x00" * 10, close_write_side=True)
    baseline.check()


@pytest.mark.timeout_s(60)
def test_an_unknown_api_key_closes_the_connection(broker):
    baseline = Baseline(broker)
    send_and_expect_close(broker, kproto.encode_request(9999, 0, 1, b""))
    baseline.check()


@pytest.mark.timeout_s(60)
def test_api_versions_v99_gets_a_v0_encoded_unsupported_version_reply_that_lists_the_apis(broker):
    baseline = Baseline(broker)
    with broker.connect() as conn:
        cid = conn.send(kproto.API_VERSIONS, 99, kproto.encode_api_versions_request(3))
        r = conn.recv_response(cid, flexible_header=False)
        error_code, apis = kproto.decode_api_versions_response(r, 0)
        assert r.remaining() == 0, f"{r.remaining()} bytes after a v0 body: the reply is not v0-encoded"
        assert error_code == kproto.UNSUPPORTED_VERSION
        for api_key, (lo, hi) in REQUIRED_RANGES.items():
            assert api_key in apis, f"api {api_key} missing from the UNSUPPORTED_VERSION reply: {apis}"
            assert apis[api_key][0] <= lo and apis[api_key][1] >= hi, \
                f"api {api_key} advertised {apis[api_key]}, contract needs {lo}..{hi}"
        # The client then retries on the same connection with a version the broker listed.
        error_code, apis_v3 = kproto.api_versions(conn, 3)
        assert (error_code, apis_v3) == (0, apis)
    baseline.check()


@pytest.mark.timeout_s(60)
def test_produce_v2_is_rejected_with_unsupported_version_and_appends_nothing(broker):
    baseline = Baseline(broker)
    batch = kproto.build_batch([(b"k", b"v2 must not land", int(time.time() * 1000))])
    with broker.connect() as conn:
        r = conn.request(kproto.PRODUCE, 2, kproto.encode_produce_request(2, baseline.topic, 0, batch, acks=1))
        (resp,) = kproto.decode_produce_response(r, 2)
    assert (resp.topic, resp.partition, resp.error_code) == (baseline.topic, 0, kproto.UNSUPPORTED_VERSION)
    baseline.check()


@pytest.mark.timeout_s(60)
def test_fetch_v3_is_advertised_for_old_clients_but_answered_unsupported_version(broker):
    # librdkafka only uses lz4 when Fetch v2 is advertised, so v0-3 are listed and refused.
    baseline = Baseline(broker)
    with broker.connect() as conn:
        error_code, apis = kproto.api_versions(conn, 3)
        assert error_code == 0 and apis[kproto.FETCH][0] == 0, apis[kproto.FETCH]
        r = conn.request(kproto.FETCH, 3, kproto.encode_fetch_request(3, baseline.topic, 0, 0, max_wait_ms=100))
        partitions = kproto.decode_fetch_response(r, 3)
    assert [(p.topic, p.partition, p.error_code, p.records) for p in partitions] == \
        [(baseline.topic, 0, kproto.UNSUPPORTED_VERSION, b"")]
    baseline.check()


@pytest.mark.timeout_s(60)
def test_a_version_outside_the_advertised_range_closes_the_connection_as_kafka_does(broker):
    # Kafka cannot parse a request at a version it does not know and closes the socket;
    # only ApiVersions answers unknown versions (KIP-511).
    baseline = Baseline(broker)
    send_and_expect_close(broker, kproto.encode_request(kproto.METADATA, 99, 1, b""))
    baseline.check()


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("version", [3, 9])
def test_a_batch_with_a_bad_crc_is_rejected_as_corrupt_message(broker, version):
    baseline = Baseline(broker)
    batch = bytearray(kproto.build_batch([(b"k", b"bit rot", int(time.time() * 1000))] * 3))
    batch[-3] ^= 0x01  # inside the last record: covered by the CRC
    with broker.connect() as conn:
        resp = kproto.produce(conn, baseline.topic, 0, bytes(batch), version=version, acks=-1)
        assert resp.error_code == kproto.CORRUPT_MESSAGE, resp
        # The connection stays usable after a per-partition error.
        good = kproto.build_batch([(b"k", b"fine", int(time.time() * 1000))])
        assert kproto.produce(conn, baseline.topic, 0, good, version=version, acks=-1).error_code == 0
    baseline.check(extra=[(b"k", b"fine")])


@pytest.mark.timeout_s(60)
def test_a_batch_over_message_max_bytes_is_rejected_as_message_too_large(make_broker):
    broker = make_broker({"message.max.bytes": 20_000})
    baseline = Baseline(broker, producer_config={"batch.size": 8_000})
    now = int(time.time() * 1000)
    too_big = kproto.build_batch([(b"big", bytes(30_000), now)])
    fits = kproto.build_batch([(b"small", bytes(15_000), now)])
    assert len(too_big) > 20_000 > len(fits)
    with broker.connect() as conn:
        resp = kproto.produce(conn, baseline.topic, 0, too_big, version=9, acks=-1)
        assert resp.error_code == kproto.MESSAGE_TOO_LARGE, resp
        resp = kproto.produce(conn, baseline.topic, 0, fits, version=9, acks=-1)
        assert (resp.error_code, resp.base_offset) == (0, BASELINE), "a batch under the limit must be accepted"
    baseline.check(extra=[(b"small", bytes(15_000))])


@pytest.mark.timeout_s(60)
def test_produce_to_a_missing_topic_without_auto_create_is_unknown_topic_or_partition(make_broker):
    broker = make_broker({"auto.create.topics.enable": False})
    baseline = Baseline(broker)  # CreateTopics still works with auto-create off
    missing = support.unique_topic("missing")
    batch = kproto.build_batch([(b"k", b"nowhere", int(time.time() * 1000))])
    with broker.connect() as conn:
        for version in (3, 9):
            resp = kproto.produce(conn, missing, 0, batch, version=version, acks=-1)
            assert resp.error_code == kproto.UNKNOWN_TOPIC_OR_PARTITION, (version, resp)
    from confluent_kafka.admin import AdminClient
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    assert missing not in topics and baseline.topic in topics, sorted(topics)
    assert not broker.partition_dir(missing, 0).exists()
    baseline.check()
