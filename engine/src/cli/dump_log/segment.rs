//! `.log` segments: batches read the way Kafka's `FileLogInputStream` reads them, and the
//! batch and record lines of `DumpLogSegments.dumpLog`.
//!
//! Reading rules (Kafka's, so a torn or damaged file reads the same in both tools):
//! * fewer than 17 bytes (offset, length, epoch, magic) left before the end: stop;
//! * batchLength below 14 (the smallest message of any format): corrupt, stop;
//! * the batch runs past the end: stop; what is left is "invalid bytes at the end";
//! * otherwise the whole batch is read and printed, its CRC compared for `isvalid`.
//!
//! weir reads message format v2 only: an older magic, or a v2 batchLength below its
//! 49-byte header, is reported with its position and ends the file.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use weir_storage::batch::{
    BatchHeader, Compression, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, OFFSET_BATCH_LENGTH,
    OFFSET_MAGIC, computed_crc, decompress_records, walk_record_section,
};
use weir_storage::producer_state::increment_sequence;

use super::{Options, Report, absolute, base_offset_or_report, offsets};

/// Bytes Kafka reads before it knows a batch's length and magic.
const HEADER_BYTES_UP_TO_MAGIC: u64 = 17;
/// Kafka's smallest message of any format (a v0 message): a shorter batchLength is corrupt.
const RECORD_OVERHEAD_V0: i32 = 14;
/// Kafka's `DumpLogSegments.RecordIndent`.
const RECORD_INDENT: &str = "|";
/// Attribute bit of a batch whose base timestamp is a delete horizon (KIP-534).
const ATTRIBUTE_DELETE_HORIZON: i16 = 0x40;

/// An open segment file.
pub struct SegmentReader {
    file: File,
    path: PathBuf,
    size: u64,
}

/// What the next read found.
pub enum BatchRead {
    Batch(Vec<u8>),
    /// No whole batch left before the end.
    End,
    /// Kafka's reader stops with an exception here.
    Corrupt(String),
}

impl SegmentReader {
    pub fn open(path: &Path) -> io::Result<SegmentReader> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(SegmentReader {
            file,
            path: path.to_path_buf(),
            size,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The batch starting at `position` if it ends at or before `end`.
    pub fn read_batch(&self, position: u64, end: u64) -> io::Result<BatchRead> {
        let end = end.min(self.size);
        if position + HEADER_BYTES_UP_TO_MAGIC >= end {
            return Ok(BatchRead::End);
        }
        let mut prefix = [0u8; HEADER_BYTES_UP_TO_MAGIC as usize];
        self.file.read_exact_at(&mut prefix, position)?;
        let batch_length = i32::from_be_bytes(
            prefix[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4]
                .try_into()
                .expect("4 bytes"),
        );
        if batch_length < RECORD_OVERHEAD_V0 {
            return Ok(BatchRead::Corrupt(format!(
                "Found record size {batch_length} smaller than minimum record overhead ({RECORD_OVERHEAD_V0}) in file {}. (the batch starts at position {position})",
                self.path.display()
            )));
        }
        let size = LOG_OVERHEAD as u64 + batch_length as u64;
        if position + size > end {
            return Ok(BatchRead::End);
        }
        let magic = prefix[OFFSET_MAGIC] as i8;
        if magic < MAGIC_V2 {
            return Ok(BatchRead::Corrupt(format!(
                "the batch at position {position} of {} has magic {magic}; weir reads message format v2 (magic 2) only",
                self.path.display()
            )));
        }
        if (size as usize) < HEADER_BYTES {
            return Ok(BatchRead::Corrupt(format!(
                "the batch at position {position} of {} has batchLength {batch_length}, shorter than the {} bytes of a v2 batch header",
                self.path.display(),
                HEADER_BYTES - LOG_OVERHEAD
            )));
        }
        let mut bytes = vec![0u8; size as usize];
        self.file.read_exact_at(&mut bytes, position)?;
        Ok(BatchRead::Batch(bytes))
    }
}

/// Kafka's name of a compression codec (`CompressionType.name`).
fn codec_name(codec: u8) -> String {
    match Compression::from_codec(codec) {
        Some(Compression::None) => "none".to_string(),
        Some(Compression::Gzip) => "gzip".to_string(),
        Some(Compression::Snappy) => "snappy".to_string(),
        Some(Compression::Lz4) => "lz4".to_string(),
        Some(Compression::Zstd) => "zstd".to_string(),
        None => format!("unknown({codec})"),
    }
}

fn timestamp_type(header: &BatchHeader) -> &'static str {
    if header.is_log_append_time() {
        "LogAppendTime"
    } else {
        "CreateTime"
    }
}

/// `printBatchLevel` for a v2 batch (`batch` is one whole batch at `position`).
pub fn batch_line(batch: &[u8], position: u64) -> String {
    let header = BatchHeader::new(batch).expect("whole v2 batches hold their header");
    let delete_horizon = if header.attributes() & ATTRIBUTE_DELETE_HORIZON != 0 {
        format!("OptionalLong[{}]", header.base_timestamp())
    } else {
        "OptionalLong.empty".to_string()
    };
    let base_sequence = header.base_sequence();
    let last_sequence = if base_sequence == -1 {
        -1
    } else {
        increment_sequence(base_sequence, header.last_offset_delta())
    };
    format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
         producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} \
         deleteHorizonMs: {} position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {}",
        header.base_offset(),
        header.last_offset(),
        header.records_count(),
        base_sequence,
        last_sequence,
        header.producer_id(),
        header.producer_epoch(),
        header.partition_leader_epoch(),
        header.is_transactional(),
        header.is_control(),
        delete_horizon,
        position,
        timestamp_type(&header),
        header.max_timestamp(),
        batch.len(),
        header.magic(),
        codec_name(header.compression_codec()),
        header.crc(),
        computed_crc(batch) == header.crc(),
    )
}

