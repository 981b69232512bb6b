//! Tests of `PartitionLog` against real files in a temp dir, each run inside a small
//! glommio executor. Goal: every public promise of `log.rs` (offsets, limits of `read`,
//! rolling, timestamps, reopen, recovery) is checked on content, order and counts.

use std::future::Future;
use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::batch::{Compression, SimpleRecord, encode_batch, encode_compressed_batch};
use crate::segment_file_name;

/// Runs `future` on a fresh glommio executor. io_memory stays small: the machine's
/// memlock limit is 8 MiB and tests run in parallel.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .make()
        .expect("a glommio executor (needs io_uring and 512 KiB of RLIMIT_MEMLOCK)")
        .run(future)
}

pub(super) fn records(count: usize, timestamp_ms: i64, value_bytes: usize) -> Vec<SimpleRecord> {
    (0..count)
        .map(|index| SimpleRecord {
            timestamp_ms: timestamp_ms + index as i64,
            key: None,
            value: Some(vec![b'v'; value_bytes]),
        })
        .collect()
}

pub(super) fn batch(count: usize, timestamp_ms: i64) -> Bytes {
    Bytes::from(encode_batch(0, &records(count, timestamp_ms, 100)))
}

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

pub(super) async fn open(
    dir: &Path,
    config: LogConfig,
    clean: bool,
) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(dir.to_path_buf(), config, None, None, clean)
        .await
        .expect("open")
}

/// Reads everything from `from` to the log end, segment after segment.
pub(super) async fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, i64)> {
    let mut offsets = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let result = log.read(next, 1 << 20, true, i64::MAX).await.expect("read");
        assert!(!result.data.is_empty(), "read at {next} returned nothing");
        for (_, header) in batch::iterate_batches(&result.data) {
            offsets.push((header.base_offset(), header.last_offset()));
            next = header.last_offset() + 1;
        }
    }
    offsets
}

/// Checks ListOffsets-by-timestamp answers: (target time, expected (offset, timestamp)).
async fn assert_lookups(log: &PartitionLog, expected: &[(i64, Option<(i64, i64)>)]) {
    for &(timestamp_ms, answer) in expected {
        assert_eq!(
            log.offset_for_timestamp(timestamp_ms)
                .await
                .expect("lookup"),
            answer,
            "lookup of {timestamp_ms}"
        );
    }
}

#[test]
fn append_assigns_contiguous_offsets_and_reads_them_back_across_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), small_config(), false).await;
        let mut expected = Vec::new();
        for round in 0..20 {
            let info = log
                .append(batch(1 + round % 3, 1000 + round as i64), 5000, 0)
                .await
                .expect("append");
            assert_eq!(
                info.base_offset,
                expected
                    .last()
                    .map_or(0, |&(_, last): &(i64, i64)| last + 1)
            );
            assert_eq!(
                info.last_offset - info.base_offset + 1,
                info.record_count as i64
            );
            assert_eq!(info.log_append_time_ms, -1);
            assert!(!info.flushed);
            expected.push((info.base_offset, info.last_offset));
        }
        assert!(
            log.segment_count() > 3,
            "1200-byte segments roll: {}",
            log.segment_count()
        );
        assert_eq!(
            log.log_end_offset(),
            expected.last().expect("appended").1 + 1
        );
        assert_eq!(read_all(&log, 0).await, expected);
        // Reading from the middle of a batch returns that whole batch first.
        let (base, last) = expected[7];
        if last > base {
            let result = log.read(base + 1, 1, true, i64::MAX).await.expect("read");
            let first = batch::iterate_batches(&result.data)
                .next()
                .expect("one batch")
                .1;
            assert_eq!(first.base_offset(), base);
        }
        // Segment files exist with Kafka's names.
        for base_offset in log.segment_base_offsets() {
            for extension in ["log", "index", "timeindex"] {
                assert!(
                    dir.path()
                        .join(segment_file_name(base_offset, extension))
                        .exists()
                );
            }
        }
        log.close().await.expect("close");
    });
}

