//! Tests for the `__consumer_offsets` record codecs.
//!
//! Goal: weir's bytes are Kafka's bytes, and no input makes the decoders panic
//! or allocate without bound. Method: golden layouts built by hand, field by
//! field, from Kafka's message specs (OffsetCommitKey/Value, GroupMetadataKey/
//! Value JSON); round trips through every value version; a hand-built flexible
//! v4 value with unknown tagged fields; every truncated prefix of every golden
//! input; hostile lengths and counts; and Java `String.hashCode` values checked
//! against a real JVM (`"...".hashCode()` in Java 17).

use super::*;

fn sample_offset_value() -> OffsetValue {
    OffsetValue {
        offset: 42,
        leader_epoch: 7,
        metadata: "meta".to_string(),
        commit_timestamp_ms: 1_700_000_000_000,
        expire_timestamp_ms: None,
    }
}

fn sample_member() -> GroupMember {
    GroupMember {
        member_id: "m-1".to_string(),
        group_instance_id: Some("i".to_string()),
        client_id: "cl".to_string(),
        client_host: "/h".to_string(),
        rebalance_timeout_ms: 300_000,
        session_timeout_ms: 45_000,
        subscription: Bytes::from_static(&[0xAA, 0xBB]),
        assignment: Bytes::from_static(&[0xCC]),
    }
}

fn sample_group_value() -> GroupValue {
    GroupValue {
        protocol_type: "consumer".to_string(),
        generation: 5,
        protocol: Some("range".to_string()),
        leader: Some("m-1".to_string()),
        current_state_timestamp_ms: 1_700_000_000_123,
        members: vec![sample_member()],
    }
}

/// Non-flexible string: i16 length + UTF-8.
fn string(bytes: &mut Vec<u8>, text: &str) {
    bytes.extend_from_slice(&(text.len() as i16).to_be_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

/// Every strict prefix of `bytes` must fail with `Short` or `Invalid`.
fn assert_every_truncation_fails<T: std::fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, RecordError>,
) {
    assert!(decode(bytes).is_ok(), "the untruncated input must decode");
    for length in 0..bytes.len() {
        match decode(&bytes[..length]) {
            Err(RecordError::Short { offset, need, have }) => {
                assert!(offset <= length, "offset {offset} beyond prefix {length}");
                assert!(need > have, "need {need} must exceed have {have}");
                assert_eq!(
                    offset + have,
                    length,
                    "have must be the bytes left at offset"
                );
            }
            Err(RecordError::Invalid { .. }) => {}
            other => panic!("prefix of {length}/{} bytes gave {other:?}", bytes.len()),
        }
    }
}

// --- Keys --------------------------------------------------------------------

#[test]
fn offset_commit_key_v1_golden_layout() {
    let key = RecordKey::Offset {
        group: "grp".to_string(),
        topic: "tp".to_string(),
        partition: 3,
    };
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0x00, 0x01]); // key version 1 (OffsetCommitKey)
    expected.extend_from_slice(&[0x00, 0x03]); // group length 3
    expected.extend_from_slice(b"grp"); // group
    expected.extend_from_slice(&[0x00, 0x02]); // topic length 2
    expected.extend_from_slice(b"tp"); // topic
    expected.extend_from_slice(&[0x00, 0x00, 0x00, 0x03]); // partition 3
    let encoded = encode_key(&key);
    assert_eq!(&encoded[..], &expected[..]);
    assert_eq!(decode_key(&expected).unwrap(), key);
    assert_every_truncation_fails(&expected, decode_key);
}

#[test]
fn offset_commit_key_v0_decodes_like_v1() {
    let mut bytes = vec![0x00, 0x00]; // key version 0
    string(&mut bytes, "g"); // group
    string(&mut bytes, "t"); // topic
    bytes.extend_from_slice(&(-2i32).to_be_bytes()); // partition
    let key = decode_key(&bytes).unwrap();
    assert_eq!(
        key,
        RecordKey::Offset {
            group: "g".to_string(),
            topic: "t".to_string(),
            partition: -2
        }
    );
    // Re-encoding writes version 1, as Kafka does; only the version differs.
    let encoded = encode_key(&key);
    assert_eq!(&encoded[..2], &[0x00, 0x01]);
    assert_eq!(&encoded[2..], &bytes[2..]);
}

