//! Goal: retention and DeleteRecords remove exactly the segments Kafka's rules remove,
//! move the log start offset forward only, keep an active segment at the log end, and
//! leave nothing behind on disk or in the producer and leader-epoch state. Method: real
//! files in a temp dir, batches of one record with chosen timestamps (two batches per
//! segment), an explicit clock; check segment lists, offsets, reads and the files.

use std::path::Path;

use bytes::Bytes;

use super::tests::run;
use super::*;
use crate::batch::{SimpleRecord, encode_batch, set_producer};
use crate::segment_file_name;

/// The tests' clock: far from the records' real write time on purpose.
const NOW_MS: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3_600_000;

fn batch_at(timestamp_ms: i64) -> Bytes {
    Bytes::from(encode_batch(
        0,
        &[SimpleRecord {
            timestamp_ms,
            // Keyed, so compacted logs accept it too.
            key: Some(b"k".to_vec()),
            value: Some(vec![b'r'; 100]),
        }],
    ))
}

fn batch_bytes() -> u64 {
    batch_at(NOW_MS).len() as u64
}

/// Two batches per segment: the third append to a segment rolls it.
fn config(retention_ms: i64, retention_bytes: i64) -> LogConfig {
    LogConfig {
        segment_bytes: 2 * batch_bytes(),
        retention_ms,
        retention_bytes,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

async fn open_at(dir: &Path, config: LogConfig, log_start_offset: Option<i64>) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config, None, log_start_offset, true)
        .await
        .expect("open")
        .0
}

async fn append_at(log: &mut PartitionLog, timestamp_ms: i64) -> i64 {
    log.append(batch_at(timestamp_ms), NOW_MS, 0)
        .await
        .expect("append")
        .base_offset
}

/// Applies retention at `now_ms` with the high watermark at the log end and deletes
/// the files at once; returns the deleted segments.
async fn retain(log: &mut PartitionLog, now_ms: i64) -> Vec<DeletedSegment> {
    let high_watermark = log.log_end_offset();
    log.remove_old_segments(now_ms, high_watermark)
        .await
        .expect("remove")
        .delete_now()
        .await
        .expect("delete files")
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(extension))
        .collect();
    names.sort();
    names
}

fn log_file_bytes(dir: &Path) -> u64 {
    files_with_extension(dir, ".log")
        .iter()
        .map(|name| std::fs::metadata(dir.join(name)).expect("stat").len())
        .sum()
}

/// Base offset of every record batch readable from the log start on.
async fn readable_offsets(log: &PartitionLog) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let result = log.read(next, 1 << 20, true, i64::MAX).await.expect("read");
        assert!(!result.data.is_empty(), "nothing readable at {next}");
        for (_, header) in batch::iterate_batches(&result.data) {
            offsets.push(header.base_offset());
            next = header.last_offset() + 1;
        }
    }
    offsets
}

#[test]
fn time_retention_deletes_expired_segments_oldest_first_and_stops_at_the_first_recent_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open_at(dir.path(), config(HOUR_MS, -1), None).await;
        // Segments [0,1] and [2,3] are two hours old, [4,5] is recent, [6,7] is old
        // again (a producer with a slow clock) and [8] is the active segment.
        for timestamp_ms in [2, 2, 2, 2, 0, 0, 2, 2, 0].map(|hours| NOW_MS - hours * HOUR_MS) {
            append_at(&mut log, timestamp_ms).await;
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6, 8]);
        assert!(log.has_old_segments(NOW_MS, log.log_end_offset()));

        let deleted = retain(&mut log, NOW_MS).await;
        assert_eq!(
            deleted
                .iter()
                .map(|segment| (segment.base_offset, segment.next_offset, segment.reason))
                .collect::<Vec<_>>(),
            vec![
                (0, 2, DeletionReason::RetentionMs),
                (2, 4, DeletionReason::RetentionMs)
            ]
        );
        assert_eq!(deleted[0].max_timestamp, NOW_MS - 2 * HOUR_MS);
        assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
        assert_eq!(log.log_start_offset(), 4);
        assert_eq!(readable_offsets(&log).await, vec![4, 5, 6, 7, 8]);
        assert!(matches!(
            log.read(3, 1 << 20, true, i64::MAX).await,
            Err(StorageError::OffsetOutOfRange { log_start: 4, .. })
        ));
        assert_eq!(
            files_with_extension(dir.path(), ".log"),
            vec![
                segment_file_name(4, "log"),
                segment_file_name(6, "log"),
                segment_file_name(8, "log")
            ]
        );
        assert_eq!(files_with_extension(dir.path(), ".index").len(), 3);
        assert_eq!(files_with_extension(dir.path(), ".timeindex").len(), 3);
        assert!(files_with_extension(dir.path(), ".deleted").is_empty());

        // Exactly retention.ms old is not yet "older than" it (Kafka's strict >).
        assert!(!log.has_old_segments(NOW_MS + HOUR_MS, log.log_end_offset()));
        assert!(retain(&mut log, NOW_MS + HOUR_MS).await.is_empty());
        // Unlimited retention deletes nothing, however old.
        log.set_config(config(-1, -1));
        assert!(retain(&mut log, NOW_MS + 1000 * HOUR_MS).await.is_empty());
        assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
    });
}

