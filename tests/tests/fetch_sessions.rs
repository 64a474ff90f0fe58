//! Incremental fetch sessions (KIP-227) over the wire, as a Kafka broker keeps them: a full
//! fetch at epoch 0 gets a session id; fetches on it name only what changed and are answered
//! only what changed; wrong epochs, unknown sessions and a switch between topic names and ids
//! are refused with the session error codes clients recover from by fetching in full.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, FetchResponse};
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{creatable_topic, fetch, metadata, produce, topic_name};
use runnel_tests::{TestBroker, TestClient};

const VERSION: i16 = 12;

async fn create(client: &mut TestClient, topic: &str, partitions: i32) {
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(topic, partitions, &[])])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(create, 7).await.topics[0].error_code, 0);
}

async fn produce_one(client: &mut TestClient, topic: &str, partition: i32, value: &str) {
    let response = client
        .send(produce(topic, partition, values(&[value]), 1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// A fetch of `partitions` (index, offset) of `topic`, on session `id` at `epoch`.
fn session_fetch(topic: &str, partitions: &[(i32, i64)], id: i32, epoch: i32) -> FetchRequest {
    let partitions = partitions
        .iter()
        .map(|&(partition, offset)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let topics = if topic.is_empty() {
        Vec::new()
    } else {
        vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)]
    };
    fetch("unused", 0, 0, 0, 0)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// Each answered partition: (index, high watermark, values).
fn answered(response: &FetchResponse) -> Vec<(i32, i64, Vec<String>)> {
    assert_eq!(response.error_code, 0, "top-level error");
    (response.responses.iter())
        .flat_map(|t| &t.partitions)
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            let records = p.records.as_ref().map(decode_values).unwrap_or_default();
            (p.partition_index, p.high_watermark, records)
        })
        .collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn a_session_answers_only_the_partitions_that_changed() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "s", 3).await;
    produce_one(&mut client, "s", 0, "a").await;
    produce_one(&mut client, "s", 1, "b").await;

    let all = [(0, 0), (1, 0), (2, 0)];
    let full = client.send(session_fetch("s", &all, 0, 0), VERSION).await;
    let id = full.session_id;
    assert_ne!(id, 0, "a full fetch at epoch 0 gets a session");
    let (status, metrics) = broker.http_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nrunnel_fetch_sessions 1\n"), "{metrics}");
    assert!(metrics.contains("\nrunnel_fetch_session_partitions 3\n"));
    assert_eq!(
        answered(&full),
        vec![
            (0, 1, strings(&["a"])),
            (1, 1, strings(&["b"])),
            (2, 0, vec![])
        ]
    );

    // The client moves its offsets past what it got: nothing else changed, nothing answered.
    let moved = [(0, 1), (1, 1)];
    let quiet = client
        .send(session_fetch("s", &moved, id, 1), VERSION)
        .await;
    assert_eq!(quiet.session_id, id);
    assert_eq!(answered(&quiet), vec![]);

    // New records on a partition the request does not name: the session reads it.
    produce_one(&mut client, "s", 2, "c").await;
    let news = client.send(session_fetch("", &[], id, 2), VERSION).await;
    assert_eq!(answered(&news), vec![(2, 1, strings(&["c"]))]);

    // A wrong epoch, or a session nobody has: refused, no partitions, no session id.
    for (session, epoch, code) in [
        (id, 7, ResponseError::InvalidFetchSessionEpoch),
        (id ^ 0x55, 1, ResponseError::FetchSessionIdNotFound),
    ] {
        let refused = client
            .send(session_fetch("", &[], session, epoch), VERSION)
            .await;
        assert_eq!(refused.error_code, code.code());
        assert_eq!(refused.session_id, 0);
        assert!(refused.responses.is_empty());
    }

    // A forgotten partition is no longer read.
    let forget = ForgottenTopic::default()
        .with_topic(topic_name("s"))
        .with_partitions(vec![2]);
    let request = session_fetch("", &[], id, 3).with_forgotten_topics_data(vec![forget]);
    assert_eq!(answered(&client.send(request, VERSION).await), vec![]);
    produce_one(&mut client, "s", 2, "d").await;
    produce_one(&mut client, "s", 1, "e").await;
    let after = client.send(session_fetch("", &[], id, 4), VERSION).await;
    assert_eq!(answered(&after), vec![(1, 2, strings(&["e"]))]);

    // A sessionless (FINAL) fetch naming the session closes it.
    let last = client
        .send(session_fetch("s", &[(0, 1)], id, -1), VERSION)
        .await;
    assert_eq!(last.session_id, 0);
    assert_eq!(answered(&last), vec![(0, 1, vec![])]);
    let closed = client.send(session_fetch("", &[], id, 5), VERSION).await;
    assert_eq!(
        closed.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );
}

