//! Committed offsets and stored group metadata of the groups one shard coordinates,
//! as an in-memory view of its `__consumer_offsets` partitions. Sans-IO: it turns
//! commits into the records to append and replays records (at load, after appends)
//! into the view; the shard does the reading and writing.
//!
//! Invariant: the view equals the replay, in log order, of every record of the
//! partitions it was fed — an offset key's latest value wins, a tombstone (null value)
//! removes it, and a group key's latest value is the group's stored metadata.

use std::collections::{BTreeMap, HashMap};

use weir_storage::batch::{BatchHeader, SimpleRecord, decompress_records, walk_record_section};

use super::records::{
    GroupValue, OffsetValue, RecordError, RecordKey, decode_group_value, decode_key,
    decode_offset_value, encode_group_value, encode_key, encode_offset_value,
};

/// What the store holds for one group.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StoredGroup {
    /// (topic, partition) → committed offset.
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// The latest group metadata record, if any (classic groups with members).
    pub metadata: Option<GroupValue>,
}

#[derive(Debug, Default)]
pub struct OffsetStore {
    groups: HashMap<String, StoredGroup>,
}

/// Why a record could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("__consumer_offsets record at offset {offset} is unreadable: {source}")]
    Record {
        offset: i64,
        #[source]
        source: RecordError,
    },
    #[error("__consumer_offsets batch at offset {offset} is unreadable: {reason}")]
    Batch { offset: i64, reason: String },
}

impl OffsetStore {
    pub fn group(&self, group: &str) -> Option<&StoredGroup> {
        self.groups.get(group)
    }

    /// Forgets every group `which` names.
    pub fn remove_groups(&mut self, which: impl Fn(&str) -> bool) {
        self.groups.retain(|group, _| !which(group));
    }

    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    pub fn offset(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.groups
            .get(group)?
            .offsets
            .get(&(topic.to_string(), partition))
    }

    /// Applies one record. Keys of record types weir does not know (newer Kafka
    /// versions write more) are skipped, as Kafka skips them.
    pub fn replay_record(
        &mut self,
        offset: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ReplayError> {
        let key = match decode_key(key) {
            Ok(key) => key,
            Err(RecordError::UnknownVersion { .. }) => return Ok(()),
            Err(source) => return Err(ReplayError::Record { offset, source }),
        };
        match (key, value) {
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                Some(value),
            ) => {
                let value = decode_offset_value(value)
                    .map_err(|source| ReplayError::Record { offset, source })?;
                self.groups
                    .entry(group)
                    .or_default()
                    .offsets
                    .insert((topic, partition), value);
            }
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                None,
            ) => {
                if let Some(stored) = self.groups.get_mut(&group) {
                    stored.offsets.remove(&(topic, partition));
                    self.forget_if_empty(&group);
                }
            }
            (RecordKey::Group { group }, Some(value)) => {
                let value = decode_group_value(value)
                    .map_err(|source| ReplayError::Record { offset, source })?;
                self.groups.entry(group).or_default().metadata = Some(value);
            }
            (RecordKey::Group { group }, None) => {
                if let Some(stored) = self.groups.get_mut(&group) {
                    stored.metadata = None;
                    self.forget_if_empty(&group);
                }
            }
        }
        Ok(())
    }

    /// Applies every record of one whole batch (compressed or not).
    pub fn replay_batch(&mut self, batch: &[u8]) -> Result<usize, ReplayError> {
        let header = BatchHeader::new(batch).ok_or(ReplayError::Batch {
            offset: -1,
            reason: "shorter than a batch header".into(),
        })?;
        let base_offset = header.base_offset();
        if header.is_control() {
            return Ok(0);
        }
        let records = decompress_records(batch, 0).map_err(|error| ReplayError::Batch {
            offset: base_offset,
            reason: error.to_string(),
        })?;
        let mut parsed = Vec::new();
        walk_record_section(&records, header.records_count(), |record| {
            parsed.push((
                base_offset + record.offset_delta as i64,
                record.key.map(<[u8]>::to_vec),
                record.value.map(<[u8]>::to_vec),
            ));
            Ok(())
        })
        .map_err(|reason| ReplayError::Batch {
            offset: base_offset,
            reason,
        })?;
        let count = parsed.len();
        for (offset, key, value) in parsed {
            let Some(key) = key else {
                return Err(ReplayError::Batch {
                    offset,
                    reason: "record without a key".into(),
                });
            };
            self.replay_record(offset, &key, value.as_deref())?;
        }
        Ok(count)
    }

    fn forget_if_empty(&mut self, group: &str) {
        if self
            .groups
            .get(group)
            .is_some_and(|stored| stored.offsets.is_empty() && stored.metadata.is_none())
        {
            self.groups.remove(group);
        }
    }
}

