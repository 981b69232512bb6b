"""Compressed batches pass through weir untouched and round-trip intact.

Goal: records produced with each codec Kafka supports (gzip, snappy, lz4,
zstd) come back exactly once and in order, and weir stores the batches as
produced — compressed, with the producer's codec in the attributes — rather
than recompressing or expanding them.

Method: per codec, a fresh broker and a 3-partition topic; 20,000 keyed
records produced by confluent-kafka with ``compression.type`` set (and once by
Debian's kcat with ``-z snappy``), consumed back and checked with
support.assert_roundtrip; then the broker is stopped cleanly and every
partition's segment ``.log`` files are parsed: each batch must carry the
codec bits, a valid CRC-32C, offsets contiguous with the previous batch, and
the per-partition record counts must equal what was consumed. For gzip the
records are also decompressed from disk and compared byte for byte.
"""

from __future__ import annotations

import collections
import shutil
import subprocess

import pytest

import kproto
import support

PARTITIONS = 3
RECORDS = 20_000
DISTINCT_KEYS = 500
CODECS = {"gzip": kproto.CODEC_GZIP, "snappy": kproto.CODEC_SNAPPY, "lz4": kproto.CODEC_LZ4,
          "zstd": kproto.CODEC_ZSTD}


def assert_stored_compressed(broker, topic, codec, consumed):
    """Parses the segment files of a stopped broker and checks codec, CRC, offsets and counts."""
    per_partition = collections.defaultdict(list)
    for partition, offset, key, value in consumed:
        per_partition[partition].append((offset, key, value))
    for partition in range(PARTITIONS):
        segments = broker.segment_files(topic, partition)
        assert segments, f"no .log segment in {broker.partition_dir(topic, partition)}"
        batches = [b for segment in segments for b in kproto.read_log_file(segment)]
        codecs = collections.Counter(kproto.CODEC_NAMES.get(b.codec, b.codec) for b in batches if not b.is_control)
        assert set(codecs) == {kproto.CODEC_NAMES[codec]}, \
            f"partition {partition}: stored batch codecs {dict(codecs)}, producer asked for " \
            f"{kproto.CODEC_NAMES[codec]} (librdkafka silently sends uncompressed batches when the broker's " \
            f"ApiVersions do not enable the codec's feature, e.g. lz4 needs Fetch v2 advertised)"
        next_offset = 0
        for b in batches:
            assert b.base_offset == next_offset, \
                f"partition {partition}: batch at position {b.position} has base offset {b.base_offset}, " \
                f"expected {next_offset}"
            assert b.records_count == b.last_offset_delta + 1
            next_offset = b.last_offset + 1
        assert next_offset == len(per_partition[partition]), \
            f"partition {partition}: {next_offset} records on disk, {len(per_partition[partition])} consumed"
        assert len(batches) < next_offset, "every record in its own batch: compression was not exercised"
        if codec == kproto.CODEC_GZIP:
            on_disk = [(r.offset, r.key, r.value) for b in batches for r in b.records()]
            assert on_disk == per_partition[partition]


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("codec_name", list(CODECS))
def test_confluent_kafka_compressed_batches_round_trip_and_are_stored_compressed(make_broker, codec_name):
    broker = make_broker()
    topic = support.unique_topic(f"compressed-{codec_name}")
    support.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = support.keyed_records(RECORDS, DISTINCT_KEYS, payload_bytes=120)

    delivered = support.confluent_produce(broker.bootstrap, topic, records,
                                          config={"compression.type": codec_name, "linger.ms": 20})
    consumed = support.confluent_consume(broker.bootstrap, topic, PARTITIONS, RECORDS)
    support.assert_roundtrip(records, consumed, PARTITIONS, delivered)

    assert broker.stop() == 0, "broker did not exit cleanly on SIGTERM"
    assert_stored_compressed(broker, topic, CODECS[codec_name], consumed)


@pytest.mark.timeout_s(120)
def test_kcat_snappy_batches_round_trip_and_are_stored_compressed(make_broker, tmp_path):
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (tests/run installs Debian's kcat)"
    broker = make_broker()
    topic = support.unique_topic("compressed-kcat")
    support.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = support.keyed_records(RECORDS, DISTINCT_KEYS, payload_bytes=120)
    input_path = tmp_path / "kcat-input.txt"
    input_path.write_bytes(b"".join(k + b":" + v + b"\n" for k, v in records))

    with open(input_path, "rb") as stdin:
        run = subprocess.run([kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-K:", "-z", "snappy",
                              "-X", "acks=all", "-X", "linger.ms=20"], stdin=stdin, capture_output=True, timeout=90)
    assert run.returncode == 0, f"kcat -P exited {run.returncode}: {run.stderr.decode()[-2000:]}"

    consumed = support.confluent_consume(broker.bootstrap, topic, PARTITIONS, RECORDS)
    support.assert_roundtrip(records, consumed, PARTITIONS)

    assert broker.stop() == 0, "broker did not exit cleanly on SIGTERM"
    assert_stored_compressed(broker, topic, kproto.CODEC_SNAPPY, consumed)
