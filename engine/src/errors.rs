//! The one place where internal errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use weir_storage::StorageError;

/// Kafka's "no error".
pub const NONE: i16 = 0;

/// The Kafka error code a storage error is reported with.
pub fn storage_error_code(error: &StorageError) -> i16 {
    match error {
        StorageError::CorruptBatch { .. } => ResponseError::CorruptMessage.code(),
        StorageError::UnsupportedMagic { .. } => ResponseError::InvalidRecord.code(),
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::Io { .. } | StorageError::MalformedFile { .. } => {
            ResponseError::KafkaStorageError.code()
        }
    }
}
