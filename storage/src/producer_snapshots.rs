//! Producer state snapshot files of one partition directory (`<offset>.snapshot`).
//!
//! A snapshot named `N` holds the producer state after every batch below offset `N`.
//! Crash-consistency protocol:
//! 1. A snapshot is written with `write_atomically` (temp file → fsync → rename → fsync
//!    directory), so a snapshot file is either whole or absent.
//! 2. It is taken at segment roll (named by the new segment's base offset) and at clean
//!    shutdown (named by the log end offset), after the data below `N` was written.
//! 3. At open, after recovery fixed the log end, snapshots above the log end describe
//!    data that no longer exists and are deleted; the newest remaining one that decodes
//!    is loaded (a damaged one is deleted with a warning) and the batches from its
//!    offset to the log end are replayed. Without any, state is rebuilt from the log start.
//! 4. Only the newest [`SNAPSHOTS_RETAINED`] snapshots are kept, and none below the log
//!    start offset once it advanced (retention, DeleteRecords).
//!
//! Blocking `std::fs`, as for checkpoints: this runs at open, roll, close and when the
//! log start advances only.

use std::path::{Path, PathBuf};

use crate::checkpoint::write_atomically;
use crate::error::StorageError;
use crate::producer_state::{ProducerStateTable, SNAPSHOT_EXTENSION};
use crate::segment_file_name;

/// Snapshots kept per partition: the newest plus one older fallback, in case a crash
/// truncates the log below the newest.
pub const SNAPSHOTS_RETAINED: usize = 2;

/// The snapshot files of a partition directory, oldest first.
pub fn list(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io("list", dir, error))?;
    let mut offsets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io("list", dir, error))?;
        let name = entry.file_name();
        let Some((stem, extension)) = name.to_str().and_then(|name| name.split_once('.')) else {
            continue;
        };
        if extension == SNAPSHOT_EXTENSION
            && stem.len() == 20
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment_file_name(offset, SNAPSHOT_EXTENSION))
}

fn delete(dir: &Path, offset: i64) -> Result<(), StorageError> {
    let path = path(dir, offset);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::io("delete", &path, error)),
    }
}

/// Deletes the snapshots below `log_start_offset` (they describe data that is gone);
/// returns how many.
pub fn delete_before(dir: &Path, log_start_offset: i64) -> Result<usize, StorageError> {
    let doomed: Vec<i64> = list(dir)?
        .into_iter()
        .filter(|&offset| offset < log_start_offset)
        .collect();
    for &offset in &doomed {
        delete(dir, offset)?;
    }
    Ok(doomed.len())
}

/// Deletes snapshots above `log_end_offset`, then loads the newest one that decodes.
/// Returns the state and the offset replay must start from (None: no usable snapshot).
pub fn load(
    dir: &Path,
    log_end_offset: i64,
    now_ms: i64,
    expiration_ms: i64,
) -> Result<(ProducerStateTable, Option<i64>), StorageError> {
    let mut offsets = list(dir)?;
    while let Some(&offset) = offsets.last() {
        offsets.pop();
        if offset > log_end_offset {
            tracing::info!(dir = %dir.display(), offset, log_end_offset,
                "deleting a producer snapshot beyond the log end");
            delete(dir, offset)?;
            continue;
        }
        let path = path(dir, offset);
        let bytes = std::fs::read(&path).map_err(|error| StorageError::io("read", &path, error))?;
        match ProducerStateTable::decode_snapshot(&bytes, now_ms, expiration_ms) {
            Ok(table) => return Ok((table, Some(offset))),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error,
                    "deleting a damaged producer snapshot; state is rebuilt from the log");
                delete(dir, offset)?;
            }
        }
    }
    Ok((ProducerStateTable::default(), None))
}

/// Writes the snapshot for `offset` (replacing one of the same name) and deletes all but
/// the newest [`SNAPSHOTS_RETAINED`].
pub fn write(dir: &Path, offset: i64, table: &ProducerStateTable) -> Result<(), StorageError> {
    write_atomically(&path(dir, offset), &table.encode_snapshot())?;
    let offsets = list(dir)?;
    let excess = offsets.len().saturating_sub(SNAPSHOTS_RETAINED);
    for &old in &offsets[..excess] {
        delete(dir, old)?;
    }
    Ok(())
}
