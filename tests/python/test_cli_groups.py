"""`weir groups` and `weir dump-log` behave like kafka-consumer-groups.sh and kafka-dump-log.sh.

Goal: an operator who knows Kafka's tools gets the same tables, numbers and
messages from weir's: exact lag per partition (0 after consuming everything, 1
after one more record), members, state and coordinator, group lists with and
without states, every ``--reset-offsets`` scenario planned with ``--dry-run``
(nothing committed) and applied with ``--execute`` (committed exactly as
printed), the refusal to reset a group with active members, deletion of empty
and non-empty groups and of single partitions' offsets, and one-sentence
errors with exit code 1 (2 for usage mistakes). For segment files: batch and
record lines, index and time index entries and producer snapshots printed as
DumpLogSegments prints them, and damaged copies (a flipped byte, a torn tail,
an impossible batch length, a broken record) reported with their position.

Method: each test starts a broker (fast rebalances), drives real
confluent-kafka consumers in a group (subscribe, consume a known count,
commit synchronously; close() leaves the group at once) and runs the real
``weir`` binary as a subprocess. Expected tables are built here with Kafka's
format strings (``%-Ns`` columns, widths from the longest value, at least 15)
and compared byte for byte; committed offsets are checked independently
through confluent-kafka's ``committed()``. For dump-log the expected batch
lines are computed from the segment bytes with an independent header parser
(struct), and records are produced with known keys, values, headers and
timestamps, one uncompressed batch and one gzip batch from an idempotent
producer; the broker is stopped cleanly before files are read. The
``--offsets-decoder`` JSON is parsed back and compared field by field with
what the group did (its commit, members and assignment).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import conftest
import support

# Fast rebalances; clients may ask for short sessions.
GROUP_BROKER = {"group.initial.rebalance.delay.ms": 200, "group.min.session.timeout.ms": 1000}
TOOL_TIMEOUT_S = 60
HOST = "/127.0.0.1"
T0 = 1_700_000_000_000


def weir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([conftest.WEIR_BIN, *args], capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL)


def groups(broker: conftest.Broker, *args: str) -> subprocess.CompletedProcess:
    return weir("groups", "--bootstrap-server", broker.bootstrap, *args)


def pad(value, width: int) -> str:
    return f"{value!s:<{width}}"


def offsets_table(rows: list[tuple]) -> str:
    """Kafka's printOffsets: rows are (group, topic, partition, current, end, lag, consumer, host, client)."""
    header = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
              "CONSUMER-ID", "HOST", "CLIENT-ID")
    widths = [max([15] + [len(str(r[i])) for r in rows]) for i in (0, 1, 6, 7)]
    out = ""
    for r in [header] + rows:
        out += "\n" + " ".join([pad(r[0], widths[0]), pad(r[1], widths[1]), pad(r[2], 10), pad(r[3], 15),
                                pad(r[4], 15), pad(r[5], 15), pad(r[6], widths[2]), pad(r[7], widths[3]),
                                str(r[8])])
    return out + "\n"


def reset_table(rows: list[tuple]) -> str:
    """Kafka's printOffsetsToReset: rows are (group, topic, partition, new offset)."""
    out = ""
    for r in [("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET")] + rows:
        out += "\n" + " ".join([pad(r[0], 30), pad(r[1], 30), pad(r[2], 10), pad(r[3], 15)])
    return out + "\n"


