"""`weir produce` and `weir consume` against a live broker and real Kafka clients.

Goal: the console tools behave like kafka-console-producer.sh and
kafka-console-consumer.sh where scripts and habits depend on it — the output
format of DefaultMessageFormatter byte for byte, keys on the partition every
other client picks for them (murmur2), every compression codec readable by
librdkafka and back, consumer groups that commit, continue and show up in
DescribeGroups like any other member — and fail with a clear message and a
non-zero exit code instead of hanging.

Method: every test runs the real `weir` binary as a subprocess (the same
binary the broker fixture starts) against a fresh broker, with stdin/stdout/
stderr captured. What weir wrote is read back with confluent-kafka
(librdkafka), and what confluent-kafka wrote is read with `weir consume`;
expected output lines are built from what confluent-kafka reports (partition,
offset, timestamp) and compared exactly. Stored batches are checked in the
broker's segment files where the wire cannot tell (compression codec,
producer id).
"""

from __future__ import annotations

import collections
import os
import signal
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import conftest
import support

WEIR = conftest.WEIR_BIN
RUN_TIMEOUT_S = 60
# Fast group formation: the default waits 3 s for more members before the first rebalance.
GROUP_BROKER = {"group.initial.rebalance.delay.ms": 200}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def weir(*args: str, stdin: bytes | None = None, timeout_s: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Runs `weir <args>` to completion; stdout and stderr as bytes."""
    return subprocess.run([WEIR, *args], input=stdin if stdin is not None else b"", capture_output=True,
                          timeout=timeout_s, preexec_fn=conftest._die_with_parent)


def produce(bootstrap: str, topic: str, *flags: str, stdin: bytes) -> subprocess.CompletedProcess:
    """Runs `weir produce` on `stdin` into `topic` and asserts that it succeeded."""
    result = weir("produce", "--bootstrap-server", bootstrap, "--topic", topic, *flags, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return result


def spawn(*args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([WEIR, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=conftest._die_with_parent)


def lines_of(output: bytes) -> list[str]:
    return output.decode().splitlines()


def read_all(bootstrap: str, topic: str, partitions: int, expected: int,
             timeout_s: float = 30.0) -> list[tuple[int, int, int, bytes | None, bytes | None, list]]:
    """Every record with confluent-kafka: (partition, offset, timestamp, key, value, headers), by partition then offset."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cli-tests-reader",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected:
            assert time.monotonic() < deadline, f"read {len(out)} of {expected} records of {topic}"
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                assert msg.error() is None, msg.error()
                kind, timestamp = msg.timestamp()
                assert kind == 1, f"timestamp type {kind}, expected CreateTime"
                out.append((msg.partition(), msg.offset(), timestamp, msg.key(), msg.value(),
                            msg.headers() or []))
        time.sleep(0.3)
        extra = consumer.consume(num_messages=10, timeout=0.3)
        assert not extra, f"more than {expected} records in {topic}"
        return sorted(out, key=lambda r: (r[0], r[1]))
    finally:
        consumer.close()


def first_batch_header(broker: conftest.Broker, topic: str, partition: int = 0) -> dict:
    """attributes, producerId and baseSequence of the first stored batch of a partition."""
    data = broker.segment_files(topic, partition)[0].read_bytes()
    assert len(data) >= 61, f"{topic}-{partition} holds no batch"
    attributes, = struct.unpack(">h", data[21:23])
    producer_id, = struct.unpack(">q", data[43:51])
    base_sequence, = struct.unpack(">i", data[53:57])
    return {"codec": attributes & 7, "producer_id": producer_id, "base_sequence": base_sequence}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
    finally:
        consumer.close()


def formatted(record, key=True) -> str:
    partition, offset, timestamp, key_bytes, value, _ = record
    key_text = "null" if key_bytes is None else key_bytes.decode()
    value_text = "null" if value is None else value.decode()
    fields = [f"CreateTime:{timestamp}", f"Partition:{partition}", f"Offset:{offset}"]
    if key:
        fields.append(key_text)
    return "\t".join(fields + [value_text])


PRINT_ALL = ["--property", "print.key=true", "--property", "print.offset=true",
             "--property", "print.partition=true", "--property", "print.timestamp=true"]


def test_keyed_and_unkeyed_lines_come_back_in_kafkas_exact_output_format(broker):
    topic = support.unique_topic("cli-format")
    support.create_topic(broker.bootstrap, topic, 3)
    keyed = [f"user-{i % 7}:value {i} with spaces" for i in range(60)]
    result = produce(broker.bootstrap, topic, "--property", "parse.key=true", "--property", "key.separator=:",
                     stdin=("\n".join(keyed) + "\n").encode())
    assert result.stdout == b"", "the producer keeps stdout clean"
    unkeyed = [f"plain {i}\twith a tab" for i in range(40)]
    produce(broker.bootstrap, topic, stdin=("\n".join(unkeyed) + "\n").encode())

    stored = read_all(broker.bootstrap, topic, 3, 100)
    def comparable(pair):
        return (pair[0] or b"<null>", pair[1])

    assert sorted(((r[3], r[4]) for r in stored), key=comparable) == sorted(
        [(line.split(":", 1)[0].encode(), line.split(":", 1)[1].encode()) for line in keyed]
        + [(None, line.encode()) for line in unkeyed], key=comparable)

    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--from-beginning", "--max-messages", "100", *PRINT_ALL)
    assert result.returncode == 0, result.stderr.decode()
    printed = lines_of(result.stdout)
    assert sorted(printed) == sorted(formatted(r) for r in stored)
    for partition in range(3):
        in_order = [line for line in printed if f"\tPartition:{partition}\t" in line]
        assert in_order == [formatted(r) for r in stored if r[0] == partition], \
            f"partition {partition} printed out of offset order"
    assert lines_of(result.stderr)[-1] == "Processed a total of 100 messages"

    # Each key's records sit on one partition, in produce order.
    by_key = collections.defaultdict(list)
    for partition, _, _, key, value, _ in stored:
        if key is not None:
            by_key[key].append((partition, value))
    for key, entries in by_key.items():
        assert len({p for p, _ in entries}) == 1, f"key {key!r} on several partitions"


def test_a_single_partition_prints_exactly_in_order_with_default_and_custom_format(broker):
    topic = support.unique_topic("cli-single")
    support.create_topic(broker.bootstrap, topic, 1)
    lines = [f"k{i}|v{i}" for i in range(20)]
    produce(broker.bootstrap, topic, "--property", "parse.key=true", "--property", "key.separator=|",
            stdin=("\n".join(lines) + "\n").encode())
    stored = read_all(broker.bootstrap, topic, 1, 20)

    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--from-beginning", "--max-messages", "20", *PRINT_ALL)
    assert result.returncode == 0, result.stderr.decode()
    assert lines_of(result.stdout) == [formatted(r) for r in stored]

    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--from-beginning", "--max-messages", "3")
    assert result.stdout == b"v0\nv1\nv2\n"

    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--from-beginning", "--max-messages", "2", "--property", "print.key=true",
                  "--property", "key.separator= => ", "--property", "line.separator=;")
    assert result.stdout == b"k0 => v0;k1 => v1;"


