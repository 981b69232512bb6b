//! Goal: cost of the produce path's per-batch work (validation incl. CRC32C and the
//! record walk) and of the offset rewrite, per byte. Method: criterion over batches of
//! 100-byte values, the LinkedIn benchmark's record size, at several batch sizes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir_storage::batch::{SimpleRecord, encode_batch, set_base_offset, validate_batches};

fn batch_of(records: usize) -> Vec<u8> {
    let records: Vec<SimpleRecord> = (0..records)
        .map(|index| SimpleRecord {
            timestamp_ms: 1_700_000_000_000 + index as i64,
            key: None,
            value: Some(vec![b'x'; 100]),
        })
        .collect();
    encode_batch(0, &records)
}

fn validation(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("validate_batches");
    for records in [1usize, 16, 160, 1600] {
        let batch = batch_of(records);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(records),
            &batch,
            |bencher, batch| {
                bencher.iter(|| validate_batches(batch, u32::MAX).expect("valid batch"))
            },
        );
    }
    group.finish();
}

fn offset_rewrite(criterion: &mut Criterion) {
    let mut batch = batch_of(160);
    criterion.bench_function("set_base_offset", |bencher| {
        let mut offset = 0i64;
        bencher.iter(|| {
            offset += 160;
            set_base_offset(&mut batch, offset)
        })
    });
}

criterion_group!(benches, validation, offset_rewrite);
criterion_main!(benches);
