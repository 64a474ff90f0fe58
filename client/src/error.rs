//! The one error type of the client crate, with the retriable / fatal split the producer's
//! retry loop and the consumer's fetch loop act on.

use kafka_protocol::ResponseError;

/// Everything that can go wrong talking to a Kafka-compatible broker.
///
/// ```
/// use runnel_client::Error;
/// let error = Error::Broker { code: 6, context: "produce t-0".into() };
/// assert!(error.is_retriable()); // NOT_LEADER_OR_FOLLOWER: refresh metadata and retry
/// ```
///
/// `Clone`, so a failed request's batches each get the same error: the I/O error is shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("connection to {addr} closed")]
    Disconnected { addr: String },
    #[error("{what} timed out after {timeout_ms} ms")]
    Timeout { what: String, timeout_ms: u64 },
    #[error("broker error {code} ({}) for {context}", error_name(*.code))]
    Broker { code: i16, context: String },
    #[error("no API version in common with the broker for {api}")]
    UnsupportedVersion { api: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("response of {size_bytes} bytes is above the {max_bytes}-byte limit")]
    ResponseTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    /// The topic had no usable metadata (missing, or no leader yet) for as long as the
    /// caller was willing to wait; `code` is the broker's last answer for it.
    #[error(
        "topic {topic} not available in metadata after waiting {waited_ms} ms (last answer: {})",
        error_name(*.code)
    )]
    TopicMetadataTimeout {
        topic: String,
        waited_ms: u64,
        code: i16,
    },
    /// Metadata named a broker (a partition's leader) that its broker list lacks: the
    /// metadata is stale or was caught mid-change, so it is asked for again and the request
    /// retried, as Java treats a leader it has no node for as not yet known.
    #[error("broker {broker_id} is not in the cached metadata")]
    BrokerNotInMetadata { broker_id: i32 },
    #[error("no bootstrap broker reachable ({0})")]
    NoBrokers(String),
    #[error("producer buffer full: {needed_bytes} bytes could not be reserved in {timeout_ms} ms")]
    BufferFull {
        needed_bytes: usize,
        timeout_ms: u64,
    },
    /// A batch was not delivered within the producer's `delivery_timeout_ms` of its first
    /// record being sent; `last_error` is why its last attempt failed, if it had one.
    #[error(
        "batch for {topic}-{partition} not delivered within delivery_timeout_ms {timeout_ms} ms (last error: {last_error})"
    )]
    DeliveryTimeout {
        topic: String,
        partition: i32,
        timeout_ms: u64,
        last_error: String,
    },
    #[error("record of {size_bytes} bytes is larger than the {max_bytes}-byte batch limit")]
    RecordTooLarge { size_bytes: usize, max_bytes: usize },
    /// The coordinator refused a commit because this member's generation is over
    /// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID: `code`): the group has
    /// rebalanced and may have given the partitions to another member, so nothing was
    /// committed. The next `poll` rejoins the group. Java's `CommitFailedException`.
    #[error(
        "commit for group {group} failed ({}): the group has already rebalanced and may have assigned the partitions to another member; the next poll rejoins",
        error_name(*.code)
    )]
    CommitFailed { group: String, code: i16 },
    /// The group is rebalancing (REBALANCE_IN_PROGRESS), so the commit was not made; the
    /// next `poll` rejoins, and a commit after it may succeed. Java's
    /// `RebalanceInProgressException`.
    #[error("commit for group {group} failed: the group is rebalancing; poll to complete the rebalance, then commit again")]
    RebalanceInProgress { group: String },
    /// A call that retries retriable errors (a synchronous commit, a fetch of committed
    /// offsets, an admin group call) did not succeed within its bound (`default_api_timeout_ms`,
    /// a poll's or rebalance's timeout, the admin's 60 s) of `timeout_ms`; `last_error` is why
    /// its last attempt failed. Retriable, as Java's `TimeoutException`.
    #[error("{what} did not succeed within {timeout_ms} ms (last error: {last_error})")]
    ApiTimeout {
        what: String,
        timeout_ms: u64,
        last_error: Box<Error>,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the client was closed")]
    Closed,
    #[error("invalid state: {0}")]
    State(String),
}

