//! Goal: `PartitionLog` enforces idempotent producers' sequences on real files and keeps
//! that state across rolls, clean closes and crashes. Method: append batches stamped
//! with producer fields, retry them, reopen the log (with and without a clean close,
//! with damaged or missing snapshots) and check verdicts, offsets and snapshot files.

use std::path::Path;

use bytes::Bytes;

use super::tests::run;
use super::*;
use crate::batch::{SimpleRecord, encode_batch, set_producer};
use crate::producer_state::ProducerStateError;

fn idempotent(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Bytes {
    let records: Vec<_> = (0..count)
        .map(|index| SimpleRecord {
            timestamp_ms: now_ms() + index as i64,
            key: None,
            value: Some(
                format!("{producer_id}-{epoch}-{}", sequence as usize + index).into_bytes(),
            ),
        })
        .collect();
    let mut bytes = encode_batch(0, &records);
    set_producer(&mut bytes, producer_id, epoch, sequence);
    Bytes::from(bytes)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, clean: bool) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config(), None, None, clean)
        .await
        .expect("open")
        .0
}

async fn append(log: &mut PartitionLog, records: Bytes) -> Result<AppendInfo, StorageError> {
    log.append(records, now_ms(), 0).await
}

fn snapshot_files(dir: &Path) -> Vec<i64> {
    crate::producer_snapshots::list(dir).expect("list")
}

#[test]
fn a_retried_batch_is_answered_with_its_original_offsets_and_not_written_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), false).await;
        let first = append(&mut log, idempotent(5, 0, 0, 3))
            .await
            .expect("append");
        let second = append(&mut log, idempotent(5, 0, 3, 2))
            .await
            .expect("append");
        assert_eq!((first.base_offset, second.base_offset), (0, 3));
        let retry = append(&mut log, idempotent(5, 0, 0, 3))
            .await
            .expect("duplicate");
        assert!(retry.duplicate);
        assert_eq!((retry.base_offset, retry.last_offset), (0, 2));
        assert_eq!(log.log_end_offset(), 5, "a duplicate writes nothing");
        let gap = append(&mut log, idempotent(5, 0, 9, 1)).await;
        assert!(matches!(
            gap,
            Err(StorageError::Producer(
                ProducerStateError::OutOfOrderSequence { expected: 5, .. }
            ))
        ));
        let next = append(&mut log, idempotent(5, 0, 5, 1))
            .await
            .expect("in sequence");
        assert_eq!(next.base_offset, 5);
        append(&mut log, idempotent(5, 1, 0, 1))
            .await
            .expect("bumped epoch");
        assert!(matches!(
            append(&mut log, idempotent(5, 0, 6, 1)).await,
            Err(StorageError::Producer(ProducerStateError::StaleEpoch {
                current_epoch: 1,
                ..
            }))
        ));
        assert_eq!(log.log_end_offset(), 7);
        log.close().await.expect("close");
    });
}

#[test]
fn idempotent_requests_carry_one_batch_and_transactional_batches_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), false).await;
        let mut two = idempotent(5, 0, 0, 1).to_vec();
        two.extend_from_slice(&idempotent(5, 0, 1, 1));
        assert!(matches!(
            append(&mut log, Bytes::from(two)).await,
            Err(StorageError::InvalidRecord { .. })
        ));
        assert!(matches!(
            append(&mut log, idempotent(5, 0, -1, 1)).await,
            Err(StorageError::InvalidRecord { .. })
        ));
        let mut transactional = idempotent(5, 0, 0, 1).to_vec();
        transactional[crate::batch::OFFSET_ATTRIBUTES + 1] |= 0x10;
        let crc = crc32c::crc32c(&transactional[crate::batch::OFFSET_ATTRIBUTES..]);
        transactional[crate::batch::OFFSET_CRC..crate::batch::OFFSET_CRC + 4]
            .copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            append(&mut log, Bytes::from(transactional)).await,
            Err(StorageError::InvalidTxnState { producer_id: 5 })
        ));
        assert_eq!(log.log_end_offset(), 0);
        log.close().await.expect("close");
    });
}

