"""`weir perf` load tools against a real broker: counts, output shapes, failure modes.

Goal: the producer tool writes exactly the records it reports (acks=1, acks=all with
idempotence, lz4), in Kafka's summary format; the consumer tool reads them all back
and prints Kafka's header and values; the end-to-end tool prints Kafka's latency
lines with sane values; bad usage exits 2 and a broker refusal exits 1; `weir perf
linkedin` runs its matrix on a small scale and writes results.json and the plots.

Method: the real binary against the ``broker`` fixture; record counts are checked with
kcat's offset query (``-Q``), not with the tool's own claim.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import kproto
import support
from conftest import WEIR_BIN

SUMMARY = re.compile(
    r"^(\d+) records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
    r"[\d.]+ ms max latency, [\d.]+ ms 50th, [\d.]+ ms 95th, [\d.]+ ms 99th, [\d.]+ ms 99.9th\.$",
    re.M)


def perf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([WEIR_BIN, "perf", *args], capture_output=True, text=True, timeout=timeout)


def log_end(broker, topic: str) -> int:
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-Q", "-t", f"{topic}:0:-1"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return int(out.split()[-1])


def test_produce_writes_exactly_the_records_it_reports_with_each_setting(broker):
    for props in (["acks=1"], ["acks=all"], ["acks=1", "compression.type=lz4", "batch.size=65536"]):
        topic = support.unique_topic("perf")
        result = perf("produce", "--topic", topic, "--num-records", "200000", "--record-size", "100",
                      "--throughput", "-1", "--producer-props", f"bootstrap.servers={broker.bootstrap}",
                      *props)
        assert result.returncode == 0, result.stderr
        match = SUMMARY.search(result.stdout)
        assert match, result.stdout
        assert int(match.group(1)) == 200_000
        assert log_end(broker, topic) == 200_000, props

    consumed = perf("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                    "--messages", "200000", "--timeout", "5000")
    assert consumed.returncode == 0, consumed.stderr
    header, values = consumed.stdout.strip().splitlines()
    assert header.startswith("start.time, end.time, data.consumed.in.MB")
    columns = values.split(", ")
    assert len(columns) == 10
    assert int(columns[4]) == 200_000
    assert abs(float(columns[2]) - 200_000 * 100 / 2**20) < 0.01, "MB counts value bytes"


def test_throttled_produce_holds_the_rate_and_idempotent_batches_carry_a_producer(broker):
    topic = support.unique_topic("throttled")
    result = perf("produce", "--topic", topic, "--num-records", "20000", "--record-size", "50",
                  "--throughput", "10000", "--bootstrap-server", broker.bootstrap)
    assert result.returncode == 0, result.stderr
    rate = float(re.search(r"records sent, ([\d.]+) records/sec", result.stdout).group(1))
    assert 8_000 < rate < 11_000, rate
    assert log_end(broker, topic) == 20_000
    batches = [batch for path in broker.segment_files(topic, 0) for batch in kproto.read_log_file(path)]
    assert batches and all(batch.producer_id >= 0 for batch in batches), "idempotent by default"
    # linger.ms=0: records arriving while every in-flight slot is busy join the next
    # batch (Kafka's accumulator) instead of waiting for a slot one request each.
    lingerless = support.unique_topic("lingerless")
    result = perf("produce", "--topic", lingerless, "--num-records", "40000", "--record-size", "50",
                  "--throughput", "20000", "--producer-props", f"bootstrap.servers={broker.bootstrap}",
                  "linger.ms=0", "max.in.flight.requests.per.connection=1")
    assert result.returncode == 0, result.stderr
    rate = float(re.search(r"records sent, ([\d.]+) records/sec", result.stdout).group(1))
    assert 16_000 < rate < 22_000, rate
    assert log_end(broker, lingerless) == 40_000


def test_e2e_latency_prints_kafkas_lines_and_consumer_timeout_warns(broker):
    topic = support.unique_topic("latency")
    result = perf("e2e-latency", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                  "--num-records", "300", "--producer-acks", "1", "--record-size", "100")
    assert result.returncode == 0, result.stderr
    avg = float(re.search(r"^Avg latency: ([\d.]+) ms$", result.stdout, re.M).group(1))
    p50, p99, p999 = map(float, re.search(
        r"^Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)$", result.stdout, re.M).groups())
    assert 0 < p50 <= p99 <= p999 and avg > 0

    loaded = perf("e2e-latency", "--bootstrap-server", broker.bootstrap, "--topic", topic + "-load",
                  "--num-records", "20000", "--throughput", "20000", "--record-size", "100")
    assert loaded.returncode == 0, loaded.stderr
    assert re.search(r"^20000 records at [\d.]+ records/sec$", loaded.stdout, re.M), loaded.stdout

    short = perf("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                 "--messages", "1000", "--timeout", "1000")
    assert short.returncode == 0
    assert "Exiting before consuming the expected number of messages" in short.stderr
    assert short.stdout.strip().splitlines()[1].split(", ")[4] == "300"


def test_bad_usage_exits_2_and_broker_refusals_exit_1(broker):
    assert perf("produce", "--num-records", "5", "--record-size", "10", "--throughput", "-1").returncode == 2
    both = perf("produce", "--topic", "t", "--num-records", "5", "--throughput", "-1",
                "--bootstrap-server", broker.bootstrap)
    assert both.returncode == 2 and "--record-size or --payload-file" in both.stderr
    bad_acks = perf("produce", "--topic", "t", "--num-records", "5", "--record-size", "10",
                    "--throughput", "-1", "--producer-props", f"bootstrap.servers={broker.bootstrap}", "acks=7")
    assert bad_acks.returncode == 2 and "acks" in bad_acks.stderr
    too_big = perf("produce", "--topic", support.unique_topic("big"), "--num-records", "3",
                   "--record-size", "2000000", "--throughput", "-1", "--producer-props",
                   f"bootstrap.servers={broker.bootstrap}", "acks=1", "batch.size=4000000",
                   "max.request.size=5000000")
    assert too_big.returncode == 1 and "MESSAGE_TOO_LARGE" in too_big.stderr.upper().replace(" ", "_"), too_big.stderr


def test_linkedin_matrix_runs_small_and_writes_results(tmp_path):
    out = tmp_path / "linkedin"
    # As root (CI), with the page cache dropped before each producer scenario.
    drop = ["--drop-caches"] if os.geteuid() == 0 else []
    result = perf("linkedin", "--out", str(out), "--records", "60000", "--latency-records", "50",
                  *drop, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 11, result.stdout
    assert all("rec/s" in row and "% of 1" in row for row in table[2:5]), "replicated scenarios ran"
    document = json.loads((out / "results.json").read_text())
    assert document["page_cache_dropped_before_each_producer_scenario"] == bool(drop)
    # The single broker leaves a core to the load generators, when there is one to leave.
    cores = sorted(os.sched_getaffinity(0))
    assert document["broker_shards"] == max(1, len(cores) - 1) == len(document["broker_cores"]), document
    assert document["broker_cores"] == cores[:document["broker_shards"]], document
    expected_clients = cores[document["broker_shards"]:] or cores
    assert document["load_generator_cores"] == expected_clients, document
    assert f"broker: {document['broker_shards']} shard(s) on cores {document['broker_cores']}" in result.stdout, \
        result.stdout[:500]
    one = document["scenarios"]["1: 1 producer thread, no replication"]
    assert one["result"]["records"] == 60_000
    assert one["broker_cpu_s_per_gb"] >= 0
    # The floors measured in the same run: plain syscalls on the same path.
    assert 0 < one["page_cache_write_cpu_s_per_gb"] and 0 < one["socket_to_page_cache_cpu_s_per_gb"], one
    consumer = document["scenarios"]["6: 1 consumer"]
    assert 0 < consumer["page_cache_to_socket_cpu_s_per_gb"], consumer
    assert "socket + write" in table[1] and "sendfile floor" in table[6], table
    for name in ("2: 1 producer, 3x async replication", "3: 1 producer, 3x sync replication",
                 "4: 3 producers, 3x async replication"):
        replicated = document["scenarios"][name]
        assert replicated["replication_factor"] == 3 and replicated["records"] > 0, replicated
        assert replicated["ratio_to_no_replication"] > 0
        # Only acks=all gets the ceiling of what one machine allows at the floors.
        ceiling = replicated["ratio_ceiling_at_the_floors"]
        assert (ceiling is not None and ceiling > 0) == name.startswith("3:"), replicated
    assert one["client_cpu_s_per_gb"] > 0, one
    # Under load, half of the end-to-end test's own peak (a producer flat out beside a consumer).
    latency = document["scenarios"]["9: end-to-end latency (p50/p99/p99.9 ms)"]
    assert latency["flat_out"]["records"] == 60_000 and latency["flat_out"]["records_per_s"] > 0, latency
    assert latency["at_half_peak"]["records"] == int(latency["flat_out"]["records_per_s"] / 2 * 5), latency
    assert "flat out" in table[9] and "at half of it" in table[9], table[9]
    assert "% of 1 on" in table[3] and "; producer " in table[1], table
    for plot in ("throughput.svg", "message-size.svg", "stored-data.svg"):
        assert (out / plot).read_text().startswith("<svg")
    assert not any(path.name.startswith("data-") for path in out.iterdir()), "broker data removed"
    # The brokers' logs stay beside the results, counted for anything that held a shard up.
    logs = document["broker_logs"]
    assert logs["logs"] == [str(out / name) for name in
                            ("broker.log", "cluster-node0.log", "cluster-node1.log", "cluster-node2.log")], logs
    # Plain text: a log redirected to a file gets no terminal colours.
    assert "broker ready" in (out / "broker.log").read_text()
    assert "\x1b[" not in (out / "broker.log").read_text()
    assert "broker ready" in (out / "cluster-node1.log").read_text()
    assert logs["slow_segment_appends"] >= 0 and logs["shard_stalls"] >= 0, logs
    assert f"{logs['slow_segment_appends']} slow segment appends" in result.stdout, result.stdout[-500:]
