"""`weir tune check` reports this machine's broker-relevant settings with exact fixes.

Goal: an operator runs one command and sees, for each setting that matters to a
broker (memlock, io_uring, accept queue, socket buffers, swapping, dirty pages,
transparent hugepages, CPU governor, idle states (a VM's halt polling), cores/NUMA, NIC IRQs, open files,
how the log dirs' filesystem takes appends), its value,
the recommendation and — when it needs changing — the command that changes it.

Method: run the real binary on this machine; parse every line; cross-check values
against /proc read independently here; `--fail-on-warn` must exit 1 exactly when a
line is at warn. Nothing on the machine is changed.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import WEIR_BIN, Broker

CHECKS = ["memlock", "io_uring", "net.core.somaxconn", "net.core.rmem_max", "net.core.wmem_max",
          "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "vm.swappiness", "vm.dirty_ratio",
          "transparent_hugepage", "cpu_governor", "cpu_idle", "cores_and_numa", "nic_irq_affinity",
          "open_files", "weir.log.segment.writes"]
LINE = re.compile(r"^\[\s*(ok|warn|info)\] ([a-z0-9_.]+): (.*) \(recommended: (.*)\)$")


def tune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WEIR_BIN, "tune", *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_tune_check_reports_every_setting_once_with_fixes_for_warnings():
    result = tune("check")
    assert (result.returncode, result.stderr) == (0, ""), result
    lines = result.stdout.splitlines()
    findings = {}
    index = 0
    while index < len(lines) - 1:
        match = LINE.match(lines[index])
        assert match, lines[index]
        status, name, value, _ = match.groups()
        assert name not in findings, f"{name} reported twice"
        fix = None
        if index + 1 < len(lines) and lines[index + 1].startswith("       fix: "):
            fix = lines[index + 1].removeprefix("       fix: ")
            index += 1
        assert (fix is not None) == (status == "warn"), (name, status, fix)
        findings[name] = (status, value, fix)
        index += 1
    assert list(findings) == CHECKS
    counts = {status: sum(1 for s, _, _ in findings.values() if s == status) for status in ("ok", "warn", "info")}
    assert lines[-1] == f"{len(CHECKS)} checks: {counts['ok']} ok, {counts['warn']} warn, {counts['info']} info."

    somaxconn = int(pathlib.Path("/proc/sys/net/core/somaxconn").read_text())
    assert findings["net.core.somaxconn"][1] == str(somaxconn)
    assert findings["net.core.somaxconn"][0] == ("ok" if somaxconn >= 4096 else "warn")
    swappiness = int(pathlib.Path("/proc/sys/vm/swappiness").read_text())
    assert findings["vm.swappiness"][0] == ("ok" if swappiness <= 1 else "warn")
    if swappiness > 1:
        assert findings["vm.swappiness"][2] == "sysctl -w vm.swappiness=1"

    driver = pathlib.Path("/sys/devices/system/cpu/cpuidle/current_driver")
    if driver.exists() and driver.read_text().strip() == "haltpoll":
        poll_ns = int(pathlib.Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns").read_text())
        assert findings["cpu_idle"][:2] == ("ok" if poll_ns >= 200_000 else "warn",
                                            f"haltpoll, guest_halt_poll_ns {poll_ns}")

    strict = tune("check", "--fail-on-warn")
    assert strict.stdout == result.stdout
    assert strict.returncode == (1 if counts["warn"] else 0)


def test_tune_without_an_action_is_a_usage_error():
    result = tune()
    assert result.returncode == 2 and "check" in result.stderr, result


def sysctl_snapshot() -> dict[str, str]:
    names = ["net/core/rmem_max", "net/core/wmem_max", "net/ipv4/tcp_wmem", "vm/swappiness",
             "vm/dirty_ratio", "vm/dirty_background_ratio"]
    return {name: pathlib.Path("/proc/sys", name).read_text() for name in names}


def test_tune_apply_shows_the_plan_and_changes_nothing_without_a_yes():
    before = sysctl_snapshot()
    for profile in ("throughput", "latency"):
        dry = tune("apply", "--profile", profile, "--dry-run")
        assert (dry.returncode, dry.stderr) == (0, ""), dry
        lines = dry.stdout.splitlines()
        if lines[0].startswith("Nothing to change"):
            continue
        count = int(re.match(rf"The {profile} profile changes (\d+) settings:$", lines[0]).group(1))
        assert len(lines) == count + 1, lines
        for line in lines[1:]:
            assert re.match(r"^  \S+: .+ -> .+   # (sysctl -w |echo ).+$", line), line
        if "vm.swappiness" in dry.stdout:
            swappiness = pathlib.Path("/proc/sys/vm/swappiness").read_text().strip()
            assert f"  vm.swappiness: {swappiness} -> 1   # sysctl -w vm.swappiness=1" in lines
        # Without --yes and without a terminal to ask on, nothing is applied.
        refused = tune("apply", "--profile", profile)
        assert refused.returncode == 1 and refused.stdout == dry.stdout, refused
        assert refused.stderr == ("Error: nothing was changed: stdin is not a terminal to ask on; "
                                  "pass --yes to apply without asking.\n")
    assert sysctl_snapshot() == before
    unknown = tune("apply", "--profile", "fastest")
    assert unknown.returncode == 2 and "unknown profile 'fastest' (profiles: throughput, latency)" in unknown.stderr


def segment_writes_line(log_dir) -> str:
    result = tune("check", "--log-dirs", str(log_dir))
    assert result.returncode == 0, result
    (line,) = [line for line in result.stdout.splitlines() if "] weir.log.segment.writes: " in line]
    return line


def broker_segment_appends(tmp_path, log_dir) -> tuple[str, str]:
    """The broker's own choices for `log_dir`: (segment write mode, blocks reserved ahead)."""
    broker = Broker(tmp_path / "broker", {"log.dirs": log_dir})
    broker.start()
    try:
        (line,) = [line for line in broker.stderr_text(since_last_start=True).splitlines()
                   if "segment appends" in line]
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        reserved = re.search(r"blocks_reserved_ahead=(\[\w+\])", line).group(1)
        return line.rsplit("segment_writes=", 1)[1].strip(), reserved
    finally:
        broker.stop()