def test_keys_land_on_the_partition_librdkafka_murmur2_random_picks(broker):
    partitions = 7
    ours, theirs = support.unique_topic("cli-keys-weir"), support.unique_topic("cli-keys-rdkafka")
    support.create_topic(broker.bootstrap, ours, partitions)
    support.create_topic(broker.bootstrap, theirs, partitions)
    keys = [f"customer-{i}" for i in range(200)] + ["", "a", "21", "foobar", "ünïcödé"]
    produce(broker.bootstrap, ours, "--property", "parse.key=true",
            stdin="".join(f"{key}\tv\n" for key in keys).encode())
    delivered = support.confluent_produce(broker.bootstrap, theirs, [(k.encode(), b"v") for k in keys],
                                          config={"partitioner": "murmur2_random"})
    expected = {key.encode(): partition for key, (partition, _) in zip(keys, delivered)}
    stored = read_all(broker.bootstrap, ours, partitions, len(keys))
    placed = {key: partition for partition, _, _, key, _, _ in stored}
    assert placed == expected
    assert len(set(placed.values())) == partitions, "200 keys spread over every partition"


@pytest.mark.parametrize("codec", CODECS)
def test_each_compression_codec_is_stored_compressed_and_readable_by_confluent_kafka(broker, codec):
    topic = support.unique_topic(f"cli-{codec}")
    support.create_topic(broker.bootstrap, topic, 1)
    values = [f"{i:06d} " + "compressible text " * 8 for i in range(500)]
    produce(broker.bootstrap, topic, "--compression-codec", codec,
            stdin=("\n".join(values) + "\n").encode())
    assert first_batch_header(broker, topic)["codec"] == CODEC_IDS[codec]
    stored = read_all(broker.bootstrap, topic, 1, len(values))
    assert [r[4].decode() for r in stored] == values
    assert [r[1] for r in stored] == list(range(len(values)))


