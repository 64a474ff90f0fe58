//! Committed offsets over TCP: simple (generation -1) commits at every version, fetches at
//! every version, member commits with stale generations and unknown members, unknown
//! partitions failing alone, OffsetDelete, offsets surviving a broker restart, offsets
//! of a deleted topic removed, and v1's wire format byte by byte.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteTopicsRequest, GroupId, JoinGroupRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::requests::topic_name;
use runnel_tests::wire::{frame, get_str, put_str};
use runnel_tests::{TestBroker, TestClient};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn create_topic(broker: &TestBroker, name: &str, partitions: i32) {
    broker
        .context()
        .logs
        .create_topic(name, partitions, BTreeMap::new(), false)
        .unwrap();
}

/// A commit of `(topic, partition, offset)` entries by `member_id` at `generation`.
fn commit(
    group: &str,
    member_id: &str,
    generation: i32,
    entries: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in entries {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(s("meta")));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(topics)
}

async fn commit_codes(
    client: &mut TestClient,
    request: OffsetCommitRequest,
    version: i16,
) -> Vec<i16> {
    let response = client.send(request, version).await;
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// Committed offsets of `partitions` of `topic` (v1–7 form).
async fn fetch(
    client: &mut TestClient,
    group: &str,
    topic: &str,
    partitions: &[i32],
    version: i16,
) -> Vec<i64> {
    let topics = vec![OffsetFetchRequestTopic::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(partitions.to_vec())];
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(topics));
    let response = client.send(request, version).await;
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

#[tokio::test]
async fn simple_commits_and_fetches_at_every_version_survive_restart() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "orders", 3);
    let mut client = broker.client().await;
    for version in 1..=8 {
        let offset = i64::from(version) * 10;
        let codes = commit_codes(
            &mut client,
            commit(
                "simple",
                "",
                -1,
                &[("orders", 0, offset), ("orders", 2, offset + 1)],
            ),
            version,
        )
        .await;
        assert_eq!(codes, vec![0, 0], "v{version}");
        for fetch_version in 1..=7 {
            assert_eq!(
                fetch(&mut client, "simple", "orders", &[0, 1, 2], fetch_version).await,
                vec![offset, -1, offset + 1]
            );
        }
    }
    // v8: several groups in one request, and "all topics" for one of them.
    let group = |id: &str, topics| {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_topics(topics)
    };
    let one = OffsetFetchRequestTopics::default()
        .with_name(topic_name("orders"))
        .with_partition_indexes(vec![2]);
    let request = OffsetFetchRequest::default().with_groups(vec![
        group("simple", None),
        group("nobody", Some(vec![one])),
    ]);
    let response = client.send(request, 8).await;
    assert_eq!(response.groups.len(), 2);
    let all: Vec<(i32, i64)> = response.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(all, vec![(0, 80), (2, 81)]);
    assert_eq!(
        response.groups[0].topics[0].partitions[0]
            .metadata
            .as_deref(),
        Some("meta")
    );
    assert_eq!(
        response.groups[1].topics[0].partitions[0].committed_offset,
        -1
    );
    // Acknowledged commits are durable: a restart on the same data dir still has them.
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(
        fetch(&mut client, "simple", "orders", &[0, 1, 2], 7).await,
        vec![80, -1, 81]
    );
}

