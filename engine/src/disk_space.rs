//! The disk-pressure guard: appends to a log dir stop before its disk fills.
//!
//! ```text
//!   every DISK_SPACE_CHECK_INTERVAL_MS, per shard:
//!     statvfs(log dir i) ─► available bytes < weir.log.dir.min.free.bytes ?
//!        yes ─► DirSpace[i].low = true  ─► Partition::append → KAFKA_STORAGE_ERROR
//!        no  ─► DirSpace[i].low = false ─► appends resume by themselves
//! ```
//!
//! Reads are never refused: consumers keep draining a full disk. A full disk would
//! otherwise surface as a failed write in the middle of an append, and `__consumer_offsets`
//! and checkpoints need room too, so the guard keeps a floor free instead of running to
//! zero. Each shard checks for itself (statvfs is a cheap syscall) so no cross-shard
//! state is shared; the flags are shard-local `Cell`s.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use tracing::{info, warn};

use crate::shard::Shard;

/// How often each shard measures free space: short enough that a burst of produce
/// cannot write much past the floor (the floor should exceed what one interval of
/// peak ingest writes), long enough to cost nothing.
pub const DISK_SPACE_CHECK_INTERVAL_MS: u64 = 250;

/// One log dir's state as this shard last measured it.
#[derive(Debug, Default)]
pub struct DirSpace {
    low: Cell<bool>,
    available_bytes: Cell<u64>,
}

impl DirSpace {
    /// Whether appends to this dir are refused for lack of space.
    pub fn is_low(&self) -> bool {
        self.low.get()
    }

    /// Free bytes at the last check (for the error message).
    pub fn available_bytes(&self) -> u64 {
        self.available_bytes.get()
    }
}

/// Bytes an unprivileged writer can still use on the file system holding `path`.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a valid out-pointer.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// Measures every log dir once and updates the flags; logs each change of state.
pub fn check(shard: &Shard) {
    let floor = shard.effective_config().maintenance.log_dir_free_bytes_min;
    for (index, dir) in shard.config.log_dirs.iter().enumerate() {
        let space = shard.dir_space(index);
        let available = match available_bytes(dir) {
            Ok(available) => available,
            Err(error) => {
                warn!(shard = shard.id, dir = %dir.display(), %error, "could not measure free space");
                continue;
            }
        };
        space.available_bytes.set(available);
        let low = available < floor;
        if space.low.replace(low) != low && shard.id == 0 {
            if low {
                warn!(dir = %dir.display(), available_bytes = available, min_free_bytes = floor,
                    "log dir is low on space: produce to it fails with KAFKA_STORAGE_ERROR until space returns (weir.log.dir.min.free.bytes)");
            } else {
                info!(dir = %dir.display(), available_bytes = available, "log dir has space again: produce resumes");
            }
        }
    }
}

/// Runs `check` every `DISK_SPACE_CHECK_INTERVAL_MS` until shutdown.
pub async fn disk_space_loop(shard: Rc<Shard>) {
    loop {
        check(&shard);
        if !shard
            .sleep_unless_shutdown(DISK_SPACE_CHECK_INTERVAL_MS)
            .await
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn available_bytes_of_an_existing_dir_is_measured_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(super::available_bytes(dir.path()).expect("statvfs") > 0);
        assert!(super::available_bytes(&dir.path().join("missing")).is_err());
    }
}