def produce(bootstrap: str, topic: str, records: list[tuple], config: dict | None = None) -> None:
    """records: (partition, key, value, timestamp_ms[, headers]); one flush at the end."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 200, "acks": "all"}
    conf.update(config or {})
    producer = Producer(conf)
    errors = []
    for record in records:
        partition, key, value, timestamp = record[:4]
        headers = record[4] if len(record) > 4 else None
        producer.produce(topic, key=key, value=value, partition=partition, timestamp=timestamp,
                         headers=headers, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0, "records still undelivered"
    assert not errors, errors


class Member:
    """A confluent-kafka group member that consumes a known count and commits it synchronously."""

    def __init__(self, broker: conftest.Broker, group: str, topic: str, client_id: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                                  "client.id": client_id, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                                  "heartbeat.interval.ms": 500})
        self.consumer.subscribe([topic])
        self.closed = False

    def consume_and_commit(self, count: int, timeout_s: float = 30.0) -> None:
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            assert time.monotonic() < deadline, f"consumed {seen} of {count}"
            for msg in self.consumer.consume(num_messages=100, timeout=0.2):
                assert msg.error() is None, msg.error()
                seen += 1
        assert seen == count
        self.consumer.commit(asynchronous=False)

    @property
    def member_id(self) -> str:
        return self.consumer.memberid()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.close()


def committed(broker: conftest.Broker, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offsets through confluent-kafka (OffsetFetch); -1001 = none."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        result = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return [tp.offset for tp in result]
    finally:
        consumer.close()


def wait_for_state(broker: conftest.Broker, group: str, state: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        run = groups(broker, "--describe", "--group", group, "--state")
        if run.returncode == 0 and f" {state} " in run.stdout:
            return
        assert time.monotonic() < deadline, f"group {group} never reached {state}: {run.stdout}{run.stderr}"
        time.sleep(0.2)


@pytest.fixture
def group_broker(make_broker):
    return make_broker(GROUP_BROKER)


# --- weir groups --------------------------------------------------------------------

@pytest.mark.timeout_s(120)
def test_describe_shows_exact_lag_members_and_state_and_lag_one_after_one_more_record(group_broker):
    broker = group_broker
    topic, group = support.unique_topic("lag"), "lag-app"
    support.create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [(i % 2, f"k{i}".encode(), f"v{i}".encode(), T0 + i) for i in range(6)])
    member = Member(broker, group, topic, "cli-lag")
    try:
        member.consume_and_commit(6)
        member_id = member.member_id

        run = groups(broker, "--describe", "--group", group)
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""
        assert run.stdout == offsets_table([
            (group, topic, 0, 3, 3, 0, member_id, HOST, "cli-lag"),
            (group, topic, 1, 3, 3, 0, member_id, HOST, "cli-lag"),
        ])

        produce(broker.bootstrap, topic, [(0, b"k6", b"v6", T0 + 6)])
        run = groups(broker, "--describe", "--group", group, "--offsets")
        assert run.stdout == offsets_table([
            (group, topic, 0, 3, 4, 1, member_id, HOST, "cli-lag"),
            (group, topic, 1, 3, 3, 0, member_id, HOST, "cli-lag"),
        ])

        run = groups(broker, "--describe", "--group", group, "--members")
        consumer_width = max(15, len(member_id))
        head = f"{pad('GROUP', 15)} {pad('CONSUMER-ID', consumer_width)} {pad('HOST', 15)} {pad('CLIENT-ID', 15)} {pad('#PARTITIONS', 15)} "
        row = f"{pad(group, 15)} {pad(member_id, consumer_width)} {pad(HOST, 15)} {pad('cli-lag', 15)} {pad(2, 15)} "
        assert run.stdout == f"\n{head}\n{row}\n"
        run = groups(broker, "--describe", "--group", group, "--members", "--verbose")
        assert run.stdout == f"\n{head}ASSIGNMENT\n{row}{topic}(0,1)\n"

        run = groups(broker, "--describe", "--group", group, "--state")
        coordinator = f"127.0.0.1:{broker.port}  (0)"
        width = max(25, len(coordinator))
        assert run.stdout == (
            f"\n{pad('GROUP', width)} {pad('COORDINATOR (ID)', 25)} {pad('ASSIGNMENT-STRATEGY', 20)} {pad('STATE', 15)} #MEMBERS"
            f"\n{pad(group, width)} {pad(coordinator, 25)} {pad('range', 20)} {pad('Stable', 15)} 1\n")

        assert group in groups(broker, "--list").stdout.splitlines()
        run = groups(broker, "--list", "--state", "stable")
        assert run.stdout.splitlines()[1:] == [f"{pad(group, 25)} {pad('Stable', 20)}"]
        assert run.stdout.splitlines()[0] == f"{pad('GROUP', 25)} {pad('STATE', 20)}"
        assert groups(broker, "--list", "--state", "Empty").stdout.splitlines()[1:] == []
    finally:
        member.close()

    # Without members the committed offsets stay, owned by nobody.
    run = groups(broker, "--describe", "--group", group)
    assert run.returncode == 0
    assert run.stdout == offsets_table([
        (group, topic, 0, 3, 4, 1, "-", "-", "-"),
        (group, topic, 1, 3, 3, 0, "-", "-", "-"),
    ])
    assert run.stderr == f"\nConsumer group '{group}' has no active members.\n"
    run = groups(broker, "--describe", "--all-groups", "--state")
    assert f"\n{pad(group, 25)} {pad(f'127.0.0.1:{broker.port}  (0)', 25)} {pad('', 20)} {pad('Empty', 15)} 0\n" in run.stdout


@pytest.mark.timeout_s(120)
def test_reset_is_refused_while_members_are_active_and_commits_nothing(group_broker):
    broker = group_broker
    topic, group = support.unique_topic("busy"), "busy-app"
    support.create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [(0, None, b"x%d" % i, T0 + i) for i in range(4)])
    member = Member(broker, group, topic, "cli-busy")
    try:
        member.consume_and_commit(4)
        for mode in (["--to-earliest", "--execute"], ["--to-offset", "1", "--dry-run"]):
            run = groups(broker, "--reset-offsets", "--group", group, "--topic", topic, *mode)
            assert run.returncode == 1
            assert run.stdout == ""
            assert run.stderr == (f"\nError: Assignments can only be reset if the group '{group}' is inactive, "
                                  "but the current state is Stable.\n")
        assert committed(broker, group, topic, 1) == [4]
    finally:
        member.close()


@pytest.mark.timeout_s(150)
def test_every_reset_scenario_plans_with_dry_run_and_commits_with_execute(group_broker, tmp_path):
    broker = group_broker
    topic, group = support.unique_topic("reset"), "reset-app"
    support.create_topic(broker.bootstrap, topic, 2)
    now_ms = int(time.time() * 1000)
    # Offsets 0..4 of each partition: 5, 4, 3, 2 and 1 hours old.
    hours = [now_ms - (5 - i) * 3_600_000 for i in range(5)]
    produce(broker.bootstrap, topic, [(p, None, b"r%d" % i, hours[i]) for i in range(5) for p in (0, 1)])
    member = Member(broker, group, topic, "cli-reset")
    member.consume_and_commit(10)
    member.close()
    wait_for_state(broker, group, "Empty")
    assert committed(broker, group, topic, 2) == [5, 5]

    def check(args: list[str], want: list[int], scope=("--all-topics",), stderr: str | None = ""):
        rows = [(group, topic, p, o) for p, o in enumerate(want) if o is not None]
        before = committed(broker, group, topic, 2)
        run = groups(broker, "--reset-offsets", "--group", group, *scope, *args, "--dry-run")
        assert (run.returncode, run.stdout) == (0, reset_table(rows)), run.stderr
        if stderr is not None:
            assert run.stderr == stderr
        assert committed(broker, group, topic, 2) == before, "a dry run committed offsets"
        run = groups(broker, "--reset-offsets", "--group", group, *scope, *args, "--execute")
        assert (run.returncode, run.stdout) == (0, reset_table(rows)), run.stderr
        after = [o if o is not None else b for o, b in zip(want, before)]
        assert committed(broker, group, topic, 2) == after
        described = groups(broker, "--describe", "--group", group)
        assert described.stdout == offsets_table([
            (group, topic, p, o, 5, 5 - o, "-", "-", "-") for p, o in enumerate(after)])

    check(["--to-earliest"], [0, 0])
    check(["--to-latest"], [5, 5], scope=("--topic", topic))
    check(["--to-offset", "2"], [2, 2])
    check(["--to-offset", "100"], [5, 5], stderr=None)
    run = groups(broker, "--reset-offsets", "--group", group, "--all-topics", "--to-offset", "100", "--dry-run")
    assert run.stderr.splitlines() == [
        f"WARN New offset (100) is higher than latest offset for topic partition {topic}-{p}. Value will be set to 5"
        for p in (0, 1)]
    check(["--shift-by", "-2"], [3, None], scope=("--topic", f"{topic}:0"))
    check(["--shift-by", "-10"], [0, 0], stderr=None)
    check(["--shift-by", "4"], [4, 4])
    check(["--to-current"], [4, 4])
    # The first record at or after 4.5 hours ago is offset 1 (4 hours old).
    target = datetime.datetime.fromtimestamp((now_ms - 16_200_000) / 1000, tz=datetime.timezone.utc)
    check(["--to-datetime", target.strftime("%Y-%m-%dT%H:%M:%S.") + f"{target.microsecond // 1000:03d}"], [1, 1])
    plus_two = target.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    check(["--to-datetime", plus_two.strftime("%Y-%m-%dT%H:%M:%S.") + f"{plus_two.microsecond // 1000:03d}+02:00"],
          [1, 1])
    check(["--by-duration", "PT2H30M"], [3, 3])
    # Nothing is younger than 10 minutes: Kafka falls back to the log end and says so.
    run = groups(broker, "--reset-offsets", "--group", group, "--all-topics", "--by-duration", "PT10M", "--dry-run")
    assert run.stdout == "".join(
        f"\nWarn: Partition {p} from topic {topic} is empty. Falling back to latest known offset.\n" for p in (0, 1)
    ) + reset_table([(group, topic, 0, 5), (group, topic, 1, 5)])

    run = groups(broker, "--reset-offsets", "--group", group, "--all-topics", "--to-offset", "2", "--export",
                 "--dry-run")
    assert run.stdout == f"{topic},0,2\n{topic},1,2\n\n"
    plan = tmp_path / "plan.csv"
    plan.write_text(f"{topic},0,1\n{topic},1,3\n")
    check(["--from-file", str(plan)], [1, 3], scope=())

    # A reset without --dry-run or --execute only plans, and warns that it did nothing.
    run = groups(broker, "--reset-offsets", "--group", group, "--all-topics", "--to-earliest")
    assert run.returncode == 0 and run.stdout == reset_table([(group, topic, 0, 0), (group, topic, 1, 0)])
    assert run.stderr.startswith("WARN: No action will be performed as the --execute option is missing.")
    assert committed(broker, group, topic, 2) == [1, 3]


@pytest.mark.timeout_s(120)
def test_delete_refuses_a_group_with_members_and_deletes_an_empty_one(group_broker):
    broker = group_broker
    topic, group = support.unique_topic("del"), "del-app"
    support.create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [(p, None, b"d", T0) for p in (0, 1)])
    member = Member(broker, group, topic, "cli-del")
    try:
        member.consume_and_commit(2)
        run = groups(broker, "--delete", "--group", group)
        assert run.returncode == 1
        assert run.stdout == ""
        assert run.stderr == ("\nError: Deletion of some consumer groups failed:\n"
                              f"* Group '{group}' could not be deleted due to: NON_EMPTY_GROUP (The group is not empty.)\n")
        # Offsets of a subscribed topic cannot be deleted either.
        run = groups(broker, "--delete-offsets", "--group", group, "--topic", f"{topic}:1")
        assert run.returncode == 1
        assert "GROUP_SUBSCRIBED_TO_TOPIC" in run.stdout
    finally:
        member.close()
    wait_for_state(broker, group, "Empty")

    run = groups(broker, "--delete-offsets", "--group", group, "--topic", f"{topic}:1")
    assert run.returncode == 0, run.stderr
    assert run.stdout == (f"Request succeed for deleting offsets with topic {topic}:1 group {group}\n"
                          f"\n{pad('TOPIC', 30)} {pad('PARTITION', 15)} {pad('STATUS', 15)}"
                          f"\n{pad(topic, 30)} {pad(1, 15)} {pad('Successful', 15)}\n")
    assert committed(broker, group, topic, 2) == [1, -1001]

    run = groups(broker, "--delete", "--group", group)
    assert (run.returncode, run.stdout, run.stderr) == (
        0, f"Deletion of requested consumer groups ('{group}') was successful.\n", "")
    assert group not in groups(broker, "--list").stdout.splitlines()
    run = groups(broker, "--describe", "--group", group)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"\nError: Consumer group '{group}' does not exist.\n"
    assert committed(broker, group, topic, 2) == [-1001, -1001]


def test_errors_are_one_sentence_with_exit_codes_1_and_2(group_broker):
    broker = group_broker
    run = groups(broker, "--describe", "--group", "never-existed")
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == "\nError: Consumer group 'never-existed' does not exist.\n"

    port = conftest.free_port()
    run = weir("groups", "--bootstrap-server", f"127.0.0.1:{port}", "--list")
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith(f"Error: cannot connect to 127.0.0.1:{port}")

    run = groups(broker, "--describe")
    assert run.returncode == 2
    assert run.stderr.startswith("Error: Option --describe takes one of these options: --group, --all-groups")
    run = groups(broker, "--list", "--describe")
    assert run.returncode == 2 and "exactly one action" in run.stderr
    run = groups(broker, "--list", "--state", "sleepy")
    assert run.returncode == 2 and "Invalid state list 'sleepy'" in run.stderr
    run = groups(broker, "--reset-offsets", "--group", "g", "--all-topics", "--to-datetime", "yesterday")
    assert run.returncode == 2 and "does not contain a 'T'" in run.stderr
    assert "Examples:" in weir("groups", "--help").stdout


# --- weir dump-log ------------------------------------------------------------------

HEADER = struct.Struct(">qiibIhiqqqhii")
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def batches_of(data: bytes) -> list[dict]:
    """Independent v2 batch header parser: every whole batch of a segment's bytes."""
    out, position = [], 0
    while position + 61 <= len(data):
        (base, length, epoch, magic, crc, attributes, last_delta, base_ts, max_ts, producer_id, producer_epoch,
         base_seq, count) = HEADER.unpack_from(data, position)
        size = 12 + length
        if position + size > len(data):
            break
        out.append(dict(position=position, base=base, last=base + last_delta, count=count, epoch=epoch,
                        magic=magic, crc=crc, attributes=attributes, max_ts=max_ts, producer_id=producer_id,
                        producer_epoch=producer_epoch, base_seq=base_seq, size=size))
        position += size
    return out