#[test]
fn group_metadata_key_v2_golden_layout() {
    let key = RecordKey::Group {
        group: "grp".to_string(),
    };
    let expected = [
        0x00, 0x02, // key version 2 (GroupMetadataKey)
        0x00, 0x03, // group length 3
        b'g', b'r', b'p', // group
    ];
    assert_eq!(&encode_key(&key)[..], &expected[..]);
    assert_eq!(decode_key(&expected).unwrap(), key);
    assert_every_truncation_fails(&expected, decode_key);
}

#[test]
fn key_of_newer_record_type_is_unknown_version() {
    // Key version 3 is ConsumerGroupMetadataKey in Kafka 3.7+: skippable.
    let mut bytes = vec![0x00, 0x03];
    string(&mut bytes, "grp");
    assert!(matches!(
        decode_key(&bytes),
        Err(RecordError::UnknownVersion {
            what: "record key",
            version: 3
        })
    ));
    assert!(matches!(
        decode_key(&[0xff, 0xff]),
        Err(RecordError::UnknownVersion { version: -1, .. })
    ));
}

#[test]
fn key_with_trailing_bytes_is_invalid() {
    let mut bytes = encode_key(&RecordKey::Group {
        group: "g".to_string(),
    })
    .to_vec();
    bytes.push(0);
    assert!(matches!(
        decode_key(&bytes),
        Err(RecordError::Invalid { offset: 5, .. })
    ));
}

// --- Offset commit values ------------------------------------------------------

#[test]
fn offset_commit_value_v3_golden_layout() {
    let value = sample_offset_value();
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0x00, 0x03]); // value version 3
    expected.extend_from_slice(&42i64.to_be_bytes()); // offset
    expected.extend_from_slice(&7i32.to_be_bytes()); // leader_epoch
    expected.extend_from_slice(&[0x00, 0x04]); // metadata length 4
    expected.extend_from_slice(b"meta"); // metadata
    expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // commit_timestamp
    assert_eq!(expected.len(), 2 + 8 + 4 + 2 + 4 + 8);
    assert_eq!(&encode_offset_value(&value)[..], &expected[..]);
    assert_eq!(decode_offset_value(&expected).unwrap(), value);
    assert_every_truncation_fails(&expected, decode_offset_value);
}

#[test]
fn offset_commit_value_v1_golden_layout() {
    let value = OffsetValue {
        leader_epoch: -1, // v1 has no leader epoch
        expire_timestamp_ms: Some(1_700_000_600_000),
        ..sample_offset_value()
    };
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0x00, 0x01]); // value version 1 (expire timestamp set)
    expected.extend_from_slice(&42i64.to_be_bytes()); // offset
    expected.extend_from_slice(&[0x00, 0x04]); // metadata length 4
    expected.extend_from_slice(b"meta"); // metadata
    expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // commit_timestamp
    expected.extend_from_slice(&1_700_000_600_000i64.to_be_bytes()); // expire_timestamp
    assert_eq!(&encode_offset_value(&value)[..], &expected[..]);
    assert_eq!(decode_offset_value(&expected).unwrap(), value);
    assert_every_truncation_fails(&expected, decode_offset_value);
}

#[test]
fn offset_commit_value_v1_expire_minus_one_means_none() {
    let mut bytes = vec![0x00, 0x01]; // value version 1
    bytes.extend_from_slice(&9i64.to_be_bytes()); // offset
    string(&mut bytes, ""); // metadata
    bytes.extend_from_slice(&100i64.to_be_bytes()); // commit_timestamp
    bytes.extend_from_slice(&(-1i64).to_be_bytes()); // expire_timestamp: Kafka's "none"
    let value = decode_offset_value(&bytes).unwrap();
    assert_eq!(value.expire_timestamp_ms, None);
    assert_eq!(value.leader_epoch, -1);
    assert_eq!(value.offset, 9);
    assert_eq!(value.commit_timestamp_ms, 100);
}

#[test]
fn offset_commit_value_round_trips_through_every_version() {
    let full = OffsetValue {
        expire_timestamp_ms: Some(555),
        metadata: "héllo 😀".to_string(),
        ..sample_offset_value()
    };
    for version in 0..=OFFSET_COMMIT_VALUE_VERSION_MAX {
        let encoded = encode_offset_value_version(&full, version).unwrap();
        assert_eq!(i16::from_be_bytes([encoded[0], encoded[1]]), version);
        // Each version keeps only the fields it has.
        let expected = OffsetValue {
            leader_epoch: if version >= 3 { full.leader_epoch } else { -1 },
            expire_timestamp_ms: if version == 1 {
                full.expire_timestamp_ms
            } else {
                None
            },
            ..full.clone()
        };
        let decoded = decode_offset_value(&encoded).unwrap();
        assert_eq!(decoded, expected, "version {version}");
        assert_every_truncation_fails(&encoded, decode_offset_value);
    }
    assert!(matches!(
        encode_offset_value_version(&full, 5),
        Err(RecordError::UnknownVersion { version: 5, .. })
    ));
}

