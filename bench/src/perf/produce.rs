//! `weir perf produce`: kafka-producer-perf-test.sh.
//!
//! Hot path: each batch is written straight into a reused Produce v7 request frame
//! (header, then records appended as varints and payload bytes, then lengths and one
//! CRC-32C); the frame goes out in one `write`. Requests are pipelined up to
//! `max.in.flight.requests.per.connection` per broker; a reader thread per connection
//! takes the responses in order, checks every partition's error code and records each
//! record's latency (ack time − the time it was added to its batch). Clock reads are
//! taken every `CLOCK_EVERY_RECORDS` records (a tight loop adds a record every few ns);
//! throttled, also whenever the producer catches up with its schedule.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceResponse, ProducerId, ResponseHeader,
};
use kafka_protocol::protocol::Decodable;
use weir_net::client::{KafkaClient, error_name};
use weir_storage::batch::{
    Compression, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, OFFSET_ATTRIBUTES, OFFSET_BATCH_LENGTH,
    OFFSET_CRC, compress,
};

use super::props::Props;
use super::{Latencies, MIB, PerfError, REQUEST_TIMEOUT, latency_histogram, topic_leaders};

const PRODUCE_VERSION: i16 = 7;
const PRODUCE_KEY: i16 = 0;
/// Unthrottled, the clock is read once per this many records.
const CLOCK_EVERY_RECORDS: u64 = 16;
/// Progress lines every 5 s, as Kafka's tool.
const REPORTING_INTERVAL: Duration = Duration::from_secs(5);

/// Producer settings a Kafka user sets, with Kafka's defaults.
pub const KNOWN_PRODUCER_KEYS: &[&str] = &[
    "bootstrap.servers",
    "acks",
    "batch.size",
    "linger.ms",
    "max.in.flight.requests.per.connection",
    "buffer.memory",
    "compression.type",
    "enable.idempotence",
    "client.id",
    "request.timeout.ms",
    "max.request.size",
    "key.serializer",
    "value.serializer",
];

/// What to produce.
#[derive(Clone, Debug)]
pub struct ProducerPerfConfig {
    pub topic: String,
    pub num_records: u64,
    /// Record values, used in turn (one for `--record-size`).
    pub payloads: Vec<Vec<u8>>,
    /// Records per second; ≤ 0 is unlimited.
    pub throughput: f64,
    pub props: Props,
    /// e2e under load: the first 8 bytes of every value carry the nanoseconds since
    /// this instant at which the record was added.
    pub stamp_send_time: Option<Instant>,
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProducerPerfResult {
    pub records: u64,
    pub payload_bytes: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    pub mib_per_s: f64,
    pub latency: Latencies,
}

impl ProducerPerfResult {
    /// Kafka's final line (percentiles with 2 decimals: sub-millisecond values matter).
    pub fn summary_line(&self) -> String {
        let latency = &self.latency;
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            self.records_per_s,
            self.mib_per_s,
            latency.avg_ms,
            latency.max_ms,
            latency.p50_ms,
            latency.p95_ms,
            latency.p99_ms,
            latency.p999_ms
        )
    }
}

/// Kafka's payload for `--record-size`: random uppercase letters.
pub fn random_payload(size: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    acks: i16,
    batch_bytes: usize,
    linger: Duration,
    in_flight_max: usize,
    compression: Compression,
    idempotence: bool,
    timeout_ms: i32,
}