/// One record as Kafka's `Record` presents it.
pub struct RecordInfo<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub sequence: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub header_keys: Vec<&'a [u8]>,
}

/// Visits every record of one whole batch (decompressed if needed) with Kafka's derived
/// offset, timestamp and sequence; fails with the reason the records do not parse.
pub fn for_each_record(
    batch: &[u8],
    position: u64,
    mut visit: impl FnMut(RecordInfo<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let header = BatchHeader::new(batch).ok_or("the batch is shorter than its header")?;
    let records = decompress_records(batch, position).map_err(|error| error.to_string())?;
    let base_sequence = header.base_sequence();
    walk_record_section(&records, header.records_count(), |view| {
        visit(RecordInfo {
            offset: header.base_offset() + i64::from(view.offset_delta),
            timestamp: if header.is_log_append_time() {
                header.max_timestamp()
            } else {
                header.base_timestamp() + view.timestamp_delta
            },
            sequence: if base_sequence >= 0 {
                increment_sequence(base_sequence, view.offset_delta)
            } else {
                -1
            },
            key: view.key,
            value: view.value,
            header_keys: view.headers().map(|(key, _)| key).collect(),
        })
    })
    .map(|_| ())
}

/// Kafka's control record types (`ControlRecordType`).
fn control_type_name(type_id: i16) -> &'static str {
    match type_id {
        0 => "ABORT",
        1 => "COMMIT",
        2 => "LEADER_CHANGE",
        3 => "SNAPSHOT_HEADER",
        4 => "SNAPSHOT_FOOTER",
        5 => "KRAFT_VERSION",
        6 => "KRAFT_VOTERS",
        _ => "UNKNOWN",
    }
}

/// What a control record is: ` endTxnMarker: COMMIT coordinatorEpoch: 3` for
/// transaction markers, ` controlType: NAME(id)` for the others.
pub fn control_description(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<String, String> {
    let key = key.unwrap_or_default();
    if key.len() < 4 {
        return Err(format!(
            "Invalid value size found for end control record key. Must have at least 4 bytes, but found only {}",
            key.len()
        ));
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(format!(
            "Invalid version found for control record: {version}"
        ));
    }
    let type_id = i16::from_be_bytes([key[2], key[3]]);
    let name = control_type_name(type_id);
    if type_id == 0 || type_id == 1 {
        let value = value.unwrap_or_default();
        if value.len() < 6 {
            return Err(format!(
                "the end transaction marker value holds {} bytes, fewer than 6",
                value.len()
            ));
        }
        let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().expect("4 bytes"));
        return Ok(format!(
            " endTxnMarker: {name} coordinatorEpoch: {coordinator_epoch}"
        ));
    }
    Ok(format!(" controlType: {name}({type_id})"))
}

