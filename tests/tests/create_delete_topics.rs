//! CreateTopics and DeleteTopics over TCP at the lowest and highest versions we advertise,
//! checked through Metadata and DescribeConfigs.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::values;
use runnel_tests::requests::{creatable_topic as topic, metadata, produce, topic_name};
use runnel_tests::{TestBroker, TestClient};

const CREATE_TOPICS_MIN: i16 = 2;
const CREATE_TOPICS_MAX: i16 = 7;
const DELETE_TOPICS_MIN: i16 = 1;
const DELETE_TOPICS_MAX: i16 = 6;

async fn create(
    client: &mut TestClient,
    version: i16,
    topics: Vec<CreatableTopic>,
) -> Vec<CreatableTopicResult> {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000);
    client.send(request, version).await.topics
}

/// Every topic the broker knows (Metadata for all topics never auto-creates).
async fn all_topics(client: &mut TestClient) -> MetadataResponse {
    client.send(metadata(None), 12).await
}

fn partition_count(response: &MetadataResponse, name: &str) -> Option<usize> {
    response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
        .map(|t| t.partitions.len())
}

async fn retention_ms(client: &mut TestClient, name: &str) -> (String, i8) {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")]));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let response = client.send(request, 4).await;
    let config = &response.results[0].configs[0];
    (
        config.value.as_ref().unwrap().to_string(),
        config.config_source,
    )
}

#[tokio::test]
async fn create_shows_in_metadata_and_configs_at_min_and_max_versions() {
    let broker = TestBroker::start_with(|c| c.num_partitions = 2).await;
    let mut client = broker.client().await;
    let results = create(&mut client, CREATE_TOPICS_MIN, vec![topic("old", 3, &[])]).await;
    assert_eq!(results[0].error_code, 0);
    assert_eq!(results[0].error_message, None);

    let wanted = topic("new", -1, &[("retention.ms", "60000")]);
    let results = create(&mut client, CREATE_TOPICS_MAX, vec![wanted]).await;
    let result = &results[0];
    assert_eq!(result.error_code, 0);
    assert_eq!(result.num_partitions, 2);
    assert_eq!(result.replication_factor, 1);
    assert!(!result.topic_id.is_nil());
    let configs = result.configs.as_ref().unwrap();
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "60000");
    assert_eq!(retention.config_source, 1);

    let listed = all_topics(&mut client).await;
    assert_eq!(partition_count(&listed, "old"), Some(3));
    assert_eq!(partition_count(&listed, "new"), Some(2));
    let id = listed
        .topics
        .iter()
        .find(|t| t.name == Some(topic_name("new")))
        .unwrap()
        .topic_id;
    assert_eq!(id, result.topic_id);
    assert_eq!(
        retention_ms(&mut client, "new").await,
        ("60000".to_owned(), 1)
    );
    let produced = client.send(produce("new", 1, values(&["x"]), 1), 9).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

#[tokio::test]
async fn create_refusals_over_the_wire() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(
        &mut client,
        CREATE_TOPICS_MAX,
        vec![topic("exists", 1, &[])],
    )
    .await;
    for version in [CREATE_TOPICS_MIN, CREATE_TOPICS_MAX] {
        let topics = vec![
            topic("exists", 1, &[]),
            topic("bad name!", 1, &[]),
            topic("rf", 1, &[]).with_replication_factor(3),
            topic("cfg", 1, &[("retention.ms", "never")]),
            topic("dup", 1, &[]),
            topic("dup", 1, &[]),
            topic("zero", 0, &[]),
        ];
        let results = create(&mut client, version, topics).await;
        let codes: Vec<i16> = results.iter().map(|r| r.error_code).collect();
        let expected = [
            ResponseError::TopicAlreadyExists,
            ResponseError::InvalidTopicException,
            ResponseError::InvalidReplicationFactor,
            ResponseError::InvalidConfig,
            ResponseError::InvalidRequest,
            ResponseError::InvalidRequest,
            ResponseError::InvalidPartitions,
        ]
        .map(|e| e.code());
        assert_eq!(codes, expected, "v{version}");
        assert!(
            results.iter().all(|r| r.error_message.is_some()),
            "v{version}"
        );
    }
    assert_eq!(all_topics(&mut client).await.topics.len(), 1);
}

#[tokio::test]
async fn validate_only_creates_nothing() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic("dry", 4, &[])])
        .with_validate_only(true);
    let response = client.send(request, CREATE_TOPICS_MAX).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].num_partitions, 4);
    assert!(all_topics(&mut client).await.topics.is_empty());
}

