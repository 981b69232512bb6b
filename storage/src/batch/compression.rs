//! Compression of a batch's records section: the bytes after the 61-byte header are one
//! compressed stream when attributes bits 0–2 name a codec (1 gzip, 2 snappy, 3 lz4,
//! 4 zstd), exactly as Kafka's producers write them. No I/O here.
//!
//! The broker stores compressed batches as received and only decompresses one when it
//! must look at its records (ListOffsets MAX_TIMESTAMP). A compressed batch is client
//! input, so decompression never produces more than `DECOMPRESSED_RECORDS_BYTES_MAX`
//! bytes: every codec is read as a stream and cut off one byte past the bound, and
//! snappy blocks announce their size, which is checked before anything is allocated.
//!
//! Snappy uses the framing of snappy-java (what Kafka's Java clients write; librdkafka
//! writes the same): a 16-byte header (`\x82SNAPPY\0`, version, compatible version),
//! then blocks of `u32 length | raw snappy block`. Like snappy-java, a stream without
//! that header is read as one raw snappy block.

use std::borrow::Cow;
use std::io::{Read, Write};

use super::{ATTRIBUTE_COMPRESSION_MASK, BatchHeader, HEADER_BYTES};
use crate::error::StorageError;

/// Most bytes the records section of one batch may decompress to. Kafka's
/// `max.message.bytes` defaults to 1 MiB, and producers compress batches of at most
/// `batch.size` (16 KiB by default) records, so 64 MiB leaves room for very
/// compressible data while a decompression bomb costs at most 64 MiB (plus read_to_end's
/// growth slack) per lookup.
pub const DECOMPRESSED_RECORDS_BYTES_MAX: usize = 64 << 20;
const _: () =
    assert!(DECOMPRESSED_RECORDS_BYTES_MAX >= crate::log::MAX_MESSAGE_BYTES_DEFAULT as usize);

/// Magic that opens a snappy-java stream; followed by two i32 (version, compatible version).
const SNAPPY_JAVA_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const SNAPPY_JAVA_HEADER_BYTES: usize = 16;
/// snappy-java's default block size: uncompressed bytes per block when we compress.
const SNAPPY_JAVA_BLOCK_BYTES: usize = 32 << 10;
/// zstd level used when this crate compresses (the zstd library's and Kafka's default).
const ZSTD_LEVEL: i32 = 3;

