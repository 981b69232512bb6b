//! Rewriting one record batch for the cleaner: Kafka's `MemoryRecords.filterTo` with
//! the cleaner's record filter. No I/O: a batch in, a decision (and new bytes) out.
//!
//! Per record (Kafka's `Cleaner.shouldRetainRecord`):
//! * beyond the offset map's latest offset (the map filled up before it): kept;
//! * with a key: kept iff its offset is ≥ the map's offset for the key (or the key is
//!   not in the map), and it has a value or its batch's delete horizon has not passed
//!   (`now < horizon`; no horizon yet counts as not passed);
//! * without a key: kept. Kafka drops these as invalid; weir refuses them at produce on
//!   compacted topics, so the only keyless records are from before the topic became
//!   compacted, and the cleaner never drops what it cannot key.
//!
//! Per batch:
//! * control batches are copied as they are (no transactions yet);
//! * all records kept and no delete horizon to set: the original bytes, untouched;
//! * some kept, or tombstones kept in a batch without a horizon (KIP-534): a new batch
//!   with the same baseOffset, lastOffsetDelta, producer fields, leader epoch, timestamp
//!   type and codec, the kept records with their own offset deltas and timestamps
//!   (deltas recomputed against the new baseTimestamp, which is the delete horizon
//!   `now + delete.retention.ms` when one is set), CRC recomputed;
//! * none kept: dropped, unless it is the last batch of a producer the producer state
//!   knows or the last batch of the cleaning round; then Kafka's empty batch (header
//!   only, no records) keeps its offsets, producer id, epoch and sequence.

use std::collections::HashMap;

use super::offset_map::OffsetMap;
use crate::batch::{
    ATTRIBUTE_COMPRESSION_MASK, ATTRIBUTE_CONTROL, ATTRIBUTE_DELETE_HORIZON,
    ATTRIBUTE_LOG_APPEND_TIME, ATTRIBUTE_TRANSACTIONAL, BatchHeader, Compression, HEADER_BYTES,
    OFFSET_ATTRIBUTES, OFFSET_BASE_TIMESTAMP, OFFSET_MAX_TIMESTAMP, OFFSET_RECORDS_COUNT,
    RecordView, compress, decompress_records, put_nullable, put_varint, put_varlong, seal,
    walk_record_section,
};
use crate::error::StorageError;
use crate::producer_state::NO_PRODUCER_ID;

/// What decides which records of a batch survive.
pub struct FilterRules<'a> {
    pub map: &'a OffsetMap,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Last data offset of every producer the producer state knows.
    pub producer_last_offsets: &'a HashMap<i64, i64>,
    /// One past the last offset of the cleaning round (Kafka's
    /// upperBoundOffsetOfCleaningRound): the batch ending just below it is kept, if
    /// need be empty, so the cleaned range keeps its last offset.
    pub round_end_offset: i64,
}

/// The fate of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Copy the original bytes.
    Unchanged,
    /// Write these bytes instead (a whole, sealed batch).
    Rewritten(Vec<u8>),
    /// Write nothing.
    Removed,
}

/// Record counts of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterCounts {
    pub records_read: u64,
    pub records_retained: u64,
}

