//! The one place where internal errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use weir_storage::StorageError;
use weir_storage::producer_state::ProducerStateError;

use crate::partition::DeleteRecordsError;
use crate::replication::ReplicationError;
use crate::replication::control::ElectionError;

/// Kafka's "no error".
pub const NONE: i16 = 0;

/// The Kafka error code a storage error is reported with.
pub fn storage_error_code(error: &StorageError) -> i16 {
    match error {
        StorageError::CorruptBatch { .. } => ResponseError::CorruptMessage.code(),
        StorageError::UnsupportedMagic { .. } => ResponseError::InvalidRecord.code(),
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::InvalidRecord { .. } => ResponseError::InvalidRecord.code(),
        StorageError::InvalidTxnState { .. } => ResponseError::InvalidTxnState.code(),
        StorageError::Producer(ProducerStateError::StaleEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch.code()
        }
        StorageError::Producer(ProducerStateError::OutOfOrderSequence { .. }) => {
            ResponseError::OutOfOrderSequenceNumber.code()
        }
        StorageError::Io { .. }
        | StorageError::MalformedFile { .. }
        | StorageError::LowDiskSpace { .. } => ResponseError::KafkaStorageError.code(),
        // Only a follower's own append hits it; no client request does.
        StorageError::OffsetsOutOfOrder { .. } => ResponseError::UnknownServerError.code(),
    }
}

/// The Kafka error code of an ElectLeaders outcome.
pub fn election_error_code(error: &ElectionError) -> i16 {
    match error {
        ElectionError::NotNeeded => ResponseError::ElectionNotNeeded.code(),
        ElectionError::PreferredLeaderNotAvailable => {
            ResponseError::PreferredLeaderNotAvailable.code()
        }
        ElectionError::EligibleLeadersNotAvailable => {
            ResponseError::EligibleLeadersNotAvailable.code()
        }
        ElectionError::UnknownPartition => ResponseError::UnknownTopicOrPartition.code(),
    }
}

/// The Kafka error code of a replication refusal.
pub fn replication_error_code(error: &ReplicationError) -> i16 {
    match error {
        ReplicationError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower.code(),
        ReplicationError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch.code(),
        ReplicationError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch.code(),
        ReplicationError::InvalidUpdateVersion => ResponseError::InvalidUpdateVersion.code(),
        ReplicationError::IneligibleReplica => ResponseError::IneligibleReplica.code(),
        ReplicationError::OffsetOutOfRange => ResponseError::OffsetOutOfRange.code(),
        ReplicationError::NotEnoughReplicas => ResponseError::NotEnoughReplicas.code(),
        ReplicationError::NotEnoughReplicasAfterAppend => {
            ResponseError::NotEnoughReplicasAfterAppend.code()
        }
        // Kafka answers a fetch from a broker outside the replica set this way too.
        ReplicationError::UnknownReplica => ResponseError::NotLeaderOrFollower.code(),
    }
}

/// The Kafka error code a refused DeleteRecords partition is answered with.
pub fn delete_records_error_code(error: &DeleteRecordsError) -> i16 {
    match error {
        DeleteRecordsError::PolicyViolation { .. } => ResponseError::PolicyViolation.code(),
        DeleteRecordsError::Storage(error) => storage_error_code(error),
    }
}