def test_compression_codec_without_a_value_means_gzip_and_the_property_works_too(broker):
    topic = support.unique_topic("cli-gzip-default")
    support.create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, "--compression-codec", stdin=b"one\ntwo\n")
    assert first_batch_header(broker, topic)["codec"] == CODEC_IDS["gzip"]
    other = support.unique_topic("cli-zstd-property")
    support.create_topic(broker.bootstrap, other, 1)
    produce(broker.bootstrap, other, "--producer-property", "compression.type=zstd", stdin=b"one\n")
    assert first_batch_header(broker, other)["codec"] == CODEC_IDS["zstd"]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_records_confluent_kafka_produced_print_with_headers_nulls_and_compression(broker, codec):
    topic = support.unique_topic(f"cli-from-rdkafka-{codec}")
    support.create_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 50})
    sent = [
        (b"k0", b"plain", None),
        (None, b"no key", [("trace", b"abc"), ("empty", b"")]),
        (b"k2", None, [("null-value", None)]),
        (b"k3", b"many headers", [("a", b"1"), ("b", b"2"), ("a", b"3")]),
    ] + [(f"k{i}".encode(), f"value {i}".encode(), None) for i in range(4, 50)]
    for key, value, headers in sent:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0
    stored = read_all(broker.bootstrap, topic, 1, len(sent))

    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--from-beginning",
                  "--max-messages", str(len(sent)), "--property", "print.headers=true",
                  "--property", "print.key=true", "--property", "print.offset=true")
    assert result.returncode == 0, result.stderr.decode()

    def header_text(headers):
        if not headers:
            return "NO_HEADERS"
        return ",".join(f"{k}:{'null' if v is None else v.decode()}" for k, v in headers)

    expected = [f"Offset:{offset}\t{header_text(headers)}\t{'null' if key is None else key.decode()}\t"
                f"{'null' if value is None else value.decode()}"
                for _, offset, _, key, value, headers in stored]
    assert lines_of(result.stdout) == expected
    assert expected[1] == "Offset:1\ttrace:abc,empty:\tnull\tno key"
    assert expected[2] == "Offset:2\tnull-value:null\tk2\tnull"


def test_produced_headers_and_null_marker_reach_confluent_kafka(broker):
    topic = support.unique_topic("cli-headers")
    support.create_topic(broker.bootstrap, topic, 1)
    lines = ["h1:v1,h2:v2\tkey1\tvalue1", "h:NULL\tNULL\tNULL", "x:y\tkey3\tvalue\twith tab"]
    produce(broker.bootstrap, topic, "--property", "parse.headers=true", "--property", "parse.key=true",
            "--property", "null.marker=NULL", stdin=("\n".join(lines) + "\n").encode())
    stored = read_all(broker.bootstrap, topic, 1, 3)
    assert [(r[3], r[4], r[5]) for r in stored] == [
        (b"key1", b"value1", [("h1", b"v1"), ("h2", b"v2")]),
        (None, None, [("h", None)]),
        (b"key3", b"value\twith tab", [("x", b"y")]),
    ]


