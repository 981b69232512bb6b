//! File names and renames of the cleaner's crash-safe segment replacement (the
//! protocol is in the `cleaner` module doc), and its recovery at open.
//!
//! A cleaned segment keeps its source's base offset, so its final names are the
//! source's names: the last rename of the protocol replaces the source atomically.

use std::path::{Path, PathBuf};

use crate::checkpoint::sync_dir;
use crate::error::StorageError;
use crate::segment::SegmentPaths;

/// Suffix of files being written by the cleaner (Kafka's `CleanedFileSuffix`).
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of cleaned files that are committed but not yet in place (Kafka's `SwapFileSuffix`).
pub const SWAP_SUFFIX: &str = "swap";

/// `path` with `.<suffix>` appended (`00…0.log` → `00…0.log.cleaned`).
pub(crate) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The three files of a segment, in the protocol's rename order: indexes before the
/// log, whose rename is the step that counts.
fn in_rename_order(paths: &SegmentPaths) -> [&Path; 3] {
    [&paths.index, &paths.time_index, &paths.log]
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    std::fs::rename(from, to).map_err(|error| StorageError::io("rename", from, error))
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StorageError::io("remove", path, error)),
    }
}

/// Step 3 (commit): `.cleaned` → `.swap` for the indexes, then the log; fsync the
/// directory. Once the log's `.swap` exists, recovery completes the replacement.
pub(crate) fn commit(dir: &Path, paths: &SegmentPaths) -> Result<(), StorageError> {
    for path in in_rename_order(paths) {
        rename(
            &suffixed(path, CLEANED_SUFFIX),
            &suffixed(path, SWAP_SUFFIX),
        )?;
    }
    sync_dir(dir)
}

/// Step 4 (install): `.swap` → final name for the indexes, then the log (replacing
/// the source's files); fsync the directory.
pub(crate) fn install(dir: &Path, paths: &SegmentPaths) -> Result<(), StorageError> {
    for path in in_rename_order(paths) {
        rename(&suffixed(path, SWAP_SUFFIX), path)?;
    }
    sync_dir(dir)
}

/// Removes the `.cleaned` files of an abandoned cleaning.
pub(crate) fn discard_cleaned(paths: &SegmentPaths) -> Result<(), StorageError> {
    for path in in_rename_order(paths) {
        remove_if_exists(&suffixed(path, CLEANED_SUFFIX))?;
    }
    Ok(())
}

/// What `recover` did, for the recovery report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SwapRecovery {
    /// `.cleaned` files and uncommitted index `.swap` files removed.
    pub removed: Vec<PathBuf>,
    /// Segment logs a committed `.swap` replaced; their indexes must be rebuilt.
    pub completed: Vec<PathBuf>,
}

impl SwapRecovery {
    pub fn changed(&self) -> bool {
        !self.removed.is_empty() || !self.completed.is_empty()
    }
}

/// At open, before the segments are listed: removes every `.cleaned` file (a cleaning
/// that never committed), removes index `.swap` files whose log has no `.swap` (a
/// crash inside the commit, before the log's rename: the originals are intact), and
/// completes every committed swap by renaming its `.log.swap` over the log and deleting
/// its index files, which recovery then rebuilds from the new log.
pub(crate) fn recover(dir: &Path) -> Result<SwapRecovery, StorageError> {
    let mut result = SwapRecovery::default();
    let mut log_swaps = Vec::new();
    let mut index_swaps = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io("list", dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io("list", dir, error))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
            tracing::info!(path = %entry.path().display(), "removing the file of an unfinished cleaning");
            remove_if_exists(&entry.path())?;
            result.removed.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(&format!(".log.{SWAP_SUFFIX}")) {
            log_swaps.push(dir.join(format!("{stem}.log")));
        } else if name.ends_with(&format!(".index.{SWAP_SUFFIX}"))
            || name.ends_with(&format!(".timeindex.{SWAP_SUFFIX}"))
        {
            index_swaps.push(entry.path());
        }
    }
    for swap in index_swaps {
        let committed = log_swaps.iter().any(|log| {
            let log_stem = log.file_stem();
            Path::new(swap.file_stem().unwrap_or_default())
                .file_stem()
                .is_some_and(|stem| Some(stem) == log_stem)
        });
        if !committed {
            tracing::warn!(path = %swap.display(), "removing an index .swap file of an uncommitted cleaning");
            remove_if_exists(&swap)?;
            result.removed.push(swap);
        }
    }
    log_swaps.sort();
    for log in log_swaps {
        let paths = SegmentPaths {
            index: log.with_extension("index"),
            time_index: log.with_extension("timeindex"),
            log: log.clone(),
        };
        tracing::warn!(path = %log.display(), "completing a committed cleaned-segment swap");
        for index in [&paths.index, &paths.time_index] {
            remove_if_exists(&suffixed(index, SWAP_SUFFIX))?;
            remove_if_exists(index)?;
        }
        rename(&suffixed(&log, SWAP_SUFFIX), &log)?;
        result.completed.push(log);
    }
    if result.changed() {
        sync_dir(dir)?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, content: &str) {
        std::fs::write(path, content).expect("write");
    }

    fn names(dir: &Path) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("list")
            .map(|entry| {
                let entry = entry.expect("entry");
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(entry.path()).expect("read"),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn recovery_drops_uncommitted_files_and_completes_committed_swaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        // Segment 0: cleaning still writing. Segment 10: crash inside the commit (indexes
        // renamed, log not). Segment 20: committed, not installed.
        for (name, content) in [
            ("00000000000000000000.log", "old0"),
            ("00000000000000000000.index", "oldi0"),
            ("00000000000000000000.log.cleaned", "new0"),
            ("00000000000000000000.index.cleaned", "newi0"),
            ("00000000000000000010.log", "old10"),
            ("00000000000000000010.index", "oldi10"),
            ("00000000000000000010.timeindex", "oldt10"),
            ("00000000000000000010.index.swap", "newi10"),
            ("00000000000000000010.timeindex.swap", "newt10"),
            ("00000000000000000010.log.cleaned", "new10"),
            ("00000000000000000020.log", "old20"),
            ("00000000000000000020.index", "newi20"),
            ("00000000000000000020.timeindex.swap", "newt20"),
            ("00000000000000000020.log.swap", "new20"),
        ] {
            touch(&dir.join(name), content);
        }
        let recovery = recover(dir).expect("recover");
        assert_eq!(
            recovery.completed,
            vec![dir.join("00000000000000000020.log")]
        );
        assert_eq!(recovery.removed.len(), 5);
        assert_eq!(
            names(dir),
            vec![
                ("00000000000000000000.index".into(), "oldi0".into()),
                ("00000000000000000000.log".into(), "old0".into()),
                ("00000000000000000010.index".into(), "oldi10".into()),
                ("00000000000000000010.log".into(), "old10".into()),
                ("00000000000000000010.timeindex".into(), "oldt10".into()),
                ("00000000000000000020.log".into(), "new20".into()),
            ]
        );
        assert!(!recover(dir).expect("recover again").changed());
    }
}
