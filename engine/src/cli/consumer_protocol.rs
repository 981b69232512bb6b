//! Kafka's embedded consumer protocol: the `ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment` bytes that consumers put in JoinGroup/SyncGroup and that
//! DescribeGroups and `__consumer_offsets` group records hand back opaque. `weir groups`
//! decodes assignments to show who owns which partition; `weir dump-log
//! --offsets-decoder` decodes both to print them as Kafka does.
//!
//! Layout (big-endian, never flexible): version i16, then
//! * assignment: `[topic string, [partition i32]]`, user data (nullable bytes);
//! * subscription: `[topic string]`, user data (nullable bytes), v1+ owned partitions
//!   `[topic string, [partition i32]]`, v2+ generation id i32, v3+ rack id (nullable string).
//!
//! Strings are an i16 length + UTF-8, bytes an i32 length (−1 null), arrays an i32
//! count. The bytes come from other clients or from files, so every length and count is
//! checked against the bytes that remain before anything is allocated. Kafka reads a
//! version above the highest it knows (3) with the layout of 3, so newer clients stay
//! readable; trailing bytes are ignored for the same reason.

/// Highest schema version of both messages (Kafka 3.x and 4.x).
pub const VERSION_MAX: i16 = 3;

/// Why consumer protocol bytes did not decode; `offset` counts from the first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consumer protocol bytes are malformed at byte {offset}: {reason}")]
pub struct DecodeError {
    pub offset: usize,
    pub reason: String,
}

/// Partitions per topic, in the order the bytes list them.
pub type TopicPartitions = Vec<(String, Vec<i32>)>;

/// A decoded `ConsumerProtocolAssignment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The version the bytes carry (may exceed [`VERSION_MAX`]).
    pub version: i16,
    pub partitions: TopicPartitions,
    pub user_data: Option<Vec<u8>>,
}

/// A decoded `ConsumerProtocolSubscription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    pub user_data: Option<Vec<u8>>,
    /// Version 1 and later.
    pub owned_partitions: TopicPartitions,
    /// Version 2 and later; −1 otherwise.
    pub generation_id: i32,
    /// Version 3 and later.
    pub rack_id: Option<String>,
}

/// Decodes assignment bytes (an empty slice is "no assignment", as Kafka's admin client
/// treats it).
pub fn decode_assignment(bytes: &[u8]) -> Result<Assignment, DecodeError> {
    if bytes.is_empty() {
        return Ok(Assignment {
            version: 0,
            partitions: Vec::new(),
            user_data: None,
        });
    }
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.version()?;
    let partitions = reader.topic_partitions()?;
    let user_data = reader.nullable_bytes()?;
    Ok(Assignment {
        version,
        partitions,
        user_data,
    })
}

/// Decodes subscription bytes.
pub fn decode_subscription(bytes: &[u8]) -> Result<Subscription, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.version()?;
    let count = reader.count(2)?;
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        topics.push(reader.string()?);
    }
    let user_data = reader.nullable_bytes()?;
    let owned_partitions = if version >= 1 {
        reader.topic_partitions()?
    } else {
        Vec::new()
    };
    let generation_id = if version >= 2 { reader.i32()? } else { -1 };
    let rack_id = if version >= 3 {
        reader.nullable_string()?
    } else {
        None
    };
    Ok(Subscription {
        version,
        topics,
        user_data,
        owned_partitions,
        generation_id,
        rack_id,
    })
}