/// Filters one whole batch (`batch` is exactly the batch; `position` its place in the
/// segment, for error messages).
pub fn filter_batch(
    batch: &[u8],
    position: u64,
    rules: &FilterRules<'_>,
) -> Result<(Filtered, FilterCounts), StorageError> {
    let header = BatchHeader::new(batch).expect("the caller hands over whole batches");
    if header.is_control() {
        let count = header.records_count().max(0) as u64;
        return Ok((
            Filtered::Unchanged,
            FilterCounts {
                records_read: count,
                records_retained: count,
            },
        ));
    }
    let section = decompress_records(batch, position)?;
    let base_offset = header.base_offset();
    let horizon = header.delete_horizon_ms();
    let deletes_expired = horizon.is_some_and(|horizon| rules.now_ms >= horizon);
    let mut retained: Vec<RecordView<'_>> = Vec::new();
    let mut records_read = 0u64;
    let mut contains_tombstones = false;
    walk_record_section(&section, header.records_count(), |record| {
        records_read += 1;
        let offset = base_offset + i64::from(record.offset_delta);
        let keep = if offset > rules.map.latest_offset() {
            true
        } else if let Some(key) = record.key {
            let latest = rules.map.get(key).is_none_or(|latest| offset >= latest);
            latest && (record.value.is_some() || !deletes_expired)
        } else {
            true
        };
        if keep {
            contains_tombstones |= record.value.is_none();
            retained.push(record);
        }
        Ok(())
    })
    .map_err(|reason| StorageError::corrupt(position, reason))?;
    let counts = FilterCounts {
        records_read,
        records_retained: retained.len() as u64,
    };
    let set_horizon = contains_tombstones && horizon.is_none();
    if retained.len() as u64 == records_read && !set_horizon {
        return Ok((Filtered::Unchanged, counts));
    }
    if !retained.is_empty() {
        let horizon = if set_horizon {
            Some(rules.now_ms.saturating_add(rules.delete_retention_ms))
        } else {
            horizon
        };
        return Ok((
            Filtered::Rewritten(rebuild(batch, &header, &retained, horizon)),
            counts,
        ));
    }
    let producer_id = header.producer_id();
    let last_of_producer = producer_id != NO_PRODUCER_ID
        && rules.producer_last_offsets.get(&producer_id) == Some(&header.last_offset());
    if last_of_producer || header.last_offset() + 1 == rules.round_end_offset {
        return Ok((Filtered::Rewritten(empty_batch(batch, &header)), counts));
    }
    Ok((Filtered::Removed, counts))
}

