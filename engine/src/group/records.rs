//! Key and value codecs for the records of Kafka's `__consumer_offsets` topic.
//!
//! weir stores committed offsets and classic group metadata in the same topic,
//! with the same bytes, as Apache Kafka, so that Kafka's tools (for example
//! `kafka-console-consumer --formatter ...GroupMetadataManager$OffsetsMessageFormatter`
//! or `kafka-dump-log --offsets-decoder`) can read weir's logs and weir can read
//! logs copied from Kafka. The layouts follow Kafka's message specifications in
//! `group-coordinator/src/main/resources/common/message/`:
//!
//! | record            | key version | value versions | Kafka writes (and so does weir)      |
//! |-------------------|-------------|----------------|--------------------------------------|
//! | OffsetCommit      | 0 or 1      | 0 to 4         | key 1; value 1 if an expire timestamp is set, else value 3 |
//! | GroupMetadata     | 2           | 0 to 4         | key 2; value 3                        |
//!
//! Kafka's `MetadataVersion::offsetCommitValueVersion` and
//! `groupMetadataValueVersion` pick "the highest supported non-flexible version
//! until a tagged field is introduced", so version 4 (flexible) is never written
//! by Kafka today; weir decodes it and never writes it.
//!
//! Every record starts with a big-endian i16 schema version. For keys that
//! version is really the record type: 0 and 1 are offset commits, 2 is group
//! metadata, and 3 and above are record types of newer coordinators (consumer
//! groups of KIP-848, share groups, ...) that this module does not model; they
//! decode to [`RecordError::UnknownVersion`] so a loader can skip them. A record
//! with a null value (a tombstone) deletes the offset or group named by its key;
//! tombstones have no value bytes and so never reach the value decoders.
//!
//! The codec does no I/O. Decoding borrows the input, checks every length
//! against the bytes that remain before it allocates, and rejects trailing
//! bytes, so hostile or torn input ends in a [`RecordError`], never a panic or
//! an unbounded allocation. (Kafka's generated readers ignore trailing bytes;
//! nothing Kafka writes has any, so weir treats them as corruption.)
//!
//! Encodings:
//! - non-flexible versions: string = i16 length + UTF-8 (length -1 is null for
//!   nullable strings), bytes = i32 length + data, array = i32 count + elements;
//! - flexible versions (4): compact strings, bytes and arrays carry an unsigned
//!   varint of length + 1 (0 is null), and every struct ends with a tagged-fields
//!   section (unsigned varint count, then tag, size and data per field). weir
//!   writes an empty section and skips every tagged field on decode, because
//!   none is defined for these records yet.

use bytes::{BufMut, Bytes, BytesMut};

/// Key version Kafka wrote for offset commits before 0.10 (same layout as 1).
const OFFSET_COMMIT_KEY_VERSION_LEGACY: i16 = 0;
/// Key version Kafka writes for offset commits.
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata records.
const GROUP_METADATA_KEY_VERSION: i16 = 2;

/// Offset commit value version Kafka writes when the commit carries an expire
/// timestamp (only OffsetCommit requests v1 can set one).
const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE: i16 = 1;
/// Offset commit value version Kafka writes otherwise.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Highest offset commit value version this module understands.
const OFFSET_COMMIT_VALUE_VERSION_MAX: i16 = 4;

/// Group metadata value version Kafka writes.
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// Highest group metadata value version this module understands.
const GROUP_METADATA_VALUE_VERSION_MAX: i16 = 4;

/// First flexible version of both value schemas.
const VALUE_VERSION_FLEXIBLE_MIN: i16 = 4;

/// Fewest bytes one encoded group member can occupy in any version (v4: four
/// one-byte compact strings, two i32 timeouts, two one-byte compact bytes and a
/// one-byte tagged-fields count). Used to bound the capacity reserved for a
/// member array whose count comes from untrusted bytes.
const GROUP_MEMBER_BYTES_MIN: usize = 15;

/// Longest string Kafka's encoding can carry: the length is an i16.
const STRING_BYTES_MAX: usize = i16::MAX as usize;