fn settings(props: &Props) -> Result<Settings, PerfError> {
    let acks_explicit = props.get("acks").is_some();
    let acks = match props.string("acks", "all").as_str() {
        "all" | "-1" => -1,
        "1" => 1,
        "0" => 0,
        other => {
            return Err(PerfError::Usage(format!(
                "Invalid value {other} for configuration acks: String must be one of: all, -1, 0, 1"
            )));
        }
    };
    let compression = match props.string("compression.type", "none").as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(PerfError::Usage(format!(
                "Invalid value {other} for configuration compression.type"
            )));
        }
    };
    // Kafka 3+: idempotence is on by default, but not when acks other than all was
    // set explicitly; asking for both is a configuration error.
    let idempotence = match props.get("enable.idempotence") {
        Some(_) => props.boolean("enable.idempotence", true)?,
        None => !acks_explicit || acks == -1,
    };
    if idempotence && acks != -1 {
        return Err(PerfError::Usage(
            "Must set acks to all in order to use the idempotent producer.".into(),
        ));
    }
    let max_request_bytes: usize = props.number("max.request.size", 1_048_576)?;
    let batch_bytes: usize = props.number("batch.size", 16_384)?;
    Ok(Settings {
        acks,
        batch_bytes: batch_bytes.clamp(HEADER_BYTES + 64, max_request_bytes.max(1024)),
        linger: Duration::from_millis(props.number("linger.ms", 5)?),
        in_flight_max: props
            .number("max.in.flight.requests.per.connection", 5usize)?
            .max(1),
        compression,
        idempotence,
        timeout_ms: props.number("request.timeout.ms", 30_000)?,
    })
}

/// A batch on its way: what the reader needs to account for its response.
struct InFlight {
    correlation_id: i32,
    partition: i32,
    records: u64,
    payload_bytes: u64,
    /// Microseconds since the run's start at which each record was added.
    added_us: Vec<u64>,
}

/// Counters shared by the senders' readers and the main loop.
struct Stats {
    started: Instant,
    histogram: Histogram<u64>,
    records: u64,
    payload_bytes: u64,
    window_start: Instant,
    window_records: u64,
    window_bytes: u64,
    window_latency_us_sum: u64,
    window_latency_us_max: u64,
    failure: Option<String>,
}

impl Stats {
    fn complete(&mut self, batch: &InFlight, now_us: u64) {
        // Records added between two reads of the clock share their time: one histogram
        // entry per run of them (a run is CLOCK_EVERY_RECORDS long unthrottled).
        for run in batch.added_us.chunk_by(|a, b| a == b) {
            let latency = now_us.saturating_sub(run[0]).max(1);
            let count = run.len() as u64;
            self.histogram.saturating_record_n(latency, count);
            self.window_latency_us_sum += latency * count;
            self.window_latency_us_max = self.window_latency_us_max.max(latency);
        }
        self.records += batch.records;
        self.payload_bytes += batch.payload_bytes;
        self.window_records += batch.records;
        self.window_bytes += batch.payload_bytes;
    }

    fn progress_line(&mut self, now: Instant) -> String {
        let seconds = (now - self.window_start).as_secs_f64().max(1e-9);
        let line = format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_records,
            self.window_records as f64 / seconds,
            self.window_bytes as f64 / MIB / seconds,
            self.window_latency_us_sum as f64 / 1000.0 / self.window_records.max(1) as f64,
            self.window_latency_us_max as f64 / 1000.0
        );
        self.window_start = now;
        self.window_records = 0;
        self.window_bytes = 0;
        self.window_latency_us_sum = 0;
        self.window_latency_us_max = 0;
        line
    }
}

/// One connection to a partition leader, with its response reader.
struct Sender {
    address: String,
    stream: TcpStream,
    slots: SyncSender<()>,
    in_flight: Option<std::sync::mpsc::Sender<InFlight>>,
    reader: Option<JoinHandle<()>>,
    correlation_id: i32,
    /// An in-flight slot taken by [`Sender::try_reserve`] for the next send.
    reserved: bool,
}

impl Sender {
    fn connect(
        address: &str,
        settings: &Settings,
        stats: &Arc<Mutex<Stats>>,
    ) -> Result<Sender, PerfError> {
        let io = |source| PerfError::Io {
            address: address.to_string(),
            source,
        };
        let stream = TcpStream::connect(address).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let (slots, slots_free) = sync_channel::<()>(settings.in_flight_max);
        let mut sender = Sender {
            address: address.to_string(),
            stream,
            slots,
            in_flight: None,
            reader: None,
            correlation_id: 0,
            reserved: false,
        };
        if settings.acks != 0 {
            let (in_flight, pending) = channel::<InFlight>();
            let mut input = sender.stream.try_clone().map_err(io)?;
            input.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
            let stats = Arc::clone(stats);
            let address = address.to_string();
            sender.in_flight = Some(in_flight);
            sender.reader = Some(std::thread::spawn(move || {
                read_responses(&mut input, &address, pending, slots_free, &stats)
            }));
        } else {
            // acks=0: nothing answers; slots free as soon as they are taken.
            std::thread::spawn(move || while slots_free.recv().is_ok() {});
        }
        Ok(sender)
    }