#[test]
fn read_honours_max_bytes_min_one_batch_and_upper_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), LogConfig::default(), false).await;
        let mut sizes = Vec::new();
        for _ in 0..5 {
            let records = batch(2, 10);
            sizes.push(records.len());
            log.append(records, 0, 0).await.expect("append");
        }
        let one = sizes[0];
        // max_bytes smaller than one batch: nothing without min_one_batch, one batch with it.
        assert!(
            log.read(0, one - 1, false, i64::MAX)
                .await
                .expect("read")
                .data
                .is_empty()
        );
        assert_eq!(
            log.read(0, one - 1, true, i64::MAX)
                .await
                .expect("read")
                .data
                .len(),
            one
        );
        // Room for two and a half batches: two whole batches.
        assert_eq!(
            log.read(0, one * 5 / 2, false, i64::MAX)
                .await
                .expect("read")
                .data
                .len(),
            2 * one
        );
        // Upper bound (high watermark) 4: batches 0-1 and 2-3 only.
        let result = log.read(0, 1 << 20, true, 4).await.expect("read");
        assert_eq!(result.data.len(), 2 * one);
        assert_eq!((result.log_start_offset, result.log_end_offset), (0, 10));
        // Upper bound inside the first batch: nothing.
        assert!(
            log.read(0, 1 << 20, true, 1)
                .await
                .expect("read")
                .data
                .is_empty()
        );
        // Reading at the log end is empty; past it is out of range.
        assert!(
            log.read(10, 100, true, i64::MAX)
                .await
                .expect("read")
                .data
                .is_empty()
        );
        assert!(matches!(
            log.read(11, 100, true, i64::MAX).await,
            Err(StorageError::OffsetOutOfRange {
                offset: 11,
                log_start: 0,
                log_end: 10
            })
        ));
        log.close().await.expect("close");
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_the_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), small_config(), false).await;
        // Batch i holds records with timestamps 1000 + 10 i, +1, +2 at offsets 3i..3i+2.
        for index in 0..30 {
            log.append(batch(3, 1000 + 10 * index), 0, 0)
                .await
                .expect("append");
        }
        assert!(log.segment_count() > 2);
        assert_lookups(
            &log,
            &[
                (0, Some((0, 1000))),
                (1001, Some((1, 1001))),
                (1003, Some((3, 1010))),
                (1152, Some((47, 1152))),
                (1292, Some((89, 1292))),
                (1293, None),
            ],
        )
        .await;
        assert_eq!(log.max_timestamp().await.expect("max"), Some((89, 1292)));
        // Same answers after reopening (indexes from disk, tails scanned).
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), small_config(), true).await;
        assert_eq!(
            log.offset_for_timestamp(1152).await.expect("lookup"),
            Some((47, 1152))
        );
        assert_eq!(log.max_timestamp().await.expect("max"), Some((89, 1292)));
        log.close().await.expect("close");
    });
}

#[test]
fn empty_log_has_no_timestamps_and_starts_at_the_given_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, report) = PartitionLog::open(
            dir.path().to_path_buf(),
            LogConfig::default(),
            None,
            Some(500),
            false,
        )
        .await
        .expect("open");
        assert_eq!(
            (
                log.log_start_offset(),
                log.log_end_offset(),
                log.recovery_point()
            ),
            (500, 500, 500)
        );
        assert_eq!(report.truncated, vec![]);
        assert_eq!(log.max_timestamp().await.expect("max"), None);
        assert_eq!(log.offset_for_timestamp(0).await.expect("lookup"), None);
        assert!(matches!(
            log.read(499, 10, true, i64::MAX).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(dir.path().join("00000000000000000500.log").exists());
        log.close().await.expect("close");
    });
}

