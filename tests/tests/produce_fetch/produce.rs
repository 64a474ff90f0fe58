//! Producing end to end: acks 0/1/-1, every Produce version, per-partition errors and bad
//! acks, compressed batches and zstd, compacted topics' keys.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use runnel_tests::records::values;
use runnel_tests::requests::{fetch, produce};
use runnel_tests::TestBroker;

use super::{create, end_offset, fetched, partition_error};

#[tokio::test]
async fn acks_1_and_all_append_and_fetch_returns_the_records() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "t").await;
    let first = client
        .send(produce("t", 0, values(&["a", "b"]), 1), 9)
        .await;
    assert_eq!(partition_error(&first), 0);
    assert_eq!(first.responses[0].partition_responses[0].base_offset, 0);
    let second = client.send(produce("t", 0, values(&["c"]), -1), 9).await;
    assert_eq!(partition_error(&second), 0);
    assert_eq!(second.responses[0].partition_responses[0].base_offset, 2);
    assert_eq!(
        second.responses[0].partition_responses[0].log_start_offset,
        0
    );
    for version in 4..=12 {
        let response = client.send(fetch("t", 0, 0, 0, 0), version).await;
        assert_eq!(fetched(&response), ["a", "b", "c"], "v{version}");
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.high_watermark, 3);
        assert_eq!(partition.last_stable_offset, 3);
        if version >= 5 {
            assert_eq!(partition.log_start_offset, 0, "a v5+ field");
        }
        assert_eq!(response.session_id, 0);
    }
}

#[tokio::test]
async fn produce_works_at_every_supported_version() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "v").await;
    for version in 3..=9 {
        let response = client
            .send(produce("v", 0, values(&["x"]), 1), version)
            .await;
        assert_eq!(partition_error(&response), 0, "v{version}");
        let base = response.responses[0].partition_responses[0].base_offset;
        assert_eq!(base, i64::from(version - 3));
    }
}

#[tokio::test]
async fn acks_0_sends_no_response_but_appends() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "quiet").await;
    client
        .write_request(&produce("quiet", 0, values(&["q1"]), 0), 9)
        .await;
    assert!(client.is_silent_for(Duration::from_millis(200)).await);
    // The next answer belongs to the next request: nothing was queued for the acks=0 one.
    assert_eq!(end_offset(&mut client, "quiet").await, 1);
}

#[tokio::test]
async fn a_bad_partition_fails_only_itself() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "mixed").await;
    let mut request = produce("mixed", 0, values(&["ok"]), 1);
    let mut missing = request.topic_data[0].partition_data[0].clone();
    missing.index = 7;
    request.topic_data[0].partition_data.push(missing);
    let mut unknown_topic = request.topic_data[0].clone();
    unknown_topic.name = runnel_tests::requests::topic_name("never-created");
    request.topic_data.push(unknown_topic);
    let response = client.send(request, 9).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(
        response.responses[0].partition_responses[1].error_code,
        unknown
    );
    assert_eq!(
        response.responses[1].partition_responses[0].error_code,
        unknown
    );
    assert_eq!(end_offset(&mut client, "mixed").await, 1);
}

#[tokio::test]
async fn invalid_acks_and_out_of_range_fetches_are_errors() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "errs").await;
    let response = client.send(produce("errs", 0, values(&["x"]), 2), 9).await;
    assert_eq!(
        partition_error(&response),
        ResponseError::InvalidRequiredAcks.code()
    );
    let response = client.send(fetch("errs", 0, 5, 0, 0), 12).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, ResponseError::OffsetOutOfRange.code());
    let mut follower: FetchRequest = fetch("errs", 0, 0, 0, 0);
    follower.replica_id = kafka_protocol::messages::BrokerId(3);
    let response = client.send(follower, 12).await;
    assert_ne!(response.responses[0].partitions[0].error_code, 0);
}

