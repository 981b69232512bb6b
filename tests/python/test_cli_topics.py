"""`weir topics` and `weir configs` print what Kafka's kafka-topics.sh and kafka-configs.sh print.

Goal: the operator tools are drop-in for Kafka's: the same flags, byte-exact
stdout (tab-separated describe lines, sorted listings, "Created topic T."),
Kafka's error texts on stderr prefixed with "Error: ", exit code 0 on success,
1 when the cluster refuses, 2 for usage errors.

Method: each test starts its own broker (conftest's ``broker`` fixture) and
runs the real ``weir`` binary as a subprocess, as an operator would. Expected
outputs are written out in full; values the broker chooses (topic ids) are
read independently from the broker's data directory (``partition.metadata``),
and config synonyms from confluent-kafka's AdminClient, so the tool's
formatting is checked against another client's view of the same data.
"""

from __future__ import annotations

import socket
import subprocess

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

import kproto
import support
from conftest import WEIR_BIN

TOOL_TIMEOUT_S = 60
INCREMENTAL_ALTER_CONFIGS = 44


def weir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WEIR_BIN, *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def topics(broker, *args: str) -> subprocess.CompletedProcess:
    return weir("topics", "--bootstrap-server", broker.bootstrap, *args)


def configs(broker, *args: str) -> subprocess.CompletedProcess:
    return weir("configs", "--bootstrap-server", broker.bootstrap, *args)


