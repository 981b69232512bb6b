"""The disk-pressure guard: produce stops with KAFKA_STORAGE_ERROR before a log dir fills.

Goal: when free space under a log dir drops below `weir.log.dir.min.free.bytes`,
produce to it fails with KAFKA_STORAGE_ERROR (the broker does not crash), reads
continue, and produce resumes by itself once space returns — whether space is
freed (a topic deleted) or the floor is lowered at runtime.

Method: a real, small file system — a 48 MiB tmpfs mounted for the test (root
only; skipped with a message otherwise) — holds the broker's log dir. Raw
Produce requests fill it until the broker refuses; the exact error code, the
free space left, reads, a consumer group's commit (internal topics keep the
floor's room) and recovery are checked against the real disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

import kproto
import support
from conftest import Broker

KAFKA_STORAGE_ERROR = 56
MIB = 1 << 20
FLOOR_BYTES = 16 * MIB
BATCH_VALUE_BYTES = 256 * 1024


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def batch(value_byte: bytes) -> bytes:
    now = int(time.time() * 1000)
    return kproto.build_batch([(b"k", value_byte * BATCH_VALUE_BYTES, now)])


def free_bytes(path) -> int:
    return shutil.disk_usage(path).free


def alter_floor(broker: Broker, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    entry = ConfigEntry("weir.log.dir.min.free.bytes", value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def produce_until(conn, topic: str, wanted_error: int, attempts: int, timeout_s: float = 10.0) -> int:
    """Produces one batch at a time until the answer's error code is `wanted_error`;
    returns how many batches were written before that."""
    deadline = time.monotonic() + timeout_s
    written = 0
    for _ in range(attempts):
        response = kproto.produce(conn, topic, 0, batch(b"f"))
        if response.error_code == wanted_error:
            return written
        assert response.error_code == 0, response
        written += 1
        assert time.monotonic() < deadline, f"no error {wanted_error} after {written} batches"
    raise AssertionError(f"no error {wanted_error} after {attempts} batches")


def wait_for_produce(conn, topic: str, timeout_s: float = 10.0) -> kproto.ProducePartitionResponse:
    deadline = time.monotonic() + timeout_s
    while True:
        response = kproto.produce(conn, topic, 0, batch(b"d"))
        if response.error_code == 0:
            return response
        assert response.error_code == KAFKA_STORAGE_ERROR, response
        assert time.monotonic() < deadline, "produce did not resume"
        time.sleep(0.1)


def test_produce_stops_above_the_floor_reads_continue_and_produce_resumes(small_disk):
    broker = Broker(small_disk / "broker", {"weir.log.dir.min.free.bytes": FLOOR_BYTES,
                                            "log.segment.bytes": 4 * MIB}, shards=2)
    broker.start()
    try:
        support.create_topic(broker.bootstrap, "data", 1)
        support.create_topic(broker.bootstrap, "filler", 1)
        with broker.connect() as conn:
            assert kproto.produce(conn, "data", 0, batch(b"d")).error_code == 0
            written = produce_until(conn, "filler", KAFKA_STORAGE_ERROR, attempts=200)
            # The broker refused before the disk was full: the floor (less what one
            # check interval lets through) is still free.
            assert written >= 8, f"only {written} batches fit before the guard tripped"
            assert free_bytes(small_disk) >= FLOOR_BYTES - 4 * MIB, free_bytes(small_disk)
            assert kproto.produce(conn, "data", 0, batch(b"d")).error_code == KAFKA_STORAGE_ERROR
            # The broker's own records still fit: a consumer group commits its offset.
            committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "low-space",
                                  "enable.auto.commit": False})
            try:
                committer.commit(offsets=[TopicPartition("data", 0, 1)], asynchronous=False)
                committed = committer.committed([TopicPartition("data", 0)], timeout=30)
                assert committed[0].offset == 1, committed
            finally:
                committer.close()
            # Reads continue: every acknowledged filler batch is there.
            for offset in (0, written // 2, written - 1):
                body = kproto.encode_fetch_request(4, "filler", 0, offset, max_wait_ms=0, max_bytes=MIB)
                (fetched,) = kproto.decode_fetch_response(conn.request(kproto.FETCH, 4, body), 4)
                assert (fetched.error_code, fetched.high_watermark) == (0, written)
                assert fetched.batches()[0].base_offset == offset
            assert broker.is_running()

            # Lowering the floor at runtime lets produce resume by itself.
            alter_floor(broker, str(MIB))
            assert wait_for_produce(conn, "data").base_offset == 1
            alter_floor(broker, str(FLOOR_BYTES))
            assert produce_until(conn, "data", KAFKA_STORAGE_ERROR, attempts=5) == 0

            # Freeing space (deleting the filler topic) does as well.
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.delete_topics(["filler"])["filler"].result(timeout=30)
            assert wait_for_produce(conn, "data").base_offset == 2
        log = broker.stderr_text()
        assert "log dir is low on space" in log and "log dir has space again" in log, broker.stderr_tail()
        consumed = support.confluent_consume(broker.bootstrap, "data", 1, 3)
        assert [(offset, value[:1]) for _, offset, _, value in consumed] == [(0, b"d"), (1, b"d"), (2, b"d")]
        assert broker.stop() == 0
    finally:
        broker.kill9()
