//! The Fetch long poll end to end: woken by data, timing out empty, a deleted topic, and
//! unknown partitions beside known ones.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchResponse;
use runnel_tests::records::values;
use runnel_tests::requests::{fetch, produce};
use runnel_tests::TestBroker;

use super::{create, fetched, partition_error};

#[tokio::test]
async fn long_poll_wakes_when_data_arrives() {
    let broker = TestBroker::start().await;
    let mut consumer = broker.client().await;
    let mut producer = broker.client().await;
    create(&mut consumer, "poll").await;
    let waiting = tokio::spawn(async move {
        // Ten seconds is far beyond the produce below; an answer with data proves the wake.
        let response = consumer.send(fetch("poll", 0, 0, 10_000, 1), 12).await;
        fetched(&response)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = producer
        .send(produce("poll", 0, values(&["wake"]), 1), 9)
        .await;
    assert_eq!(partition_error(&response), 0);
    assert_eq!(waiting.await.unwrap(), ["wake"]);
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "idle").await;
    let response = client.send(fetch("idle", 0, 0, 100, 1), 12).await;
    assert!(fetched(&response).is_empty());
}

/// A fetch long-polling on a topic that is deleted answers at once with
/// UNKNOWN_TOPIC_OR_PARTITION, as Kafka's does, not after its max wait with
/// KAFKA_STORAGE_ERROR (a failed log directory, which it is not).
#[tokio::test]
async fn a_fetch_waiting_on_a_deleted_topic_answers_unknown_topic_at_once() {
    use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
    use runnel_tests::requests::topic_name;
    let broker = TestBroker::start().await;
    let mut admin = broker.client().await;
    create(&mut admin, "going").await;
    let mut consumer = broker.client().await;
    consumer
        .write_request(&fetch("going", 0, 0, 10_000, 1), 12)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("going")])
        .with_timeout_ms(5_000);
    let deleted: DeleteTopicsResponse = admin.send(delete, 5).await;
    assert_eq!(deleted.responses[0].error_code, 0);
    let started = std::time::Instant::now();
    let (_, response) = consumer.read_response::<FetchResponse>(12).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

/// Kafka long-polls only the partitions it knows (`KafkaApis.handleFetchRequest` sets the
/// unknown ones aside before `ReplicaManager.fetchMessages`): an unknown partition beside a
/// known empty one does not end the wait, and is answered UNKNOWN_TOPIC_OR_PARTITION when
/// data arrives; a fetch naming only unknown partitions is answered at once.
#[tokio::test]
async fn unknown_partitions_do_not_end_a_long_poll() {
    use kafka_protocol::messages::fetch_request::FetchTopic;
    let broker = TestBroker::start().await;
    let mut consumer = broker.client().await;
    let mut producer = broker.client().await;
    create(&mut consumer, "half-known").await;
    let entry = |topic: &str, partition: i32| -> FetchTopic {
        let mut entry = fetch(topic, partition, 0, 0, 0).topics.remove(0);
        entry.partitions[0].partition = partition;
        entry
    };
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let mut request = fetch("half-known", 0, 0, 10_000, 1);
    request.topics = vec![
        entry("never-created", 0),
        entry("half-known", 7),
        entry("half-known", 0),
    ];
    let version = 12;
    consumer.write_request(&request, version).await;
    // Far below the 10 s max wait; the broker answered at once before the fix.
    assert!(
        consumer.is_silent_for(Duration::from_millis(700)).await,
        "an unknown partition ended the long poll"
    );
    let response = producer
        .send(produce("half-known", 0, values(&["late"]), 1), 9)
        .await;
    assert_eq!(partition_error(&response), 0);
    let (_, response) = consumer.read_response::<FetchResponse>(version).await;
    let answered: Vec<(String, i32, i16)> = response
        .responses
        .iter()
        .flat_map(|topic| {
            let name = topic.topic.0.to_string();
            topic
                .partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index, p.error_code))
        })
        .collect();
    let expected = vec![
        ("half-known".to_owned(), 0, 0),
        ("never-created".to_owned(), 0, unknown),
        ("half-known".to_owned(), 7, unknown),
    ];
    assert_eq!(answered, expected);
    assert_eq!(fetched(&response), ["late"]);

    // Nothing known to wait on: answered at once, not after the max wait.
    request.topics = vec![entry("never-created", 0), entry("half-known", 7)];
    let started = std::time::Instant::now();
    let response = consumer.send(request, version).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    let errors: Vec<i16> = response
        .responses
        .iter()
        .flat_map(|topic| topic.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(errors, [unknown, unknown]);
}
