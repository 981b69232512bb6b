//! Model-based test of `PartitionLog`.
//!
//! Goal: whatever sequence of appends, rolls, reads, clean restarts and crashes happens,
//! the log holds exactly the acknowledged batches (with `flush_interval_messages = 1`
//! every acknowledged batch is durable), byte for byte, in order, at the offsets the
//! appends returned.
//!
//! Method: proptest generates operation sequences; each runs against a real
//! `PartitionLog` in a temp dir and against an in-memory model (a list of the stored
//! batches). A crash drops the log without closing it and may then (a) append a torn
//! prefix of a never-acknowledged batch to the active `.log`, simulating a write cut
//! short, or (b) cut the active `.log` at a random length, simulating lost sectors; in
//! case (b) the model keeps the batches that still lie wholly inside the cut file. A
//! truncation (a follower's) removes the batch holding the target offset and all after.
//! After every reopen the whole log is read back and compared with the model.

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use weir_storage::batch::{self, SimpleRecord, encode_batch};
use weir_storage::{LogConfig, PartitionLog, segment_file_name};

fn run<F: std::future::Future>(future: F) -> F::Output {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .make()
        .expect("a glommio executor (needs io_uring and 512 KiB of RLIMIT_MEMLOCK)")
        .run(future)
}

#[derive(Clone, Debug)]
enum Crash {
    Plain,
    TornWrite { keep_fraction: f64 },
    CutActiveLog { keep_fraction: f64 },
}

#[derive(Clone, Debug)]
enum Operation {
    /// One produce request: batches of (record count, value bytes).
    Append(Vec<(usize, usize)>),
    Roll,
    Read {
        offset_fraction: f64,
        max_bytes: usize,
        min_one_batch: bool,
        bound_back: i64,
    },
    CloseAndReopen {
        claim_clean: bool,
    },
    Crash(Crash),
    /// A follower's truncation to a fraction of the log end.
    Truncate {
        offset_fraction: f64,
    },
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => prop::collection::vec((1usize..5, 0usize..150), 1..4).prop_map(Operation::Append),
        1 => Just(Operation::Roll),
        3 => (0.0..=1.0f64, 1usize..2000, any::<bool>(), 0i64..4).prop_map(|(offset_fraction, max_bytes, min_one_batch, bound_back)| {
            Operation::Read { offset_fraction, max_bytes, min_one_batch, bound_back }
        }),
        1 => any::<bool>().prop_map(|claim_clean| Operation::CloseAndReopen { claim_clean }),
        1 => (0.0..=1.0f64).prop_map(|offset_fraction| Operation::Truncate { offset_fraction }),
        2 => prop_oneof![
            Just(Crash::Plain),
            (0.0..1.0f64).prop_map(|keep_fraction| Crash::TornWrite { keep_fraction }),
            (0.0..1.0f64).prop_map(|keep_fraction| Crash::CutActiveLog { keep_fraction }),
        ]
        .prop_map(Operation::Crash),
    ]
}

/// A batch as the log stores it.
#[derive(Clone, Debug)]
struct StoredBatch {
    base_offset: i64,
    last_offset: i64,
    bytes: Vec<u8>,
}

fn encode(count: usize, value_bytes: usize, salt: usize) -> Vec<u8> {
    let records: Vec<SimpleRecord> = (0..count)
        .map(|index| SimpleRecord {
            timestamp_ms: 1_000 + (salt * 7 + index) as i64,
            key: Some(format!("k{salt}-{index}").into_bytes()),
            value: Some(vec![(salt % 251) as u8; value_bytes]),
        })
        .collect();
    encode_batch(0, &records)
}

async fn open(
    dir: &Path,
    config: &LogConfig,
    recovery_point: Option<i64>,
    clean: bool,
) -> PartitionLog {
    let (log, _) = PartitionLog::open(
        dir.to_path_buf(),
        config.clone(),
        recovery_point,
        None,
        clean,
    )
    .await
    .expect("open");
    log
}

async fn read_everything(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let data = log
            .read(next, 1 << 20, true, i64::MAX)
            .await
            .expect("read")
            .data;
        assert!(!data.is_empty(), "no data at offset {next}");
        for (_, header) in batch::iterate_batches(&data) {
            next = header.last_offset() + 1;
        }
        out.extend_from_slice(&data);
    }
    out
}

fn check_matches_model(log_bytes: &[u8], model: &[StoredBatch]) {
    let expected: Vec<u8> = model
        .iter()
        .flat_map(|stored| stored.bytes.iter().copied())
        .collect();
    assert_eq!(
        log_bytes.len(),
        expected.len(),
        "log holds {} bytes, model {}",
        log_bytes.len(),
        expected.len()
    );
    assert!(
        log_bytes == expected.as_slice(),
        "log content differs from the model"
    );
}

/// The batches `read` must return: from the batch holding `offset`, within its segment,
/// within `max_bytes` (one batch at least with `min_one_batch`), below `upper_bound`.
fn expected_read(
    model: &[StoredBatch],
    segment_bases: &[i64],
    offset: i64,
    max_bytes: usize,
    min_one_batch: bool,
    upper_bound: i64,
) -> Vec<u8> {
    let Some(first) = model.iter().position(|stored| stored.last_offset >= offset) else {
        return Vec::new();
    };
    let segment_end = segment_bases
        .iter()
        .copied()
        .find(|&base| base > model[first].base_offset)
        .unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for (index, stored) in model[first..].iter().enumerate() {
        if stored.base_offset >= segment_end || stored.last_offset >= upper_bound {
            break;
        }
        if out.len() + stored.bytes.len() > max_bytes && !(index == 0 && min_one_batch) {
            break;
        }
        out.extend_from_slice(&stored.bytes);
    }
    out
}