#[test]
fn producer_state_survives_a_clean_close_through_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), false).await;
        for sequence in 0..4 {
            append(&mut log, idempotent(8, 2, sequence * 2, 2))
                .await
                .expect("append");
        }
        log.close().await.expect("close");
        assert_eq!(snapshot_files(dir.path()).last(), Some(&8));
        let mut log = open(dir.path(), true).await;
        assert_eq!(log.producers().get(8).expect("restored").last_sequence(), 7);
        let retry = append(&mut log, idempotent(8, 2, 6, 2))
            .await
            .expect("duplicate");
        assert!(retry.duplicate && retry.base_offset == 6);
        let next = append(&mut log, idempotent(8, 2, 8, 1))
            .await
            .expect("append");
        assert_eq!(next.base_offset, 8);
        log.close().await.expect("close");
    });
}

#[test]
fn producer_state_is_rebuilt_from_the_log_after_a_crash_and_from_a_damaged_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), false).await;
        for sequence in 0..12 {
            append(&mut log, idempotent(3, 0, sequence, 1))
                .await
                .expect("append");
            append(&mut log, idempotent(4, 1, sequence, 1))
                .await
                .expect("append");
        }
        assert!(log.segment_count() > 3, "small segments roll");
        let rolled = snapshot_files(dir.path());
        assert_eq!(
            rolled.len(),
            2,
            "only the newest two roll snapshots are kept"
        );
        log.flush().await.expect("flush");
        drop(log); // a crash: no close, no shutdown snapshot

        let mut log = open(dir.path(), false).await;
        assert_eq!(
            log.producers().get(3).expect("replayed").last_sequence(),
            11
        );
        assert!(
            append(&mut log, idempotent(4, 1, 11, 1))
                .await
                .expect("retry")
                .duplicate
        );
        drop(log);

        // Damage the newest snapshot: the older one plus replay gives the same state.
        let newest = *snapshot_files(dir.path()).last().expect("a snapshot");
        std::fs::write(
            crate::producer_snapshots::path(dir.path(), newest),
            b"garbage",
        )
        .expect("damage");
        let mut log = open(dir.path(), false).await;
        assert!(
            !snapshot_files(dir.path()).contains(&newest),
            "damaged snapshot deleted"
        );
        assert_eq!(
            log.producers().get(4).expect("replayed").last_sequence(),
            11
        );
        assert!(
            append(&mut log, idempotent(3, 0, 11, 1))
                .await
                .expect("retry")
                .duplicate
        );
        assert_eq!(
            append(&mut log, idempotent(3, 0, 12, 1))
                .await
                .expect("append")
                .base_offset,
            24
        );

        // Without any snapshot everything is replayed from the log start.
        log.close().await.expect("close");
        for offset in snapshot_files(dir.path()) {
            std::fs::remove_file(crate::producer_snapshots::path(dir.path(), offset))
                .expect("remove");
        }
        let log = open(dir.path(), true).await;
        assert_eq!(
            log.producers().get(3).expect("replayed").last_sequence(),
            12
        );
        assert_eq!(log.producers().len(), 2);
        log.close().await.expect("close");
    });
}

#[test]
fn idle_producers_expire_and_are_not_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), false).await;
        append(&mut log, idempotent(1, 0, 0, 1))
            .await
            .expect("append");
        assert_eq!(log.remove_expired_producers(now_ms()), 0);
        let far_future = now_ms() + PRODUCER_ID_EXPIRATION_MS_DEFAULT + 1;
        assert_eq!(log.remove_expired_producers(far_future), 1);
        // An unknown producer may continue at any sequence (KIP-360).
        append(&mut log, idempotent(1, 0, 40, 1))
            .await
            .expect("accepted");
        log.close().await.expect("close");
        let expiring = LogConfig {
            producer_id_expiration_ms: 0,
            ..config()
        };
        let (log, _) = PartitionLog::open(dir.path().to_path_buf(), expiring, None, None, true)
            .await
            .expect("open");
        assert!(log.producers().is_empty());
        log.close().await.expect("close");
    });
}
