"""Fetch sends record bytes from the segment files with sendfile, never through a buffer.

Goal: with ``weir.fetch.zero.copy`` (the default) consumers get exactly the records
produced while the broker's own read counters show the bytes leaving by ``sendfile``;
with it off the same fetch reads the bytes into memory; and a consumer too slow to
empty its socket still gets whole, correct responses.

Method: Linux counts ``sendfile`` in ``/proc/PID/io`` (``rchar``/``wchar`` grow by the
bytes moved, ``syscr``/``syscw`` by one per call), while weir's io_uring reads and
``send`` calls are not counted there. So: 300,000 records produced by kcat, read back
by kcat, compared line for line; the broker's ``rchar`` delta must cover the log's
bytes in a few hundred calls at most, and stay near zero with zero copy off. For the
slow consumer a raw Fetch for 8 MiB is sent on a socket with a 16 KiB receive buffer
that is not read for a second, to a broker whose sockets have a fixed 128 KiB send
buffer (``socket.send.buffer.bytes``: with the kernel's autotuning, and what it learned
of loopback from earlier connections, the whole response could fit and the socket
never fill), so its sendfile hits a full socket and falls back to waiting writes; the
response is then read and every batch checked (CRC-32C, contiguous offsets), and the
broker's shutdown line reports the copied bytes. ``ss`` shows that both socket buffer
keys reach the broker's connections.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest

import kproto
import support

RECORDS = 300_000


def read_io(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/io") as f:
        return {key: int(value) for key, value in (line.split(": ") for line in f)}


def produce_lines(broker, topic: str, lines: list[bytes]) -> None:
    subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-X", "linger.ms=5"],
        input=b"\n".join(lines) + b"\n", check=True, timeout=60,
    )


def consume_lines(broker, topic: str) -> list[bytes]:
    result = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
        capture_output=True, check=True, timeout=60,
    )
    return result.stdout.split(b"\n")[:-1]


def log_bytes(broker, topic: str) -> int:
    return sum(path.stat().st_size for path in broker.segment_files(topic, 0))


def lines_of(count: int) -> list[bytes]:
    return [b"record-%07d-%s" % (index, b"z" * 80) for index in range(count)]


@pytest.mark.parametrize("zero_copy", [True, False])
def test_fetch_bytes_leave_by_sendfile_only_with_zero_copy(make_broker, zero_copy):
    broker = make_broker({"weir.fetch.zero.copy": str(zero_copy).lower()})
    topic = support.unique_topic("zero-copy")
    lines = lines_of(RECORDS)
    produce_lines(broker, topic, lines)
    stored = log_bytes(broker, topic)
    assert stored > RECORDS * 90, stored

    before = read_io(broker.proc.pid)
    consumed = consume_lines(broker, topic)
    after = read_io(broker.proc.pid)

    assert consumed == lines, "records come back exactly, in order"
    moved = after["rchar"] - before["rchar"]
    calls = after["syscr"] - before["syscr"]
    if zero_copy:
        # Every record byte went through sendfile: rchar covers the log (a fetch may
        # also resend a batch a previous response cut), in large calls.
        assert moved >= stored * 0.98, (moved, stored)
        assert after["wchar"] - before["wchar"] >= stored * 0.98
        assert calls <= 2_000, f"{calls} read calls for {stored} bytes"
    else:
        assert moved < stored * 0.02, f"copy mode moved {moved} bytes through read/sendfile"


def test_a_consumer_slower_than_its_socket_gets_whole_correct_responses(make_broker):
    broker = make_broker({"socket.send.buffer.bytes": 128 << 10})
    topic = support.unique_topic("slow-reader")
    lines = [b"slow-%07d-%s" % (index, b"q" * 200) for index in range(40_000)]
    produce_lines(broker, topic, lines)
    stored = log_bytes(broker, topic)
    assert stored > 8 << 20

    host, port = broker.bootstrap.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    sock.connect((host, int(port)))
    conn = kproto.Connection.__new__(kproto.Connection)
    conn.sock, conn.timeout_s, conn.next_correlation_id = sock, 30.0, 1
    with conn:
        max_bytes = 8 << 20
        body = kproto.encode_fetch_request(4, topic, 0, 0, 100, min_bytes=1, max_bytes=max_bytes)
        correlation_id = conn.send(1, 4, body)
        time.sleep(1.0)  # the broker fills the socket and must wait for room
        (partition,) = kproto.decode_fetch_response(
            conn.recv_response(correlation_id, False, timeout_s=30), 4)
    assert partition.error_code == 0
    batches, consumed = kproto.parse_batches(partition.records)
    assert consumed == len(partition.records), "whole batches only"
    assert max_bytes / 2 < len(partition.records) <= max_bytes
    next_offset = 0
    for batch in batches:
        assert batch.crc_ok()
        assert batch.base_offset == next_offset
        next_offset = batch.last_offset + 1
    values = [record.value for batch in batches for record in batch.records()]
    assert values == lines[: len(values)]

    broker.stop()
    copied = [int(value) for value in re.findall(r"copied_bytes\S*?=\S*?(\d+)",
                                                 broker.stderr_text())]
    assert sum(copied) > 0, "the full socket was met by waiting, copied writes"


def test_socket_buffer_keys_set_the_connections_buffers(make_broker):
    broker = make_broker({"socket.send.buffer.bytes": 96 << 10,
                          "socket.receive.buffer.bytes": 80 << 10})
    with broker.connect() as conn:
        assert kproto.decode_api_versions_response(
            conn.request(kproto.API_VERSIONS, 3, kproto.encode_api_versions_request(3)), 3)[0] == 0
        client_port = conn.sock.getsockname()[1]
        # The broker's side of this connection: local port = the broker's, peer = ours.
        shown = subprocess.run(
            ["ss", "-tmnH", "state", "established", f"( sport = :{broker.port} and dport = :{client_port} )"],
            capture_output=True, text=True, check=True).stdout
    # Linux doubles what SO_SNDBUF / SO_RCVBUF ask for (bookkeeping room).
    assert f"tb{2 * (96 << 10)}" in shown and f"rb{2 * (80 << 10)}" in shown, shown