#[test]
fn offset_commit_value_v4_flexible_skips_unknown_tagged_fields() {
    let mut bytes = vec![0x00, 0x04]; // value version 4 (flexible)
    bytes.extend_from_slice(&1234i64.to_be_bytes()); // offset
    bytes.extend_from_slice(&2i32.to_be_bytes()); // leader_epoch
    bytes.push(0x03); // metadata: compact length 2 + 1
    bytes.extend_from_slice(b"md"); // metadata
    bytes.extend_from_slice(&99i64.to_be_bytes()); // commit_timestamp
    bytes.push(0x02); // tagged fields: 2
    bytes.push(0x05); //   tag 5
    bytes.push(0x03); //   size 3
    bytes.extend_from_slice(&[1, 2, 3]); //   data (unknown, skipped)
    bytes.extend_from_slice(&[0x80, 0x01]); //   tag 128 (two-byte varint)
    bytes.push(0x00); //   size 0
    let value = decode_offset_value(&bytes).unwrap();
    assert_eq!(
        value,
        OffsetValue {
            offset: 1234,
            leader_epoch: 2,
            metadata: "md".to_string(),
            commit_timestamp_ms: 99,
            expire_timestamp_ms: None,
        }
    );
    assert_every_truncation_fails(&bytes, decode_offset_value);
}

#[test]
fn offset_commit_value_of_unknown_version_is_rejected() {
    let mut bytes = encode_offset_value(&sample_offset_value()).to_vec();
    bytes[..2].copy_from_slice(&5i16.to_be_bytes());
    assert!(matches!(
        decode_offset_value(&bytes),
        Err(RecordError::UnknownVersion {
            what: "offset commit value",
            version: 5
        })
    ));
    bytes[..2].copy_from_slice(&(-1i16).to_be_bytes());
    assert!(matches!(
        decode_offset_value(&bytes),
        Err(RecordError::UnknownVersion { version: -1, .. })
    ));
}

#[test]
fn offset_commit_value_rejects_null_and_bad_utf8_metadata() {
    let mut null_metadata = vec![0x00, 0x00]; // value version 0
    null_metadata.extend_from_slice(&1i64.to_be_bytes()); // offset
    null_metadata.extend_from_slice(&[0xff, 0xff]); // metadata length -1 (null)
    null_metadata.extend_from_slice(&1i64.to_be_bytes()); // commit_timestamp
    assert!(matches!(
        decode_offset_value(&null_metadata),
        Err(RecordError::Invalid { offset: 10, .. })
    ));

    let mut bad_utf8 = vec![0x00, 0x00]; // value version 0
    bad_utf8.extend_from_slice(&1i64.to_be_bytes()); // offset
    bad_utf8.extend_from_slice(&[0x00, 0x02, 0xc3, 0x28]); // metadata: invalid UTF-8
    bad_utf8.extend_from_slice(&1i64.to_be_bytes()); // commit_timestamp
    assert!(matches!(
        decode_offset_value(&bad_utf8),
        Err(RecordError::BadUtf8 { offset: 12 })
    ));
}

// --- Group metadata values ------------------------------------------------------

