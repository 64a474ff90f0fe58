//! A scripted one-node broker for unit tests: answers ApiVersions, Metadata, Produce,
//! ListOffsets, FindCoordinator, JoinGroup, Heartbeat, OffsetCommit, OffsetFetch and
//! DeleteGroups as a test's [`Script`] says (and SyncGroup and LeaveGroup for a group of one
//! member, DescribeGroups as an empty group), and Fetch with scripted records, errors and
//! KIP-227 session ids (recording what each Fetch asked for), so producer, group,
//! position-reset, commit and fetch-session behaviour against leaders that come and go, or
//! brokers that never answer, can be shown without a real broker. Requests on a connection are answered in order; one the script leaves unanswered
//! holds up the rest of that connection, as a stuck broker would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FetchRequest, FindCoordinatorResponse,
    HeartbeatResponse, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::topic_name;

#[path = "fake_broker_fetch.rs"]
mod fetch;
pub(crate) use fetch::SeenFetch;
use fetch::{fetch, topic_id};

/// One topic as Metadata reports it: a topic-level error, or its partitions' leaders
/// (-1: no leader, reported with LEADER_NOT_AVAILABLE on the partition), or `Hangup`:
/// the connection is closed without an answer.
pub(crate) enum TopicAnswer {
    Error(i16),
    Leaders(Vec<i32>),
    Hangup,
}

type MetadataScript = dyn Fn(&str) -> TopicAnswer + Send + Sync;
type ProduceScript = dyn Fn(&str, i32) -> Option<i16> + Send + Sync;
type CoordinatorScript = dyn Fn() -> Option<i16> + Send + Sync;
type DelayScript = dyn Fn() -> u64 + Send + Sync;
type GroupScript = dyn Fn(&str) -> Option<i16> + Send + Sync;
type FetchScript = dyn Fn(i64) -> i16 + Send + Sync;
type FetchRecordsScript = dyn Fn(&str, i32, i64) -> Option<Bytes> + Send + Sync;
type FetchSessionScript = dyn Fn(&SeenFetch) -> (i16, i32) + Send + Sync;
type TopicIdScript = dyn Fn(&str) -> bool + Send + Sync;

/// What the broker answers. `produce` gives a partition's error code, or `None` to never
/// answer; `find_coordinator` likewise (`Some(0)`: this node), and `join_group` (`Some(0)`:
/// the joining member is the group's only member and its leader). `produce_delay_ms` is
/// asked once per Produce request, before `produce`: how long the broker takes to answer
/// it (holding up that connection meanwhile, as a slow broker does).
#[derive(Clone)]
pub(crate) struct Script {
    pub metadata: Arc<MetadataScript>,
    pub produce: Arc<ProduceScript>,
    pub produce_delay_ms: Arc<DelayScript>,
    pub find_coordinator: Arc<CoordinatorScript>,
    pub join_group: Arc<CoordinatorScript>,
    /// Each Heartbeat's error code, or `None` to never answer it.
    pub heartbeat: Arc<CoordinatorScript>,
    /// Each OffsetCommit's error code for all of its partitions, or `None` to never answer.
    pub offset_commit: Arc<CoordinatorScript>,
    /// Each OffsetFetch's group-level error code, or `None` to never answer; with 0 every
    /// partition asked for is answered [`COMMITTED_OFFSET`].
    pub offset_fetch: Arc<CoordinatorScript>,
    /// Each ListOffsets' error code for all of its partitions, or `None` to never answer;
    /// with 0 every partition asked for is at [`LISTED_OFFSET`].
    pub list_offsets: Arc<CoordinatorScript>,
    /// Each DeleteGroups' error code for each group it names, asked with the group's id (in
    /// the per-group result, as the real broker reports them), or `None` (for any of them)
    /// to never answer.
    pub delete_groups: Arc<GroupScript>,
    /// Fetch, advertised only when set: each partition's error code, asked with the offset
    /// it is fetched at. An error is answered at once; 0 (no records) after the request's
    /// `max_wait_ms`, as a broker with nothing new.
    pub fetch: Option<Arc<FetchScript>>,
    /// The records of a listed partition (topic, partition, fetch offset) without an error;
    /// an answer with records in it is sent at once.
    pub fetch_records: Arc<FetchRecordsScript>,
    /// Each Fetch's top-level error code and session id, asked with the request as seen;
    /// a top-level error is answered at once, without partitions.
    pub fetch_session: Arc<FetchSessionScript>,
    /// The highest Fetch version advertised (at least 4).
    pub fetch_version_max: i16,
    /// InitProducerId, advertised (v0–v4) only when set: the error code every request gets
    /// (0: producer id 1000, epoch 0).
    pub init_producer_id: Option<i16>,
    /// Whether Metadata gives the topic an id (one derived from its name).
    pub topic_has_id: Arc<TopicIdScript>,
    /// The ids Metadata handed out, to read Fetch v13+ by.
    pub topic_ids: Arc<Mutex<HashMap<uuid::Uuid, String>>>,
    /// Every Fetch, in the order they arrived.
    pub fetches_seen: Arc<Mutex<Vec<SeenFetch>>>,
    /// Every OffsetCommit's offsets, in the order they arrived (answered or not).
    pub commits_seen: Arc<std::sync::Mutex<Vec<Vec<i64>>>>,
}

