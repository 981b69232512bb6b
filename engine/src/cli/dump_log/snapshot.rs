//! `.snapshot` (idempotent producer state, Kafka's ProducerSnapshot v1, decoded by the
//! storage crate) and `.txnindex` (aborted transactions) files: Kafka's
//! `dumpProducerIdSnapshot` and `dumpTxnIndex`.

use std::io::{self, Write};
use std::path::Path;

use weir_storage::producer_state::{ProducerEntry, decode_snapshot_entries};

use super::{Report, absolute, read_whole_or_report};

/// Bytes per `.txnindex` entry: version i16, producer id, first, last and last stable offset.
const ABORTED_TXN_BYTES: usize = 2 + 8 * 4;
/// The only `.txnindex` entry version.
const ABORTED_TXN_VERSION: i16 = 0;
/// Largest snapshot or transaction index read whole.
const FILE_BYTES_MAX: u64 = 1 << 30;

/// Reads a snapshot or transaction index whole; `None` (after reporting why) if it cannot
/// be read.
fn read_bounded(path: &Path, out: &mut dyn Write, report: &mut Report) -> Option<Vec<u8>> {
    read_whole_or_report(
        path,
        FILE_BYTES_MAX,
        |size| format!("{size} bytes is more than the {FILE_BYTES_MAX} bytes this tool reads"),
        out,
        report,
    )
}

/// One producer's line (`OptionalLong` is how Java prints the open transaction's start).
pub fn producer_line(entry: &ProducerEntry) -> String {
    let txn_first_offset = if entry.current_txn_first_offset >= 0 {
        format!("OptionalLong[{}]", entry.current_txn_first_offset)
    } else {
        "OptionalLong.empty".to_string()
    };
    let mut line = format!(
        "producerId: {} producerEpoch: {} coordinatorEpoch: {} currentTxnFirstOffset: {} lastTimestamp: {} ",
        entry.producer_id,
        entry.epoch,
        entry.coordinator_epoch,
        txn_first_offset,
        entry.last_timestamp
    );
    if let Some(batch) = entry.batches.front() {
        line.push_str(&format!(
            "firstSequence: {} lastSequence: {} lastOffset: {} offsetDelta: {} timestamp: {}",
            batch.first_sequence(),
            batch.last_sequence,
            batch.last_offset,
            batch.offset_delta,
            batch.timestamp
        ));
    }
    line
}

/// Dumps a producer state snapshot. A corrupt snapshot is reported on stderr and, as in
/// Kafka, does not fail the command (the broker rebuilds such a snapshot from the log).
pub fn dump_producer_snapshot(
    path: &Path,
    out: &mut dyn Write,
    report: &mut Report,
) -> io::Result<()> {
    let Some(bytes) = read_bounded(path, out, report) else {
        return Ok(());
    };
    match decode_snapshot_entries(&bytes) {
        Ok(entries) => {
            for entry in &entries {
                writeln!(out, "{}", producer_line(entry))?;
            }
        }
        Err(corrupt) => {
            out.flush()?;
            eprintln!("{}: {corrupt}", absolute(path));
        }
    }
    Ok(())
}

/// Dumps a transaction index.
pub fn dump_transaction_index(
    path: &Path,
    out: &mut dyn Write,
    report: &mut Report,
) -> io::Result<()> {
    let Some(bytes) = read_bounded(path, out, report) else {
        return Ok(());
    };
    for (number, entry) in bytes.chunks(ABORTED_TXN_BYTES).enumerate() {
        if entry.len() < ABORTED_TXN_BYTES {
            report.fail(
                out,
                format!(
                    "{} ends with a partial entry of {} bytes at position {}",
                    path.display(),
                    entry.len(),
                    number * ABORTED_TXN_BYTES
                ),
            );
            break;
        }
        let version = i16::from_be_bytes([entry[0], entry[1]]);
        if version > ABORTED_TXN_VERSION {
            report.fail(
                out,
                format!(
                    "Unexpected aborted transaction version {version} in transaction index {}, current version is {ABORTED_TXN_VERSION}",
                    absolute(path)
                ),
            );
            break;
        }
        let long = |at: usize| i64::from_be_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
        writeln!(
            out,
            "version: {version} producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            long(2),
            long(10),
            long(18),
            long(26)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use weir_storage::producer_state::BatchMetadata;

    use super::*;

    #[test]
    fn producer_lines_match_kafkas() {
        let mut entry = ProducerEntry {
            producer_id: 1000,
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: 1_700_000_000_000,
            coordinator_epoch: -1,
            current_txn_first_offset: -1,
        };
        assert_eq!(
            producer_line(&entry),
            "producerId: 1000 producerEpoch: 0 coordinatorEpoch: -1 currentTxnFirstOffset: OptionalLong.empty lastTimestamp: 1700000000000 "
        );
        entry.batches.push_back(BatchMetadata {
            last_sequence: 9,
            last_offset: 41,
            offset_delta: 4,
            timestamp: 1_700_000_000_000,
        });
        entry.current_txn_first_offset = 37;
        assert_eq!(
            producer_line(&entry),
            "producerId: 1000 producerEpoch: 0 coordinatorEpoch: -1 currentTxnFirstOffset: OptionalLong[37] lastTimestamp: 1700000000000 \
             firstSequence: 5 lastSequence: 9 lastOffset: 41 offsetDelta: 4 timestamp: 1700000000000"
        );
    }
}
