//! Response frames whose record bytes stay in files: the zero-copy Fetch path.
//!
//! kafka-protocol encodes a response into any `ByteBufMut`. A Fetch response is built
//! with each partition's records set to a *placeholder*: a `Bytes` of the right length
//! that points into one large, never-touched, read-only anonymous mapping. The
//! [`PartsWriter`] copies every other slice into an ordinary buffer, but when the
//! encoder hands it a slice inside the placeholder mapping it records "the next file
//! region goes here" instead of copying. The result is a frame as a list of
//! [`FramePart`]s — encoded bytes and file regions in wire order — that the connection
//! sends with `send` for the bytes and `sendfile` for the regions, so record bytes go
//! from the page cache to the socket without passing through userspace.
//!
//! Invariants: regions are consumed in encoding order (kafka-protocol encodes topics
//! and partitions in `Vec` order), each placeholder's length equals its region's, and
//! every region is consumed exactly once (checked after encoding). The size prefix and
//! every length field come from kafka-protocol's own `compute_size`/`encode`, so the
//! frame is byte-for-byte what a copying encode would produce (unit-tested below).

use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use crate::frame::FrameError;

/// Virtual size of the placeholder mapping: the largest region one placeholder can
/// stand for. Only address space is reserved (MAP_NORESERVE, never read), so it costs
/// no memory. A region larger than this is served by copying.
pub const PLACEHOLDER_BYTES_MAX: usize = 4 << 30;

/// One piece of an outgoing frame, in wire order.
#[derive(Debug)]
pub enum FramePart<R> {
    Bytes(Bytes),
    Region(R),
}

/// A file region's length, as the writer checks it against its placeholder.
pub trait RegionLength {
    fn region_length(&self) -> usize;
}

fn placeholder_mapping() -> Option<&'static [u8]> {
    static MAPPING: OnceLock<Option<usize>> = OnceLock::new();
    let address = *MAPPING.get_or_init(|| {
        // SAFETY: an anonymous private read-only mapping with no file; the kernel
        // picks the address. It is never unmapped, so the slice below lives forever.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PLACEHOLDER_BYTES_MAX,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (address != libc::MAP_FAILED).then_some(address as usize)
    });
    // SAFETY: the mapping is PLACEHOLDER_BYTES_MAX readable (zero) bytes, never unmapped.
    address.map(|address| unsafe {
        std::slice::from_raw_parts(address as *const u8, PLACEHOLDER_BYTES_MAX)
    })
}

/// A `Bytes` of `length` that the [`PartsWriter`] replaces by the next region; `None`
/// when the region is too large for a placeholder (or the mapping failed): copy then.
pub fn placeholder(length: usize) -> Option<Bytes> {
    let mapping = placeholder_mapping()?;
    (length <= mapping.len()).then(|| Bytes::from_static(&mapping[..length]))
}

fn is_placeholder(slice: &[u8]) -> bool {
    let Some(mapping) = placeholder_mapping() else {
        return false;
    };
    let start = mapping.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    // Empty records are written as a length prefix only; they never reach put_slice
    // with a placeholder, but an empty slice must not consume a region either.
    !slice.is_empty() && at >= start && at < start + mapping.len()
}

/// A `ByteBufMut` that copies encoded bytes and stands file regions in for placeholders.
pub struct PartsWriter<R> {
    buffer: BytesMut,
    /// Regions not yet placed, in encoding order (reversed: the next one is last).
    pending: Vec<R>,
    /// (offset in `buffer` where the region goes, region).
    placed: Vec<(usize, R)>,
    /// A placeholder whose length did not match its region: the encode is refused.
    mismatch: Option<(usize, usize)>,
}

impl<R: RegionLength> PartsWriter<R> {
    fn new(capacity: usize, regions: Vec<R>) -> Self {
        let mut pending = regions;
        pending.reverse();
        PartsWriter {
            buffer: BytesMut::with_capacity(capacity),
            placed: Vec::with_capacity(pending.len()),
            pending,
            mismatch: None,
        }
    }

    fn into_parts(self) -> Vec<FramePart<R>> {
        let mut buffer = self.buffer;
        let mut parts = Vec::with_capacity(self.placed.len() * 2 + 1);
        let mut consumed = 0usize;
        for (at, region) in self.placed {
            let bytes = buffer.split_to(at - consumed).freeze();
            consumed = at;
            if !bytes.is_empty() {
                parts.push(FramePart::Bytes(bytes));
            }
            parts.push(FramePart::Region(region));
        }
        if !buffer.is_empty() {
            parts.push(FramePart::Bytes(buffer.freeze()));
        }
        parts
    }
}

// SAFETY: every method delegates to the inner BytesMut, whose contract this inherits.
unsafe impl<R: RegionLength> BufMut for PartsWriter<R> {
    fn remaining_mut(&self) -> usize {
        self.buffer.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, count: usize) {
        // SAFETY: the caller initialized `count` bytes of the chunk handed out below.
        unsafe { self.buffer.advance_mut(count) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.buffer.chunk_mut()
    }

    fn put_slice(&mut self, source: &[u8]) {
        if is_placeholder(source) {
            match self.pending.pop() {
                Some(region) if region.region_length() == source.len() => {
                    self.placed.push((self.buffer.len(), region));
                }
                Some(region) => {
                    self.mismatch
                        .get_or_insert((source.len(), region.region_length()));
                }
                None => {
                    self.mismatch.get_or_insert((source.len(), 0));
                }
            }
        } else {
            self.buffer.extend_from_slice(source);
        }
    }
}

impl<R: RegionLength> ByteBufMut for PartsWriter<R> {
    fn offset(&self) -> usize {
        self.buffer.len()
    }

