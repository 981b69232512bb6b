"""Live config changes: AlterConfigs and IncrementalAlterConfigs for topics and brokers.

Goal: operators change topic and broker configs at runtime with the clients and
tools they already use, the change is in force as soon as it is acknowledged,
bad values are refused with INVALID_CONFIG and change nothing, and every change
survives a restart.

Method: a real broker per test; changes are made through confluent-kafka's
AdminClient (incremental and legacy alter), kafka-python's admin client and
`weir configs`, then read back with DescribeConfigs from another client, after
a clean restart and after kill -9. Effects are checked where they act: a
changed `max.message.bytes` makes the broker refuse a record it accepted
before.
"""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource)

import support
from conftest import WEIR_BIN

TIMEOUT_S = 30


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def describe(broker, resource_type, name: str) -> dict[str, tuple[str, str]]:
    """name → (value, source name) as confluent-kafka reads them."""
    resource = ConfigResource(resource_type, name)
    client = admin(broker)  # held until the answer: a collected client cancels its requests
    entries = client.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    return {key: (entry.value, ConfigSource(entry.source).name) for key, entry in entries.items()}


def synonyms(broker, resource_type, name: str, key: str) -> list[str]:
    resource = ConfigResource(resource_type, name)
    client = admin(broker)
    entry = client.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)[key]
    return [f"{ConfigSource(s.source).name}:{s.name}={s.value}" for s in entry.synonyms.values()]


def incremental(broker, resource_type, name: str, *ops: tuple[str, str | None, AlterConfigOpType],
                validate_only: bool = False) -> None:
    entries = [ConfigEntry(key, value, incremental_operation=op) for key, value, op in ops]
    resource = ConfigResource(resource_type, name, incremental_configs=entries)
    client = admin(broker)
    futures = client.incremental_alter_configs([resource], validate_only=validate_only,
                                               request_timeout=TIMEOUT_S)
    futures[resource].result(timeout=TIMEOUT_S)


def weir_configs(broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WEIR_BIN, "configs", "--bootstrap-server", broker.bootstrap, *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


TOPIC = ConfigResource.Type.TOPIC
BROKER = ConfigResource.Type.BROKER
SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
APPEND, SUBTRACT = AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT


def test_incremental_topic_changes_apply_and_survive_restart_and_kill(broker):
    support.create_topic(broker.bootstrap, "orders", 2, {"retention.ms": "1000", "segment.bytes": "100000"})
    incremental(broker, TOPIC, "orders", ("retention.ms", "5000", SET), ("segment.bytes", None, DELETE),
                ("cleanup.policy", "compact", APPEND))
    expected = {"retention.ms": ("5000", "DYNAMIC_TOPIC_CONFIG"),
                "segment.bytes": ("1073741824", "DEFAULT_CONFIG"),
                "cleanup.policy": ("delete,compact", "DYNAMIC_TOPIC_CONFIG")}

    def check() -> None:
        described = describe(broker, TOPIC, "orders")
        assert {key: described[key] for key in expected} == expected

    check()
    broker.restart()
    check()
    incremental(broker, TOPIC, "orders", ("cleanup.policy", "delete", SUBTRACT))
    expected["cleanup.policy"] = ("compact", "DYNAMIC_TOPIC_CONFIG")
    broker.kill9()
    broker.restart()
    check()


def test_bad_values_get_invalid_config_and_change_nothing(broker):
    support.create_topic(broker.bootstrap, "orders", 1, {"retention.ms": "1000"})
    cases = [
        (("retention.ms", "soon", SET), "Not a number of type LONG"),
        (("retention.ms", "-7", SET), "at least -1"),
        (("min.cleanable.dirty.ratio", "1.5", SET), "between 0 and 1"),
        (("cleanup.policy", "archive", SET), "compact, delete"),
        (("no.such.config", "1", SET), "Unknown topic config name"),
        (("retention.ms", "5", APPEND), "append is not allowed"),
    ]
    for op, reason in cases:
        with pytest.raises(KafkaException) as raised:
            incremental(broker, TOPIC, "orders", ("segment.ms", "60000", SET), op)
        error = raised.value.args[0]
        assert error.name() == "INVALID_CONFIG", (op, error)
        assert reason in error.str(), (op, error.str())
    with pytest.raises(KafkaException) as raised:
        incremental(broker, TOPIC, "orders", ("min.compaction.lag.ms", "10", SET),
                    ("max.compaction.lag.ms", "5", SET))
    assert "min.compaction.lag.ms" in raised.value.args[0].str()
    # validate_only checks without changing.
    incremental(broker, TOPIC, "orders", ("retention.ms", "9000", SET), validate_only=True)
    described = describe(broker, TOPIC, "orders")
    assert described["retention.ms"] == ("1000", "DYNAMIC_TOPIC_CONFIG")
    assert described["segment.ms"] == ("604800000", "DEFAULT_CONFIG")
    with pytest.raises(KafkaException) as raised:
        incremental(broker, TOPIC, "missing", ("retention.ms", "1", SET))
    assert raised.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_legacy_alter_configs_replaces_the_whole_set(broker):
    support.create_topic(broker.bootstrap, "orders", 1, {"retention.ms": "1000", "segment.ms": "60000"})
    resource = ConfigResource(TOPIC, "orders", set_config={"max.message.bytes": "5000"})
    client = admin(broker)
    client.alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    described = describe(broker, TOPIC, "orders")
    assert described["max.message.bytes"] == ("5000", "DYNAMIC_TOPIC_CONFIG")
    assert described["retention.ms"] == ("604800000", "DEFAULT_CONFIG"), "keys not named are removed"
    assert described["segment.ms"] == ("604800000", "DEFAULT_CONFIG")


def test_a_changed_max_message_bytes_acts_on_the_next_produce(broker):
    support.create_topic(broker.bootstrap, "orders", 1)
    support.confluent_produce(broker.bootstrap, "orders", [(b"k", b"x" * 3000)])
    incremental(broker, TOPIC, "orders", ("max.message.bytes", "1000", SET))
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                         "message.max.bytes": 100_000})
    errors = []
    producer.produce("orders", b"x" * 3000, key=b"k", on_delivery=lambda error, _: errors.append(error))
    producer.flush(TIMEOUT_S)
    assert len(errors) == 1 and errors[0] is not None and errors[0].name() == "MSG_SIZE_TOO_LARGE", errors
    incremental(broker, TOPIC, "orders", ("max.message.bytes", None, DELETE))
    assert support.confluent_produce(broker.bootstrap, "orders", [(b"k", b"x" * 3000)])[0][1] == 1