/// Longest unsigned varint Kafka accepts: 5 bytes of 7 bits hold a u32.
const UNSIGNED_VARINT_BYTES_MAX: usize = 5;

const _: () = assert!(OFFSET_COMMIT_VALUE_VERSION < VALUE_VERSION_FLEXIBLE_MIN);
const _: () = assert!(GROUP_METADATA_VALUE_VERSION < VALUE_VERSION_FLEXIBLE_MIN);
const _: () = assert!(OFFSET_COMMIT_VALUE_VERSION_MAX >= VALUE_VERSION_FLEXIBLE_MIN);

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// The committed offset of one partition for one group (key version 0 or 1).
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// The metadata of a classic group (key version 2).
    Group { group: String },
}

/// A committed offset (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// Leader epoch of the committed offset, -1 when unknown. Stored by
    /// versions 3 and 4 only; other versions decode as -1.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Stored by version 1 only, with -1 meaning "none" as in Kafka; other
    /// versions decode as `None`.
    pub expire_timestamp_ms: Option<i64>,
}

/// One member of a classic group (GroupMetadataValue.MemberMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    /// Static membership id; stored by versions 3 and 4, `None` otherwise.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Stored by versions 1 and above; version 0 decodes as -1.
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// The metadata of a classic group (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Stored by versions 2 and above; versions 0 and 1 decode as -1.
    pub current_state_timestamp_ms: i64,
    pub members: Vec<GroupMember>,
}

/// Why bytes could not be decoded as a `__consumer_offsets` key or value.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The input ends before a field does: `need` bytes were required at
    /// `offset` but only `have` remain.
    #[error(
        "record is truncated: the field at byte {offset} needs {need} bytes but only {have} remain"
    )]
    Short {
        offset: usize,
        need: usize,
        have: usize,
    },
    /// The schema version is not one this module knows. For keys, versions 3
    /// and above are record types of newer Kafka coordinators; callers
    /// replaying the topic should skip such records.
    #[error("the {what} has schema version {version}, which weir does not understand")]
    UnknownVersion { what: &'static str, version: i16 },
    /// A string field holds bytes that are not UTF-8.
    #[error("the string at byte {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    /// The bytes are structurally wrong (negative length, null where null is
    /// not allowed, malformed varint, trailing bytes).
    #[error("record is invalid at byte {offset}: {reason}")]
    Invalid { offset: usize, reason: String },
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Encodes a key the way Kafka writes it: offset commits as key version 1,
/// group metadata as key version 2.
///
/// Panics if a string is longer than 32767 bytes, which Kafka's encoding
/// cannot represent; group ids and topic names arrive in i16-length request
/// strings, so a longer one is a bug in the caller.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut buffer = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            buffer.put_i16(OFFSET_COMMIT_KEY_VERSION);
            put_string(&mut buffer, group, false);
            put_string(&mut buffer, topic, false);
            buffer.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            buffer.put_i16(GROUP_METADATA_KEY_VERSION);
            put_string(&mut buffer, group, false);
        }
    }
    buffer.freeze()
}

/// Decodes a key of any version Kafka has written for offsets and groups.
/// Keys of other record types fail with [`RecordError::UnknownVersion`].
pub fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordError> {
    let mut reader = Reader::new(bytes);
    let version = reader.i16()?;
    let key = match version {
        OFFSET_COMMIT_KEY_VERSION_LEGACY | OFFSET_COMMIT_KEY_VERSION => RecordKey::Offset {
            group: reader.string("group", false)?,
            topic: reader.string("topic", false)?,
            partition: reader.i32()?,
        },
        GROUP_METADATA_KEY_VERSION => RecordKey::Group {
            group: reader.string("group", false)?,
        },
        _ => {
            return Err(RecordError::UnknownVersion {
                what: "record key",
                version,
            });
        }
    };
    reader.finish()?;
    Ok(key)
}