    fn seek(&mut self, offset: usize) {
        self.buffer.resize(offset, 0);
    }

    fn range(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.buffer[range]
    }
}

/// Encodes size prefix, response header and `body`, in which every region of `regions`
/// (in order) appears as a [`placeholder`] of its length; returns the frame as parts.
pub fn encode_response_parts<B: Encodable + HeaderVersion, R: RegionLength>(
    correlation_id: i32,
    api_version: i16,
    body: &B,
    regions: Vec<R>,
    what: &'static str,
) -> Result<Vec<FramePart<R>>, FrameError> {
    let encode_error = |reason: String| FrameError::Encode {
        what,
        version: api_version,
        reason,
    };
    let header_version = B::header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .map_err(|error| encode_error(error.to_string()))?
        + body
            .compute_size(api_version)
            .map_err(|error| encode_error(error.to_string()))?;
    let region_bytes: usize = regions.iter().map(RegionLength::region_length).sum();
    let mut writer = PartsWriter::new(4 + size - region_bytes.min(size), regions);
    let size = i32::try_from(size).map_err(|_| encode_error(format!("{size} bytes")))?;
    writer.put_i32(size);
    header
        .encode(&mut writer, header_version)
        .map_err(|error| encode_error(error.to_string()))?;
    body.encode(&mut writer, api_version)
        .map_err(|error| encode_error(error.to_string()))?;
    if let Some((placeholder, region)) = writer.mismatch {
        return Err(encode_error(format!(
            "a {placeholder}-byte placeholder met a {region}-byte region"
        )));
    }
    if !writer.pending.is_empty() {
        return Err(encode_error(format!(
            "{} file regions had no placeholder",
            writer.pending.len()
        )));
    }
    Ok(writer.into_parts())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_response;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    #[derive(Debug, Clone, PartialEq)]
    struct TestRegion(Vec<u8>);

    impl RegionLength for TestRegion {
        fn region_length(&self) -> usize {
            self.0.len()
        }
    }

    fn response(records: &[Option<Bytes>]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(index, records)| {
                PartitionData::default()
                    .with_partition_index(index as i32)
                    .with_high_watermark(1000 + index as i64)
                    .with_last_stable_offset(1000 + index as i64)
                    .with_log_start_offset(7)
                    .with_records(records.clone())
            })
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions),
        ])
    }

    fn materialize(parts: Vec<FramePart<TestRegion>>) -> Vec<u8> {
        parts
            .into_iter()
            .flat_map(|part| match part {
                FramePart::Bytes(bytes) => bytes.to_vec(),
                FramePart::Region(region) => region.0,
            })
            .collect()
    }

    #[test]
    fn parts_equal_a_copying_encode_at_every_fetch_version() {
        let contents: Vec<Vec<u8>> = vec![vec![1; 300], vec![], vec![9; 70_000], vec![3; 1]];
        for version in 4..=17i16 {
            let copied: Vec<Option<Bytes>> = contents
                .iter()
                .map(|bytes| Some(Bytes::from(bytes.clone())))
                .collect();
            let expected = encode_response(42, version, &response(&copied), "test").unwrap();
            let placeholders: Vec<Option<Bytes>> = contents
                .iter()
                .map(|bytes| {
                    if bytes.is_empty() {
                        Some(Bytes::new())
                    } else {
                        placeholder(bytes.len())
                    }
                })
                .collect();
            let regions: Vec<TestRegion> = contents
                .iter()
                .filter(|bytes| !bytes.is_empty())
                .map(|bytes| TestRegion(bytes.clone()))
                .collect();
            let parts =
                encode_response_parts(42, version, &response(&placeholders), regions, "test")
                    .unwrap();
            let region_count = parts
                .iter()
                .filter(|part| matches!(part, FramePart::Region(_)))
                .count();
            assert_eq!(region_count, 3, "v{version}");
            assert_eq!(materialize(parts), expected.to_vec(), "v{version}");
        }
    }

    #[test]
    fn a_region_without_its_placeholder_or_of_another_length_is_refused() {
        let body = response(&[placeholder(10)]);
        let error =
            encode_response_parts(1, 12, &body, vec![TestRegion(vec![0; 11])], "test").unwrap_err();
        assert!(error.to_string().contains("10-byte placeholder"), "{error}");
        let body = response(&[Some(Bytes::from_static(b"abc"))]);
        let error =
            encode_response_parts(1, 12, &body, vec![TestRegion(vec![0; 3])], "test").unwrap_err();
        assert!(error.to_string().contains("had no placeholder"), "{error}");
    }

    #[test]
    fn placeholders_cost_no_memory_and_refuse_oversize() {
        assert!(placeholder(PLACEHOLDER_BYTES_MAX + 1).is_none());
        let big = placeholder(1 << 30).expect("a 1 GiB placeholder");
        assert_eq!(big.len(), 1 << 30);
        assert!(is_placeholder(&big[5..6]));
        assert!(!is_placeholder(b"ordinary bytes"));
    }
}
