//! Reads as file regions, for the zero-copy Fetch path: the owner shard finds where
//! the wanted batches lie in a segment (an offset-index lookup and one header-scan
//! read at each end) and hands out `(descriptor, position, length)` instead of the
//! bytes; the connection's shard then `sendfile`s them from the page cache.
//!
//! The region holds whole batches only, exactly the batches `PartitionLog::read` would
//! return: from the batch holding `offset`, no batch at or past `upper_bound`, within
//! `max_bytes` except that `min_one_batch` always allows the first batch. Batch ends
//! inside the region are known at the first batch and at offset-index entries, which
//! lets the Fetch handler cut a region to a response-wide limit without reading it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::PartitionLog;
use crate::error::StorageError;

/// Whole batches of one segment, as a region of its `.log` file. `Send`: a region is
/// read on the owner shard and sent from the connection's shard.
#[derive(Clone, Debug)]
pub struct LogSlice {
    /// A descriptor of its own (a `dup` of the segment's), valid whatever happens to the
    /// segment meanwhile.
    pub file: Arc<OwnedFd>,
    pub position: u64,
    pub length: usize,
    /// Ends of whole batches relative to `position`, ascending: the first batch's end,
    /// then the ends at offset-index entries, then `length`. Not every batch end is
    /// listed; cutting at a listed one keeps whole batches.
    pub batch_ends: Vec<u32>,
}

impl LogSlice {
    /// The longest prefix ending at a listed batch end within `limit` bytes; with
    /// `at_least_one_batch`, the first batch even when it is larger.
    pub fn truncate_to(&mut self, limit: usize, at_least_one_batch: bool) {
        let keep = self
            .batch_ends
            .iter()
            .map(|&end| end as usize)
            .take_while(|&end| end <= limit)
            .last()
            .unwrap_or(if at_least_one_batch {
                self.batch_ends[0] as usize
            } else {
                0
            });
        self.length = keep;
        self.batch_ends.retain(|&end| end as usize <= keep);
    }

    /// The region's bytes, read with `pread`: for when it cannot be sent as a region.
    pub fn read_bytes(&self) -> std::io::Result<Vec<u8>> {
        self.read_range(0, self.length)
    }

    /// `length` bytes from `skip` bytes into the region, read with `pread`.
    pub fn read_range(&self, skip: usize, length: usize) -> std::io::Result<Vec<u8>> {
        assert!(skip + length <= self.length, "a read inside the region");
        let position = self.position + skip as u64;
        let mut bytes = vec![0u8; length];
        let mut done = 0usize;
        while done < length {
            // SAFETY: the buffer has `length - done` writable bytes after `done`, and the
            // descriptor is open for as long as `self.file` lives.
            let read = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    bytes[done..].as_mut_ptr().cast(),
                    length - done,
                    (position + done as u64) as libc::off_t,
                )
            };
            match read {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("segment file ends before byte {}", position + done as u64),
                    ));
                }
                read if read > 0 => done += read as usize,
                _ => {
                    let error = std::io::Error::last_os_error();
                    if error.kind() != std::io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
            }
        }
        Ok(bytes)
    }
}

/// What `PartitionLog::read_slice` found: no slice when nothing is readable there.
#[derive(Debug)]
pub struct SliceResult {
    pub slice: Option<LogSlice>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl PartitionLog {
    /// The batches `read` would return with the same arguments, as a file region.
    pub async fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<SliceResult, StorageError> {
        let log_end_offset = self.log_end_offset();
        let result = |slice: Option<LogSlice>| SliceResult {
            slice,
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
            return Ok(result(None));
        }
        // Regions are measured in u32 (segment positions are u32 in the index too).
        let max_bytes = max_bytes.min(u32::MAX as usize);
        let first = self.segment_index_for(offset);
        for segment in &self.segments[first..] {
            let (_, start) = segment.state.offset_index.lookup(offset);
            let mut first_batch = (0u64, 0i64);
            let found = segment
                .scan_headers(u64::from(start), |header| {
                    first_batch = (header.size_bytes(), header.last_offset());
                    header.last_offset() >= offset
                })
                .await?;
            let Some((position, _)) = found else {
                continue;
            };
            let (first_size, first_last_offset) = first_batch;
            if first_last_offset >= upper_bound || (first_size > max_bytes as u64 && !min_one_batch)
            {
                return Ok(result(None));
            }
            // Where this segment's servable bytes end: the batch holding the upper bound
            // (a batch boundary: the high watermark) or the segment's committed end.
            let segment_end = if upper_bound < segment.state.next_offset {
                segment
                    .find_batch(upper_bound)
                    .await?
                    .map_or(segment.state.size_bytes, |(at, _)| at)
            } else {
                segment.state.size_bytes
            };
            let limit = position + max_bytes as u64;
            let end = if segment_end <= limit {
                segment_end
            } else if position + first_size >= limit {
                position + first_size
            } else {
                // The first batch ending past the limit starts the cut; scan from the
                // last indexed batch before it (one window read).
                let from = u64::from(segment.state.offset_index.lookup_position(limit as u32))
                    .max(position + first_size);
                let mut at = from;
                segment
                    .scan_headers(from, |header| {
                        let batch_end = at + header.size_bytes();
                        let stop = batch_end > limit || header.last_offset() >= upper_bound;
                        at = batch_end;
                        stop
                    })
                    .await?
                    .map_or(segment_end, |(cut, _)| cut)
            };
            assert!(
                end >= position + first_size && end <= segment.state.size_bytes,
                "a slice holds its first batch and ends inside the segment"
            );
            let length = (end - position) as u32;
            let mut batch_ends = vec![first_size as u32];
            batch_ends.extend(
                segment
                    .state
                    .offset_index
                    .positions_between((position + first_size) as u32, end as u32)
                    .map(|at| at - position as u32),
            );
            if *batch_ends.last().expect("non-empty") != length {
                batch_ends.push(length);
            }
            return Ok(result(Some(LogSlice {
                file: Arc::new(segment.log_descriptor()?),
                position,
                length: length as usize,
                batch_ends,
            })));
        }
        Ok(result(None))
    }
}
