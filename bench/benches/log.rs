//! Goal: cost of the log's own work per batch on the produce and fetch paths: an append
//! (validate, stamp offsets, roll check, io_uring write into the page cache, index
//! entries) and the sparse offset-index lookup a fetch starts with. Method: criterion;
//! appends run inside a glommio executor on a real segment in a temp dir (page cache, no
//! fdatasync, as the default `flush.messages` does), index lookups over a full index.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir_storage::batch::{SimpleRecord, encode_batch};
use weir_storage::index::OffsetIndex;
use weir_storage::{LogConfig, PartitionLog};

fn batch_of(records: usize) -> Bytes {
    let records: Vec<SimpleRecord> = (0..records)
        .map(|index| SimpleRecord {
            timestamp_ms: 1_700_000_000_000 + index as i64,
            key: None,
            value: Some(vec![b'x'; 100]),
        })
        .collect();
    Bytes::from(encode_batch(0, &records))
}

/// Appends `iterations` copies of `batch` to a fresh log; the time of the appends only.
fn time_appends(batch: Bytes, iterations: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("perf-0");
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .make()
        .expect("a glommio executor (needs io_uring and 512 KiB of RLIMIT_MEMLOCK)")
        .run(async move {
            let (mut log, _) = PartitionLog::open(path, LogConfig::default(), None, None, false)
                .await
                .expect("open log");
            let started = Instant::now();
            for _ in 0..iterations {
                log.append(batch.clone(), 1_700_000_000_000, 0)
                    .await
                    .expect("append");
            }
            let elapsed = started.elapsed();
            log.close().await.expect("close");
            elapsed
        })
}

fn append(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("log_append");
    for records in [1usize, 16, 160] {
        let batch = batch_of(records);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(records),
            &batch,
            |bencher, batch| {
                bencher.iter_custom(|iterations| time_appends(batch.clone(), iterations))
            },
        );
    }
    group.finish();
}

fn index_lookup(criterion: &mut Criterion) {
    // A full default-size index (10 MiB, 1.3 M entries), one entry per 40 offsets.
    let mut index = OffsetIndex::new(0, 10 << 20);
    let mut offset = 0i64;
    let mut position = 0u32;
    while !index.is_full() {
        index.append(offset, position);
        offset += 40;
        position += 1024;
    }
    let last = offset;
    criterion.bench_function("offset_index_lookup", |bencher| {
        let mut target = 0i64;
        bencher.iter(|| {
            target = (target + 7_919_993) % last;
            index.lookup(target)
        })
    });
}

criterion_group!(benches, append, index_lookup);
criterion_main!(benches);
