//! Start-up scanning of segment files with blocking `std::fs` reads.
//!
//! This runs when a partition is opened (broker start-up, topic creation), before the
//! partition serves traffic, so blocking the shard briefly is acceptable and keeps the
//! code simple; the hot path never calls into this module.
//!
//! Two scans:
//! * **full** (recovery, index rebuild): every batch from position 0 is checked for
//!   length, magic 2 and CRC-32C, offsets must increase and stay within the segment's
//!   relative-offset range; indexes are rebuilt from scratch. The first failure marks
//!   the truncation point.
//! * **tail** (trusted segments): batch headers only (length, magic), from the last
//!   offset-index entry to the end, to learn the next offset and largest timestamp
//!   cheaply. A tail that does not end exactly at the file end triggers a full scan.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD, check_batch_integrity};
use crate::error::StorageError;
use crate::index::{OffsetIndex, TimeIndex};
use crate::log::{LogConfig, RecoveryReport, TruncationNote};
use crate::segment::{SegmentPaths, SegmentState};

/// Bytes read per `pread` while scanning: large enough to amortise syscalls over many
/// small batches, small enough not to matter next to the page cache.
const READ_WINDOW_BYTES: usize = 1 << 20;

/// A sliding read window over a file.
struct WindowReader<'a> {
    file: &'a File,
    path: &'a Path,
    file_size: u64,
    start: u64,
    buffer: Vec<u8>,
}

impl<'a> WindowReader<'a> {
    fn new(file: &'a File, path: &'a Path, file_size: u64) -> Self {
        WindowReader {
            file,
            path,
            file_size,
            start: 0,
            buffer: Vec::new(),
        }
    }

    /// Up to `length` bytes at `position` (fewer only at the end of the file).
    fn get(&mut self, position: u64, length: usize) -> Result<&[u8], StorageError> {
        let length = length.min(self.file_size.saturating_sub(position) as usize);
        let in_window = position >= self.start
            && position + length as u64 <= self.start + self.buffer.len() as u64;
        if !in_window {
            let read = length
                .max(READ_WINDOW_BYTES)
                .min(self.file_size.saturating_sub(position) as usize);
            self.buffer.resize(read, 0);
            self.file
                .read_exact_at(&mut self.buffer, position)
                .map_err(|error| StorageError::io("read", self.path, error))?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        Ok(&self.buffer[at..at + length])
    }
}

/// Where and why a scan stopped before the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanProblem {
    pub position: u64,
    pub reason: String,
}

/// Scans `path` from `start` (a batch boundary) to the end of the file, feeding each
/// good batch to `state.add_batch`. `full` checks CRCs. Returns the first problem, if
/// any; `state.size_bytes` then is the position of the last good batch end.
pub(crate) fn scan_segment(
    path: &Path,
    state: &mut SegmentState,
    start: u64,
    full: bool,
    index_interval_bytes: u32,
) -> Result<Option<ScanProblem>, StorageError> {
    let file = File::open(path).map_err(|error| StorageError::io("open", path, error))?;
    let file_size = file
        .metadata()
        .map_err(|error| StorageError::io("stat", path, error))?
        .len();
    let mut reader = WindowReader::new(&file, path, file_size);
    let mut position = start;
    state.size_bytes = start;
    while position < file_size {
        let problem = |reason: String| Ok(Some(ScanProblem { position, reason }));
        let (size, last_offset, base_offset, max_timestamp) = if full {
            let (prefix_length, claimed) = {
                let prefix = reader.get(position, HEADER_BYTES)?;
                let claimed = if prefix.len() >= LOG_OVERHEAD {
                    LOG_OVERHEAD as u64
                        + i32::from_be_bytes(prefix[8..12].try_into().expect("4 bytes")).max(0)
                            as u64
                } else {
                    prefix.len() as u64
                };
                (prefix.len(), claimed)
            };
            let claimed = claimed.min(file_size - position) as usize;
            let batch = reader.get(position, claimed.max(prefix_length))?;
            match check_batch_integrity(batch, position) {
                Ok(size) => {
                    let header = BatchHeader::new(batch).expect("integrity check saw a header");
                    (
                        size as u64,
                        header.last_offset(),
                        header.base_offset(),
                        header.max_timestamp(),
                    )
                }
                Err(error) => return problem(error.to_string()),
            }
        } else {
            let prefix = reader.get(position, HEADER_BYTES)?;
            let Some(header) = BatchHeader::new(prefix) else {
                return problem(format!(
                    "only {} bytes remain, fewer than a batch header",
                    prefix.len()
                ));
            };
            if header.batch_length() < crate::batch::BATCH_LENGTH_MIN
                || header.size_bytes() > file_size - position
            {
                return problem(format!(
                    "batchLength {} does not fit the file",
                    header.batch_length()
                ));
            }
            if header.magic() != crate::batch::MAGIC_V2 {
                return problem(format!("magic {} is not 2", header.magic()));
            }
            (
                header.size_bytes(),
                header.last_offset(),
                header.base_offset(),
                header.max_timestamp(),
            )
        };
        if base_offset < state.next_offset || last_offset < base_offset {
            return problem(format!(
                "batch offsets {base_offset}..={last_offset} do not follow offset {}",
                state.next_offset - 1
            ));
        }
        if !state.can_hold(last_offset, size) {
            return problem(format!(
                "offset {last_offset} does not fit segment {}",
                state.base_offset
            ));
        }
        state.add_batch(
            position,
            size,
            last_offset,
            max_timestamp,
            index_interval_bytes,
        );
        position += size;
    }
    Ok(None)
}

