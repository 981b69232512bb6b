"""Consumer groups: real clients share, hand over and resume partitions through weir.

Goal: the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit/OffsetFetch, ListGroups, DescribeGroups, DeleteGroups) behaves as
Kafka's does for the clients people use: members of a group split a topic's
partitions with no overlap and no gap, a member that dies without leaving loses
its partitions after its session timeout, nothing is lost when processing is
committed after the fact, committed offsets (and their metadata strings)
survive a clean restart and ``kill -9``, separate groups each get every
record, cooperative-sticky rebalances are incremental, a static member that
comes back within its session timeout causes no rebalance, and the admin APIs
report members, client ids, hosts, assignments and states.

Method: every test starts its own broker with a short
``group.initial.rebalance.delay.ms`` and a low ``group.min.session.timeout.ms``
so that rebalances and session expiry take seconds. Members are
confluent-kafka consumers, either in this process (polled round robin from one
thread, so the order records were handed out is known) or, where one must be
SIGKILLed without a LeaveGroup, child processes running this file as a script
(``python3 test_groups.py member <spec>``) that print one JSON line per
rebalance callback, processed batch and commit. A group counts as settled when
the members' own views of their assignments are disjoint, cover every
partition, have not changed for a while, and the broker's raw DescribeGroups
(sent with kproto) says Stable with exactly those member ids and the same
assignments. kafka-python and kafkajs (tests/js/group.js) join groups with
their own protocol code. Record values carry their sequence number
(support.keyed_record), so every consumed record names its place in the
produce order and is checked against the producer's delivery reports.

The whole module is skipped while the broker under test does not advertise
JoinGroup in ApiVersions (checked once, against a real broker).
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import AdminClient

import conftest
import kproto
import support

HERE = pathlib.Path(__file__).resolve().parent
JS_DIR = HERE.parent / "js"

OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT = 8, 9, 10, 11, 12
LEAVE_GROUP, SYNC_GROUP, DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS, OFFSET_DELETE = 13, 14, 15, 16, 42, 47

# Fast rebalances and session expiry; clients must ask for session.timeout.ms >= the minimum.
GROUP_BROKER = {"group.initial.rebalance.delay.ms": 200, "group.min.session.timeout.ms": 1000}
SESSION_TIMEOUT_MS = 4000
HEARTBEAT_INTERVAL_MS = 500
# Beyond the session timeout, the time a rebalance may take on a slow, shared machine.
REBALANCE_SLACK_S = 12.0
SETTLE_TIMEOUT_S = 40.0
QUIET_S = 1.5


@pytest.fixture(scope="module", autouse=True)
def group_apis_advertised(tmp_path_factory):
    """Skips the whole module until the broker advertises JoinGroup; returns its ApiVersions table."""
    probe = conftest.Broker(tmp_path_factory.mktemp("groups-probe"))
    try:
        probe.start()
        with probe.connect() as conn:
            error_code, apis = kproto.api_versions(conn, version=3)
    finally:
        probe.kill9()
        if probe in conftest._live_brokers:
            conftest._live_brokers.remove(probe)
    assert error_code == kproto.NONE, f"ApiVersions error {error_code}"
    if JOIN_GROUP not in apis:
        pytest.skip("consumer groups are not advertised by this broker yet (no JoinGroup in ApiVersions)")
    return apis


# --- raw DescribeGroups (v0-v5) -------------------------------------------------

def decode_consumer_assignment(data: bytes | None) -> dict[str, list[int]]:
    """ConsumerProtocolAssignment: version, [topic, [partition]], user_data (optional)."""
    if not data:
        return {}
    r = kproto.Reader(data)
    r.int16()  # version
    out = {}
    for _ in range(r.int32()):
        topic = r.string()
        out[topic] = sorted(r.int32() for _ in range(r.int32()))
    return out


def describe_group_raw(broker: conftest.Broker, group: str) -> dict:
    """One DescribeGroups round trip at the highest version <= 5 the broker offers.

    Returns {error_code, state, protocol_type, protocol, members: [{member_id,
    group_instance_id, client_id, client_host, assignment: {topic: [partitions]}}]}."""
    with broker.connect() as conn:
        _, apis = kproto.api_versions(conn, version=3)
        assert DESCRIBE_GROUPS in apis, "DescribeGroups is not advertised"
        version = min(apis[DESCRIBE_GROUPS][1], 5)
        flexible = version >= 5
        body = kproto.Writer().array_len(1, flexible)
        body.compact_string(group) if flexible else body.string(group)
        if version >= 3:
            body.int8(0)  # include_authorized_operations
        if flexible:
            body.tagged_fields()
        correlation_id = 7
        header = kproto.Writer().int16(DESCRIBE_GROUPS).int16(version).int32(correlation_id).string("weir-tests")
        if flexible:
            header.tagged_fields()
        payload = header.getvalue() + body.getvalue()
        conn.send_raw(struct.pack(">i", len(payload)) + payload)
        r = conn.recv_response(correlation_id, flexible)

    def string():
        return r.compact_string() if flexible else r.string()

    def bytes_():
        return r.compact_bytes() if flexible else r.bytes_()

    if version >= 1:
        r.int32()  # throttle_time_ms
    groups = []
    for _ in range(r.array_len(flexible)):
        g = {"error_code": r.int16(), "group_id": string(), "state": string(), "protocol_type": string(),
             "protocol": string(), "members": []}
        for _ in range(r.array_len(flexible)):
            m = {"member_id": string()}
            m["group_instance_id"] = string() if version >= 4 else None
            m["client_id"] = string()
            m["client_host"] = string()
            bytes_()  # member_metadata
            m["assignment"] = decode_consumer_assignment(bytes_())
            if flexible:
                r.skip_tagged_fields()
            g["members"].append(m)
        if version >= 3:
            r.int32()  # authorized_operations
        if flexible:
            r.skip_tagged_fields()
        groups.append(g)
    assert [g["group_id"] for g in groups] == [group], groups
    return groups[0]


# --- group members ----------------------------------------------------------------

def member_config(bootstrap: str, group: str, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS}
    conf.update(extra)
    return conf


def generation_of(consumer: Consumer) -> tuple[int, str]:
    """(generation id, member id) as librdkafka sees them, from its serialized group metadata.

    librdkafka writes 'CGMDv2:' + int32 generation (host order) + group id NUL + member id NUL + ..."""
    data = consumer.consumer_group_metadata()
    assert isinstance(data, bytes) and data.startswith(b"CGMDv2:"), f"unexpected group metadata {data!r}"
    (generation,) = struct.unpack_from("=i", data, 7)
    _group_id, member_id, _rest = data[11:].split(b"\0", 2)
    return generation, member_id.decode()


def current_assignment(events: list[dict]) -> set[int]:
    """Replays assign/revoke/lost callbacks (full sets for eager, increments for cooperative)."""
    owned: set[int] = set()
    for ev in events:
        if ev["ev"] == "assign":
            owned |= set(ev["parts"])
        elif ev["ev"] in ("revoke", "lost"):
            owned -= set(ev["parts"])
    return owned


# A commit made while the group rebalances may be refused (cooperative members keep consuming
# meanwhile); Kafka applications keep those offsets and commit them again.
RETRIABLE_COMMIT_ERRORS = (KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS)


class Committer:
    """Commit-after-process bookkeeping for one consumer: processed but not yet committed offsets.

    commit() commits them synchronously, keeping them on a retriable refusal; revoked() commits
    what is pending for partitions that are leaving, then forgets them (whatever is still
    uncommitted then is re-delivered to the next owner). Every attempt is reported to emit()."""

    def __init__(self, consumer: Consumer, topic: str, emit) -> None:
        self.consumer, self.topic, self.emit = consumer, topic, emit
        self.pending: dict[int, int] = {}

    def processed(self, last_offsets: dict[int, int]) -> None:
        self.pending.update({p: o + 1 for p, o in last_offsets.items()})

    def commit(self, only: set[int] | None = None) -> None:
        offsets = sorted((p, o) for p, o in self.pending.items() if only is None or p in only)
        if not offsets:
            return
        try:
            result = self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets],
                                          asynchronous=False)
            failed = [tp for tp in result if tp.error is not None]
        except KafkaException as e:
            if e.args[0].code() not in RETRIABLE_COMMIT_ERRORS:
                raise
            self.emit(ev="commit", offsets=[list(x) for x in offsets], ok=False, error=str(e.args[0]))
            return
        if failed:
            assert all(tp.error.code() in RETRIABLE_COMMIT_ERRORS for tp in failed), failed
            self.emit(ev="commit", offsets=[list(x) for x in offsets], ok=False,
                      error=[[tp.partition, str(tp.error)] for tp in failed])
            return
        for p, o in offsets:
            if self.pending.get(p) == o:
                del self.pending[p]
        self.emit(ev="commit", offsets=[list(x) for x in offsets], ok=True, error=None)

    def commit_async(self) -> None:
        """Commits what is pending without waiting; committed() settles it when the result arrives.

        Several members polled by one thread must not wait on each other's commits: librdkafka
        queues a member's commit behind its own JoinGroup, and that JoinGroup only returns once
        the other members (polled by this same thread) have rejoined."""
        offsets = sorted(self.pending.items())
        if offsets:
            self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets], asynchronous=True)

    def committed(self, err, partitions) -> None:
        """on_commit callback: forgets the offsets an asynchronous commit stored."""
        offsets = [[tp.partition, tp.offset] for tp in partitions]
        failed = [tp for tp in partitions if tp.error is not None]
        if err is not None and not failed:
            failed = list(partitions)
        if failed:
            codes = [(tp.error or err).code() for tp in failed]
            assert all(c in RETRIABLE_COMMIT_ERRORS for c in codes), (err, failed)
            self.emit(ev="commit", offsets=offsets, ok=False, error=[[tp.partition, str(tp.error or err)] for tp in failed])
            return
        for tp in partitions:
            if self.pending.get(tp.partition) == tp.offset:
                del self.pending[tp.partition]
        self.emit(ev="commit", offsets=offsets, ok=True, error=None)

    def revoked(self, partitions: set[int]) -> None:
        self.commit(only=partitions)
        for p in partitions:
            if p in self.pending:
                self.emit(ev="uncommitted", partition=p, offset=self.pending.pop(p))


class InProcessMember:
    """A confluent-kafka group member polled by the test thread; commits after every batch."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, **config) -> None:
        self.name = name
        self.topic = topic
        self.events: list[dict] = []
        self.records: list[tuple[int, int, bytes | None, bytes]] = []
        conf = member_config(bootstrap, group, **{"client.id": name, **config})
        conf["on_commit"] = lambda err, partitions: self.committer.committed(err, partitions)
        self.consumer = Consumer(conf)
        self.commits: list[dict] = []
        self.committer = Committer(self.consumer, topic, lambda **ev: self.commits.append(ev))
        self.consumer.subscribe([topic], on_assign=self._callback("assign"), on_revoke=self._callback("revoke"),
                                on_lost=self._callback("lost"))
        self.closed = False

    def _callback(self, kind: str):
        def callback(consumer, partitions):
            parts = sorted(p.partition for p in partitions)
            self.events.append({"ev": kind, "parts": parts, "member": consumer.memberid(), "at": time.monotonic()})
            if kind == "revoke":
                self.committer.revoked(set(parts))
            elif kind == "lost":
                for p in parts:
                    self.committer.pending.pop(p, None)
        return callback

    def uncommitted(self) -> list[dict]:
        """Processed records whose commit never succeeded before their partition left (re-delivered)."""
        return [ev for ev in self.commits if ev["ev"] == "uncommitted"]

    @property
    def member_id(self) -> str | None:
        return self.consumer.memberid()

    def rebalance_events(self) -> int:
        return len(self.events)

    def has_joined(self) -> bool:
        return any(ev["ev"] == "assign" for ev in self.events)

    def assignment(self) -> set[int]:
        return current_assignment(self.events)

    def poll(self, timeout_s: float = 0.05, max_records: int = 1000) -> int:
        """One consume() call; processes the batch (keeps it) and commits it asynchronously
        (a revoked partition's offsets are committed synchronously in the callback)."""
        last: dict[int, int] = {}
        for msg in self.consumer.consume(num_messages=max_records, timeout=timeout_s):
            if msg.error() is not None:
                raise KafkaException(msg.error())
            self.records.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
            last[msg.partition()] = msg.offset()
        self.committer.processed(last)
        self.committer.commit_async()
        return len(last)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.close()


