//! The one place storage errors become Kafka error codes.

use kafka_protocol::error::ResponseError;

use crate::log::LogError;

/// The Kafka error a client sees for a storage error.
pub fn log_error_code(error: &LogError) -> ResponseError {
    match error {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
        LogError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        LogError::InvalidTopic(..) => ResponseError::InvalidTopicException,
        LogError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        LogError::InvalidConfig(_) => ResponseError::InvalidConfig,
        LogError::InvalidBatch(_) => ResponseError::CorruptMessage,
        LogError::Io(_) | LogError::Corruption { .. } | LogError::ShutDown => {
            ResponseError::KafkaStorageError
        }
        LogError::InconsistentTopicId { .. } => ResponseError::InconsistentTopicId,
    }
}

/// `log_error_code` as the i16 a response carries.
pub fn log_error_i16(error: &LogError) -> i16 {
    log_error_code(error).code()
}

/// The message every ACL request gets with SECURITY_DISABLED: this broker has no authorizer
/// (Kafka's answer when `authorizer.class.name` is unset), so there are no ACLs to list,
/// create or delete, and admin tools show ACLs as disabled rather than failing on an
/// unknown API.
pub const NO_AUTHORIZER_MESSAGE: &str = "No Authorizer is configured on the broker";
