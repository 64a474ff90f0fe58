//! ListOffsets: earliest, latest, max timestamp, by timestamp, unknown partitions, and
//! batches whose producer left the max timestamp unset.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;
use runnel_protocol::batch::{set_max_timestamp, BatchSplitter};
use runnel_tests::records::{batch_at, batch_with, values, KeyValue};
use runnel_tests::requests::{fetch, list_offsets, metadata, produce};
use runnel_tests::{TestBroker, TestClient};

/// The highest ListOffsets version the broker advertises.
const LIST_OFFSETS_MAX: i16 = 10;

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
    for version in 1..=LIST_OFFSETS_MAX {
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

/// A batch's header max timestamp as sarama before 1.23 writes it: -1 (it never sets it),
/// with the CRC made valid again over that.
fn without_max_timestamp(batch: Bytes) -> Bytes {
    let mut raw = batch.to_vec();
    set_max_timestamp(&mut raw, -1);
    Bytes::from(raw)
}

/// sarama before 1.23 sends every batch with max timestamp -1. Kafka's broker sets the max
/// from the records on append; Runnel used to store the -1, so the time index never saw
/// those batches and ListOffsets by timestamp answered -1 (found by the Go compat suite).
#[tokio::test]
async fn batches_sent_without_a_max_timestamp_are_found_by_timestamp() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["legacy"])), 12).await;
    let recs: Vec<KeyValue<'_>> = (0..3).map(|_| (None, Some(&b"v"[..]))).collect();
    // Offsets 0-2 at 1000-1002 (uncompressed), 3-5 at 2000-2002 (gzip: read only by
    // decompressing).
    for (ts, compression) in [(1_000, Compression::None), (2_000, Compression::Gzip)] {
        let batch = without_max_timestamp(batch_with(&recs, ts, compression));
        let response = client.send(produce("legacy", 0, batch, 1), 9).await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    }
    assert_eq!(
        offset_at(&mut client, "legacy", 1_001, 7).await,
        (0, 1, 1_001)
    );
    assert_eq!(
        offset_at(&mut client, "legacy", 1_500, 7).await,
        (0, 3, 2_000)
    );
    assert_eq!(
        offset_at(&mut client, "legacy", 2_002, 7).await,
        (0, 5, 2_002)
    );
    assert_eq!(offset_at(&mut client, "legacy", -3, 7).await, (0, 5, 2_002));

    // Fetched batches carry the max timestamp of their records, under a valid CRC.
    let response = client.send(fetch("legacy", 0, 0, 0, 1), 12).await;
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    let maxima: Vec<i64> = BatchSplitter::new(records)
        .map(|batch| {
            let batch = batch.unwrap();
            assert!(batch.verify_crc().is_ok());
            batch.max_timestamp()
        })
        .collect();
    assert_eq!(maxima, vec![1_002, 2_002]);
}

/// Kafka answers every entry of a partition named more than once in one request with
/// INVALID_REQUEST (KafkaApis' `duplicatePartitions`), whichever topic entry names it again;
/// the other partitions of the request are answered as usual.
#[tokio::test]
async fn a_partition_named_twice_is_an_invalid_request() {
    use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response = client.send(metadata(Some(&["dup", "single"])), 12).await;
    assert!(response.topics.iter().all(|t| t.error_code == 0));
    let produced = client.send(produce("dup", 0, values(&["v"]), 1), 9).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let invalid = ResponseError::InvalidRequest.code();
    for version in [1, 7] {
        // Twice in one topic entry, and again in a second entry of the same topic.
        let mut request = list_offsets("dup", 0, -1);
        let again = ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-2);
        request.topics[0].partitions.push(again);
        let repeated_topic = list_offsets("dup", 0, -1).topics.remove(0);
        request.topics.push(repeated_topic);
        request
            .topics
            .push(list_offsets("single", 0, -1).topics.remove(0));
        let response = client.send(request, version).await;
        let answers: Vec<(i16, i64, i32)> = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.error_code, p.offset, p.leader_epoch))
            .collect();
        // Leader epochs are a v4+ field; an error answer's is unknown (-1) in Kafka's.
        let epoch = if version >= 4 { 0 } else { -1 };
        assert_eq!(
            answers,
            [
                (invalid, -1, -1),
                (invalid, -1, -1),
                (invalid, -1, -1),
                (0, 0, epoch)
            ],
            "v{version}"
        );
    }
}

/// Kafka 4.0 (KAFKA-17331) answers a special timestamp sent below the version that
/// introduced it with UNSUPPORTED_VERSION: max timestamp (-3) needs v7, earliest-local (-4)
/// v8 and latest-tiered (-5) v9; lower timestamps are not reserved.
#[tokio::test]
async fn special_timestamps_below_their_version_are_unsupported() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["special"])), 12).await;
    let produced = client
        .send(produce("special", 0, values(&["a", "b"]), 1), 9)
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let unsupported = ResponseError::UnsupportedVersion.code();
    for version in 1..=6 {
        let (code, offset, _) = offset_at(&mut client, "special", -3, version).await;
        assert_eq!((code, offset), (unsupported, -1), "-3 at v{version}");
    }
    assert_eq!(offset_at(&mut client, "special", -3, 7).await.0, 0);
    // Kafka 4.0's `ReplicaManager.timestampMinSupportedVersion`: -4 needs v8, -5 v9.
    for (timestamp, version_min) in [(-4, 8), (-5, 9)] {
        for version in 1..version_min {
            let (code, offset, _) = offset_at(&mut client, "special", timestamp, version).await;
            assert_eq!(
                (code, offset),
                (unsupported, -1),
                "{timestamp} at v{version}"
            );
        }
        let at_min = offset_at(&mut client, "special", timestamp, version_min).await;
        assert_eq!(at_min.0, 0, "{timestamp} at v{version_min}");
    }
    // Kafka 4.0 checks only the timestamps it reserves; a lower one is searched for like any
    // other (`UnifiedLog.fetchOffsetByTimestamp`): the first record.
    for timestamp in [-6, i64::MIN] {
        for version in [1, 7, LIST_OFFSETS_MAX] {
            let (code, offset, _) = offset_at(&mut client, "special", timestamp, version).await;
            assert_eq!((code, offset), (0, 0), "{timestamp} at v{version}");
        }
    }
}