#[tokio::test]
async fn a_long_poll_on_a_session_wakes_for_a_partition_the_request_does_not_name() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "poll", 2).await;
    let full = client
        .send(session_fetch("poll", &[(0, 0), (1, 0)], 0, 0), VERSION)
        .await;
    let id = full.session_id;
    assert_ne!(id, 0);
    let waiting = session_fetch("", &[], id, 1)
        .with_max_wait_ms(10_000)
        .with_min_bytes(1);
    let mut poller = broker.client().await;
    let correlation = poller.write_request(&waiting, VERSION).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce_one(&mut client, "poll", 1, "late").await;
    let (answered_to, response) = tokio::time::timeout(
        Duration::from_secs(5),
        poller.read_response::<FetchResponse>(VERSION),
    )
    .await
    .expect("the append ends the wait");
    assert_eq!(answered_to, correlation);
    assert_eq!(answered(&response), vec![(1, 1, strings(&["late"]))]);
}

#[tokio::test]
async fn an_answer_overtaken_by_the_next_epoch_is_refused() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "dup", 1).await;
    let full = client
        .send(session_fetch("dup", &[(0, 0)], 0, 0), VERSION)
        .await;
    let id = full.session_id;
    // Epoch 1 waits; meanwhile (a client that gave up on it) epoch 2 is sent and answered.
    let waiting = session_fetch("", &[], id, 1)
        .with_max_wait_ms(1_500)
        .with_min_bytes(1);
    let mut first = broker.client().await;
    first.write_request(&waiting, VERSION).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = client.send(session_fetch("", &[], id, 2), VERSION).await;
    assert_eq!(second.error_code, 0);
    assert_eq!(second.session_id, id);
    let (_, stale) = first.read_response::<FetchResponse>(VERSION).await;
    assert_eq!(
        stale.error_code,
        ResponseError::InvalidFetchSessionEpoch.code()
    );
    assert_eq!(stale.session_id, id);
    assert!(stale.responses.is_empty());
}

#[tokio::test]
async fn a_session_keeps_to_topic_ids_or_to_names() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let created = client.send(metadata(Some(&["ids"])), 12).await;
    let topic_id = created.topics[0].topic_id;
    produce_one(&mut client, "ids", 0, "x").await;
    let mut request = session_fetch("ids", &[(0, 0)], 0, 0);
    request.topics[0].topic_id = topic_id;
    let full = client.send(request, 17).await;
    let id = full.session_id;
    assert_ne!(id, 0);
    assert_eq!(full.responses[0].topic_id, topic_id);
    let by_name = client.send(session_fetch("", &[], id, 1), 12).await;
    assert_eq!(
        by_name.error_code,
        ResponseError::FetchSessionTopicIdError.code()
    );
    produce_one(&mut client, "ids", 0, "y").await;
    let by_id = client.send(session_fetch("", &[], id, 1), 17).await;
    assert_eq!(by_id.error_code, 0);
    assert_eq!(by_id.responses.len(), 1);
    assert_eq!(by_id.responses[0].topic_id, topic_id);
    let records = by_id.responses[0].partitions[0].records.as_ref().unwrap();
    assert_eq!(decode_values(records), strings(&["x", "y"]));
}

#[tokio::test]
async fn no_cache_slots_means_every_fetch_is_full() {
    let broker = TestBroker::start_with(|c| c.fetch_session_cache_slots = 0).await;
    let mut client = broker.client().await;
    create(&mut client, "none", 1).await;
    let full = client
        .send(session_fetch("none", &[(0, 0)], 0, 0), VERSION)
        .await;
    assert_eq!(full.error_code, 0);
    assert_eq!(full.session_id, 0, "declined");
}
