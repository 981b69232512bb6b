//! Goal: a follower's log operations — `truncate_to`, `truncate_fully_and_start_at`,
//! `append_as_follower` — keep the log a valid prefix on real files: offsets, segment
//! files, indexes, leader epochs and producer state agree with the records left, before
//! and after a reopen. Method: build multi-segment logs in a temp dir, cut them at batch
//! boundaries and inside batches, and compare what reads, the checkpoint and the
//! producer checks answer.

use std::path::Path;

use bytes::Bytes;

use super::tests::run;
use super::*;
use crate::batch::{SimpleRecord, encode_batch, set_producer};
use crate::checkpoint::read_leader_epoch_checkpoint;
use crate::segment_file_name;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn batch(count: usize, tag: usize) -> Bytes {
    let records: Vec<_> = (0..count)
        .map(|index| SimpleRecord {
            timestamp_ms: 1_000 + (tag * 10 + index) as i64,
            key: None,
            value: Some(format!("{tag}-{index}-{}", "x".repeat(60)).into_bytes()),
        })
        .collect();
    Bytes::from(encode_batch(0, &records))
}

async fn open(dir: &Path, clean: bool) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config(), None, None, clean)
        .await
        .expect("open")
        .0
}

/// (base, last) of every batch from the log start to the end.
async fn batches(log: &PartitionLog) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let data = log
            .read(next, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        assert!(!data.is_empty(), "nothing at {next}");
        for (_, header) in batch::iterate_batches(&data) {
            out.push((header.base_offset(), header.last_offset()));
            next = header.last_offset() + 1;
        }
    }
    out
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| {
            name.ends_with(".log") || name.ends_with(".index") || name.ends_with(".timeindex")
        })
        .collect();
    names.sort();
    names
}

/// 12 batches of 3 records (offsets 0..36) over several segments, epochs 1, 2, 3 by thirds.
async fn three_epoch_log(dir: &Path) -> PartitionLog {
    let mut log = open(dir, false).await;
    for tag in 0..12 {
        let epoch = 1 + (tag / 4) as i32;
        log.append(batch(3, tag), 5_000, epoch)
            .await
            .expect("append");
    }
    assert!(log.segment_count() >= 3, "the test needs several segments");
    log
}

#[test]
fn truncation_inside_a_batch_removes_that_whole_batch_and_everything_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = three_epoch_log(dir.path()).await;
        let before = batches(&log).await;
        let new_end = log.truncate_to(13).await.expect("truncate");
        assert_eq!(new_end, 12, "offset 13 is inside the batch 12..=14");
        assert_eq!(log.log_end_offset(), 12);
        assert_eq!(batches(&log).await, before[..4]);
        let last_base = *log.segment_base_offsets().last().expect("segments");
        assert!(last_base <= 12);
        for name in segment_files(dir.path()) {
            let base: i64 = name[..20].parse().expect("a segment file name");
            assert!(base <= last_base, "{name} outlived the truncation");
        }
        // The log goes on from the new end, and says the same after a crash.
        let info = log.append(batch(2, 99), 5_000, 4).await.expect("append");
        assert_eq!((info.base_offset, info.last_offset), (12, 13));
        drop(log);
        let log = open(dir.path(), false).await;
        let mut expected = before[..4].to_vec();
        expected.push((12, 13));
        assert_eq!(batches(&log).await, expected);
        assert_eq!(log.leader_epochs(), &[(1, 0), (4, 12)]);
    });
}

#[test]
fn truncation_drops_the_leader_epochs_that_start_at_or_after_the_new_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = three_epoch_log(dir.path()).await;
        assert_eq!(log.leader_epochs(), &[(1, 0), (2, 12), (3, 24)]);
        assert_eq!(log.truncate_to(24).await.expect("truncate"), 24);
        assert_eq!(log.leader_epochs(), &[(1, 0), (2, 12)]);
        let checkpoint = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        assert_eq!(
            read_leader_epoch_checkpoint(&checkpoint).expect("read"),
            vec![(1, 0), (2, 12)]
        );
        assert_eq!(log.truncate_to(30).await.expect("nothing past the end"), 24);
        log.close().await.expect("close");
        let log = open(dir.path(), true).await;
        assert_eq!(log.log_end_offset(), 24);
        assert_eq!(log.leader_epochs(), &[(1, 0), (2, 12)]);
        assert_eq!(batches(&log).await.len(), 8);
    });
}

