//! `.index` and `.timeindex` files: Kafka's `dumpIndex` and `dumpTimeIndex`.
//!
//! Every entry is printed and checked against the segment's `.log`: an offset index
//! entry must point at the batch whose last offset it names; a time index entry must name
//! a batch's last offset, carry that batch's largest record timestamp and grow. A zero
//! entry after the first is Kafka's preallocated tail and ends the file.
//! `--index-sanity-check` runs only the check the broker runs when it opens an index.

use std::io::{self, Write};
use std::path::Path;

use weir_storage::batch::BatchHeader;
use weir_storage::index::{
    OFFSET_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRY_BYTES, offset_index_entries, time_index_entries,
};

use super::segment::{BatchRead, SegmentReader, for_each_record};
use super::{Options, Report, absolute, base_offset_or_report, read_whole_or_report, sibling};

/// Largest index file read (Kafka's `segment.index.bytes` cannot exceed 2 GiB either).
const INDEX_FILE_BYTES_MAX: u64 = i32::MAX as u64;

/// Reads an index file whole; `None` (after reporting why) if it cannot be read.
fn read_index(path: &Path, out: &mut dyn Write, report: &mut Report) -> Option<Vec<u8>> {
    read_whole_or_report(
        path,
        INDEX_FILE_BYTES_MAX,
        |size| format!("{size} bytes is larger than any index Kafka writes"),
        out,
        report,
    )
}

/// Opens the segment's `.log`, which Kafka's tool needs before it looks at an index.
fn open_log(path: &Path, out: &mut dyn Write, report: &mut Report) -> Option<SegmentReader> {
    let log_path = sibling(path, "log");
    match SegmentReader::open(&log_path) {
        Ok(reader) => Some(reader),
        Err(error) => {
            report.fail(
                out,
                format!(
                    "cannot read {}, the log of {}: {error}",
                    log_path.display(),
                    path.display()
                ),
            );
            None
        }
    }
}

/// Absolute offsets of `.index` entries, the way Kafka reads them (relative offsets are
/// Java ints), up to the preallocated zero tail.
fn offset_entries(base_offset: i64, bytes: &[u8]) -> Vec<(i64, u32)> {
    offset_index_entries(bytes)
        .map(|(relative, position)| (base_offset + i64::from(relative as i32), position))
        .enumerate()
        .take_while(|(number, (offset, _))| *number == 0 || *offset != base_offset)
        .map(|(_, entry)| entry)
        .collect()
}

/// Kafka's `OffsetIndex.lookup`: the position of the greatest entry at or below `target`,
/// the segment start without one.
fn lookup_position(entries: &[(i64, u32)], target: i64) -> u64 {
    let count = entries.partition_point(|(offset, _)| *offset <= target);
    if count == 0 {
        0
    } else {
        u64::from(entries[count - 1].1)
    }
}