/// Encodes a committed offset the way Kafka writes it: version 1 (offset,
/// metadata, commit and expire timestamps) when an expire timestamp is set,
/// otherwise version 3 (offset, leader epoch, metadata, commit timestamp).
///
/// Panics if `metadata` is longer than 32767 bytes; the caller must enforce
/// `offset.metadata.max.bytes` before committing.
pub fn encode_offset_value(value: &OffsetValue) -> Bytes {
    let version = if value.expire_timestamp_ms.is_some() {
        OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE
    } else {
        OFFSET_COMMIT_VALUE_VERSION
    };
    encode_offset_value_version(value, version)
        .expect("versions 1 and 3 are supported offset commit value versions")
}

/// Decodes a committed offset of any version from 0 to 4.
pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut reader = Reader::new(bytes);
    let version = reader.i16()?;
    if !(0..=OFFSET_COMMIT_VALUE_VERSION_MAX).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "offset commit value",
            version,
        });
    }
    let flexible = version >= VALUE_VERSION_FLEXIBLE_MIN;
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string("metadata", flexible)?;
    let commit_timestamp_ms = reader.i64()?;
    let expire_timestamp_ms = if version == 1 {
        // Kafka writes -1 when the commit had no expire timestamp.
        Some(reader.i64()?).filter(|timestamp| *timestamp != -1)
    } else {
        None
    };
    if flexible {
        reader.skip_tagged_fields()?;
    }
    reader.finish()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

/// Encodes group metadata the way Kafka writes it: version 3.
///
/// Panics if a string is longer than 32767 bytes or there are more than
/// `i32::MAX` members or subscription/assignment bytes, none of which a
/// request can carry.
pub fn encode_group_value(value: &GroupValue) -> Bytes {
    encode_group_value_version(value, GROUP_METADATA_VALUE_VERSION)
        .expect("version 3 is a supported group metadata value version")
}

/// Decodes group metadata of any version from 0 to 4.
pub fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let mut reader = Reader::new(bytes);
    let version = reader.i16()?;
    if !(0..=GROUP_METADATA_VALUE_VERSION_MAX).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group metadata value",
            version,
        });
    }
    let flexible = version >= VALUE_VERSION_FLEXIBLE_MIN;
    let protocol_type = reader.string("protocol_type", flexible)?;
    let generation = reader.i32()?;
    let protocol = reader.nullable_string(flexible)?;
    let leader = reader.nullable_string(flexible)?;
    let current_state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
    let member_count = reader.array_count("members", flexible)?;
    // The count is untrusted: reserve no more members than the remaining
    // bytes could possibly hold, and let the reads below fail with `Short`.
    let mut members =
        Vec::with_capacity(member_count.min(reader.remaining() / GROUP_MEMBER_BYTES_MIN));
    for _ in 0..member_count {
        let member_id = reader.string("member_id", flexible)?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string(flexible)?
        } else {
            None
        };
        let client_id = reader.string("client_id", flexible)?;
        let client_host = reader.string("client_host", flexible)?;
        let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { -1 };
        let session_timeout_ms = reader.i32()?;
        let subscription = reader.bytes("subscription", flexible)?;
        let assignment = reader.bytes("assignment", flexible)?;
        if flexible {
            reader.skip_tagged_fields()?;
        }
        members.push(GroupMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    if flexible {
        reader.skip_tagged_fields()?;
    }
    reader.finish()?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// The partition of `__consumer_offsets` that owns `group`, exactly as Kafka's
/// `GroupCoordinatorService::partitionFor` computes it:
/// `Utils.abs(groupId.hashCode()) % partitions`, where `Utils.abs` maps
/// `i32::MIN` to 0 and is `Math.abs` otherwise. (It is *not* `hash & 0x7fffffff`,
/// Kafka's `Utils.toPositive`: for `"my-group"`, hash -1906497762, the two give
/// 12 and 36 of 50 partitions.) Clients find their coordinator through this
/// mapping, so it must never change for a given partition count.
///
/// Panics if `partitions` is not positive; the topic's partition count is a
/// broker invariant.
pub fn partition_for_group(group: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "__consumer_offsets has {partitions} partitions"
    );
    let hash = java_string_hash_code(group);
    let absolute = if hash == i32::MIN { 0 } else { hash.abs() };
    absolute % partitions
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over the UTF-16
/// code units of the string, in wrapping 32-bit arithmetic.
pub fn java_string_hash_code(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

// ---------------------------------------------------------------------------
// Versioned encoders (Kafka writes only the versions chosen above; the others
// exist so tests can prove the decoders against every version).
// ---------------------------------------------------------------------------

fn encode_offset_value_version(value: &OffsetValue, version: i16) -> Result<Bytes, RecordError> {
    if !(0..=OFFSET_COMMIT_VALUE_VERSION_MAX).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "offset commit value",
            version,
        });
    }
    let flexible = version >= VALUE_VERSION_FLEXIBLE_MIN;
    let mut buffer = BytesMut::new();
    buffer.put_i16(version);
    buffer.put_i64(value.offset);
    if version >= 3 {
        buffer.put_i32(value.leader_epoch);
    }
    put_string(&mut buffer, &value.metadata, flexible);
    buffer.put_i64(value.commit_timestamp_ms);
    if version == 1 {
        buffer.put_i64(value.expire_timestamp_ms.unwrap_or(-1));
    }
    if flexible {
        put_unsigned_varint(&mut buffer, 0);
    }
    Ok(buffer.freeze())
}

