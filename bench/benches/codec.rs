//! Goal: cost of the request path's codec work per request: decoding a Produce request
//! (header + body through weir-net and kafka-protocol) and encoding a Fetch response that
//! carries record batches. Method: criterion over requests/responses holding 1, 16 and
//! 160 batches of 16 × 100-byte records (the LinkedIn record size), throughput in bytes.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use weir_net::{decode_request, encode_response};
use weir_storage::batch::{SimpleRecord, encode_batch};

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

/// `batches` record batches of 16 records back to back, as a partition's records field.
fn records(batches: usize) -> Bytes {
    let mut out = Vec::new();
    for index in 0..batches {
        let records: Vec<SimpleRecord> = (0..16)
            .map(|record| SimpleRecord {
                timestamp_ms: 1_700_000_000_000 + record,
                key: None,
                value: Some(vec![b'x'; 100]),
            })
            .collect();
        out.extend_from_slice(&encode_batch(index as i64 * 16, &records));
    }
    Bytes::from(out)
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str("perf"))
}

/// A whole Produce request frame (header + body, no size prefix).
fn produce_frame(batches: usize) -> Bytes {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records(batches))),
                ]),
        ]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut frame = BytesMut::new();
    header
        .encode(
            &mut frame,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .expect("header encodes");
    request
        .encode(&mut frame, PRODUCE_VERSION)
        .expect("request encodes");
    frame.freeze()
}

fn produce_decode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("produce_request_decode");
    for batches in [1usize, 16, 160] {
        let frame = produce_frame(batches);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(batches),
            &frame,
            |bencher, frame| {
                bencher.iter(|| {
                    decode_request::<ProduceRequest>(
                        frame.clone(),
                        ApiKey::Produce,
                        PRODUCE_VERSION,
                        "ProduceRequest",
                    )
                    .expect("decodes")
                })
            },
        );
    }
    group.finish();
}

fn fetch_encode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("fetch_response_encode");
    for batches in [1usize, 16, 160] {
        let data = records(batches);
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(topic_name())
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_high_watermark(batches as i64 * 16)
                        .with_records(Some(data.clone())),
                ]),
        ]);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(batches),
            &response,
            |bencher, response| {
                bencher.iter(|| {
                    encode_response(9, FETCH_VERSION, response, "FetchResponse").expect("encodes")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, produce_decode, fetch_encode);
criterion_main!(benches);
