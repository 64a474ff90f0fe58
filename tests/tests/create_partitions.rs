//! CreatePartitions over TCP at the lowest and highest versions we advertise: growth shows in
//! Metadata and the new partitions accept records; shrinking and unknown topics are refused.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::{BrokerId, CreatePartitionsRequest};
use runnel_tests::records::values;
use runnel_tests::requests::{metadata, produce, topic_name};
use runnel_tests::{TestBroker, TestClient};

const CREATE_PARTITIONS_MIN: i16 = 0;
const CREATE_PARTITIONS_MAX: i16 = 3;

fn grow_to(topic: &str, count: i32) -> CreatePartitionsTopic {
    CreatePartitionsTopic::default()
        .with_name(topic_name(topic))
        .with_count(count)
        .with_assignments(None)
}

async fn grow(
    client: &mut TestClient,
    version: i16,
    validate_only: bool,
    topics: Vec<CreatePartitionsTopic>,
) -> Vec<i16> {
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    let response = client.send(request, version).await;
    response.results.iter().map(|r| r.error_code).collect()
}

/// Partition count as Metadata reports it (auto-creating a 1-partition topic if missing).
async fn partitions(client: &mut TestClient, topic: &str) -> usize {
    let response = client.send(metadata(Some(&[topic])), 12).await;
    assert_eq!(response.topics[0].error_code, 0);
    response.topics[0].partitions.len()
}

#[tokio::test]
async fn grows_at_min_and_max_versions_and_new_partitions_take_records() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    assert_eq!(partitions(&mut client, "t").await, 1);
    assert_eq!(
        grow(
            &mut client,
            CREATE_PARTITIONS_MIN,
            false,
            vec![grow_to("t", 2)]
        )
        .await,
        [0]
    );
    assert_eq!(partitions(&mut client, "t").await, 2);
    for (version, count) in [(1, 3), (2, 4), (CREATE_PARTITIONS_MAX, 5)] {
        let codes = grow(&mut client, version, false, vec![grow_to("t", count)]).await;
        assert_eq!(codes, [0], "v{version}");
        assert_eq!(partitions(&mut client, "t").await, count as usize);
    }
    let produced = client.send(produce("t", 4, values(&["x"]), -1), 9).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

#[tokio::test]
async fn validate_only_grows_nothing() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    assert_eq!(partitions(&mut client, "t").await, 1);
    assert_eq!(
        grow(
            &mut client,
            CREATE_PARTITIONS_MAX,
            true,
            vec![grow_to("t", 3)]
        )
        .await,
        [0]
    );
    assert_eq!(partitions(&mut client, "t").await, 1);
}

#[tokio::test]
async fn refusals_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for topic in ["same", "manual"] {
        assert_eq!(partitions(&mut client, topic).await, 1);
    }
    let assignment = CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(0)]);
    for version in [CREATE_PARTITIONS_MIN, CREATE_PARTITIONS_MAX] {
        let topics = vec![
            grow_to("same", 1),
            grow_to("same-twice", 0).with_name(topic_name("same")),
            grow_to("missing", 4),
            grow_to("manual", 2).with_assignments(Some(vec![assignment.clone()])),
        ];
        let codes = grow(&mut client, version, false, topics).await;
        let expected = [
            ResponseError::InvalidRequest,
            ResponseError::InvalidRequest,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::InvalidRequest,
        ]
        .map(|e| e.code());
        assert_eq!(codes, expected, "v{version}");
        let codes = grow(&mut client, version, false, vec![grow_to("same", 1)]).await;
        assert_eq!(
            codes,
            [ResponseError::InvalidPartitions.code()],
            "v{version}"
        );
        let codes = grow(&mut client, version, false, vec![grow_to("same", i32::MAX)]).await;
        assert_eq!(
            codes,
            [ResponseError::InvalidPartitions.code()],
            "v{version}"
        );
    }
    for topic in ["same", "manual"] {
        assert_eq!(partitions(&mut client, topic).await, 1);
    }
}
