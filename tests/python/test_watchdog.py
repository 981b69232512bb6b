"""The shard watchdog: a shard whose thread stops running is named in the log, with why.

Goal: a shard is one thread, so a write the kernel blocks (dirty-page throttling, a
stuck or frozen file system) stops every partition and connection of that shard, and
clients see only timeouts. The broker must say so within seconds: which shard, and
what its thread is doing according to the kernel; then say when it runs again. No
acknowledged record is lost.

Method: a 64 MiB ext4 image, loop-mounted (root only; skipped with a message
otherwise), holds the log dir of a one-shard broker; the broker's own work dir and
log stay on the normal disk. `fsfreeze -f` makes every write to the image block in
the kernel, so the next produce blocks the shard's segment write. The test waits for
the watchdog's report, thaws the file system, and checks the report, the recovery
line, the produce's answer and both records read back.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest

import kproto
import support
from conftest import Broker

REPORT_WAIT_S = 15.0


@pytest.fixture
def freezable_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("loop-mounting and freezing a file system needs root (CI runs as root)")
    image = tmp_path / "disk.img"
    mount = tmp_path / "freezable"
    mount.mkdir()
    with open(image, "wb") as file:
        file.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        # Thaw first: a frozen file system would block the broker's kill and the unmount.
        subprocess.run(["fsfreeze", "-u", str(mount)], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def wait_for_line(broker: Broker, words: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in broker.stderr_text(since_last_start=True).splitlines():
            if words in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no {words!r} in the broker's log within {timeout_s} s\n" + broker.stderr_tail())


def test_a_shard_blocked_in_a_write_is_reported_with_its_thread_and_recovers(tmp_path, freezable_disk):
    broker = Broker(tmp_path / "broker", {"log.dirs": freezable_disk / "log",
                                          "weir.log.dir.min.free.bytes": 1 << 20}, shards=1)
    broker.start()
    frozen = False
    try:
        support.create_topic(broker.bootstrap, "frozen", 1)
        now = int(time.time() * 1000)
        with broker.connect() as conn:
            first = kproto.produce(conn, "frozen", 0, kproto.build_batch([(b"k", b"before", now)]), acks=1)
            assert first.error_code == 0, first
        subprocess.run(["fsfreeze", "-f", str(freezable_disk)], check=True)
        frozen = True
        answers: list[kproto.ProducePartitionResponse] = []
        blocked = broker.connect(timeout_s=60.0)

        def produce_blocked() -> None:
            batch = kproto.build_batch([(b"k", b"during", now)])
            answers.append(kproto.produce(blocked, "frozen", 0, batch, acks=1, timeout_s=60.0))

        producer = threading.Thread(target=produce_blocked, daemon=True)
        producer.start()
        report = wait_for_line(broker, "shard stalled", REPORT_WAIT_S)
        assert "shard=0" in report, report
        # The kernel's view of the shard's thread: uninterruptible, in a write.
        assert "state D" in report, report
        assert "syscall pwrite" in report or "syscall write" in report, report
        assert not answers, "the produce was answered while its shard could not write"
        subprocess.run(["fsfreeze", "-u", str(freezable_disk)], check=True)
        frozen = False
        producer.join(timeout=30)
        assert answers and answers[0].error_code == 0, answers
        assert answers[0].base_offset == 1, answers
        back = wait_for_line(broker, "shard runs again", 5.0)
        assert "shard=0" in back and "stalled_ms=" in back, back
        # The append itself says where and how long it held the shard: at least the
        # 2 s of silence the watchdog reported.
        slow = wait_for_line(broker, "slow segment append", 5.0)
        assert "frozen-0" in slow, slow
        assert int(re.search(r"write_ms=(\d+)", slow).group(1)) >= 2000, slow
        with broker.connect() as conn:
            assert kproto.fetch_values(conn, "frozen", 0) == [b"before", b"during"]
        blocked.close()
    finally:
        if frozen:
            subprocess.run(["fsfreeze", "-u", str(freezable_disk)], check=False)
        broker.kill9()


def test_a_stopped_process_is_reported_as_such_not_as_a_stalled_shard(make_broker):
    broker = make_broker(shards=2)
    time.sleep(0.5)  # the ready line comes just before the main thread starts checking
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3.0)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    line = wait_for_line(broker, "the whole broker process did not run", 5.0)
    assert "silent_ms=" in line, line
    # Checked every 200 ms from then on, the shards beat again: no shard is blamed.
    time.sleep(2.5)
    log = broker.stderr_text(since_last_start=True)
    assert "shard stalled" not in log, broker.stderr_tail()
    with broker.connect() as conn:
        kproto.api_versions(conn, version=0)