/// The records that commit `offsets` for `group`, in Kafka's schemas.
pub fn commit_records(
    group: &str,
    offsets: &[(String, i32, OffsetValue)],
    timestamp_ms: i64,
) -> Vec<SimpleRecord> {
    offsets
        .iter()
        .map(|(topic, partition, value)| SimpleRecord {
            timestamp_ms,
            key: Some(
                encode_key(&RecordKey::Offset {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                })
                .to_vec(),
            ),
            value: Some(encode_offset_value(value).to_vec()),
        })
        .collect()
}

/// The record storing a group's metadata (`None`: a tombstone removing it).
pub fn group_record(group: &str, value: Option<&GroupValue>, timestamp_ms: i64) -> SimpleRecord {
    SimpleRecord {
        timestamp_ms,
        key: Some(
            encode_key(&RecordKey::Group {
                group: group.to_string(),
            })
            .to_vec(),
        ),
        value: value.map(|value| encode_group_value(value).to_vec()),
    }
}

/// Tombstones for the given offsets of `group` (OffsetDelete, expiry, DeleteGroups).
pub fn offset_tombstones(
    group: &str,
    partitions: &[(String, i32)],
    timestamp_ms: i64,
) -> Vec<SimpleRecord> {
    partitions
        .iter()
        .map(|(topic, partition)| SimpleRecord {
            timestamp_ms,
            key: Some(
                encode_key(&RecordKey::Offset {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                })
                .to_vec(),
            ),
            value: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::batch::encode_batch;

    fn value(offset: i64, metadata: &str) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: metadata.into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: None,
        }
    }

    #[test]
    fn replaying_commits_keeps_the_latest_offset_per_partition() {
        let mut store = OffsetStore::default();
        let first = commit_records(
            "g",
            &[
                ("t".into(), 0, value(5, "a")),
                ("t".into(), 1, value(7, "")),
            ],
            1,
        );
        let second = commit_records("g", &[("t".into(), 0, value(9, "b"))], 2);
        store.replay_batch(&encode_batch(0, &first)).unwrap();
        store.replay_batch(&encode_batch(2, &second)).unwrap();
        assert_eq!(store.offset("g", "t", 0), Some(&value(9, "b")));
        assert_eq!(store.offset("g", "t", 1), Some(&value(7, "")));
        assert_eq!(store.offset("g", "t", 2), None);
        assert_eq!(store.offset("other", "t", 0), None);
    }

    #[test]
    fn tombstones_remove_offsets_and_then_the_group() {
        let mut store = OffsetStore::default();
        store
            .replay_batch(&encode_batch(
                0,
                &commit_records("g", &[("t".into(), 0, value(5, ""))], 1),
            ))
            .unwrap();
        let metadata = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: None,
            current_state_timestamp_ms: 5,
            members: Vec::new(),
        };
        store
            .replay_batch(&encode_batch(1, &[group_record("g", Some(&metadata), 2)]))
            .unwrap();
        assert_eq!(
            store
                .group("g")
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .generation,
            3
        );
        store
            .replay_batch(&encode_batch(
                2,
                &offset_tombstones("g", &[("t".into(), 0)], 3),
            ))
            .unwrap();
        assert!(store.group("g").unwrap().offsets.is_empty());
        store
            .replay_batch(&encode_batch(3, &[group_record("g", None, 4)]))
            .unwrap();
        assert!(
            store.group("g").is_none(),
            "a group with neither offsets nor metadata is forgotten"
        );
        assert_eq!(store.group_names().count(), 0);
    }

    #[test]
    fn unknown_record_types_are_skipped_and_garbage_is_an_error() {
        let mut store = OffsetStore::default();
        let mut unknown_key = 9i16.to_be_bytes().to_vec();
        unknown_key.extend_from_slice(b"whatever");
        store.replay_record(0, &unknown_key, Some(b"x")).unwrap();
        assert_eq!(store.group_names().count(), 0);
        assert!(store.replay_record(1, &[0, 1, 0], Some(b"x")).is_err());
    }
}
