"""The course's first Kafka lab, with `weir` in place of `bin/kafka-*.sh`.

Goal: the sequence a student types in the lab works unchanged apart from the
command name, and each step prints what the lab sheet shows: create topic `test`
(2 partitions, replication factor 1), list and describe it, console-produce
lines, console-consume them from the beginning, consume in a group, describe the
group (lag 0, then lag 1 after one more record), and dump the first segment.

Method: only `weir` subcommands talk to one live broker (no other client), the
way the lab does it; every step's exit code and output are checked for content
and counts; the segment dump runs on the broker's files after a clean stop.
"""

from __future__ import annotations

import subprocess

import conftest

LINES = ["hello weir", "second line", "third, with a comma"]


def weir(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([conftest.WEIR_BIN, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def ok(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 0, f"exit {run.returncode}\nstdout: {run.stdout}\nstderr: {run.stderr}"
    return run.stdout


def group_rows(bootstrap: str, group: str) -> list[dict[str, str]]:
    """`weir groups --describe` as rows keyed by the header's column names."""
    out = ok(weir("groups", "--bootstrap-server", bootstrap, "--describe", "--group", group))
    lines = [line for line in out.splitlines() if line.strip()]
    header_at = next(i for i, line in enumerate(lines) if line.startswith("GROUP"))
    columns = lines[header_at].split()
    rows = [dict(zip(columns, line.split())) for line in lines[header_at + 1:]]
    assert all(row["GROUP"] == group and row["TOPIC"] == "test" for row in rows), out
    return rows


def test_the_first_lab_runs_with_weir_in_place_of_the_kafka_scripts(broker):
    b = ["--bootstrap-server", broker.bootstrap]

    assert ok(weir("topics", *b, "--create", "--topic", "test", "--partitions", "2",
                   "--replication-factor", "1")) == "Created topic test.\n"
    assert ok(weir("topics", *b, "--list")) == "test\n"

    described = ok(weir("topics", *b, "--describe", "--topic", "test")).splitlines()
    assert described[0].startswith("Topic: test\tTopicId: "), described
    assert "\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: " in described[0]
    assert [line.split("\t")[1:6] for line in described[1:]] == [
        ["Topic: test", f"Partition: {p}", "Leader: 0", "Replicas: 0", "Isr: 0"] for p in (0, 1)]

    ok(weir("produce", *b, "--topic", "test", stdin="".join(f"{line}\n" for line in LINES)))

    consumed = weir("consume", *b, "--topic", "test", "--from-beginning", "--max-messages", "3")
    assert sorted(ok(consumed).splitlines()) == sorted(LINES)
    assert "Processed a total of 3 messages" in consumed.stderr

    in_group = weir("consume", *b, "--topic", "test", "--group", "lab", "--from-beginning",
                    "--timeout-ms", "3000")
    assert sorted(ok(in_group).splitlines()) == sorted(LINES)
    assert "Processed a total of 3 messages" in in_group.stderr

    rows = group_rows(broker.bootstrap, "lab")
    assert sorted(row["PARTITION"] for row in rows) == ["0", "1"]
    assert sum(int(row["CURRENT-OFFSET"]) for row in rows) == 3
    assert [row["LAG"] for row in rows] == ["0", "0"]

    ok(weir("produce", *b, "--topic", "test", stdin="one more\n"))
    rows = group_rows(broker.bootstrap, "lab")
    assert sorted(int(row["LAG"]) for row in rows) == [0, 1]
    assert sum(int(row["LOG-END-OFFSET"]) for row in rows) == 4

    assert broker.stop() == 0
    dumped = []
    for partition in (0, 1):
        segment = broker.data_dir / f"test-{partition}" / "00000000000000000000.log"
        out = ok(weir("dump-log", "--files", str(segment), "--print-data-log"))
        assert out.splitlines()[0] == f"Dumping {segment}"
        assert "Log starting offset: 0" in out
        dumped += [line.split(" payload: ", 1)[1] for line in out.splitlines() if " payload: " in line]
    assert sorted(dumped) == sorted(LINES + ["one more"])