#[test]
fn reopen_after_clean_close_restores_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), small_config(), false).await;
        for index in 0..25 {
            log.append(batch(2, 100 + index), 0, (index / 10) as i32)
                .await
                .expect("append");
        }
        let before = read_all(&log, 0).await;
        let (end, size, segments) = (
            log.log_end_offset(),
            log.size_bytes(),
            log.segment_base_offsets(),
        );
        let epochs = log.leader_epochs().to_vec();
        assert_eq!(epochs, vec![(0, 0), (1, 20), (2, 40)]);
        log.close().await.expect("close");
        let index_files: Vec<Vec<u8>> = segments
            .iter()
            .map(|&base| {
                std::fs::read(dir.path().join(segment_file_name(base, "index"))).expect("index")
            })
            .collect();

        let (log, report) = open(dir.path(), small_config(), true).await;
        assert_eq!(
            (
                log.log_end_offset(),
                log.size_bytes(),
                log.segment_base_offsets()
            ),
            (end, size, segments.clone())
        );
        assert_eq!(log.recovery_point(), end);
        assert_eq!(log.leader_epochs(), epochs.as_slice());
        assert_eq!(report.truncated, vec![]);
        assert_eq!(report.indexes_rebuilt, Vec::<std::path::PathBuf>::new());
        assert_eq!(read_all(&log, 0).await, before);
        for (base, bytes) in segments.iter().zip(index_files) {
            assert_eq!(
                std::fs::read(dir.path().join(segment_file_name(*base, "index"))).expect("index"),
                bytes
            );
        }
        log.close().await.expect("close");

        // An unclean open from scratch validates everything and finds the same log.
        let (log, report) = open(dir.path(), small_config(), false).await;
        assert_eq!(report.truncated, vec![]);
        assert_eq!(report.recovered_from, 0);
        assert_eq!(read_all(&log, 0).await, before);
        log.close().await.expect("close");
    });
}

fn active_log_path(log: &PartitionLog) -> std::path::PathBuf {
    let base = *log.segment_base_offsets().last().expect("segments");
    log.dir().join(segment_file_name(base, "log"))
}

#[test]
fn recovery_truncates_torn_tail_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), LogConfig::default(), false).await;
        for _ in 0..4 {
            log.append(batch(2, 7), 0, 0).await.expect("append");
        }
        let path = active_log_path(&log);
        let size = log.size_bytes();
        let last_batch = batch(2, 7).len() as u64;
        drop(log); // crash: no close
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(size - 10).expect("tear the last batch");
        drop(file);

        let (log, report) = PartitionLog::open(
            dir.path().to_path_buf(),
            LogConfig::default(),
            Some(0),
            None,
            false,
        )
        .await
        .expect("open");
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.size_bytes(), size - last_batch);
        assert_eq!(report.truncated.len(), 1);
        let note = &report.truncated[0];
        assert_eq!(
            (note.path.clone(), note.position, note.bytes_dropped),
            (path.clone(), size - last_batch, last_batch - 10)
        );
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            size - last_batch
        );
        assert_eq!(read_all(&log, 0).await, vec![(0, 1), (2, 3), (4, 5)]);
        log.close().await.expect("close");
    });
}

#[test]
fn recovery_truncates_a_bit_flip_in_the_last_batch_and_deletes_later_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), small_config(), false).await;
        for _ in 0..12 {
            log.append(batch(2, 7), 0, 0).await.expect("append");
        }
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 3);
        drop(log);
        // Flip a bit in the value of the last batch of the second segment.
        let victim = dir.path().join(segment_file_name(bases[1], "log"));
        let mut bytes = std::fs::read(&victim).expect("read");
        let one = batch(2, 7).len();
        let position = bytes.len() - one;
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(&victim, &bytes).expect("write");

        let (log, report) = open(dir.path(), small_config(), false).await;
        assert_eq!(report.truncated.len(), 1);
        assert_eq!(report.truncated[0].path, victim);
        assert_eq!(report.truncated[0].position, position as u64);
        assert!(
            report.truncated[0].reason.contains("CRC"),
            "{}",
            report.truncated[0].reason
        );
        assert_eq!(report.segments_deleted.len(), bases.len() - 2);
        assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
        assert_eq!(log.log_end_offset(), bases[2] - 2);
        assert!(!dir.path().join(segment_file_name(bases[2], "log")).exists());
        let read = read_all(&log, 0).await;
        assert_eq!(read.last().map(|&(_, last)| last), Some(bases[2] - 3));
        log.close().await.expect("close");
    });
}