def batch_line(b: dict, valid: bool = True) -> str:
    last_seq = -1 if b["base_seq"] == -1 else b["base_seq"] + b["last"] - b["base"]
    return (f"baseOffset: {b['base']} lastOffset: {b['last']} count: {b['count']} baseSequence: {b['base_seq']} "
            f"lastSequence: {last_seq} producerId: {b['producer_id']} producerEpoch: {b['producer_epoch']} "
            f"partitionLeaderEpoch: {b['epoch']} isTransactional: false isControl: false "
            f"deleteHorizonMs: OptionalLong.empty position: {b['position']} CreateTime: {b['max_ts']} "
            f"size: {b['size']} magic: 2 compresscodec: {CODECS[b['attributes'] & 7]} crc: {b['crc']} "
            f"isvalid: {'true' if valid else 'false'}")


@pytest.fixture(scope="module")
def stopped_segment(tmp_path_factory):
    """A stopped broker's partition dir: batch 1 (3 plain records, keys, headers), batch 2 (gzip, idempotent)."""
    workdir = tmp_path_factory.mktemp("dump")
    broker = conftest.Broker(workdir, {"log.index.interval.bytes": 1})
    try:
        broker.start()
        topic = support.unique_topic("dump")
        support.create_topic(broker.bootstrap, topic, 1)
        produce(broker.bootstrap, topic, [
            (0, b"k0", b"v0", T0, [("h1", b"x"), ("h2", None)]),
            (0, b"k1", b"value-1", T0 + 1),
            (0, None, b"v2", T0 + 2),
        ])
        produce(broker.bootstrap, topic, [(0, b"z", b"compressed-0", T0 + 10), (0, b"z", None, T0 + 11)],
                {"compression.type": "gzip", "enable.idempotence": True})
        assert broker.stop() == 0
    finally:
        broker.kill9()
        if broker in conftest._live_brokers:
            conftest._live_brokers.remove(broker)
    return broker.partition_dir(topic, 0)


