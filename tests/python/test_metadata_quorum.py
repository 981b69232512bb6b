"""The metadata log and the cluster tools: a quorum of one, across restarts.

Goal: a single broker keeps its metadata in the Raft log `weir-quorum/` (no
`weir-topics.json`), every change is committed there before it is answered,
a restart (clean or kill -9) replays it, an older `weir-topics.json` is imported
once, and `weir metadata-quorum describe` reports the quorum as
kafka-metadata-quorum.sh does.

Method: real brokers and the real `weir` binary; topic ids and configs are read back
with confluent-kafka's AdminClient (another client's view); the quorum's high
watermark is compared before and after changes.
"""

from __future__ import annotations

import json
import subprocess
import uuid

from confluent_kafka.admin import AdminClient, ConfigResource

import support
from conftest import WEIR_BIN

TOOL_TIMEOUT_S = 60


def weir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WEIR_BIN, *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def status(broker) -> dict[str, str]:
    """`weir metadata-quorum describe --status` as key → value."""
    result = weir("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--status")
    assert result.returncode == 0, result.stderr
    pairs = (line.split(":", 1) for line in result.stdout.splitlines())
    return {key.strip(): value.strip() for key, value in pairs}


def topic_config(broker, topic: str, key: str) -> str:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return configs[key].value


def test_topics_and_configs_live_in_the_metadata_log_across_clean_and_unclean_restarts(broker):
    data = broker.data_dir
    before = status(broker)
    assert before["LeaderId"] == "0" and before["CurrentVoters"] == "[0]", before
    topic = support.unique_topic("meta")
    support.create_topic(broker.bootstrap, topic, 4, config={"retention.ms": "123456"})
    after = status(broker)
    assert int(after["HighWatermark"]) > int(before["HighWatermark"]), (before, after)
    assert (data / "weir-quorum" / "entries.log").stat().st_size > 0
    assert not (data / "weir-topics.json").exists()
    records = support.keyed_records(40, 50)
    delivered = support.confluent_produce(broker.bootstrap, topic, records)
    for stop in (broker.stop, broker.kill9):
        stop()
        broker.restart()
        assert topic_config(broker, topic, "retention.ms") == "123456"
        result = weir("topics", "--bootstrap-server", broker.bootstrap, "--describe", "--topic", topic)
        assert result.returncode == 0 and "PartitionCount: 4" in result.stdout, result.stdout + result.stderr
        consumed = support.confluent_consume(broker.bootstrap, topic, 4, len(records))
        support.assert_roundtrip(records, consumed, 4, delivered)
        again = status(broker)
        assert int(again["LeaderEpoch"]) > int(after["LeaderEpoch"]), "every start is a new election"
        after = again


def test_an_older_topics_file_is_imported_once(make_broker):
    broker = make_broker(start=False)
    data = broker.data_dir
    topic_id = uuid.uuid4()
    legacy = {"version": 1, "topics": [{"name": "legacy", "id": str(topic_id), "partitions": 2,
                                         "configs": {"cleanup.policy": "compact"}, "partition_dirs": [0, 0]}],
              "broker_configs": {}}
    (data / "weir-topics.json").write_text(json.dumps(legacy))
    broker.start()
    assert "imported 1 topics" in broker.stderr_text()
    assert topic_config(broker, "legacy", "cleanup.policy") == "compact"
    assert not (data / "weir-topics.json").exists() and (data / "weir-topics.json.imported").exists()
    broker.restart()
    assert "imported" not in broker.stderr_text(since_last_start=True)
    assert topic_config(broker, "legacy", "cleanup.policy") == "compact"


def test_metadata_quorum_replication_lists_this_node_as_leader(broker):
    result = weir("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--replication")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus"
    fields = lines[1].split("\t")
    assert fields[0] == "0" and fields[2] == "0" and fields[5] == "Leader", lines
    assert int(fields[1]) == int(status(broker)["HighWatermark"]), "a quorum of one commits all it has"
    usage = weir("metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe")
    assert usage.returncode == 2 and "--status" in usage.stderr


def test_leader_election_reports_preferred_leaders_already_in_place(broker):
    topic = support.unique_topic("elect")
    support.create_topic(broker.bootstrap, topic, 2)
    tool = ("leader-election", "--bootstrap-server", broker.bootstrap, "--election-type", "PREFERRED")
    one = weir(*tool, "--topic", topic, "--partition", "1")
    assert (one.returncode, one.stdout) == (0, f"Valid replica already elected for partitions {topic}-1\n"), one.stderr
    everything = weir(*tool, "--all-topic-partitions")
    assert (everything.returncode, everything.stdout) == (0, ""), everything.stderr
    missing = weir(*tool, "--topic", "no-such-topic", "--partition", "0")
    assert missing.returncode == 1
    assert missing.stdout.startswith(
        "Error completing leader election (PREFERRED) for partition: no-such-topic-0: UNKNOWN_TOPIC_OR_PARTITION"), missing.stdout
    assert "1 replica(s) could not be elected" in missing.stderr
    usage = weir("leader-election", "--bootstrap-server", broker.bootstrap, "--election-type", "PREFERRED")
    assert usage.returncode == 2