#[test]
fn missing_index_is_rebuilt_on_a_clean_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(
            dir.path(),
            LogConfig {
                index_interval_bytes: 200,
                ..LogConfig::default()
            },
            false,
        )
        .await;
        for index in 0..20 {
            log.append(batch(1, index), 0, 0).await.expect("append");
        }
        log.close().await.expect("close");
        let index = dir.path().join(segment_file_name(0, "index"));
        let original = std::fs::read(&index).expect("index");
        assert!(
            original.len() >= 8 * 5,
            "index has entries: {}",
            original.len()
        );
        std::fs::remove_file(&index).expect("remove");
        let (log, report) = open(
            dir.path(),
            LogConfig {
                index_interval_bytes: 200,
                ..LogConfig::default()
            },
            true,
        )
        .await;
        assert!(report.indexes_rebuilt.contains(&index));
        assert_eq!(std::fs::read(&index).expect("rebuilt"), original);
        assert_eq!(read_all(&log, 13).await.first(), Some(&(13, 13)));
        log.close().await.expect("close");
    });
}

#[test]
fn log_append_time_stamps_the_broker_time_with_a_valid_crc() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config, false).await;
        let info = log.append(batch(3, 5), 777_000, 4).await.expect("append");
        assert_eq!(info.log_append_time_ms, 777_000);
        let data = log
            .read(0, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        let infos = batch::validate_batches(&data, u32::MAX).expect("CRC recomputed");
        assert_eq!(infos.len(), 1);
        let header = batch::BatchHeader::new(&data).expect("header");
        assert!(header.is_log_append_time());
        assert_eq!(
            (header.max_timestamp(), header.partition_leader_epoch()),
            (777_000, 4)
        );
        assert_eq!(
            log.offset_for_timestamp(777_000).await.expect("lookup"),
            Some((0, 777_000))
        );
        log.close().await.expect("close");
    });
}

#[test]
fn bad_input_is_rejected_with_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            max_message_bytes: 1000,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config, false).await;
        log.append(batch(1, 1), 0, 0).await.expect("append");
        let good = batch(1, 1).to_vec();
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().expect("bytes") ^= 1;
        let mut bad_magic = good.clone();
        bad_magic[batch::OFFSET_MAGIC] = 1;
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0, 0]);
        let oversize = encode_batch(0, &records(20, 1, 100));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            ([good.clone(), bad_crc].concat(), "corrupt"),
            ([good.clone(), bad_magic].concat(), "magic"),
            (trailing, "corrupt"),
            ([good.clone(), oversize].concat(), "too large"),
            (Vec::new(), "corrupt"),
        ];
        for (bytes, kind) in cases {
            let error = log
                .append(Bytes::from(bytes), 0, 0)
                .await
                .expect_err("rejected");
            let matches = match kind {
                "corrupt" => matches!(error, StorageError::CorruptBatch { .. }),
                "magic" => matches!(error, StorageError::UnsupportedMagic { magic: 1, .. }),
                _ => matches!(
                    error,
                    StorageError::BatchTooLarge {
                        max_bytes: 1000,
                        ..
                    }
                ),
            };
            assert!(matches, "{kind}: {error}");
            assert_eq!(log.log_end_offset(), 1);
            assert_eq!(log.size_bytes(), good.len() as u64);
        }
        log.close().await.expect("close");
        assert_eq!(
            std::fs::metadata(dir.path().join(segment_file_name(0, "log")))
                .expect("stat")
                .len(),
            good.len() as u64
        );
    });
}

