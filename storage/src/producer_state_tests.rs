//! Goal: the producer state table decides exactly as Kafka's `ProducerStateManager`
//! for client appends, and its snapshots are Kafka's bytes. Method: drive the sans-IO
//! table through scripted producer histories and check each verdict; round-trip and
//! damage snapshots byte by byte.

use super::*;

fn batch(producer_id: i64, epoch: i16, first_sequence: i32, records: i32) -> ProducerBatch {
    ProducerBatch {
        producer_id,
        epoch,
        first_sequence,
        offset_delta: records - 1,
        max_timestamp: 1_000,
    }
}

/// Checks, then applies at `next_offset`, returning the new next offset.
fn write(table: &mut ProducerStateTable, batch: ProducerBatch, next_offset: i64) -> i64 {
    assert_eq!(table.check(&batch), Ok(SequenceCheck::Append));
    let last_offset = next_offset + i64::from(batch.offset_delta);
    table.apply(&batch, last_offset);
    last_offset + 1
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence() {
    let table = ProducerStateTable::default();
    assert_eq!(table.check(&batch(7, 0, 0, 3)), Ok(SequenceCheck::Append));
    // KIP-360: state lost to expiry or retention is not an error.
    assert_eq!(
        table.check(&batch(7, 3, 4_711, 3)),
        Ok(SequenceCheck::Append)
    );
}

#[test]
fn consecutive_batches_are_accepted_and_a_gap_is_out_of_order() {
    let mut table = ProducerStateTable::default();
    let next = write(&mut table, batch(7, 0, 0, 3), 0);
    let next = write(&mut table, batch(7, 0, 3, 2), next);
    assert_eq!(next, 5);
    assert_eq!(table.get(7).expect("known").last_sequence(), 4);
    assert_eq!(
        table.check(&batch(7, 0, 6, 1)),
        Err(ProducerStateError::OutOfOrderSequence {
            producer_id: 7,
            epoch: 0,
            first_sequence: 6,
            expected: 5,
        })
    );
}

#[test]
fn a_retried_batch_is_a_duplicate_with_its_original_offsets() {
    let mut table = ProducerStateTable::default();
    let next = write(&mut table, batch(7, 0, 0, 3), 100);
    write(&mut table, batch(7, 0, 3, 2), next);
    let Ok(SequenceCheck::Duplicate(original)) = table.check(&batch(7, 0, 0, 3)) else {
        panic!("the first batch is cached");
    };
    assert_eq!((original.first_offset(), original.last_offset), (100, 102));
    assert_eq!((original.first_sequence(), original.last_sequence), (0, 2));
    // Same start, different length: not the same batch, and not in sequence either.
    assert!(matches!(
        table.check(&batch(7, 0, 0, 4)),
        Err(ProducerStateError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut table = ProducerStateTable::default();
    let mut next = 0;
    for sequence in 0..6 {
        next = write(&mut table, batch(7, 0, sequence, 1), next);
    }
    assert_eq!(
        table.get(7).expect("known").batches.len(),
        BATCHES_RETAINED_PER_PRODUCER
    );
    assert!(matches!(
        table.check(&batch(7, 0, 0, 1)),
        Err(ProducerStateError::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        table.check(&batch(7, 0, 1, 1)),
        Ok(SequenceCheck::Duplicate(metadata)) if metadata.last_offset == 1
    ));
}

#[test]
fn an_older_epoch_is_refused_and_a_newer_one_must_restart_at_zero() {
    let mut table = ProducerStateTable::default();
    let next = write(&mut table, batch(7, 2, 0, 3), 0);
    assert_eq!(
        table.check(&batch(7, 1, 3, 1)),
        Err(ProducerStateError::StaleEpoch {
            producer_id: 7,
            epoch: 1,
            current_epoch: 2,
        })
    );
    assert_eq!(
        table.check(&batch(7, 3, 3, 1)),
        Err(ProducerStateError::OutOfOrderSequence {
            producer_id: 7,
            epoch: 3,
            first_sequence: 3,
            expected: 0,
        })
    );
    // A bumped epoch (KIP-360) starts over at 0 and forgets the old batches.
    write(&mut table, batch(7, 3, 0, 1), next);
    let entry = table.get(7).expect("known");
    assert_eq!((entry.epoch, entry.batches.len()), (3, 1));
    assert_eq!(
        table.check(&batch(7, 2, 0, 3)),
        Err(ProducerStateError::StaleEpoch {
            producer_id: 7,
            epoch: 2,
            current_epoch: 3,
        })
    );
}

#[test]
fn sequences_wrap_from_int_max_to_zero() {
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
    let mut table = ProducerStateTable::default();
    let next = write(&mut table, batch(7, 0, i32::MAX - 1, 2), 0);
    assert_eq!(table.get(7).expect("known").last_sequence(), i32::MAX);
    let wrapped = batch(7, 0, i32::MAX, 3); // last sequence 1
    assert!(matches!(
        table.check(&wrapped),
        Err(ProducerStateError::OutOfOrderSequence { expected: 0, .. })
    ));
    write(&mut table, batch(7, 0, 0, 2), next);
    assert!(matches!(
        table.check(&batch(7, 0, i32::MAX - 1, 2)),
        Ok(SequenceCheck::Duplicate(_))
    ));
}

#[test]
fn producers_expire_after_the_expiration_time_since_their_last_batch() {
    let mut table = ProducerStateTable::default();
    write(&mut table, batch(1, 0, 0, 1), 0);
    let mut late = batch(2, 0, 0, 1);
    late.max_timestamp = 5_000;
    write(&mut table, late, 1);
    assert_eq!(table.remove_expired(5_999, 5_000), 0);
    assert_eq!(table.remove_expired(6_000, 5_000), 1);
    assert!(table.get(1).is_none() && table.get(2).is_some());
}

#[test]
fn snapshots_round_trip_the_last_batch_of_each_producer() {
    let mut table = ProducerStateTable::default();
    let next = write(&mut table, batch(9, 1, 0, 3), 0);
    let next = write(&mut table, batch(9, 1, 3, 2), next);
    write(&mut table, batch(4, 0, 10, 1), next);
    let bytes = table.encode_snapshot();
    assert_eq!(bytes.len(), 10 + 2 * 46);
    let loaded = ProducerStateTable::decode_snapshot(&bytes, 1_000, 60_000).expect("valid");
    let nine = loaded.get(9).expect("kept");
    assert_eq!(nine.epoch, 1);
    assert_eq!(
        nine.batches.iter().copied().collect::<Vec<_>>(),
        vec![BatchMetadata {
            last_sequence: 4,
            last_offset: 4,
            offset_delta: 1,
            timestamp: 1_000,
        }]
    );
    // The restored last batch is still recognised as a duplicate, and sequences continue.
    assert!(matches!(
        loaded.check(&batch(9, 1, 3, 2)),
        Ok(SequenceCheck::Duplicate(metadata)) if metadata.first_offset() == 3
    ));
    assert_eq!(loaded.check(&batch(9, 1, 5, 1)), Ok(SequenceCheck::Append));
    assert_eq!(loaded.get(4).expect("kept").last_sequence(), 10);
    // Expired producers are not loaded.
    let expired = ProducerStateTable::decode_snapshot(&bytes, 61_000, 60_000).expect("valid");
    assert!(expired.is_empty());
}

#[test]
fn snapshot_bytes_follow_kafkas_layout() {
    let mut table = ProducerStateTable::default();
    write(&mut table, batch(0x0102, 3, 7, 2), 40);
    let bytes = table.encode_snapshot();
    let mut expected = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    expected.extend_from_slice(&0x0102i64.to_be_bytes()); // producer id
    expected.extend_from_slice(&3i16.to_be_bytes()); // epoch
    expected.extend_from_slice(&8i32.to_be_bytes()); // last sequence
    expected.extend_from_slice(&41i64.to_be_bytes()); // last offset
    expected.extend_from_slice(&1i32.to_be_bytes()); // offset delta
    expected.extend_from_slice(&1_000i64.to_be_bytes()); // timestamp
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // coordinator epoch
    expected.extend_from_slice(&(-1i64).to_be_bytes()); // current transaction first offset
    let crc = crc32c::crc32c(&expected[6..]);
    expected[2..6].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn a_truncated_or_damaged_snapshot_is_refused_at_every_byte() {
    let mut table = ProducerStateTable::default();
    write(&mut table, batch(9, 1, 0, 3), 0);
    let bytes = table.encode_snapshot();
    for length in 0..bytes.len() {
        assert!(
            ProducerStateTable::decode_snapshot(&bytes[..length], 0, i64::MAX).is_err(),
            "truncated to {length} bytes"
        );
    }
    for position in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x40;
        assert!(
            ProducerStateTable::decode_snapshot(&damaged, 0, i64::MAX).is_err(),
            "flipped a bit at byte {position}"
        );
    }
}
