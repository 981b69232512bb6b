//! Tests of log compaction against real files: the course's driver-location table, codecs,
//! tombstones and their delete horizon, the compaction lags, a full offset map, the
//! producer-state rule, keyless produce, and a crash after every step of the swap
//! protocol (reopen, then check content, order, counts and leftover files). Each runs
//! in a small glommio executor.

use std::path::Path;

use bytes::Bytes;

use super::super::tests::run;
use super::*;
use crate::batch::{Compression, SimpleRecord, encode_compressed_batch, set_producer};
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::throttle::IoThrottle;
use crate::cleaner::{build_offset_map, clean_segment, swap};

const NOW_MS: i64 = 1_700_000_000_000;
const DEDUPE_BYTES: u64 = 1 << 20;

fn compacted() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.01,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

fn record(timestamp_ms: i64, key: &str, value: Option<&str>) -> SimpleRecord {
    SimpleRecord {
        timestamp_ms,
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|value| value.as_bytes().to_vec()),
    }
}

fn one(key: &str, value: Option<&str>) -> Bytes {
    Bytes::from(encode_compressed_batch(
        0,
        &[record(NOW_MS, key, value)],
        Compression::None,
    ))
}

async fn open(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config, None, None, clean)
        .await
        .expect("open")
        .0
}

/// (offset, key, value) of every record from the log start, reading batch by batch.
async fn records_of(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let result = log.read(next, 1 << 20, true, i64::MAX).await.expect("read");
        if result.data.is_empty() {
            break;
        }
        for (at, header) in batch::iterate_batches(&result.data) {
            let bytes = &result.data[at..at + header.size_bytes() as usize];
            batch::check_batch_integrity(bytes, 0).expect("every batch read back is valid");
            let section = batch::decompress_records(bytes, 0).expect("decompress");
            batch::walk_record_section(&section, header.records_count(), |view| {
                out.push((
                    header.base_offset() + i64::from(view.offset_delta),
                    String::from_utf8_lossy(view.key.unwrap_or_default()).into_owned(),
                    view.value
                        .map(|value| String::from_utf8_lossy(value).into_owned()),
                ));
                Ok(())
            })
            .expect("walk");
            next = header.last_offset() + 1;
        }
    }
    let offsets: Vec<i64> = out.iter().map(|(offset, _, _)| *offset).collect();
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "offsets strictly increase, no duplicates: {offsets:?}"
    );
    out
}

fn owned(expected: &[(i64, &str, Option<&str>)]) -> Vec<(i64, String, Option<String>)> {
    expected
        .iter()
        .map(|(offset, key, value)| (*offset, key.to_string(), value.map(str::to_owned)))
        .collect()
}

async fn course_table(log: &mut PartitionLog) {
    for (key, value) in [
        ("driver-1", "location-1a"),
        ("driver-1", "location-1b"),
        ("driver-2", "location-2a"),
        ("driver-1", "location-1c"),
        ("driver-2", "location-2b"),
    ] {
        log.append(one(key, Some(value)), NOW_MS, 0)
            .await
            .expect("append");
    }
    log.roll(NOW_MS).await.expect("roll");
}

fn course_result() -> Vec<(i64, String, Option<String>)> {
    owned(&[
        (3, "driver-1", Some("location-1c")),
        (4, "driver-2", Some("location-2b")),
    ])
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|entry| {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.ends_with(suffix).then_some(name)
        })
        .collect()
}

#[test]
fn the_course_table_compacts_to_the_latest_location_of_each_driver() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), compacted(), false).await;
        course_table(&mut log).await;
        let outcome = log
            .clean(
                None,
                NOW_MS,
                DEDUPE_BYTES,
                &mut IoThrottle::new(f64::INFINITY),
            )
            .await
            .expect("clean")
            .expect("the log is dirty");
        assert_eq!(outcome.first_dirty_offset, 5);
        assert_eq!(outcome.dirty_ratio, 1.0);
        assert_eq!(outcome.stats.records_read, 5);
        assert_eq!(outcome.stats.records_retained, 2);
        assert_eq!(outcome.stats.segments_swapped, 1);
        assert!(outcome.stats.bytes_written < outcome.stats.bytes_read);
        assert_eq!(records_of(&log).await, course_result());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 5));
        // Nothing dirty is left: the next round has nothing to do.
        let again = log
            .clean(
                Some(5),
                NOW_MS,
                DEDUPE_BYTES,
                &mut IoThrottle::new(f64::INFINITY),
            )
            .await
            .expect("clean");
        assert_eq!(again, None);
        // Offsets go on from the log end, and the cleaned segment survives a reopen.
        let info = log
            .append(one("driver-3", Some("location-3a")), NOW_MS, 0)
            .await
            .expect("append");
        assert_eq!(info.base_offset, 5);
        log.close().await.expect("close");
        let log = open(dir.path(), compacted(), true).await;
        let mut expected = course_result();
        expected.extend(owned(&[(5, "driver-3", Some("location-3a"))]));
        assert_eq!(records_of(&log).await, expected);
        assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
        assert!(files_with_suffix(dir.path(), ".swap").is_empty());
    });
}

