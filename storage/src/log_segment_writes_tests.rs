//! Appends through io_uring and through `pwrite` (`SegmentWrites`) against real files.

use std::path::Path;

use bytes::Bytes;

use super::tests::{batch, open, read_all, records, run, small_config};
use super::*;
use crate::batch::encode_batch;

/// Every file of `dir`: name → bytes.
fn files_of(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect()
}

/// The same appends through io_uring and through `pwrite`: leader appends of one and of
/// several batches (offsets and epochs stamped), LogAppendTime, an idempotent batch,
/// follower appends taken as they are, over several segments. Goal: both modes leave
/// byte-identical files, and a log written with `pwrite` reads back and recovers whole.
#[test]
fn segment_writes_through_io_uring_and_pwrite_leave_identical_files() {
    use crate::segment::SegmentWrites;
    let stamped = |count: usize, timestamp_ms: i64| {
        let mut bytes = encode_batch(0, &records(count, timestamp_ms, 100));
        batch::set_producer(&mut bytes, 7, 0, 0);
        Bytes::from(bytes)
    };
    let write = |writes: SegmentWrites, append_time: bool| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_writes: writes,
            log_append_time: append_time,
            ..small_config()
        };
        let (mut log, _) = open(dir.path(), config.clone(), true).await;
        for round in 0..6i64 {
            log.append(batch(2, 1000 + round), 5000 + round, 3)
                .await
                .expect("append one");
            let several = [batch(1, 2000), batch(3, 2100), batch(2, 2200)].concat();
            log.append(Bytes::from(several), 6000 + round, 4)
                .await
                .expect("append several");
        }
        log.append(stamped(3, 3000), 7000, 4)
            .await
            .expect("idempotent");
        // Follower appends: batches as the leader wrote them, offsets past the end.
        let mut next = log.log_end_offset() + 2;
        for epoch in [5, 6] {
            let mut bytes = encode_batch(next, &records(4, 4000, 50));
            batch::set_partition_leader_epoch(&mut bytes, epoch);
            next += 4;
            log.append_as_follower(Bytes::from(bytes), 8000)
                .await
                .expect("follower append");
        }
        let offsets = read_all(&log, 0).await;
        log.close().await.expect("close");
        (dir, offsets)
    };
    run(async {
        for append_time in [false, true] {
            let (uring_dir, uring_offsets) = write(SegmentWrites::IoUring, append_time).await;
            let (pwrite_dir, pwrite_offsets) = write(SegmentWrites::Pwrite, append_time).await;
            assert_eq!(uring_offsets, pwrite_offsets);
            assert_eq!(uring_offsets.len(), 6 * 4 + 1 + 2);
            let (uring_files, pwrite_files) =
                (files_of(uring_dir.path()), files_of(pwrite_dir.path()));
            assert!(
                uring_files
                    .keys()
                    .filter(|name| name.ends_with(".log"))
                    .count()
                    > 3,
                "{:?}",
                uring_files.keys()
            );
            assert_eq!(
                uring_files.keys().collect::<Vec<_>>(),
                pwrite_files.keys().collect::<Vec<_>>()
            );
            for (name, bytes) in &uring_files {
                assert!(bytes == &pwrite_files[name], "{name} differs");
            }
            // Recovery (an unclean open) of the pwrite log finds every batch whole.
            let config = LogConfig {
                segment_writes: SegmentWrites::Pwrite,
                ..small_config()
            };
            let (log, report) = open(pwrite_dir.path(), config, false).await;
            assert!(report.truncated.is_empty(), "{report:?}");
            assert_eq!(read_all(&log, 0).await, uring_offsets);
            log.close().await.expect("close");
        }
    });
}