/// A batch holding only `retained` (records of `original`, in order).
fn rebuild(
    original: &[u8],
    header: &BatchHeader<'_>,
    retained: &[RecordView<'_>],
    horizon: Option<i64>,
) -> Vec<u8> {
    let original_base = header.base_timestamp();
    let timestamp = |record: &RecordView<'_>| original_base.saturating_add(record.timestamp_delta);
    let base_timestamp = horizon.unwrap_or_else(|| timestamp(&retained[0]));
    let max_timestamp = if header.is_log_append_time() {
        header.max_timestamp()
    } else {
        retained.iter().map(timestamp).max().expect("non-empty")
    };
    let mut section = Vec::with_capacity(original.len());
    let mut body = Vec::new();
    for record in retained {
        body.clear();
        body.push(0); // record attributes: unused in magic 2
        put_varlong(&mut body, timestamp(record) - base_timestamp);
        put_varint(&mut body, record.offset_delta);
        put_nullable(&mut body, record.key);
        put_nullable(&mut body, record.value);
        put_varint(&mut body, record.headers_count);
        body.extend_from_slice(record.headers_bytes);
        put_varint(
            &mut section,
            i32::try_from(body.len()).expect("a record below 2 GiB"),
        );
        section.extend_from_slice(&body);
    }
    let codec = header.compression_codec();
    let compression = Compression::from_codec(codec).expect("decompressed, so the codec is known");
    let section = if compression == Compression::None {
        section
    } else {
        compress(compression, &section)
    };
    let mut attributes = header.attributes();
    if horizon.is_some() {
        attributes |= ATTRIBUTE_DELETE_HORIZON;
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + section.len());
    out.extend_from_slice(&original[..HEADER_BYTES]);
    out.extend_from_slice(&section);
    out[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[OFFSET_BASE_TIMESTAMP..OFFSET_BASE_TIMESTAMP + 8]
        .copy_from_slice(&base_timestamp.to_be_bytes());
    out[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let count = i32::try_from(retained.len()).expect("fewer records than the original");
    out[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    seal(&mut out);
    out
}

/// Kafka's `DefaultRecordBatch.writeEmptyHeader`: the original header with no records,
/// no compression, baseTimestamp = maxTimestamp and no delete horizon.
fn empty_batch(original: &[u8], header: &BatchHeader<'_>) -> Vec<u8> {
    let kept = ATTRIBUTE_LOG_APPEND_TIME | ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL;
    let attributes = header.attributes() & kept & !ATTRIBUTE_COMPRESSION_MASK;
    let mut out = original[..HEADER_BYTES].to_vec();
    out[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[OFFSET_BASE_TIMESTAMP..OFFSET_BASE_TIMESTAMP + 8]
        .copy_from_slice(&header.max_timestamp().to_be_bytes());
    out[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&0i32.to_be_bytes());
    seal(&mut out);
    out
}

#[cfg(test)]
mod tests {
    //! Goal: each rule of the module doc on hand-built batches, checking the kept
    //! records' offsets, keys, values and absolute timestamps, and the header fields.
    use super::*;
    use crate::batch::{
        SimpleRecord, check_batch_integrity, encode_batch, encode_compressed_batch, set_producer,
    };

    fn record(timestamp_ms: i64, key: &str, value: Option<&str>) -> SimpleRecord {
        SimpleRecord {
            timestamp_ms,
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|value| value.as_bytes().to_vec()),
        }
    }

    /// (offset, timestamp, key, value) of every record of a batch.
    fn contents(batch: &[u8]) -> Vec<(i64, i64, String, Option<String>)> {
        check_batch_integrity(batch, 0).expect("a valid batch");
        let header = BatchHeader::new(batch).expect("header");
        let section = decompress_records(batch, 0).expect("decompress");
        let mut out = Vec::new();
        walk_record_section(&section, header.records_count(), |view| {
            out.push((
                header.base_offset() + i64::from(view.offset_delta),
                header.base_timestamp() + view.timestamp_delta,
                String::from_utf8(view.key.expect("key").to_vec()).expect("utf8"),
                view.value
                    .map(|value| String::from_utf8(value.to_vec()).expect("utf8")),
            ));
            Ok(())
        })
        .expect("walk");
        out
    }

    fn rules<'a>(
        map: &'a OffsetMap,
        producers: &'a HashMap<i64, i64>,
        now_ms: i64,
    ) -> FilterRules<'a> {
        FilterRules {
            map,
            now_ms,
            delete_retention_ms: 1_000,
            producer_last_offsets: producers,
            round_end_offset: i64::MAX,
        }
    }

    #[test]
    fn superseded_records_go_and_the_rest_keep_offsets_timestamps_and_codec() {
        let records = [
            record(100, "driver-1", Some("location-1a")),
            record(90, "driver-2", Some("location-2a")),
            record(120, "driver-1", Some("location-1b")),
        ];
        let mut map = OffsetMap::with_budget(1 << 20);
        map.put(b"driver-2", 11);
        map.put(b"driver-1", 12);
        let producers = HashMap::new();
        for codec in 0..=4 {
            let compression = Compression::from_codec(codec).expect("codec");
            let batch = encode_compressed_batch(10, &records, compression);
            let (filtered, counts) =
                filter_batch(&batch, 0, &rules(&map, &producers, 0)).expect("filter");
            let Filtered::Rewritten(bytes) = filtered else {
                panic!("codec {codec}: expected a rewrite, got {filtered:?}");
            };
            assert_eq!(
                counts,
                FilterCounts {
                    records_read: 3,
                    records_retained: 2
                }
            );
            let header = BatchHeader::new(&bytes).expect("header");
            assert_eq!(header.compression_codec(), codec);
            assert_eq!(header.base_offset(), 10);
            assert_eq!(header.last_offset(), 12, "lastOffsetDelta is kept");
            assert_eq!(header.records_count(), 2);
            assert_eq!(header.max_timestamp(), 120);
            assert_eq!(header.delete_horizon_ms(), None);
            assert_eq!(
                contents(&bytes),
                vec![
                    (11, 90, "driver-2".into(), Some("location-2a".into())),
                    (12, 120, "driver-1".into(), Some("location-1b".into())),
                ]
            );
        }
    }

    #[test]
    fn a_batch_with_nothing_to_drop_is_left_byte_for_byte() {
        let batch = encode_batch(5, &[record(1, "a", Some("x")), record(2, "b", Some("y"))]);
        let mut map = OffsetMap::with_budget(1 << 20);
        map.put(b"a", 5);
        map.put(b"b", 6);
        let producers = HashMap::new();
        let (filtered, _) = filter_batch(&batch, 0, &rules(&map, &producers, 0)).expect("filter");
        assert_eq!(filtered, Filtered::Unchanged);
    }

    #[test]
    fn tombstones_get_a_delete_horizon_first_and_go_once_it_passed() {
        let batch = encode_batch(
            0,
            &[record(500, "gone", None), record(700, "kept", Some("v"))],
        );
        let mut map = OffsetMap::with_budget(1 << 20);
        map.put(b"gone", 0);
        map.put(b"kept", 1);
        let producers = HashMap::new();
        let (filtered, _) =
            filter_batch(&batch, 0, &rules(&map, &producers, 10_000)).expect("filter");
        let Filtered::Rewritten(stamped) = filtered else {
            panic!("a tombstone without a horizon is rewritten: {filtered:?}");
        };
        let header = BatchHeader::new(&stamped).expect("header");
        assert_eq!(header.delete_horizon_ms(), Some(11_000));
        assert_eq!(header.base_timestamp(), 11_000);
        assert_eq!(header.max_timestamp(), 700);
        assert_eq!(
            contents(&stamped),
            vec![
                (0, 500, "gone".into(), None),
                (1, 700, "kept".into(), Some("v".into())),
            ]
        );
        // Before the horizon: nothing to change.
        let (filtered, _) =
            filter_batch(&stamped, 0, &rules(&map, &producers, 10_999)).expect("filter");
        assert_eq!(filtered, Filtered::Unchanged);
        // At the horizon the tombstone goes; the horizon stays on the batch.
        let (filtered, counts) =
            filter_batch(&stamped, 0, &rules(&map, &producers, 11_000)).expect("filter");
        let Filtered::Rewritten(cleaned) = filtered else {
            panic!("expected a rewrite, got {filtered:?}");
        };
        assert_eq!(counts.records_retained, 1);
        assert_eq!(
            contents(&cleaned),
            vec![(1, 700, "kept".into(), Some("v".into()))]
        );
        let header = BatchHeader::new(&cleaned).expect("header");
        assert_eq!(header.delete_horizon_ms(), Some(11_000));
        assert_eq!(header.last_offset(), 1);
    }

    #[test]
    fn an_emptied_batch_stays_as_a_header_only_for_its_producers_last_batch() {
        let mut batch = encode_batch(
            3,
            &[record(40, "k", Some("old")), record(50, "k", Some("old2"))],
        );
        set_producer(&mut batch, 77, 2, 9);
        let mut map = OffsetMap::with_budget(1 << 20);
        map.put(b"k", 20);
        let mut producers = HashMap::new();
        let (filtered, _) = filter_batch(&batch, 0, &rules(&map, &producers, 0)).expect("filter");
        assert_eq!(filtered, Filtered::Removed);

        producers.insert(77, 4);
        let (filtered, counts) =
            filter_batch(&batch, 0, &rules(&map, &producers, 0)).expect("filter");
        assert_eq!(counts.records_retained, 0);
        let Filtered::Rewritten(empty) = filtered else {
            panic!("expected an empty batch, got {filtered:?}");
        };
        check_batch_integrity(&empty, 0).expect("valid");
        assert_eq!(empty.len(), HEADER_BYTES);
        let header = BatchHeader::new(&empty).expect("header");
        assert_eq!((header.base_offset(), header.last_offset()), (3, 4));
        assert_eq!(header.records_count(), 0);
        assert_eq!(
            (
                header.producer_id(),
                header.producer_epoch(),
                header.base_sequence()
            ),
            (77, 2, 9)
        );
        assert_eq!((header.base_timestamp(), header.max_timestamp()), (50, 50));

        // The last batch of the cleaning round is kept too, whoever wrote it.
        let producers = HashMap::new();
        let round_end = FilterRules {
            round_end_offset: 5,
            ..rules(&map, &producers, 0)
        };
        let (filtered, _) = filter_batch(&batch, 0, &round_end).expect("filter");
        assert!(matches!(filtered, Filtered::Rewritten(bytes) if bytes.len() == HEADER_BYTES));
    }

    #[test]
    fn records_past_the_maps_end_and_keyless_records_are_kept() {
        let batch = encode_batch(
            0,
            &[
                record(1, "k", Some("a")),
                SimpleRecord {
                    timestamp_ms: 2,
                    key: None,
                    value: Some(b"no key".to_vec()),
                },
                record(3, "k", Some("b")),
            ],
        );
        let mut map = OffsetMap::with_budget(1 << 20);
        map.put(b"k", 0);
        map.update_latest_offset(1);
        let producers = HashMap::new();
        let (filtered, counts) =
            filter_batch(&batch, 0, &rules(&map, &producers, 0)).expect("filter");
        assert_eq!(filtered, Filtered::Unchanged);
        assert_eq!(counts.records_retained, 3);
    }
}