fn encode_group_value_version(value: &GroupValue, version: i16) -> Result<Bytes, RecordError> {
    if !(0..=GROUP_METADATA_VALUE_VERSION_MAX).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group metadata value",
            version,
        });
    }
    let flexible = version >= VALUE_VERSION_FLEXIBLE_MIN;
    let mut buffer = BytesMut::new();
    buffer.put_i16(version);
    put_string(&mut buffer, &value.protocol_type, flexible);
    buffer.put_i32(value.generation);
    put_nullable_string(&mut buffer, value.protocol.as_deref(), flexible);
    put_nullable_string(&mut buffer, value.leader.as_deref(), flexible);
    if version >= 2 {
        buffer.put_i64(value.current_state_timestamp_ms);
    }
    put_length(&mut buffer, value.members.len(), flexible);
    for member in &value.members {
        put_string(&mut buffer, &member.member_id, flexible);
        if version >= 3 {
            put_nullable_string(&mut buffer, member.group_instance_id.as_deref(), flexible);
        }
        put_string(&mut buffer, &member.client_id, flexible);
        put_string(&mut buffer, &member.client_host, flexible);
        if version >= 1 {
            buffer.put_i32(member.rebalance_timeout_ms);
        }
        buffer.put_i32(member.session_timeout_ms);
        put_bytes(&mut buffer, &member.subscription, flexible);
        put_bytes(&mut buffer, &member.assignment, flexible);
        if flexible {
            put_unsigned_varint(&mut buffer, 0);
        }
    }
    if flexible {
        put_unsigned_varint(&mut buffer, 0);
    }
    Ok(buffer.freeze())
}

// ---------------------------------------------------------------------------
// Primitive writers
// ---------------------------------------------------------------------------

fn put_unsigned_varint(buffer: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buffer.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buffer.put_u8(value as u8);
}

fn put_string(buffer: &mut BytesMut, text: &str, flexible: bool) {
    assert!(
        text.len() <= STRING_BYTES_MAX,
        "a {}-byte string does not fit Kafka's i16 string length",
        text.len()
    );
    if flexible {
        put_unsigned_varint(buffer, text.len() as u32 + 1);
    } else {
        buffer.put_i16(text.len() as i16);
    }
    buffer.put_slice(text.as_bytes());
}

fn put_nullable_string(buffer: &mut BytesMut, text: Option<&str>, flexible: bool) {
    match text {
        Some(text) => put_string(buffer, text, flexible),
        None if flexible => put_unsigned_varint(buffer, 0),
        None => buffer.put_i16(-1),
    }
}