/// The `|` line of one record (`DumpLogSegments.dumpLog`'s deep iteration).
pub fn record_line(
    record: &RecordInfo<'_>,
    header: &BatchHeader<'_>,
    options: &Options,
) -> Result<String, String> {
    let mut line = String::new();
    let mut prefix = format!("{RECORD_INDENT} ");
    if !options.skip_record_metadata {
        line.push_str(&format!(
            "{prefix}offset: {} {}: {} keySize: {} valueSize: {}",
            record.offset,
            timestamp_type(header),
            record.timestamp,
            record.key.map_or(-1, |key| key.len() as i64),
            record.value.map_or(-1, |value| value.len() as i64),
        ));
        prefix = " ".to_string();
        let keys: Vec<String> = record
            .header_keys
            .iter()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect();
        line.push_str(&format!(
            " sequence: {} headerKeys: [{}]",
            record.sequence,
            keys.join(",")
        ));
        if header.is_control() {
            line.push_str(&control_description(record.key, record.value)?);
        }
    }
    if options.print_data && !header.is_control() {
        let (key, payload) = if options.offsets_decoder {
            offsets::parse_record(record.key, record.value, record.offset)?
        } else {
            (
                record
                    .key
                    .map(|key| String::from_utf8_lossy(key).into_owned()),
                record
                    .value
                    .map(|value| String::from_utf8_lossy(value).into_owned()),
            )
        };
        if let Some(key) = key {
            line.push_str(&format!("{prefix}key: {key}"));
        }
        if let Some(payload) = payload {
            line.push_str(&format!(" payload: {payload}"));
        }
    }
    Ok(line)
}

/// Dumps a `.log` file.
pub fn dump_log(
    path: &Path,
    options: &Options,
    out: &mut dyn Write,
    report: &mut Report,
) -> io::Result<()> {
    let Some(base_offset) = base_offset_or_report(path, out, report) else {
        return Ok(());
    };
    writeln!(out, "Log starting offset: {base_offset}")?;
    let reader = match SegmentReader::open(path) {
        Ok(reader) => reader,
        Err(error) => {
            report.fail(out, format!("cannot read {}: {error}", path.display()));
            return Ok(());
        }
    };
    let end = reader.size().min(options.max_bytes.max(0) as u64);
    let mut position = 0u64;
    let mut last_offset = -1i64;
    let mut non_consecutive = Vec::new();
    loop {
        let bytes = match reader.read_batch(position, end) {
            Ok(BatchRead::Batch(bytes)) => bytes,
            Ok(BatchRead::End) => break,
            Ok(BatchRead::Corrupt(reason)) => {
                report.fail(out, reason);
                record_non_consecutive(report, path, non_consecutive);
                return Ok(());
            }
            Err(error) => {
                report.fail(
                    out,
                    format!(
                        "cannot read {} at position {position}: {error}",
                        path.display()
                    ),
                );
                record_non_consecutive(report, path, non_consecutive);
                return Ok(());
            }
        };
        writeln!(out, "{}", batch_line(&bytes, position))?;
        if options.deep_iteration {
            let header = BatchHeader::new(&bytes).expect("whole v2 batches hold their header");
            let mut lines = Vec::new();
            let walked = for_each_record(&bytes, position, |record| {
                if last_offset != -1 && record.offset != last_offset + 1 {
                    non_consecutive.push((last_offset, record.offset));
                }
                last_offset = record.offset;
                lines.push(record_line(&record, &header, options)?);
                Ok(())
            });
            for line in lines {
                writeln!(out, "{line}")?;
            }
            if let Err(reason) = walked {
                report.fail(
                    out,
                    format!(
                        "the records of the batch at position {position} of {} do not parse: {reason}",
                        path.display()
                    ),
                );
            }
        }
        position += bytes.len() as u64;
    }
    record_non_consecutive(report, path, non_consecutive);
    let trailing = end - position;
    if trailing > 0 && options.max_bytes == i32::MAX {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_string())
            .unwrap_or_default();
        writeln!(out, "Found {trailing} invalid bytes at the end of {name}")?;
    }
    Ok(())
}