def test_dynamic_broker_defaults_layer_under_topics_and_survive_restart(make_broker):
    broker = make_broker({"log.retention.minutes": 60})
    support.create_topic(broker.bootstrap, "plain", 1)
    support.create_topic(broker.bootstrap, "custom", 1, {"retention.ms": "1000"})
    # confluent-kafka cannot name the cluster-default resource (""): weir configs can.
    result = weir_configs(broker, "--alter", "--broker-defaults", "--add-config", "log.retention.ms=12345")
    assert (result.returncode, result.stderr) == (0, ""), result
    incremental(broker, BROKER, "0", ("log.segment.bytes", "2000000", SET))

    def check() -> None:
        plain = describe(broker, TOPIC, "plain")
        assert plain["retention.ms"] == ("12345", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        assert plain["segment.bytes"] == ("2000000", "DYNAMIC_BROKER_CONFIG")
        assert synonyms(broker, TOPIC, "plain", "retention.ms") == [
            "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=12345",
            "STATIC_BROKER_CONFIG:log.retention.minutes=60",
            "DEFAULT_CONFIG:log.retention.hours=168"]
        assert describe(broker, TOPIC, "custom")["retention.ms"] == ("1000", "DYNAMIC_TOPIC_CONFIG")
        node = describe(broker, BROKER, "0")
        assert node["log.retention.ms"] == ("12345", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        assert node["log.segment.bytes"] == ("2000000", "DYNAMIC_BROKER_CONFIG")
        defaults = weir_configs(broker, "--describe", "--broker-defaults")
        assert defaults.returncode == 0, defaults
        lines = defaults.stdout.splitlines()
        assert lines[0] == "Default configs for brokers in the cluster are:" and len(lines) == 2, lines
        assert lines[1].startswith("  log.retention.ms=12345 sensitive=false"), lines

    check()
    broker.restart()
    check()
    # Static keys need a restart, as in Kafka.
    with pytest.raises(KafkaException) as raised:
        incremental(broker, BROKER, "0", ("log.dirs", "/elsewhere", SET))
    assert raised.value.args[0].name() == "INVALID_CONFIG"
    assert "log.dirs" in raised.value.args[0].str()
    with pytest.raises(KafkaException):
        incremental(broker, BROKER, "0", ("log.retention.ms", "never", SET))
    result = weir_configs(broker, "--alter", "--broker-defaults", "--delete-config", "log.retention.ms")
    assert (result.returncode, result.stderr) == (0, ""), result
    assert describe(broker, TOPIC, "plain")["retention.ms"] == ("3600000", "STATIC_BROKER_CONFIG")


def test_weir_configs_and_kafka_python_alter_broker_and_topic_configs(broker):
    from kafka.admin import ConfigResource as KafkaPythonResource, ConfigResourceType, KafkaAdminClient

    support.create_topic(broker.bootstrap, "orders", 1)
    result = weir_configs(broker, "--alter", "--broker-defaults", "--add-config", "log.retention.bytes=1000000")
    assert (result.returncode, result.stdout, result.stderr) == \
        (0, "Completed updating default config for brokers in the cluster.\n", ""), result
    result = weir_configs(broker, "--describe", "--broker-defaults")
    assert result.returncode == 0 and result.stdout.splitlines()[0] == \
        "Default configs for brokers in the cluster are:", result
    assert result.stdout.splitlines()[1].startswith("  log.retention.bytes=1000000 sensitive=false"), result.stdout
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        client.alter_configs([KafkaPythonResource(ConfigResourceType.TOPIC, "orders",
                                                  configs={"retention.ms": "4242"})])
    finally:
        client.close()
    described = describe(broker, TOPIC, "orders")
    assert described["retention.ms"] == ("4242", "DYNAMIC_TOPIC_CONFIG")
    assert described["retention.bytes"] == ("1000000", "DYNAMIC_DEFAULT_BROKER_CONFIG")


def test_create_topics_refuses_bad_configs_with_kafkas_messages(broker):
    from confluent_kafka.admin import NewTopic

    client = admin(broker)
    cases = {
        "bad-type": ({"retention.ms": "soon"}, "Not a number of type LONG"),
        "bad-range": ({"segment.bytes": "10"}, "at least 14"),
        "conflict": ({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"},
                     "min.compaction.lag.ms"),
        "unknown": ({"retention.fortnights": "2"}, "Unknown topic config name"),
    }
    for topic, (config, reason) in cases.items():
        future = client.create_topics([NewTopic(topic, 1, 1, config=config)])[topic]
        with pytest.raises(KafkaException) as raised:
            future.result(timeout=TIMEOUT_S)
        error = raised.value.args[0]
        assert error.name() == "INVALID_CONFIG" and reason in error.str(), (topic, error)
    assert set(client.list_topics(timeout=TIMEOUT_S).topics) == set(), "nothing was created"