def test_dump_log_prints_batches_and_records_as_kafka_does(stopped_segment):
    log = stopped_segment / "00000000000000000000.log"
    batches = batches_of(log.read_bytes())
    assert [(b["base"], b["last"], b["count"]) for b in batches] == [(0, 2, 3), (3, 4, 2)]
    assert batches[1]["producer_id"] >= 0 and batches[1]["base_seq"] == 0
    run = weir("dump-log", "--files", str(log), "--print-data-log")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        f"Dumping {log}",
        "Log starting offset: 0",
        batch_line(batches[0]),
        f"| offset: 0 CreateTime: {T0} keySize: 2 valueSize: 2 sequence: -1 headerKeys: [h1,h2] key: k0 payload: v0",
        f"| offset: 1 CreateTime: {T0 + 1} keySize: 2 valueSize: 7 sequence: -1 headerKeys: [] key: k1 payload: value-1",
        f"| offset: 2 CreateTime: {T0 + 2} keySize: -1 valueSize: 2 sequence: -1 headerKeys: [] payload: v2",
        batch_line(batches[1]),
        f"| offset: 3 CreateTime: {T0 + 10} keySize: 1 valueSize: 12 sequence: 0 headerKeys: [] key: z payload: compressed-0",
        f"| offset: 4 CreateTime: {T0 + 11} keySize: 1 valueSize: -1 sequence: 1 headerKeys: [] key: z",
    ]
    # Without --print-data-log only batches; --deep-iteration adds records without content.
    assert weir("dump-log", "--files", str(log)).stdout.splitlines()[2:] == [batch_line(b) for b in batches]
    deep = weir("dump-log", "--files", str(log), "--deep-iteration").stdout.splitlines()
    assert deep[3] == f"| offset: 0 CreateTime: {T0} keySize: 2 valueSize: 2 sequence: -1 headerKeys: [h1,h2]"


