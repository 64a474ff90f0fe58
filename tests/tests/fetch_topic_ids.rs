//! Fetch v13–v17 name topics by id (KIP-516), as Kafka 4.0 answers them: the id a topic got
//! at creation finds its records, an id no topic has is answered UNKNOWN_TOPIC_ID after the
//! known partitions, and v12 still names topics by name.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::TestBroker;

/// `request` with its one topic named by `id` instead of by name, as v13+ clients send it.
fn by_id(mut request: FetchRequest, id: uuid::Uuid) -> FetchRequest {
    for topic in &mut request.topics {
        topic.topic = TopicName::default();
        topic.topic_id = id;
    }
    request
}

fn records_of(response: &FetchResponse, topic: usize) -> Vec<String> {
    let partition = &response.responses[topic].partitions[0];
    assert_eq!(partition.error_code, 0);
    decode_values(partition.records.as_ref().expect("records"))
}

#[tokio::test]
async fn fetch_v13_and_later_find_a_topic_by_its_id() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let created = client.send(metadata(Some(&["by-id"])), 12).await;
    let id = created.topics[0].topic_id;
    assert!(!id.is_nil());
    let produced = client
        .send(produce("by-id", 0, values(&["a", "b"]), 1), 9)
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    let old = client.send(fetch("by-id", 0, 0, 0, 0), 12).await;
    assert_eq!(records_of(&old, 0), ["a", "b"], "v12 names the topic");
    for version in 13..=17 {
        let response = client
            .send(by_id(fetch("by-id", 0, 0, 0, 0), id), version)
            .await;
        assert_eq!(response.responses.len(), 1, "v{version}");
        assert_eq!(response.responses[0].topic_id, id, "v{version}");
        assert_eq!(records_of(&response, 0), ["a", "b"], "v{version}");
        assert_eq!(response.responses[0].partitions[0].high_watermark, 2);
    }
}

#[tokio::test]
async fn an_unknown_topic_id_is_answered_unknown_topic_id_after_the_known_ones() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let created = client.send(metadata(Some(&["known"])), 12).await;
    let known_id = created.topics[0].topic_id;
    client.send(produce("known", 0, values(&["x"]), 1), 9).await;
    let unknown_id = uuid::Uuid::from_u128(0x5eed);
    let unknown = by_id(fetch("gone", 0, 0, 0, 0), unknown_id).topics;
    let known = by_id(fetch("known", 0, 0, 0, 0), known_id).topics;
    let topics: Vec<FetchTopic> = unknown.into_iter().chain(known).collect();
    // A long wait: the unknown id must neither fail the fetch nor end the wait by itself,
    // and the known partition's data answers it at once.
    let request = fetch("known", 0, 0, 5_000, 1).with_topics(topics);
    let response = client.send(request, 17).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.responses.len(), 2);
    assert_eq!(response.responses[0].topic_id, known_id);
    assert_eq!(records_of(&response, 0), ["x"]);
    assert_eq!(response.responses[1].topic_id, unknown_id);
    let missing = &response.responses[1].partitions[0];
    assert_eq!(missing.error_code, ResponseError::UnknownTopicId.code());
    assert_eq!(missing.high_watermark, -1);
    assert!(missing.records.as_ref().is_none_or(|r| r.is_empty()));
}