#[test]
fn flush_interval_messages_syncs_and_advances_the_recovery_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(
            dir.path(),
            LogConfig {
                flush_interval_messages: 5,
                ..LogConfig::default()
            },
            false,
        )
        .await;
        let info = log.append(batch(3, 1), 0, 0).await.expect("append");
        assert!(!info.flushed);
        assert_eq!(log.recovery_point(), 0);
        let info = log.append(batch(3, 1), 0, 0).await.expect("append");
        assert!(info.flushed);
        assert_eq!(log.recovery_point(), 6);
        log.append(batch(1, 1), 0, 0).await.expect("append");
        assert_eq!(log.recovery_point(), 6);
        log.flush().await.expect("flush");
        assert_eq!(log.recovery_point(), 7);
        log.close().await.expect("close");
    });
}

#[test]
fn index_entries_reach_their_files_in_groups_and_at_every_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), LogConfig::default(), false).await;
        let index_path = dir.path().join(segment_file_name(0, "index"));
        let time_index_path = dir.path().join(segment_file_name(0, "timeindex"));
        let file_len = |path: &Path| std::fs::metadata(path).expect("index file").len();
        // Batches of 50 records (about 5.6 KB, over index.interval.bytes): every append
        // after the first adds an entry in memory, none is written yet.
        let mut sizes = Vec::new();
        for index in 0..10 {
            let bytes = batch(50, 1000 * index);
            sizes.push(bytes.len() as u32);
            log.append(bytes, 0, 0).await.expect("append");
        }
        assert_eq!((file_len(&index_path), file_len(&time_index_path)), (0, 0));

        log.flush().await.expect("flush");
        let index = std::fs::read(&index_path).expect("index");
        let entries: Vec<(u32, u32)> = crate::index::offset_index_entries(&index).collect();
        let expected: Vec<(u32, u32)> = (1..10)
            .map(|batch| (50 * batch + 49, sizes[..batch as usize].iter().sum()))
            .collect();
        assert_eq!(entries, expected, "one entry per batch after the first");
        assert_eq!(file_len(&time_index_path), 9 * 12);

        // Without a flush, entries are written once the log has grown by 16 MiB.
        let flushed_size = log.size_bytes();
        let mut appends = 0;
        while log.size_bytes() - flushed_size < 16 << 20 {
            assert_eq!(file_len(&index_path), 9 * 8, "written before 16 MiB");
            log.append(batch(9_000, 100_000 + 10_000 * appends), 0, 0)
                .await
                .expect("append");
            appends += 1;
        }
        assert_eq!(file_len(&index_path), (9 + appends as u64) * 8);
        assert_eq!(file_len(&time_index_path), (9 + appends as u64) * 12);
        log.close().await.expect("close");
    });
}

#[test]
fn segment_ms_and_a_full_index_roll_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            segment_ms: 1000,
            index_interval_bytes: 1,
            segment_index_bytes: 8 * 3,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config, false).await;
        log.append(batch(1, 1), 10_000, 0).await.expect("append");
        log.append(batch(1, 1), 10_500, 0).await.expect("append");
        assert_eq!(log.segment_count(), 1);
        log.append(batch(1, 1), 11_000, 0).await.expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
        // Index of three entries: batches 2..=5 index three entries (the first is never indexed).
        for offset in 3..8 {
            log.append(batch(1, 1), 11_000 + offset, 0)
                .await
                .expect("append");
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 6]);
        log.close().await.expect("close");
    });
}

#[test]
fn kafka_preallocated_index_with_zero_tail_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            index_interval_bytes: 200,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config.clone(), false).await;
        for index in 0..10 {
            log.append(batch(1, index), 0, 0).await.expect("append");
        }
        log.close().await.expect("close");
        let index = dir.path().join(segment_file_name(0, "index"));
        let time_index = dir.path().join(segment_file_name(0, "timeindex"));
        let (index_bytes, time_bytes) = (
            std::fs::read(&index).expect("read"),
            std::fs::read(&time_index).expect("read"),
        );
        std::fs::write(&index, [index_bytes.clone(), vec![0; 4096]].concat()).expect("write");
        std::fs::write(
            &time_index,
            [time_bytes.clone(), vec![0; 4096 * 3]].concat(),
        )
        .expect("write");
        let (log, report) = open(dir.path(), config, true).await;
        assert_eq!(report.indexes_rebuilt, Vec::<std::path::PathBuf>::new());
        assert_eq!(
            std::fs::read(&index).expect("read"),
            index_bytes,
            "zero tail trimmed"
        );
        assert_eq!(std::fs::read(&time_index).expect("read"), time_bytes);
        assert_eq!(read_all(&log, 5).await.first(), Some(&(5, 5)));
        log.close().await.expect("close");
    });
}