/// Every (topic, partition) of `partitions`, flattened.
pub fn flatten(partitions: &TopicPartitions) -> Vec<(String, i32)> {
    partitions
        .iter()
        .flat_map(|(topic, indexes)| indexes.iter().map(move |index| (topic.clone(), *index)))
        .collect()
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.at,
            reason: reason.into(),
        }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.bytes.len() - self.at;
        if count > remaining {
            return Err(self.error(format!("needs {count} bytes, {remaining} remain")));
        }
        let slice = &self.bytes[self.at..self.at + count];
        self.at += count;
        Ok(slice)
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn version(&mut self) -> Result<i16, DecodeError> {
        let version = self.i16()?;
        if version < 0 {
            return Err(DecodeError {
                offset: 0,
                reason: format!("negative version {version}"),
            });
        }
        Ok(version)
    }

    /// An array count whose elements take at least `element_bytes_min` bytes each, so a
    /// count the remaining bytes cannot hold fails before anything is reserved.
    fn count(&mut self, element_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.i32()?;
        let remaining = self.bytes.len() - self.at;
        match usize::try_from(count) {
            Ok(count) if count.saturating_mul(element_bytes_min) <= remaining => Ok(count),
            _ => Err(self.error(format!(
                "array count {count} does not fit the {remaining} remaining bytes"
            ))),
        }
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.nullable_string()?
            .ok_or_else(|| self.error("null where a string is required"))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let length = self.i16()?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length)
            .map_err(|_| self.error(format!("negative string length {length}")))?;
        let start = self.at;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| DecodeError {
                offset: start,
                reason: "string is not UTF-8".to_string(),
            })
    }

    fn nullable_bytes(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let length = self.i32()?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length)
            .map_err(|_| self.error(format!("negative bytes length {length}")))?;
        Ok(Some(self.take(length)?.to_vec()))
    }

    fn topic_partitions(&mut self) -> Result<TopicPartitions, DecodeError> {
        // A topic entry is at least a 2-byte string length and a 4-byte count.
        let count = self.count(6)?;
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let topic = self.string()?;
            let partitions_count = self.count(4)?;
            let mut partitions = Vec::with_capacity(partitions_count);
            for _ in 0..partitions_count {
                partitions.push(self.i32()?);
            }
            topics.push((topic, partitions));
        }
        Ok(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, text: &str) {
        out.extend_from_slice(&(text.len() as i16).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }

    /// What Kafka's `ConsumerProtocol.serializeAssignment` writes for t:[0, 2], u:[1].
    fn assignment_bytes(version: i16) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&2i32.to_be_bytes());
        string(&mut out, "t");
        out.extend_from_slice(&2i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&2i32.to_be_bytes());
        string(&mut out, "u");
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out
    }

    #[test]
    fn assignment_bytes_decode_to_topics_and_partitions() {
        let assignment = decode_assignment(&assignment_bytes(3)).expect("valid");
        assert_eq!(assignment.version, 3);
        assert_eq!(
            assignment.partitions,
            vec![("t".to_string(), vec![0, 2]), ("u".to_string(), vec![1])]
        );
        assert_eq!(assignment.user_data, None);
        assert_eq!(
            flatten(&assignment.partitions),
            vec![
                ("t".to_string(), 0),
                ("t".to_string(), 2),
                ("u".to_string(), 1)
            ]
        );
    }

    #[test]
    fn newer_assignment_versions_and_trailing_bytes_are_read_like_version_3() {
        let mut bytes = assignment_bytes(7);
        bytes.extend_from_slice(&[1, 2, 3]);
        let assignment = decode_assignment(&bytes).expect("forward compatible");
        assert_eq!(assignment.version, 7);
        assert_eq!(assignment.partitions.len(), 2);
    }

    #[test]
    fn empty_assignment_bytes_mean_no_partitions() {
        assert_eq!(
            decode_assignment(&[]).expect("empty").partitions,
            Vec::new()
        );
    }

    #[test]
    fn truncation_at_every_byte_fails_cleanly() {
        let bytes = assignment_bytes(0);
        for length in 1..bytes.len() {
            assert!(
                decode_assignment(&bytes[..length]).is_err(),
                "length {length}"
            );
        }
    }

    #[test]
    fn huge_counts_fail_without_allocating() {
        let mut bytes = 0i16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&i32::MAX.to_be_bytes());
        let error = decode_assignment(&bytes).expect_err("count too large");
        assert_eq!(error.offset, 6);
        assert!(error.reason.contains("array count"), "{error}");
    }

    #[test]
    fn subscription_fields_follow_the_version() {
        let mut bytes = 3i16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&1i32.to_be_bytes());
        string(&mut bytes, "t");
        bytes.extend_from_slice(&2i32.to_be_bytes());
        bytes.extend_from_slice(b"ud");
        bytes.extend_from_slice(&1i32.to_be_bytes());
        string(&mut bytes, "t");
        bytes.extend_from_slice(&1i32.to_be_bytes());
        bytes.extend_from_slice(&4i32.to_be_bytes());
        bytes.extend_from_slice(&9i32.to_be_bytes());
        string(&mut bytes, "rack-a");
        let subscription = decode_subscription(&bytes).expect("valid");
        assert_eq!(
            subscription,
            Subscription {
                version: 3,
                topics: vec!["t".to_string()],
                user_data: Some(b"ud".to_vec()),
                owned_partitions: vec![("t".to_string(), vec![4])],
                generation_id: 9,
                rack_id: Some("rack-a".to_string()),
            }
        );
        // Version 0 stops after the user data.
        let mut bytes = 0i16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&0i32.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        let subscription = decode_subscription(&bytes).expect("valid v0");
        assert_eq!(subscription.generation_id, -1);
        assert!(subscription.owned_partitions.is_empty());
    }
}
