"""On ext4 a segment's space is reserved ahead of its appends and given back.

Goal: on ext4 the active segment's `.log` holds more blocks than bytes while it
takes appends (fallocate with KEEP_SIZE, so its size is still exactly the bytes
of its batches); a segment that rolls, a broker that stops, and a broker that
restarts after `kill -9` all leave every `.log` holding no more blocks than its
size needs; and every record reads back throughout.

Method: a real broker whose log dir is the test's temporary dir (skipped with a
message when that is not ext4), raw Produce requests of 256 KiB batches,
allocated bytes read from `st_blocks`, record values read back with Fetch.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import kproto
import support

KIB = 1 << 10
MIB = 1 << 20
VALUE_BYTES = 256 * KIB
# What a `.log` may hold past its size once nothing is reserved: the last block, and
# a block of extent tree.
SLACK_BYTES = 8 * KIB


def on_ext4(path) -> bool:
    magic = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True, check=True)
    return magic.stdout.strip() == "ef53"


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def batch(index: int) -> bytes:
    return kproto.build_batch([(b"k", bytes([index % 256]) * VALUE_BYTES, int(time.time() * 1000))])


def assert_nothing_reserved(broker, topic: str) -> None:
    for path in broker.segment_files(topic, 0):
        size = path.stat().st_size
        assert allocated(path) <= size + SLACK_BYTES, (path.name, size, allocated(path))


def test_ext4_segments_reserve_ahead_and_give_back_at_roll_stop_and_restart(make_broker, tmp_path):
    if not on_ext4(tmp_path):
        pytest.skip(f"{tmp_path} is not on ext4: weir preallocates only there")
    broker = make_broker({"log.segment.bytes": 4 * MIB}, shards=1)
    topic = support.unique_topic("prealloc")
    support.create_topic(broker.bootstrap, topic, 1)
    expected: list[bytes] = []
    with broker.connect() as conn:
        for index in range(5):
            response = kproto.produce(conn, topic, 0, batch(index))
            assert (response.error_code, response.base_offset) == (0, index), response
            expected.append(bytes([index]) * VALUE_BYTES)
        (active,) = broker.segment_files(topic, 0)
        size = active.stat().st_size
        assert 5 * VALUE_BYTES < size < 5 * VALUE_BYTES + 4 * KIB, size
        # Reserved ahead: the third append reserved twice what the segment then held.
        assert allocated(active) >= size + VALUE_BYTES, (size, allocated(active))

        # Past 4 MiB the segment rolls: the sealed one gives its reservation back.
        for index in range(5, 20):
            assert kproto.produce(conn, topic, 0, batch(index)).error_code == 0
            expected.append(bytes([index]) * VALUE_BYTES)
        sealed, active = broker.segment_files(topic, 0)
        assert allocated(sealed) <= sealed.stat().st_size + SLACK_BYTES, allocated(sealed)
        assert allocated(active) > active.stat().st_size + 64 * KIB, allocated(active)
        assert kproto.fetch_values(conn, topic, 0) == expected

    # A crash leaves the reservation; the next start gives it back.
    broker.kill9()
    assert allocated(active) > active.stat().st_size + 64 * KIB
    broker.restart()
    assert_nothing_reserved(broker, topic)
    with broker.connect() as conn:
        assert kproto.fetch_values(conn, topic, 0) == expected
        assert kproto.produce(conn, topic, 0, batch(20)).base_offset == 20
        expected.append(bytes([20]) * VALUE_BYTES)
        assert allocated(active) > active.stat().st_size + 64 * KIB

    # A clean stop gives it back too, and the log reads back whole.
    assert broker.stop() == 0
    assert_nothing_reserved(broker, topic)
    broker.restart()
    with broker.connect() as conn:
        assert kproto.fetch_values(conn, topic, 0) == expected
