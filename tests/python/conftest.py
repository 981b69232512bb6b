"""Shared fixtures for the whole-system tests: a real `weir broker` process per test.

Goal: every test talks to a freshly started broker binary over TCP, exactly as
a user would, and never leaves a process behind — even when the test fails,
times out, or pytest itself is killed.

Method: ``Broker`` starts ``weir broker`` with ``log.dirs`` in the test's tmp
directory and a free loopback port, sends stderr to ``broker.stderr.log``
(its tail is printed when a test fails), and waits (bounded) for the
``weir broker ready`` stdout line or, as a fallback, for an ApiVersions answer
on the port. Children get PR_SET_PDEATHSIG=SIGKILL so that they die with the
test process. Each test runs under a SIGALRM deadline (``@pytest.mark.timeout_s``).
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

import kproto

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
WEIR_BIN = os.environ.get("WEIR_BIN", str(REPO_ROOT / "target" / "release" / "weir"))
READY_LINE = "weir broker ready"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
DEFAULT_TEST_TIMEOUT_S = 150
STDERR_TAIL_LINES = 60

_live_brokers: list["Broker"] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the broker gets SIGKILL when the
    # pytest process dies, so no broker outlives a killed or crashed test run.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class BrokerError(AssertionError):
    pass


class Broker:
    """One `weir broker` process with its own data directory and port.

    restart() reuses both, so tests can check what survives a stop or a crash."""

    def __init__(self, workdir: pathlib.Path, overrides: dict[str, object] | None = None,
                 shards: int | None = None) -> None:
        self.workdir = pathlib.Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workdir / "broker.stderr.log"
        self.stdout_path = self.workdir / "broker.stdout.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.overrides = dict(overrides or {})
        self.shards = shards
        # Set by Cluster: this node's CONTROLLER listener port.
        self.controller_port: int | None = None
        # Words before the command (e.g. `ip netns exec <ns>`).
        self.prefix: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._stderr_offset = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        listeners = f"PLAINTEXT://{self.host}:{self.port}"
        if self.controller_port is not None:
            listeners += f",CONTROLLER://{self.host}:{self.controller_port}"
        cmd = [WEIR_BIN, "broker",
               "--override", f"log.dirs={self.data_dir}",
               "--override", f"listeners={listeners}"]
        for key, value in self.overrides.items():
            if isinstance(value, bool):
                value = str(value).lower()
            cmd += ["--override", f"{key}={value}"]
        if self.shards is not None:
            cmd += ["--shards", str(self.shards)]
        return self.prefix + cmd

    def start(self, timeout_s: float = START_TIMEOUT_S) -> "Broker":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        if not os.access(WEIR_BIN, os.X_OK):
            raise BrokerError(f"weir binary not found at {WEIR_BIN} (build it or set WEIR_BIN)")
        self.starts += 1
        self._stderr_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            header = f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode()
            err.write(header)
            out.write(header)
            err.flush()
            out.flush()
            self._stdout_offset = out.tell()
            self._stderr_offset = err.tell()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         preexec_fn=_die_with_parent, cwd=self.workdir)
        _live_brokers.append(self)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"broker exited with {self.proc.returncode} during start-up\n"
                                  + self.stderr_tail())
            if READY_LINE in self.stdout_path.read_text(errors="replace")[self._stdout_offset:]:
                return
            if self._answers_api_versions():
                return
            time.sleep(0.1)
        self.kill9()
        raise BrokerError(f"broker not ready within {timeout_s} s\n" + self.stderr_tail())

    def _answers_api_versions(self) -> bool:
        try:
            with kproto.Connection(self.host, self.port, timeout_s=2.0) as conn:
                error_code, apis = kproto.api_versions(conn, version=0)
                return error_code == 0 and kproto.PRODUCE in apis
        except (OSError, TimeoutError, kproto.ConnectionClosed, kproto.DecodeError):
            return False

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait for a clean exit; returns the exit code (kills on timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise BrokerError(f"broker did not exit within {timeout_s} s of SIGTERM\n" + self.stderr_tail())

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> "Broker":
        if self.is_running():
            code = self.stop()
            if code != 0:
                raise BrokerError(f"broker exited with {code} on SIGTERM\n" + self.stderr_tail())
        return self.start(timeout_s)

    def stderr_text(self, since_last_start: bool = False) -> str:
        if not self.stderr_path.exists():
            return ""
        data = self.stderr_path.read_bytes()
        if since_last_start:
            data = data[self._stderr_offset:]
        return data.decode(errors="replace")

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        tail = self.stderr_text().splitlines()[-lines:]
        return f"--- broker stderr tail ({self.stderr_path}) ---\n" + "\n".join(tail)

    def partition_dir(self, topic: str, partition: int) -> pathlib.Path:
        return self.data_dir / f"{topic}-{partition}"

    def segment_files(self, topic: str, partition: int) -> list[pathlib.Path]:
        return sorted(self.partition_dir(topic, partition).glob("*.log"))

    def connect(self, timeout_s: float = 10.0) -> kproto.Connection:
        return kproto.Connection(self.host, self.port, timeout_s)


@pytest.fixture
def make_broker(tmp_path):
    """Factory: make_broker(overrides={...}, start=True) -> Broker. All are killed at teardown."""
    brokers: list[Broker] = []

    def factory(overrides: dict[str, object] | None = None, start: bool = True,
                shards: int | None = None) -> Broker:
        broker = Broker(tmp_path / f"broker{len(brokers)}", overrides, shards)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield factory
    for broker in brokers:
        broker.kill9()
        if broker in _live_brokers:
            _live_brokers.remove(broker)


class Cluster:
    """N `weir broker` processes forming one cluster (combined mode: each is a broker
    and a controller quorum voter), on loopback, each with its own ports and data dir."""

    def __init__(self, workdir: pathlib.Path, size: int, overrides: dict[str, object] | None = None,
                 shards: int | None = 1) -> None:
        self.brokers: list[Broker] = []
        for node in range(size):
            broker = Broker(workdir / f"node{node}", None, shards)
            broker.controller_port = free_port()
            self.brokers.append(broker)
        voters = ",".join(f"{node}@127.0.0.1:{b.controller_port}" for node, b in enumerate(self.brokers))
        for node, broker in enumerate(self.brokers):
            # The quorum's log apart from the partition data (Kafka's metadata.log.dir),
            # so tests can wipe a node's data and keep it a sound voter.
            # Unpinned shards: the nodes share this machine's cores instead of each
            # pinning its shard 0 to the first one.
            broker.overrides = {"node.id": node, "controller.quorum.voters": voters,
                                "metadata.log.dir": broker.workdir / "metadata",
                                "weir.shard.cores": "none",
                                **(overrides or {})}

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def start(self) -> "Cluster":
        # Every node starts at once: the quorum needs a majority before any is useful.
        procs = []
        for broker in self.brokers:
            broker.starts += 1
            with open(broker.stderr_path, "ab") as err, open(broker.stdout_path, "ab") as out:
                broker._stdout_offset = out.tell()
                broker._stderr_offset = err.tell()
                broker.proc = subprocess.Popen(broker.command(), stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=err, preexec_fn=_die_with_parent, cwd=broker.workdir)
            _live_brokers.append(broker)
            procs.append(broker)
        for broker in procs:
            broker._wait_ready(START_TIMEOUT_S)
        return self

    def kill_all(self) -> None:
        for broker in self.brokers:
            broker.kill9()
            if broker in _live_brokers:
                _live_brokers.remove(broker)


@pytest.fixture
def make_cluster(tmp_path):
    """Factory: make_cluster(size=3, overrides={...}) -> a started Cluster; killed at teardown."""
    clusters: list[Cluster] = []

    def factory(size: int = 3, overrides: dict[str, object] | None = None,
                shards: int | None = 1) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(clusters)}", size, overrides, shards)
        clusters.append(cluster)
        return cluster.start()

    yield factory
    for cluster in clusters:
        cluster.kill_all()


@pytest.fixture
def broker(make_broker) -> Broker:
    """A broker with default settings, started."""
    return make_broker()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        # Attach the broker log to the failure report as its own section.
        for broker in _live_brokers:
            report.sections.append((f"broker stderr {broker.stderr_path}", broker.stderr_tail()))


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def per_test_deadline(request):
    """Bounds every test: SIGALRM raises DeadlineExceeded in the test's main thread."""
    marker = request.node.get_closest_marker("timeout_s")
    seconds = int(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT_S
    if os.environ.get("CI"):
        seconds = int(seconds * 1.5)  # CI machines are shared and slower

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test exceeded its {seconds} s deadline")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def pytest_sessionfinish(session, exitstatus):
    for broker in list(_live_brokers):
        broker.kill9()