    fn next_correlation_id(&mut self) -> i32 {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        self.correlation_id
    }

    /// Takes an in-flight slot for the next send if one is free now. A batch whose
    /// linger passed goes out only then; while every slot is busy it keeps filling, as
    /// Kafka's accumulator does (so linger.ms=0 batches what arrives meanwhile instead of
    /// sending one record per request).
    fn try_reserve(&mut self) -> bool {
        if !self.reserved {
            self.reserved = match self.slots.try_send(()) {
                Ok(()) => true,
                Err(std::sync::mpsc::TrySendError::Full(())) => false,
                // The reader stopped: `send` reports why.
                Err(std::sync::mpsc::TrySendError::Disconnected(())) => return true,
            };
        }
        self.reserved
    }

    /// Sends a sealed frame, waiting for an in-flight slot first (unless reserved).
    fn send(
        &mut self,
        frame: &[u8],
        batch: InFlight,
        stats: &Arc<Mutex<Stats>>,
    ) -> Result<(), PerfError> {
        let reserved = std::mem::take(&mut self.reserved);
        if !reserved && self.slots.send(()).is_err() {
            // The reader stopped: report why.
            let failure = stats.lock().expect("stats lock").failure.clone();
            return Err(PerfError::Broker(failure.unwrap_or_else(|| {
                format!("connection to {} closed", self.address)
            })));
        }
        match &self.in_flight {
            Some(in_flight) => {
                let _ = in_flight.send(batch);
            }
            None => {
                let now_us = stats
                    .lock()
                    .expect("stats lock")
                    .started
                    .elapsed()
                    .as_micros() as u64;
                stats.lock().expect("stats lock").complete(&batch, now_us);
            }
        }
        self.stream
            .write_all(frame)
            .map_err(|source| PerfError::Io {
                address: self.address.clone(),
                source,
            })
    }

    fn finish(mut self) {
        self.in_flight.take();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_responses(
    input: &mut TcpStream,
    address: &str,
    pending: Receiver<InFlight>,
    slots_free: Receiver<()>,
    stats: &Mutex<Stats>,
) {
    let fail = |reason: String| {
        let mut stats = stats.lock().expect("stats lock");
        stats.failure.get_or_insert(reason);
    };
    let mut frame = Vec::new();
    while let Ok(batch) = pending.recv() {
        let mut size = [0u8; 4];
        if let Err(error) = input.read_exact(&mut size) {
            return fail(format!("reading a response from {address}: {error}"));
        }
        frame.resize(i32::from_be_bytes(size).max(0) as usize, 0);
        if let Err(error) = input.read_exact(&mut frame) {
            return fail(format!("reading a response from {address}: {error}"));
        }
        let mut body = Bytes::copy_from_slice(&frame);
        let decoded = ResponseHeader::decode(&mut body, 0).and_then(|header| {
            ProduceResponse::decode(&mut body, PRODUCE_VERSION).map(|response| (header, response))
        });
        let (header, response) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                return fail(format!(
                    "undecodable ProduceResponse from {address}: {error}"
                ));
            }
        };
        if header.correlation_id != batch.correlation_id {
            return fail(format!(
                "{address} answered request {} when {} was next",
                header.correlation_id, batch.correlation_id
            ));
        }
        let now_us = stats
            .lock()
            .expect("stats lock")
            .started
            .elapsed()
            .as_micros() as u64;
        for topic in &response.responses {
            for partition in &topic.partition_responses {
                if partition.error_code != 0 {
                    return fail(format!(
                        "produce to partition {} failed: {} (error {})",
                        batch.partition,
                        error_name(partition.error_code),
                        partition.error_code
                    ));
                }
            }
        }
        stats.lock().expect("stats lock").complete(&batch, now_us);
        let _ = slots_free.recv();
    }
}

