//! DeleteRecords over TCP at the lowest and highest versions we advertise: the log start
//! offset moves (ListOffsets earliest), fetching below it is OFFSET_OUT_OF_RANGE, and it
//! survives a restart.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::DeleteRecordsRequest;
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{fetch, list_offsets, metadata, produce, topic_name};
use runnel_tests::{TestBroker, TestClient};

const DELETE_RECORDS_MIN: i16 = 0;
const DELETE_RECORDS_MAX: i16 = 2;
const EARLIEST: i64 = -2;

/// (low watermark, error code) per requested (partition, offset).
async fn delete_before(
    client: &mut TestClient,
    version: i16,
    topic: &str,
    partitions: &[(i32, i64)],
) -> Vec<(i64, i16)> {
    let partitions = partitions
        .iter()
        .map(|(index, offset)| {
            DeleteRecordsPartition::default()
                .with_partition_index(*index)
                .with_offset(*offset)
        })
        .collect();
    let topic = DeleteRecordsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(partitions);
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let response = client.send(request, version).await;
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.low_watermark, p.error_code))
        .collect()
}

async fn earliest(client: &mut TestClient, topic: &str) -> i64 {
    let response = client.send(list_offsets(topic, 0, EARLIEST), 7).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    response.topics[0].partitions[0].offset
}

/// Ten records at offsets 0–9 in two batches of five.
async fn ten_records(client: &mut TestClient, topic: &str) {
    assert_eq!(
        client.send(metadata(Some(&[topic])), 12).await.topics[0].error_code,
        0
    );
    for batch in [["0", "1", "2", "3", "4"], ["5", "6", "7", "8", "9"]] {
        let response = client.send(produce(topic, 0, values(&batch), 1), 9).await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    }
}

#[tokio::test]
async fn log_start_moves_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    ten_records(&mut client, "t").await;
    assert_eq!(
        delete_before(&mut client, DELETE_RECORDS_MIN, "t", &[(0, 3)]).await,
        [(3, 0)]
    );
    assert_eq!(earliest(&mut client, "t").await, 3);
    assert_eq!(
        delete_before(&mut client, 1, "t", &[(0, 5)]).await,
        [(5, 0)]
    );
    assert_eq!(earliest(&mut client, "t").await, 5);
    assert_eq!(
        delete_before(&mut client, DELETE_RECORDS_MAX, "t", &[(0, 7)]).await,
        [(7, 0)]
    );
    assert_eq!(earliest(&mut client, "t").await, 7);

    let below = client.send(fetch("t", 0, 4, 0, 0), 12).await;
    let partition = &below.responses[0].partitions[0];
    assert_eq!(partition.error_code, ResponseError::OffsetOutOfRange.code());
    let from_start = client.send(fetch("t", 0, 7, 0, 0), 12).await;
    let partition = &from_start.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.log_start_offset, 7);
    let fetched = decode_values(partition.records.as_ref().unwrap());
    // The whole batch holding offset 7 comes back (5–9); clients skip below the offset.
    assert_eq!(fetched, ["5", "6", "7", "8", "9"]);
}

#[tokio::test]
async fn minus_one_means_the_high_watermark_and_it_survives_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    ten_records(&mut client, "t").await;
    assert_eq!(
        delete_before(&mut client, DELETE_RECORDS_MAX, "t", &[(0, -1)]).await,
        [(10, 0)]
    );
    assert_eq!(earliest(&mut client, "t").await, 10);
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(earliest(&mut client, "t").await, 10);
    let response = client.send(produce("t", 0, values(&["after"]), 1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 10);
}

#[tokio::test]
async fn refusals_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    ten_records(&mut client, "t").await;
    let out_of_range = ResponseError::OffsetOutOfRange.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for version in [DELETE_RECORDS_MIN, DELETE_RECORDS_MAX] {
        let results = delete_before(&mut client, version, "t", &[(0, 11), (0, -5), (9, 1)]).await;
        assert_eq!(
            results,
            [(-1, out_of_range), (-1, out_of_range), (-1, unknown)]
        );
        let results = delete_before(&mut client, version, "missing", &[(0, 0)]).await;
        assert_eq!(results, [(-1, unknown)]);
    }
    assert_eq!(earliest(&mut client, "t").await, 0);
}

/// A fetch long-polling (here for 20 s, for more bytes than the log holds) at an offset that
/// DeleteRecords then moves below the log start is woken and answers OFFSET_OUT_OF_RANGE at
/// once, as Kafka's delayed fetch completes when its offset leaves the log; it used to wait
/// out its whole max wait first.
#[tokio::test]
async fn a_fetch_waiting_below_a_new_log_start_answers_out_of_range_at_once() {
    use kafka_protocol::messages::FetchResponse;
    use std::time::Duration;
    let broker = TestBroker::start().await;
    let mut admin = broker.client().await;
    ten_records(&mut admin, "moving").await;
    let mut consumer = broker.client().await;
    consumer
        .write_request(&fetch("moving", 0, 2, 20_000, 1 << 20), 12)
        .await;
    assert!(
        consumer.is_silent_for(Duration::from_millis(300)).await,
        "the fetch is waiting"
    );
    assert_eq!(
        delete_before(&mut admin, DELETE_RECORDS_MAX, "moving", &[(0, 10)]).await,
        [(10, 0)]
    );
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        consumer.read_response::<FetchResponse>(12),
    )
    .await
    .expect("answered well before the fetch's 20 s deadline");
    let partition = &answer.1.responses[0].partitions[0];
    assert_eq!(partition.error_code, ResponseError::OffsetOutOfRange.code());
}