#[test]
fn group_metadata_value_v3_golden_layout() {
    let value = sample_group_value();
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0x00, 0x03]); // value version 3
    expected.extend_from_slice(&[0x00, 0x08]); // protocol_type length 8
    expected.extend_from_slice(b"consumer"); // protocol_type
    expected.extend_from_slice(&5i32.to_be_bytes()); // generation
    expected.extend_from_slice(&[0x00, 0x05]); // protocol length 5
    expected.extend_from_slice(b"range"); // protocol
    expected.extend_from_slice(&[0x00, 0x03]); // leader length 3
    expected.extend_from_slice(b"m-1"); // leader
    expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes()); // current_state_timestamp
    expected.extend_from_slice(&1i32.to_be_bytes()); // members count 1
    expected.extend_from_slice(&[0x00, 0x03]); //   member_id length 3
    expected.extend_from_slice(b"m-1"); //   member_id
    expected.extend_from_slice(&[0x00, 0x01]); //   group_instance_id length 1
    expected.extend_from_slice(b"i"); //   group_instance_id
    expected.extend_from_slice(&[0x00, 0x02]); //   client_id length 2
    expected.extend_from_slice(b"cl"); //   client_id
    expected.extend_from_slice(&[0x00, 0x02]); //   client_host length 2
    expected.extend_from_slice(b"/h"); //   client_host
    expected.extend_from_slice(&300_000i32.to_be_bytes()); //   rebalance_timeout
    expected.extend_from_slice(&45_000i32.to_be_bytes()); //   session_timeout
    expected.extend_from_slice(&2i32.to_be_bytes()); //   subscription length 2
    expected.extend_from_slice(&[0xAA, 0xBB]); //   subscription
    expected.extend_from_slice(&1i32.to_be_bytes()); //   assignment length 1
    expected.extend_from_slice(&[0xCC]); //   assignment
    assert_eq!(&encode_group_value(&value)[..], &expected[..]);
    assert_eq!(decode_group_value(&expected).unwrap(), value);
    assert_every_truncation_fails(&expected, decode_group_value);
}