#[test]
fn compressed_batches_keep_their_codec_and_untouched_batches_their_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), compacted(), false).await;
        let mut offset = 0;
        let mut expected = Vec::new();
        for codec in 0..=4u8 {
            let compression = Compression::from_codec(codec).expect("codec");
            let records: Vec<SimpleRecord> = (0..4)
                .map(|index| {
                    record(
                        NOW_MS + index,
                        &format!("key-{}", index % 2),
                        Some(&format!("codec-{codec}-{index}")),
                    )
                })
                .collect();
            let batch = Bytes::from(encode_compressed_batch(0, &records, compression));
            log.append(batch, NOW_MS, 0).await.expect("append");
            offset += 4;
        }
        // A batch whose keys nothing supersedes stays byte for byte.
        let untouched = Bytes::from(encode_compressed_batch(
            0,
            &[record(NOW_MS, "solo", Some("alone"))],
            Compression::Zstd,
        ));
        log.append(untouched.clone(), NOW_MS, 0)
            .await
            .expect("append");
        log.roll(NOW_MS).await.expect("roll");
        let stored = log
            .read(20, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        expected.extend(owned(&[
            (offset - 2, "key-0", Some("codec-4-2")),
            (offset - 1, "key-1", Some("codec-4-3")),
            (offset, "solo", Some("alone")),
        ]));
        log.clean(
            None,
            NOW_MS,
            DEDUPE_BYTES,
            &mut IoThrottle::new(f64::INFINITY),
        )
        .await
        .expect("clean")
        .expect("dirty");
        assert_eq!(records_of(&log).await, expected);
        let data = log
            .read(0, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        let batches: Vec<(i64, i64, u8, i32)> = batch::iterate_batches(&data)
            .map(|(_, header)| {
                (
                    header.base_offset(),
                    header.last_offset(),
                    header.compression_codec(),
                    header.records_count(),
                )
            })
            .collect();
        // Batches 0–3 lost all their records and go; the zstd one (16..=19) keeps two.
        assert_eq!(batches, vec![(16, 19, 4, 2), (20, 20, 4, 1)]);
        let last = batch::iterate_batches(&data).last().expect("a batch").0;
        assert_eq!(
            &data[last..],
            &stored[..],
            "the untouched batch is copied byte for byte"
        );
    });
}

#[test]
fn tombstones_get_a_delete_horizon_then_vanish_once_it_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), compacted(), false).await;
        log.append(one("k1", Some("v1")), NOW_MS, 0)
            .await
            .expect("append");
        log.append(one("k2", Some("v2")), NOW_MS, 0)
            .await
            .expect("append");
        log.append(one("k1", None), NOW_MS, 0)
            .await
            .expect("append");
        log.roll(NOW_MS).await.expect("roll");
        let mut throttle = IoThrottle::new(f64::INFINITY);
        let outcome = log
            .clean(None, NOW_MS, DEDUPE_BYTES, &mut throttle)
            .await
            .expect("clean")
            .expect("dirty");
        assert_eq!(
            records_of(&log).await,
            owned(&[(1, "k2", Some("v2")), (2, "k1", None)])
        );
        let data = log
            .read(2, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        let header = BatchHeader::new(&data).expect("header");
        assert_eq!(header.delete_horizon_ms(), Some(NOW_MS + 1_000));

        // New dirty data before the horizon: the tombstone stays.
        log.append(one("k3", Some("v3")), NOW_MS, 0)
            .await
            .expect("append");
        log.roll(NOW_MS).await.expect("roll");
        let outcome = log
            .clean(
                Some(outcome.first_dirty_offset),
                NOW_MS + 999,
                DEDUPE_BYTES,
                &mut throttle,
            )
            .await
            .expect("clean")
            .expect("dirty");
        assert_eq!(
            records_of(&log).await,
            owned(&[
                (1, "k2", Some("v2")),
                (2, "k1", None),
                (3, "k3", Some("v3"))
            ])
        );
        // After the horizon the next cleaning drops it.
        log.append(one("k4", Some("v4")), NOW_MS, 0)
            .await
            .expect("append");
        log.roll(NOW_MS).await.expect("roll");
        log.clean(
            Some(outcome.first_dirty_offset),
            NOW_MS + 1_000,
            DEDUPE_BYTES,
            &mut throttle,
        )
        .await
        .expect("clean")
        .expect("dirty");
        assert_eq!(
            records_of(&log).await,
            owned(&[
                (1, "k2", Some("v2")),
                (3, "k3", Some("v3")),
                (4, "k4", Some("v4"))
            ])
        );
    });
}

