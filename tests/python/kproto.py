"""Just enough of the Kafka wire protocol to poke a broker with raw bytes.

Goal: let the whole-system tests send exactly the frames they mean to send —
well-formed ones to check field-level answers (ApiVersions ranges, long-poll
timing, per-partition error codes) and deliberately broken ones (bad CRC, wrong
versions, oversize batches) that no real client would ever produce.

Method: a tiny codec with no I/O (``Writer``/``Reader``), a few request
encoders and response decoders written straight from Kafka's message specs
(``clients/src/main/resources/common/message/*.json``), a pure-Python CRC-32C,
and a record batch v2 builder/parser that also reads segment ``.log`` files.
Only the versions the tests use are implemented; each function says which.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import time
import zlib

# --- API keys and error codes used by the tests -------------------------------

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3

CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

RECORD_BATCH_HEADER_BYTES = 61
# baseOffset (8) + batchLength (4): the part of a batch not counted by batchLength.
BATCH_LOG_OVERHEAD_BYTES = 12


# --- CRC-32C (Castagnoli), table driven; hardware speed is not needed here ----

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value (RFC 3720)"


# --- codec --------------------------------------------------------------------

class DecodeError(Exception):
    """The bytes do not hold what the decoder expected."""


class Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def raw(self, data: bytes) -> "Writer":
        self.parts.append(bytes(data))
        return self

    def int8(self, v: int) -> "Writer":
        return self.raw(struct.pack(">b", v))

    def int16(self, v: int) -> "Writer":
        return self.raw(struct.pack(">h", v))

    def int32(self, v: int) -> "Writer":
        return self.raw(struct.pack(">i", v))

    def uint32(self, v: int) -> "Writer":
        return self.raw(struct.pack(">I", v))

    def int64(self, v: int) -> "Writer":
        return self.raw(struct.pack(">q", v))

    def uvarint(self, v: int) -> "Writer":
        assert v >= 0
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out.append(b | 0x80)
            else:
                out.append(b)
                return self.raw(bytes(out))

    def varint(self, v: int) -> "Writer":
        # zig-zag, valid for both 32- and 64-bit varints
        return self.uvarint((v << 1) ^ (v >> 63))

    def string(self, s: str | None) -> "Writer":
        if s is None:
            return self.int16(-1)
        data = s.encode()
        return self.int16(len(data)).raw(data)

    def compact_string(self, s: str | None) -> "Writer":
        if s is None:
            return self.uvarint(0)
        data = s.encode()
        return self.uvarint(len(data) + 1).raw(data)

    def bytes_(self, data: bytes | None) -> "Writer":
        if data is None:
            return self.int32(-1)
        return self.int32(len(data)).raw(data)

    def compact_bytes(self, data: bytes | None) -> "Writer":
        if data is None:
            return self.uvarint(0)
        return self.uvarint(len(data) + 1).raw(data)

    def array_len(self, n: int, flexible: bool) -> "Writer":
        return self.uvarint(n + 1) if flexible else self.int32(n)

    def tagged_fields(self) -> "Writer":
        return self.uvarint(0)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.pos = offset

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"need {n} bytes at offset {self.pos}, have {self.remaining()}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _unpack(self, fmt: str, n: int) -> int:
        return struct.unpack(fmt, self.take(n))[0]

    def int8(self) -> int:
        return self._unpack(">b", 1)

    def int16(self) -> int:
        return self._unpack(">h", 2)

    def int32(self) -> int:
        return self._unpack(">i", 4)

    def uint32(self) -> int:
        return self._unpack(">I", 4)

    def int64(self) -> int:
        return self._unpack(">q", 8)

    def uvarint(self) -> int:
        shift = 0
        result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise DecodeError(f"varint too long at offset {self.pos}")

    def varint(self) -> int:
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def bytes_(self) -> bytes | None:
        n = self.int32()
        return None if n < 0 else self.take(n)

    def compact_bytes(self) -> bytes | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1)

    def array_len(self, flexible: bool) -> int:
        return self.uvarint() - 1 if flexible else self.int32()

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


# --- request framing and connections ------------------------------------------

# First flexible version of each API we speak (from the message specs).
_FIRST_FLEXIBLE_VERSION = {PRODUCE: 9, FETCH: 12, LIST_OFFSETS: 6, METADATA: 9, API_VERSIONS: 3}


def is_flexible(api_key: int, api_version: int) -> bool:
    return api_version >= _FIRST_FLEXIBLE_VERSION.get(api_key, 1 << 15)


def encode_request(api_key: int, api_version: int, correlation_id: int, body: bytes,
                   client_id: str | None = "weir-tests") -> bytes:
    """A whole frame: size prefix, request header v1 (v2 for flexible versions), body."""
    w = Writer().int16(api_key).int16(api_version).int32(correlation_id).string(client_id)
    if is_flexible(api_key, api_version):
        w.tagged_fields()
    payload = w.getvalue() + body
    return struct.pack(">i", len(payload)) + payload


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset)."""


