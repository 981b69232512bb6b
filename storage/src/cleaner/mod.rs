//! The log cleaner (compaction): keeps the latest record of every key, with Kafka's
//! semantics (`LogCleaner`/`Cleaner`/`LogCleanerManager`) and Kafka's file names.
//!
//! ```text
//!  log start        first dirty (cleaner checkpoint)      first uncleanable   active
//!  │  clean: cleaned before   │  dirty: written since         │ min.compaction.lag │
//!  ▼                          ▼                               ▼ or the active seg  ▼
//!  [seg 0][seg 1]…            [seg k]…[seg m]                 [seg m+1]…           [active]
//!
//!  plan (read lock) ─► offset map over the dirty range (no lock) ─► per segment, oldest
//!  first: filter its batches into <base>.log.cleaned (no lock) ─► swap it in (write lock)
//! ```
//!
//! * **Which part.** The cleanable range runs from the first dirty offset (the cleaner
//!   checkpoint; the log start at first) to the first uncleanable offset: the smaller of
//!   the active segment's base and the base of the first dirty segment whose largest
//!   timestamp is within `min.compaction.lag.ms` of now. The active segment is never
//!   touched. Dirty ratio = bytes of the dirty segments / bytes of all segments up to the
//!   first uncleanable offset; a log is cleaned when the ratio exceeds
//!   `min.cleanable.dirty.ratio`, or when its oldest dirty batch is older than
//!   `max.compaction.lag.ms` (Kafka's `grabFilthiestCompactedLog`).
//! * **Offset map.** Key → latest offset over the dirty range, bounded by the dedupe
//!   buffer (`offset_map`). When it fills, only the part read so far is cleaned; the new
//!   checkpoint is the end of that part and the next round goes on from there.
//! * **Rewrite.** Every segment from the log start to the end of the mapped part is
//!   filtered batch by batch (`filter`): offsets never change, untouched batches are
//!   copied byte for byte, rewritten batches keep their codec. One cleaned segment per
//!   source segment, with the source's base offset. A segment where nothing changed is
//!   not swapped.
//! * **I/O.** Sealed segments never change, so they are read and the cleaned files
//!   written holding no lock on the log; reads and writes are counted against
//!   `log.cleaner.io.max.bytes.per.second` (`throttle`), which also yields to the
//!   shard's other tasks. Only the swap takes the write lock, after checking that the
//!   source segment is still the log's (retention may have deleted it meanwhile: the
//!   cleaned files are then discarded).
//!
//! ## Crash-consistency protocol (one segment `<base>`)
//!
//! 1. Write `<base>.log.cleaned`, `<base>.index.cleaned`, `<base>.timeindex.cleaned`
//!    (truncating leftovers of an earlier crash).
//! 2. fdatasync the three files: the new content is durable before it can count.
//! 3. Under the write lock, after re-checking the source: rename the `.index.cleaned`
//!    and `.timeindex.cleaned` files to `.swap`, then `<base>.log.cleaned` to
//!    `<base>.log.swap` — **the commit point** — and fsync the directory.
//! 4. Rename the index `.swap` files, then `<base>.log.swap`, over the final names
//!    (each rename atomically replaces the source file), fsync the directory, and open
//!    the new files in place of the source's.
//!
//! Recovery at open (`swap::recover`, first thing in `recovery::load_log`): `.cleaned`
//! files are deleted (crash in 1–2: the source is intact); index `.swap` files without
//! a `<base>.log.swap` are deleted (crash inside 3, before the commit: the source is
//! intact); a `<base>.log.swap` is renamed over `<base>.log` and the segment's index
//! files are deleted, so recovery rebuilds them from the new log (crash after the
//! commit, inside 3 or 4). Either the source or the cleaned segment survives, whole.
//!
//! Segments are swapped oldest first, and a cleaned segment only lacks records that a
//! later record of the same key supersedes; a tombstone is only dropped once older
//! segments were swapped. So a crash between two swaps leaves a log in which every key
//! still reads as its latest value, and the next cleaning (the checkpoint did not move)
//! finishes the job. The cleaner checkpoint advances only after the last swap.

pub mod filter;
pub mod offset_map;
pub(crate) mod swap;
pub mod throttle;