def test_dump_log_prints_index_time_index_and_producer_snapshot(stopped_segment, tmp_path):
    index = stopped_segment / "00000000000000000000.index"
    time_index = stopped_segment / "00000000000000000000.timeindex"
    batches = batches_of((stopped_segment / "00000000000000000000.log").read_bytes())
    run = weir("dump-log", "--files", f"{index},{time_index}")
    assert (run.returncode, run.stderr) == (0, "")
    # Every batch after the first is indexed (index.interval.bytes=1): its last offset → its position.
    assert run.stdout.splitlines() == [
        f"Dumping {index}",
        f"offset: 4 position: {batches[1]['position']}",
        f"Dumping {time_index}",
        f"timestamp: {T0 + 11} offset: 4",
    ]
    run = weir("dump-log", "--files", str(index), "--index-sanity-check")
    assert run.stdout.splitlines() == [f"Dumping {index}", f"{index} passed sanity check."]

    snapshots = sorted(stopped_segment.glob("*.snapshot"))
    assert [s.name for s in snapshots] == ["00000000000000000005.snapshot"]
    run = weir("dump-log", "--files", str(snapshots[0]))
    b = batches[1]
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        f"Dumping {snapshots[0]}",
        f"producerId: {b['producer_id']} producerEpoch: {b['producer_epoch']} coordinatorEpoch: -1 "
        f"currentTxnFirstOffset: OptionalLong.empty lastTimestamp: {T0 + 11} firstSequence: 0 lastSequence: 1 "
        f"lastOffset: 4 offsetDelta: 1 timestamp: {T0 + 11}",
    ]
    # A damaged snapshot is reported and, as in Kafka, does not fail the dump.
    damaged = bytearray(snapshots[0].read_bytes())
    damaged[-1] ^= 0x01
    copy = tmp_path / snapshots[0].name
    copy.write_bytes(bytes(damaged))
    run = weir("dump-log", "--files", str(copy))
    assert (run.returncode, run.stdout) == (0, f"Dumping {copy}\n")
    assert run.stderr.startswith(f"{os.path.abspath(copy)}: producer snapshot is corrupt at byte 2: stored CRC ")


