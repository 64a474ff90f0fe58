//! Metadata: broker identity, auto-creation, unknown and invalid topics, every version.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::BrokerId;
use runnel_tests::requests::metadata;
use runnel_tests::TestBroker;

#[tokio::test]
async fn describes_this_broker_at_every_version() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in 0..=12 {
        let response = client
            .send(metadata(Some(&["every-version"])), version)
            .await;
        assert_eq!(response.brokers.len(), 1, "v{version}");
        assert_eq!(response.brokers[0].node_id, BrokerId(0));
        assert_eq!(response.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(response.brokers[0].port, i32::from(broker.addr.port()));
        if version >= 1 {
            assert_eq!(response.controller_id, BrokerId(0));
        }
        if version >= 2 {
            assert_eq!(response.cluster_id.as_deref(), Some("runnel-cluster"));
        }
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].error_code, 0, "v{version}");
    }
}

#[tokio::test]
async fn unknown_topics_are_auto_created_with_this_node_leading() {
    let broker = TestBroker::start_with(|c| c.num_partitions = 3).await;
    let mut client = broker.client().await;
    let response = client.send(metadata(Some(&["orders"])), 12).await;
    let topic = &response.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.name.as_ref().map(|n| n.0.as_str()), Some("orders"));
    assert!(!topic.topic_id.is_nil());
    assert_eq!(topic.partitions.len(), 3);
    for (index, partition) in topic.partitions.iter().enumerate() {
        assert_eq!(partition.partition_index, index as i32);
        assert_eq!(partition.leader_id, BrokerId(0));
        assert_eq!(partition.leader_epoch, 0);
        assert_eq!(partition.replica_nodes, vec![BrokerId(0)]);
        assert_eq!(partition.isr_nodes, vec![BrokerId(0)]);
    }
    // A null topic list (v1+) means every topic; v0 uses an empty list for that.
    let all = client.send(metadata(None), 9).await;
    assert_eq!(all.topics.len(), 1);
    let all_v0 = client.send(metadata(Some(&[])), 0).await;
    assert_eq!(all_v0.topics.len(), 1);
    let none_v1 = client.send(metadata(Some(&[])), 1).await;
    assert!(none_v1.topics.is_empty());
}

#[tokio::test]
async fn no_auto_creation_when_the_request_or_the_broker_forbids_it() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let request = metadata(Some(&["not-asked"])).with_allow_auto_topic_creation(false);
    let response = client.send(request, 4).await;
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(broker.context().logs.topic("not-asked").is_none());

    let broker = TestBroker::start_with(|c| c.auto_create_topics = false).await;
    let mut client = broker.client().await;
    let response = client.send(metadata(Some(&["nope"])), 12).await;
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[tokio::test]
async fn invalid_topic_names_are_rejected() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let long = "x".repeat(250);
    let response = client
        .send(metadata(Some(&["bad name!", "..", &long])), 12)
        .await;
    assert_eq!(response.topics.len(), 3);
    for topic in &response.topics {
        assert_eq!(
            topic.error_code,
            ResponseError::InvalidTopicException.code()
        );
    }
    assert!(broker.context().logs.topics().is_empty());
}

#[tokio::test]
async fn topics_can_be_looked_up_by_id() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let created = client.send(metadata(Some(&["by-id"])), 12).await;
    let id = created.topics[0].topic_id;
    let by_id = |id| {
        MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(None)
    };
    let request = MetadataRequest::default().with_topics(Some(vec![by_id(id), by_id(uuid_of(7))]));
    let response = client.send(request, 12).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(
        response.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some("by-id")
    );
    assert_eq!(
        response.topics[1].error_code,
        ResponseError::UnknownTopicId.code()
    );
    // Kafka's KafkaApis.handleTopicMetadataRequest names no topic for an unknown id (null, not "").
    assert_eq!(response.topics[1].name, None);
    assert_eq!(response.topics[1].topic_id, uuid_of(7));
}

fn uuid_of(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

#[tokio::test]
async fn localhost_listens_on_ipv4_and_ipv6() {
    let broker = TestBroker::start_with(|c| c.listen = "localhost:0".into()).await;
    let addrs = broker.running().kafka_addrs.clone();
    assert!(addrs[0].is_ipv4());
    for addr in addrs {
        let mut client = runnel_tests::TestClient::connect(addr).await;
        let response = client.send(metadata(None), 12).await;
        assert_eq!(response.brokers[0].host.as_str(), "localhost");
        assert_eq!(response.brokers[0].port, i32::from(addr.port()));
    }
}

/// Metadata v8+ answers the authorized operations a client asks for (Java's
/// `describeTopics(includeAuthorizedOperations)`, `describeCluster`): with no authorizer every
/// operation that applies (as Kafka without one), and Kafka's "not asked" marker otherwise;
/// they were always the marker.
#[tokio::test]
async fn authorized_operations_are_answered_when_asked_for() {
    const OMITTED: i32 = i32::MIN;
    const TOPIC_DESCRIBE: i32 = 1 << 8;
    const CLUSTER_ALTER: i32 = 1 << 7;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in 8..=12 {
        let mut asked = metadata(Some(&["ops"])).with_include_topic_authorized_operations(true);
        if version <= 10 {
            asked = asked.with_include_cluster_authorized_operations(true);
        }
        let response = client.send(asked, version).await;
        let topic_ops = response.topics[0].topic_authorized_operations;
        assert_eq!(topic_ops & TOPIC_DESCRIBE, TOPIC_DESCRIBE, "v{version}");
        if version <= 10 {
            let cluster_ops = response.cluster_authorized_operations;
            assert_eq!(cluster_ops & CLUSTER_ALTER, CLUSTER_ALTER, "v{version}");
        }
        let response = client.send(metadata(Some(&["ops"])), version).await;
        assert_eq!(response.topics[0].topic_authorized_operations, OMITTED);
        assert_eq!(response.cluster_authorized_operations, OMITTED);
    }
}