/// Kafka sorts a produce's partitions before the acks are looked at
/// (`KafkaApis.handleProduceRequest`): an unknown partition keeps UNKNOWN_TOPIC_OR_PARTITION
/// and one whose records fail the format check keeps that error; only the partitions handed
/// to `ReplicaManager.appendRecords` are answered INVALID_REQUIRED_ACKS. Nothing is appended.
#[tokio::test]
async fn invalid_acks_fail_only_the_partitions_that_reach_the_append() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "acks").await;
    for acks in [2, -2, i16::MAX] {
        let mut request = produce("acks", 0, values(&["x"]), acks);
        let good = request.topic_data[0].partition_data[0].clone();
        let mut unknown_partition = good.clone();
        unknown_partition.index = 7;
        let mut garbage = good.clone();
        garbage.records = Some(bytes::Bytes::from_static(b"not a batch"));
        request.topic_data[0]
            .partition_data
            .extend([unknown_partition, garbage.clone()]);
        let mut unknown_topic = request.topic_data[0].clone();
        unknown_topic.name = runnel_tests::requests::topic_name("never-created-acks");
        request.topic_data.push(unknown_topic);
        let response = client.send(request, 9).await;
        let errors: Vec<Vec<(i32, i16)>> = response
            .responses
            .iter()
            .map(|t| {
                let partitions = t.partition_responses.iter();
                partitions.map(|p| (p.index, p.error_code)).collect()
            })
            .collect();
        let bad_acks = ResponseError::InvalidRequiredAcks.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let invalid = ResponseError::InvalidRecord.code();
        // Partition 0 is named twice: its garbage entry's error wins over the acks, as
        // Kafka merges its format errors over the append's answers.
        assert_eq!(
            errors,
            vec![
                vec![(0, invalid), (7, unknown)],
                vec![(0, unknown), (7, unknown)]
            ],
            "acks {acks}"
        );
        let only_good = produce("acks", 0, values(&["x"]), acks);
        let response = client.send(only_good, 9).await;
        assert_eq!(partition_error(&response), bad_acks, "acks {acks}");
        let mut only_garbage = produce("acks", 0, values(&["x"]), acks);
        only_garbage.topic_data[0].partition_data = vec![garbage];
        let response = client.send(only_garbage, 9).await;
        assert_eq!(partition_error(&response), invalid, "acks {acks}");
    }
    assert_eq!(end_offset(&mut client, "acks").await, 0, "nothing appended");
}

#[tokio::test]
async fn compressed_batches_round_trip() {
    use kafka_protocol::records::Compression;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "zipped").await;
    let mut expected = Vec::new();
    for (i, codec) in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let value = format!("compressed-{i}");
        let batch =
            runnel_tests::records::batch_with(&[(None, Some(value.as_bytes()))], 1_000, codec);
        let response = client.send(produce("zipped", 0, batch, 1), 9).await;
        assert_eq!(partition_error(&response), 0, "{codec:?}");
        expected.push(value);
    }
    let response = client.send(fetch("zipped", 0, 0, 0, 0), 12).await;
    assert_eq!(fetched(&response), expected);
}

#[tokio::test]
async fn compacted_topics_require_keys() {
    let broker = TestBroker::start_with(|c| {
        c.topic_defaults
            .insert("cleanup.policy".into(), "compact".into());
    })
    .await;
    let mut client = broker.client().await;
    create(&mut client, "table").await;
    let keyed = runnel_tests::records::keyed(&[("k1", "v1"), ("k2", "v2")]);
    assert_eq!(
        partition_error(&client.send(produce("table", 0, keyed, 1), 9).await),
        0
    );
    let unkeyed = values(&["no-key"]);
    let response = client.send(produce("table", 0, unkeyed, 1), 9).await;
    assert_eq!(
        partition_error(&response),
        ResponseError::InvalidRecord.code()
    );
    assert_eq!(end_offset(&mut client, "table").await, 2);
}

#[tokio::test]
async fn a_failed_acks_0_produce_closes_the_connection() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client
        .write_request(&produce("no-such-topic", 0, values(&["lost"]), 0), 9)
        .await;
    assert!(client.is_closed().await);
}

