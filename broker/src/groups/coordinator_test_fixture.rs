//! Helpers shared by the coordinator unit tests: a coordinator over a real `LogManager` in a
//! temp dir and a hand-moved clock, commits, fetched offsets and joins.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::commits::{CommitEntry, Committer};
use super::coordinator::GroupCoordinator;
use super::membership::SyncRequest;
use super::state::{JoinRequest, MemberProtocol};
use super::{GroupConfig, ManualClock};
use crate::log::{LogManager, LogManagerConfig};

pub(super) fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_topic_partitions: 4,
        ..GroupConfig::default()
    }
}

pub(super) fn open(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
) -> (Arc<LogManager>, Arc<GroupCoordinator>) {
    open_with(dir, clock, config())
}

pub(super) fn open_with(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    config: GroupConfig,
) -> (Arc<LogManager>, Arc<GroupCoordinator>) {
    let logs = LogManager::open(LogManagerConfig::new(dir)).unwrap();
    if logs.topic("t").is_none() {
        logs.create_topic("t", 2, BTreeMap::new(), false).unwrap();
    }
    let coordinator = GroupCoordinator::open(logs.clone(), config, clock.clone()).unwrap();
    (logs, coordinator)
}

pub(super) fn group_ids(coordinator: &GroupCoordinator) -> Vec<String> {
    coordinator
        .list_groups(None)
        .into_iter()
        .map(|g| g.group_id)
        .collect()
}

pub(super) fn simple() -> Committer {
    Committer {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
    }
}

pub(super) fn entry(topic: &str, partition: i32, offset: i64) -> CommitEntry {
    CommitEntry {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: Some("m".into()),
    }
}

pub(super) fn committed(
    coordinator: &GroupCoordinator,
    group: &str,
    partition: i32,
) -> Option<i64> {
    let topics = [("t".to_owned(), vec![partition])];
    let fetched = coordinator.fetch_offsets(group, Some(&topics));
    fetched[0].1[0].1.as_ref().map(|v| v.offset)
}

pub(super) fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: 6_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![MemberProtocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"sub"),
        }],
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

/// Group "g" made Stable at generation 1 by one "consumer" member subscribed to topic "t";
/// returns that member as a committer.
pub(super) async fn stable_consumer_of_t(coordinator: &GroupCoordinator) -> Committer {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let mut metadata = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut metadata, 0);
    let subscription =
        ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t")]);
    subscription.encode(&mut metadata, 0).unwrap();
    let mut join = join_request("");
    join.protocols[0].metadata = metadata.freeze();
    let joined = coordinator.join("g", join).wait().await;
    let sync = SyncRequest {
        member_id: joined.member_id.clone(),
        group_instance_id: None,
        generation_id: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: BTreeMap::new(),
    };
    assert_eq!(coordinator.sync("g", sync).wait().await.error, None);
    Committer {
        member_id: joined.member_id.clone(),
        generation_id: 1,
        ..simple()
    }
}