/// Reads a whole (small) index file; `None` if it does not exist.
pub(crate) fn read_index_file(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StorageError::io("read", path, error)),
    }
}

/// Replaces an index file's content and syncs it.
pub(crate) fn rewrite_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    std::fs::write(path, bytes).map_err(|error| StorageError::io("write", path, error))?;
    sync_file(path)
}

pub(crate) fn sync_file(path: &Path) -> Result<(), StorageError> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.sync_all())
        .map_err(|error| StorageError::io("fsync", path, error))
}

/// Truncates a file to `length` bytes and syncs it.
pub(crate) fn truncate_file(path: &Path, length: u64) -> Result<(), StorageError> {
    let file = File::options()
        .write(true)
        .open(path)
        .map_err(|error| StorageError::io("open", path, error))?;
    file.set_len(length)
        .map_err(|error| StorageError::io("truncate", path, error))?;
    file.sync_all()
        .map_err(|error| StorageError::io("fsync", path, error))
}

/// Segments found on disk, as (state, roll base time), plus what recovery did.
pub(crate) struct LoadedLog {
    pub segments: Vec<(SegmentState, i64)>,
    pub report: RecoveryReport,
    /// Whether files were created or deleted (the directory needs an fsync).
    pub created_files: bool,
}

/// Parses `<20 digits>.<extension>`.
fn parse_segment_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}

fn modified_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(crate::log::now_ms, |elapsed| elapsed.as_millis() as i64)
}

fn remove_file(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::io("remove", path, error)),
    }
}

