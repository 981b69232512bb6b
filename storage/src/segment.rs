//! One segment: `<base>.log` + `<base>.index` + `<base>.timeindex`.
//!
//! `SegmentState` is the in-memory bookkeeping (sizes, offsets, indexes, largest
//! timestamp) with no I/O; recovery builds it with blocking reads, appends update it.
//! `Segment` adds the open glommio files. Reads, index writes and fdatasync go through
//! glommio's io_uring `BufferedFile`s; only opening happens outside the hot path.
//! Appends to the `.log` go through io_uring too, or with `SegmentWrites::Pwrite` are
//! written by the shard itself (`pwrite`), for filesystems where io_uring would hand
//! every buffered write to a worker thread anyway (see `SegmentWrites`).
//!
//! Write order within one append: the batches go to the `.log` in one write at the
//! committed size. `size_bytes` only advances once the log write completed, so readers
//! on the same shard never see a half-written batch.
//!
//! Index entries are added in memory with each append (the in-memory indexes answer
//! every lookup) and appended to `.index` and `.timeindex` in groups: once the log has
//! grown by `INDEX_WRITE_INTERVAL_BYTES` since the last index write, and always before
//! an fdatasync, when the segment is sealed and when it is closed. Writing them with
//! every append cost two more buffered writes per append, each handed to an io_uring
//! worker thread. So the files on disk hold every entry up to the recovery point (the
//! last flush), and recovery rebuilds what lies beyond it, as it did before.

use std::cell::Cell;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glommio::io::{BufferedFile, OpenOptions};

use crate::batch::{BATCH_LENGTH_MIN, BatchHeader, HEADER_BYTES};
use crate::error::StorageError;
use crate::index::{OffsetIndex, TimeIndex};
use crate::preallocation::Preallocation;
use crate::segment_file_name;

/// How many bytes a header scan reads per I/O: enough for several batch headers
/// between two index entries (Kafka indexes every 4 KiB by default).
const SCAN_WINDOW_BYTES: usize = 16 << 10;
const _: () = assert!(SCAN_WINDOW_BYTES >= HEADER_BYTES);

/// How far the `.log` grows before the index entries added since the last index write
/// are written (see the module comment).
const INDEX_WRITE_INTERVAL_BYTES: u64 = 16 << 20;

/// Segment bookkeeping without files.
#[derive(Clone, Debug)]
pub(crate) struct SegmentState {
    pub base_offset: i64,
    /// One past the last offset stored in this segment (`base_offset` when empty).
    pub next_offset: i64,
    /// Bytes of whole, acknowledged batches in the `.log`.
    pub size_bytes: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch maxTimestamp in the segment, −1 when empty.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    pub bytes_since_index_entry: u64,
}

impl SegmentState {
    pub fn empty(base_offset: i64, index_bytes_max: u32) -> Self {
        SegmentState {
            base_offset,
            next_offset: base_offset,
            size_bytes: 0,
            offset_index: OffsetIndex::new(base_offset, index_bytes_max),
            time_index: TimeIndex::new(base_offset, index_bytes_max),
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_index_entry: 0,
        }
    }

    /// Accounts for one batch written at `position`, adding index entries the way
    /// Kafka's `LogSegment.append` does: once more than `index_interval_bytes` were
    /// written since the last entry, index this batch's last offset → its start.
    pub fn add_batch(
        &mut self,
        position: u64,
        size_bytes: u64,
        last_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u32,
    ) {
        assert!(
            last_offset >= self.next_offset,
            "offsets went backwards: {last_offset} < {}",
            self.next_offset
        );
        assert_eq!(position, self.size_bytes, "batches are contiguous");
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_index_entry > u64::from(index_interval_bytes) {
            let position = u32::try_from(position)
                .expect("segment positions fit in u32 (segment.bytes ≤ 2 GiB)");
            self.offset_index.append(last_offset, position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += size_bytes;
        self.next_offset = last_offset + 1;
        self.size_bytes = position + size_bytes;
    }

    /// Whether an append reaching `last_offset` still fits relative offsets (u32) and
    /// positions (u32) of this segment's indexes.
    pub fn can_hold(&self, last_offset: i64, bytes: u64) -> bool {
        last_offset - self.base_offset <= i64::from(i32::MAX)
            && self.size_bytes + bytes <= u64::from(i32::MAX as u32)
    }
}

/// The three file paths of a segment.
#[derive(Clone, Debug)]
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub fn new(dir: &Path, base_offset: i64) -> Self {
        SegmentPaths {
            log: dir.join(segment_file_name(base_offset, "log")),
            index: dir.join(segment_file_name(base_offset, "index")),
            time_index: dir.join(segment_file_name(base_offset, "timeindex")),
        }
    }
}

/// A segment with its open files.
pub(crate) struct Segment {
    pub state: SegmentState,
    pub paths: SegmentPaths,
    /// Time the segment counts from for `segment.ms` rolling.
    pub roll_base_ms: i64,
    /// Whether the files have writes not yet fdatasync'ed.
    pub dirty: bool,
    /// `state.size_bytes` when the pending index entries were last written.
    indexed_size_bytes: u64,
    /// Blocks of the `.log` reserved ahead of the appends (ext4 only; see
    /// `preallocation`).
    preallocation: Preallocation,
    log: BufferedFile,
    index: BufferedFile,
    time_index: BufferedFile,
}

async fn open_read_write(path: &Path, truncate: bool) -> Result<BufferedFile, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .buffered_open(path)
        .await
        .map_err(|error| StorageError::io("open", path, error))
}

