//! Space for a segment's `.log` reserved ahead of its appends, on ext4.
//!
//! ext4 allocates blocks for buffered writes lazily (delayed allocation): every page an
//! append dirties first reserves its block (`ext4_da_get_block_prep`,
//! `ext4_da_reserve_space`, the extent status tree, buffer heads). Those were ~20 % of a
//! broker's CPU under produce load here, more than the copy into the page cache. Where
//! the blocks already exist as unwritten extents (`fallocate`), the write only maps
//! them: writing 1 GiB in 256 KiB `pwrite`s took 0.24 system CPU-s on a fresh file and
//! 0.16 on one preallocated 1–64 MiB at a time, with no more work at write-back
//! (bench/RESULTS.md, "Session 13"). Redpanda does the same (`segment_fallocation_step`).
//!
//! The reservation uses `FALLOC_FL_KEEP_SIZE`, so the file's size stays the end of
//! its last whole batch: recovery, readers and Kafka's tools see exactly the bytes
//! written. It runs ahead of the appends by as much as the segment already holds,
//! at least `AHEAD_BYTES_MIN` and at most `AHEAD_BYTES_MAX`: a partition that takes
//! little reserves little (thousands of idle partitions cost no more than a few
//! blocks each), a busy one a few MiB. What lies past the end is given back when the
//! segment is sealed or closed (`ftruncate` to its size frees blocks past the end),
//! and at open, which catches what a crash left reserved.
//!
//! Only on ext4 (and ext2/3, which share its magic number): XFS already writes
//! 1 GiB in ~0.09 CPU-s and gained nothing, and on tmpfs `fallocate` would allocate
//! and zero memory pages for nothing. A filesystem that refuses (`EOPNOTSUPP`) turns
//! it off for the segment; a full disk (`ENOSPC`) leaves the write to find out, as it
//! would have without the reservation.

use std::os::fd::RawFd;
use std::path::Path;

/// Least a reservation runs ahead of the appends.
const AHEAD_BYTES_MIN: u64 = 64 << 10;
/// Most a reservation runs ahead of the appends: 1 MiB steps already gained all the
/// measured benefit, 4 MiB keeps the `fallocate` calls rare at 1 GB/s.
const AHEAD_BYTES_MAX: u64 = 4 << 20;
const _: () = assert!(AHEAD_BYTES_MIN <= AHEAD_BYTES_MAX);

/// `EXT4_SUPER_MAGIC` (also ext2 and ext3).
const EXT4_SUPER_MAGIC: u64 = 0xEF53;

/// What is reserved for one `.log` file.
#[derive(Debug)]
pub(crate) struct Preallocation {
    /// Bytes from the file's start known to be allocated; `None` when this file is not
    /// preallocated (not ext4, or the filesystem refused).
    allocated_to: Option<u64>,
}

impl Preallocation {
    /// For a `.log` file of `size` bytes just opened as `fd`: preallocated when it
    /// lives on ext4. Blocks reserved past `size` by an earlier run that did not close
    /// the segment are given back.
    pub fn open(fd: RawFd, size: u64) -> Preallocation {
        if !on_ext4(fd) {
            return Preallocation { allocated_to: None };
        }
        if allocated_bytes(fd).is_some_and(|allocated| allocated > size.next_multiple_of(4096)) {
            give_back(fd, size);
        }
        Preallocation {
            allocated_to: Some(size),
        }
    }

    #[cfg(test)]
    fn is_active(&self) -> bool {
        self.allocated_to.is_some()
    }

    /// Before writing up to `end`: reserves up to `end` plus as much again (within
    /// `AHEAD_BYTES_MIN..=AHEAD_BYTES_MAX`) if `end` passes what is reserved.
    pub fn before_write(&mut self, fd: RawFd, end: u64) {
        let Some(allocated_to) = self.allocated_to else {
            return;
        };
        if end <= allocated_to {
            return;
        }
        let target = end + end.clamp(AHEAD_BYTES_MIN, AHEAD_BYTES_MAX);
        let Err(error) = reserve_blocks(fd, allocated_to, target - allocated_to) else {
            self.allocated_to = Some(target);
            return;
        };
        match error.raw_os_error() {
            // Full, or interrupted: the write goes ahead unreserved, and the next
            // append tries again.
            Some(libc::ENOSPC) | Some(libc::EINTR) => {}
            // Refused (a filesystem without fallocate, a file opened oddly): stop.
            _ => self.allocated_to = None,
        }
    }

    /// The file was cut to `size` (a failed write undone): nothing past it is reserved.
    pub fn truncated(&mut self, size: u64) {
        if let Some(allocated_to) = self.allocated_to.as_mut() {
            *allocated_to = size;
        }
    }

    /// Gives back the blocks reserved past `size`, the file's size, if there are any.
    pub fn release(&mut self, fd: RawFd, size: u64) {
        let Some(allocated_to) = self.allocated_to else {
            return;
        };
        if allocated_to <= size {
            return;
        }
        if give_back(fd, size) {
            self.allocated_to = Some(size);
        }
    }
}