/// Nothing is tiered here, so (as Kafka's `UnifiedLog.fetchOffsetByTimestamp` answers
/// without remote storage) earliest-local (-4, v8+) is the log start offset and follows
/// DeleteRecords, and latest-tiered (-5, v9+) is offset -1 with leader epoch -1. v10's
/// `timeout_ms` (KIP-1075, remote lookups) changes nothing.
#[tokio::test]
async fn earliest_local_is_the_log_start_and_nothing_is_tiered() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::DeleteRecordsRequest;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["local"])), 12).await;
    let produced = client
        .send(produce("local", 0, values(&["a", "b", "c"]), 1), 9)
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let answer = |response: &kafka_protocol::messages::ListOffsetsResponse| {
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp, p.leader_epoch)
    };
    for version in 8..=LIST_OFFSETS_MAX {
        let response = client.send(list_offsets("local", 0, -4), version).await;
        assert_eq!(answer(&response), (0, 0, -1, 0), "-4 at v{version}");
    }
    let delete = DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(runnel_tests::requests::topic_name("local"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(2)])]);
    let deleted = client.send(delete, 2).await;
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    for version in 8..=LIST_OFFSETS_MAX {
        let mut request = list_offsets("local", 0, -4);
        request.timeout_ms = 1;
        let response = client.send(request, version).await;
        assert_eq!(answer(&response), (0, 2, -1, 0), "-4 at v{version}");
    }
    for version in 9..=LIST_OFFSETS_MAX {
        let response = client.send(list_offsets("local", 0, -5), version).await;
        assert_eq!(answer(&response), (0, -1, -1, -1), "-5 at v{version}");
    }
    let (code, offset, _) = offset_at(&mut client, "missing", -5, LIST_OFFSETS_MAX).await;
    assert_eq!(
        (code, offset),
        (ResponseError::UnknownTopicOrPartition.code(), -1)
    );
}

/// ListOffsets v4+ carries the leader epoch the client last saw. Kafka answers
/// FENCED_LEADER_EPOCH when it is below the partition's (only -1 means "no check" here, so
/// -2 is below 0) and UNKNOWN_LEADER_EPOCH when above, with offset, timestamp and epoch -1;
/// an unknown partition is UNKNOWN_TOPIC_OR_PARTITION whatever the epoch.
#[tokio::test]
async fn a_stale_or_unknown_leader_epoch_is_fenced_or_unknown() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let metadata = client.send(metadata(Some(&["epochs"])), 12).await;
    let epoch = metadata.topics[0].partitions[0].leader_epoch;
    let response = client
        .send(produce("epochs", 0, values(&["a", "b"]), 1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let ask = |topic: &str, partition: i32, current_leader_epoch: i32| {
        let mut request = list_offsets(topic, partition, -1);
        request.topics[0].partitions[0].current_leader_epoch = current_leader_epoch;
        request
    };
    let fenced = ResponseError::FencedLeaderEpoch.code();
    let unknown = ResponseError::UnknownLeaderEpoch.code();
    for version in [4, 7] {
        for (current, error_code) in [(epoch, 0), (-1, 0), (epoch + 1, unknown), (-2, fenced)] {
            let response = client.send(ask("epochs", 0, current), version).await;
            let p = &response.topics[0].partitions[0];
            let answer = (p.error_code, p.offset, p.timestamp, p.leader_epoch);
            let expected = match error_code {
                0 => (0, 2, -1, epoch),
                _ => (error_code, -1, -1, -1),
            };
            assert_eq!(answer, expected, "epoch {current} at v{version}");
        }
        let response = client.send(ask("epochs", 9, epoch + 1), version).await;
        let code = response.topics[0].partitions[0].error_code;
        assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    }
}

/// OffsetForLeaderEpoch (KIP-320 position checks) at every version we advertise: the one
/// epoch ends at the log end; a later epoch is unknown; a stale current epoch is fenced.
#[tokio::test]
async fn offset_for_leader_epoch_ends_the_one_epoch_at_the_log_end() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::OffsetForLeaderEpochRequest;
    use runnel_tests::requests::topic_name;

    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["epochs"])), 12).await;
    let recs: Vec<KeyValue<'_>> = (0..3).map(|_| (None, Some(&b"v"[..]))).collect();
    let response = client
        .send(produce("epochs", 0, batch_at(&recs, 1_000), 1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let ask = |partition: i32, current: i32, epoch: i32| {
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic_name("epochs"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])])
    };
    for version in 2..=4 {
        let cases = [
            ((0, -1, 0), (0, 0, 3)),
            ((0, 0, 0), (0, 0, 3)),
            ((0, -1, 5), (0, -1, -1)),
            (
                (0, -2, 0),
                (ResponseError::FencedLeaderEpoch.code(), -1, -1),
            ),
            (
                (9, -1, 0),
                (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
            ),
        ];
        for ((partition, current, epoch), want) in cases {
            let response = client.send(ask(partition, current, epoch), version).await;
            let answer = &response.topics[0].partitions[0];
            assert_eq!(answer.partition, partition);
            assert_eq!(
                (answer.error_code, answer.leader_epoch, answer.end_offset),
                want,
                "v{version} partition {partition} current {current} epoch {epoch}"
            );
        }
    }
}