/// Kafka prepends each pair, so the report lists the last one first.
fn record_non_consecutive(report: &mut Report, path: &Path, mut pairs: Vec<(i64, i64)>) {
    if pairs.is_empty() {
        return;
    }
    pairs.reverse();
    let entry = report.non_consecutive.entry(absolute(path)).or_default();
    pairs.append(entry);
    *entry = pairs;
}

#[cfg(test)]
mod tests {
    use weir_storage::batch::{SimpleRecord, encode_batch, encode_compressed_batch};

    use super::*;

    fn options() -> Options {
        Options {
            print_data: true,
            deep_iteration: true,
            verify_only: false,
            index_sanity_only: false,
            max_bytes: i32::MAX,
            max_message_size: super::super::MAX_MESSAGE_SIZE_DEFAULT,
            offsets_decoder: false,
            skip_record_metadata: false,
        }
    }

    fn records() -> Vec<SimpleRecord> {
        vec![
            SimpleRecord {
                timestamp_ms: 1_700_000_000_000,
                key: Some(b"k".to_vec()),
                value: Some(b"value".to_vec()),
            },
            SimpleRecord {
                timestamp_ms: 1_700_000_000_005,
                key: None,
                value: None,
            },
        ]
    }

    #[test]
    fn batch_lines_read_like_kafkas() {
        let batch = encode_batch(7, &records());
        let crc = BatchHeader::new(&batch).expect("header").crc();
        assert_eq!(
            batch_line(&batch, 120),
            format!(
                "baseOffset: 7 lastOffset: 8 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 \
                 producerEpoch: -1 partitionLeaderEpoch: -1 isTransactional: false isControl: false \
                 deleteHorizonMs: OptionalLong.empty position: 120 CreateTime: 1700000000005 size: {} \
                 magic: 2 compresscodec: none crc: {crc} isvalid: true",
                batch.len()
            )
        );
        let mut damaged = batch.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x01;
        assert!(batch_line(&damaged, 0).ends_with("isvalid: false"));
    }

    #[test]
    fn record_lines_show_metadata_key_and_payload() {
        let batch = encode_compressed_batch(7, &records(), Compression::Gzip);
        assert!(batch_line(&batch, 0).contains("compresscodec: gzip"));
        let header = BatchHeader::new(&batch).expect("header");
        let mut lines = Vec::new();
        for_each_record(&batch, 0, |record| {
            lines.push(record_line(&record, &header, &options())?);
            Ok(())
        })
        .expect("records parse");
        assert_eq!(
            lines,
            vec![
                "| offset: 7 CreateTime: 1700000000000 keySize: 1 valueSize: 5 sequence: -1 headerKeys: [] key: k payload: value",
                "| offset: 8 CreateTime: 1700000000005 keySize: -1 valueSize: -1 sequence: -1 headerKeys: []",
            ]
        );
        let skip = Options {
            skip_record_metadata: true,
            ..options()
        };
        let mut lines = Vec::new();
        for_each_record(&batch, 0, |record| {
            lines.push(record_line(&record, &header, &skip)?);
            Ok(())
        })
        .expect("records parse");
        assert_eq!(lines[0], "| key: k payload: value");
    }

    #[test]
    fn control_records_name_their_type() {
        let commit_key = [0, 0, 0, 1];
        let marker_value = [0, 0, 0, 0, 0, 3];
        assert_eq!(
            control_description(Some(&commit_key), Some(&marker_value)),
            Ok(" endTxnMarker: COMMIT coordinatorEpoch: 3".to_string())
        );
        assert_eq!(
            control_description(Some(&[0, 0, 0, 2]), None),
            Ok(" controlType: LEADER_CHANGE(2)".to_string())
        );
        assert!(control_description(Some(&[0, 0]), None).is_err());
    }
}