#[test]
fn group_metadata_value_v3_null_protocol_leader_and_instance_id() {
    let value = GroupValue {
        protocol: None,
        leader: None,
        members: vec![GroupMember {
            group_instance_id: None,
            ..sample_member()
        }],
        ..sample_group_value()
    };
    let encoded = encode_group_value(&value);
    // protocol and leader are both i16 -1 right after the generation.
    let after_generation = 2 + 2 + 8 + 4;
    assert_eq!(
        &encoded[after_generation..after_generation + 4],
        &[0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(decode_group_value(&encoded).unwrap(), value);
}

#[test]
fn group_metadata_value_round_trips_through_every_version() {
    let full = GroupValue {
        members: vec![
            sample_member(),
            GroupMember {
                member_id: "m-2".to_string(),
                group_instance_id: None,
                subscription: Bytes::new(),
                assignment: Bytes::from(vec![7u8; 300]),
                ..sample_member()
            },
        ],
        ..sample_group_value()
    };
    for version in 0..=GROUP_METADATA_VALUE_VERSION_MAX {
        let encoded = encode_group_value_version(&full, version).unwrap();
        assert_eq!(i16::from_be_bytes([encoded[0], encoded[1]]), version);
        let expected = GroupValue {
            current_state_timestamp_ms: if version >= 2 {
                full.current_state_timestamp_ms
            } else {
                -1
            },
            members: full
                .members
                .iter()
                .map(|member| GroupMember {
                    group_instance_id: if version >= 3 {
                        member.group_instance_id.clone()
                    } else {
                        None
                    },
                    rebalance_timeout_ms: if version >= 1 {
                        member.rebalance_timeout_ms
                    } else {
                        -1
                    },
                    ..member.clone()
                })
                .collect(),
            ..full.clone()
        };
        let decoded = decode_group_value(&encoded).unwrap();
        assert_eq!(decoded, expected, "version {version}");
        assert_every_truncation_fails(&encoded, decode_group_value);
    }
}

#[test]
fn group_metadata_value_v4_flexible_skips_unknown_tagged_fields() {
    let mut bytes = vec![0x00, 0x04]; // value version 4 (flexible)
    bytes.push(0x09); // protocol_type: compact length 8 + 1
    bytes.extend_from_slice(b"consumer"); // protocol_type
    bytes.extend_from_slice(&5i32.to_be_bytes()); // generation
    bytes.push(0x06); // protocol: compact length 5 + 1
    bytes.extend_from_slice(b"range"); // protocol
    bytes.push(0x00); // leader: null
    bytes.extend_from_slice(&77i64.to_be_bytes()); // current_state_timestamp
    bytes.push(0x02); // members: compact count 1 + 1
    bytes.push(0x04); //   member_id: compact length 3 + 1
    bytes.extend_from_slice(b"m-1"); //   member_id
    bytes.push(0x00); //   group_instance_id: null
    bytes.push(0x03); //   client_id: compact length 2 + 1
    bytes.extend_from_slice(b"cl"); //   client_id
    bytes.push(0x01); //   client_host: compact length 0 + 1
    bytes.extend_from_slice(&1000i32.to_be_bytes()); //   rebalance_timeout
    bytes.extend_from_slice(&2000i32.to_be_bytes()); //   session_timeout
    bytes.push(0x03); //   subscription: compact length 2 + 1
    bytes.extend_from_slice(&[0x01, 0x02]); //   subscription
    bytes.push(0x01); //   assignment: compact length 0 + 1
    bytes.push(0x01); //   member tagged fields: 1
    bytes.push(0x00); //     tag 0
    bytes.push(0x02); //     size 2
    bytes.extend_from_slice(&[0xde, 0xad]); //     data (unknown, skipped)
    bytes.push(0x01); // group tagged fields: 1
    bytes.push(0x09); //   tag 9
    bytes.push(0x01); //   size 1
    bytes.push(0xff); //   data (unknown, skipped)
    let value = decode_group_value(&bytes).unwrap();
    assert_eq!(
        value,
        GroupValue {
            protocol_type: "consumer".to_string(),
            generation: 5,
            protocol: Some("range".to_string()),
            leader: None,
            current_state_timestamp_ms: 77,
            members: vec![GroupMember {
                member_id: "m-1".to_string(),
                group_instance_id: None,
                client_id: "cl".to_string(),
                client_host: String::new(),
                rebalance_timeout_ms: 1000,
                session_timeout_ms: 2000,
                subscription: Bytes::from_static(&[0x01, 0x02]),
                assignment: Bytes::new(),
            }],
        }
    );
    assert_every_truncation_fails(&bytes, decode_group_value);
}

#[test]
fn group_metadata_value_of_unknown_version_is_rejected() {
    let mut bytes = encode_group_value(&sample_group_value()).to_vec();
    bytes[..2].copy_from_slice(&5i16.to_be_bytes());
    assert!(matches!(
        decode_group_value(&bytes),
        Err(RecordError::UnknownVersion {
            what: "group metadata value",
            version: 5
        })
    ));
}

// --- Hostile input -------------------------------------------------------------

#[test]
fn huge_member_count_fails_short_without_allocating() {
    let mut bytes = vec![0x00, 0x03]; // value version 3
    string(&mut bytes, "consumer"); // protocol_type
    bytes.extend_from_slice(&1i32.to_be_bytes()); // generation
    bytes.extend_from_slice(&[0xff, 0xff]); // protocol: null
    bytes.extend_from_slice(&[0xff, 0xff]); // leader: null
    bytes.extend_from_slice(&0i64.to_be_bytes()); // current_state_timestamp
    bytes.extend_from_slice(&i32::MAX.to_be_bytes()); // members count 2^31-1
    let count_end = bytes.len();
    assert!(matches!(
        decode_group_value(&bytes),
        Err(RecordError::Short { offset, need: 2, have: 0 }) if offset == count_end
    ));

    // The same in flexible form: a 5-byte varint count of u32::MAX - 1.
    let mut flexible = vec![0x00, 0x04, 0x01]; // version 4, protocol_type ""
    flexible.extend_from_slice(&1i32.to_be_bytes()); // generation
    flexible.extend_from_slice(&[0x00, 0x00]); // protocol, leader: null
    flexible.extend_from_slice(&0i64.to_be_bytes()); // current_state_timestamp
    flexible.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // members count
    assert!(matches!(
        decode_group_value(&flexible),
        Err(RecordError::Short { .. })
    ));
}

#[test]
fn huge_and_negative_lengths_fail_cleanly() {
    // Subscription claims i32::MAX bytes.
    let mut bytes = vec![0x00, 0x00]; // value version 0
    string(&mut bytes, "c"); // protocol_type
    bytes.extend_from_slice(&1i32.to_be_bytes()); // generation
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // protocol, leader: null
    bytes.extend_from_slice(&1i32.to_be_bytes()); // members count 1
    string(&mut bytes, "m"); //   member_id
    string(&mut bytes, "c"); //   client_id
    string(&mut bytes, "h"); //   client_host
    bytes.extend_from_slice(&1i32.to_be_bytes()); //   session_timeout
    let subscription_at = bytes.len();
    let mut huge = bytes.clone();
    huge.extend_from_slice(&i32::MAX.to_be_bytes()); //   subscription length 2^31-1
    assert!(matches!(
        decode_group_value(&huge),
        Err(RecordError::Short { offset, need, have: 0 })
            if offset == subscription_at + 4 && need == i32::MAX as usize
    ));
    let mut negative = bytes.clone();
    negative.extend_from_slice(&(-7i32).to_be_bytes()); //   subscription length -7
    assert!(matches!(
        decode_group_value(&negative),
        Err(RecordError::Invalid { offset, .. }) if offset == subscription_at
    ));
    let mut null = bytes;
    null.extend_from_slice(&(-1i32).to_be_bytes()); //   subscription null
    assert!(matches!(
        decode_group_value(&null),
        Err(RecordError::Invalid { offset, .. }) if offset == subscription_at
    ));
}

#[test]
fn flexible_string_longer_than_i16_max_is_invalid() {
    let mut bytes = vec![0x00, 0x04]; // value version 4
    bytes.extend_from_slice(&0i64.to_be_bytes()); // offset
    bytes.extend_from_slice(&0i32.to_be_bytes()); // leader_epoch
    bytes.extend_from_slice(&[0x81, 0x80, 0x02]); // metadata: compact length 32768 + 1
    assert!(matches!(
        decode_offset_value(&bytes),
        Err(RecordError::Invalid { offset: 14, .. })
    ));
}

#[test]
fn overlong_varint_is_invalid() {
    let mut bytes = vec![0x00, 0x04]; // value version 4
    bytes.extend_from_slice(&0i64.to_be_bytes()); // offset
    bytes.extend_from_slice(&0i32.to_be_bytes()); // leader_epoch
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]); // 33-bit varint
    assert!(matches!(
        decode_offset_value(&bytes),
        Err(RecordError::Invalid { offset: 14, .. })
    ));
}

