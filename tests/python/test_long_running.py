"""A broker keeps serving after many requests and connections on one shard.

Goal: nothing on the request path accumulates per request. A regression here was
the shutdown event keeping one waker per poll: after ~16,000 requests on a shard
the event overflowed and read as "shutting down", so the shard closed its
connections and its listener while the process stayed up (new clients got
"connection refused").

Method: one shard (so every request lands on it), 20,000 ApiVersions round trips
one at a time on one connection (each makes the shard wait for the next request),
40,000 more pipelined, and 2,000 short-lived connections; then the same
connection, a new connection and a real producer/consumer must all still work.
"""

from __future__ import annotations

import kproto
import support

ROUND_TRIPS = 20_000
REQUESTS = 40_000
PIPELINE = 500
CONNECTIONS = 2_000


def test_the_broker_still_accepts_and_answers_after_tens_of_thousands_of_requests(make_broker):
    broker = make_broker(shards=1)
    body = kproto.encode_api_versions_request(3)
    with broker.connect() as conn:
        for _ in range(ROUND_TRIPS):
            assert kproto.api_versions(conn)[0] == 0
        answered = 0
        for _ in range(REQUESTS // PIPELINE):
            ids = [conn.send(kproto.API_VERSIONS, 3, body) for _ in range(PIPELINE)]
            for correlation_id in ids:
                reader = conn.recv_response(correlation_id, flexible_header=False)
                error_code, apis = kproto.decode_api_versions_response(reader, 3)
                assert error_code == 0 and apis
                answered += 1
        assert answered == REQUESTS
        for _ in range(CONNECTIONS):
            with broker.connect() as short:
                assert kproto.api_versions(short)[0] == 0
        assert kproto.api_versions(conn)[0] == 0, "the long-lived connection still answers"

    topic = support.unique_topic("after-load")
    support.create_topic(broker.bootstrap, topic, 1)
    records = support.keyed_records(1_000, 10)
    support.confluent_produce(broker.bootstrap, topic, records)
    consumed = support.confluent_consume(broker.bootstrap, topic, 1, len(records))
    support.assert_roundtrip(records, consumed, 1)