/// A Produce v7 request frame for one partition, the batch built in place.
struct FrameBuilder {
    frame: Vec<u8>,
    /// Where the batch starts in `frame`.
    batch_start: usize,
    /// Records section before compression (compressed batches only).
    plain: Vec<u8>,
    records: u32,
    payload_bytes: u64,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    added_us: Vec<u64>,
    opened: Instant,
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned_varint(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn varint_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut bytes = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        bytes += 1;
    }
    bytes
}

impl FrameBuilder {
    fn new(capacity: usize) -> FrameBuilder {
        FrameBuilder {
            frame: Vec::with_capacity(capacity + 256),
            batch_start: 0,
            plain: Vec::new(),
            records: 0,
            payload_bytes: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
            added_us: Vec::new(),
            opened: Instant::now(),
        }
    }

    /// Starts a request for `partition` of `topic` with an empty batch.
    fn open(&mut self, client_id: &str, topic: &str, partition: i32, acks: i16, timeout_ms: i32) {
        let frame = &mut self.frame;
        frame.clear();
        frame.extend_from_slice(&0i32.to_be_bytes()); // size
        frame.extend_from_slice(&PRODUCE_KEY.to_be_bytes());
        frame.extend_from_slice(&PRODUCE_VERSION.to_be_bytes());
        frame.extend_from_slice(&0i32.to_be_bytes()); // correlation id
        frame.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        frame.extend_from_slice(client_id.as_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
        frame.extend_from_slice(&acks.to_be_bytes());
        frame.extend_from_slice(&timeout_ms.to_be_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes()); // one topic
        frame.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        frame.extend_from_slice(topic.as_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes()); // one partition
        frame.extend_from_slice(&partition.to_be_bytes());
        frame.extend_from_slice(&0i32.to_be_bytes()); // records length
        self.batch_start = frame.len();
        frame.resize(self.batch_start + HEADER_BYTES, 0);
        self.plain.clear();
        self.records = 0;
        self.payload_bytes = 0;
        self.added_us.clear();
        self.opened = Instant::now();
    }

    fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes the batch would have with one more record of `value_len` (uncompressed).
    fn size_with(&self, value_len: usize, compression: Compression) -> usize {
        let written = match compression {
            Compression::None => self.frame.len() - self.batch_start,
            _ => HEADER_BYTES + self.plain.len(),
        };
        written + value_len + 24
    }

    fn add(&mut self, timestamp_ms: i64, value: &[u8], added_us: u64, compression: Compression) {
        if self.records == 0 {
            self.base_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let timestamp_delta = timestamp_ms - self.base_timestamp_ms;
        let offset_delta = self.records as i32;
        let body = 1
            + varint_len(timestamp_delta)
            + varint_len(i64::from(offset_delta))
            + 1
            + varint_len(value.len() as i64)
            + value.len()
            + 1;
        let out = match compression {
            Compression::None => &mut self.frame,
            _ => &mut self.plain,
        };
        put_varint(out, body as i32);
        out.push(0); // attributes
        put_varlong(out, timestamp_delta);
        put_varint(out, offset_delta);
        put_varint(out, -1); // null key
        put_varint(out, value.len() as i32);
        out.extend_from_slice(value);
        put_varint(out, 0); // no headers
        self.records += 1;
        self.payload_bytes += value.len() as u64;
        self.added_us.push(added_us);
    }

    /// Fills in the batch header, CRC and every length; returns the frame.
    fn seal(
        &mut self,
        correlation_id: i32,
        producer: (i64, i16, i32),
        compression: Compression,
    ) -> &[u8] {
        assert!(self.records > 0, "a batch holds at least one record");
        if compression != Compression::None {
            let compressed = compress(compression, &self.plain);
            self.frame.extend_from_slice(&compressed);
        }
        let start = self.batch_start;
        let batch_len = self.frame.len() - start;
        let header = &mut self.frame[start..start + HEADER_BYTES];
        header[0..8].copy_from_slice(&0i64.to_be_bytes());
        header[8..12].copy_from_slice(&((batch_len - LOG_OVERHEAD) as i32).to_be_bytes());
        header[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        header[16] = MAGIC_V2 as u8;
        header[21..23].copy_from_slice(&i16::from(compression.codec()).to_be_bytes());
        header[23..27].copy_from_slice(&(self.records as i32 - 1).to_be_bytes());
        header[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        header[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        header[43..51].copy_from_slice(&producer.0.to_be_bytes());
        header[51..53].copy_from_slice(&producer.1.to_be_bytes());
        header[53..57].copy_from_slice(&producer.2.to_be_bytes());
        header[57..61].copy_from_slice(&(self.records as i32).to_be_bytes());
        let crc = crc32c::crc32c(&self.frame[start + OFFSET_ATTRIBUTES..]);
        self.frame[start + OFFSET_CRC..start + OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(OFFSET_BATCH_LENGTH, 8);
        self.frame[start - 4..start].copy_from_slice(&(batch_len as i32).to_be_bytes());
        self.frame[8..12].copy_from_slice(&correlation_id.to_be_bytes());
        let size = (self.frame.len() - 4) as i32;
        self.frame[0..4].copy_from_slice(&size.to_be_bytes());
        &self.frame
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Runs the producer benchmark, writing Kafka's progress lines to `progress`.
pub fn run_producer(
    config: &ProducerPerfConfig,
    progress: &mut dyn Write,
) -> Result<ProducerPerfResult, PerfError> {
    let bootstrap = config
        .props
        .get("bootstrap.servers")
        .ok_or_else(|| PerfError::Usage("bootstrap.servers must be set (--bootstrap-server or --producer-props bootstrap.servers=host:port)".into()))?
        .to_string();
    for key in config.props.unknown(KNOWN_PRODUCER_KEYS) {
        let _ = writeln!(
            progress,
            "WARN The configuration '{key}' was supplied but isn't a known config."
        );
    }
    if config.payloads.is_empty() {
        return Err(PerfError::Usage("no payload to send".into()));
    }
    let settings = settings(&config.props)?;
    let client_id = config.props.string("client.id", "perf-producer-client");
    let mut client = KafkaClient::connect(&bootstrap, &client_id, REQUEST_TIMEOUT)?;
    let leaders = topic_leaders(&mut client, &config.topic, true)?;
    let producer = if settings.idempotence {
        let (_, response) = client.any().call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )?;
        if response.error_code != 0 {
            return Err(PerfError::Broker(format!(
                "InitProducerId failed: {}",
                error_name(response.error_code)
            )));
        }
        Some((response.producer_id.0, response.producer_epoch))
    } else {
        None
    };

    let started = Instant::now();
    let stats = Arc::new(Mutex::new(Stats {
        started,
        histogram: latency_histogram(),
        records: 0,
        payload_bytes: 0,
        window_start: started,
        window_records: 0,
        window_bytes: 0,
        window_latency_us_sum: 0,
        window_latency_us_max: 0,
        failure: None,
    }));
    // partition → index of its leader's sender.
    let mut senders = Vec::new();
    let mut sender_of = vec![0usize; leaders.partitions];
    for (address, partitions) in &leaders.by_broker {
        for &partition in partitions {
            sender_of[partition as usize] = senders.len();
        }
        senders.push(Sender::connect(address, &settings, &stats)?);
    }
    let mut sequences = vec![0i32; leaders.partitions];
    let mut builder = FrameBuilder::new(settings.batch_bytes);
    let mut partition = 0i32;
    builder.open(
        &client_id,
        &config.topic,
        partition,
        settings.acks,
        settings.timeout_ms,
    );
    let mut next_report = started + REPORTING_INTERVAL;
    let throttled = config.throughput > 0.0;
    let mut now = Instant::now();
    let mut timestamp_ms = wall_clock_ms();
    let mut value = Vec::new();

    let mut flush = |builder: &mut FrameBuilder,
                     partition: &mut i32,
                     senders: &mut Vec<Sender>|
     -> Result<(), PerfError> {
        if builder.is_empty() {
            return Ok(());
        }
        let sender = &mut senders[sender_of[*partition as usize]];
        let correlation_id = sender.next_correlation_id();
        let producer_fields = match producer {
            Some((id, epoch)) => {
                let sequence = &mut sequences[*partition as usize];
                let base = *sequence;
                *sequence = sequence.wrapping_add(builder.records as i32) & i32::MAX;
                (id, epoch, base)
            }
            None => (-1, -1, -1),
        };
        let batch = InFlight {
            correlation_id,
            partition: *partition,
            records: u64::from(builder.records),
            payload_bytes: builder.payload_bytes,
            added_us: std::mem::take(&mut builder.added_us),
        };
        let frame = builder.seal(correlation_id, producer_fields, settings.compression);
        sender.send(frame, batch, &stats)?;
        // Sticky partitioning: the next batch goes to the next partition.
        *partition = (*partition + 1) % leaders.partitions as i32;
        builder.open(
            &client_id,
            &config.topic,
            *partition,
            settings.acks,
            settings.timeout_ms,
        );
        Ok(())
    };

    // Throttled: how many records the schedule allows by `now` (record i is due at
    // i / throughput). The clock is read when the producer reaches that count, or every
    // CLOCK_EVERY_RECORDS records while it is behind: on this VM three reads per record
    // took a quarter of the producer thread's samples (bench/RESULTS.md, "Session 12").
    let scheduled = |now: Instant| (now - started).as_secs_f64() * config.throughput;
    let mut allowed = 0u64;
    let (mut added_at, mut added_us) = (started, 0u64);
    for index in 0..config.num_records {
        if throttled {
            if index >= allowed || index % CLOCK_EVERY_RECORDS == 0 {
                now = Instant::now();
                allowed = scheduled(now) as u64 + 1;
                while index >= allowed {
                    let due = started + Duration::from_secs_f64(index as f64 / config.throughput);
                    // Linger decides when a batch waiting on the throttle goes out.
                    let linger_due = builder.opened + settings.linger;
                    if !builder.is_empty()
                        && linger_due <= due
                        && senders[sender_of[partition as usize]].try_reserve()
                    {
                        if linger_due > now {
                            std::thread::sleep(linger_due - now);
                        }
                        flush(&mut builder, &mut partition, &mut senders)?;
                    } else if due > now {
                        std::thread::sleep(due - now);
                    }
                    now = Instant::now();
                    allowed = scheduled(now) as u64 + 1;
                }
                timestamp_ms = wall_clock_ms();
            }
        } else if index % CLOCK_EVERY_RECORDS == 0 {
            now = Instant::now();
            timestamp_ms = wall_clock_ms();
        }
        let payload = &config.payloads[(index % config.payloads.len() as u64) as usize];
        let payload: &[u8] = match config.stamp_send_time {
            Some(base) => {
                value.clear();
                value.extend_from_slice(payload);
                value.resize(value.len().max(8), b'x');
                // Each record's own send time: end-to-end latency is measured from it.
                let nanos = Instant::now().duration_since(base).as_nanos() as u64;
                value[..8].copy_from_slice(&nanos.to_be_bytes());
                &value
            }
            None => payload,
        };
        // With linger.ms=0 a batch may go as soon as a request slot is free: no clock.
        let lingered = || settings.linger.is_zero() || now >= builder.opened + settings.linger;
        if !builder.is_empty()
            && (builder.size_with(payload.len(), settings.compression) > settings.batch_bytes
                || throttled && lingered() && senders[sender_of[partition as usize]].try_reserve())
        {
            flush(&mut builder, &mut partition, &mut senders)?;
        }
        if now != added_at {
            // Only after a read of the clock: the subtraction cost as much as the read.
            added_at = now;
            added_us = (now - started).as_micros() as u64;
        }
        builder.add(timestamp_ms, payload, added_us, settings.compression);
        if now >= next_report {
            let mut stats = stats.lock().expect("stats lock");
            if let Some(failure) = stats.failure.take() {
                return Err(PerfError::Broker(failure));
            }
            let line = stats.progress_line(now);
            drop(stats);
            let _ = writeln!(progress, "{line}");
            next_report = now + REPORTING_INTERVAL;
        }
    }
    flush(&mut builder, &mut partition, &mut senders)?;
    for sender in senders {
        sender.finish();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = stats.lock().expect("stats lock");
    if let Some(failure) = &stats.failure {
        return Err(PerfError::Broker(failure.clone()));
    }
    Ok(ProducerPerfResult {
        records: stats.records,
        payload_bytes: stats.payload_bytes,
        elapsed_s: elapsed,
        records_per_s: stats.records as f64 / elapsed,
        mib_per_s: stats.payload_bytes as f64 / MIB / elapsed,
        latency: Latencies::of(&stats.histogram),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::batch::{SimpleRecord, check_batch_integrity, encode_batch};

    #[test]
    fn batches_built_in_the_frame_equal_the_storage_encoder() {
        let values: Vec<Vec<u8>> = (0..300).map(|index| random_payload(index % 150)).collect();
        let mut builder = FrameBuilder::new(1 << 20);
        builder.open("client", "topic", 3, 1, 30_000);
        for (index, value) in values.iter().enumerate() {
            builder.add(
                1_700_000_000_000 + (index as i64 % 7),
                value,
                0,
                Compression::None,
            );
        }
        let start = builder.batch_start;
        let frame = builder.seal(9, (-1, -1, -1), Compression::None).to_vec();
        let batch = &frame[start..];
        let expected = encode_batch(
            0,
            &values
                .iter()
                .enumerate()
                .map(|(index, value)| SimpleRecord {
                    timestamp_ms: 1_700_000_000_000 + (index as i64 % 7),
                    key: None,
                    value: Some(value.clone()),
                })
                .collect::<Vec<_>>(),
        );
        assert_eq!(batch, &expected[..]);
        assert_eq!(check_batch_integrity(batch, 0).unwrap(), batch.len());
        assert_eq!(
            i32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(i32::from_be_bytes(frame[8..12].try_into().unwrap()), 9);
    }

    #[test]
    fn compressed_batches_pass_the_integrity_check_and_decompress_to_the_records() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = FrameBuilder::new(1 << 16);
            builder.open("c", "t", 0, -1, 1000);
            for index in 0..50 {
                builder.add(5, &random_payload(100 + index), 0, compression);
            }
            let start = builder.batch_start;
            let frame = builder.seal(1, (7, 0, 0), compression).to_vec();
            let batch = &frame[start..];
            check_batch_integrity(batch, 0).unwrap();
            let records = weir_storage::batch::decompress_records(batch, 0).unwrap();
            let mut count = 0;
            weir_storage::batch::walk_record_section(&records, 50, |record| {
                assert_eq!(record.value.unwrap().len(), 100 + count);
                count += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(count, 50, "{compression:?}");
        }
    }

    #[test]
    fn kafka_defaults_and_the_idempotence_rule() {
        let props = |pairs: &[&str]| {
            Props::load(
                None,
                &pairs
                    .iter()
                    .map(|pair| pair.to_string())
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let defaults = settings(&props(&[])).unwrap();
        assert_eq!(
            (defaults.acks, defaults.idempotence, defaults.batch_bytes),
            (-1, true, 16_384)
        );
        assert_eq!(defaults.linger, Duration::from_millis(5));
        let acks_one = settings(&props(&["acks=1"])).unwrap();
        assert!(
            !acks_one.idempotence,
            "explicit acks=1 turns default idempotence off"
        );
        assert!(settings(&props(&["acks=1", "enable.idempotence=true"])).is_err());
        assert!(settings(&props(&["acks=2"])).is_err());
        assert!(settings(&props(&["compression.type=brotli"])).is_err());
    }

    #[test]
    fn summary_line_has_kafkas_shape() {
        let result = ProducerPerfResult {
            records: 1000,
            payload_bytes: 100_000,
            elapsed_s: 0.5,
            records_per_s: 2000.0,
            mib_per_s: 0.19,
            latency: Latencies {
                avg_ms: 1.5,
                max_ms: 9.0,
                p50_ms: 1.0,
                p95_ms: 2.0,
                p99_ms: 3.0,
                p999_ms: 9.0,
            },
        };
        assert_eq!(
            result.summary_line(),
            "1000 records sent, 2000.000000 records/sec (0.19 MB/sec), 1.50 ms avg latency, 9.00 ms max latency, 1.00 ms 50th, 2.00 ms 95th, 3.00 ms 99th, 9.00 ms 99.9th."
        );
    }
}
