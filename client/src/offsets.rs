//! Offset requests shared by the consumer and the admin client: ListOffsets (by timestamp,
//! earliest, latest; one request per partition leader, sent side by side), OffsetCommit and OffsetFetch (sent to
//! the group's coordinator connection the caller passes in).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{topic_name, Cluster};
use crate::conn::Connection;
use crate::consumer::TopicPartition;
use crate::error::{Error, Result};
use crate::retry::Retry;

/// ListOffsets `timestamp` for the first offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets `timestamp` for the next offset to be written (the high watermark).
pub const LATEST: i64 = -1;

/// The offset for `timestamp` (or [`EARLIEST`] / [`LATEST`]) of each partition; `-1` when
/// no record is at or after that timestamp. One request per leader broker for all of its
/// partitions, every broker's in flight at once; topics not in the metadata cache are asked
/// for in one Metadata request first.
pub async fn list_offsets(
    cluster: &Cluster,
    partitions: &[TopicPartition],
    timestamp: i64,
) -> Result<BTreeMap<TopicPartition, i64>> {
    // Each partition once: a broker answers a partition named twice with INVALID_REQUEST.
    let unique: BTreeSet<&TopicPartition> = partitions.iter().collect();
    let topics: BTreeSet<&str> = unique.iter().map(|tp| tp.topic.as_str()).collect();
    let uncached: Vec<String> = topics
        .into_iter()
        .filter(|topic| cluster.cached_partition_count(topic).is_none())
        .map(str::to_owned)
        .collect();
    if !uncached.is_empty() {
        cluster.refresh(Some(&uncached)).await?;
    }
    let mut by_leader: HashMap<i32, Vec<&TopicPartition>> = HashMap::new();
    for tp in unique {
        // From the cache now; asks again only for a topic the refresh did not settle.
        let leader = cluster.leader(&tp.topic, tp.partition).await?;
        by_leader.entry(leader).or_default().push(tp);
    }
    let requests = by_leader
        .into_iter()
        .map(|(leader, tps)| list_offsets_at(cluster, leader, tps, timestamp));
    let mut out = BTreeMap::new();
    for answer in futures::future::try_join_all(requests).await? {
        out.extend(answer);
    }
    Ok(out)
}

/// One ListOffsets request to broker `leader` for `partitions`.
async fn list_offsets_at(
    cluster: &Cluster,
    leader: i32,
    partitions: Vec<&TopicPartition>,
    timestamp: i64,
) -> Result<Vec<(TopicPartition, i64)>> {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_timestamp(timestamp),
        );
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = cluster.broker(leader).await?.send(&request).await?;
    let mut out = Vec::new();
    for topic in response.topics {
        for p in topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            Error::check(p.error_code, || format!("list offsets {tp}"))?;
            out.push((tp, p.offset));
        }
    }
    Ok(out)
}

/// Commits `offsets` (the next offset to read, per partition) for `group_id`.
/// Outside a generation (assign mode, admin) pass `generation_id = -1` and an empty member.
pub async fn commit(
    coordinator: &Connection,
    group_id: &str,
    generation_id: i32,
    member_id: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, offset) in offsets {
        topics.entry(&tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(*offset),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_owned())))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = coordinator.send(&request).await?;
    for topic in response.topics {
        for p in topic.partitions {
            Error::check(p.error_code, || {
                format!("commit {}-{}", topic.name.0.as_str(), p.partition_index)
            })?;
        }
    }
    Ok(())
}

/// Committed offsets of `group_id` (`partitions: None`: every partition it committed).
/// Partitions without a commit are left out.
pub async fn committed(
    coordinator: &Connection,
    group_id: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let topics = partitions.map(|tps| {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in tps {
            topics.entry(&tp.topic).or_default().push(tp.partition);
        }
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(name))
                    .with_partition_indexes(partitions)
            })
            .collect()
    });
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_owned())))
        .with_topics(topics);
    let response = coordinator.send(&request).await?;
    Error::check(response.error_code, || format!("offset fetch {group_id}"))?;
    let mut out = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            Error::check(p.error_code, || format!("offset fetch {tp}"))?;
            if p.committed_offset >= 0 {
                out.insert(tp, p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// ListOffsets for `partitions` at `timestamp`, retrying retriable errors (a leader moved or
/// missing, a lost connection, a slow broker) as `retry` allows, the leaders' metadata asked
/// for again when it may be stale; past the time, [`Error::ApiTimeout`].
pub(crate) async fn list_offsets_retrying(
    cluster: &std::sync::Arc<Cluster>,
    partitions: &[TopicPartition],
    timestamp: i64,
    retry: &mut Retry,
) -> Result<BTreeMap<TopicPartition, i64>> {
    loop {
        let error = match list_offsets(cluster, partitions, timestamp).await {
            Ok(listed) => return Ok(listed),
            Err(error) => error,
        };
        if error.invalidates_metadata() {
            for tp in partitions {
                cluster.request_refresh(&tp.topic);
            }
        }
        let retriable = error.is_retriable();
        let what = || format!("listing the offsets of {partitions:?}");
        retry.after(error, retriable, what).await?;
    }
}