/// Reserves the blocks of `bytes` bytes from `offset` in the file `fd` as unwritten
/// extents, without changing the file's size (`fallocate(FALLOC_FL_KEEP_SIZE)`).
pub fn reserve_blocks(fd: RawFd, offset: u64, bytes: u64) -> std::io::Result<()> {
    // SAFETY: fallocate on a descriptor the caller holds open; it touches no memory.
    let result = unsafe {
        libc::fallocate(
            fd,
            libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            bytes as libc::off_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `ftruncate` to the file's own `size`: no byte changes, and ext4 frees the blocks past
/// the end. On failure they stay reserved until the next open or the segment's
/// deletion; nothing is lost.
fn give_back(fd: RawFd, size: u64) -> bool {
    // SAFETY: ftruncate on a descriptor the caller owns; it touches no memory.
    unsafe { libc::ftruncate(fd, size as libc::off_t) == 0 }
}

fn on_ext4(fd: RawFd) -> bool {
    // SAFETY: fstatfs fills the struct it is given, which lives for the call.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut stats) } != 0 {
        return false;
    }
    stats.f_type as u64 == EXT4_SUPER_MAGIC
}

/// Whether segments in `dir` (an existing directory) get their blocks reserved ahead of
/// their appends: the same test `Preallocation::open` makes of each `.log` file.
pub fn preallocates_in(dir: &Path) -> std::io::Result<bool> {
    let file = std::fs::File::open(dir)?;
    Ok(on_ext4(std::os::fd::AsRawFd::as_raw_fd(&file)))
}

/// Bytes the file occupies on disk (`st_blocks` × 512).
fn allocated_bytes(fd: RawFd) -> Option<u64> {
    // SAFETY: fstat fills the struct it is given, which lives for the call.
    let mut stats: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stats) } != 0 {
        return None;
    }
    Some(stats.st_blocks as u64 * 512)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// A scratch dir on ext4, or `None` (the test then checks nothing ext4-specific).
    fn ext4_dir() -> Option<tempfile::TempDir> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("probe")).expect("create");
        on_ext4(file.as_raw_fd()).then_some(dir)
    }

    /// Goal: on ext4, a reservation runs ahead of the writes by as much as the file
    /// holds (within the bounds), keeps the file's size at the bytes written, and is
    /// given back at release and at the next open. Method: a real file in a temporary
    /// dir; allocated bytes from `st_blocks`.
    #[test]
    fn on_ext4_space_is_reserved_ahead_and_given_back() {
        let Some(dir) = ext4_dir() else {
            eprintln!("the temporary dir is not on ext4: nothing to check");
            return;
        };
        let path = dir.path().join("00000000000000000000.log");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("open");
        let fd = file.as_raw_fd();
        let mut preallocation = Preallocation::open(fd, 0);
        assert!(preallocation.is_active());

        // A small first write reserves the least step ahead.
        preallocation.before_write(fd, 1000);
        assert_eq!(preallocation.allocated_to, Some(1000 + AHEAD_BYTES_MIN));
        std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 1000], 0).expect("write");
        assert_eq!(file.metadata().expect("stat").len(), 1000, "the size stays");
        assert!(allocated_bytes(fd).expect("fstat") >= AHEAD_BYTES_MIN);

        // Writes within the reservation reserve nothing more.
        preallocation.before_write(fd, 60_000);
        assert_eq!(preallocation.allocated_to, Some(1000 + AHEAD_BYTES_MIN));

        // A large file reserves as much again, at most the greatest step.
        preallocation.before_write(fd, 1 << 20);
        assert_eq!(preallocation.allocated_to, Some(2 << 20));
        preallocation.before_write(fd, 16 << 20);
        assert_eq!(
            preallocation.allocated_to,
            Some((16 << 20) + AHEAD_BYTES_MAX)
        );
        assert!(allocated_bytes(fd).expect("fstat") >= (16 << 20) + AHEAD_BYTES_MAX);
        assert_eq!(file.metadata().expect("stat").len(), 1000);

        // Release gives back everything past the size.
        preallocation.release(fd, 1000);
        assert_eq!(preallocation.allocated_to, Some(1000));
        assert_eq!(allocated_bytes(fd).expect("fstat"), 4096);

        // What a crash left reserved is given back at the next open.
        preallocation.before_write(fd, 2000);
        assert!(allocated_bytes(fd).expect("fstat") > 4096);
        drop(file);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("reopen");
        let reopened = Preallocation::open(file.as_raw_fd(), 1000);
        assert_eq!(reopened.allocated_to, Some(1000));
        assert_eq!(allocated_bytes(file.as_raw_fd()).expect("fstat"), 4096);
        assert_eq!(std::fs::read(&path).expect("read"), vec![7u8; 1000]);
    }

    /// Goal: a file that is not on ext4 is left alone. Method: `/dev/shm` (tmpfs) when
    /// present.
    #[test]
    fn off_ext4_nothing_is_reserved() {
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("no /dev/shm: nothing to check");
            return;
        };
        let path = dir.path().join("segment.log");
        let file = std::fs::File::create(&path).expect("create");
        let mut preallocation = Preallocation::open(file.as_raw_fd(), 0);
        assert!(!preallocation.is_active());
        preallocation.before_write(file.as_raw_fd(), 1 << 20);
        assert_eq!(allocated_bytes(file.as_raw_fd()).expect("fstat"), 0);
    }
}