#[tokio::test]
async fn unknown_partitions_fail_alone_and_members_are_checked() {
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 0).await;
    create_topic(&broker, "t", 2);
    let mut client = broker.client().await;
    let entries = [("t", 0, 5), ("t", 7, 5), ("missing", 0, 5)];
    let codes = commit_codes(&mut client, commit("g", "", -1, &entries), 8).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![0, unknown, unknown]);
    // A stale member of a group that does not exist.
    let codes = commit_codes(&mut client, commit("fresh", "m", 4, &[("t", 0, 1)]), 8).await;
    assert_eq!(codes, vec![ResponseError::IllegalGeneration.code()]);
    // A real member at generation 1.
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::new());
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol]);
    let joined = client.send(join, 3).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let member = joined.member_id.to_string();
    let rebalancing = commit_codes(&mut client, commit("g", &member, 1, &[("t", 0, 6)]), 8).await;
    assert_eq!(
        rebalancing,
        vec![ResponseError::RebalanceInProgress.code()],
        "no commits before the assignment"
    );
    let sync = kafka_protocol::messages::SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(1)
        .with_member_id(s(&member));
    assert_eq!(client.send(sync, 5).await.error_code, 0);
    assert_eq!(
        commit_codes(&mut client, commit("g", &member, 1, &[("t", 0, 6)]), 8).await,
        vec![0]
    );
    let stale = commit_codes(&mut client, commit("g", &member, 0, &[("t", 0, 7)]), 8).await;
    assert_eq!(stale, vec![ResponseError::IllegalGeneration.code()]);
    let stranger = commit_codes(&mut client, commit("g", "stranger", 1, &[("t", 0, 7)]), 8).await;
    assert_eq!(stranger, vec![ResponseError::UnknownMemberId.code()]);
    let simple = commit_codes(&mut client, commit("g", "", -1, &[("t", 0, 7)]), 8).await;
    assert_eq!(
        simple,
        vec![ResponseError::UnknownMemberId.code()],
        "no simple commits into an active group"
    );
    assert_eq!(fetch(&mut client, "g", "t", &[0], 7).await, vec![6]);
}

#[tokio::test]
async fn offset_delete_removes_offsets_of_an_empty_group() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "t", 2);
    let mut client = broker.client().await;
    let codes = commit_codes(
        &mut client,
        commit("od", "", -1, &[("t", 0, 3), ("t", 1, 4)]),
        8,
    )
    .await;
    assert_eq!(codes, vec![0, 0]);
    let topic = |name: &str, partitions: &[i32]| {
        OffsetDeleteRequestTopic::default()
            .with_name(topic_name(name))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                    .collect(),
            )
    };
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("od")))
        .with_topics(vec![topic("t", &[0]), topic("gone", &[0])]);
    let response = client.send(request, 0).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        response.topics[1].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(fetch(&mut client, "od", "t", &[0, 1], 7).await, vec![-1, 4]);
    let missing = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("nope")))
        .with_topics(vec![topic("t", &[0])]);
    assert_eq!(
        client.send(missing, 0).await.error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(fetch(&mut client, "od", "t", &[0, 1], 7).await, vec![-1, 4]);
}

#[tokio::test]
async fn oversized_metadata_fails_that_partition_only_and_the_group_stays_healthy() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "m", 2);
    let mut client = broker.client().await;
    let mut request = commit("meta", "", -1, &[("m", 0, 3), ("m", 1, 4)]);
    // `offset.metadata.max.bytes` is 4096: one byte more fails partition 1 alone.
    request.topics[0].partitions[1].committed_metadata = Some(s(&"x".repeat(4097)));
    let codes = commit_codes(&mut client, request, 8).await;
    assert_eq!(
        codes,
        vec![0, ResponseError::OffsetMetadataTooLarge.code()],
        "Kafka's code for metadata over the limit"
    );
    assert_eq!(
        fetch(&mut client, "meta", "m", &[0, 1], 7).await,
        vec![3, -1]
    );
    // The same group keeps working afterwards, on this and on a new connection.
    let codes = commit_codes(&mut client, commit("meta", "", -1, &[("m", 1, 9)]), 8).await;
    assert_eq!(codes, vec![0]);
    let mut other = broker.client().await;
    assert_eq!(fetch(&mut other, "meta", "m", &[0, 1], 7).await, vec![3, 9]);
}