/// Dumps a `.index` file.
pub fn dump_offset_index(
    path: &Path,
    options: &Options,
    out: &mut dyn Write,
    report: &mut Report,
) -> io::Result<()> {
    let Some(base_offset) = base_offset_or_report(path, out, report) else {
        return Ok(());
    };
    let Some(log) = open_log(path, out, report) else {
        return Ok(());
    };
    let Some(bytes) = read_index(path, out, report) else {
        return Ok(());
    };
    let slots = bytes.len() / OFFSET_INDEX_ENTRY_BYTES;
    if slots == 0 {
        writeln!(out, "{} is empty.", path.display())?;
        return Ok(());
    }
    if options.index_sanity_only {
        // Kafka's OffsetIndex.sanityCheck, on the last slot of the file.
        let last = offset_index_entries(&bytes)
            .last()
            .map(|(relative, _)| base_offset + i64::from(relative as i32))
            .unwrap_or(base_offset);
        if last < base_offset {
            report.fail(out, format!(
                "Corrupt index found, index file {} has non-zero size but the last offset is {last} which is less than the base offset {base_offset}",
                absolute(path)
            ));
        } else if bytes.len() % OFFSET_INDEX_ENTRY_BYTES != 0 {
            report.fail(out, format!(
                "Index file {} is corrupt, found {} bytes which is neither positive nor a multiple of {OFFSET_INDEX_ENTRY_BYTES}",
                absolute(path),
                bytes.len()
            ));
        } else {
            writeln!(out, "{} passed sanity check.", path.display())?;
        }
        return Ok(());
    }
    let mut mismatches = Vec::new();
    for (offset, position) in offset_entries(base_offset, &bytes) {
        let slice_end = u64::from(position).saturating_add(options.max_message_size.max(0) as u64);
        match log.read_batch(u64::from(position), slice_end) {
            Ok(BatchRead::Batch(batch)) => {
                let header = BatchHeader::new(&batch).expect("whole v2 batches hold their header");
                if header.last_offset() != offset {
                    mismatches.push((offset, header.last_offset()));
                }
            }
            Ok(BatchRead::End) => report.fail(
                out,
                format!(
                    "the entry for offset {offset} of {} points at position {position}, where the log holds no whole batch of at most {} bytes",
                    path.display(),
                    options.max_message_size
                ),
            ),
            Ok(BatchRead::Corrupt(reason)) => report.fail(out, reason),
            Err(error) => report.fail(
                out,
                format!("cannot read the log of {} at position {position}: {error}", path.display()),
            ),
        }
        if !options.verify_only {
            writeln!(out, "offset: {offset} position: {position}")?;
        }
    }
    if !mismatches.is_empty() {
        // Kafka prepends each mismatch, so the last one found is listed first.
        mismatches.reverse();
        report
            .index_mismatches
            .entry(absolute(path))
            .or_default()
            .extend(mismatches);
    }
    Ok(())
}

/// The batch a time index entry leads to.
struct FoundBatch {
    last_offset: i64,
    /// Its largest record timestamp, or why its records do not parse.
    max_timestamp: Result<i64, String>,
}

/// The first batch from `position` whose last offset is at least `offset`; `None` if
/// there is none.
fn batch_holding(
    log: &SegmentReader,
    mut position: u64,
    offset: i64,
) -> Result<Option<FoundBatch>, String> {
    loop {
        match log.read_batch(position, log.size()) {
            Ok(BatchRead::Batch(bytes)) => {
                let header = BatchHeader::new(&bytes).expect("whole v2 batches hold their header");
                if header.last_offset() >= offset {
                    let mut max_timestamp = -1i64;
                    let walked = for_each_record(&bytes, position, |record| {
                        max_timestamp = max_timestamp.max(record.timestamp);
                        Ok(())
                    });
                    return Ok(Some(FoundBatch {
                        last_offset: header.last_offset(),
                        max_timestamp: walked.map(|()| max_timestamp),
                    }));
                }
                position += bytes.len() as u64;
            }
            Ok(BatchRead::End) => return Ok(None),
            Ok(BatchRead::Corrupt(reason)) => return Err(reason),
            Err(error) => {
                return Err(format!(
                    "cannot read the log at position {position}: {error}"
                ));
            }
        }
    }
}

