//! `PartitionLog`: one partition's ordered list of segments, the last one active.
//!
//! Offsets: `log_start_offset ≤ recovery_point ≤ log_end_offset`. Appends get
//! contiguous offsets from `log_end_offset`; batches are written as received apart from
//! baseOffset, partitionLeaderEpoch and (with LogAppendTime) attributes/maxTimestamp.
//! Durability follows Kafka: data reaches the page cache on append and the disk on
//! `flush` (every `flush_interval_messages`, on the engine's `flush_interval_ms` timer,
//! at close); only then does the recovery point advance.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_BYTES, validate_batches};
use crate::checkpoint::{sync_dir, write_leader_epoch_checkpoint};
use crate::error::StorageError;
use crate::producer_snapshots;
use crate::producer_state::{
    NO_PRODUCER_ID, PRODUCER_ID_EXPIRATION_MS_DEFAULT, ProducerBatch, ProducerStateTable,
    SequenceCheck,
};
use crate::recovery::{LoadedLog, load_log};
use crate::segment::{AppendBytes, Segment, SegmentWrites};

/// Name of the per-partition leader epoch checkpoint.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Largest `segment_bytes` honoured: positions in `.index` entries are u32 and Kafka
/// caps `segment.bytes` at `Int.MaxValue`.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest `segment_bytes` honoured (Kafka's lower bound is 14 bytes; anything below a
/// batch header just means "one append per segment").
pub const SEGMENT_BYTES_MIN: u64 = HEADER_BYTES as u64;
/// Kafka's default `log.segment.bytes`.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
const _: () = assert!(
    SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT && SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX
);
/// Kafka's default `log.index.size.max.bytes` (10 MiB): bounds index memory per segment.
pub const SEGMENT_INDEX_BYTES_DEFAULT: u32 = 10 << 20;
/// Kafka's default `message.max.bytes` (1 MiB + 12 bytes of log overhead).
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 1_048_588;

/// Kafka's default `retention.ms` (7 days).
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `delete.retention.ms` (1 day): how long tombstones outlive compaction.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// Kafka's default `file.delete.delay.ms`.
pub const FILE_DELETE_DELAY_MS_DEFAULT: u64 = 60_000;

