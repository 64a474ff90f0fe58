//! ListOffsets: earliest, latest, max timestamp, by timestamp, unknown partitions.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use runnel_tests::records::{batch_at, KeyValue};
use runnel_tests::requests::{list_offsets, metadata, produce};
use runnel_tests::{TestBroker, TestClient};

async fn offset_at(
    client: &mut TestClient,
    topic: &str,
    timestamp: i64,
    version: i16,
) -> (i16, i64, i64) {
    let response = client
        .send(list_offsets(topic, 0, timestamp), version)
        .await;
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset, partition.timestamp)
}

#[tokio::test]
async fn earliest_latest_and_timestamps() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["ts"])), 12).await;
    // Offsets 0-1 at 1000-1001, 2-3 at 5000-5001, 4 at 3000 (out of order on purpose).
    for (records, ts) in [(2usize, 1_000i64), (2, 5_000), (1, 3_000)] {
        let recs: Vec<KeyValue<'_>> = (0..records).map(|_| (None, Some(&b"v"[..]))).collect();
        let response = client
            .send(produce("ts", 0, batch_at(&recs, ts), 1), 9)
            .await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    }
    for version in 1..=7 {
        assert_eq!(
            offset_at(&mut client, "ts", -2, version).await.1,
            0,
            "v{version}"
        );
        assert_eq!(
            offset_at(&mut client, "ts", -1, version).await.1,
            5,
            "v{version}"
        );
        assert_eq!(
            offset_at(&mut client, "ts", 1_001, version).await.1,
            1,
            "v{version}"
        );
    }
    assert_eq!(offset_at(&mut client, "ts", 2_000, 7).await, (0, 2, 5_000));
    assert_eq!(offset_at(&mut client, "ts", 0, 7).await, (0, 0, 1_000));
    // Nothing at or after this timestamp: offset -1.
    assert_eq!(offset_at(&mut client, "ts", 9_999, 7).await.1, -1);
    let response = client.send(list_offsets("ts", 0, -1), 4).await;
    assert_eq!(
        response.topics[0].partitions[0].leader_epoch, 0,
        "a v4+ field"
    );
    // Max timestamp (v7): the record with the largest timestamp.
    assert_eq!(offset_at(&mut client, "ts", -3, 7).await, (0, 3, 5_001));
}

#[tokio::test]
async fn unknown_partitions_are_errors() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let (code, offset, _) = offset_at(&mut client, "missing", -1, 7).await;
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(offset, -1);
}