/// The codec in attributes bits 0–2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec numbered `codec` (attributes & 0x07); `None` for the unassigned 5–7.
    pub fn from_codec(codec: u8) -> Option<Compression> {
        match codec {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The number stored in attributes bits 0–2.
    pub fn codec(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

const _: () = assert!(ATTRIBUTE_COMPRESSION_MASK == 0x07);

/// The records section of `batch` (exactly one whole batch, starting at byte `position`
/// of its file or buffer), decompressed if the batch is compressed: borrowed for
/// uncompressed batches, at most `DECOMPRESSED_RECORDS_BYTES_MAX` bytes otherwise.
/// An unknown codec, a malformed or truncated stream, or too much output is a
/// `CorruptBatch`.
pub fn decompress_records(batch: &[u8], position: u64) -> Result<Cow<'_, [u8]>, StorageError> {
    let header = BatchHeader::new(batch).ok_or_else(|| {
        StorageError::corrupt(
            position,
            format!(
                "only {} bytes, fewer than the 61-byte batch header",
                batch.len()
            ),
        )
    })?;
    let codec = header.compression_codec();
    let compression = Compression::from_codec(codec).ok_or_else(|| {
        StorageError::corrupt(position, format!("unknown compression codec {codec}"))
    })?;
    let records = &batch[HEADER_BYTES..];
    if compression == Compression::None {
        return Ok(Cow::Borrowed(records));
    }
    decompress(compression, records, DECOMPRESSED_RECORDS_BYTES_MAX)
        .map(Cow::Owned)
        .map_err(|reason| {
            StorageError::corrupt(
                position,
                format!("the {compression:?} records do not decompress: {reason}"),
            )
        })
}

/// Decompresses `compressed` into at most `bytes_max` bytes.
fn decompress(
    compression: Compression,
    compressed: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, String> {
    match compression {
        Compression::None => Ok(compressed.to_vec()),
        // Java's GZIPInputStream reads concatenated members, so MultiGzDecoder.
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(compressed), bytes_max),
        Compression::Snappy => snappy_java_decompress(compressed, bytes_max),
        Compression::Lz4 => {
            let mut decoder = lz4::Decoder::new(compressed).map_err(|error| error.to_string())?;
            let records = read_bounded(&mut decoder, bytes_max)?;
            // The decoder reports a stream that ends mid-frame only here.
            let (_, finished) = decoder.finish();
            finished.map_err(|_| "the lz4 frame is truncated".to_string())?;
            Ok(records)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(compressed)
                .map_err(|error| error.to_string())?;
            read_bounded(decoder, bytes_max)
        }
    }
}

/// Reads `reader` to its end, failing once it yields more than `bytes_max` bytes.
fn read_bounded(reader: impl Read, bytes_max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(bytes_max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| error.to_string())?;
    if out.len() > bytes_max {
        return Err(format!("they decompress to more than {bytes_max} bytes"));
    }
    Ok(out)
}

fn snappy_java_decompress(compressed: &[u8], bytes_max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if !compressed.starts_with(SNAPPY_JAVA_MAGIC) {
        snappy_block_decompress(compressed, &mut out, bytes_max)?;
        return Ok(out);
    }
    if compressed.len() < SNAPPY_JAVA_HEADER_BYTES {
        return Err("the snappy-java header is truncated".into());
    }
    let mut at = SNAPPY_JAVA_HEADER_BYTES;
    while at < compressed.len() {
        let length_bytes = compressed
            .get(at..at + 4)
            .ok_or_else(|| format!("the snappy block length at byte {at} is truncated"))?;
        let length = u32::from_be_bytes(length_bytes.try_into().expect("slice of 4 bytes"));
        let start = at + 4;
        let block = usize::try_from(length)
            .ok()
            .and_then(|length| start.checked_add(length))
            .and_then(|end| compressed.get(start..end))
            .ok_or_else(|| {
                format!("the snappy block at byte {at} claims {length} bytes past the end")
            })?;
        snappy_block_decompress(block, &mut out, bytes_max)?;
        at = start + block.len();
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its announced size against the
/// bound before allocating.
fn snappy_block_decompress(
    block: &[u8],
    out: &mut Vec<u8>,
    bytes_max: usize,
) -> Result<(), String> {
    let length = snap::raw::decompress_len(block).map_err(|error| error.to_string())?;
    let start = out.len();
    if length > bytes_max - start {
        return Err(format!("they decompress to more than {bytes_max} bytes"));
    }
    out.resize(start + length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|error| error.to_string())?;
    if written != length {
        return Err(format!(
            "a snappy block announced {length} bytes but held {written}"
        ));
    }
    Ok(())
}

/// Compresses a records section the way Kafka's Java producer does. Compressing into
/// memory cannot fail, so this panics only on a broken codec library.
pub fn compress(compression: Compression, records: &[u8]) -> Vec<u8> {
    match compression {
        Compression::None => records.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(records)
                .expect("gzip into memory cannot fail");
            encoder.finish().expect("gzip into memory cannot fail")
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(SNAPPY_JAVA_HEADER_BYTES + records.len());
            out.extend_from_slice(SNAPPY_JAVA_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
            let mut encoder = snap::raw::Encoder::new();
            for chunk in records.chunks(SNAPPY_JAVA_BLOCK_BYTES) {
                let block = encoder
                    .compress_vec(chunk)
                    .expect("a 32 KiB chunk is below snappy's input limit");
                let length = u32::try_from(block.len()).expect("a block of a 32 KiB chunk");
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        Compression::Lz4 => {
            // Kafka's KafkaLZ4BlockOutputStream writes independent 64 KiB blocks.
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .expect("an lz4 context can be created");
            encoder
                .write_all(records)
                .expect("lz4 into memory cannot fail");
            let (out, finished) = encoder.finish();
            finished.expect("lz4 into memory cannot fail");
            out
        }
        Compression::Zstd => {
            zstd::stream::encode_all(records, ZSTD_LEVEL).expect("zstd into memory cannot fail")
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goal: each codec round-trips, reads what other implementations write, and fails
    //! cleanly (an error, never a panic or unbounded memory) on truncated, garbage and
    //! oversized input. Method: compress sample records with `compress`, then damage them.

    use super::*;

    const ALL: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample_records() -> Vec<u8> {
        // Compressible but not trivial: 3 runs of text and a counter.
        (0..5000u32)
            .flat_map(|index| format!("record {index} of the sample; ").into_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_and_shrinks_repetitive_records() {
        let records = sample_records();
        for compression in ALL {
            let compressed = compress(compression, &records);
            assert!(
                compressed.len() < records.len() / 2,
                "{compression:?}: {} of {} bytes",
                compressed.len(),
                records.len()
            );
            let decompressed = decompress(compression, &compressed, DECOMPRESSED_RECORDS_BYTES_MAX)
                .unwrap_or_else(|reason| panic!("{compression:?}: {reason}"));
            assert_eq!(decompressed, records, "{compression:?}");
        }
    }

    #[test]
    fn codec_numbers_match_kafka() {
        for codec in 0..8u8 {
            match Compression::from_codec(codec) {
                Some(compression) => assert_eq!(compression.codec(), codec),
                None => assert!(codec > 4, "codec {codec}"),
            }
        }
        assert_eq!(Compression::from_codec(1), Some(Compression::Gzip));
        assert_eq!(Compression::from_codec(4), Some(Compression::Zstd));
    }

    #[test]
    fn snappy_reads_a_kafka_written_stream_and_raw_blocks() {
        // The records section of a one-record batch with value "sdfdsf", as Kafka's
        // Java producer compresses it (snappy-java framing).
        let framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        let expected = b"\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        assert_eq!(
            decompress(Compression::Snappy, framed, 1 << 20).expect("framed"),
            expected
        );
        assert_eq!(compress(Compression::Snappy, expected), framed);
        // Without the snappy-java header the stream is one raw block.
        let raw = b"\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        assert_eq!(
            decompress(Compression::Snappy, raw, 1 << 20).expect("raw"),
            expected
        );
    }

    #[test]
    fn truncation_at_every_byte_fails_cleanly() {
        let records = sample_records()[..3000].to_vec();
        for compression in ALL {
            let compressed = compress(compression, &records);
            for length in 0..compressed.len() {
                let result = decompress(compression, &compressed[..length], 1 << 20);
                assert!(
                    result.as_ref().is_err_and(|reason| !reason.is_empty())
                        || result.as_ref().is_ok_and(|out| out.len() < records.len()),
                    "{compression:?} cut at {length} of {}",
                    compressed.len()
                );
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..400u32).map(|index| (index * 131 % 251) as u8).collect();
        for compression in ALL {
            assert!(
                decompress(compression, &garbage, 1 << 20).is_err(),
                "{compression:?}"
            );
        }
        // A snappy-java block whose length runs past the end.
        let mut framed = compress(Compression::Snappy, b"abc");
        framed[SNAPPY_JAVA_HEADER_BYTES..SNAPPY_JAVA_HEADER_BYTES + 4]
            .copy_from_slice(&u32::MAX.to_be_bytes());
        let reason = decompress(Compression::Snappy, &framed, 1 << 20).expect_err("overlong");
        assert!(reason.contains("past the end"), "{reason}");
    }

    #[test]
    fn output_beyond_the_bound_is_refused() {
        let zeros = vec![0u8; 8 << 10];
        for compression in ALL {
            let compressed = compress(compression, &zeros);
            let reason = decompress(compression, &compressed, 4 << 10)
                .expect_err("8 KiB of output exceeds a 4 KiB bound");
            assert!(
                reason.contains("more than 4096 bytes"),
                "{compression:?}: {reason}"
            );
            let exact = decompress(compression, &compressed, 8 << 10).expect("fits exactly");
            assert_eq!(exact.len(), 8 << 10, "{compression:?}");
        }
    }
}