/// Per-partition log settings, named after Kafka's topic/broker configs.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `log.segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `log.roll.ms`: roll a non-empty segment this long after its first append.
    pub segment_ms: u64,
    /// `log.index.interval.bytes`: bytes between index entries.
    pub index_interval_bytes: u32,
    /// `log.index.size.max.bytes`: index file size bound; a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// `max.message.bytes`: largest accepted batch.
    pub max_message_bytes: u32,
    /// `log.flush.interval.messages`: fdatasync after this many records (u64::MAX: never).
    pub flush_interval_messages: u64,
    /// `log.flush.interval.ms`: the engine runs this timer and calls `flush`.
    pub flush_interval_ms: Option<u64>,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `producer.id.expiration.ms`: idle producers are forgotten after this long.
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy` holds `delete`: retention removes old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: the cleaner keeps the latest record per key.
    pub cleanup_compact: bool,
    /// `retention.ms`: a segment whose newest timestamp is older than this is deleted
    /// (negative: no time limit).
    pub retention_ms: i64,
    /// `retention.bytes`: oldest segments are deleted while the log is larger than this
    /// (negative: no size limit).
    pub retention_bytes: i64,
    /// `delete.retention.ms`: how long a tombstone survives once compaction reached it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record older than this makes its log cleanable
    /// whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: dirty bytes / total bytes at which cleaning starts.
    pub min_cleanable_dirty_ratio: f64,
    /// `file.delete.delay.ms`: a deleted segment's files stay as `.deleted` this long.
    pub file_delete_delay_ms: u64,
    /// How appends reach the `.log` (a broker setting, `weir.log.segment.writes`).
    pub segment_writes: SegmentWrites,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: SEGMENT_INDEX_BYTES_DEFAULT,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: None,
            log_append_time: false,
            producer_id_expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            cleanup_delete: true,
            cleanup_compact: false,
            retention_ms: RETENTION_MS_DEFAULT,
            retention_bytes: -1,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            file_delete_delay_ms: FILE_DELETE_DELAY_MS_DEFAULT,
            segment_writes: SegmentWrites::IoUring,
        }
    }
}

/// One truncation done by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncationNote {
    /// The `.log` file truncated (or deleted, then `position` is 0).
    pub path: PathBuf,
    /// Byte position the file was cut at.
    pub position: u64,
    pub reason: String,
    pub bytes_dropped: u64,
}

/// What `PartitionLog::open` found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub truncated: Vec<TruncationNote>,
    pub indexes_rebuilt: Vec<PathBuf>,
    /// Segment `.log` files deleted because they followed a truncation point.
    pub segments_deleted: Vec<PathBuf>,
    /// Offset from which batches were re-validated (the log end if nothing was).
    pub recovered_from: i64,
    pub log_end_offset: i64,
    pub clean_shutdown: bool,
}

/// Offsets of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped into the batches, −1 for CreateTime topics.
    pub log_append_time_ms: i64,
    pub record_count: u64,
    /// Whether this append ended with an fdatasync (flush_interval_messages reached).
    pub flushed: bool,
    /// The batch was a retry of one already written by its idempotent producer: nothing
    /// was written and the offsets are the original ones.
    pub duplicate: bool,
}

/// Whole batches read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    pub data: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// One partition's log. Owned by exactly one shard; not `Send`.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    records_since_flush: u64,
    /// A segment file was created since the last flush: the directory needs an fsync.
    dir_dirty: bool,
    /// (epoch, start offset), increasing in both.
    leader_epochs: Vec<(i32, i64)>,
    /// Idempotent producers' sequence state, as of the log end.
    producers: ProducerStateTable,
    /// Offset of the newest producer snapshot on disk.
    latest_snapshot_offset: Option<i64>,
}

impl PartitionLog {
    /// Opens an existing partition directory (recovering it) or creates an empty one.
    ///
    /// `clean_shutdown`: the log dir had the clean-shutdown marker, so files are trusted
    /// and only index files and the tail of each segment are checked cheaply. Otherwise
    /// every batch from the segment holding `recovery_point` (None: the log start) on is
    /// re-validated, a torn or corrupt tail is truncated (with a warning naming file and
    /// position) and later segments deleted, and indexes are rebuilt. Start-up I/O uses
    /// blocking `std::fs` (see `recovery`); the files are then opened through glommio.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        recovery_point: Option<i64>,
        log_start_offset: Option<i64>,
        clean_shutdown: bool,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        let LoadedLog {
            segments: states,
            mut report,
            created_files,
        } = load_log(&dir, &config, recovery_point, clean_shutdown)?;
        let mut segments = Vec::with_capacity(states.len().max(1));
        for (state, roll_base_ms) in states {
            segments.push(Segment::open(&dir, state, roll_base_ms, false).await?);
        }
        let mut dir_dirty = created_files;
        if segments.is_empty() {
            let base_offset = log_start_offset.unwrap_or(0).max(0);
            segments.push(
                Segment::create(&dir, base_offset, config.segment_index_bytes, now_ms()).await?,
            );
            dir_dirty = true;
        }
        let log_end_offset = segments
            .last()
            .expect("at least one segment")
            .state
            .next_offset;
        let first_base = segments[0].base_offset();
        let log_start_offset = log_start_offset
            .unwrap_or(first_base)
            .clamp(first_base, log_end_offset);
        report.log_end_offset = log_end_offset;
        report.clean_shutdown = clean_shutdown;

        let epoch_path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let mut leader_epochs = crate::checkpoint::read_leader_epoch_checkpoint(&epoch_path)?;
        let epochs_before = leader_epochs.len();
        crate::epochs::truncate_from_end(&mut leader_epochs, log_end_offset);
        if leader_epochs.len() != epochs_before {
            write_leader_epoch_checkpoint(&epoch_path, &leader_epochs)?;
        }
        if dir_dirty {
            sync_dir(&dir)?;
        }
        let mut log = PartitionLog {
            dir,
            config,
            segments,
            log_start_offset,
            // Recovery synced what it validated and a clean shutdown flushed everything.
            recovery_point: log_end_offset,
            records_since_flush: 0,
            dir_dirty: false,
            leader_epochs,
            producers: ProducerStateTable::default(),
            latest_snapshot_offset: None,
        };
        log.load_producer_state().await?;
        // A snapshot older than the log start (a crash before retention deleted it) may
        // name producers whose data is gone.
        log.producers.remove_before(log.log_start_offset);
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Applies new settings; they take effect from the next append or roll.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active().state.next_offset
    }
    /// Offsets below this are known to be on disk (fdatasync'ed).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    /// Bytes of all `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|segment| segment.state.size_bytes)
            .sum()
    }
    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }
    /// Leader epoch cache entries (epoch, start offset), as in `leader-epoch-checkpoint`.
    pub fn leader_epochs(&self) -> &[(i32, i64)] {
        &self.leader_epochs
    }
    /// The idempotent producers known to this partition.
    pub fn producers(&self) -> &ProducerStateTable {
        &self.producers
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    /// Validates all batches of `records` before writing anything, assigns offsets from
    /// the log end, stamps `leader_epoch` (and LogAppendTime if configured), rolls first
    /// if needed, writes with one `write_at`, updates the indexes and fdatasyncs when
    /// `flush_interval_messages` is reached.
    pub async fn append(
        &mut self,
        records: Bytes,
        now_ms: i64,
        leader_epoch: i32,
    ) -> Result<AppendInfo, StorageError> {
        let infos = validate_batches(&records, self.config.max_message_bytes)?;
        if self.config.cleanup_compact {
            self.check_keys_for_compaction(&records, &infos)?;
        }
        let log_append_time_ms = if self.config.log_append_time {
            now_ms
        } else {
            -1
        };
        if let Some(original) = self.check_producer(&records, &infos)? {
            return Ok(AppendInfo {
                base_offset: original.first_offset(),
                last_offset: original.last_offset,
                log_append_time_ms: if self.config.log_append_time {
                    original.timestamp
                } else {
                    -1
                },
                record_count: 0,
                flushed: false,
                duplicate: true,
            });
        }
        let base_offset = self.log_end_offset();
        let mut next_offset = base_offset;
        let mut record_count = 0u64;
        let mut batches = Vec::with_capacity(infos.len());
        // Offsets and the leader epoch lie outside the CRC: they are stamped into copies
        // of the batch headers, and the records are written from the request's buffer.
        // LogAppendTime changes fields under the CRC, so then the batches get a copy.
        let mut owned = self.config.log_append_time.then(|| records.to_vec());
        let mut headers = Vec::with_capacity(if owned.is_some() { 0 } else { infos.len() });
        for info in &infos {
            let size = info.size_bytes as usize;
            let max_timestamp = match &mut owned {
                Some(buffer) => {
                    let bytes = &mut buffer[info.position..info.position + size];
                    batch::set_base_offset(bytes, next_offset);
                    batch::set_partition_leader_epoch(bytes, leader_epoch);
                    batch::set_log_append_time(bytes, now_ms);
                    now_ms
                }
                None => {
                    let mut header = [0u8; HEADER_BYTES];
                    header.copy_from_slice(&records[info.position..info.position + HEADER_BYTES]);
                    batch::set_base_offset(&mut header, next_offset);
                    batch::set_partition_leader_epoch(&mut header, leader_epoch);
                    headers.push((info.position, header));
                    info.max_timestamp
                }
            };
            let last_offset = next_offset + i64::from(info.last_offset_delta);
            batches.push((info.position, size as u64, last_offset, max_timestamp));
            record_count += info.records_count.max(0) as u64;
            next_offset = last_offset + 1;
        }
        let last_offset = next_offset - 1;
        let bytes = match owned {
            Some(buffer) => AppendBytes::Owned(buffer),
            None => AppendBytes::Stamped {
                records: &records,
                headers: &headers,
            },
        };
        debug_assert!(
            validate_batches(&bytes.clone().into_vec(), u32::MAX).is_ok(),
            "stamping keeps batches valid"
        );
        // `check_producer` let an idempotent batch through only alone, so one header
        // look (the stamped one: its offsets and timestamp are final) is enough.
        let written_by_producer = BatchHeader::new(bytes.first_header())
            .filter(|header| infos.len() == 1 && header.producer_id() != NO_PRODUCER_ID)
            .map(|header| (producer_batch(&header), header.last_offset()));

        let flushed = self
            .write(
                bytes,
                &batches,
                &[(leader_epoch, base_offset)],
                written_by_producer.as_slice(),
                record_count,
                now_ms,
            )
            .await?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            record_count,
            flushed,
            duplicate: false,
        })
    }

    /// Writes validated batches at the log end: rolls first if needed, records new
    /// leader epochs `(epoch, start offset)`, appends, applies producer batches, flushes
    /// every `flush_interval_messages`. `batches` as for `Segment::append`; answers
    /// whether it flushed.
    async fn write(
        &mut self,
        bytes: AppendBytes<'_>,
        batches: &[(usize, u64, i64, i64)],
        epochs: &[(i32, i64)],
        producer_batches: &[(ProducerBatch, i64)],
        record_count: u64,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let Some(&(_, _, last_offset, _)) = batches.last() else {
            return Ok(false);
        };
        self.maybe_roll(now_ms, bytes.len() as u64, last_offset)
            .await?;
        // Written before the data: an entry whose start is the log end is harmless.
        let mut epochs_changed = false;
        for &(epoch, start_offset) in epochs {
            epochs_changed |= crate::epochs::assign(&mut self.leader_epochs, epoch, start_offset);
        }
        if epochs_changed {
            write_leader_epoch_checkpoint(
                &self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
                &self.leader_epochs,
            )?;
        }
        let index_interval_bytes = self.config.index_interval_bytes;
        let active = self
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        if active.state.size_bytes == 0 {
            active.roll_base_ms = now_ms;
        }
        active
            .append(
                bytes,
                batches,
                index_interval_bytes,
                self.config.segment_writes,
            )
            .await?;
        assert_eq!(self.log_end_offset(), last_offset + 1);
        for (producer, batch_last_offset) in producer_batches {
            self.producers.apply(producer, *batch_last_offset);
        }
        self.records_since_flush += record_count;
        let flushed = self.records_since_flush >= self.config.flush_interval_messages;
        if flushed {
            self.flush().await?;
        }
        Ok(flushed)
    }

    async fn maybe_roll(
        &mut self,
        now_ms: i64,
        bytes: u64,
        last_offset: i64,
    ) -> Result<(), StorageError> {
        let config = &self.config;
        let state = &self.active().state;
        if state.size_bytes == 0 {
            return Ok(());
        }
        let segment_bytes = config
            .segment_bytes
            .clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        let age_ms = now_ms.saturating_sub(self.active().roll_base_ms);
        let roll = state.size_bytes + bytes > segment_bytes
            || (age_ms >= 0 && age_ms as u64 >= config.segment_ms)
            || state.offset_index.is_full()
            || state.time_index.is_full()
            || !state.can_hold(last_offset, bytes);
        if roll {
            self.roll(now_ms).await?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub async fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let base_offset = self.log_end_offset();
        let active = self
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        if active.state.size_bytes == 0 {
            return Ok(()); // Kafka never rolls an empty segment.
        }
        active.seal().await?;
        self.snapshot_producers()?;
        let segment = Segment::create(
            &self.dir,
            base_offset,
            self.config.segment_index_bytes,
            now_ms,
        )
        .await?;
        assert!(segment.base_offset() > self.segments.last().expect("non-empty").base_offset());
        self.segments.push(segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// Reads whole batches from the batch holding `offset`, at most `max_bytes` (but at
    /// least one batch with `min_one_batch`), only batches whose last offset is below
    /// `upper_bound`, from one segment.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<ReadResult, StorageError> {
        let log_end_offset = self.log_end_offset();
        let result = |data: Bytes| ReadResult {
            data,
            log_start_offset: self.log_start_offset,
            log_end_offset,
        };
        if offset < self.log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: log_end_offset,
            });
        }
        if offset == log_end_offset || offset >= upper_bound {
            return Ok(result(Bytes::new()));
        }
        let first = self.segment_index_for(offset);
        for segment in &self.segments[first..] {
            if let Some((position, _)) = segment.find_batch(offset).await? {
                let data =
                    read_batches(segment, position, max_bytes, min_one_batch, upper_bound).await?;
                return Ok(result(data));
            }
        }
        Ok(result(Bytes::new()))
    }

    /// Index of the segment whose range holds `offset` (greatest base ≤ offset).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is ≥
    /// `timestamp_ms`, with that timestamp. The one batch holding the answer is
    /// decompressed if needed, as Kafka does.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let first = self.segment_index_for(self.log_start_offset);
        for segment in &self.segments[first..] {
            if segment.state.size_bytes == 0 || segment.state.max_timestamp < timestamp_ms {
                continue;
            }
            // Greatest time index entry strictly below the target: every batch up to its
            // offset has timestamps below the target.
            let (_, entry_offset) = segment
                .state
                .time_index
                .lookup(timestamp_ms.saturating_sub(1));
            let (_, position) = segment
                .state
                .offset_index
                .lookup(entry_offset.max(self.log_start_offset));
            let mut position = u64::from(position);
            let log_start_offset = self.log_start_offset;
            while let Some((found, _)) = segment
                .scan_headers(position, |header| {
                    header.max_timestamp() >= timestamp_ms
                        && header.last_offset() >= log_start_offset
                })
                .await?
            {
                let header_bytes = segment.read_log(found, HEADER_BYTES).await?;
                let header = BatchHeader::new(&header_bytes).expect("read a whole header");
                let size = header.size_bytes();
                let bytes = segment.read_log(found, size as usize).await?;
                if let Some(hit) = first_record_at_or_after(&bytes, timestamp_ms, log_start_offset)
                {
                    return Ok(Some(hit));
                }
                position = found + size;
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest timestamp in the log and, as Kafka does
    /// since KAFKA-16310, the offset of the first record carrying it (in the first batch
    /// whose maxTimestamp it is); None when the log is empty. Decompresses that one
    /// batch if it is compressed.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let mut best: Option<&Segment> = None;
        for segment in &self.segments {
            let state = &segment.state;
            if state.size_bytes == 0 || state.next_offset <= self.log_start_offset {
                continue;
            }
            if best.is_none_or(|best| state.max_timestamp > best.state.max_timestamp) {
                best = Some(segment);
            }
        }
        let Some(segment) = best else {
            return Ok(None);
        };
        let (max_timestamp, batch_last_offset) = (
            segment.state.max_timestamp,
            segment.state.offset_of_max_timestamp,
        );
        // The segment remembers the last offset of the first batch holding its maximum;
        // the offset index leads to a position at or before that batch.
        let (_, index_position) = segment.state.offset_index.lookup(batch_last_offset);
        let holds_max = |header: &BatchHeader<'_>| header.max_timestamp() == max_timestamp;
        let mut found = segment
            .scan_headers(u64::from(index_position), holds_max)
            .await?;
        if found.is_none() && index_position != 0 {
            // An index adopted from another broker may point past the batch.
            found = segment.scan_headers(0, holds_max).await?;
        }
        let Some((position, _)) = found else {
            tracing::warn!(
                path = %segment.paths.log.display(),
                offset = batch_last_offset,
                max_timestamp,
                "no batch holds the segment's max timestamp; answering with the indexed offset"
            );
            return Ok(Some((batch_last_offset, max_timestamp)));
        };
        let in_segment = |error: StorageError| match error {
            StorageError::CorruptBatch { reason, position } => StorageError::CorruptBatch {
                reason: format!("{}: {reason}", segment.paths.log.display()),
                position,
            },
            other => other,
        };
        let header_bytes = segment.read_log(position, HEADER_BYTES).await?;
        let header = BatchHeader::new(&header_bytes).expect("read a whole header");
        if header.size_bytes() > segment.state.size_bytes - position {
            return Err(in_segment(StorageError::corrupt(
                position,
                format!(
                    "batchLength {} runs past the segment end",
                    header.batch_length()
                ),
            )));
        }
        let bytes = segment
            .read_log(position, header.size_bytes() as usize)
            .await?;
        let offset = batch::offset_of_max_timestamp(&bytes, position)
            .map_err(in_segment)?
            // No record carries the producer-written maxTimestamp: the batch answers.
            .unwrap_or(header.last_offset());
        Ok(Some((offset, max_timestamp)))
    }

    /// Gives back the space the active segment reserved ahead of its appends (ext4; see
    /// `preallocation`): for a partition that stops taking appends here (the broker stops).
    pub fn release_reserved_space(&mut self) {
        if let Some(active) = self.segments.last_mut() {
            active.release_reserved_space();
        }
    }

    /// fdatasyncs every segment written since the last flush (and the directory after a
    /// roll), then advances the recovery point to the log end.
    pub async fn flush(&mut self) -> Result<(), StorageError> {
        let log_end_offset = self.log_end_offset();
        for segment in &mut self.segments {
            segment.flush().await?;
        }
        if self.dir_dirty {
            // Blocking, but only after a roll: makes the new segment's directory entry durable.
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        assert!(
            log_end_offset >= self.recovery_point,
            "the recovery point never moves backwards"
        );
        self.recovery_point = log_end_offset;
        self.records_since_flush = 0;
        Ok(())
    }

    /// Flushes, snapshots the producer state and closes all files.
    pub async fn close(mut self) -> Result<(), StorageError> {
        self.flush().await?;
        self.snapshot_producers()?;
        for segment in self.segments.drain(..) {
            segment.close().await?;
        }
        Ok(())
    }
}

/// Reads the batches starting at `position` within the limits of `PartitionLog::read`.
async fn read_batches(
    segment: &Segment,
    position: u64,
    max_bytes: usize,
    min_one_batch: bool,
    upper_bound: i64,
) -> Result<Bytes, StorageError> {
    let available = segment.state.size_bytes - position;
    let window = (max_bytes as u64).max(HEADER_BYTES as u64).min(available) as usize;
    let mut bytes = segment.read_log(position, window).await?;
    let damaged = |reason: &str| {
        StorageError::corrupt(
            position,
            format!("{}: {reason}", segment.paths.log.display()),
        )
    };
    let header = BatchHeader::new(&bytes)
        .ok_or_else(|| damaged("the segment ends inside a batch header"))?;
    if header.last_offset() >= upper_bound {
        return Ok(Bytes::new());
    }
    let first_size = header.size_bytes() as usize;
    if first_size > max_bytes && !min_one_batch {
        return Ok(Bytes::new());
    }
    if first_size > bytes.len() {
        bytes = segment.read_log(position, first_size).await?;
    }
    let mut end = 0usize;
    for (at, header) in batch::iterate_batches(&bytes) {
        let fits = at + header.size_bytes() as usize <= max_bytes || at == 0;
        if !fits || header.last_offset() >= upper_bound {
            break;
        }
        end = at + header.size_bytes() as usize;
    }
    if end < first_size {
        return Err(damaged("the first batch does not fit the segment"));
    }
    bytes.truncate(end);
    Ok(Bytes::from(bytes))
}

/// The first record of a batch (decompressed if needed, as Kafka does) with timestamp ≥
/// `timestamp_ms` and offset ≥ `log_start_offset`, as (offset, timestamp).
fn first_record_at_or_after(
    batch: &[u8],
    timestamp_ms: i64,
    log_start_offset: i64,
) -> Option<(i64, i64)> {
    let header = BatchHeader::new(batch)?;
    let Ok(records) = batch::decompress_records(batch, 0) else {
        // Written after validation; an undecodable batch answers as a whole.
        return (header.max_timestamp() >= timestamp_ms).then(|| {
            (
                header.base_offset().max(log_start_offset),
                header.max_timestamp(),
            )
        });
    };
    let mut hit = None;
    // The batch was CRC-checked when written; a walk failure here means no answer from it.
    let _ = batch::walk_record_section(&records, header.records_count(), |record| {
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp()
        } else {
            header.base_timestamp() + record.timestamp_delta
        };
        let offset = header.base_offset() + i64::from(record.offset_delta);
        if hit.is_none() && timestamp >= timestamp_ms && offset >= log_start_offset {
            hit = Some((offset, timestamp));
        }
        Ok(())
    });
    hit
}

/// Wall-clock milliseconds since the epoch (0 if the clock is before 1970): the one
/// clock the log, the engine and the tools stamp and compare times with.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

mod producers;
use producers::producer_batch;
mod retention;
pub use retention::{
    DELETED_FILE_SUFFIX, DeletedFiles, DeletedSegment, DeletionReason, RemovedSegments,
};

mod cleaning;
pub use cleaning::CleaningOutcome;
mod slice;
pub use slice::{LogSlice, SliceResult};
mod replica;

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "log_producer_tests.rs"]
mod producer_tests;

#[cfg(test)]
#[path = "log_retention_tests.rs"]
mod retention_tests;

#[cfg(test)]
#[path = "log_truncation_tests.rs"]
mod truncation_tests;

#[cfg(test)]
#[path = "log_segment_writes_tests.rs"]
mod segment_writes_tests;