/// The committed offset OffsetFetch reports for every partition.
pub(crate) const COMMITTED_OFFSET: i64 = 7;

/// The offset ListOffsets reports for every partition.
pub(crate) const LISTED_OFFSET: i64 = 3;

impl Default for Script {
    fn default() -> Script {
        Script {
            metadata: Arc::new(|_| TopicAnswer::Leaders(vec![0])),
            produce: Arc::new(|_, _| Some(0)),
            produce_delay_ms: Arc::new(|| 0),
            find_coordinator: Arc::new(|| Some(0)),
            join_group: Arc::new(|| Some(0)),
            heartbeat: Arc::new(|| Some(0)),
            offset_commit: Arc::new(|| Some(0)),
            offset_fetch: Arc::new(|| Some(0)),
            list_offsets: Arc::new(|| Some(0)),
            delete_groups: Arc::new(|_| Some(0)),
            fetch: None,
            fetch_records: Arc::new(|_, _, _| None),
            fetch_session: Arc::new(|_| (0, 0)),
            fetch_version_max: 12,
            init_producer_id: None,
            topic_has_id: Arc::new(|_| true),
            topic_ids: Arc::default(),
            fetches_seen: Arc::default(),
            commits_seen: Arc::default(),
        }
    }
}

const LEADER_NOT_AVAILABLE: i16 = 5;

/// Starts the broker on `127.0.0.1:0`; returns its address.
pub(crate) async fn start(script: Script) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, addr.port(), script.clone()));
        }
    });
    addr.to_string()
}