def ok(result: subprocess.CompletedProcess) -> str:
    """The stdout of a run that must have succeeded silently on stderr."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.stderr == "", result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess, code: int = 1) -> str:
    """The stderr of a run that must have failed with `code` and printed nothing on stdout."""
    assert result.returncode == code, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.stdout == "", result.stdout
    return result.stderr


def topic_id(broker, topic: str) -> str:
    """The topic id as the broker wrote it (Kafka's base64 form) in partition 0's partition.metadata."""
    text = (broker.partition_dir(topic, 0) / "partition.metadata").read_text()
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return fields["topic_id"]


def partition_line(topic: str, partition: int) -> str:
    return (f"\tTopic: {topic}\tPartition: {partition}\tLeader: 0\tReplicas: 0\tIsr: 0"
            f"\tElr: N/A\tLastKnownElr: N/A")


def test_create_prints_created_topic_and_list_prints_names_sorted(broker):
    assert ok(topics(broker, "--create", "--topic", "orders", "--partitions", "3",
                     "--replication-factor", "1")) == "Created topic orders.\n"
    assert ok(topics(broker, "--create", "--topic", "audit")) == "Created topic audit.\n"
    assert ok(topics(broker, "--create", "--topic", "Zeta", "--partitions", "1")) == "Created topic Zeta.\n"
    assert ok(topics(broker, "--list")) == "Zeta\naudit\norders\n"


def test_an_empty_cluster_lists_one_empty_line_as_kafka(broker):
    assert ok(topics(broker, "--list")) == "\n"


def test_create_warns_about_dots_and_underscores_as_kafka(broker):
    assert ok(topics(broker, "--create", "--topic", "my_topic")) == (
        "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') "
        "could collide. To avoid issues it is best to use either, but not both.\n"
        "Created topic my_topic.\n")


def test_describe_prints_the_topic_line_and_a_tab_led_line_per_partition(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--partitions", "3", "--replication-factor", "1",
              "--config", "retention.ms=1000"))
    ok(topics(broker, "--create", "--topic", "audit", "--partitions", "1"))
    orders = [f"Topic: orders\tTopicId: {topic_id(broker, 'orders')}\tPartitionCount: 3\t"
              f"ReplicationFactor: 1\tConfigs: retention.ms=1000"] + [partition_line("orders", p) for p in range(3)]
    audit = [f"Topic: audit\tTopicId: {topic_id(broker, 'audit')}\tPartitionCount: 1\t"
             f"ReplicationFactor: 1\tConfigs: ", partition_line("audit", 0)]
    assert ok(topics(broker, "--describe", "--topic", "orders")).splitlines() == orders
    assert ok(topics(broker, "--describe")).splitlines() == audit + orders
    # --topic is a regular expression over whole names, as Kafka's; commas separate alternatives.
    assert ok(topics(broker, "--describe", "--topic", "ord.*")).splitlines() == orders
    assert ok(topics(broker, "--describe", "--topic", "audit,orders")).splitlines() == audit + orders
    assert failed(topics(broker, "--describe", "--topic", "order")) == \
        "Error: Topic 'order' does not exist as expected\n", "a prefix is no match"


def test_describe_by_topic_id_and_with_overrides_only(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--partitions", "2", "--config", "retention.ms=1000"))
    ok(topics(broker, "--create", "--topic", "plain", "--partitions", "1"))
    orders_line = (f"Topic: orders\tTopicId: {topic_id(broker, 'orders')}\tPartitionCount: 2\t"
                   f"ReplicationFactor: 1\tConfigs: retention.ms=1000")
    assert ok(topics(broker, "--describe", "--topic-id", topic_id(broker, "orders"))).splitlines() == \
        [orders_line, partition_line("orders", 0), partition_line("orders", 1)]
    assert ok(topics(broker, "--describe", "--topics-with-overrides")) == orders_line + "\n"
    assert ok(topics(broker, "--describe", "--under-replicated-partitions")) == ""
    assert failed(topics(broker, "--describe", "--topic-id", "AAAAAAAAAAAAAAAAAAAAAQ")) == \
        "Error: TopicId 'AAAAAAAAAAAAAAAAAAAAAQ' does not exist as expected\n"


def test_creating_an_existing_topic_fails_unless_if_not_exists(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--partitions", "2"))
    assert failed(topics(broker, "--create", "--topic", "orders", "--partitions", "2")) == \
        "Error: Topic 'orders' already exists.\n"
    assert ok(topics(broker, "--create", "--topic", "orders", "--partitions", "5", "--if-not-exists")) == ""
    assert "PartitionCount: 2\t" in ok(topics(broker, "--describe", "--topic", "orders")), \
        "--if-not-exists left the topic as it was"


def test_alter_adds_partitions_and_refuses_fewer(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--partitions", "2"))
    assert ok(topics(broker, "--alter", "--topic", "orders", "--partitions", "5")) == ""
    lines = ok(topics(broker, "--describe", "--topic", "orders")).splitlines()
    assert lines[0] == (f"Topic: orders\tTopicId: {topic_id(broker, 'orders')}\tPartitionCount: 5\t"
                        f"ReplicationFactor: 1\tConfigs: ")
    assert lines[1:] == [partition_line("orders", p) for p in range(5)]
    error = failed(topics(broker, "--alter", "--topic", "orders", "--partitions", "3"))
    assert error.startswith("Error: CreatePartitions for topic 'orders': INVALID_PARTITIONS"), error
    assert "PartitionCount: 5\t" in ok(topics(broker, "--describe", "--topic", "orders"))


def test_delete_removes_matching_topics_and_if_exists_tolerates_none(broker):
    for name in ("logs-eu", "logs-us", "metrics"):
        ok(topics(broker, "--create", "--topic", name))
    assert ok(topics(broker, "--delete", "--topic", "metrics")) == ""
    assert ok(topics(broker, "--list")) == "logs-eu\nlogs-us\n"
    assert ok(topics(broker, "--delete", "--topic", "logs-.*")) == ""
    assert ok(topics(broker, "--list")) == "\n"
    assert ok(topics(broker, "--delete", "--topic", "metrics", "--if-exists")) == ""


def test_an_unknown_topic_is_an_error_for_describe_alter_and_delete(broker):
    ok(topics(broker, "--create", "--topic", "orders"))
    expected = "Error: Topic 'missing' does not exist as expected\n"
    assert failed(topics(broker, "--describe", "--topic", "missing")) == expected
    assert failed(topics(broker, "--alter", "--topic", "missing", "--partitions", "3")) == expected
    assert failed(topics(broker, "--delete", "--topic", "missing")) == expected
    assert ok(topics(broker, "--describe", "--topic", "missing", "--if-exists")) == ""
    assert ok(topics(broker, "--alter", "--topic", "missing", "--partitions", "3", "--if-exists")) == ""
    assert ok(topics(broker, "--list")) == "orders\n", "nothing was created or deleted"


def test_list_includes_internal_topics_unless_excluded(broker):
    ok(topics(broker, "--create", "--topic", "orders"))
    # An offset commit makes the broker create __consumer_offsets.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "cli-topics"})
    try:
        consumer.commit(offsets=[TopicPartition("orders", 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    assert ok(topics(broker, "--list")) == "__consumer_offsets\norders\n"
    assert ok(topics(broker, "--list", "--exclude-internal")) == "orders\n"
    described = ok(topics(broker, "--describe", "--exclude-internal")).splitlines()
    assert [line for line in described if line.startswith("Topic: ")] == \
        [f"Topic: orders\tTopicId: {topic_id(broker, 'orders')}\tPartitionCount: 1\t"
         f"ReplicationFactor: 1\tConfigs: "]


def test_a_closed_port_fails_with_a_message_naming_the_address():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    for tool in (["topics", "--list"], ["configs", "--describe", "--topic", "orders"]):
        error = failed(weir(tool[0], "--bootstrap-server", address, *tool[1:]))
        assert error.startswith(f"Error: cannot connect to {address}: "), error
        assert "--bootstrap-server" in error and error.count("\n") == 1, error


def test_usage_errors_exit_with_2_and_say_what_is_wrong(broker):
    error = failed(topics(broker, "--list", "--describe"), code=2)
    assert error.startswith("error: the argument '--list' cannot be used with '--describe'"), error
    error = failed(topics(broker, "--create", "--topic", "orders", "--partitions", "0"), code=2)
    assert error.startswith("error: The partitions must be greater than 0\n"), error
    error = failed(topics(broker, "--create", "--topic", "orders", "--config", "retention.ms"), code=2)
    assert 'Invalid topic config: all configs to be added must be in the format "key=val".' in error, error
    error = failed(configs(broker, "--alter", "--topic", "orders"), code=2)
    assert error.startswith("error: At least one of --add-config, --add-config-file, or --delete-config "
                            "must be specified with --alter\n"), error
    assert ok(topics(broker, "--list")) == "\n", "nothing was created"


def test_configs_describe_prints_the_topics_dynamic_configs_with_synonyms(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--config", "retention.ms=1000",
              "--config", "cleanup.policy=compact"))
    # The synonyms as another client sees them: the tool must print exactly these.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    described = admin.describe_configs([resource])[resource].result(timeout=30)

    def line(name: str) -> str:
        entry = described[name]
        synonyms = ", ".join(f"{ConfigSource(s.source).name}:{s.name}={s.value}" for s in entry.synonyms.values())
        return f"  {name}={entry.value} sensitive={str(entry.is_sensitive).lower()} synonyms={{{synonyms}}}"

    assert line("retention.ms").startswith(
        "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000")
    assert line("cleanup.policy") == ("  cleanup.policy=compact sensitive=false synonyms="
                                      "{DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, "
                                      "DEFAULT_CONFIG:log.cleanup.policy=delete}")
    expected = ["Dynamic configs for topic orders are:", line("cleanup.policy"), line("retention.ms")]
    assert ok(configs(broker, "--describe", "--topic", "orders")).splitlines() == expected
    assert ok(configs(broker, "--describe", "--entity-type", "topics", "--entity-name", "orders")
              ).splitlines() == expected
    everything = ok(configs(broker, "--describe", "--topic", "orders", "--all")).splitlines()
    assert everything[0] == "All configs for topic orders are:"
    assert everything[1:] == sorted(everything[1:]) and len(everything) == len(described) + 1
    assert line("retention.ms") in everything and line("segment.bytes") in everything
    error = failed(configs(broker, "--describe", "--topic", "missing"))
    assert error.startswith("Error: DescribeConfigs for topic 'missing': UNKNOWN_TOPIC_OR_PARTITION"), error


def test_configs_describe_of_brokers_prints_kafkas_headers(broker):
    assert ok(configs(broker, "--describe", "--broker", "0")) == "Dynamic configs for broker 0 are:\n"
    assert ok(configs(broker, "--describe", "--entity-type", "brokers")) == \
        "Dynamic configs for broker 0 are:\nDefault configs for brokers in the cluster are:\n"
    everything = ok(configs(broker, "--describe", "--broker", "0", "--all")).splitlines()
    assert everything[0] == "All configs for broker 0 are:"
    assert any(line.startswith(f"  listeners=PLAINTEXT://{broker.bootstrap} sensitive=false synonyms={{")
               for line in everything[1:]), everything


def test_configs_alter_applies_the_change_and_refuses_deleting_static_keys(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--config", "retention.ms=1000"))
    with broker.connect() as conn:
        error_code, apis = kproto.api_versions(conn)
        assert error_code == 0
    assert INCREMENTAL_ALTER_CONFIGS in apis
    assert failed(configs(broker, "--alter", "--topic", "orders", "--delete-config", "segment.ms")) == \
        "Error: Invalid config(s): segment.ms\n", "only dynamic configs can be deleted, as Kafka checks"
    result = configs(broker, "--alter", "--topic", "orders", "--add-config", "retention.ms=2000")
    assert ok(result) == "Completed updating config for topic orders.\n"
    assert "Configs: retention.ms=2000\n" in ok(topics(broker, "--describe", "--topic", "orders"))


def test_topics_created_by_the_tool_work_for_clients(broker):
    ok(topics(broker, "--create", "--topic", "orders", "--partitions", "2"))
    records = support.keyed_records(40, 4)
    delivered = support.confluent_produce(broker.bootstrap, "orders", records)
    consumed = support.confluent_consume(broker.bootstrap, "orders", 2, len(records))
    support.assert_roundtrip(records, consumed, 2, delivered)