def test_tune_check_names_the_segment_write_mode_the_broker_picks_for_the_same_dir(tmp_path):
    # This machine's /tmp (ext4 in CI) refuses RWF_NOWAIT buffered writes: pwrite.
    log_dir = tmp_path / "log"
    line = segment_writes_line(log_dir)
    assert f"{log_dir} does not exist yet, probed at {tmp_path}" in line, line
    mode, reserved = broker_segment_appends(tmp_path, log_dir)
    assert mode in ("Pwrite", "IoUring"), mode
    assert ("pwrite on each shard" in line) == (mode == "Pwrite"), (line, mode)
    assert ("[  ok] weir.log.segment.writes: io_uring" in line) == (mode == "IoUring"), (line, mode)
    # Segments' blocks are reserved ahead on ext4: both name it alike.
    ext4 = subprocess.run(["stat", "-f", "-c", "%t", str(tmp_path)], capture_output=True, text=True,
                          check=True).stdout.strip() == "ef53"
    assert reserved == ("[true]" if ext4 else "[false]"), reserved
    assert ("ext4: each segment's blocks are reserved ahead" in line) == ext4, line


def test_tune_check_and_the_broker_keep_io_uring_on_xfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("loop-mounting an XFS image needs root and mkfs.xfs (CI has both)")
    image, mount = tmp_path / "xfs.img", tmp_path / "xfs"
    mount.mkdir()
    with open(image, "wb") as file:
        file.truncate(320 << 20)  # sparse; XFS wants at least 300 MB
    subprocess.run(["mkfs.xfs", "-q", "-f", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        line = segment_writes_line(mount)
        assert "[  ok] weir.log.segment.writes: io_uring" in line, line
        assert "reserved ahead" not in line, line
        assert broker_segment_appends(tmp_path, mount / "log") == ("IoUring", "[false]")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