/// Writes an i32 (non-flexible) or varint length + 1 (flexible) array count
/// or bytes length.
fn put_length(buffer: &mut BytesMut, length: usize, flexible: bool) {
    let length = i32::try_from(length).expect("Kafka lengths fit in an i32");
    if flexible {
        put_unsigned_varint(buffer, length as u32 + 1);
    } else {
        buffer.put_i32(length);
    }
}

fn put_bytes(buffer: &mut BytesMut, data: &[u8], flexible: bool) {
    put_length(buffer, data.len(), flexible);
    buffer.put_slice(data);
}

// ---------------------------------------------------------------------------
// Bounds-checked reader
// ---------------------------------------------------------------------------

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Takes `need` bytes, failing with `Short` (and without moving) if fewer remain.
    fn take(&mut self, need: usize) -> Result<&'a [u8], RecordError> {
        let have = self.remaining();
        if need > have {
            return Err(RecordError::Short {
                offset: self.position,
                need,
                have,
            });
        }
        let taken = &self.bytes[self.position..self.position + need];
        self.position += need;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let taken = self.take(N)?;
        Ok(taken.try_into().expect("take returned exactly N bytes"))
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn invalid(offset: usize, reason: String) -> RecordError {
        RecordError::Invalid { offset, reason }
    }

    fn unsigned_varint(&mut self) -> Result<u32, RecordError> {
        let start = self.position;
        let mut value: u32 = 0;
        for index in 0..UNSIGNED_VARINT_BYTES_MAX {
            let [byte] = self.array::<1>()?;
            if index == UNSIGNED_VARINT_BYTES_MAX - 1 && byte > 0x0f {
                return Err(Self::invalid(
                    start,
                    "unsigned varint does not fit in 32 bits".to_string(),
                ));
            }
            value |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        unreachable!("the fifth varint byte either ends the varint or is rejected above")
    }

    /// Reads a string or array length: i16/i32 in non-flexible versions, varint
    /// of length + 1 in flexible ones. `None` means null.
    fn length(&mut self, wide: bool, flexible: bool) -> Result<Option<usize>, RecordError> {
        let start = self.position;
        if flexible {
            let encoded = self.unsigned_varint()?;
            return Ok(encoded.checked_sub(1).map(|length| length as usize));
        }
        let length = if wide {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match length {
            -1 => Ok(None),
            length if length < 0 => Err(Self::invalid(start, format!("negative length {length}"))),
            length => Ok(Some(length as usize)),
        }
    }

    fn nullable_string(&mut self, flexible: bool) -> Result<Option<String>, RecordError> {
        let start = self.position;
        let Some(length) = self.length(false, flexible)? else {
            return Ok(None);
        };
        if length > STRING_BYTES_MAX {
            return Err(Self::invalid(
                start,
                format!("string length {length} exceeds {STRING_BYTES_MAX}"),
            ));
        }
        let data_start = self.position;
        let data = self.take(length)?;
        match std::str::from_utf8(data) {
            Ok(text) => Ok(Some(text.to_string())),
            Err(_) => Err(RecordError::BadUtf8 { offset: data_start }),
        }
    }

    fn string(&mut self, field: &str, flexible: bool) -> Result<String, RecordError> {
        let start = self.position;
        self.nullable_string(flexible)?
            .ok_or_else(|| Self::invalid(start, format!("{field} is null but may not be")))
    }

    fn bytes(&mut self, field: &str, flexible: bool) -> Result<Bytes, RecordError> {
        let start = self.position;
        let length = self
            .length(true, flexible)?
            .ok_or_else(|| Self::invalid(start, format!("{field} is null but may not be")))?;
        Ok(Bytes::copy_from_slice(self.take(length)?))
    }

    fn array_count(&mut self, field: &str, flexible: bool) -> Result<usize, RecordError> {
        let start = self.position;
        self.length(true, flexible)?
            .ok_or_else(|| Self::invalid(start, format!("{field} is null but may not be")))
    }

    /// Skips a tagged-fields section: count, then tag, size and data per field.
    fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            let _tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            self.take(size as usize)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), RecordError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(Self::invalid(
                self.position,
                format!("{trailing} trailing bytes after the record"),
            )),
        }
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