/// zstd arrived with Produce v7 and Fetch v10 (KIP-110). Kafka 4.0 still refuses a zstd
/// batch in an older Produce with UNSUPPORTED_COMPRESSION_TYPE (`ProduceRequest.
/// validateRecords`), but answers every Fetch version with the batches as stored: 4.0
/// dropped the check that refused Fetch below v10 a partition of a `compression.type=zstd`
/// topic (KAFKA-18269), and never looked at the batches themselves. An older Produce with a
/// batch in another codec is accepted by a zstd topic (Kafka's only check there was on
/// inter.broker.protocol.version < 2.1, which 4.0 cannot run) and stored in zstd.
#[tokio::test]
async fn zstd_needs_produce_v7_and_any_fetch_reads_it() {
    use kafka_protocol::records::Compression;
    use runnel_protocol::batch::{Compression as RunnelCompression, RecordBatch};
    use runnel_tests::records::batch_with;
    use runnel_tests::requests::creatable_topic;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "zstd").await;
    let unsupported = ResponseError::UnsupportedCompressionType.code();
    let batch = |value: &str, codec| batch_with(&[(None, Some(value.as_bytes()))], 1_000, codec);
    for version in 3..=6 {
        let response = client
            .send(
                produce("zstd", 0, batch("old", Compression::Zstd), 1),
                version,
            )
            .await;
        assert_eq!(
            partition_error(&response),
            unsupported,
            "produce v{version}"
        );
    }
    assert_eq!(end_offset(&mut client, "zstd").await, 0, "nothing appended");
    // Offsets: 0 gzip, 1 zstd, 2 uncompressed.
    for (value, codec) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("plain", Compression::None),
    ] {
        let response = client
            .send(produce("zstd", 0, batch(value, codec), 1), 7)
            .await;
        assert_eq!(partition_error(&response), 0, "{value}");
    }
    for version in 4..=12 {
        let response = client.send(fetch("zstd", 0, 0, 0, 0), version).await;
        assert_eq!(response.responses[0].partitions[0].error_code, 0);
        assert_eq!(fetched(&response), ["gzip", "zstd", "plain"], "v{version}");
        let response = client.send(fetch("zstd", 0, 1, 0, 0), version).await;
        assert_eq!(fetched(&response), ["zstd", "plain"], "v{version} from 1");
    }
    // A topic that compresses with zstd takes an older Produce of a gzip batch and stores
    // it in zstd, which an older Fetch gets as it is.
    let create_zstd = kafka_protocol::messages::CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(
            "by-zstd",
            1,
            &[("compression.type", "zstd")],
        )])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(create_zstd, 7).await.topics[0].error_code, 0);
    let response = client
        .send(produce("by-zstd", 0, batch("old", Compression::Gzip), 1), 3)
        .await;
    assert_eq!(partition_error(&response), 0, "produce v3 to a zstd topic");
    let response = client.send(fetch("by-zstd", 0, 0, 0, 0), 4).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "fetch v4 of a zstd topic");
    let stored = RecordBatch::parse(partition.records.clone().unwrap()).unwrap();
    assert_eq!(stored.compression(), Ok(RunnelCompression::Zstd));
    assert_eq!(fetched(&response), ["old"]);
    // Batches large enough to be sent from the segment file (offsets 3 plain, 4 zstd):
    // an old client's come from the file like a new one's.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: String = (0..40_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    for codec in [Compression::None, Compression::Zstd] {
        let response = client
            .send(produce("zstd", 0, batch(&noise, codec), 1), 7)
            .await;
        assert_eq!(partition_error(&response), 0, "{codec:?}");
    }
    for version in [9, 12] {
        let response = client.send(fetch("zstd", 0, 3, 0, 0), version).await;
        assert_eq!(
            fetched(&response),
            [noise.clone(), noise.clone()],
            "v{version}"
        );
    }
}