fn run_case(segment_bytes: u64, index_interval_bytes: u32, operations: Vec<Operation>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes,
        index_interval_bytes,
        flush_interval_messages: 1,
        ..LogConfig::default()
    };
    run(async {
        let mut log = open(dir.path(), &config, None, false).await;
        let mut model: Vec<StoredBatch> = Vec::new();
        for (step, operation) in operations.into_iter().enumerate() {
            match operation {
                Operation::Append(shapes) => {
                    let encoded: Vec<Vec<u8>> = shapes
                        .iter()
                        .map(|&(count, value_bytes)| encode(count, value_bytes, step))
                        .collect();
                    let info = log
                        .append(Bytes::from(encoded.concat()), 5_000, 3)
                        .await
                        .expect("append");
                    assert!(
                        info.flushed,
                        "flush_interval_messages = 1 flushes every append"
                    );
                    let mut next = model.last().map_or(0, |stored| stored.last_offset + 1);
                    assert_eq!(info.base_offset, next);
                    for (mut bytes, (count, _)) in encoded.into_iter().zip(shapes) {
                        batch::set_base_offset(&mut bytes, next);
                        batch::set_partition_leader_epoch(&mut bytes, 3);
                        model.push(StoredBatch {
                            base_offset: next,
                            last_offset: next + count as i64 - 1,
                            bytes,
                        });
                        next += count as i64;
                    }
                    assert_eq!(info.last_offset, next - 1);
                    assert_eq!(log.recovery_point(), next);
                }
                Operation::Roll => log.roll(5_000).await.expect("roll"),
                Operation::Read {
                    offset_fraction,
                    max_bytes,
                    min_one_batch,
                    bound_back,
                } => {
                    let end = log.log_end_offset();
                    let offset = (end as f64 * offset_fraction) as i64;
                    let upper_bound = end - bound_back;
                    let result = log
                        .read(offset, max_bytes, min_one_batch, upper_bound)
                        .await
                        .expect("read");
                    let expected = expected_read(
                        &model,
                        &log.segment_base_offsets(),
                        offset,
                        max_bytes,
                        min_one_batch,
                        upper_bound,
                    );
                    let expected = if offset >= upper_bound {
                        Vec::new()
                    } else {
                        expected
                    };
                    assert!(
                        result.data.as_ref() == expected.as_slice(),
                        "read({offset}, {max_bytes}, {min_one_batch}, {upper_bound}) differs"
                    );
                }
                Operation::Truncate { offset_fraction } => {
                    let target = (log.log_end_offset() as f64 * offset_fraction) as i64;
                    let new_end = log.truncate_to(target).await.expect("truncate");
                    model.retain(|stored| stored.last_offset < target);
                    assert_eq!(
                        new_end,
                        model.last().map_or(0, |stored| stored.last_offset + 1)
                    );
                    check_matches_model(&read_everything(&log).await, &model);
                }
                Operation::CloseAndReopen { claim_clean } => {
                    log.close().await.expect("close");
                    log = open(dir.path(), &config, None, claim_clean).await;
                    check_matches_model(&read_everything(&log).await, &model);
                }
                Operation::Crash(crash) => {
                    let recovery_point = log.recovery_point();
                    let active_base = *log.segment_base_offsets().last().expect("segments");
                    let active_path = dir.path().join(segment_file_name(active_base, "log"));
                    drop(log);
                    match crash {
                        Crash::Plain => {}
                        Crash::TornWrite { keep_fraction } => {
                            let mut torn = encode(3, 60, step);
                            batch::set_base_offset(
                                &mut torn,
                                model.last().map_or(0, |stored| stored.last_offset + 1),
                            );
                            torn.truncate(((torn.len() as f64 * keep_fraction) as usize).max(1));
                            let mut bytes = std::fs::read(&active_path).expect("read active log");
                            bytes.extend_from_slice(&torn);
                            std::fs::write(&active_path, bytes).expect("write torn tail");
                        }
                        Crash::CutActiveLog { keep_fraction } => {
                            let length = std::fs::metadata(&active_path).expect("stat").len();
                            let keep = (length as f64 * keep_fraction) as u64;
                            let file = std::fs::OpenOptions::new()
                                .write(true)
                                .open(&active_path)
                                .expect("open");
                            file.set_len(keep).expect("cut");
                            let mut position = 0u64;
                            model.retain(|stored| {
                                if stored.base_offset < active_base {
                                    return true;
                                }
                                position += stored.bytes.len() as u64;
                                position <= keep
                            });
                        }
                    }
                    // The engine passes the last checkpointed recovery point (or none).
                    let recovery_point = if step % 2 == 0 {
                        Some(recovery_point.min(active_base))
                    } else {
                        None
                    };
                    log = open(dir.path(), &config, recovery_point, false).await;
                    check_matches_model(&read_everything(&log).await, &model);
                }
            }
            assert_eq!(
                log.log_end_offset(),
                model.last().map_or(0, |stored| stored.last_offset + 1),
                "after step {step}"
            );
        }
        log.close().await.expect("close");
        let log = open(dir.path(), &config, None, true).await;
        check_matches_model(&read_everything(&log).await, &model);
        log.close().await.expect("close");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_through_rolls_restarts_crashes_and_truncations(
        segment_bytes in 300u64..3000,
        index_interval_bytes in 50u32..1000,
        operations in prop::collection::vec(operation(), 1..40),
    ) {
        run_case(segment_bytes, index_interval_bytes, operations);
    }
}