/// Loads (and if needed recovers) the segments of a partition directory. See
/// `PartitionLog::open` for the contract.
pub(crate) fn load_log(
    dir: &Path,
    config: &LogConfig,
    recovery_point: Option<i64>,
    clean_shutdown: bool,
) -> Result<LoadedLog, StorageError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| StorageError::io("create directory", dir, error))?;
    // The log cleaner's leftovers first: an uncommitted cleaning vanishes, a committed
    // one is put in place (its indexes, deleted here, are rebuilt below).
    let swaps = crate::cleaner::swap::recover(dir)?;
    let mut log_bases = Vec::new();
    let mut index_files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io("list", dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io("list", dir, error))?;
        let name = entry.file_name();
        let Some((base_offset, extension)) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        match extension {
            "log" => log_bases.push(base_offset),
            "index" | "timeindex" => index_files.push((base_offset, entry.path())),
            // A segment file retention renamed before a crash or restart (log/retention.rs).
            deleted if deleted.ends_with(crate::log::DELETED_FILE_SUFFIX) => {
                tracing::info!(path = %entry.path().display(), "removing a file left for deletion");
                remove_file(&entry.path())?;
            }
            _ => {}
        }
    }
    log_bases.sort_unstable();
    let mut created_files = swaps.changed();
    // Index files without their log (a crash during deletion or roll) are orphans.
    for (base_offset, path) in index_files {
        if log_bases.binary_search(&base_offset).is_err() {
            tracing::warn!(path = %path.display(), "removing an index file that has no segment log");
            remove_file(&path)?;
            created_files = true;
        }
    }
    let recover_from = if clean_shutdown {
        log_bases.len()
    } else {
        let recovery_point = recovery_point.unwrap_or(i64::MIN);
        log_bases
            .partition_point(|&base| base <= recovery_point)
            .saturating_sub(1)
    };
    let mut report = RecoveryReport::default();
    let mut segments: Vec<(SegmentState, i64)> = Vec::with_capacity(log_bases.len());
    let mut truncated = false;
    let index_bytes_max = config.segment_index_bytes;
    let interval = config.index_interval_bytes;
    for (number, &base_offset) in log_bases.iter().enumerate() {
        let paths = SegmentPaths::new(dir, base_offset);
        let log_size = std::fs::metadata(&paths.log)
            .map_err(|error| StorageError::io("stat", &paths.log, error))?
            .len();
        let previous_end = segments.last().map(|(state, _)| state.next_offset);
        if !truncated && previous_end.is_some_and(|end| base_offset < end) {
            let reason = format!(
                "segment base offset {base_offset} overlaps the previous segment's offsets"
            );
            tracing::warn!(path = %paths.log.display(), position = 0, reason = %reason, "deleting segment during recovery");
            report.truncated.push(TruncationNote {
                path: paths.log.clone(),
                position: 0,
                reason,
                bytes_dropped: log_size,
            });
            truncated = true;
        }
        if truncated {
            for path in [&paths.log, &paths.index, &paths.time_index] {
                remove_file(path)?;
            }
            report.segments_deleted.push(paths.log.clone());
            created_files = true;
            continue;
        }
        let mut state = if number >= recover_from {
            None
        } else {
            load_trusted(&paths, base_offset, log_size, config)?
        };
        if state.is_none() {
            let mut recovered = SegmentState::empty(base_offset, index_bytes_max);
            if let Some(problem) = scan_segment(&paths.log, &mut recovered, 0, true, interval)? {
                let bytes_dropped = log_size - recovered.size_bytes;
                tracing::warn!(
                    path = %paths.log.display(),
                    position = problem.position,
                    bytes_dropped,
                    reason = %problem.reason,
                    "truncating a torn or corrupt segment tail during recovery"
                );
                truncate_file(&paths.log, recovered.size_bytes)?;
                report.truncated.push(TruncationNote {
                    path: paths.log.clone(),
                    position: problem.position,
                    reason: problem.reason,
                    bytes_dropped,
                });
                truncated = true;
            } else {
                // Validated data may sit only in the page cache (a process crash): make it durable.
                sync_file(&paths.log)?;
            }
            rewrite_file(&paths.index, &recovered.offset_index.encode_all())?;
            rewrite_file(&paths.time_index, &recovered.time_index.encode_all())?;
            report.indexes_rebuilt.push(paths.index.clone());
            report.indexes_rebuilt.push(paths.time_index.clone());
            created_files = true;
            state = Some(recovered);
        }
        let state = state.expect("loaded or recovered");
        segments.push((state, modified_ms(&paths.log)));
    }
    report.recovered_from = match log_bases.get(recover_from) {
        Some(&base_offset) => base_offset,
        None => segments.last().map_or(0, |(state, _)| state.next_offset),
    };
    Ok(LoadedLog {
        segments,
        report,
        created_files,
    })
}

