//! Unit tests of [`Cluster`](super::Cluster): partition lookup, metadata retries and
//! backoff, against a one-node fake broker speaking Metadata.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicUsize;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn a_partition_is_found_by_index_whether_the_list_is_dense_or_not() {
    let info = |indexes: &[i32]| TopicInfo {
        name: "t".to_owned(),
        topic_id: uuid::Uuid::nil(),
        partitions: indexes
            .iter()
            .map(|&partition| PartitionInfo {
                partition,
                leader: partition * 10,
                replicas: vec![],
                isr: vec![],
                error_code: 0,
            })
            .collect(),
        internal: false,
    };
    let leader = |info: &TopicInfo, p| info.partition(p).map(|p| p.leader);
    let dense = info(&[0, 1, 2, 3]);
    assert_eq!(leader(&dense, 2), Some(20));
    assert_eq!((leader(&dense, 4), leader(&dense, -1)), (None, None));
    let sparse = info(&[1, 3, 7]);
    assert_eq!(
        (leader(&sparse, 3), leader(&sparse, 7)),
        (Some(30), Some(70))
    );
    assert_eq!((leader(&sparse, 0), leader(&sparse, 2)), (None, None));
}

/// A one-node broker that answers ApiVersions and Metadata only. The `n`th Metadata
/// request naming topics (from 0) is answered with topic error `topic_error(n)` (0: the
/// topic, one partition led by this node).
async fn fake_broker(topic_error: fn(usize) -> i16) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let calls = calls.clone();
            tokio::spawn(async move {
                while let Ok(size) = stream.read_i32().await {
                    let mut frame = vec![0u8; usize::try_from(size).unwrap()];
                    // A client that went away ends this connection quietly.
                    if stream.read_exact(&mut frame).await.is_err() {
                        return;
                    }
                    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]));
                    let (key, version) = (key.unwrap(), i16::from_be_bytes([frame[2], frame[3]]));
                    let mut body = Bytes::from(frame);
                    let header =
                        RequestHeader::decode(&mut body, key.request_header_version(version))
                            .unwrap();
                    let mut out = BytesMut::new();
                    ResponseHeader::default()
                        .with_correlation_id(header.correlation_id)
                        .encode(&mut out, key.response_header_version(version))
                        .unwrap();
                    match key {
                        ApiKey::ApiVersions => crate::fake_broker::api_versions()
                            .encode(&mut out, version)
                            .unwrap(),
                        ApiKey::Metadata => {
                            let request = MetadataRequest::decode(&mut body, version).unwrap();
                            let named = request.topics.is_none_or(|t| !t.is_empty());
                            let error = match named {
                                true => topic_error(calls.fetch_add(1, Ordering::SeqCst)),
                                false => -1,
                            };
                            metadata(addr.port(), error)
                                .encode(&mut out, version)
                                .unwrap()
                        }
                        _ => return,
                    }
                    let size = i32::try_from(out.len()).unwrap();
                    if stream.write_i32(size).await.is_err()
                        || stream.write_all(&out).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr.to_string()
}

/// This node, and topic `t` with `error` (-1: no topic).
fn metadata(port: u16, error: i16) -> MetadataResponse {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(0))
        .with_host(StrBytes::from_static_str("127.0.0.1"))
        .with_port(i32::from(port));
    let partitions = match error {
        0 => vec![MetadataResponsePartition::default().with_leader_id(BrokerId(0))],
        _ => Vec::new(),
    };
    let topic = MetadataResponseTopic::default()
        .with_name(Some(topic_name("t")))
        .with_error_code(error)
        .with_partitions(partitions);
    let topics = if error < 0 { Vec::new() } else { vec![topic] };
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics)
}

const LEADER_NOT_AVAILABLE: i16 = 5;

#[tokio::test]
async fn a_topic_without_a_leader_yet_is_asked_for_again() {
    let addr = fake_broker(|n| if n < 3 { LEADER_NOT_AVAILABLE } else { 0 }).await;
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let info = cluster.topic("t").await.unwrap();
    assert_eq!(info.partitions.len(), 1);
    assert_eq!(cluster.leader("t", 0).await.unwrap(), 0);
}

#[tokio::test]
async fn a_topic_that_never_gets_a_leader_fails_retriably() {
    let addr = fake_broker(|_| LEADER_NOT_AVAILABLE).await;
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let error = cluster.topic("t").await.unwrap_err();
    assert_eq!(error.code(), Some(LEADER_NOT_AVAILABLE), "{error}");
    assert!(error.is_retriable());
}

#[tokio::test]
async fn waiting_for_a_topic_ends_at_max_block_ms_naming_topic_and_wait() {
    let addr = fake_broker(|_| LEADER_NOT_AVAILABLE).await;
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let wait = MetadataWait {
        max_block_ms: 300,
        ..MetadataWait::LOOKUP
    };
    let error = cluster.wait_for_topic("t", &wait).await.unwrap_err();
    let Error::TopicMetadataTimeout {
        topic, waited_ms, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((topic.as_str(), *waited_ms >= 300), ("t", true), "{error}");
    assert!(error.to_string().contains("t not available"), "{error}");
}

#[test]
fn metadata_backoff_doubles_within_its_bounds() {
    let wait = MetadataWait {
        backoff_ms: 100,
        backoff_max_ms: 1_000,
        ..MetadataWait::LOOKUP
    };
    let mut pause_ms = 0;
    let pauses: Vec<u64> = (0..6)
        .map(|_| {
            pause_ms = wait.next_backoff_ms(pause_ms);
            pause_ms
        })
        .collect();
    assert_eq!(pauses, vec![100, 200, 400, 800, 1_000, 1_000]);
    let inverted = MetadataWait {
        backoff_max_ms: 10,
        ..wait
    };
    assert_eq!(inverted.next_backoff_ms(0), 100);
}

#[tokio::test]
async fn a_retriable_topic_error_keeps_what_was_known() {
    let addr = fake_broker(|n| if n == 0 { 0 } else { LEADER_NOT_AVAILABLE }).await;
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let known = cluster.topic("t").await.unwrap();
    cluster.refresh(Some(&["t".to_owned()])).await.unwrap();
    assert_eq!(cluster.cached_topic("t"), Some(known.clone()));
    cluster.refresh(None).await.unwrap();
    assert_eq!(cluster.cached_topic("t"), Some(known));
}

#[tokio::test]
async fn a_lost_connection_while_waiting_for_a_topic_is_retried() {
    use crate::fake_broker::{self, Script, TopicAnswer};
    // The first Metadata request naming the topic loses its connection.
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let addr = fake_broker::start(Script {
        metadata: Arc::new(move |_| match counted.fetch_add(1, Ordering::SeqCst) {
            0 => TopicAnswer::Hangup,
            _ => TopicAnswer::Leaders(vec![0]),
        }),
        ..Script::default()
    })
    .await;
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let info = cluster
        .topic("t")
        .await
        .expect("asked again after the lost connection");
    assert_eq!(info.partitions.len(), 1);
    assert!(asked.load(Ordering::SeqCst) >= 2);
}