class Connection:
    """One TCP connection speaking framed requests; every wait is bounded."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_s = timeout_s
        self.next_correlation_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, api_key: int, api_version: int, body: bytes) -> int:
        correlation_id = self.next_correlation_id
        self.next_correlation_id += 1
        self.send_raw(encode_request(api_key, api_version, correlation_id, body))
        return correlation_id

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {n - len(buf)} more bytes")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            except socket.timeout as e:
                raise TimeoutError(f"timed out waiting for {n - len(buf)} more bytes") from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout_s: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        (size,) = struct.unpack(">i", self._recv_exact(4, deadline))
        if size < 4 or size > 256 * 1024 * 1024:
            raise DecodeError(f"implausible response frame size {size}")
        return self._recv_exact(size, deadline)

    def recv_response(self, correlation_id: int, flexible_header: bool,
                      timeout_s: float | None = None) -> Reader:
        """Reads one response; checks the correlation id; returns a reader on the body."""
        r = Reader(self.recv_frame(timeout_s))
        got = r.int32()
        if got != correlation_id:
            raise DecodeError(f"correlation id {got}, expected {correlation_id}")
        if flexible_header:
            r.skip_tagged_fields()
        return r

    def request(self, api_key: int, api_version: int, body: bytes,
                timeout_s: float | None = None) -> Reader:
        cid = self.send(api_key, api_version, body)
        # ApiVersions responses never carry header tagged fields (KIP-511).
        flexible_header = is_flexible(api_key, api_version) and api_key != API_VERSIONS
        return self.recv_response(cid, flexible_header, timeout_s)

    def closed_by_peer(self, timeout_s: float = 5.0) -> bool:
        """True when the broker closes the connection within timeout_s without sending data.

        Raises AssertionError if the broker sends bytes instead."""
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if data:
            raise AssertionError(f"expected the connection to close, got {len(data)} bytes: {data[:64]!r}")
        return True


# --- ApiVersions (v0-v3) -------------------------------------------------------

def encode_api_versions_request(version: int) -> bytes:
    if version >= 3:
        return Writer().compact_string("weir-tests").compact_string("0.1").tagged_fields().getvalue()
    return b""


def decode_api_versions_response(r: Reader, version: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """Returns (error_code, {api_key: (min_version, max_version)})."""
    flexible = version >= 3
    error_code = r.int16()
    apis = {}
    for _ in range(r.array_len(flexible)):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        if flexible:
            r.skip_tagged_fields()
        apis[key] = (lo, hi)
    if version >= 1:
        r.int32()  # throttle_time_ms
    if flexible:
        r.skip_tagged_fields()
    return error_code, apis


def api_versions(conn: Connection, version: int = 3) -> tuple[int, dict[int, tuple[int, int]]]:
    r = conn.request(API_VERSIONS, version, encode_api_versions_request(version))
    return decode_api_versions_response(r, version)


# --- record batches (magic 2) --------------------------------------------------

@dataclasses.dataclass
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


@dataclasses.dataclass
class RecordBatch:
    position: int            # byte position of the batch in the buffer/file it came from
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    body: bytes              # attributes..end: what the CRC covers

    @property
    def size_bytes(self) -> int:
        return BATCH_LOG_OVERHEAD_BYTES + self.batch_length

    @property
    def codec(self) -> int:
        return self.attributes & 0x07

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & 0x20)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    def crc_ok(self) -> bool:
        return crc32c(self.body) == self.crc

    def records(self) -> list[Record]:
        payload = self.body[RECORD_BATCH_HEADER_BYTES - 21:]
        payload = decompress(self.codec, payload)
        r = Reader(payload)
        out = []
        for _ in range(self.records_count):
            length = r.varint()
            end = r.pos + length
            r.int8()  # attributes
            timestamp_delta = r.varint()
            offset_delta = r.varint()
            key_len = r.varint()
            key = None if key_len < 0 else r.take(key_len)
            value_len = r.varint()
            value = None if value_len < 0 else r.take(value_len)
            headers = []
            for _ in range(r.varint()):
                hk = r.take(r.varint()).decode()
                hv_len = r.varint()
                headers.append((hk, None if hv_len < 0 else r.take(hv_len)))
            if r.pos != end:
                raise DecodeError(f"record length {length} disagrees with its fields")
            out.append(Record(self.base_offset + offset_delta, self.base_timestamp + timestamp_delta,
                              key, value, headers))
        if r.remaining():
            raise DecodeError(f"{r.remaining()} bytes after the last record of the batch")
        return out


def decompress(codec: int, data: bytes) -> bytes:
    if codec == CODEC_NONE:
        return data
    if codec == CODEC_GZIP:
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    raise NotImplementedError(f"decompressing {CODEC_NAMES.get(codec, codec)} is not needed by these tests")


def encode_record(offset_delta: int, timestamp_delta: int, key: bytes | None, value: bytes | None) -> bytes:
    body = Writer().int8(0).varint(timestamp_delta).varint(offset_delta)
    for field in (key, value):
        if field is None:
            body.varint(-1)
        else:
            body.varint(len(field)).raw(field)
    body.varint(0)  # no headers
    encoded = body.getvalue()
    return Writer().varint(len(encoded)).raw(encoded).getvalue()


def build_batch(records: list[tuple[bytes | None, bytes | None, int]], base_offset: int = 0,
                attributes: int = 0) -> bytes:
    """An uncompressed, non-transactional record batch v2 of (key, value, timestamp_ms) records."""
    assert records
    base_timestamp = records[0][2]
    max_timestamp = max(ts for _, _, ts in records)
    payload = b"".join(encode_record(i, ts - base_timestamp, k, v) for i, (k, v, ts) in enumerate(records))
    after_crc = (Writer().int16(attributes).int32(len(records) - 1).int64(base_timestamp)
                 .int64(max_timestamp).int64(-1).int16(-1).int32(-1).int32(len(records))
                 .raw(payload).getvalue())
    batch_length = 4 + 1 + 4 + len(after_crc)  # partitionLeaderEpoch, magic, crc, rest
    return (Writer().int64(base_offset).int32(batch_length).int32(-1).int8(2)
            .uint32(crc32c(after_crc)).raw(after_crc).getvalue())


def parse_batches(data: bytes, allow_partial_tail: bool = False) -> tuple[list[RecordBatch], int]:
    """Parses consecutive batches; returns (batches, bytes consumed).

    Stops at a partial batch at the end when allow_partial_tail (as in Fetch
    responses cut by max_bytes); otherwise a partial or malformed batch raises."""
    batches = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < BATCH_LOG_OVERHEAD_BYTES:
            if allow_partial_tail:
                break
            raise DecodeError(f"{len(data) - pos} stray bytes at position {pos}")
        base_offset, batch_length = struct.unpack_from(">qi", data, pos)
        if batch_length < RECORD_BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES:
            raise DecodeError(f"batch length {batch_length} at position {pos}")
        end = pos + BATCH_LOG_OVERHEAD_BYTES + batch_length
        if end > len(data):
            if allow_partial_tail:
                break
            raise DecodeError(f"batch at position {pos} needs {end - pos} bytes, have {len(data) - pos}")
        (ple, magic, crc, attributes, lod, base_ts, max_ts, pid, pepoch, bseq, count) = struct.unpack_from(
            ">ibIhiqqqhii", data, pos + 12)
        if magic != 2:
            raise DecodeError(f"magic {magic} at position {pos}")
        batches.append(RecordBatch(pos, base_offset, batch_length, ple, magic, crc, attributes, lod,
                                   base_ts, max_ts, pid, pepoch, bseq, count, bytes(data[pos + 21:end])))
        pos = end
    return batches, pos


def read_log_file(path) -> list[RecordBatch]:
    """All batches of a segment .log file; raises on any stray or damaged byte."""
    with open(path, "rb") as f:
        data = f.read()
    batches, _ = parse_batches(data)
    for b in batches:
        if not b.crc_ok():
            raise DecodeError(f"{path}: CRC mismatch in batch at position {b.position}")
    return batches


# --- Produce (v2-v11) ----------------------------------------------------------

def encode_produce_request(version: int, topic: str, partition: int, records: bytes,
                           acks: int = -1, timeout_ms: int = 10_000) -> bytes:
    return encode_produce_request_to(version, topic, {partition: records}, acks, timeout_ms)


def encode_produce_request_to(version: int, topic: str, records: dict[int, bytes],
                              acks: int = -1, timeout_ms: int = 10_000) -> bytes:
    """A produce request for several partitions of one topic: {partition: batch bytes}."""
    flexible = version >= 9
    w = Writer()
    if version >= 3:
        w.compact_string(None) if flexible else w.string(None)  # transactional_id
    w.int16(acks).int32(timeout_ms)
    w.array_len(1, flexible)
    w.compact_string(topic) if flexible else w.string(topic)
    w.array_len(len(records), flexible)
    for partition, batch in records.items():
        w.int32(partition)
        w.compact_bytes(batch) if flexible else w.bytes_(batch)
        if flexible:
            w.tagged_fields()  # partition
    if flexible:
        w.tagged_fields()  # topic
        w.tagged_fields()  # request
    return w.getvalue()


@dataclasses.dataclass
class ProducePartitionResponse:
    topic: str
    partition: int
    error_code: int
    base_offset: int
    log_append_time_ms: int
    error_message: str | None


def decode_produce_response(r: Reader, version: int) -> list[ProducePartitionResponse]:
    flexible = version >= 9
    out = []
    for _ in range(r.array_len(flexible)):
        topic = r.compact_string() if flexible else r.string()
        for _ in range(r.array_len(flexible)):
            partition, error_code, base_offset = r.int32(), r.int16(), r.int64()
            log_append_time = r.int64() if version >= 2 else -1
            if version >= 5:
                r.int64()  # log_start_offset
            message = None
            if version >= 8:
                for _ in range(r.array_len(flexible)):
                    r.int32()
                    r.compact_string() if flexible else r.string()
                    if flexible:
                        r.skip_tagged_fields()
                message = r.compact_string() if flexible else r.string()
            if flexible:
                r.skip_tagged_fields()
            out.append(ProducePartitionResponse(topic, partition, error_code, base_offset,
                                                log_append_time, message))
        if flexible:
            r.skip_tagged_fields()
    r.int32()  # throttle_time_ms (v1+)
    if flexible:
        r.skip_tagged_fields()
    return out


def produce(conn: Connection, topic: str, partition: int, records: bytes, version: int = 9,
            acks: int = -1, timeout_s: float | None = None) -> ProducePartitionResponse:
    body = encode_produce_request(version, topic, partition, records, acks)
    r = conn.request(PRODUCE, version, body, timeout_s)
    (resp,) = decode_produce_response(r, version)
    assert (resp.topic, resp.partition) == (topic, partition), resp
    return resp


# --- Fetch (v3, v4) -------------------------------------------------------------

def encode_fetch_request(version: int, topic: str, partition: int, fetch_offset: int,
                         max_wait_ms: int, min_bytes: int = 1, max_bytes: int = 1 << 20) -> bytes:
    assert version in (3, 4)
    w = Writer().int32(-1).int32(max_wait_ms).int32(min_bytes).int32(max_bytes)
    if version >= 4:
        w.int8(0)  # read_uncommitted
    w.int32(1).string(topic).int32(1).int32(partition).int64(fetch_offset).int32(max_bytes)
    return w.getvalue()


@dataclasses.dataclass
class FetchPartitionResponse:
    topic: str
    partition: int
    error_code: int
    high_watermark: int
    records: bytes

    def batches(self) -> list[RecordBatch]:
        return parse_batches(self.records, allow_partial_tail=True)[0]


def decode_fetch_response(r: Reader, version: int) -> list[FetchPartitionResponse]:
    assert version in (3, 4)
    r.int32()  # throttle_time_ms
    out = []
    for _ in range(r.int32()):
        topic = r.string()
        for _ in range(r.int32()):
            partition, error_code, high_watermark = r.int32(), r.int16(), r.int64()
            if version >= 4:
                r.int64()  # last_stable_offset
                for _ in range(max(r.int32(), 0)):  # aborted_transactions (nullable)
                    r.int64()
                    r.int64()
            out.append(FetchPartitionResponse(topic, partition, error_code, high_watermark,
                                              r.bytes_() or b""))
    return out


# --- ListOffsets (v1-v7) --------------------------------------------------------

def encode_list_offsets_request(version: int, topic: str, partition: int, timestamp: int,
                                replica_id: int = -1) -> bytes:
    assert 1 <= version <= 7
    flexible = version >= 6
    w = Writer().int32(replica_id)
    if version >= 2:
        w.int8(0)  # isolation_level
    w.array_len(1, flexible)
    w.compact_string(topic) if flexible else w.string(topic)
    w.array_len(1, flexible).int32(partition)
    if version >= 4:
        w.int32(-1)  # current_leader_epoch
    w.int64(timestamp)
    if flexible:
        w.tagged_fields().tagged_fields().tagged_fields()
    return w.getvalue()


def fetch_values(conn: Connection, topic: str, partition: int) -> list[bytes]:
    """Every record value of a partition from offset 0 to its end, with Fetch v4 requests
    that do not wait."""
    values: list[bytes] = []
    offset = 0
    while True:
        body = encode_fetch_request(4, topic, partition, offset, max_wait_ms=0)
        (fetched,) = decode_fetch_response(conn.request(FETCH, 4, body), 4)
        assert fetched.error_code == 0, fetched
        batches = fetched.batches()
        if not batches:
            return values
        for batch in batches:
            values.extend(record.value for record in batch.records())
            offset = batch.base_offset + batch.last_offset_delta + 1


def list_offsets(conn: Connection, topic: str, partition: int, timestamp: int,
                 version: int = 7, replica_id: int = -1) -> tuple[int, int, int]:
    """Returns (error_code, timestamp, offset) for one partition; replica_id -2 asks as a
    debugging client (any replica; latest is its log end offset)."""
    flexible = version >= 6
    r = conn.request(LIST_OFFSETS, version,
                     encode_list_offsets_request(version, topic, partition, timestamp, replica_id))
    if version >= 2:
        r.int32()  # throttle_time_ms
    results = []
    for _ in range(r.array_len(flexible)):
        name = r.compact_string() if flexible else r.string()
        for _ in range(r.array_len(flexible)):
            index, error_code, ts, offset = r.int32(), r.int16(), r.int64(), r.int64()
            if version >= 4:
                r.int32()  # leader_epoch
            if flexible:
                r.skip_tagged_fields()
            results.append((name, index, error_code, ts, offset))
        if flexible:
            r.skip_tagged_fields()
    assert [(n, i) for n, i, *_ in results] == [(topic, partition)], results
    return results[0][2:]


# --- Idempotent producer: InitProducerId (v0-5), DescribeProducers (v0), producer batches ---

INIT_PRODUCER_ID = 22
DESCRIBE_PRODUCERS = 61

INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_RECORD = 87

TRANSACTIONAL_ATTRIBUTE = 0x10

# Connection.request needs to know where these APIs switch to flexible headers.
_FIRST_FLEXIBLE_VERSION.update({INIT_PRODUCER_ID: 2, DESCRIBE_PRODUCERS: 0})

# Byte positions in a record batch v2 (from its baseOffset).
_BATCH_CRC_AT = 17
_BATCH_ATTRIBUTES_AT = 21
_BATCH_PRODUCER_AT = 43  # producerId i64, producerEpoch i16, baseSequence i32


def with_producer(batch: bytes, producer_id: int, producer_epoch: int, base_sequence: int,
                  transactional: bool = False) -> bytes:
    """A copy of one batch (as built by build_batch) with producer fields set and the CRC redone."""
    data = bytearray(batch)
    struct.pack_into(">qhi", data, _BATCH_PRODUCER_AT, producer_id, producer_epoch, base_sequence)
    if transactional:
        (attributes,) = struct.unpack_from(">h", data, _BATCH_ATTRIBUTES_AT)
        struct.pack_into(">h", data, _BATCH_ATTRIBUTES_AT, attributes | TRANSACTIONAL_ATTRIBUTE)
    struct.pack_into(">I", data, _BATCH_CRC_AT, crc32c(bytes(data[_BATCH_ATTRIBUTES_AT:])))
    return bytes(data)


def build_idempotent_batch(records: list[tuple[bytes | None, bytes | None, int]], producer_id: int,
                           producer_epoch: int, base_sequence: int, transactional: bool = False) -> bytes:
    """build_batch for an idempotent (or, with transactional, a transactional) producer."""
    return with_producer(build_batch(records), producer_id, producer_epoch, base_sequence, transactional)


def encode_init_producer_id_request(version: int, transactional_id: str | None = None,
                                    transaction_timeout_ms: int = 60_000, producer_id: int = -1,
                                    producer_epoch: int = -1) -> bytes:
    assert 0 <= version <= 5
    flexible = version >= 2
    w = Writer()
    w.compact_string(transactional_id) if flexible else w.string(transactional_id)
    w.int32(transaction_timeout_ms)
    if version >= 3:
        w.int64(producer_id).int16(producer_epoch)
    if flexible:
        w.tagged_fields()
    return w.getvalue()


@dataclasses.dataclass
class InitProducerIdResponse:
    error_code: int
    producer_id: int
    producer_epoch: int


def decode_init_producer_id_response(r: Reader, version: int) -> InitProducerIdResponse:
    r.int32()  # throttle_time_ms
    out = InitProducerIdResponse(r.int16(), r.int64(), r.int16())
    if version >= 2:
        r.skip_tagged_fields()
    if r.remaining():
        raise DecodeError(f"{r.remaining()} bytes after an InitProducerId v{version} response")
    return out


def init_producer_id(conn: Connection, version: int = 4, transactional_id: str | None = None,
                     **fields) -> InitProducerIdResponse:
    body = encode_init_producer_id_request(version, transactional_id, **fields)
    return decode_init_producer_id_response(conn.request(INIT_PRODUCER_ID, version, body), version)


def encode_describe_producers_request(partitions: dict[str, list[int]]) -> bytes:
    """DescribeProducers v0 (flexible) for {topic: [partition, ...]}."""
    w = Writer().array_len(len(partitions), True)
    for topic, indexes in partitions.items():
        w.compact_string(topic).array_len(len(indexes), True)
        for index in indexes:
            w.int32(index)
        w.tagged_fields()
    return w.tagged_fields().getvalue()


@dataclasses.dataclass(frozen=True)
class ProducerState:
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int


@dataclasses.dataclass
class DescribeProducersPartition:
    topic: str
    partition: int
    error_code: int
    error_message: str | None
    active_producers: list[ProducerState]


def decode_describe_producers_response(r: Reader) -> list[DescribeProducersPartition]:
    r.int32()  # throttle_time_ms
    out = []
    for _ in range(r.array_len(True)):
        topic = r.compact_string()
        for _ in range(r.array_len(True)):
            partition, error_code, message = r.int32(), r.int16(), r.compact_string()
            producers = []
            for _ in range(r.array_len(True)):
                producers.append(ProducerState(r.int64(), r.int32(), r.int32(), r.int64(), r.int32(), r.int64()))
                r.skip_tagged_fields()
            r.skip_tagged_fields()
            out.append(DescribeProducersPartition(topic, partition, error_code, message, producers))
        r.skip_tagged_fields()
    r.skip_tagged_fields()
    if r.remaining():
        raise DecodeError(f"{r.remaining()} bytes after a DescribeProducers v0 response")
    return out


def describe_producers(conn: Connection, partitions: dict[str, list[int]]) -> list[DescribeProducersPartition]:
    r = conn.request(DESCRIBE_PRODUCERS, 0, encode_describe_producers_request(partitions))
    return decode_describe_producers_response(r)


@dataclasses.dataclass
class ProduceRequestSeen:
    version: int
    correlation_id: int
    acks: int
    partitions: list[tuple[str, int, bytes]]  # (topic, partition, records)


def decode_produce_request(frame: bytes) -> ProduceRequestSeen | None:
    """A request frame (size prefix removed): the Produce request it holds, None for other APIs.

    Versions 3-11 (topics by name)."""
    r = Reader(frame)
    api_key, version = r.int16(), r.int16()
    if api_key != PRODUCE:
        return None
    if not 3 <= version <= 11:
        raise DecodeError(f"Produce v{version} is not decoded here")
    flexible = version >= 9
    correlation_id = r.int32()
    r.string()  # client_id: a plain nullable string even in header v2
    if flexible:
        r.skip_tagged_fields()
    r.compact_string() if flexible else r.string()  # transactional_id
    acks = r.int16()
    r.int32()  # timeout_ms
    out = []
    for _ in range(r.array_len(flexible)):
        topic = r.compact_string() if flexible else r.string()
        for _ in range(r.array_len(flexible)):
            partition = r.int32()
            records = r.compact_bytes() if flexible else r.bytes_()
            if flexible:
                r.skip_tagged_fields()
            out.append((topic, partition, records or b""))
        if flexible:
            r.skip_tagged_fields()
    return ProduceRequestSeen(version, correlation_id, acks, out)


def decode_produce_response_frame(frame: bytes, version: int) -> list[ProducePartitionResponse]:
    """A Produce response frame (size prefix removed; header and body) of a request at `version`."""
    r = Reader(frame)
    r.int32()  # correlation_id
    if version >= 9:
        r.skip_tagged_fields()
    return decode_produce_response(r, version)


@dataclasses.dataclass(frozen=True)
class SnapshotEntry:
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_offset: int
    offset_delta: int
    timestamp: int
    coordinator_epoch: int
    current_txn_first_offset: int


def read_producer_snapshot(path) -> list[SnapshotEntry]:
    """Kafka's `<offset>.snapshot` (ProducerSnapshot v1): version i16 = 1, CRC-32C u32 of the
    rest, then an i32-counted array of producer entries; raises on any deviation."""
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    version, crc = r.int16(), r.uint32()
    if version != 1:
        raise DecodeError(f"{path}: snapshot version {version}")
    if crc32c(data[6:]) != crc:
        raise DecodeError(f"{path}: snapshot CRC mismatch")
    entries = [SnapshotEntry(r.int64(), r.int16(), r.int32(), r.int64(), r.int32(), r.int64(), r.int32(), r.int64())
               for _ in range(r.int32())]
    if r.remaining():
        raise DecodeError(f"{path}: {r.remaining()} bytes after the last snapshot entry")
    return entries