impl Segment {
    /// Creates a new, empty segment (truncating any stale files of that name).
    pub async fn create(
        dir: &Path,
        base_offset: i64,
        index_bytes_max: u32,
        now_ms: i64,
    ) -> Result<Segment, StorageError> {
        Self::open(
            dir,
            SegmentState::empty(base_offset, index_bytes_max),
            now_ms,
            true,
        )
        .await
    }

    /// Opens the files of a segment whose state recovery established. The files on
    /// disk must already match `state` (recovery wrote rebuilt indexes).
    pub async fn open(
        dir: &Path,
        state: SegmentState,
        roll_base_ms: i64,
        truncate: bool,
    ) -> Result<Segment, StorageError> {
        let paths = SegmentPaths::new(dir, state.base_offset);
        let log = open_read_write(&paths.log, truncate).await?;
        let index = open_read_write(&paths.index, truncate).await?;
        let time_index = open_read_write(&paths.time_index, truncate).await?;
        let preallocation = Preallocation::open(log.as_raw_fd(), state.size_bytes);
        Ok(Segment {
            indexed_size_bytes: state.size_bytes,
            preallocation,
            state,
            paths,
            roll_base_ms,
            dirty: truncate,
            log,
            index,
            time_index,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.state.base_offset
    }

    /// Appends already validated and stamped batches. `batches` lists each batch's
    /// (position in `buffer`, size, last offset, max timestamp).
    pub async fn append(
        &mut self,
        bytes: AppendBytes<'_>,
        batches: &[(usize, u64, i64, i64)],
        index_interval_bytes: u32,
        writes: SegmentWrites,
    ) -> Result<(), StorageError> {
        let length = bytes.len();
        let position = self.state.size_bytes;
        self.dirty = true;
        let started = Instant::now();
        self.preallocation
            .before_write(self.log.as_raw_fd(), position + length as u64);
        let reserved = started.elapsed();
        let written = match writes {
            SegmentWrites::IoUring => self
                .log
                .write_at(bytes.into_vec(), position)
                .await
                .map_err(Into::into),
            SegmentWrites::Pwrite => pwritev_all(self.log.as_raw_fd(), &bytes.pieces(), position),
        };
        // An io_uring write waits off the shard; a reservation or a `pwritev` holds it.
        let held = match writes {
            SegmentWrites::IoUring => reserved,
            SegmentWrites::Pwrite => started.elapsed(),
        };
        if held >= SLOW_APPEND {
            note_slow_append(&self.paths.log, length, reserved, held - reserved);
        }
        let written =
            written.map_err(|error| StorageError::io("append to", &self.paths.log, error))?;
        if written != length {
            // Regular files only write short on ENOSPC/EFBIG; drop the partial bytes.
            let _ = self.log.truncate(position).await;
            self.preallocation.truncated(position);
            return Err(StorageError::io(
                "append to",
                &self.paths.log,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short write: {written} of {length} bytes (disk full?)"),
                ),
            ));
        }
        for &(offset_in_buffer, size_bytes, last_offset, max_timestamp) in batches {
            self.state.add_batch(
                position + offset_in_buffer as u64,
                size_bytes,
                last_offset,
                max_timestamp,
                index_interval_bytes,
            );
        }
        assert_eq!(self.state.size_bytes, position + length as u64);
        if self.state.size_bytes - self.indexed_size_bytes >= INDEX_WRITE_INTERVAL_BYTES {
            self.write_pending_index_entries().await?;
        }
        Ok(())
    }

    /// Appends the index entries added in memory since the last index write.
    async fn write_pending_index_entries(&mut self) -> Result<(), StorageError> {
        self.indexed_size_bytes = self.state.size_bytes;
        if let Some((position, bytes)) = self.state.offset_index.take_pending() {
            write_all_at(&self.index, &self.paths.index, bytes, position).await?;
        }
        if let Some((position, bytes)) = self.state.time_index.take_pending() {
            write_all_at(&self.time_index, &self.paths.time_index, bytes, position).await?;
        }
        Ok(())
    }

    /// Called when this segment stops being the active one: like Kafka, record the
    /// segment's largest timestamp in the time index even if the index is full.
    pub async fn seal(&mut self) -> Result<(), StorageError> {
        if self.state.max_timestamp >= 0 {
            let (timestamp, offset) =
                (self.state.max_timestamp, self.state.offset_of_max_timestamp);
            self.state.time_index.maybe_append(timestamp, offset, true);
        }
        self.release_reserved_space();
        self.write_pending_index_entries().await
    }

    /// Gives back the blocks reserved past the end of the `.log` (see `preallocation`).
    pub fn release_reserved_space(&mut self) {
        self.preallocation
            .release(self.log.as_raw_fd(), self.state.size_bytes);
    }

    /// A descriptor of its own for the `.log` (a `dup`), for sending file regions with
    /// `sendfile` from any shard: it stays valid, and keeps the bytes readable, after the
    /// segment is closed, deleted by retention or replaced by the cleaner.
    pub fn log_descriptor(&self) -> Result<OwnedFd, StorageError> {
        // SAFETY: the BufferedFile owns an open descriptor for as long as `self` lives.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.log.as_raw_fd()) };
        borrowed
            .try_clone_to_owned()
            .map_err(|error| StorageError::io("dup", &self.paths.log, error))
    }

    /// Reads exactly `length` bytes at `position` of the `.log`.
    pub async fn read_log(&self, position: u64, length: usize) -> Result<Vec<u8>, StorageError> {
        assert!(
            position + length as u64 <= self.state.size_bytes,
            "read past the committed size"
        );
        let mut out = Vec::with_capacity(length);
        while out.len() < length {
            let at = position + out.len() as u64;
            let chunk = self
                .log
                .read_at(at, length - out.len())
                .await
                .map_err(|error| StorageError::io("read", &self.paths.log, error))?;
            if chunk.is_empty() {
                return Err(StorageError::io(
                    "read",
                    &self.paths.log,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file ends before byte {}", at),
                    ),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Finds the position of the first batch whose last offset is ≥ `target`, scanning
    /// batch headers forward from the offset index's greatest entry ≤ `target`.
    /// Returns `(position, batch base offset)`, or `None` if no such batch exists.
    pub async fn find_batch(&self, target: i64) -> Result<Option<(u64, i64)>, StorageError> {
        let (_, start) = self.state.offset_index.lookup(target);
        self.scan_headers(u64::from(start), |header| header.last_offset() >= target)
            .await
    }

    /// Scans batch headers from `position` (a batch start) and returns the first batch
    /// for which `stop` holds, as (position, base offset).
    pub async fn scan_headers(
        &self,
        mut position: u64,
        mut stop: impl FnMut(&BatchHeader<'_>) -> bool,
    ) -> Result<Option<(u64, i64)>, StorageError> {
        let end = self.state.size_bytes;
        while position < end {
            let window = (end - position).min(SCAN_WINDOW_BYTES as u64) as usize;
            let bytes = self.read_log(position, window).await?;
            let mut at = 0usize;
            while let Some(header) = BatchHeader::new(&bytes[at..]) {
                if header.batch_length() < BATCH_LENGTH_MIN {
                    // Trusted (clean-shutdown) segments are not re-validated, so damage
                    // found here is an operating error, not a broken invariant.
                    return Err(StorageError::corrupt(
                        position + at as u64,
                        format!(
                            "{} holds batchLength {}",
                            self.paths.log.display(),
                            header.batch_length()
                        ),
                    ));
                }
                if stop(&header) {
                    return Ok(Some((position + at as u64, header.base_offset())));
                }
                at += header.size_bytes() as usize;
                if at >= bytes.len() {
                    break;
                }
            }
            if at == 0 {
                return Err(StorageError::corrupt(
                    position,
                    format!("{} ends inside a batch header", self.paths.log.display()),
                ));
            }
            position += at as u64;
        }
        Ok(None)
    }

    /// Writes the pending index entries, then fdatasyncs the log and both indexes, if
    /// anything was appended since the last sync.
    pub async fn flush(&mut self) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        self.write_pending_index_entries().await?;
        self.log
            .fdatasync()
            .await
            .map_err(|error| StorageError::io("fdatasync", &self.paths.log, error))?;
        self.index
            .fdatasync()
            .await
            .map_err(|error| StorageError::io("fdatasync", &self.paths.index, error))?;
        self.time_index
            .fdatasync()
            .await
            .map_err(|error| StorageError::io("fdatasync", &self.paths.time_index, error))?;
        self.dirty = false;
        Ok(())
    }

    /// Writes the pending index entries and closes the files.
    pub async fn close(mut self) -> Result<(), StorageError> {
        self.release_reserved_space();
        self.write_pending_index_entries().await?;
        self.log
            .close()
            .await
            .map_err(|error| StorageError::io("close", &self.paths.log, error))?;
        self.index
            .close()
            .await
            .map_err(|error| StorageError::io("close", &self.paths.index, error))?;
        self.time_index
            .close()
            .await
            .map_err(|error| StorageError::io("close", &self.paths.time_index, error))
    }
}

/// How a segment's appends reach its `.log` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentWrites {
    /// An io_uring write (glommio's `BufferedFile::write_at`, which takes the bytes as
    /// an owned `Vec`). Where the filesystem can do buffered writes without blocking
    /// (`RWF_NOWAIT`: XFS, btrfs), the kernel copies the bytes in the submitting call
    /// and hands the write to a worker thread only when it would block.
    IoUring,
    /// `pwrite` on the shard's own thread. Where the filesystem refuses `RWF_NOWAIT`
    /// buffered writes (ext4 up to at least Linux 6.18), io_uring hands every buffered
    /// write to one of its worker threads, which runs on the shard's core: the same copy
    /// into the page cache, plus two context switches and a wake-up per append. Writing
    /// on the shard skips those, at the price that a write the kernel throttles (dirty
    /// page limits, reclaim) stalls the shard instead of one worker.
    Pwrite,
}

/// Whether buffered writes to files in `dir` would each be handed to an io_uring worker
/// thread: the filesystem refuses `pwritev2(RWF_NOWAIT)` on a regular file with
/// `EOPNOTSUPP`. Probes with a small file it creates and removes.
pub fn buffered_writes_wait_for_worker(dir: &Path) -> std::io::Result<bool> {
    let path = dir.join(format!(".weir-nowait-probe-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let byte = [0u8; 1];
    let iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    // SAFETY: one iovec over a live one-byte buffer, on a descriptor we own.
    let result = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    let error = std::io::Error::last_os_error();
    drop(file);
    let _ = std::fs::remove_file(&path);
    if result >= 0 {
        return Ok(false);
    }
    match error.raw_os_error() {
        Some(libc::EOPNOTSUPP) => Ok(true),
        // EAGAIN: supported, it just would have blocked this time.
        Some(libc::EAGAIN) => Ok(false),
        _ => Err(error),
    }
}

/// The bytes of one append, in the form they arrive in: with `SegmentWrites::Pwrite`
/// they are written from where they are, with `IoUring` gathered into the `Vec` glommio
/// takes.
#[derive(Clone)]
pub(crate) enum AppendBytes<'a> {
    /// Written as they are (a follower's batches).
    AsIs(&'a [u8]),
    /// `records` with the header of the batch at each listed position replaced by the
    /// listed one (a leader's batches: offsets and leader epoch stamped in the copies).
    Stamped {
        records: &'a [u8],
        headers: &'a [(usize, [u8; HEADER_BYTES])],
    },
    /// A buffer of their own.
    Owned(Vec<u8>),
}

impl AppendBytes<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            AppendBytes::AsIs(bytes) => bytes.len(),
            AppendBytes::Stamped { records, .. } => records.len(),
            AppendBytes::Owned(bytes) => bytes.len(),
        }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            AppendBytes::AsIs(bytes) => bytes.to_vec(),
            AppendBytes::Stamped { records, headers } => {
                let mut buffer = records.to_vec();
                for (position, header) in headers {
                    buffer[*position..*position + HEADER_BYTES].copy_from_slice(header);
                }
                buffer
            }
            AppendBytes::Owned(bytes) => bytes,
        }
    }

    /// The first batch's header as it will be written (all of it for `AsIs`/`Owned`).
    pub(crate) fn first_header(&self) -> &[u8] {
        match self {
            AppendBytes::AsIs(bytes) => bytes,
            AppendBytes::Stamped { records, headers } => match headers.first() {
                Some((0, header)) => header,
                _ => records,
            },
            AppendBytes::Owned(bytes) => bytes,
        }
    }

    /// The pieces to write one after another.
    fn pieces(&self) -> Vec<&[u8]> {
        match self {
            AppendBytes::AsIs(bytes) => vec![bytes],
            AppendBytes::Stamped { records, headers } => {
                let mut pieces = Vec::with_capacity(headers.len() * 2 + 1);
                let mut at = 0;
                for (position, header) in headers.iter() {
                    if *position > at {
                        pieces.push(&records[at..*position]);
                    }
                    pieces.push(&header[..]);
                    at = position + HEADER_BYTES;
                }
                if at < records.len() {
                    pieces.push(&records[at..]);
                }
                pieces
            }
            AppendBytes::Owned(bytes) => vec![bytes],
        }
    }
}

/// An append that holds its shard in the file system this long is logged: the shard
/// serves nothing meanwhile, and the watchdog speaks only after 2 s.
const SLOW_APPEND: Duration = Duration::from_millis(50);
/// Slow appends are logged at most once per this long on a shard; the log line counts
/// those in between.
const SLOW_APPEND_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// When a shard last logged a slow append, and how many it has not logged since.
#[derive(Clone, Copy, Debug, Default)]
struct SlowAppendLog {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl SlowAppendLog {
    /// A slow append at `now`: `Some(those not logged before it)` if it gets a line.
    fn note(&mut self, now: Instant) -> Option<u64> {
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < SLOW_APPEND_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return None;
        }
        let unlogged = std::mem::take(&mut self.unlogged);
        self.logged_at = Some(now);
        Some(unlogged)
    }
}

thread_local! {
    /// This shard's slow-append lines.
    static SLOW_APPENDS: Cell<SlowAppendLog> = const {
        Cell::new(SlowAppendLog { logged_at: None, unlogged: 0 })
    };
}

/// Logs an append that held the shard for `reserve` in `fallocate` and `write` in the
/// write itself, unless one was logged less than `SLOW_APPEND_LOG_INTERVAL` ago.
#[cold]
fn note_slow_append(path: &Path, bytes: usize, reserve: Duration, write: Duration) {
    let mut log = SLOW_APPENDS.get();
    let noted = log.note(Instant::now());
    SLOW_APPENDS.set(log);
    if let Some(unlogged) = noted {
        tracing::warn!(
            path = %path.display(),
            bytes,
            reserve_ms = reserve.as_millis() as u64,
            write_ms = write.as_millis() as u64,
            unlogged_since_last = unlogged,
            "slow segment append: the shard waited in the file system"
        );
    }
}

/// Most iovecs one `pwritev` takes (Linux's `UIO_MAXIOV`).
const IOVECS_PER_CALL: usize = 1024;

/// Writes `pieces` one after another from `position` with `pwritev`, retrying after a
/// signal and after a short write; answers how much was written (less than all only
/// when the file takes no more, e.g. the disk is full).
fn pwritev_all(fd: i32, pieces: &[&[u8]], position: u64) -> std::io::Result<usize> {
    let mut written = 0usize;
    // The first piece not wholly written, and how much of it was.
    let (mut piece, mut into_piece) = (0usize, 0usize);
    let mut iovecs = Vec::with_capacity(pieces.len().min(IOVECS_PER_CALL));
    while piece < pieces.len() {
        iovecs.clear();
        for (index, bytes) in pieces[piece..].iter().take(IOVECS_PER_CALL).enumerate() {
            let bytes = if index == 0 {
                &bytes[into_piece..]
            } else {
                bytes
            };
            iovecs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
        }
        // SAFETY: every iovec describes a live slice of `pieces`, which outlives the call;
        // the kernel only reads them.
        let result = unsafe {
            libc::pwritev(
                fd,
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                (position + written as u64) as libc::off_t,
            )
        };
        let mut advanced = match result {
            0 => break,
            n if n > 0 => n as usize,
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                if written > 0 {
                    break;
                }
                return Err(error);
            }
        };
        written += advanced;
        while advanced > 0 {
            let left = pieces[piece].len() - into_piece;
            if advanced >= left {
                advanced -= left;
                piece += 1;
                into_piece = 0;
            } else {
                into_piece += advanced;
                advanced = 0;
            }
        }
        while piece < pieces.len() && pieces[piece].len() == into_piece {
            piece += 1;
            into_piece = 0;
        }
    }
    Ok(written)
}

/// Writes all of `bytes` at `position`; a short write (a full disk) is an error.
pub(crate) async fn write_all_at(
    file: &BufferedFile,
    path: &Path,
    bytes: Vec<u8>,
    position: u64,
) -> Result<(), StorageError> {
    let length = bytes.len();
    let written = file
        .write_at(bytes, position)
        .await
        .map_err(|error| StorageError::io("write", path, error))?;
    if written != length {
        return Err(StorageError::io(
            "write",
            path,
            std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {written} of {length} bytes (disk full?)"),
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn slow_appends_get_a_line_at_most_once_a_second_counting_those_in_between() {
        use super::{SLOW_APPEND_LOG_INTERVAL, SlowAppendLog};
        let start = std::time::Instant::now();
        let at = |ms: u64| start + std::time::Duration::from_millis(ms);
        let mut log = SlowAppendLog::default();
        assert_eq!(log.note(at(0)), Some(0));
        assert_eq!(log.note(at(10)), None);
        assert_eq!(log.note(at(999)), None);
        let next = SLOW_APPEND_LOG_INTERVAL.as_millis() as u64;
        assert_eq!(log.note(at(next)), Some(2));
        assert_eq!(log.note(at(next + 1)), None);
        assert_eq!(log.note(at(5 * next)), Some(1));
    }

    /// Goal: `pwritev_all` writes exactly what `into_vec` gathers, also when the pieces
    /// need more than one `pwritev` (over 1024 iovecs) and when headers sit at the very
    /// start and end of the records.
    #[test]
    fn pwritev_writes_the_stamped_pieces_as_the_gathered_buffer() {
        use super::{AppendBytes, HEADER_BYTES, pwritev_all};
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().expect("tempdir");
        for (batches, size) in [(1usize, HEADER_BYTES), (3, 100), (1500, 64), (700, 4000)] {
            let records: Vec<u8> = (0..batches * size)
                .map(|index| (index * 7 % 251) as u8)
                .collect();
            let headers: Vec<(usize, [u8; HEADER_BYTES])> = (0..batches)
                .map(|batch| (batch * size, [batch as u8 ^ 0x5a; HEADER_BYTES]))
                .collect();
            let bytes = AppendBytes::Stamped {
                records: &records,
                headers: &headers,
            };
            let path = dir.path().join(format!("{batches}-{size}"));
            let file = std::fs::File::create(&path).expect("create");
            // Written after 10 bytes already in the file, as appends are.
            std::fs::write(&path, [9u8; 10]).expect("prefix");
            let written = pwritev_all(file.as_raw_fd(), &bytes.pieces(), 10).expect("pwritev");
            assert_eq!(written, records.len());
            let expected = [vec![9u8; 10], bytes.clone().into_vec()].concat();
            assert!(
                std::fs::read(&path).expect("read") == expected,
                "{batches} x {size}"
            );
            let gathered = bytes.into_vec();
            let last = (batches - 1) * size;
            assert_eq!(
                gathered[last..last + HEADER_BYTES],
                [(batches - 1) as u8 ^ 0x5a; HEADER_BYTES]
            );
            assert_eq!(
                gathered[last + HEADER_BYTES..],
                records[last + HEADER_BYTES..]
            );
        }
    }

    #[test]
    fn the_write_probe_answers_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        super::buffered_writes_wait_for_worker(dir.path()).expect("probe");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        let missing = dir.path().join("missing");
        assert!(super::buffered_writes_wait_for_worker(&missing).is_err());
    }
    use super::*;

    #[test]
    fn index_entries_follow_kafkas_interval_rule() {
        let mut state = SegmentState::empty(0, 1024);
        // Five 100-byte batches of one record each, interval 150 bytes.
        for offset in 0..5 {
            state.add_batch(offset as u64 * 100, 100, offset, 1000 + offset, 150);
        }
        // After 200 bytes (> 150) the third batch (offset 2, position 200) is indexed;
        // then after 200 more the fifth (offset 4, position 400).
        assert_eq!(state.offset_index.lookup(3), (2, 200));
        assert_eq!(state.offset_index.lookup(4), (4, 400));
        assert_eq!(state.offset_index.len(), 2);
        assert_eq!(state.time_index.last(), Some((1004, 4)));
        assert_eq!(state.next_offset, 5);
        assert_eq!(state.size_bytes, 500);
    }
}