#[test]
fn every_offset_reads_from_the_batch_that_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            index_interval_bytes: 150,
            segment_bytes: 4000,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config, false).await;
        let mut batches = Vec::new();
        for index in 0..40 {
            let info = log
                .append(batch(1 + index % 4, 1), 0, 0)
                .await
                .expect("append");
            batches.push((info.base_offset, info.last_offset));
        }
        for &(base, last) in &batches {
            for offset in base..=last {
                let data = log
                    .read(offset, 1, true, i64::MAX)
                    .await
                    .expect("read")
                    .data;
                let (_, header) = batch::iterate_batches(&data).next().expect("one batch");
                assert_eq!(
                    (header.base_offset(), header.last_offset()),
                    (base, last),
                    "offset {offset}"
                );
            }
        }
        log.close().await.expect("close");
    });
}

#[test]
fn timestamp_lookups_find_the_first_matching_record_inside_compressed_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), LogConfig::default(), false).await;
        log.append(batch(2, 100), 0, 0).await.expect("append");
        let compressed =
            batch::encode_compressed_batch(0, &records(3, 200, 100), batch::Compression::Gzip);
        log.append(Bytes::from(compressed), 0, 0)
            .await
            .expect("append");
        assert_lookups(
            &log,
            &[
                (101, Some((1, 101))),
                (150, Some((2, 200))),
                // Kafka decompresses: the record at or after the time, not the batch start.
                (201, Some((3, 201))),
                (202, Some((4, 202))),
                (203, None),
            ],
        )
        .await;
        assert_eq!(log.max_timestamp().await.expect("max"), Some((4, 202)));
        log.close().await.expect("close");
    });
}

fn timestamped(timestamps: &[i64]) -> Vec<SimpleRecord> {
    timestamps
        .iter()
        .map(|&timestamp_ms| SimpleRecord {
            timestamp_ms,
            key: None,
            value: Some(vec![b'v'; 100]),
        })
        .collect()
}

#[test]
fn max_timestamp_answers_with_the_newest_record_not_the_batch_end() {
    const T0: i64 = 1_700_000_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), LogConfig::default(), false).await;
        let mut timestamps: Vec<i64> = (0..10).map(|index| T0 + 1000 * index).collect();
        timestamps.push(T0 + 500);
        let info = log
            .append(
                Bytes::from(encode_batch(0, &timestamped(&timestamps))),
                0,
                0,
            )
            .await
            .expect("append");
        assert_eq!((info.base_offset, info.last_offset), (0, 10));
        assert_eq!(
            log.max_timestamp().await.expect("max"),
            Some((9, T0 + 9000))
        );
        // Recovery rebuilds the segment's maximum from the file: same answer.
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), LogConfig::default(), false).await;
        assert_eq!(
            log.max_timestamp().await.expect("max"),
            Some((9, T0 + 9000))
        );
        log.close().await.expect("close");
    });
}

#[test]
fn max_timestamp_in_an_earlier_batch_and_segment_wins_over_a_later_tie() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut log, _) = open(dir.path(), small_config(), false).await;
        // Offsets 0–3, then 4–6 (the max, 900, at offset 5), then three batches with
        // smaller timestamps and finally a tie at offsets 13–14 (900 at offset 14).
        let appends: [&[i64]; 6] = [
            &[100, 200, 300, 400],
            &[500, 900, 600],
            &[700, 710],
            &[720, 730],
            &[740, 750],
            &[800, 900],
        ];
        for (index, timestamps) in appends.iter().enumerate() {
            let compression = [Compression::None, Compression::Lz4][index % 2];
            let bytes = encode_compressed_batch(0, &timestamped(timestamps), compression);
            log.append(Bytes::from(bytes), 0, 0).await.expect("append");
        }
        // The tie lands in a later segment than the maximum.
        let bases = log.segment_base_offsets();
        assert!(
            bases.iter().any(|&base| base > 6 && base <= 13),
            "{bases:?}"
        );
        assert_eq!(log.log_end_offset(), 15);
        assert_eq!(log.max_timestamp().await.expect("max"), Some((5, 900)));
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), small_config(), true).await;
        assert_eq!(log.max_timestamp().await.expect("max"), Some((5, 900)));
        log.close().await.expect("close");
    });
}