use std::collections::HashMap;
use std::path::PathBuf;

use glommio::io::{BufferedFile, OpenOptions};

use crate::batch::{BATCH_LENGTH_MIN, BatchHeader, check_batch_integrity, decompress_records};
use crate::error::StorageError;
use crate::segment::{SegmentPaths, SegmentState};
use filter::{FilterRules, Filtered, filter_batch};
use offset_map::OffsetMap;
use swap::{CLEANED_SUFFIX, suffixed};
use throttle::IoThrottle;

pub use swap::SWAP_SUFFIX;

/// Name of the per-log-dir file holding each compacted partition's first dirty offset
/// (Kafka's `LogCleaner.cleanerCheckpointFile`; `checkpoint` format).
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Bytes the cleaner reads from a segment per I/O (a larger batch is read whole).
const READ_CHUNK_BYTES: usize = 1 << 20;

/// A sealed segment as the cleaner found it when planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSegment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
    pub log_path: PathBuf,
}

/// One log's cleanable state, computed under the log's read lock (`PartitionLog::
/// cleaning_plan`); everything the cleaning needs afterwards without the log.
#[derive(Clone, Debug)]
pub struct CleaningPlan {
    pub dir: PathBuf,
    pub first_dirty_offset: i64,
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the dirty segments below the first uncleanable offset.
    pub dirty_bytes: u64,
    /// How long `max.compaction.lag.ms` has been exceeded by the oldest dirty batch
    /// (0: not exceeded).
    pub compaction_delay_ms: i64,
    /// The sealed segments below the first uncleanable offset, oldest first.
    pub segments: Vec<SourceSegment>,
    /// Last data offset of every producer the producer state knows.
    pub producer_last_offsets: HashMap<i64, i64>,
    pub delete_retention_ms: i64,
    pub segment_index_bytes: u32,
    pub index_interval_bytes: u32,
}

impl CleaningPlan {
    /// Dirty bytes / (clean + dirty bytes) below the first uncleanable offset.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Kafka's rule: clean when max.compaction.lag is exceeded and something is dirty,
    /// or when the dirty ratio exceeds `min_cleanable_dirty_ratio`.
    pub fn should_clean(&self, min_cleanable_dirty_ratio: f64) -> bool {
        self.dirty_bytes > 0
            && (self.compaction_delay_ms > 0 || self.dirty_ratio() > min_cleanable_dirty_ratio)
    }

    fn dirty_segments(&self) -> impl Iterator<Item = &SourceSegment> {
        self.segments
            .iter()
            .filter(|segment| segment.next_offset > self.first_dirty_offset)
    }
}

/// Counts of one cleaning (or one segment of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleaningStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_retained: u64,
    /// Segments replaced by a cleaned version.
    pub segments_swapped: u64,
}

impl CleaningStats {
    pub fn add(&mut self, other: &CleaningStats) {
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.records_read += other.records_read;
        self.records_retained += other.records_retained;
        self.segments_swapped += other.segments_swapped;
    }
}

/// A `.cleaned` segment written and synced, ready for `PartitionLog::swap_cleaned`.
#[derive(Debug)]
pub struct CleanedSegment {
    pub source: SourceSegment,
    pub(crate) state: SegmentState,
    pub stats: CleaningStats,
    /// No batch changed: nothing to swap (the `.cleaned` files were already removed).
    pub unchanged: bool,
}

impl CleanedSegment {
    /// Removes the `.cleaned` files (the log was closed or the cleaning abandoned).
    pub fn discard(self) -> Result<(), StorageError> {
        let dir = self
            .source
            .log_path
            .parent()
            .expect("a segment file lives in its partition dir");
        swap::discard_cleaned(&SegmentPaths::new(dir, self.source.base_offset))
    }
}

/// Reads whole batches of a sealed segment, a chunk at a time, checking each batch's
/// length, magic and CRC (the pair of the check made when it was written).
struct BatchReader {
    file: BufferedFile,
    path: PathBuf,
    size_bytes: u64,
    position: u64,
}