impl Error {
    /// True when the same request may succeed if sent again (after a metadata refresh or a
    /// backoff): network failures, timeouts and Kafka's retriable error codes.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Disconnected { .. }
            | Error::Timeout { .. }
            | Error::TopicMetadataTimeout { .. }
            | Error::BrokerNotInMetadata { .. }
            | Error::ApiTimeout { .. } => true,
            Error::Broker { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|error| error.is_retriable())
            }
            _ => false,
        }
    }

    /// True when the failure means the client's metadata may be stale, so it should ask
    /// for a metadata refresh before trying again — as Java does for its
    /// `InvalidMetadataException` errors (a moved or missing leader or topic, a lost
    /// connection) and only for those: a broker that is merely slow or short of replicas
    /// (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS, …) is retried against the same leader. A
    /// client-side request timeout counts as a lost connection: it closes the connection,
    /// and Java's network client asks for metadata when one closes.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Disconnected { .. }
            | Error::Timeout { .. }
            | Error::BrokerNotInMetadata { .. } => true,
            Error::Broker { code, .. } => matches!(
                *code,
                codes::UNKNOWN_TOPIC_OR_PARTITION
                    | codes::LEADER_NOT_AVAILABLE
                    | codes::NOT_LEADER_OR_FOLLOWER
                    | codes::NETWORK_EXCEPTION
                    | codes::KAFKA_STORAGE_ERROR
                    | codes::FENCED_LEADER_EPOCH
                    | codes::UNKNOWN_LEADER_EPOCH
                    | codes::UNKNOWN_TOPIC_ID
                    | codes::INCONSISTENT_TOPIC_ID
                    | codes::FETCH_SESSION_TOPIC_ID_ERROR
            ),
            _ => false,
        }
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. }
            | Error::TopicMetadataTimeout { code, .. }
            | Error::CommitFailed { code, .. } => Some(*code),
            Error::RebalanceInProgress { .. } => Some(codes::REBALANCE_IN_PROGRESS),
            _ => None,
        }
    }

    /// `Err(Error::Broker)` for a non-zero code, `Ok(())` for 0.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<(), Error> {
        if code == 0 {
            return Ok(());
        }
        Err(Error::Broker {
            code,
            context: context(),
        })
    }
}

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(error) => format!("{error:?}"),
        None => "unknown".to_owned(),
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kafka error codes the client branches on.
pub(crate) mod codes {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NETWORK_EXCEPTION: i16 = 13;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const INCONSISTENT_TOPIC_ID: i16 = 103;
    pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each batch a failed request carried gets the same error: a timeout stays a timeout
    /// (it was re-worded as "connection to <the timeout's text> closed").
    #[test]
    fn a_clone_reads_and_classifies_as_the_original() {
        let errors = [
            Error::Timeout {
                what: "Produce to 127.0.0.1:9092".into(),
                timeout_ms: 200,
            },
            Error::Io {
                addr: "127.0.0.1:9092".into(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into(),
            },
            Error::Broker {
                code: 6,
                context: "produce t-0".into(),
            },
            Error::Protocol("bad frame".into()),
        ];
        for error in &errors {
            let copy = error.clone();
            assert_eq!(copy.to_string(), error.to_string());
            assert_eq!(copy.is_retriable(), error.is_retriable());
            assert_eq!(copy.code(), error.code());
            assert_eq!(std::mem::discriminant(&copy), std::mem::discriminant(error));
        }
    }

    #[test]
    fn only_stale_metadata_errors_and_lost_connections_ask_for_metadata() {
        let broker = |code| Error::Broker {
            code,
            context: "produce t-0".into(),
        };
        // NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
        // FENCED_LEADER_EPOCH, KAFKA_STORAGE_ERROR, UNKNOWN_TOPIC_ID, INCONSISTENT_TOPIC_ID,
        // FETCH_SESSION_TOPIC_ID_ERROR (a topic recreated under a new id).
        for code in [6, 5, 3, 74, 56, 100, 103, 106] {
            assert!(broker(code).invalidates_metadata(), "{code}");
        }
        // REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), CORRUPT_MESSAGE,
        // COORDINATOR_LOAD_IN_PROGRESS: retriable, but the leader is still right.
        for code in [7, 19, 20, 2, 14] {
            assert!(broker(code).is_retriable(), "{code}");
            assert!(!broker(code).invalidates_metadata(), "{code}");
        }
        let lost = Error::Disconnected {
            addr: "127.0.0.1:9092".into(),
        };
        assert!(lost.invalidates_metadata());
        let unknown_leader = Error::BrokerNotInMetadata { broker_id: 7 };
        assert!(unknown_leader.is_retriable() && unknown_leader.invalidates_metadata());
        assert!(!Error::Protocol("bad frame".into()).invalidates_metadata());
    }
}
