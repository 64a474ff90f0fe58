//! What the consumer hands out, and the partition key type.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// A topic and partition.
///
/// ```
/// let tp = runnel_client::TopicPartition::new("orders", 2);
/// assert_eq!(tp.to_string(), "orders-2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_owned(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One consumed record.
///
/// ```
/// # let record = runnel_client::ConsumerRecord::default();
/// let text = record.value.as_deref().map(String::from_utf8_lossy);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Shared by the records of one fetch (cloning it is a reference count, not a copy).
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl ConsumerRecord {
    pub(crate) fn from_wire(
        topic: &Arc<str>,
        partition: i32,
        record: runnel_protocol::records::Record,
    ) -> Self {
        ConsumerRecord {
            topic: topic.clone(),
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp,
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|h| (String::from_utf8_lossy(&h.key).into_owned(), h.value))
                .collect(),
        }
    }

    /// Approximate buffer footprint (payload plus a fixed overhead).
    pub fn size_bytes(&self) -> usize {
        64 + self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len)
    }
}