/// Loads a segment whose data is trusted: index files must exist and pass the sanity
/// check, and the header walk from the last offset-index entry must end exactly at the
/// file end. `None` means "recover this segment fully instead".
fn load_trusted(
    paths: &SegmentPaths,
    base_offset: i64,
    log_size: u64,
    config: &LogConfig,
) -> Result<Option<SegmentState>, StorageError> {
    let index_bytes_max = config.segment_index_bytes;
    let (Some(index_bytes), Some(time_index_bytes)) = (
        read_index_file(&paths.index)?,
        read_index_file(&paths.time_index)?,
    ) else {
        tracing::warn!(path = %paths.index.display(), "rebuilding a missing index");
        return Ok(None);
    };
    let indexes = OffsetIndex::load(base_offset, index_bytes_max, &index_bytes, log_size).and_then(
        |offset_index| {
            Ok((
                offset_index,
                TimeIndex::load(base_offset, index_bytes_max, &time_index_bytes)?,
            ))
        },
    );
    let (offset_index, time_index) = match indexes {
        Ok(indexes) => indexes,
        Err(reason) => {
            tracing::warn!(path = %paths.index.display(), reason = %reason, "rebuilding an index that failed its sanity check");
            return Ok(None);
        }
    };
    let start = offset_index
        .last()
        .map_or(0, |(_, position)| u64::from(position));
    let mut tail = SegmentState::empty(base_offset, index_bytes_max);
    if let Some(problem) = scan_segment(
        &paths.log,
        &mut tail,
        start,
        false,
        config.index_interval_bytes,
    )? {
        tracing::warn!(path = %paths.log.display(), position = problem.position, reason = %problem.reason, "segment tail is damaged; recovering it");
        return Ok(None);
    }
    let next_offset = tail.next_offset;
    let consistent = offset_index
        .last()
        .is_none_or(|(offset, _)| offset < next_offset)
        && time_index
            .last_offset()
            .is_none_or(|offset| offset < next_offset);
    if !consistent {
        tracing::warn!(path = %paths.index.display(), "index points past the log end; rebuilding it");
        return Ok(None);
    }
    // Kafka leaves index files preallocated after a crash; drop the zero tail.
    if index_bytes.len() != offset_index.len() * crate::index::OFFSET_INDEX_ENTRY_BYTES {
        truncate_file(
            &paths.index,
            (offset_index.len() * crate::index::OFFSET_INDEX_ENTRY_BYTES) as u64,
        )?;
    }
    if time_index_bytes.len() != time_index.len() * crate::index::TIME_INDEX_ENTRY_BYTES {
        truncate_file(
            &paths.time_index,
            (time_index.len() * crate::index::TIME_INDEX_ENTRY_BYTES) as u64,
        )?;
    }
    let (mut max_timestamp, mut offset_of_max_timestamp) =
        time_index.last().unwrap_or((-1, base_offset));
    if tail.max_timestamp > max_timestamp {
        (max_timestamp, offset_of_max_timestamp) =
            (tail.max_timestamp, tail.offset_of_max_timestamp);
    }
    Ok(Some(SegmentState {
        base_offset,
        next_offset,
        size_bytes: tail.size_bytes,
        offset_index,
        time_index,
        max_timestamp,
        offset_of_max_timestamp,
        bytes_since_index_entry: tail.size_bytes - start,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{SimpleRecord, encode_batch};

    fn batch(base_offset: i64, count: usize) -> Vec<u8> {
        let records: Vec<SimpleRecord> = (0..count)
            .map(|i| SimpleRecord {
                timestamp_ms: 100 + i as i64,
                key: None,
                value: Some(vec![7; 50]),
            })
            .collect();
        encode_batch(base_offset, &records)
    }

    #[test]
    fn full_scan_stops_at_the_first_bad_batch_and_tail_scan_at_a_torn_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.log");
        let mut bytes = [batch(0, 2), batch(2, 3)].concat();
        let good_length = bytes.len() as u64;
        let mut third = batch(5, 1);
        let last = third.len() - 1;
        third[last] ^= 1; // bad CRC
        bytes.extend_from_slice(&third);
        std::fs::write(&path, &bytes).expect("write");

        let mut state = SegmentState::empty(0, 1024);
        let problem = scan_segment(&path, &mut state, 0, true, 100)
            .expect("scan")
            .expect("problem");
        assert_eq!(problem.position, good_length);
        assert!(problem.reason.contains("CRC"), "{}", problem.reason);
        assert_eq!(state.next_offset, 5);
        assert_eq!(state.size_bytes, good_length);

        // Headers only: the CRC flip goes unnoticed, a torn tail does not.
        let mut state = SegmentState::empty(0, 1024);
        assert_eq!(
            scan_segment(&path, &mut state, 0, false, 100).expect("scan"),
            None
        );
        assert_eq!(state.next_offset, 6);
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("write");
        let mut state = SegmentState::empty(0, 1024);
        let problem = scan_segment(&path, &mut state, 0, false, 100)
            .expect("scan")
            .expect("problem");
        assert_eq!(problem.position, good_length);
    }

    #[test]
    fn offsets_going_backwards_are_a_scan_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, [batch(0, 2), batch(1, 1)].concat()).expect("write");
        let mut state = SegmentState::empty(0, 1024);
        let problem = scan_segment(&path, &mut state, 0, true, 100)
            .expect("scan")
            .expect("problem");
        assert!(
            problem.reason.contains("do not follow"),
            "{}",
            problem.reason
        );
        assert_eq!(state.next_offset, 2);
    }
}