#[test]
fn max_timestamp_of_log_append_time_batches_is_the_first_batch_base_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config, false).await;
        log.append(batch(3, 100), 5000, 0).await.expect("append");
        let compressed = encode_compressed_batch(0, &records(4, 200, 10), Compression::Zstd);
        log.append(Bytes::from(compressed), 7000, 0)
            .await
            .expect("append");
        // Same broker time again: the earlier batch at offset 3 keeps the answer.
        log.append(batch(2, 300), 7000, 0).await.expect("append");
        assert_eq!(log.log_end_offset(), 9);
        assert_eq!(log.max_timestamp().await.expect("max"), Some((3, 7000)));
        log.close().await.expect("close");
    });
}

/// The zero-copy read path must serve exactly what the copying one does: for every
/// offset, several limits, with and without min_one_batch, and several upper bounds,
/// over batches of varied sizes in several segments with index entries.
#[test]
fn read_slice_serves_exactly_the_batches_read_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            segment_bytes: 4000,
            index_interval_bytes: 250,
            ..LogConfig::default()
        };
        let (mut log, _) = open(dir.path(), config, false).await;
        for index in 0..60usize {
            let count = 1 + index % 4;
            let records = encode_batch(0, &records(count, 10, 20 + (index * 37) % 300));
            log.append(Bytes::from(records), 0, 0)
                .await
                .expect("append");
        }
        assert!(log.segments.len() > 3, "several segments");
        let end = log.log_end_offset();
        let mut compared = 0;
        for offset in 0..end {
            for max_bytes in [1usize, 100, 333, 700, 1500, 5000, 1 << 20] {
                for min_one_batch in [false, true] {
                    for upper_bound in [end, end - 3, offset + 2] {
                        let copied = log
                            .read(offset, max_bytes, min_one_batch, upper_bound)
                            .await;
                        let sliced = log
                            .read_slice(offset, max_bytes, min_one_batch, upper_bound)
                            .await;
                        let (copied, sliced) = (copied.expect("read"), sliced.expect("slice"));
                        let bytes = sliced
                            .slice
                            .as_ref()
                            .map(|slice| slice.read_bytes().expect("pread"))
                            .unwrap_or_default();
                        assert_eq!(
                            bytes,
                            copied.data.to_vec(),
                            "offset {offset} max {max_bytes} min_one {min_one_batch} upper {upper_bound}"
                        );
                        if let Some(slice) = &sliced.slice {
                            // Every listed batch end is a real batch boundary.
                            let boundaries: Vec<usize> = batch::iterate_batches(&bytes)
                                .map(|(at, header)| at + header.size_bytes() as usize)
                                .collect();
                            for end in &slice.batch_ends {
                                assert!(boundaries.contains(&(*end as usize)), "{end}");
                            }
                            assert_eq!(slice.batch_ends[0] as usize, boundaries[0]);
                            assert_eq!(*slice.batch_ends.last().unwrap() as usize, slice.length);
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 1000, "{compared} non-empty slices compared");
        // Cutting a slice keeps whole batches, and the first batch when asked.
        let mut slice = log
            .read_slice(0, 1 << 20, true, end)
            .await
            .expect("slice")
            .slice
            .expect("data");
        let first = slice.batch_ends[0] as usize;
        slice.truncate_to(first - 1, true);
        assert_eq!(slice.length, first);
        slice.truncate_to(first - 1, false);
        assert_eq!(slice.length, 0);
        log.close().await.expect("close");
    });
}