#[tokio::test]
async fn delete_by_name_at_min_version_and_by_id_at_max_version() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let created = create(
        &mut client,
        CREATE_TOPICS_MAX,
        vec![topic("a", 1, &[]), topic("b", 2, &[])],
    )
    .await;
    let b_id = created[1].topic_id;

    let by_name = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("a"), topic_name("missing")])
        .with_timeout_ms(30_000);
    let response = client.send(by_name, DELETE_TOPICS_MIN).await;
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, ResponseError::UnknownTopicOrPartition.code()]);
    let listed = all_topics(&mut client).await;
    assert_eq!(partition_count(&listed, "a"), None);
    assert_eq!(partition_count(&listed, "b"), Some(2));

    let by_id = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_topic_id(b_id)])
        .with_timeout_ms(30_000);
    let response = client.send(by_id.clone(), DELETE_TOPICS_MAX).await;
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(response.responses[0].name, Some(topic_name("b")));
    assert_eq!(response.responses[0].topic_id, b_id);
    assert!(all_topics(&mut client).await.topics.is_empty());
    let again = client.send(by_id, DELETE_TOPICS_MAX).await;
    assert_eq!(
        again.responses[0].error_code,
        ResponseError::UnknownTopicId.code()
    );
    assert_eq!(again.responses[0].name, None);
}

#[tokio::test]
async fn a_deleted_topic_can_be_created_again_empty() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, CREATE_TOPICS_MAX, vec![topic("again", 1, &[])]).await;
    let produced = client
        .send(produce("again", 0, values(&["old"]), 1), 9)
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![topic_name("again")]);
    assert_eq!(client.send(delete, 5).await.responses[0].error_code, 0);
    let results = create(&mut client, CREATE_TOPICS_MAX, vec![topic("again", 1, &[])]).await;
    assert_eq!(results[0].error_code, 0);
    let produced = client
        .send(produce("again", 0, values(&["new"]), 1), 9)
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].base_offset, 0);
}

#[tokio::test]
async fn huge_garbage_requests_get_an_error_per_entry() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let entries_max = 5_000;
    let topics: Vec<CreatableTopic> = (0..entries_max)
        .map(|i| topic(&format!("bad/{i}"), i32::MIN + i, &[("retention.ms", "x")]))
        .collect();
    let results = create(&mut client, CREATE_TOPICS_MAX, topics).await;
    assert_eq!(results.len(), entries_max as usize);
    assert!(results.iter().all(|r| r.error_code != 0));
    let names = (0..entries_max)
        .map(|i| topic_name(&format!("missing-{i}")))
        .collect();
    let delete = DeleteTopicsRequest::default().with_topic_names(names);
    let response = client.send(delete, DELETE_TOPICS_MAX - 1).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert!(response.responses.iter().all(|r| r.error_code == unknown));
    assert!(all_topics(&mut client).await.topics.is_empty());
}

#[tokio::test]
async fn creates_and_deletes_survive_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topics = vec![
        topic("kept", 2, &[("retention.ms", "60000")]),
        topic("gone", 1, &[]),
    ];
    let created = create(&mut client, CREATE_TOPICS_MAX, topics).await;
    assert!(created.iter().all(|r| r.error_code == 0));
    let gone = DeleteTopicState::default().with_name(Some(topic_name("gone")));
    let delete = DeleteTopicsRequest::default().with_topics(vec![gone]);
    assert_eq!(
        client.send(delete, DELETE_TOPICS_MAX).await.responses[0].error_code,
        0
    );
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let listed = all_topics(&mut client).await;
    assert_eq!(partition_count(&listed, "kept"), Some(2));
    assert_eq!(partition_count(&listed, "gone"), None);
    let kept = listed
        .topics
        .iter()
        .find(|t| t.name == Some(topic_name("kept")))
        .unwrap();
    assert_eq!(kept.topic_id, created[0].topic_id);
    assert_eq!(
        retention_ms(&mut client, "kept").await,
        ("60000".to_owned(), 1)
    );
}

#[tokio::test]
async fn every_advertised_version_round_trips() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in CREATE_TOPICS_MIN..=CREATE_TOPICS_MAX {
        let name = format!("v{version}");
        let results = create(
            &mut client,
            version,
            vec![topic(&name, 2, &[("retention.ms", "1")])],
        )
        .await;
        assert_eq!(results[0].error_code, 0, "v{version}");
        assert_eq!(results[0].name, topic_name(&name));
        let again = create(&mut client, version, vec![topic(&name, 2, &[])]).await;
        assert_eq!(
            again[0].error_code,
            ResponseError::TopicAlreadyExists.code()
        );
    }
    for version in DELETE_TOPICS_MIN..=DELETE_TOPICS_MAX {
        let name = topic_name(&format!("v{}", version + 1));
        let request = if version < 6 {
            DeleteTopicsRequest::default().with_topic_names(vec![name.clone()])
        } else {
            let state = DeleteTopicState::default().with_name(Some(name.clone()));
            DeleteTopicsRequest::default().with_topics(vec![state])
        };
        let response = client.send(request, version).await;
        assert_eq!(response.responses[0].error_code, 0, "v{version}");
        assert_eq!(response.responses[0].name, Some(name));
    }
    assert_eq!(all_topics(&mut client).await.topics.len(), 0);
}