/// Dumps a `.timeindex` file.
pub fn dump_time_index(
    path: &Path,
    options: &Options,
    out: &mut dyn Write,
    report: &mut Report,
) -> io::Result<()> {
    let Some(base_offset) = base_offset_or_report(path, out, report) else {
        return Ok(());
    };
    let Some(log) = open_log(path, out, report) else {
        return Ok(());
    };
    // A missing offset index only makes the lookups start at the segment start.
    let offset_index_path = sibling(path, "index");
    let offset_index = std::fs::read(&offset_index_path)
        .map(|bytes| offset_entries(base_offset, &bytes))
        .unwrap_or_default();
    let Some(bytes) = read_index(path, out, report) else {
        return Ok(());
    };
    let raw: Vec<(i64, i64)> = time_index_entries(&bytes)
        .map(|(timestamp, relative)| (timestamp, base_offset + i64::from(relative as i32)))
        .collect();
    if options.index_sanity_only {
        // Kafka's TimeIndex.sanityCheck.
        let (last_timestamp, last_offset) = raw.last().copied().unwrap_or((-1, base_offset));
        let first_timestamp = raw.first().map_or(-1, |(timestamp, _)| *timestamp);
        let file = absolute(path);
        if !raw.is_empty() && last_timestamp < first_timestamp {
            report.fail(out, format!(
                "Corrupt time index found, time index file ({file}) has non-zero size but the last timestamp is {last_timestamp} which is less than the first timestamp {first_timestamp}"
            ));
        } else if !raw.is_empty() && last_offset < base_offset {
            report.fail(out, format!(
                "Corrupt time index found, time index file ({file}) has non-zero size but the last offset is {last_offset} which is less than the first offset {base_offset}"
            ));
        } else if bytes.len() % TIME_INDEX_ENTRY_BYTES != 0 {
            report.fail(out, format!(
                "Time index file {file} is corrupt, found {} bytes which is neither positive nor a multiple of {TIME_INDEX_ENTRY_BYTES}",
                bytes.len()
            ));
        } else {
            writeln!(out, "{} passed sanity check.", path.display())?;
        }
        return Ok(());
    }
    let file = absolute(path);
    let mut previous_timestamp = -1i64;
    for (number, (timestamp, offset)) in raw.into_iter().enumerate() {
        if number > 0 && offset == base_offset {
            break; // Kafka's preallocated zero tail.
        }
        let position = lookup_position(&offset_index, offset);
        match batch_holding(&log, position, offset) {
            Ok(None) => report
                .time_offsets_not_found
                .entry(file.clone())
                .or_default()
                .push((offset, -1)),
            Ok(Some(found)) if found.last_offset != offset => report
                .time_offsets_not_found
                .entry(file.clone())
                .or_default()
                .push((offset, found.last_offset)),
            Ok(Some(FoundBatch {
                max_timestamp: Ok(max_timestamp),
                ..
            })) => {
                if max_timestamp != timestamp {
                    report
                        .time_mismatches
                        .entry(file.clone())
                        .or_default()
                        .push((timestamp, max_timestamp));
                }
                if previous_timestamp >= timestamp {
                    report
                        .time_out_of_order
                        .entry(file.clone())
                        .or_default()
                        .push((timestamp, previous_timestamp));
                }
            }
            Ok(Some(FoundBatch {
                max_timestamp: Err(reason),
                ..
            })) => report.fail(
                out,
                format!("the records of the batch holding offset {offset} do not parse: {reason}"),
            ),
            Err(reason) => report.fail(out, reason),
        }
        if !options.verify_only {
            writeln!(out, "timestamp: {timestamp} offset: {offset}")?;
        }
        previous_timestamp = timestamp;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_entries_stop_at_the_zero_tail_and_lookups_find_the_floor() {
        let bytes = [
            0, 0, 0, 0, 0, 0, 0, 0, // offset 100 at 0 (the first entry may be zero)
            0, 0, 0, 5, 0, 0, 1, 0, // offset 105 at 256
            0, 0, 0, 0, 0, 0, 0, 0, // zero tail
            0, 0, 0, 9, 0, 0, 2, 0,
        ];
        let entries = offset_entries(100, &bytes);
        assert_eq!(entries, vec![(100, 0), (105, 256)]);
        assert_eq!(lookup_position(&entries, 99), 0);
        assert_eq!(lookup_position(&entries, 104), 0);
        assert_eq!(lookup_position(&entries, 105), 256);
        assert_eq!(lookup_position(&entries, 1_000), 256);
    }
}