#[test]
fn min_compaction_lag_keeps_young_segments_out_and_max_lag_forces_a_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            ..compacted()
        };
        let mut log = open(dir.path(), config, false).await;
        course_table(&mut log).await;
        let mut throttle = IoThrottle::new(f64::INFINITY);
        let plan = log
            .cleaning_plan(None, NOW_MS + 59_999)
            .await
            .expect("plan");
        assert_eq!(
            (
                plan.first_dirty_offset,
                plan.first_uncleanable_offset,
                plan.dirty_bytes
            ),
            (0, 0, 0)
        );
        assert_eq!(
            log.clean(None, NOW_MS + 59_999, DEDUPE_BYTES, &mut throttle)
                .await
                .expect("clean"),
            None
        );
        assert_eq!(records_of(&log).await.len(), 5);
        log.clean(None, NOW_MS + 60_000, DEDUPE_BYTES, &mut throttle)
            .await
            .expect("clean")
            .expect("old enough");
        assert_eq!(records_of(&log).await, course_result());

        // A dirty ratio below the minimum waits, unless max.compaction.lag.ms is exceeded.
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            min_cleanable_dirty_ratio: 0.99,
            max_compaction_lag_ms: 10_000,
            ..compacted()
        };
        let mut log = open(dir.path(), config, false).await;
        course_table(&mut log).await;
        log.clean(None, NOW_MS, DEDUPE_BYTES, &mut throttle)
            .await
            .expect("clean")
            .expect("the first cleaning sees a ratio of 1");
        log.append(one("driver-1", Some("location-1d")), NOW_MS, 0)
            .await
            .expect("append");
        log.roll(NOW_MS).await.expect("roll");
        let plan = log
            .cleaning_plan(Some(5), NOW_MS + 10_000)
            .await
            .expect("plan");
        assert!(plan.dirty_ratio() < 0.99);
        assert_eq!(plan.compaction_delay_ms, 0);
        assert!(!plan.should_clean(0.99));
        let plan = log
            .cleaning_plan(Some(5), NOW_MS + 10_001)
            .await
            .expect("plan");
        assert_eq!(plan.compaction_delay_ms, 1);
        assert!(plan.should_clean(0.99));
        log.clean(Some(5), NOW_MS + 10_001, DEDUPE_BYTES, &mut throttle)
            .await
            .expect("clean")
            .expect("max lag exceeded");
        assert_eq!(
            records_of(&log).await,
            owned(&[
                (4, "driver-2", Some("location-2b")),
                (5, "driver-1", Some("location-1d"))
            ])
        );
    });
}