/// Answers one connection's requests until the client closes it (or sends what this fake
/// cannot read): the task then ends quietly, as a broker drops a connection, instead of
/// panicking and logging noise into the test that closed it.
async fn serve(mut stream: tokio::net::TcpStream, port: u16, script: Script) {
    while let Ok(size) = stream.read_i32().await {
        let Ok(size) = usize::try_from(size) else {
            return;
        };
        let mut frame = vec![0u8; size];
        if size < 4 || stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let Ok(key) = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])) else {
            return;
        };
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let mut body = Bytes::from(frame);
        let Ok(header) = RequestHeader::decode(&mut body, key.request_header_version(version))
        else {
            return;
        };
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        let answered = match key {
            ApiKey::ApiVersions => {
                let mut versions = api_versions();
                if script.fetch.is_some() {
                    versions.api_keys.push(
                        ApiVersion::default()
                            .with_api_key(ApiKey::Fetch as i16)
                            .with_min_version(4)
                            .with_max_version(script.fetch_version_max),
                    );
                }
                if script.init_producer_id.is_some() {
                    versions.api_keys.push(
                        ApiVersion::default()
                            .with_api_key(ApiKey::InitProducerId as i16)
                            .with_max_version(4),
                    );
                }
                versions.encode(&mut out, version).is_ok()
            }
            ApiKey::Fetch => match &script.fetch {
                Some(answer) => {
                    let request = FetchRequest::decode(&mut body, version).unwrap();
                    let (response, wait) = fetch(&request, version, answer.as_ref(), &script);
                    if wait {
                        let wait_ms = u64::try_from(request.max_wait_ms).unwrap_or(0);
                        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                    }
                    response.encode(&mut out, version).is_ok()
                }
                None => false,
            },
            ApiKey::Metadata => {
                let request = MetadataRequest::decode(&mut body, version).unwrap();
                let names: Vec<String> = request
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect();
                let answers: Vec<(&String, TopicAnswer)> =
                    names.iter().map(|n| (n, (script.metadata)(n))).collect();
                if answers
                    .iter()
                    .any(|(_, answer)| matches!(answer, TopicAnswer::Hangup))
                {
                    return;
                }
                metadata(port, answers, &script)
                    .encode(&mut out, version)
                    .is_ok()
            }
            ApiKey::Produce => {
                let request = ProduceRequest::decode(&mut body, version).unwrap();
                let delay_ms = (script.produce_delay_ms)();
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                match produce(&request, &script) {
                    Some(response) => response.encode(&mut out, version).is_ok(),
                    None => false,
                }
            }
            ApiKey::FindCoordinator => match (script.find_coordinator)() {
                Some(code) => FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_node_id(BrokerId(if code == 0 { 0 } else { -1 }))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(port))
                    .encode(&mut out, version)
                    .is_ok(),
                None => false,
            },
            ApiKey::JoinGroup => {
                let request = JoinGroupRequest::decode(&mut body, version).unwrap();
                match (script.join_group)() {
                    Some(code) => join_group(request, code).encode(&mut out, version).is_ok(),
                    None => false,
                }
            }
            ApiKey::SyncGroup => {
                // The only member is the leader: it gets what it assigned itself.
                let request = SyncGroupRequest::decode(&mut body, version).unwrap();
                let assignment = request
                    .assignments
                    .into_iter()
                    .find(|a| a.member_id == request.member_id)
                    .map(|a| a.assignment)
                    .unwrap_or_default();
                SyncGroupResponse::default()
                    .with_protocol_type(request.protocol_type)
                    .with_protocol_name(request.protocol_name)
                    .with_assignment(assignment)
                    .encode(&mut out, version)
                    .is_ok()
            }
            ApiKey::Heartbeat => match (script.heartbeat)() {
                Some(code) => HeartbeatResponse::default()
                    .with_error_code(code)
                    .encode(&mut out, version)
                    .is_ok(),
                None => false,
            },
            ApiKey::OffsetCommit => {
                let request = OffsetCommitRequest::decode(&mut body, version).unwrap();
                let offsets = request.topics.iter().flat_map(|t| t.partitions.iter());
                let offsets = offsets.map(|p| p.committed_offset).collect();
                script.commits_seen.lock().unwrap().push(offsets);
                match (script.offset_commit)() {
                    Some(code) => offset_commit(request, code)
                        .encode(&mut out, version)
                        .is_ok(),
                    None => false,
                }
            }
            ApiKey::OffsetFetch => {
                let request = OffsetFetchRequest::decode(&mut body, version).unwrap();
                match (script.offset_fetch)() {
                    Some(code) => offset_fetch(request, code)
                        .encode(&mut out, version)
                        .is_ok(),
                    None => false,
                }
            }
            ApiKey::ListOffsets => {
                let request = ListOffsetsRequest::decode(&mut body, version).unwrap();
                match (script.list_offsets)() {
                    Some(code) => list_offsets(request, code)
                        .encode(&mut out, version)
                        .is_ok(),
                    None => false,
                }
            }
            ApiKey::DeleteGroups => {
                let request = DeleteGroupsRequest::decode(&mut body, version).unwrap();
                let results: Option<Vec<DeletableGroupResult>> = request
                    .groups_names
                    .into_iter()
                    .map(|group_id| {
                        let code = (script.delete_groups)(group_id.0.as_str())?;
                        Some(
                            DeletableGroupResult::default()
                                .with_group_id(group_id)
                                .with_error_code(code),
                        )
                    })
                    .collect();
                match results {
                    Some(results) => DeleteGroupsResponse::default()
                        .with_results(results)
                        .encode(&mut out, version)
                        .is_ok(),
                    None => false,
                }
            }
            ApiKey::DescribeGroups => {
                // Every group asked for is an empty consumer group.
                let request = DescribeGroupsRequest::decode(&mut body, version).unwrap();
                let groups = request.groups.into_iter().map(|group_id| {
                    DescribedGroup::default()
                        .with_group_id(group_id)
                        .with_group_state(StrBytes::from_static_str("Empty"))
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                });
                DescribeGroupsResponse::default()
                    .with_groups(groups.collect())
                    .encode(&mut out, version)
                    .is_ok()
            }
            ApiKey::InitProducerId => script.init_producer_id.is_some_and(|code| {
                let (id, epoch) = if code == 0 { (1000, 0) } else { (-1, -1) };
                InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id(id.into())
                    .with_producer_epoch(epoch)
                    .encode(&mut out, version)
                    .is_ok()
            }),
            ApiKey::LeaveGroup => LeaveGroupResponse::default()
                .encode(&mut out, version)
                .is_ok(),
            _ => false,
        };
        if !answered {
            // Never answered: keep the connection open and silent until the client leaves.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            return;
        }
        let Ok(size) = i32::try_from(out.len()) else {
            return;
        };
        if stream.write_i32(size).await.is_err() || stream.write_all(&out).await.is_err() {
            return; // the client closed the connection first
        }
    }
}