#[test]
fn tagged_field_larger_than_input_fails_short() {
    let mut bytes = encode_offset_value_version(&sample_offset_value(), 4)
        .unwrap()
        .to_vec();
    let last = bytes.len() - 1;
    bytes[last] = 0x01; // tagged fields: 1
    bytes.extend_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]); // tag 0, size u32::MAX
    assert!(matches!(
        decode_offset_value(&bytes),
        Err(RecordError::Short {
            need: 0xffff_ffff,
            have: 0,
            ..
        })
    ));
}

#[test]
fn error_messages_read_as_sentences() {
    let error = decode_key(&[0x00]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "record is truncated: the field at byte 0 needs 2 bytes but only 1 remain"
    );
    let error = decode_key(&[0x00, 0x07]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the record key has schema version 7, which weir does not understand"
    );
}

// --- Hashing and partitioning ---------------------------------------------------

#[test]
fn java_string_hash_code_matches_java() {
    assert_eq!(java_string_hash_code(""), 0);
    assert_eq!(java_string_hash_code("hello"), 99_162_322);
    // U+1F600 is the UTF-16 surrogate pair D83D DE00, so Java hashes two code
    // units: 0xD83D * 31 + 0xDE00 = 55357 * 31 + 56832 = 1772899. Hashing the
    // code point (128512) or the four UTF-8 bytes would give other values.
    assert_eq!(java_string_hash_code("😀"), 1_772_899);
    // "g😀": ((0x67 * 31) + 0xD83D) * 31 + 0xDE00 = 1871882.
    assert_eq!(java_string_hash_code("g😀"), 1_871_882);
    // Wrapping overflow; both values printed by Java 17's String.hashCode.
    assert_eq!(java_string_hash_code("my-group"), -1_906_497_762);
    assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
}

#[test]
fn partition_for_group_matches_kafka() {
    // Expected values from Java 17: Utils.abs(group.hashCode()) % 50.
    assert_eq!(partition_for_group("", 50), 0);
    assert_eq!(partition_for_group("hello", 50), 22);
    assert_eq!(partition_for_group("test-group", 50), 12);
    assert_eq!(partition_for_group("😀", 50), 49);
    // Negative hash: Math.abs(-1906497762) % 50 = 12 (masking with 0x7fffffff
    // would give 36, a different coordinator than Kafka's).
    assert_eq!(partition_for_group("my-group", 50), 12);
    // hashCode == i32::MIN: Utils.abs maps it to 0 (Math.abs would stay
    // negative and give partition -48).
    assert_eq!(partition_for_group("polygenelubricants", 50), 0);
    assert_eq!(partition_for_group("polygenelubricants", 7), 0);
    for group in ["", "a", "my-group", "polygenelubricants", "😀"] {
        for partitions in [1, 3, 50, i32::MAX] {
            let partition = partition_for_group(group, partitions);
            assert!((0..partitions).contains(&partition));
        }
    }
}