def test_partition_and_offset_choose_where_consumption_starts(broker):
    topic = support.unique_topic("cli-offsets")
    support.create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, "--property", "parse.key=true",
            stdin="".join(f"same-key\tv{i}\n" for i in range(10)).encode())
    partition = read_all(broker.bootstrap, topic, 2, 10)[0][0]

    common = ["consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--partition", str(partition)]
    result = weir(*common, "--offset", "7", "--max-messages", "3", "--property", "print.offset=true")
    assert result.returncode == 0, result.stderr.decode()
    assert lines_of(result.stdout) == ["Offset:7\tv7", "Offset:8\tv8", "Offset:9\tv9"]

    result = weir(*common, "--offset", "earliest", "--max-messages", "2")
    assert lines_of(result.stdout) == ["v0", "v1"]

    result = weir(*common, "--offset", "latest", "--timeout-ms", "800")
    assert result.returncode == 0 and result.stdout == b""
    assert b"Processed a total of 0 messages" in result.stderr

    other = 1 - partition
    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--partition", str(other), "--from-beginning", "--timeout-ms", "800")
    assert result.returncode == 0 and result.stdout == b""

    result = weir(*common[:-2], "--partition", "5", "--from-beginning", "--timeout-ms", "500")
    assert result.returncode == 1
    assert b"partition 5 does not exist" in result.stderr

    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--offset", "3")
    assert result.returncode == 2
    assert b"The partition is required when offset is specified." in result.stderr


def test_timeout_ms_exits_after_the_last_record_and_reports_the_total(broker):
    topic = support.unique_topic("cli-timeout")
    support.create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, stdin=b"".join(f"r{i}\n".encode() for i in range(25)))
    started = time.monotonic()
    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--from-beginning", "--timeout-ms", "1000")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(lines_of(result.stdout)) == sorted(f"r{i}" for i in range(25))
    assert lines_of(result.stderr) == ["Processed a total of 25 messages"]
    assert 0.9 < elapsed < 10, f"exited after {elapsed:.1f} s"

    # Records produced while waiting reset the timer; nothing arrives later than that.
    consumer = spawn("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--timeout-ms", "5000")
    time.sleep(2.0)
    support.confluent_produce(broker.bootstrap, topic, [(None, b"late")])
    out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err.decode()
    assert out == b"late\n"
    assert lines_of(err)[-1] == "Processed a total of 1 messages"


def test_group_commits_what_it_printed_and_a_second_run_continues_there(make_broker):
    broker = make_broker(overrides=GROUP_BROKER)
    topic, group = support.unique_topic("cli-group"), support.unique_topic("cli-group-id")
    support.create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, "--property", "parse.key=true",
            stdin=b"".join(f"key{i % 10}\tm{i:03d}\n".encode() for i in range(60)))

    first = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                 "--from-beginning", "--max-messages", "25", "--property", "print.partition=true",
                 "--property", "print.offset=true")
    assert first.returncode == 0, first.stderr.decode()
    printed = lines_of(first.stdout)
    assert len(printed) == 25
    assert lines_of(first.stderr)[-1] == "Processed a total of 25 messages"
    next_offsets: dict[int, int] = {}
    for line in printed:
        partition, offset = (int(field.split(":")[1]) for field in line.split("\t")[:2])
        next_offsets[partition] = max(next_offsets.get(partition, 0), offset + 1)
    # As Kafka's auto-commit, every assigned partition's position is committed, also
    # the ones nothing was printed from yet.
    assert committed(broker.bootstrap, group, topic, 3) == {p: next_offsets.get(p, 0) for p in range(3)}

    second = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                  "--timeout-ms", "2000", "--property", "print.partition=true", "--property", "print.offset=true")
    assert second.returncode == 0, second.stderr.decode()
    rest = lines_of(second.stdout)
    assert len(rest) == 35
    assert not set(rest) & set(printed), "the second run printed records the first had printed"
    assert sorted(line.split("\t")[2] for line in printed + rest) == [f"m{i:03d}" for i in range(60)]
    stored = read_all(broker.bootstrap, topic, 3, 60)
    end_offsets = collections.Counter(r[0] for r in stored)
    assert committed(broker.bootstrap, group, topic, 3) == {p: n for p, n in end_offsets.items()}