def test_dump_log_reports_damaged_copies_with_their_position(stopped_segment, tmp_path):
    original = (stopped_segment / "00000000000000000000.log").read_bytes()
    batches = batches_of(original)
    second = batches[1]["position"]
    copy = tmp_path / "00000000000000000000.log"

    # A flipped byte inside the first batch's records: isvalid false, the dump carries on (exit 0).
    damaged = bytearray(original)
    damaged[second - 3] ^= 0x20  # inside the last record's value "v2"
    copy.write_bytes(bytes(damaged))
    run = weir("dump-log", "--files", str(copy))
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines()[2:] == [batch_line(batches[0], valid=False), batch_line(batches[1])]

    # A torn tail: Kafka counts the bytes after the last whole batch.
    assert batches[1]["size"] > 70
    copy.write_bytes(original[:second + 70])
    run = weir("dump-log", "--files", str(copy))
    assert run.returncode == 0
    assert run.stdout.splitlines()[2:] == [batch_line(batches[0]),
                                           "Found 70 invalid bytes at the end of 00000000000000000000.log"]

    # A batch length no format allows stops the file, naming where.
    damaged = bytearray(original)
    damaged[second + 8:second + 12] = struct.pack(">i", 5)
    copy.write_bytes(bytes(damaged))
    run = weir("dump-log", "--files", str(copy))
    assert run.returncode == 1
    assert run.stdout.splitlines()[2:] == [batch_line(batches[0])]
    assert run.stderr == (f"Error: Found record size 5 smaller than minimum record overhead (14) in file {copy}. "
                          f"(the batch starts at position {second})\n")

    # A gap in offsets (what compaction leaves) is listed after the dump, as Kafka does.
    gapped = bytearray(original)
    gapped[second:second + 8] = struct.pack(">q", 10)  # baseOffset lies outside the CRC
    copy.write_bytes(bytes(gapped))
    run = weir("dump-log", "--files", str(copy), "--deep-iteration")
    assert run.returncode == 0
    assert [line.split(" CreateTime")[0] for line in run.stdout.splitlines() if line.startswith("| ")] == [
        "| offset: 0", "| offset: 1", "| offset: 2", "| offset: 10", "| offset: 11"]
    assert run.stderr == f"Non-consecutive offsets in {os.path.abspath(copy)}\n  2 is followed by 10\n"
    run = weir("dump-log", "--files", str(copy), "--max-bytes", str(second + 20))
    assert run.stdout.splitlines()[2:] == [batch_line(batches[0])], "no invalid-bytes line with --max-bytes"

    # A record length that runs past the batch: the records do not parse.
    damaged = bytearray(original)
    damaged[61] = 0x7e  # first record's length varint: 63 bytes, more than the batch holds
    copy.write_bytes(bytes(damaged))
    run = weir("dump-log", "--files", str(copy), "--deep-iteration")
    assert run.returncode == 1
    assert run.stdout.splitlines()[2] == batch_line(batches[0], valid=False)
    assert run.stderr.startswith(f"Error: the records of the batch at position 0 of {copy} do not parse: ")