#[test]
fn size_retention_keeps_the_log_within_retention_bytes_plus_one_segment_and_the_newest_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let segment_bytes = 2 * batch_bytes();
        // Room for five batches: two and a half segments.
        let retention_bytes = 5 * batch_bytes() as i64;
        let mut log = open_at(dir.path(), config(-1, retention_bytes), None).await;
        for offset in 0..40 {
            assert_eq!(append_at(&mut log, NOW_MS).await, offset);
            for segment in retain(&mut log, NOW_MS).await {
                assert_eq!(segment.reason, DeletionReason::RetentionBytes);
            }
            assert!(
                log.size_bytes() <= retention_bytes as u64 + segment_bytes,
                "{} bytes after offset {offset}",
                log.size_bytes()
            );
            assert_eq!(log_file_bytes(dir.path()), log.size_bytes());
        }
        // Kafka deletes a segment only if the rest still holds retention.bytes: the
        // newest five or more batches remain, and only whole segments went.
        let offsets = readable_offsets(&log).await;
        assert_eq!(offsets, (34..40).collect::<Vec<_>>());
        assert_eq!(log.log_start_offset(), 34);
        assert_eq!(log.segment_base_offsets(), vec![34, 36, 38]);
        assert!(log.size_bytes() >= retention_bytes as u64);
    });
}

#[test]
fn when_every_segment_expired_the_active_one_rolls_and_an_empty_segment_stays_at_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open_at(dir.path(), config(HOUR_MS, -1), None).await;
        for _ in 0..5 {
            append_at(&mut log, NOW_MS - 2 * HOUR_MS).await;
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
        let deleted = retain(&mut log, NOW_MS).await;
        assert_eq!(
            deleted
                .iter()
                .map(|segment| segment.base_offset)
                .collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        assert_eq!(log.segment_base_offsets(), vec![5]);
        assert_eq!(log.size_bytes(), 0);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
        assert_eq!(
            files_with_extension(dir.path(), ".log"),
            vec![segment_file_name(5, "log")]
        );
        // An empty active segment is never deleted, and appends go on at the log end.
        assert!(!log.has_old_segments(NOW_MS + 1000 * HOUR_MS, 5));
        let result = log.read(5, 1 << 20, true, i64::MAX).await.expect("read");
        assert!(result.data.is_empty());
        assert_eq!(append_at(&mut log, NOW_MS).await, 5);
        assert_eq!(readable_offsets(&log).await, vec![5]);
    });
}

#[test]
fn nothing_at_or_past_the_high_watermark_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open_at(dir.path(), config(HOUR_MS, -1), None).await;
        for _ in 0..5 {
            append_at(&mut log, NOW_MS - 2 * HOUR_MS).await;
        }
        // High watermark 3: segment [0,1] lies below it, [2,3] reaches offset 3.
        let removed = log.remove_old_segments(NOW_MS, 3).await.expect("remove");
        let bases: Vec<i64> = removed
            .segments()
            .iter()
            .map(|segment| segment.base_offset)
            .collect();
        assert_eq!(bases, vec![0]);
        removed.delete_now().await.expect("delete");
        assert_eq!(log.log_start_offset(), 2);
        assert_eq!(log.segment_base_offsets(), vec![2, 4]);
    });
}

#[test]
fn a_compacted_only_topic_keeps_old_segments_but_still_drops_those_below_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let compacted = LogConfig {
            cleanup_delete: false,
            cleanup_compact: true,
            ..config(HOUR_MS, 1)
        };
        let mut log = open_at(dir.path(), compacted, None).await;
        for _ in 0..5 {
            append_at(&mut log, NOW_MS - 2 * HOUR_MS).await;
        }
        assert!(retain(&mut log, NOW_MS).await.is_empty());
        let removed = log
            .delete_records_before(3, 5, NOW_MS)
            .await
            .expect("delete records");
        let deleted = removed.delete_now().await.expect("delete");
        assert_eq!(
            deleted
                .iter()
                .map(|segment| (segment.base_offset, segment.reason))
                .collect::<Vec<_>>(),
            vec![(0, DeletionReason::LogStartOffset)]
        );
        assert_eq!(log.segment_base_offsets(), vec![2, 4]);
        assert_eq!(log.log_start_offset(), 3);
    });
}