#[test]
fn truncation_rolls_idempotent_producers_back_to_the_records_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), false).await;
        for sequence in [0, 3, 6] {
            let mut bytes = batch(3, sequence as usize).to_vec();
            set_producer(&mut bytes, 7, 0, sequence);
            log.append(Bytes::from(bytes), 5_000, 1)
                .await
                .expect("append");
        }
        log.roll(5_000)
            .await
            .expect("roll: writes a producer snapshot at 9");
        assert_eq!(log.truncate_to(6).await.expect("truncate"), 6);
        // Sequence 6 is gone: sending it again is new data, not a duplicate.
        let mut again = batch(3, 6).to_vec();
        set_producer(&mut again, 7, 0, 6);
        let info = log
            .append(Bytes::from(again), 5_000, 2)
            .await
            .expect("in sequence again");
        assert!(!info.duplicate);
        assert_eq!(info.base_offset, 6);
        assert!(
            crate::producer_snapshots::list(dir.path())
                .expect("list")
                .iter()
                .all(|&offset| offset <= 6),
            "the snapshot past the new end is gone"
        );
    });
}

#[test]
fn truncating_below_the_log_start_empties_the_log_and_starts_it_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = three_epoch_log(dir.path()).await;
        log.truncate_fully_and_start_at(40)
            .await
            .expect("truncate fully");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
        assert_eq!(log.leader_epochs(), &[]);
        assert_eq!(
            segment_files(dir.path()),
            vec![
                segment_file_name(40, "index"),
                segment_file_name(40, "log"),
                segment_file_name(40, "timeindex"),
            ]
        );
        let info = log.append(batch(1, 50), 5_000, 5).await.expect("append");
        assert_eq!(info.base_offset, 40);
        drop(log);
        let log = open(dir.path(), false).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 41));
    });
}

#[test]
fn a_follower_appends_the_leaders_batches_with_their_offsets_and_epochs() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let leader = three_epoch_log(leader_dir.path()).await;
        let mut follower = open(follower_dir.path(), false).await;
        let mut next = 0;
        while next < leader.log_end_offset() {
            let data = leader
                .read(next, 500, true, i64::MAX)
                .await
                .expect("read")
                .data;
            let info = follower
                .append_as_follower(data, 6_000)
                .await
                .expect("append as follower");
            assert_eq!(info.base_offset, next);
            next = info.last_offset + 1;
        }
        assert_eq!(follower.log_end_offset(), 36);
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(batches(&follower).await, batches(&leader).await);
        let all = follower
            .read(0, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        let first_segment = leader
            .read(0, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        assert_eq!(all, first_segment, "byte for byte what the leader stored");

        // A batch below the end does not continue the log.
        let stale = leader
            .read(30, 100, true, i64::MAX)
            .await
            .expect("read")
            .data;
        let refused = follower.append_as_follower(stale, 6_000).await;
        assert!(matches!(
            refused,
            Err(StorageError::OffsetsOutOfOrder {
                base_offset: 30,
                expected_at_least: 36
            })
        ));
        // A compacted leader may skip offsets: a later base is fine.
        let mut later = batch(2, 77).to_vec();
        batch::set_base_offset(&mut later, 40);
        batch::set_partition_leader_epoch(&mut later, 3);
        let info = follower
            .append_as_follower(Bytes::from(later), 6_000)
            .await
            .expect("gap");
        assert_eq!((info.base_offset, follower.log_end_offset()), (40, 42));
    });
}