def test_a_group_member_is_described_like_any_consumer_and_leaves_on_sigint(make_broker):
    broker = make_broker(overrides=GROUP_BROKER)
    topic, group = support.unique_topic("cli-describe"), support.unique_topic("cli-describe-id")
    support.create_topic(broker.bootstrap, topic, 4)
    consumer = spawn("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                     "--from-beginning", "--consumer-property", "client.id=my-console")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        deadline = time.monotonic() + 30
        while True:
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            if description.state.name == "STABLE" and description.members:
                break
            assert time.monotonic() < deadline, f"group never became stable: {description.state}"
            time.sleep(0.2)
        assert not description.is_simple_consumer_group, "protocol type 'consumer'"
        assert description.partition_assignor == "range"
        [member] = description.members
        assert member.client_id == "my-console"
        assert member.host.lstrip("/") == "127.0.0.1"
        assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1, 2, 3]
        assert {tp.topic for tp in member.assignment.topic_partitions} == {topic}

        support.confluent_produce(broker.bootstrap, topic, [(None, f"x{i}".encode()) for i in range(8)])
        time.sleep(1.5)
    finally:
        consumer.send_signal(signal.SIGINT)
        out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err.decode()
    assert sorted(lines_of(out)) == sorted(f"x{i}" for i in range(8))
    assert lines_of(err)[-1] == "Processed a total of 8 messages"
    assert sum(committed(broker.bootstrap, group, topic, 4).values()) == 8
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert description.state.name == "EMPTY" and not description.members, "the member left the group"


def test_weir_and_confluent_kafka_consumers_split_one_group(make_broker):
    broker = make_broker(overrides=GROUP_BROKER)
    topic, group = support.unique_topic("cli-mixed"), support.unique_topic("cli-mixed-id")
    support.create_topic(broker.bootstrap, topic, 4)
    ours = spawn("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                 "--from-beginning", "--property", "print.partition=true",
                 "--consumer-property", "heartbeat.interval.ms=300")
    theirs = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                       "partition.assignment.strategy": "range", "enable.auto.commit": True,
                       "auto.commit.interval.ms": 200})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    theirs_values = []
    try:
        theirs.subscribe([topic])
        deadline = time.monotonic() + 45
        while True:
            for msg in theirs.consume(num_messages=100, timeout=0.2):
                assert msg.error() is None, msg.error()
                theirs_values.append(msg.value().decode())
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            sizes = sorted(len(m.assignment.topic_partitions) for m in description.members)
            if description.state.name == "STABLE" and sizes == [2, 2]:
                break
            assert time.monotonic() < deadline, f"no 2+2 split: {description.state} {sizes}"
        records = [(f"key-{i}".encode(), f"v{i}".encode()) for i in range(80)]
        support.confluent_produce(broker.bootstrap, topic, records)
        deadline = time.monotonic() + 20
        while len(theirs_values) < 40 and time.monotonic() < deadline:
            for msg in theirs.consume(num_messages=100, timeout=0.2):
                theirs_values.append(msg.value().decode())
        time.sleep(1.5)
    finally:
        ours.send_signal(signal.SIGTERM)
        out, err = ours.communicate(timeout=30)
        theirs.close()
    assert ours.returncode == 0, err.decode()
    our_lines = lines_of(out)
    our_values = [line.split("\t")[1] for line in our_lines]
    our_partitions = {int(line.split("\t")[0].split(":")[1]) for line in our_lines}
    assert len(our_partitions) == 2, f"weir printed partitions {our_partitions}"
    assert sorted(our_values + theirs_values) == sorted(f"v{i}" for i in range(80)), \
        "each record consumed exactly once by the group"