def test_dump_log_checks_indexes_against_the_log(stopped_segment, tmp_path):
    for name in ("00000000000000000000.log", "00000000000000000000.index"):
        shutil.copy(stopped_segment / name, tmp_path / name)
    index = tmp_path / "00000000000000000000.index"
    batches = batches_of((tmp_path / "00000000000000000000.log").read_bytes())

    # An entry naming offset 4 but pointing at the first batch (last offset 2).
    index.write_bytes(struct.pack(">II", 4, 0))
    run = weir("dump-log", "--files", str(index), "--verify-index-only")
    assert (run.returncode, run.stdout) == (0, f"Dumping {index}\n")
    assert run.stderr == f"Mismatches in :{os.path.abspath(index)}\n  Index offset: 4, log offset: 2\n"

    # A partial entry fails the broker's start-up sanity check.
    index.write_bytes(struct.pack(">II", 4, batches[1]["position"]) + b"\0\0\0")
    run = weir("dump-log", "--files", str(index), "--index-sanity-check")
    assert run.returncode == 1
    assert run.stderr == (f"Error: Index file {os.path.abspath(index)} is corrupt, found 11 bytes which is "
                          "neither positive nor a multiple of 8\n")

    index.write_bytes(b"")
    assert weir("dump-log", "--files", str(index)).stdout == f"Dumping {index}\n{index} is empty.\n"
    run = weir("dump-log", "--files", str(tmp_path / "notes.txt"))
    assert (run.returncode, run.stderr) == (0, f"Ignoring unknown file {tmp_path / 'notes.txt'}\n")