/// ApiVersions of this fake: what the client's tests here need (also `cluster`'s fake).
pub(crate) fn api_versions() -> ApiVersionsResponse {
    let api = |key: ApiKey, max_version| {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(0)
            .with_max_version(max_version)
    };
    ApiVersionsResponse::default().with_api_keys(vec![
        api(ApiKey::ApiVersions, 3),
        api(ApiKey::Metadata, 12),
        api(ApiKey::Produce, 9),
        api(ApiKey::FindCoordinator, 3),
        api(ApiKey::JoinGroup, 5),
        api(ApiKey::SyncGroup, 3),
        api(ApiKey::Heartbeat, 3),
        api(ApiKey::LeaveGroup, 3),
        api(ApiKey::OffsetCommit, 8),
        api(ApiKey::OffsetFetch, 7),
        api(ApiKey::DescribeGroups, 5),
        api(ApiKey::ListOffsets, 7),
        api(ApiKey::DeleteGroups, 2),
    ])
}

fn metadata(port: u16, answers: Vec<(&String, TopicAnswer)>, script: &Script) -> MetadataResponse {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(0))
        .with_host(StrBytes::from_static_str("127.0.0.1"))
        .with_port(i32::from(port));
    let topics = answers
        .into_iter()
        .map(|(name, answer)| {
            let mut topic = MetadataResponseTopic::default().with_name(Some(topic_name(name)));
            if (script.topic_has_id)(name) {
                topic.topic_id = topic_id(name);
                script
                    .topic_ids
                    .lock()
                    .unwrap()
                    .insert(topic.topic_id, name.clone());
            }
            match answer {
                TopicAnswer::Error(code) => topic.with_error_code(code),
                TopicAnswer::Hangup => topic, // not sent: the connection closes first
                TopicAnswer::Leaders(leaders) => topic.with_partitions(
                    leaders
                        .iter()
                        .zip(0..)
                        .map(|(leader, index)| {
                            MetadataResponsePartition::default()
                                .with_partition_index(index)
                                .with_leader_id(BrokerId(*leader))
                                .with_error_code(if *leader < 0 { LEADER_NOT_AVAILABLE } else { 0 })
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics)
}

/// JoinGroup with `code`; on success the member (`m-1` unless it has an id) leads a group
/// of itself, generation 1, with its first protocol.
fn join_group(request: JoinGroupRequest, code: i16) -> JoinGroupResponse {
    let response = JoinGroupResponse::default().with_error_code(code);
    if code != 0 {
        return response.with_generation_id(-1);
    }
    let member_id = match request.member_id.is_empty() {
        true => StrBytes::from_static_str("m-1"),
        false => request.member_id,
    };
    let protocol = request.protocols.into_iter().next().unwrap_or_default();
    response
        .with_generation_id(1)
        .with_protocol_name(Some(protocol.name))
        .with_leader(member_id.clone())
        .with_member_id(member_id.clone())
        .with_members(vec![JoinGroupResponseMember::default()
            .with_member_id(member_id)
            .with_metadata(protocol.metadata)])
}

/// OffsetCommit with `code` for every partition of `request`.
fn offset_commit(request: OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    let topics = request.topics.into_iter().map(|topic| {
        let partitions = topic.partitions.iter().map(|p| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code)
        });
        OffsetCommitResponseTopic::default()
            .with_name(topic.name)
            .with_partitions(partitions.collect())
    });
    OffsetCommitResponse::default().with_topics(topics.collect())
}

/// OffsetFetch with group-level `code`; on 0 each partition asked for is at
/// [`COMMITTED_OFFSET`].
fn offset_fetch(request: OffsetFetchRequest, code: i16) -> OffsetFetchResponse {
    let response = OffsetFetchResponse::default().with_error_code(code);
    if code != 0 {
        return response;
    }
    let topics = request.topics.unwrap_or_default().into_iter().map(|topic| {
        let partitions = topic.partition_indexes.iter().map(|index| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(*index)
                .with_committed_offset(COMMITTED_OFFSET)
        });
        OffsetFetchResponseTopic::default()
            .with_name(topic.name)
            .with_partitions(partitions.collect())
    });
    response.with_topics(topics.collect())
}

/// ListOffsets with `code` for every partition of `request`; on 0 each is at
/// [`LISTED_OFFSET`].
fn list_offsets(request: ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    let offset = if code == 0 { LISTED_OFFSET } else { -1 };
    let topics = request.topics.into_iter().map(|topic| {
        let partitions = topic.partitions.iter().map(|p| {
            ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code)
                .with_offset(offset)
        });
        ListOffsetsTopicResponse::default()
            .with_name(topic.name)
            .with_partitions(partitions.collect())
    });
    ListOffsetsResponse::default().with_topics(topics.collect())
}

/// The response to `request`, or `None` when any partition is scripted to go unanswered.
fn produce(request: &ProduceRequest, script: &Script) -> Option<ProduceResponse> {
    let mut responses = Vec::new();
    for topic in &request.topic_data {
        let mut partitions = Vec::new();
        for data in &topic.partition_data {
            let code = (script.produce)(topic.name.0.as_str(), data.index)?;
            partitions.push(
                PartitionProduceResponse::default()
                    .with_index(data.index)
                    .with_error_code(code)
                    .with_base_offset(if code == 0 { 0 } else { -1 }),
            );
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions),
        );
    }
    Some(ProduceResponse::default().with_responses(responses))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::{serve, Script};

    /// A client that closes its connection mid-request (a test ending, a timeout) ends the
    /// connection's task quietly: it used to panic on the short read.
    #[tokio::test]
    async fn a_connection_closed_mid_request_ends_its_task_without_a_panic() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        // A frame announcing 100 bytes, of which 10 arrive before the close.
        client.write_i32(100).await.unwrap();
        client.write_all(&[0u8; 10]).await.unwrap();
        drop(client);
        let served = tokio::spawn(serve(stream, addr.port(), Script::default()));
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), served).await;
        ended.expect("ended").expect("no panic");
    }
}