#[test]
fn delete_records_moves_the_log_start_forward_only_and_deletes_whole_segments_below_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open_at(dir.path(), config(-1, -1), None).await;
        for _ in 0..7 {
            append_at(&mut log, NOW_MS).await;
        }
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6]);
        // Past the high watermark, or negative: OFFSET_OUT_OF_RANGE, nothing changes.
        for offset in [6, -1, i64::MIN] {
            assert!(
                matches!(
                    log.delete_records_before(offset, 5, NOW_MS).await,
                    Err(StorageError::OffsetOutOfRange { .. })
                ),
                "{offset}"
            );
        }
        assert_eq!(log.log_start_offset(), 0);

        // Inside segment [2,3]: [0,1] goes, [2,3] stays and reads start at 3.
        let removed = log
            .delete_records_before(3, 7, NOW_MS)
            .await
            .expect("delete");
        assert_eq!(removed.log_start_offset(), 3);
        removed.delete_now().await.expect("delete files");
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.segment_base_offsets(), vec![2, 4, 6]);
        assert!(log.recovery_point() >= 3);
        assert!(matches!(
            log.read(2, 1 << 20, true, i64::MAX).await,
            Err(StorageError::OffsetOutOfRange {
                offset: 2,
                log_start: 3,
                log_end: 7
            })
        ));
        assert_eq!(readable_offsets(&log).await, vec![3, 4, 5, 6]);
        assert_eq!(
            log.offset_for_timestamp(0).await.expect("lookup"),
            Some((3, NOW_MS))
        );

        // Backwards is a no-op, not an error.
        let removed = log
            .delete_records_before(1, 7, NOW_MS)
            .await
            .expect("delete");
        assert!(removed.is_empty());
        assert_eq!(log.log_start_offset(), 3);

        // Up to the log end: every sealed segment goes, the active one stays (Kafka
        // deletes it once it rolled).
        let deleted = log
            .delete_records_before(7, 7, NOW_MS)
            .await
            .expect("delete")
            .delete_now()
            .await
            .expect("delete files");
        assert_eq!(
            deleted
                .iter()
                .map(|segment| segment.base_offset)
                .collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert_eq!(log.segment_base_offsets(), vec![6]);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (7, 7));
        assert!(
            log.read(7, 1 << 20, true, i64::MAX)
                .await
                .expect("read")
                .data
                .is_empty()
        );
        assert_eq!(append_at(&mut log, NOW_MS).await, 7);
        assert_eq!(readable_offsets(&log).await, vec![7]);
    });
}

#[test]
fn the_advanced_log_start_survives_a_reopen_with_its_checkpoint_and_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open_at(dir.path(), config(-1, -1), None).await;
        for _ in 0..5 {
            append_at(&mut log, NOW_MS).await;
        }
        log.delete_records_before(3, 5, NOW_MS)
            .await
            .expect("delete")
            .delete_now()
            .await
            .expect("delete files");
        let checkpointed = log.log_start_offset();
        log.close().await.expect("close");

        // With the checkpointed start (what the engine's log-start-offset-checkpoint
        // holds), the start is exact, also in the middle of a segment.
        let log = open_at(dir.path(), config(-1, -1), Some(checkpointed)).await;
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(readable_offsets(&log).await, vec![3, 4]);
        log.close().await.expect("close");
        // Without a checkpoint the first segment's base is the start: deleted segments
        // never come back.
        let log = open_at(dir.path(), config(-1, -1), None).await;
        assert_eq!(log.log_start_offset(), 2);
        assert_eq!(log.segment_base_offsets(), vec![2, 4]);
        log.close().await.expect("close");
        // A checkpoint older than the segments is clamped to the first one.
        let log = open_at(dir.path(), config(-1, -1), Some(0)).await;
        assert_eq!(log.log_start_offset(), 2);
        log.close().await.expect("close");
    });
}