def java_string_hash(text: str) -> int:
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


@pytest.mark.timeout_s(120)
def test_offsets_decoder_prints_commits_and_group_metadata_as_kafkas_json(make_broker):
    broker = make_broker(GROUP_BROKER)
    topic, group = support.unique_topic("decode"), "decode-app"
    support.create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [(0, None, b"x%d" % i, T0 + i) for i in range(3)])
    member = Member(broker, group, topic, "cli-decode")
    member.consume_and_commit(3)
    member_id = member.member_id
    member.close()
    wait_for_state(broker, group, "Empty")
    assert broker.stop() == 0

    # The group's coordinator partition, as Kafka picks it.
    partition = abs(java_string_hash(group)) % 50
    log = broker.partition_dir("__consumer_offsets", partition) / "00000000000000000000.log"
    run = weir("dump-log", "--files", str(log), "--offsets-decoder")
    assert (run.returncode, run.stderr) == (0, "")
    records = []
    for line in run.stdout.splitlines():
        if line.startswith("| "):
            key = line[line.index(" key: ") + 6:line.index(" payload: ")]
            records.append((json.loads(key), line[line.index(" payload: ") + 10:]))
    commits = [(k, json.loads(p)) for k, p in records if k["type"] == "1"]
    assert [k["data"] for k, _ in commits] == [{"group": group, "topic": topic, "partition": 0}]
    payload = commits[0][1]
    assert payload["version"] == "3"
    assert list(payload["data"]) == ["offset", "leaderEpoch", "metadata", "commitTimestamp"]
    assert payload["data"]["offset"] == 3 and payload["data"]["metadata"] == ""

    metadata = [json.loads(p) for k, p in records if k == {"type": "2", "data": {"group": group}}]
    joined, emptied = metadata[0]["data"], metadata[-1]["data"]
    assert (joined["protocolType"], joined["protocol"], joined["leader"]) == ("consumer", "range", member_id)
    [described] = joined["members"]
    assert (described["memberId"], described["clientId"], described["clientHost"]) == (member_id, "cli-decode", HOST)
    assert described["subscription"]["topics"] == [topic]
    assert described["assignment"]["assignedPartitions"] == [{"topic": topic, "partitions": [0]}]
    assert emptied["members"] == [] and emptied["protocol"] is None