impl BatchReader {
    async fn open(segment: &SourceSegment) -> Result<BatchReader, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .buffered_open(&segment.log_path)
            .await
            .map_err(|error| StorageError::io("open", &segment.log_path, error))?;
        Ok(BatchReader {
            file,
            path: segment.log_path.clone(),
            size_bytes: segment.size_bytes,
            position: 0,
        })
    }

    async fn read(&self, position: u64, length: usize) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::with_capacity(length);
        while out.len() < length {
            let at = position + out.len() as u64;
            let chunk = self
                .file
                .read_at(at, length - out.len())
                .await
                .map_err(|error| StorageError::io("read", &self.path, error))?;
            if chunk.is_empty() {
                return Err(StorageError::corrupt(
                    at,
                    format!("{} ends before its recorded size", self.path.display()),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The next run of whole batches as (position of the first, bytes); None at the end.
    async fn next_chunk(&mut self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let remaining = self.size_bytes - self.position;
        if remaining == 0 {
            return Ok(None);
        }
        let position = self.position;
        let mut bytes = self
            .read(position, remaining.min(READ_CHUNK_BYTES as u64) as usize)
            .await?;
        let damaged = |reason: String| {
            StorageError::corrupt(position, format!("{}: {reason}", self.path.display()))
        };
        let header = BatchHeader::new(&bytes)
            .ok_or_else(|| damaged("the segment ends inside a batch header".into()))?;
        if header.batch_length() < BATCH_LENGTH_MIN || header.size_bytes() > remaining {
            return Err(damaged(format!(
                "batchLength {} does not fit the segment",
                header.batch_length()
            )));
        }
        if header.size_bytes() as usize > bytes.len() {
            bytes = self.read(position, header.size_bytes() as usize).await?;
        }
        let mut end = 0usize;
        for (at, header) in crate::batch::iterate_batches(&bytes) {
            end = at + header.size_bytes() as usize;
        }
        bytes.truncate(end);
        let mut at = 0usize;
        while at < bytes.len() {
            at += check_batch_integrity(&bytes[at..], position + at as u64)
                .map_err(|error| damaged(format!("{error} (cleaner read check)")))?;
        }
        self.position += end as u64;
        Ok(Some((position, bytes)))
    }
}

/// Fills `map` with the latest offset of every key in the dirty range, oldest first,
/// until the range ends or the map is full. Returns the end of the mapped part (one past
/// the map's latest offset): the next first dirty offset.
pub async fn build_offset_map(
    plan: &CleaningPlan,
    map: &mut OffsetMap,
    throttle: &mut IoThrottle,
) -> Result<i64, StorageError> {
    let (from, to) = (plan.first_dirty_offset, plan.first_uncleanable_offset);
    'segments: for segment in plan.dirty_segments() {
        let mut reader = BatchReader::open(segment).await?;
        while let Some((position, bytes)) = reader.next_chunk().await? {
            throttle.consume(bytes.len() as u64).await;
            for (at, header) in crate::batch::iterate_batches(&bytes) {
                if header.last_offset() < from {
                    continue;
                }
                if header.base_offset() >= to {
                    break 'segments;
                }
                if !header.is_control() {
                    let batch = &bytes[at..at + header.size_bytes() as usize];
                    let section = decompress_records(batch, position + at as u64)?;
                    let mut keys = Vec::with_capacity(header.records_count().max(0) as usize);
                    crate::batch::walk_record_section(&section, header.records_count(), |record| {
                        let offset = header.base_offset() + i64::from(record.offset_delta);
                        if let Some(key) = record.key
                            && offset >= from
                        {
                            keys.push((key, offset));
                        }
                        Ok(())
                    })
                    .map_err(|reason| StorageError::corrupt(position + at as u64, reason))?;
                    if keys.len() > map.free_entries() {
                        if map.latest_offset() < from {
                            return Err(StorageError::InvalidRecord {
                                reason: format!(
                                    "a batch of {} keys does not fit the cleaner's offset map of {} entries; raise log.cleaner.dedupe.buffer.size",
                                    keys.len(),
                                    map.entries_max()
                                ),
                            });
                        }
                        break 'segments;
                    }
                    for (key, offset) in keys {
                        map.put(key, offset);
                    }
                }
                map.update_latest_offset(header.last_offset());
            }
        }
    }
    Ok((map.latest_offset() + 1).max(from))
}

/// Filters one source segment into `<base>.*.cleaned` files and syncs them (steps 1–2
/// of the protocol). `end_offset` is the end of the mapped part; `now_ms` decides delete
/// horizons. When nothing changed the `.cleaned` files are removed again.
pub async fn clean_segment(
    plan: &CleaningPlan,
    source: &SourceSegment,
    map: &OffsetMap,
    now_ms: i64,
    throttle: &mut IoThrottle,
) -> Result<CleanedSegment, StorageError> {
    let rules = FilterRules {
        map,
        now_ms,
        delete_retention_ms: plan.delete_retention_ms,
        producer_last_offsets: &plan.producer_last_offsets,
        round_end_offset: plan.first_uncleanable_offset,
    };
    let paths = SegmentPaths::new(&plan.dir, source.base_offset);
    let cleaned_log = suffixed(&paths.log, CLEANED_SUFFIX);
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&cleaned_log)
        .await
        .map_err(|error| StorageError::io("create", &cleaned_log, error))?;
    let mut state = SegmentState::empty(source.base_offset, plan.segment_index_bytes);
    let mut stats = CleaningStats::default();
    let mut unchanged = true;
    let mut reader = BatchReader::open(source).await?;
    let written = async {
        while let Some((position, bytes)) = reader.next_chunk().await? {
            stats.bytes_read += bytes.len() as u64;
            let mut out = Vec::with_capacity(bytes.len());
            for (at, header) in crate::batch::iterate_batches(&bytes) {
                let batch = &bytes[at..at + header.size_bytes() as usize];
                let (filtered, counts) = filter_batch(batch, position + at as u64, &rules)?;
                stats.records_read += counts.records_read;
                stats.records_retained += counts.records_retained;
                let kept: &[u8] = match &filtered {
                    Filtered::Unchanged => batch,
                    Filtered::Rewritten(new) => {
                        unchanged = false;
                        debug_assert!(check_batch_integrity(new, 0).is_ok());
                        new
                    }
                    Filtered::Removed => {
                        unchanged = false;
                        continue;
                    }
                };
                let kept_header = BatchHeader::new(kept).expect("a whole batch");
                state.add_batch(
                    state.size_bytes,
                    kept.len() as u64,
                    kept_header.last_offset(),
                    kept_header.max_timestamp(),
                    plan.index_interval_bytes,
                );
                out.extend_from_slice(kept);
            }
            let length = out.len();
            if length > 0 {
                let at = state.size_bytes - length as u64;
                crate::segment::write_all_at(&output, &cleaned_log, out, at).await?;
            }
            stats.bytes_written += length as u64;
            throttle.consume((bytes.len() + length) as u64).await;
        }
        output
            .fdatasync()
            .await
            .map_err(|error| StorageError::io("fdatasync", &cleaned_log, error))
    }
    .await;
    output
        .close()
        .await
        .map_err(|error| StorageError::io("close", &cleaned_log, error))?;
    if let Err(error) = written {
        swap::discard_cleaned(&paths)?;
        return Err(error);
    }
    if unchanged {
        swap::discard_cleaned(&paths)?;
        return Ok(CleanedSegment {
            source: source.clone(),
            state,
            stats,
            unchanged,
        });
    }
    if state.max_timestamp >= 0 {
        let (timestamp, offset) = (state.max_timestamp, state.offset_of_max_timestamp);
        state.time_index.maybe_append(timestamp, offset, true);
    }
    write_synced(
        &suffixed(&paths.index, CLEANED_SUFFIX),
        state.offset_index.encode_all(),
    )
    .await?;
    write_synced(
        &suffixed(&paths.time_index, CLEANED_SUFFIX),
        state.time_index.encode_all(),
    )
    .await?;
    Ok(CleanedSegment {
        source: source.clone(),
        state,
        stats,
        unchanged,
    })
}

/// Writes a whole (index) file and fdatasyncs it.
async fn write_synced(path: &std::path::Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(|error| StorageError::io("create", path, error))?;
    if !bytes.is_empty() {
        crate::segment::write_all_at(&file, path, bytes, 0).await?;
    }
    file.fdatasync()
        .await
        .map_err(|error| StorageError::io("fdatasync", path, error))?;
    file.close()
        .await
        .map_err(|error| StorageError::io("close", path, error))
}