#[test]
fn deleted_files_left_by_a_crash_are_removed_at_open_and_segments_never_come_back_in_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open_at(dir.path(), config(HOUR_MS, -1), None).await;
        for _ in 0..4 {
            append_at(&mut log, NOW_MS - 2 * HOUR_MS).await;
        }
        append_at(&mut log, NOW_MS).await;
        let high_watermark = log.log_end_offset();
        let removed = log
            .remove_old_segments(NOW_MS, high_watermark)
            .await
            .expect("remove");
        // Renamed, then a "crash" before file.delete.delay.ms is over.
        let renamed = removed.retire().await.expect("retire");
        assert_eq!(renamed.paths().len(), 6);
        assert_eq!(
            files_with_extension(dir.path(), ".deleted"),
            vec![
                "00000000000000000000.index.deleted",
                "00000000000000000000.log.deleted",
                "00000000000000000000.timeindex.deleted",
                "00000000000000000002.index.deleted",
                "00000000000000000002.log.deleted",
                "00000000000000000002.timeindex.deleted",
            ]
        );
        drop(renamed);
        log.close().await.expect("close");
        // A crash in the middle of a rename: the .log already renamed, its index not.
        std::fs::write(dir.path().join("00000000000000000001.log.deleted"), b"x").expect("w");
        std::fs::copy(
            dir.path().join(segment_file_name(4, "index")),
            dir.path().join(segment_file_name(1, "index")),
        )
        .expect("copy");

        let log = open_at(dir.path(), config(HOUR_MS, -1), None).await;
        assert!(files_with_extension(dir.path(), ".deleted").is_empty());
        assert_eq!(
            files_with_extension(dir.path(), ".index"),
            vec![segment_file_name(4, "index")]
        );
        assert_eq!(log.segment_base_offsets(), vec![4]);
        assert_eq!(log.log_start_offset(), 4);
        assert_eq!(readable_offsets(&log).await, vec![4]);
        log.close().await.expect("close");
    });
}

#[test]
fn producers_snapshots_and_leader_epochs_below_the_new_log_start_are_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        // The batches' timestamps are the tests' clock: producers must not expire at open.
        let config = || LogConfig {
            producer_id_expiration_ms: i64::MAX,
            ..config(-1, -1)
        };
        let mut log = open_at(dir.path(), config(), None).await;
        let idempotent = |producer_id: i64, sequence: i32| {
            let mut bytes = batch_at(NOW_MS).to_vec();
            set_producer(&mut bytes, producer_id, 0, sequence);
            Bytes::from(bytes)
        };
        // Producer 7 writes offsets 0 and 1, producer 8 offsets 2 and 4.
        for (producer_id, sequence) in [(7, 0), (7, 1), (8, 0)] {
            log.append(idempotent(producer_id, sequence), NOW_MS, 0)
                .await
                .expect("append");
        }
        append_at(&mut log, NOW_MS).await;
        log.append(idempotent(8, 1), NOW_MS, 0)
            .await
            .expect("append");
        // Rolls at 2 and 4 wrote snapshots there; the leader epoch cache holds (0, 0).
        assert_eq!(
            crate::producer_snapshots::list(dir.path()).expect("list"),
            vec![2, 4]
        );
        assert_eq!(log.leader_epochs(), &[(0, 0)]);
        assert_eq!(log.producers().len(), 2);

        let removed = log
            .delete_records_before(3, 5, NOW_MS)
            .await
            .expect("delete");
        assert!(
            log.producers().get(7).is_none(),
            "producer 7's data is gone"
        );
        assert_eq!(
            log.producers()
                .get(8)
                .and_then(|entry| entry.batches.back())
                .map(|batch| batch.last_offset),
            Some(4)
        );
        assert_eq!(log.leader_epochs(), &[(0, 3)]);
        assert_eq!(
            crate::checkpoint::read_leader_epoch_checkpoint(
                &dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)
            )
            .expect("read"),
            vec![(0, 3)]
        );
        removed.delete_now().await.expect("delete files");
        assert_eq!(
            crate::producer_snapshots::list(dir.path()).expect("list"),
            vec![4]
        );

        // Producer 7 may start over at any sequence (it is unknown now); 8 continues.
        log.append(idempotent(7, 40), NOW_MS, 0)
            .await
            .expect("unknown producer appends");
        assert!(matches!(
            log.append(idempotent(8, 5), NOW_MS, 0).await,
            Err(StorageError::Producer(_))
        ));
        log.close().await.expect("close");
        let log = open_at(dir.path(), config(), Some(3)).await;
        assert_eq!(log.producers().len(), 2);
        assert_eq!(log.leader_epochs(), &[(0, 3)]);
        log.close().await.expect("close");
    });
}