def poll_all(members: list[InProcessMember], rounds: int = 1, sink: list | None = None) -> None:
    """Polls every open member once per round; sink gets the new records in the order they were handed out."""
    for _ in range(rounds):
        for m in members:
            if not m.closed:
                before = len(m.records)
                m.poll()
                if sink is not None:
                    sink.extend(m.records[before:])


class MemberProcess:
    """A confluent-kafka group member in a child process (see member_main) that can be SIGKILLed."""

    def __init__(self, name: str, workdir: pathlib.Path, bootstrap: str, group: str, topic: str,
                 batch: int = 500, process_delay_s: float = 0.0, **config) -> None:
        self.name = name
        spec = {"topic": topic, "batch": batch, "process_delay_s": process_delay_s,
                "config": member_config(bootstrap, group, **{"client.id": name, **config})}
        self.stderr_path = workdir / f"{name}.stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "test_groups.py"), "member", json.dumps(spec)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
                                     cwd=HERE, preexec_fn=conftest._die_with_parent)
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line.decode(errors="replace")}
            with self._lock:
                self._events.append(ev)

    def events(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [ev for ev in self._events if kind is None or ev["ev"] == kind]

    def rebalance_events(self) -> int:
        return len([ev for ev in self.events() if ev["ev"] in ("assign", "revoke", "lost")])

    def has_joined(self) -> bool:
        return bool(self.events("assign"))

    def assignment(self) -> set[int]:
        return current_assignment(self.events())

    @property
    def member_id(self) -> str | None:
        assigns = self.events("assign")
        return assigns[-1]["member"] if assigns else None

    def records(self) -> list[tuple[int, int, int]]:
        return [tuple(r) for ev in self.events("records") for r in ev["recs"]]

    def check_alive(self) -> None:
        assert self.proc.poll() is None, f"member {self.name} exited with {self.proc.returncode}\n" \
                                         + self.stderr_path.read_text(errors="replace")[-3000:]

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM: the member stops polling, closes its consumer (LeaveGroup) and exits."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stderr.close()


def member_main(spec_json: str) -> int:
    """Child-process member: JSON lines on stdout for every callback, processed batch and commit."""
    spec = json.loads(spec_json)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def emit(**event) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    topic = spec["topic"]
    consumer = Consumer(spec["config"])
    committer = Committer(consumer, topic, emit)

    def callback(kind):
        def on_rebalance(c, partitions):
            parts = sorted(p.partition for p in partitions)
            emit(ev=kind, parts=parts, member=c.memberid())
            if kind == "revoke":
                committer.revoked(set(parts))
            elif kind == "lost":
                for p in parts:
                    committer.pending.pop(p, None)
        return on_rebalance

    consumer.subscribe([topic], on_assign=callback("assign"), on_revoke=callback("revoke"),
                       on_lost=callback("lost"))
    emit(ev="started")
    while not stop.is_set():
        recs, last = [], {}
        for msg in consumer.consume(num_messages=spec["batch"], timeout=0.2):
            if msg.error() is not None:
                emit(ev="error", error=str(msg.error()))
                continue
            recs.append([msg.partition(), msg.offset(), support.sequence_of(msg.value())])
            last[msg.partition()] = msg.offset()
        if not recs:
            continue
        time.sleep(spec["process_delay_s"])  # "processing"; it is done once the records are reported
        emit(ev="records", recs=recs)
        committer.processed(last)
        committer.commit()
    consumer.close()
    emit(ev="closed")
    return 0


# --- settling, offsets -------------------------------------------------------------

def wait_until_settled(broker: conftest.Broker, group: str, topic: str, members: list, partitions: int,
                       pump=None, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, set[int]]:
    """Waits (bounded) until the members' assignments are disjoint, cover the topic and are quiet,
    and the broker reports the group Stable with exactly these members and the same assignments.

    pump() is called every round (in-process members must poll to take part in rebalances)."""
    deadline = time.monotonic() + timeout_s
    last_signature, last_change = None, time.monotonic()
    described, mismatch = None, None
    while True:
        if pump is not None:
            pump()
        else:
            time.sleep(0.1)
        for m in members:
            if isinstance(m, MemberProcess):
                m.check_alive()
        now = time.monotonic()
        signature = tuple(m.rebalance_events() for m in members)
        if signature != last_signature:
            last_signature, last_change = signature, now
        views = {m.name: m.assignment() for m in members}
        covered = sorted(p for v in views.values() for p in v)
        if all(m.has_joined() for m in members) and covered == list(range(partitions)) \
                and now - last_change >= QUIET_S:
            described = describe_group_raw(broker, group)
            by_member = {d["member_id"]: set(d["assignment"].get(topic, [])) for d in described["members"]}
            if described["error_code"] == 0 and described["state"] == "Stable" \
                    and sorted(by_member) == sorted(m.member_id for m in members):
                broker_views = {m.name: by_member[m.member_id] for m in members}
                if broker_views == views:
                    return views
                mismatch = f"DescribeGroups assignments {broker_views} differ from the members' own"
        assert now < deadline, f"group {group} did not settle within {timeout_s} s: member views " \
                               f"{ {k: sorted(v) for k, v in views.items()} }, {mismatch or ''} " \
                               f"last DescribeGroups {described}"


def log_end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "weir-tests-watermarks"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int,
                      with_metadata: bool = False) -> list:
    """OffsetFetch through a consumer that never joins the group (-1001 = nothing committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        result = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        assert [tp.partition for tp in result] == list(range(partitions))
        errors = [(tp.partition, str(tp.error)) for tp in result if tp.error is not None]
        assert not errors, f"OffsetFetch errors {errors}"
        return [(tp.offset, tp.metadata) if with_metadata else tp.offset for tp in result]
    finally:
        consumer.close()


def wait_committed(bootstrap: str, group: str, topic: str, want: list[int], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        got = committed_offsets(bootstrap, group, topic, len(want))
        if got == want:
            return
        assert time.monotonic() < deadline, f"group {group}: committed offsets {got}, log end offsets {want}"
        time.sleep(0.3)


def produced_at(delivered: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    return {pos: seq for seq, pos in enumerate(delivered)}


# --- the tests ----------------------------------------------------------------------

def test_broker_advertises_every_classic_group_api(group_apis_advertised):
    apis = group_apis_advertised
    want_min_max = {JOIN_GROUP: 9, SYNC_GROUP: 5, HEARTBEAT: 4, LEAVE_GROUP: 5}
    for key, top in want_min_max.items():
        assert key in apis and apis[key][0] == 0 and apis[key][1] >= top, \
            f"api {key}: advertised {apis.get(key)}, contract v0-{top}"
    for key in (OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS,
                OFFSET_DELETE):
        assert key in apis, f"api {key} not advertised"


@pytest.mark.timeout_s(120)
def test_members_split_partitions_take_over_from_a_killed_member_and_lose_nothing(make_broker, tmp_path):
    partitions, total = 6, 100_000
    chunks = [40_000, 30_000, 30_000]
    broker = make_broker(GROUP_BROKER)
    topic, group = support.unique_topic("grp"), support.unique_topic("grp-g")
    support.create_topic(broker.bootstrap, topic, partitions)
    records = support.keyed_records(total, 1_000)
    delivered = support.confluent_produce(broker.bootstrap, topic, records[:chunks[0]])

    members: list[MemberProcess] = []

    def spawn(name):
        members.append(MemberProcess(name, tmp_path, broker.bootstrap, group, topic, batch=500,
                                     process_delay_s=0.01))
        return members[-1]

    try:
        first_three = [spawn(f"member-{i}") for i in range(3)]
        views = wait_until_settled(broker, group, topic, first_three, partitions)
        assert sorted(len(v) for v in views.values()) == [2, 2, 2], f"3 members on 6 partitions: {views}"

        fourth = spawn("member-3")
        views = wait_until_settled(broker, group, topic, members, partitions)
        assert sorted(len(v) for v in views.values()) == [1, 1, 2, 2], f"4 members on 6 partitions: {views}"

        # Records keep arriving while one member (one holding 2 partitions) dies without leaving.
        victim = next(m for m in members if len(views[m.name]) == 2)
        victim_partitions = views[victim.name]
        producer_errors: list[BaseException] = []
        more: list = []

        def produce_second_chunk():
            try:
                more.extend(support.confluent_produce(broker.bootstrap, topic,
                                                      records[chunks[0]:chunks[0] + chunks[1]]))
            except BaseException as e:  # reported by the test thread
                producer_errors.append(e)

        producer = threading.Thread(target=produce_second_chunk, daemon=True)
        producer.start()
        deadline = time.monotonic() + 30
        while not any(seq >= chunks[0] for ev in victim.events("records")[-3:] for _, _, seq in ev["recs"]):
            assert time.monotonic() < deadline, f"{victim.name} got no record of the second chunk in 30 s"
            victim.check_alive()
            time.sleep(0.02)
        victim.kill9()
        killed_at = time.monotonic()
        survivors = [m for m in members if m is not victim]
        views = wait_until_settled(broker, group, topic, survivors, partitions)
        took = time.monotonic() - killed_at
        assert took <= SESSION_TIMEOUT_MS / 1000 + REBALANCE_SLACK_S, \
            f"partitions of the killed member moved after {took:.1f} s"
        assert sorted(len(v) for v in views.values()) == [2, 2, 2], f"3 survivors on 6 partitions: {views}"

        producer.join(timeout=60)
        assert not producer.is_alive(), "second chunk still producing after 60 s"
        assert not producer_errors, producer_errors
        delivered += more
        delivered += support.confluent_produce(broker.bootstrap, topic, records[chunks[0] + chunks[1]:])
        assert len(delivered) == total

        ends = log_end_offsets(broker.bootstrap, topic, partitions)
        assert sum(ends) == total
        deadline = time.monotonic() + 60
        while True:
            seen = {(p, o) for m in members for p, o, _ in m.records()}
            if len(seen) >= total:
                break
            assert time.monotonic() < deadline, f"{len(seen)} of {total} records consumed in 60 s"
            for m in survivors:
                m.check_alive()
            time.sleep(0.2)
        wait_committed(broker.bootstrap, group, topic, ends)
        for m in survivors:
            assert m.stop() == 0, f"{m.name} did not close cleanly:\n" + m.stderr_path.read_text()[-3000:]
    finally:
        for m in members:
            m.cleanup()

    # Every record at least once, each where the producer was told it went.
    at = produced_at(delivered)
    consumed = [(m.name, p, o, seq) for m in members for p, o, seq in m.records()]
    wrong = [(name, p, o, seq) for name, p, o, seq in consumed if at.get((p, o)) != seq]
    assert not wrong, f"records found where the producer did not put them: {wrong[:5]}"
    counts = collections.Counter((p, o) for _, p, o, _ in consumed)
    missing = sorted(set(at) - set(counts))
    assert not missing, f"{len(missing)} records never consumed, e.g. {missing[:10]}"
    assert {at[k] for k in counts} == set(range(total))

    # Each member read each partition forward, never backwards.
    for m in members:
        by_partition = collections.defaultdict(list)
        for p, o, _ in m.records():
            by_partition[p].append(o)
        for p, offsets in by_partition.items():
            assert all(a < b for a, b in zip(offsets, offsets[1:])), f"{m.name} re-read partition {p}"

    # Commits: only the killed member may leave processed-but-uncommitted records behind, and only
    # those may be delivered twice (once to it, once to its successor).
    for m in survivors:
        assert not m.events("uncommitted"), f"{m.name} gave up partitions with processed records uncommitted: " \
                                            f"{m.events('uncommitted')[:3]}, commits: {m.events('commit')[-5:]}"
    victim_last_commit: dict[int, int] = {}
    for ev in victim.events("commit"):
        if ev["ok"]:
            for p, o in ev["offsets"]:
                victim_last_commit[p] = max(victim_last_commit.get(p, 0), o)
    victim_tail = {(p, o) for p, o, _ in victim.records() if o >= victim_last_commit.get(p, 0)}
    assert {p for p, _ in victim_tail} <= victim_partitions
    duplicated = {k: c for k, c in counts.items() if c > 1}
    unexplained = sorted(k for k, c in duplicated.items() if k not in victim_tail or c > 2)
    assert not unexplained, f"{len(unexplained)} records delivered twice outside the killed member's " \
                            f"uncommitted tail, e.g. {unexplained[:10]}"


@pytest.mark.timeout_s(120)
def test_a_new_member_resumes_exactly_at_offsets_committed_before_kill_9(make_broker):
    partitions, total = 4, 8_000
    broker = make_broker({**GROUP_BROKER, "log.flush.interval.messages": 1})
    topic, group = support.unique_topic("resume"), support.unique_topic("resume-g")
    support.create_topic(broker.bootstrap, topic, partitions)
    records = support.keyed_records(total, 400)
    at = produced_at(support.confluent_produce(broker.bootstrap, topic, records))
    ends = log_end_offsets(broker.bootstrap, topic, partitions)

    first = InProcessMember("first", broker.bootstrap, group, topic)
    try:
        wait_until_settled(broker, group, topic, [first], partitions, pump=lambda: first.consumer.consume(num_messages=1, timeout=0.05))
        # Distinct, mid-log offsets per partition, committed by the group's only member.
        want = [min(ends[p] - 1, 137 * (p + 1) + 11 * p) for p in range(partitions)]
        first.consumer.commit(offsets=[TopicPartition(topic, p, want[p]) for p in range(partitions)],
                              asynchronous=False)
    finally:
        first.close()
    assert committed_offsets(broker.bootstrap, group, topic, partitions) == want

    broker.kill9()
    broker.start()
    assert committed_offsets(broker.bootstrap, group, topic, partitions) == want

    second = InProcessMember("second", broker.bootstrap, group, topic)
    try:
        expected = total - sum(want)
        deadline = time.monotonic() + 60
        while len(second.records) < expected:
            assert time.monotonic() < deadline, f"resumed member consumed {len(second.records)} of {expected}"
            second.poll()
        poll_all([second], rounds=20)  # nothing more may come
    finally:
        second.close()

    by_partition = collections.defaultdict(list)
    for p, o, key, value in second.records:
        assert at[(p, o)] == support.sequence_of(value) and records[at[(p, o)]] == (key, value)
        by_partition[p].append(o)
    for p in range(partitions):
        assert by_partition[p] == list(range(want[p], ends[p])), \
            f"partition {p}: committed {want[p]}, resumed at {by_partition[p][:3]}..., log end {ends[p]}"

    # The resumed member's own commits (through to the log end) also survive kill -9.
    broker.kill9()
    broker.start()
    assert committed_offsets(broker.bootstrap, group, topic, partitions) == ends


@pytest.mark.timeout_s(90)
def test_two_groups_on_one_topic_each_get_every_record_once(make_broker):
    partitions, total = 4, 20_000
    broker = make_broker(GROUP_BROKER)
    topic = support.unique_topic("two-groups")
    support.create_topic(broker.bootstrap, topic, partitions)
    records = support.keyed_records(total, 500)
    delivered = support.confluent_produce(broker.bootstrap, topic, records)
    ends = log_end_offsets(broker.bootstrap, topic, partitions)
    groups = {name: [InProcessMember(f"{name}-{i}", broker.bootstrap, name, topic) for i in range(2)]
              for name in (support.unique_topic("red"), support.unique_topic("blue"))}
    everyone = [m for ms in groups.values() for m in ms]
    consumed: dict[str, list] = {name: [] for name in groups}

    def pump():
        for name, ms in groups.items():
            poll_all(ms, sink=consumed[name])

    try:
        deadline = time.monotonic() + 60
        while not all(len(c) >= total for c in consumed.values()):
            assert time.monotonic() < deadline, {name: len(c) for name, c in consumed.items()}
            pump()
        for name, ms in groups.items():
            views = wait_until_settled(broker, name, topic, ms, partitions, pump=pump)
            assert sorted(len(v) for v in views.values()) == [2, 2], views
        for _ in range(10):  # anything late still counts (and fails the exactly-once check)
            pump()
    finally:
        for m in everyone:
            m.close()
    assert not [(m.name, m.uncommitted()) for m in everyone if m.uncommitted()]
    for name in groups:
        support.assert_roundtrip(records, consumed[name], partitions, delivered)
        assert committed_offsets(broker.bootstrap, name, topic, partitions) == ends


@pytest.mark.timeout_s(120)
def test_kafka_python_and_kafkajs_groups_consume_everything_and_commit(make_broker, tmp_path):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    partitions, total = 4, 20_000
    broker = make_broker(GROUP_BROKER)
    topic = support.unique_topic("py-js")
    support.create_topic(broker.bootstrap, topic, partitions)
    records = support.keyed_records(total, 500)
    delivered = support.confluent_produce(broker.bootstrap, topic, records)
    ends = log_end_offsets(broker.bootstrap, topic, partitions)

    # kafka-python: subscribe with a group, commit after every poll.
    py_group = support.unique_topic("kafka-python-g")
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=py_group,
                             client_id="weir-tests-kafka-python", enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS, request_timeout_ms=30_000)
    consumed = []
    try:
        deadline = time.monotonic() + 60
        linger_until = None
        while linger_until is None or time.monotonic() < linger_until:
            assert time.monotonic() < deadline, f"kafka-python group consumed {len(consumed)} of {total}"
            batch = consumer.poll(timeout_ms=200, max_records=5_000)
            for tp, messages in batch.items():
                consumed.extend((tp.partition, m.offset, m.key, m.value) for m in messages)
            if batch:
                consumer.commit()
            if linger_until is None and len(consumed) >= total:
                linger_until = time.monotonic() + 1.0
        assert sorted(tp.partition for tp in consumer.assignment()) == list(range(partitions))
        assert [consumer.committed(KTopicPartition(topic, p)) for p in range(partitions)] == ends
    finally:
        consumer.close()
    support.assert_roundtrip(records, consumed, partitions, delivered)
    assert committed_offsets(broker.bootstrap, py_group, topic, partitions) == ends

    # kafkajs: consumer.run with eachMessage, autoCommit; the script reports what it saw.
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), "run `npm install` in tests/js (tests/run does)"
    js_group = support.unique_topic("kafkajs-g")
    out_path = tmp_path / "kafkajs-group.json"
    run = subprocess.run([node, str(JS_DIR / "group.js"), broker.bootstrap, topic, js_group, str(total),
                          str(out_path)], capture_output=True, timeout=90, cwd=JS_DIR)
    assert run.returncode == 0, f"kafkajs group script exited {run.returncode}:\n{run.stderr.decode()[-3000:]}" \
                                f"\n{run.stdout.decode()[-2000:]}"
    result = json.loads(out_path.read_text())
    js_consumed = [(p, o, k.encode(), v.encode()) for p, o, k, v in result["consumed"]]
    support.assert_roundtrip(records, js_consumed, partitions, delivered)
    described = result["described"]
    assert described["state"] == "Stable" and described["protocolType"] == "consumer", described
    assert [(m["clientId"], {t: sorted(ps) for t, ps in m["assignment"].items()})
            for m in described["members"]] == \
        [("weir-tests-kafkajs-group", {topic: list(range(partitions))})], described
    assert described["members"][0]["memberId"] == result["joins"][-1]["memberId"]
    assert sorted((c["partition"], c["offset"]) for c in result["committed"]) == list(enumerate(ends))
    assert committed_offsets(broker.bootstrap, js_group, topic, partitions) == ends


@pytest.mark.timeout_s(120)
def test_cooperative_sticky_rebalance_moves_only_the_partitions_that_change_owner(make_broker):
    partitions, per_phase = 6, 10_000
    broker = make_broker(GROUP_BROKER)
    topic, group = support.unique_topic("coop"), support.unique_topic("coop-g")
    support.create_topic(broker.bootstrap, topic, partitions)
    records = support.keyed_records(3 * per_phase, 600)
    delivered = support.confluent_produce(broker.bootstrap, topic, records[:per_phase])
    sticky = {"partition.assignment.strategy": "cooperative-sticky"}
    members = [InProcessMember(f"coop-{i}", broker.bootstrap, group, topic, **sticky) for i in range(2)]
    everyone = list(members)
    consumed: list = []  # in the order records were handed out, across members

    def pump():
        poll_all(everyone, sink=consumed)

    try:
        before = wait_until_settled(broker, group, topic, members, partitions, pump=pump)
        assert sorted(len(v) for v in before.values()) == [3, 3], before
        assert describe_group_raw(broker, group)["protocol"] == "cooperative-sticky"
        delivered += support.confluent_produce(broker.bootstrap, topic, records[per_phase:2 * per_phase])

        marks = {m.name: len(m.events) for m in members}
        everyone.append(InProcessMember("coop-2", broker.bootstrap, group, topic, **sticky))
        after = wait_until_settled(broker, group, topic, everyone, partitions, pump=pump)
        assert sorted(len(v) for v in after.values()) == [2, 2, 2], after
        delivered += support.confluent_produce(broker.bootstrap, topic, records[2 * per_phase:])

        moved = set()
        for m in members:
            since = m.events[marks[m.name]:]
            revoked = {p for ev in since if ev["ev"] in ("revoke", "lost") for p in ev["parts"]}
            gained = {p for ev in since if ev["ev"] == "assign" for p in ev["parts"]}
            assert not [ev for ev in since if ev["ev"] == "lost"], f"{m.name} lost partitions: {since}"
            assert not revoked & after[m.name], f"{m.name} had {sorted(revoked & after[m.name])} revoked " \
                                                f"although it keeps them: {since}"
            assert revoked == before[m.name] - after[m.name] and not gained, f"{m.name}: {since}"
            assert after[m.name] <= before[m.name], f"{m.name} is not sticky: {before[m.name]} -> {after[m.name]}"
            moved |= revoked
        newcomer = everyone[-1]
        assert moved == after[newcomer.name] and len(moved) == 2, (moved, after)
        assert not any(ev["ev"] == "revoke" and ev["parts"] for ev in newcomer.events), newcomer.events

        deadline = time.monotonic() + 60
        while len(consumed) < len(records):
            assert time.monotonic() < deadline, f"consumed {len(consumed)} of {len(records)}"
            pump()
        for _ in range(10):
            pump()
    finally:
        for m in everyone:
            m.close()
    # Exactly once, and in offset order per partition across the hand-over (one thread polls all).
    assert not [(m.name, m.uncommitted()) for m in everyone if m.uncommitted()]
    support.assert_roundtrip(records, consumed, partitions, delivered)


@pytest.mark.timeout_s(90)
def test_static_member_restarted_within_session_timeout_keeps_generation_and_partitions(make_broker):
    partitions = 4
    broker = make_broker(GROUP_BROKER)
    topic, group = support.unique_topic("static"), support.unique_topic("static-g")
    support.create_topic(broker.bootstrap, topic, partitions)
    support.confluent_produce(broker.bootstrap, topic, support.keyed_records(2_000, 100))
    static = {"session.timeout.ms": 15_000}  # long enough to restart in, short enough for a bounded test

    # b joins first (it will be the leader); a is the follower that restarts.
    b = InProcessMember("static-b", broker.bootstrap, group, topic, **{"group.instance.id": "static-b", **static})
    members = [b]
    try:
        deadline = time.monotonic() + 20
        while not b.has_joined():
            assert time.monotonic() < deadline, "static-b never got an assignment"
            b.poll()
        a = InProcessMember("static-a", broker.bootstrap, group, topic,
                            **{"group.instance.id": "static-a", **static})
        members.append(a)
        views = wait_until_settled(broker, group, topic, members, partitions, pump=lambda: poll_all(members))
        assert sorted(len(v) for v in views.values()) == [2, 2], views
        generation, a_member_id = generation_of(a.consumer)
        assert generation > 0 and a_member_id == a.member_id
        assert generation_of(b.consumer)[0] == generation
        described = describe_group_raw(broker, group)
        assert sorted((m["group_instance_id"], m["client_id"]) for m in described["members"]) == \
            [("static-a", "static-a"), ("static-b", "static-b")], described

        # A static member closes without LeaveGroup: the broker still lists it.
        a.close()
        members.remove(a)
        poll_all(members, rounds=5)
        described = describe_group_raw(broker, group)
        assert described["state"] == "Stable" and \
            sorted(m["group_instance_id"] for m in described["members"]) == ["static-a", "static-b"], described
        b_events = len(b.events)

        again = InProcessMember("static-a", broker.bootstrap, group, topic,
                                **{"group.instance.id": "static-a", **static})
        members.append(again)
        deadline = time.monotonic() + 20
        while not again.has_joined():
            assert time.monotonic() < deadline, "restarted static-a got no assignment within 20 s"
            poll_all(members)
        quiet_until = time.monotonic() + 3
        while time.monotonic() < quiet_until:
            poll_all(members)
        assert again.assignment() == views["static-a"], (again.events, views)
        assert [ev["ev"] for ev in again.events] == ["assign"], again.events
        assert b.events[b_events:] == [], f"the rejoin rebalanced the other member: {b.events[b_events:]}"
        assert generation_of(again.consumer)[0] == generation, "a static rejoin must not bump the generation"
        assert generation_of(b.consumer)[0] == generation
        described = describe_group_raw(broker, group)
        assert described["state"] == "Stable", described
        assert {m["group_instance_id"]: (m["member_id"], set(m["assignment"].get(topic, [])))
                for m in described["members"]} == \
            {"static-a": (again.member_id, views["static-a"]), "static-b": (b.member_id, views["static-b"])}
    finally:
        for m in members:
            m.close()


@pytest.mark.timeout_s(90)
def test_list_and_describe_groups_report_members_hosts_assignments_and_states(make_broker):
    from kafka.admin import KafkaAdminClient

    partitions = 4
    broker = make_broker(GROUP_BROKER)
    topic = support.unique_topic("describe")
    active, simple = support.unique_topic("active-g"), support.unique_topic("simple-g")
    support.create_topic(broker.bootstrap, topic, partitions)
    support.confluent_produce(broker.bootstrap, topic, support.keyed_records(1_000, 100))

    # A group with only committed offsets (no members ever): Empty, protocol type "".
    standalone = Consumer(member_config(broker.bootstrap, simple))
    try:
        standalone.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    finally:
        standalone.close()

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    node_ids = list(admin.list_topics(timeout=10).brokers)
    members = [InProcessMember(name, broker.bootstrap, active, topic) for name in ("client-one", "client-two")]
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        views = wait_until_settled(broker, active, topic, members, partitions, pump=lambda: poll_all(members))
        want = {m.member_id: (m.name, views[m.name]) for m in members}

        listed = admin.list_consumer_groups(request_timeout=10).result()
        assert not listed.errors, listed.errors
        states = {g.group_id: (g.is_simple_consumer_group, g.state) for g in listed.valid}
        assert states == {active: (False, ConsumerGroupState.STABLE), simple: (True, ConsumerGroupState.EMPTY)}

        described = admin.describe_consumer_groups([active], request_timeout=10)[active].result()
        assert (described.group_id, described.is_simple_consumer_group, described.state,
                described.partition_assignor) == (active, False, ConsumerGroupState.STABLE, "range")
        assert [described.coordinator.id] == node_ids
        got = {}
        for m in described.members:
            assert m.host.lstrip("/") == "127.0.0.1", f"client host {m.host!r}"
            assert {tp.topic for tp in m.assignment.topic_partitions} == {topic}
            got[m.member_id] = (m.client_id, {tp.partition for tp in m.assignment.topic_partitions})
        assert got == want

        kgroups = {g["group_id"]: g for g in kadmin.list_groups()}
        assert set(kgroups) == {active, simple}
        assert (kgroups[active]["protocol_type"], kgroups[simple]["protocol_type"]) == ("consumer", "")
        kdescribed = kadmin.describe_groups([active])[active]
        assert (kdescribed["error"], kdescribed["group_state"], kdescribed["protocol_type"],
                kdescribed["protocol_data"]) == (None, "Stable", "consumer", "range"), kdescribed
        kgot = {}
        for m in kdescribed["members"]:
            assert m["client_host"].lstrip("/") == "127.0.0.1", m
            assert m["member_metadata"]["topics"] == [topic], m
            parts = {p for a in m["member_assignment"]["assigned_partitions"] if a["topic"] == topic
                     for p in a["partitions"]}
            kgot[m["member_id"]] = (m["client_id"], parts)
        assert kgot == want

        for m in members:
            m.close()
        described = admin.describe_consumer_groups([active], request_timeout=10)[active].result()
        assert (described.state, described.members) == (ConsumerGroupState.EMPTY, []), described

        admin.delete_consumer_groups([simple], request_timeout=10)[simple].result()
        listed = admin.list_consumer_groups(request_timeout=10).result()
        assert {g.group_id: g.state for g in listed.valid} == {active: ConsumerGroupState.EMPTY}
        assert committed_offsets(broker.bootstrap, simple, topic, 1) == [-1001]  # OFFSET_INVALID: gone
    finally:
        for m in members:
            m.close()
        kadmin.close()


@pytest.mark.timeout_s(90)
def test_standalone_consumer_commits_and_fetches_offsets_that_survive_restart(make_broker):
    partitions, total = 3, 3_000
    broker = make_broker(GROUP_BROKER)
    topic, group = support.unique_topic("standalone"), support.unique_topic("standalone-g")
    support.create_topic(broker.bootstrap, topic, partitions)
    records = support.keyed_records(total, 300)
    at = produced_at(support.confluent_produce(broker.bootstrap, topic, records))
    ends = log_end_offsets(broker.bootstrap, topic, partitions)
    want = [ends[p] // (p + 2) for p in range(partitions)]

    # assign() + commit: no JoinGroup, so the commit carries generation -1 and no member id.
    consumer = Consumer(member_config(broker.bootstrap, group))
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen = collections.Counter()
        deadline = time.monotonic() + 30
        while any(seen[p] < want[p] for p in range(partitions)):
            assert time.monotonic() < deadline, f"read {dict(seen)} of {want}"
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                assert msg.error() is None, msg.error()
                seen[msg.partition()] += 1
        result = consumer.commit(offsets=[TopicPartition(topic, p, want[p]) for p in range(partitions)],
                                 asynchronous=False)
        assert [(tp.partition, tp.offset, tp.error) for tp in result] == \
            [(p, want[p], None) for p in range(partitions)]
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in got] == list(enumerate(want))
    finally:
        consumer.close()

    broker.restart()
    assert committed_offsets(broker.bootstrap, group, topic, partitions) == want

    # A new standalone consumer without explicit offsets starts at the committed ones.
    consumer = Consumer(member_config(broker.bootstrap, group))
    consumed = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        expected = total - sum(want)
        deadline = time.monotonic() + 30
        while len(consumed) < expected:
            assert time.monotonic() < deadline, f"consumed {len(consumed)} of {expected} after restart"
            for msg in consumer.consume(num_messages=1_000, timeout=0.2):
                assert msg.error() is None, msg.error()
                consumed.append((msg.partition(), msg.offset(), msg.value()))
    finally:
        consumer.close()
    for p in range(partitions):
        offsets = [o for q, o, _ in consumed if q == p]
        assert offsets == list(range(want[p], ends[p])), f"partition {p}: committed {want[p]}, got {offsets[:3]}"
    assert all(at[(p, o)] == support.sequence_of(v) for p, o, v in consumed)


@pytest.mark.timeout_s(60)
def test_offset_commit_metadata_strings_round_trip(make_broker):
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata

    partitions = 4
    broker = make_broker(GROUP_BROKER)
    topic = support.unique_topic("metadata")
    confluent_group, python_group = support.unique_topic("metadata-c"), support.unique_topic("metadata-p")
    support.create_topic(broker.bootstrap, topic, partitions)
    metadata = ["", "checkpoint=42;host=a", "ümlaut ✓ \u2603", "x" * 1000]
    offsets = [3, 0, 17, 123_456]  # offsets past the log end are stored as given

    # confluent-kafka: commit and committed() from a standalone consumer.
    consumer = Consumer(member_config(broker.bootstrap, confluent_group))
    try:
        result = consumer.commit(offsets=[TopicPartition(topic, p, offsets[p], metadata=metadata[p])
                                          for p in range(partitions)], asynchronous=False)
        assert [tp.error for tp in result] == [None] * partitions
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        assert [(tp.offset, tp.metadata or "") for tp in got] == list(zip(offsets, metadata))
    finally:
        consumer.close()

    # kafka-python's admin client: OffsetCommit with the exact metadata bytes (no terminator).
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        errors = kadmin.alter_group_offsets(python_group, {KTopicPartition(topic, p): OffsetAndMetadata(
            offsets[p], metadata[p], -1) for p in range(partitions)})
        assert {tp.partition: e.__name__ for tp, e in errors.items()} == {p: "NoError" for p in range(partitions)}
    finally:
        kadmin.close()

    broker.restart()

    # Kafka keeps no metadata as "", so an empty string may come back as None.
    assert [(o, m or "") for o, m in committed_offsets(broker.bootstrap, confluent_group, topic, partitions,
                                                        with_metadata=True)] == list(zip(offsets, metadata))
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        fetched = kadmin.list_group_offsets({python_group: None, confluent_group: None})
    finally:
        kadmin.close()
    want = {KTopicPartition(topic, p): (offsets[p], metadata[p]) for p in range(partitions)}
    assert {tp: (om.offset, om.metadata or "") for tp, om in fetched[python_group].items()} == want
    # confluent-kafka-python hands librdkafka the metadata with its C string terminator counted in
    # the length, and the broker keeps the bytes it was sent: the raw string ends in one NUL.
    assert {tp: (om.offset, (om.metadata or "").removesuffix("\0"))
            for tp, om in fetched[confluent_group].items()} == want


if __name__ == "__main__":
    # `python3 test_groups.py member <spec>`: a child-process group member (MemberProcess).
    if len(sys.argv) == 3 and sys.argv[1] == "member":
        sys.exit(member_main(sys.argv[2]))
    sys.exit(f"usage: {sys.argv[0]} member <json spec>")