#[test]
fn a_full_offset_map_cleans_up_to_where_it_filled_and_the_next_round_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), compacted(), false).await;
        // Two rounds of keys a..h; a map of 5 keys fills in the first round.
        for round in 0..2 {
            for key in ["a", "b", "c", "d", "e", "f", "g", "h"] {
                log.append(one(key, Some(&format!("{key}{round}"))), NOW_MS, 0)
                    .await
                    .expect("append");
            }
        }
        log.roll(NOW_MS).await.expect("roll");
        let budget = 6 * crate::cleaner::offset_map::OFFSET_MAP_ENTRY_BYTES as u64;
        let mut throttle = IoThrottle::new(f64::INFINITY);
        let first = log
            .clean(None, NOW_MS, budget, &mut throttle)
            .await
            .expect("clean")
            .expect("dirty");
        assert_eq!(
            first.first_dirty_offset, 5,
            "five keys fit, the sixth batch did not"
        );
        // Offsets 0–4 were mapped; nothing before them supersedes anything yet.
        assert_eq!(records_of(&log).await.len(), 16);
        let second = log
            .clean(
                Some(first.first_dirty_offset),
                NOW_MS,
                budget,
                &mut throttle,
            )
            .await
            .expect("clean")
            .expect("dirty");
        assert_eq!(second.first_dirty_offset, 10);
        let third = log
            .clean(
                Some(second.first_dirty_offset),
                NOW_MS,
                budget,
                &mut throttle,
            )
            .await
            .expect("clean")
            .expect("dirty");
        assert_eq!(third.first_dirty_offset, 15);
        let fourth = log
            .clean(
                Some(third.first_dirty_offset),
                NOW_MS,
                budget,
                &mut throttle,
            )
            .await
            .expect("clean")
            .expect("dirty");
        assert_eq!(fourth.first_dirty_offset, 16);
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let expected: Vec<(i64, String, Option<String>)> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| (8 + index as i64, key.to_string(), Some(format!("{key}1"))))
            .collect();
        assert_eq!(records_of(&log).await, expected);
    });
}

#[test]
fn the_last_batch_of_an_idempotent_producer_survives_as_an_empty_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), compacted(), false).await;
        // Real time: the producer must not look expired when the log is reopened.
        let now = crate::log::now_ms();
        let mut idempotent = encode_compressed_batch(
            0,
            &[record(now, "k", Some("from-producer"))],
            Compression::None,
        );
        set_producer(&mut idempotent, 42, 3, 0);
        log.append(Bytes::from(idempotent), NOW_MS, 0)
            .await
            .expect("append");
        log.append(one("k", Some("later")), NOW_MS, 0)
            .await
            .expect("append");
        log.append(one("other", Some("x")), NOW_MS, 0)
            .await
            .expect("append");
        log.roll(NOW_MS).await.expect("roll");
        log.clean(
            None,
            NOW_MS,
            DEDUPE_BYTES,
            &mut IoThrottle::new(f64::INFINITY),
        )
        .await
        .expect("clean")
        .expect("dirty");
        assert_eq!(
            records_of(&log).await,
            owned(&[(1, "k", Some("later")), (2, "other", Some("x"))])
        );
        let data = log
            .read(0, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        let header = BatchHeader::new(&data).expect("header");
        assert_eq!(
            (
                header.base_offset(),
                header.records_count(),
                header.producer_id()
            ),
            (0, 0, 42)
        );
        // Replaying the cleaned log (no snapshot) still knows the producer's sequence.
        log.close().await.expect("close");
        for snapshot in files_with_suffix(dir.path(), ".snapshot") {
            std::fs::remove_file(dir.path().join(snapshot)).expect("remove");
        }
        let log = open(dir.path(), compacted(), false).await;
        let entry = log.producers().get(42).expect("producer 42 is known");
        assert_eq!((entry.epoch, entry.last_sequence()), (3, 0));
    });
}

#[test]
fn compacted_logs_refuse_records_without_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut log = open(dir.path(), compacted(), false).await;
        for compression in [Compression::None, Compression::Lz4] {
            let keyless = Bytes::from(encode_compressed_batch(
                0,
                &[
                    record(NOW_MS, "k", Some("v")),
                    SimpleRecord {
                        timestamp_ms: NOW_MS,
                        key: None,
                        value: Some(b"v".to_vec()),
                    },
                ],
                compression,
            ));
            let error = log.append(keyless, NOW_MS, 0).await.expect_err("refused");
            assert!(
                matches!(&error, StorageError::InvalidRecord { reason } if reason.contains("without key")),
                "{error}"
            );
        }
        assert_eq!(log.log_end_offset(), 0);
    });
}

/// Where a crash interrupts the swap of a cleaned segment.
#[derive(Clone, Copy, Debug)]
enum CrashPoint {
    /// `.cleaned` files written and synced (steps 1–2), nothing renamed.
    Cleaned,
    /// Inside step 3: the index files are `.swap`, the log is still `.cleaned`.
    IndexesCommitted,
    /// After step 3: the log is `.swap` too (committed).
    Committed,
    /// Inside step 4: indexes in place, the log still `.swap`.
    IndexesInstalled,
    /// After step 4: everything in place, before the new segment was opened.
    Installed,
}

