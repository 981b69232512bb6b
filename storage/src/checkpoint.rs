//! Kafka's checkpoint files, byte-compatible with Kafka's `CheckpointFile`.
//!
//! Per log directory: `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `replication-offset-checkpoint`, each
//!
//! ```text
//! 0                    <- version
//! 2                    <- entry count
//! my-topic 0 1234      <- topic partition offset
//! other 3 17
//! ```
//!
//! Per partition: `leader-epoch-checkpoint`, same framing with entries `<epoch> <start offset>`.
//!
//! ## Crash-consistency protocol (`write_atomically`)
//!
//! 1. Write the whole new content to `<name>.tmp` in the same directory (truncating a
//!    leftover temp file from an earlier crash).
//! 2. `fsync` the temp file, so its bytes are durable before it becomes visible.
//! 3. `rename` it over `<name>`: POSIX rename is atomic, so a reader (or a crash) sees
//!    either the complete old file or the complete new one, never a mix.
//! 4. `fsync` the directory, so the rename itself survives a power loss.
//!
//! A crash before step 3 leaves the old file intact (and a stale `.tmp`, overwritten
//! next time); after step 4 the new file is durable. These writes are blocking `std::fs`
//! calls: checkpoints are written by the engine's periodic timer and at shutdown, are a
//! few KiB, and glommio offers no directory fsync.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// The only checkpoint format version Kafka has written so far.
pub const CHECKPOINT_VERSION: u32 = 0;
/// Upper bound on entries accepted from a file, so a corrupt count cannot make us
/// allocate without limit (one entry per partition of the directory).
pub const CHECKPOINT_ENTRIES_MAX: usize = 1 << 20;

/// Writes `bytes` to `path` with the temp → fsync → rename → fsync-dir protocol above.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary)
        .map_err(|error| StorageError::io("create", &temporary, error))?;
    file.write_all(bytes)
        .map_err(|error| StorageError::io("write", &temporary, error))?;
    file.sync_all()
        .map_err(|error| StorageError::io("fsync", &temporary, error))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .map_err(|error| StorageError::io("rename into place", path, error))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| StorageError::io("fsync directory", dir, error))
}

fn malformed(path: &Path, line: usize, reason: impl Into<String>) -> StorageError {
    StorageError::MalformedFile {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Reads the version/count framing and returns the entry lines (1-based line numbers).
fn read_framed(path: &Path) -> Result<Vec<(usize, Vec<String>)>, StorageError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| StorageError::io("read", path, error))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line.trim()));
    let (_, version) = lines
        .next()
        .ok_or_else(|| malformed(path, 1, "the file is empty"))?;
    if version.parse::<u32>() != Ok(CHECKPOINT_VERSION) {
        return Err(malformed(
            path,
            1,
            format!("unsupported version {version:?}"),
        ));
    }
    let (_, count) = lines
        .next()
        .ok_or_else(|| malformed(path, 2, "the entry count is missing"))?;
    let count: usize = count
        .parse()
        .map_err(|_| malformed(path, 2, format!("bad entry count {count:?}")))?;
    if count > CHECKPOINT_ENTRIES_MAX {
        return Err(malformed(
            path,
            2,
            format!("entry count {count} exceeds {CHECKPOINT_ENTRIES_MAX}"),
        ));
    }
    let entries: Vec<(usize, Vec<String>)> = lines
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| (number, line.split_whitespace().map(str::to_owned).collect()))
        .collect();
    if entries.len() != count {
        return Err(malformed(
            path,
            2,
            format!("declares {count} entries but holds {}", entries.len()),
        ));
    }
    Ok(entries)
}

fn parse<T: std::str::FromStr>(path: &Path, line: usize, field: &str) -> Result<T, StorageError> {
    field
        .parse()
        .map_err(|_| malformed(path, line, format!("{field:?} is not a number")))
}

/// Reads a per-directory offset checkpoint as (topic, partition, offset) entries.
/// A missing file reads as empty (a fresh directory).
pub fn read_checkpoint(path: &Path) -> Result<Vec<(String, i32, i64)>, StorageError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_framed(path)?
        .into_iter()
        .map(|(line, fields)| match fields.as_slice() {
            [topic, partition, offset] => Ok((
                topic.clone(),
                parse(path, line, partition)?,
                parse(path, line, offset)?,
            )),
            _ => Err(malformed(
                path,
                line,
                "expected \"<topic> <partition> <offset>\"",
            )),
        })
        .collect()
}

/// Writes a per-directory offset checkpoint atomically.
pub fn write_checkpoint(path: &Path, entries: &[(String, i32, i64)]) -> Result<(), StorageError> {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        assert!(
            !topic.is_empty() && !topic.contains(char::is_whitespace),
            "Kafka topic names hold no whitespace"
        );
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomically(path, text.as_bytes())
}

/// Reads a `leader-epoch-checkpoint` as (epoch, start offset) entries; missing → empty.
pub fn read_leader_epoch_checkpoint(path: &Path) -> Result<Vec<(i32, i64)>, StorageError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_framed(path)?
        .into_iter()
        .map(|(line, fields)| match fields.as_slice() {
            [epoch, offset] => Ok((parse(path, line, epoch)?, parse(path, line, offset)?)),
            _ => Err(malformed(path, line, "expected \"<epoch> <start offset>\"")),
        })
        .collect()
}

/// Writes a `leader-epoch-checkpoint` atomically.
pub fn write_leader_epoch_checkpoint(
    path: &Path,
    entries: &[(i32, i64)],
) -> Result<(), StorageError> {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (epoch, offset) in entries {
        text.push_str(&format!("{epoch} {offset}\n"));
    }
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert_eq!(read_checkpoint(&path).expect("missing reads empty"), vec![]);
        let entries = vec![
            ("my-topic".to_string(), 0, 1234),
            ("__consumer_offsets".to_string(), 49, 0),
        ];
        write_checkpoint(&path, &entries).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "0\n2\nmy-topic 0 1234\n__consumer_offsets 49 0\n"
        );
        assert_eq!(read_checkpoint(&path).expect("read"), entries);
        assert!(
            !dir.path()
                .join("recovery-point-offset-checkpoint.tmp")
                .exists()
        );
    }

    #[test]
    fn malformed_checkpoints_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log-start-offset-checkpoint");
        std::fs::write(&path, "0\n2\nt 0 5\n").expect("write");
        assert!(matches!(
            read_checkpoint(&path),
            Err(StorageError::MalformedFile { line: 2, .. })
        ));
        std::fs::write(&path, "0\n1\nt zero 5\n").expect("write");
        assert!(matches!(
            read_checkpoint(&path),
            Err(StorageError::MalformedFile { line: 3, .. })
        ));
        std::fs::write(&path, "1\n0\n").expect("write");
        assert!(matches!(
            read_checkpoint(&path),
            Err(StorageError::MalformedFile { line: 1, .. })
        ));
    }

    #[test]
    fn leader_epoch_checkpoint_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leader-epoch-checkpoint");
        write_leader_epoch_checkpoint(&path, &[(0, 0), (3, 120)]).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "0\n2\n0 0\n3 120\n"
        );
        assert_eq!(
            read_leader_epoch_checkpoint(&path).expect("read"),
            vec![(0, 0), (3, 120)]
        );
    }
}