/// DeleteTopics drops the topic's committed offsets from every group (Kafka's
/// onPartitionsDeleted): a topic created again under the same name has no committed offsets,
/// also after a restart, while the group's other offsets stay.
#[tokio::test]
async fn deleting_a_topic_removes_its_committed_offsets() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "gone", 2);
    create_topic(&broker, "kept", 1);
    let mut client = broker.client().await;
    let entries = [("gone", 0, 500), ("gone", 1, 7), ("kept", 0, 3)];
    let codes = commit_codes(&mut client, commit("g", "", -1, &entries), 8).await;
    assert_eq!(codes, vec![0; 3]);
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![topic_name("gone")]);
    assert_eq!(client.send(delete, 5).await.responses[0].error_code, 0);
    create_topic(&broker, "gone", 2);
    assert_eq!(
        fetch(&mut client, "g", "gone", &[0, 1], 7).await,
        vec![-1, -1]
    );
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(
        fetch(&mut client, "g", "gone", &[0, 1], 7).await,
        vec![-1, -1]
    );
    assert_eq!(fetch(&mut client, "g", "kept", &[0], 7).await, vec![3]);
}

/// OffsetCommit v1, as sarama before 1.23 sends it by default (the broker used to close the
/// connection, so a sarama consumer group never committed). Built and read byte by byte, so
/// the wire format is checked against Kafka's v1 schema rather than against our codec: a
/// commit timestamp per partition and no retention time; a response without throttle time.
#[tokio::test]
async fn v1_commits_carry_a_timestamp_per_partition_and_are_stored() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "orders", 2);
    let mut client = broker.client().await;

    let mut body = BytesMut::new();
    put_str(&mut body, "legacy");
    body.put_i32(-1); // generation: a simple (non-member) commit
    put_str(&mut body, "");
    body.put_i32(1); // topics
    put_str(&mut body, "orders");
    body.put_i32(2); // partitions
    for (partition, offset, timestamp_ms, metadata) in
        [(0, 42_i64, -1_i64, "m0"), (1, 7, 1_700_000_000_000, "")]
    {
        body.put_i32(partition);
        body.put_i64(offset);
        body.put_i64(timestamp_ms);
        put_str(&mut body, metadata);
    }
    client.send_raw(&frame(8, 1, &body)).await;
    let mut response = client
        .read_frame()
        .await
        .expect("a v1 response, not a closed connection");
    assert_eq!(response.get_i32(), 1, "correlation id");
    assert_eq!(response.get_i32(), 1, "topics");
    assert_eq!(get_str(&mut response), "orders");
    assert_eq!(response.get_i32(), 2, "partitions");
    for partition in 0..2 {
        assert_eq!(response.get_i32(), partition);
        assert_eq!(response.get_i16(), 0, "error code of partition {partition}");
    }
    assert_eq!(response.remaining(), 0, "nothing after the topics at v1");
    assert_eq!(
        fetch(&mut client, "legacy", "orders", &[0, 1], 1).await,
        vec![42, 7]
    );

    // Our codec writes v1 the same way.
    let codes = commit_codes(
        &mut client,
        commit("legacy", "", -1, &[("orders", 1, 9)]),
        1,
    )
    .await;
    assert_eq!(codes, vec![0]);
    assert_eq!(
        fetch(&mut client, "legacy", "orders", &[0, 1], 7).await,
        vec![42, 9]
    );
}

/// Once the coordinator has created `__consumer_offsets`, a Metadata request for every
/// topic lists it flagged internal, as Kafka does (clients and tools hide it by that flag:
/// Java's `listTopics()` and `exclude.internal.topics`, `runnel topics list` without
/// `--internal`); it was listed only when asked for by name.
#[tokio::test]
async fn every_topic_metadata_lists_the_offsets_topic_flagged_internal() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "orders", 1);
    let mut client = broker.client().await;
    let codes = commit_codes(&mut client, commit("g", "", -1, &[("orders", 0, 5)]), 8).await;
    assert_eq!(codes, vec![0]);
    for version in [1, 9, 12] {
        let all = client
            .send(runnel_tests::requests::metadata(None), version)
            .await;
        let flagged: BTreeMap<&str, bool> = all
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map_or("", |n| n.0.as_str()), t.is_internal))
            .collect();
        assert_eq!(
            flagged,
            BTreeMap::from([("__consumer_offsets", true), ("orders", false)]),
            "v{version}"
        );
    }
}