def test_a_group_consumer_carries_on_across_a_broker_restart(make_broker):
    broker = make_broker(overrides=GROUP_BROKER)
    topic, group = support.unique_topic("cli-restart"), support.unique_topic("cli-restart-id")
    support.create_topic(broker.bootstrap, topic, 2)
    consumer = spawn("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                     "--from-beginning")
    try:
        support.confluent_produce(broker.bootstrap, topic, [(b"k", b"before restart")])
        assert consumer.stdout.readline() == b"before restart\n"
        broker.restart()
        support.confluent_produce(broker.bootstrap, topic, [(b"k", b"after restart")])
        assert consumer.stdout.readline() == b"after restart\n"
    finally:
        consumer.send_signal(signal.SIGINT)
        out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err.decode()
    assert out == b""
    assert lines_of(err)[-1] == "Processed a total of 2 messages"
    assert sum(committed(broker.bootstrap, group, topic, 2).values()) == 2


def test_producing_to_a_missing_topic_without_auto_create_fails_clearly(make_broker):
    broker = make_broker(overrides={"auto.create.topics.enable": False})
    started = time.monotonic()
    result = weir("produce", "--bootstrap-server", broker.bootstrap, "--topic", "no-such-topic",
                  stdin=b"lost\n")
    assert result.returncode == 1
    assert time.monotonic() - started < 20, "gave up promptly instead of waiting max.block.ms"
    assert result.stdout == b""
    error = result.stderr.decode()
    assert "topic 'no-such-topic' does not exist" in error and "auto.create.topics.enable" in error, error
    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", "no-such-topic", "--timeout-ms", "500")
    assert result.returncode == 1
    assert "topic 'no-such-topic' does not exist" in result.stderr.decode()


def test_producing_to_a_missing_topic_with_auto_create_creates_it(broker):
    topic = support.unique_topic("cli-auto")
    produce(broker.bootstrap, topic, stdin=b"hello\n")
    assert [r[4] for r in read_all(broker.bootstrap, topic, 1, 1)] == [b"hello"]


def test_an_unreachable_broker_is_a_clear_error_for_both_tools():
    port = conftest.free_port()
    for args in (["produce", "--topic", "t"], ["consume", "--topic", "t"]):
        result = weir(*args, "--bootstrap-server", f"127.0.0.1:{port}", stdin=b"x\n", timeout_s=30)
        assert result.returncode == 1, args
        error = result.stderr.decode()
        assert f"cannot connect to 127.0.0.1:{port}" in error and "--bootstrap-server" in error, error
        assert result.stdout == b""


def test_a_refused_batch_is_reported_with_partition_and_error_name_and_fails_the_run(broker):
    topic = support.unique_topic("cli-too-large")
    support.create_topic(broker.bootstrap, topic, 1, config={"max.message.bytes": "200"})
    result = weir("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--sync",
                  stdin=b"ok\n" + b"x" * 500 + b"\nfine\n")
    assert result.returncode == 1
    assert result.stdout == b""
    errors = lines_of(result.stderr)
    assert errors[0].startswith(f"Error when sending 1 message to topic {topic} partition 0: MESSAGE_TOO_LARGE"), errors
    assert errors[-1].startswith(f"Produced 2 of 3 records to {topic} in "), errors
    assert errors[-1].endswith("; 1 failed"), errors
    assert [r[4] for r in read_all(broker.bootstrap, topic, 1, 2)] == [b"ok", b"fine"]


def test_a_line_without_key_separator_stops_after_producing_the_lines_before(broker):
    topic = support.unique_topic("cli-parse-error")
    support.create_topic(broker.bootstrap, topic, 1)
    result = weir("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--property", "parse.key=true", stdin=b"k\tgood\nno separator here\nk\tnever\n")
    assert result.returncode == 1
    assert "No key separator found on line number 2: 'no separator here'" in result.stderr.decode()
    assert [r[4] for r in read_all(broker.bootstrap, topic, 1, 1)] == [b"good"]

    produce(broker.bootstrap, topic, "--property", "parse.key=true", "--property", "ignore.error=true",
            stdin=b"whole line value\n")
    assert read_all(broker.bootstrap, topic, 1, 2)[1][3:5] == (None, b"whole line value")


def test_idempotence_follows_kafkas_defaults_and_settings(broker):
    cases = [([], True), (["--request-required-acks", "1"], False),
             (["--producer-property", "enable.idempotence=true"], True),
             (["--producer-property", "enable.idempotence=false"], False)]
    for extra, idempotent in cases:
        topic = support.unique_topic("cli-idempotence")
        support.create_topic(broker.bootstrap, topic, 1)
        produce(broker.bootstrap, topic, *extra, stdin=b"a\nb\n")
        header = first_batch_header(broker, topic)
        assert (header["producer_id"] >= 0) == idempotent, (extra, header)
        assert header["base_sequence"] == (0 if idempotent else -1), (extra, header)
    result = weir("produce", "--bootstrap-server", broker.bootstrap, "--topic", "x",
                  "--request-required-acks", "0", "--producer-property", "enable.idempotence=true")
    assert result.returncode == 2
    assert "Must set acks to all" in result.stderr.decode()


def test_acks_zero_and_sync_modes_deliver_every_record(broker):
    for extra in (["--request-required-acks", "0"], ["--sync"], ["--batch-size", "64", "--timeout", "0"]):
        topic = support.unique_topic("cli-modes")
        support.create_topic(broker.bootstrap, topic, 2)
        result = weir("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic, *extra,
                      stdin=b"".join(f"line {i}\n".encode() for i in range(50)))
        assert result.returncode == 0, (extra, result.stderr.decode())
        stored = read_all(broker.bootstrap, topic, 2, 50)
        assert sorted(r[4] for r in stored) == sorted(f"line {i}".encode() for i in range(50)), extra


def test_sigterm_makes_the_producer_flush_what_it_read(broker):
    topic = support.unique_topic("cli-producer-signal")
    support.create_topic(broker.bootstrap, topic, 1)
    producer = spawn("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                     "--timeout", "60000", stdin=subprocess.PIPE)
    producer.stdin.write(b"first\nsecond\n")
    producer.stdin.flush()
    time.sleep(1.0)
    producer.send_signal(signal.SIGTERM)
    out, err = producer.communicate(timeout=30)
    assert producer.returncode == 0, err.decode()
    assert out == b""
    assert [r[4] for r in read_all(broker.bootstrap, topic, 1, 2)] == [b"first", b"second"]


def test_a_large_run_keeps_stdout_clean_and_reports_a_summary(broker):
    topic = support.unique_topic("cli-large")
    support.create_topic(broker.bootstrap, topic, 4)
    count = 100_000
    producer = spawn("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic, stdin=subprocess.PIPE)
    payload = b"".join(f"record {i:06d}\n".encode() for i in range(count))
    half = len(payload) // 2
    producer.stdin.write(payload[:half])
    producer.stdin.flush()
    time.sleep(1.2)  # a run longer than a second gets the summary line
    producer.stdin.write(payload[half:])
    out, err = producer.communicate(timeout=120)
    assert producer.returncode == 0, err.decode()
    assert out == b""
    summary = lines_of(err)[-1]
    assert summary.startswith(f"Produced {count} records to {topic} in "), summary
    result = weir("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--from-beginning",
                  "--max-messages", str(count), timeout_s=120)
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(lines_of(result.stdout)) == [f"record {i:06d}" for i in range(count)]


def test_help_lists_the_kafka_flags_with_examples():
    for tool, flags in (("produce", ["--bootstrap-server", "--topic", "--property", "--producer-property",
                                     "--compression-codec", "--request-required-acks", "--sync"]),
                        ("consume", ["--from-beginning", "--partition", "--offset", "--max-messages",
                                     "--timeout-ms", "--group", "--isolation-level", "--consumer-property"])):
        result = weir(tool, "--help")
        assert result.returncode == 0
        text = result.stdout.decode()
        assert "Examples:" in text, tool
        for flag in flags:
            assert flag in text, (tool, flag)
    assert os.access(WEIR, os.X_OK)
