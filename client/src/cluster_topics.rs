//! What the cluster's Metadata says about topics: [`TopicInfo`] and [`PartitionInfo`], how
//! long a lookup waits for a topic ([`MetadataWait`]), and which topic errors are worth
//! asking again about.

use crate::error::{codes, Error};

/// One partition's metadata.
///
/// ```no_run
/// # async fn example(cluster: &runnel_client::Cluster) -> runnel_client::Result<()> {
/// let info = cluster.topic("orders").await?;
/// let leaders: Vec<i32> = info.partitions.iter().map(|p| p.leader).collect();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic's metadata; `partitions` sorted by index.
///
/// ```no_run
/// # async fn example(cluster: &runnel_client::Cluster) -> runnel_client::Result<()> {
/// for topic in cluster.topics().await? {
///     println!("{}: {} partitions", topic.name, topic.partitions.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// The topic's id (KIP-516), nil when the broker's Metadata (below v10) names none.
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionInfo>,
    pub internal: bool,
}

impl TopicInfo {
    /// One partition's metadata (`partitions` is sorted by index, and dense as Kafka
    /// assigns them, so this is usually a direct index).
    pub fn partition(&self, partition: i32) -> Option<&PartitionInfo> {
        let direct = usize::try_from(partition)
            .ok()
            .and_then(|index| self.partitions.get(index))
            .filter(|p| p.partition == partition);
        direct.or_else(|| {
            self.partitions
                .binary_search_by_key(&partition, |p| p.partition)
                .ok()
                .map(|index| &self.partitions[index])
        })
    }
}

/// A topic's id and partition leaders as cached, copied out under one lock for a caller
/// that looks at many of its partitions at once (the fetcher, per Fetch it plans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLeaders {
    /// Nil when the metadata names none.
    pub topic_id: uuid::Uuid,
    /// (partition, leader), sorted by partition as [`TopicInfo::partitions`].
    leaders: Vec<(i32, i32)>,
}

impl TopicLeaders {
    pub fn of(info: &TopicInfo) -> TopicLeaders {
        TopicLeaders {
            topic_id: info.topic_id,
            leaders: info
                .partitions
                .iter()
                .map(|p| (p.partition, p.leader))
                .collect(),
        }
    }

    /// The partition's leader, if the metadata names one (as [`TopicInfo::partition`]
    /// finds it: usually a direct index).
    pub fn leader(&self, partition: i32) -> Option<i32> {
        let direct = usize::try_from(partition)
            .ok()
            .and_then(|index| self.leaders.get(index))
            .filter(|(p, _)| *p == partition);
        let found = direct.or_else(|| {
            let index = self.leaders.binary_search_by_key(&partition, |(p, _)| *p);
            index.ok().and_then(|index| self.leaders.get(index))
        });
        found
            .map(|(_, leader)| *leader)
            .filter(|leader| *leader >= 0)
    }
}

/// How long [`Cluster::wait_for_topic`](super::Cluster::wait_for_topic) keeps asking for a topic's metadata, and how far
/// apart: the pause starts at `backoff_ms` and doubles up to `backoff_max_ms` (Kafka's
/// `retry.backoff.ms` / `retry.backoff.max.ms`), so a topic being created is seen within a
/// pause of its leader appearing without a broker being asked every few milliseconds.
///
/// ```
/// use runnel_client::cluster::MetadataWait;
/// let wait = MetadataWait { max_block_ms: 300, ..MetadataWait::LOOKUP };
/// assert!(!wait.wait_for_missing);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataWait {
    /// Give up after this long (the producer's `max_block_ms`, Java's `max.block.ms`).
    pub max_block_ms: u64,
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    /// Also wait for a topic the broker does not know (UNKNOWN_TOPIC_OR_PARTITION), as a
    /// producer does for a topic someone is about to create; otherwise it is reported at once.
    pub wait_for_missing: bool,
}

impl MetadataWait {
    /// [`Cluster::topic`](super::Cluster::topic)'s wait: a topic just created (or auto-created) has a leader within
    /// a few hundred milliseconds; a missing one is reported at once.
    pub const LOOKUP: MetadataWait = MetadataWait {
        max_block_ms: 2_000,
        backoff_ms: 100,
        backoff_max_ms: 1_000,
        wait_for_missing: false,
    };

    /// The pause after `pause_ms`: doubled, within `[backoff_ms, backoff_max_ms]`.
    pub(super) fn next_backoff_ms(&self, pause_ms: u64) -> u64 {
        pause_ms
            .saturating_mul(2)
            .clamp(self.backoff_ms, self.backoff_max_ms.max(self.backoff_ms))
    }
}

/// Whether a topic's metadata error means "ask again" rather than "not there":
/// UNKNOWN_TOPIC_OR_PARTITION is retriable to Kafka, but a topic that was deleted or
/// never created is not worth waiting for here.
pub(super) fn is_retriable_topic_error(code: i16) -> bool {
    code != codes::UNKNOWN_TOPIC_OR_PARTITION
        && Error::Broker {
            code,
            context: String::new(),
        }
        .is_retriable()
}

/// One topic's metadata from a Metadata response (partitions sorted by index).
pub(super) fn topic_info(
    name: String,
    topic: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> TopicInfo {
    let mut partitions: Vec<PartitionInfo> = topic
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            error_code: p.error_code,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    TopicInfo {
        name,
        topic_id: topic.topic_id,
        partitions,
        internal: topic.is_internal,
    }
}