#[test]
fn a_crash_at_any_step_of_the_swap_loses_nothing_and_duplicates_nothing() {
    for crash in [
        CrashPoint::Cleaned,
        CrashPoint::IndexesCommitted,
        CrashPoint::Committed,
        CrashPoint::IndexesInstalled,
        CrashPoint::Installed,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        run(async {
            let mut log = open(dir.path(), compacted(), false).await;
            course_table(&mut log).await;
            log.append(one("driver-3", Some("location-3a")), NOW_MS, 0)
                .await
                .expect("append to the active segment");
            let before = records_of(&log).await;
            assert_eq!(before.len(), 6);
            let mut throttle = IoThrottle::new(f64::INFINITY);
            let plan = log.cleaning_plan(None, NOW_MS).await.expect("plan");
            let mut map = OffsetMap::with_budget(DEDUPE_BYTES);
            let end = build_offset_map(&plan, &mut map, &mut throttle)
                .await
                .expect("map");
            assert_eq!(end, 5);
            let cleaned = clean_segment(&plan, &plan.segments[0], &map, NOW_MS, &mut throttle)
                .await
                .expect("clean");
            assert!(!cleaned.unchanged);
            let paths = crate::segment::SegmentPaths::new(dir.path(), 0);
            let rename = |path: &Path, from: &str, to: &str| {
                let source = if from.is_empty() {
                    path.to_path_buf()
                } else {
                    swap::suffixed(path, from)
                };
                let target = if to.is_empty() {
                    path.to_path_buf()
                } else {
                    swap::suffixed(path, to)
                };
                std::fs::rename(source, target).expect("rename");
            };
            let indexes = [&paths.index, &paths.time_index];
            match crash {
                CrashPoint::Cleaned => {}
                CrashPoint::IndexesCommitted => {
                    for index in indexes {
                        rename(index, "cleaned", "swap");
                    }
                }
                CrashPoint::Committed => swap::commit(dir.path(), &paths).expect("commit"),
                CrashPoint::IndexesInstalled => {
                    swap::commit(dir.path(), &paths).expect("commit");
                    for index in indexes {
                        rename(index, "swap", "");
                    }
                }
                CrashPoint::Installed => {
                    swap::commit(dir.path(), &paths).expect("commit");
                    swap::install(dir.path(), &paths).expect("install");
                }
            }
            drop(log); // crash: no close, no clean-shutdown marker
            let committed = !matches!(crash, CrashPoint::Cleaned | CrashPoint::IndexesCommitted);
            for clean_shutdown in [false, true] {
                let log = open(dir.path(), compacted(), clean_shutdown).await;
                let mut expected = if committed {
                    course_result()
                } else {
                    before[..5].to_vec()
                };
                expected.extend(owned(&[(5, "driver-3", Some("location-3a"))]));
                assert_eq!(records_of(&log).await, expected, "crash {crash:?}");
                assert_eq!(log.log_end_offset(), 6, "crash {crash:?}");
                // Every offset still reads from the batch that holds it or the next one.
                for offset in 0..6 {
                    let data = log
                        .read(offset, 1 << 20, true, i64::MAX)
                        .await
                        .expect("read")
                        .data;
                    let header = BatchHeader::new(&data).expect("a batch");
                    assert!(
                        header.last_offset() >= offset,
                        "crash {crash:?} offset {offset}"
                    );
                }
                assert!(
                    files_with_suffix(dir.path(), ".cleaned").is_empty(),
                    "crash {crash:?}"
                );
                assert!(
                    files_with_suffix(dir.path(), ".swap").is_empty(),
                    "crash {crash:?}"
                );
                drop(log);
            }
            // A later cleaning (the checkpoint never moved) ends in the same state.
            let mut log = open(dir.path(), compacted(), false).await;
            log.clean(None, NOW_MS, DEDUPE_BYTES, &mut throttle)
                .await
                .expect("clean again");
            let mut expected = course_result();
            expected.extend(owned(&[(5, "driver-3", Some("location-3a"))]));
            assert_eq!(records_of(&log).await, expected, "crash {crash:?}");
        });
    }
}
