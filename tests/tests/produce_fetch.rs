//! Produce and Fetch end to end: acks 0/1/-1, many batches, fetching from the middle, the
//! long poll, byte limits, per-partition errors and pipelining.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse};
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{fetch, list_offsets, metadata, produce};
use runnel_tests::{TestBroker, TestClient};

async fn create(client: &mut TestClient, topic: &str) {
    let response = client.send(metadata(Some(&[topic])), 12).await;
    assert_eq!(response.topics[0].error_code, 0);
}

fn partition_error(response: &ProduceResponse) -> i16 {
    response.responses[0].partition_responses[0].error_code
}

fn fetched(response: &FetchResponse) -> Vec<String> {
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    decode_values(partition.records.as_ref().expect("records"))
}

async fn end_offset(client: &mut TestClient, topic: &str) -> i64 {
    let response = client.send(list_offsets(topic, 0, -1), 7).await;
    response.topics[0].partitions[0].offset
}

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
async fn many_batches_and_fetches_from_middle_offsets() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "many").await;
    let mut expected = Vec::new();
    for round in 0..10 {
        let names: Vec<String> = (0..3).map(|i| format!("r{round}-{i}")).collect();
        // Batches of one and two records (one batch per partition and request, as Kafka).
        for batch in [values(&[&names[0]]), values(&[&names[1], &names[2]])] {
            let response = client.send(produce("many", 0, batch, 1), 9).await;
            assert_eq!(partition_error(&response), 0);
        }
        expected.extend(names);
    }
    assert_eq!(end_offset(&mut client, "many").await, 30);
    for offset in [0usize, 1, 2, 13, 29] {
        let response = client.send(fetch("many", 0, offset as i64, 0, 0), 12).await;
        let got = fetched(&response);
        // Fetch returns whole batches: the first may start before the asked offset.
        let start = got
            .iter()
            .position(|v| *v == expected[offset])
            .expect("asked offset present");
        assert!(start <= 1, "at most one earlier record from the same batch");
        assert_eq!(&got[start..], &expected[offset..offset + got.len() - start]);
    }
    let at_end = client.send(fetch("many", 0, 30, 0, 0), 12).await;
    assert!(fetched(&at_end).is_empty());
}

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

#[tokio::test]
async fn byte_limits_still_return_one_whole_batch() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "big").await;
    let payload = "p".repeat(1_000);
    for _ in 0..5 {
        let response = client
            .send(produce("big", 0, values(&[&payload]), 1), 9)
            .await;
        assert_eq!(partition_error(&response), 0);
    }
    let batch_bytes = values(&[&payload]).len() as i32;
    let mut tiny = fetch("big", 0, 0, 0, 0);
    tiny.topics[0].partitions[0].partition_max_bytes = 1;
    assert_eq!(fetched(&client.send(tiny, 12).await).len(), 1);
    let mut two = fetch("big", 0, 0, 0, 0);
    two.max_bytes = batch_bytes * 2 + batch_bytes / 2;
    assert_eq!(fetched(&client.send(two, 12).await).len(), 2);
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
async fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "pipe").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let acks = if i % 2 == 0 { -1 } else { 1 };
        let request: ProduceRequest = produce("pipe", 0, values(&[&i.to_string()]), acks);
        ids.push(client.write_request(&request, 9).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let (got, response) = client.read_response::<ProduceResponse>(9).await;
        assert_eq!(got, id);
        assert_eq!(
            response.responses[0].partition_responses[0].base_offset,
            i as i64
        );
    }
    let response = client.send(fetch("pipe", 0, 0, 0, 0), 12).await;
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(fetched(&response), expected);
}

#[tokio::test]
async fn small_requests_pipelined_behind_large_ones_see_them_applied() {
    // The reader reads ahead of the applier: a Fetch or a small produce written right
    // behind a large produce must still be applied after it, and answered after it.
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "order").await;
    let big = "b".repeat(200 * 1024);
    let mut ids = Vec::new();
    for round in 0..10i64 {
        let large: ProduceRequest = produce("order", 0, values(&[&big]), 1);
        ids.push(client.write_request(&large, 9).await);
        let small: ProduceRequest = produce("order", 0, values(&[&round.to_string()]), 1);
        ids.push(client.write_request(&small, 9).await);
        let this_round = fetch("order", 0, 2 * round, 0, 0);
        ids.push(client.write_request(&this_round, 12).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let round = (i / 3) as i64;
        if i % 3 == 2 {
            let (got, response) = client.read_response::<FetchResponse>(12).await;
            assert_eq!(got, id);
            // Both records this round produced before the fetch are there.
            assert_eq!(fetched(&response), vec![big.clone(), round.to_string()]);
        } else {
            let (got, response) = client.read_response::<ProduceResponse>(9).await;
            assert_eq!(got, id);
            let offset = response.responses[0].partition_responses[0].base_offset;
            assert_eq!(offset, 2 * round + (i % 3) as i64, "request {i}");
        }
    }
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
async fn a_waiting_fetch_does_not_block_later_requests_on_its_connection() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "same-conn").await;
    // The fetch waits for data; the produce behind it on the same connection is applied
    // anyway, wakes the fetch, and the answers still come back in request order.
    let fetch_id = client
        .write_request(&fetch("same-conn", 0, 0, 10_000, 1), 12)
        .await;
    let produce_id = client
        .write_request(&produce("same-conn", 0, values(&["x"]), 1), 9)
        .await;
    let (got, fetched_response) = client.read_response::<FetchResponse>(12).await;
    assert_eq!(got, fetch_id);
    assert_eq!(fetched(&fetched_response), ["x"]);
    let (got, produced) = client.read_response::<ProduceResponse>(9).await;
    assert_eq!(got, produce_id);
    assert_eq!(partition_error(&produced), 0);
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

#[tokio::test]
async fn large_batches_sent_from_the_segment_file_arrive_intact_at_every_version() {
    // Batches of ≥ 16 KiB in the cached tail are sent with sendfile, not copied.
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "large").await;
    let mut sent: Vec<String> = Vec::new();
    for batch in 0..6 {
        let batch_values: Vec<String> = (0..30)
            .map(|i| format!("{batch:02}-{i:02}-{}", "v".repeat(1_000 + batch * 7 + i)))
            .collect();
        let refs: Vec<&str> = batch_values.iter().map(String::as_str).collect();
        let response = client.send(produce("large", 0, values(&refs), 1), 9).await;
        assert_eq!(partition_error(&response), 0);
        sent.extend(batch_values);
    }
    for version in 4..=12 {
        let mut received: Vec<String> = Vec::new();
        let mut offset = 0;
        while offset < sent.len() as i64 {
            let mut request = fetch("large", 0, offset, 0, 0);
            request.topics[0].partitions[0].partition_max_bytes = 100 * 1024;
            let got = fetched(&client.send(request, version).await);
            assert!(
                !got.is_empty() && got.len() <= 90,
                "v{version}: {} records",
                got.len()
            );
            offset += got.len() as i64;
            received.extend(got);
        }
        assert_eq!(received, sent, "v{version}");
    }
    // Pipelined: several responses with file-backed records in flight on one connection.
    let mut ids = Vec::new();
    for batch in 0..6 {
        ids.push(
            client
                .write_request(&fetch("large", 0, batch * 30, 0, 0), 12)
                .await,
        );
    }
    for (batch, id) in ids.into_iter().enumerate() {
        let (got, response) = client.read_response::<FetchResponse>(12).await;
        assert_eq!(got, id);
        assert_eq!(
            fetched(&response),
            sent[batch * 30..],
            "pipelined fetch {batch}"
        );
    }
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

/// A full fetch gets its records, and a session id at epoch 0 (none at -1); an incremental
/// one (any other epoch) naming a session this broker never handed out gets
/// FETCH_SESSION_ID_NOT_FOUND with no partitions (so a client that carried a session over
/// from another broker falls back to full fetches, not to an answer for only the partitions
/// that changed). Sessions themselves: `fetch_sessions.rs`.
#[tokio::test]
async fn incremental_fetches_on_unknown_sessions_are_fetch_session_id_not_found() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "sessions").await;
    client
        .send(produce("sessions", 0, values(&["s"]), 1), 9)
        .await;
    for version in 7..=12 {
        for (session_id, epoch) in [(0, 0), (0, -1), (42, -1)] {
            let mut full = fetch("sessions", 0, 0, 0, 0);
            full.session_id = session_id;
            full.session_epoch = epoch;
            let response = client.send(full, version).await;
            assert_eq!(response.error_code, 0, "v{version} epoch {epoch}");
            assert_eq!(
                response.session_id != 0,
                epoch == 0,
                "v{version} epoch {epoch}"
            );
            assert_eq!(fetched(&response), ["s"]);
        }
        for (session_id, epoch) in [(42, 1), (42, 7), (0, 3), (42, -2)] {
            let mut incremental = fetch("sessions", 0, 0, 0, 0);
            incremental.session_id = session_id;
            incremental.session_epoch = epoch;
            let response = client.send(incremental, version).await;
            assert_eq!(
                response.error_code,
                ResponseError::FetchSessionIdNotFound.code(),
                "v{version} session {session_id} epoch {epoch}"
            );
            assert_eq!(response.session_id, 0);
            assert!(response.responses.is_empty());
        }
    }
}

/// A partition answered with an error carries no offsets: Kafka's ReplicaManager answers a
/// failed read (OFFSET_OUT_OF_RANGE included) with high watermark, last stable offset and
/// log start offset all -1 (`UnifiedLog.UNKNOWN_OFFSET`). Clients reset with ListOffsets,
/// not from these fields.
#[tokio::test]
async fn an_errored_partition_answers_unknown_offsets() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "oor").await;
    let response = client
        .send(produce("oor", 0, values(&["a", "b"]), 1), 9)
        .await;
    assert_eq!(partition_error(&response), 0);
    for version in [4, 5, 12] {
        for offset in [-1, 3, 1_000] {
            let response = client.send(fetch("oor", 0, offset, 0, 0), version).await;
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, ResponseError::OffsetOutOfRange.code());
            let offsets = (
                partition.high_watermark,
                partition.last_stable_offset,
                partition.log_start_offset,
            );
            assert_eq!(offsets, (-1, -1, -1), "offset {offset} at v{version}");
        }
    }
}

/// Fetch v9+ carries the leader epoch the client last saw (from Metadata). Kafka answers
/// UNKNOWN_LEADER_EPOCH when it is above the partition's and FENCED_LEADER_EPOCH when below;
/// a negative one is no check. Runnel's epoch is the one Metadata reports, so every epoch at
/// or below it passes here, and the error answers a long poll at once.
#[tokio::test]
async fn a_fetch_checks_the_clients_leader_epoch() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "epochs").await;
    let response = client
        .send(produce("epochs", 0, values(&["a"]), 1), 9)
        .await;
    assert_eq!(partition_error(&response), 0);
    let metadata = client.send(metadata(Some(&["epochs"])), 12).await;
    let epoch = metadata.topics[0].partitions[0].leader_epoch;
    assert!(epoch >= 0, "Metadata reports a leader epoch");
    let with_epoch = |current_leader_epoch: i32, max_wait_ms: i32| {
        let mut request = fetch("epochs", 0, 0, max_wait_ms, 1);
        request.topics[0].partitions[0].current_leader_epoch = current_leader_epoch;
        request
    };
    for version in [9, 12] {
        for current in [epoch, -1, -7] {
            let response = client.send(with_epoch(current, 0), version).await;
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, 0, "epoch {current} at v{version}");
            assert_eq!(fetched(&response), ["a"]);
        }
        let started = std::time::Instant::now();
        let response = client.send(with_epoch(epoch + 1, 10_000), version).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered at once"
        );
        let partition = &response.responses[0].partitions[0];
        let unknown = ResponseError::UnknownLeaderEpoch.code();
        assert_eq!(partition.error_code, unknown, "v{version}");
        assert_eq!(partition.high_watermark, -1);
        assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    }
    // Before v9 the field is not sent: no check.
    let response = client.send(fetch("epochs", 0, 0, 0, 0), 8).await;
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
}

/// Kafka reads a fetch's partitions into an ordered map (`FetchRequest.fetchData`): a
/// partition named twice is answered once, where it was first named, as its last entry
/// asks; its answer groups consecutive partitions of a topic into one topic entry.
#[tokio::test]
async fn a_partition_named_twice_is_fetched_once_as_last_asked() {
    use kafka_protocol::messages::fetch_request::FetchTopic;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for topic in ["dup-a", "dup-b"] {
        create(&mut client, topic).await;
    }
    for (topic, value) in [("dup-a", "a0"), ("dup-a", "a1"), ("dup-b", "b0")] {
        let response = client.send(produce(topic, 0, values(&[value]), 1), 9).await;
        assert_eq!(partition_error(&response), 0);
    }
    let entry = |topic: &str, offsets: &[i64]| -> FetchTopic {
        let mut entry = fetch(topic, 0, 0, 0, 0).topics.remove(0);
        let template = entry.partitions.remove(0);
        entry.partitions = offsets
            .iter()
            .map(|&offset| template.clone().with_fetch_offset(offset))
            .collect();
        entry
    };
    /// Each topic entry's name and its partitions' (index, values).
    type Answered = Vec<(String, Vec<(i32, Vec<String>)>)>;
    let answered = |response: &FetchResponse| -> Answered {
        let topics = response.responses.iter().map(|topic| {
            let partitions = topic.partitions.iter().map(|p| {
                assert_eq!(p.error_code, 0);
                (
                    p.partition_index,
                    decode_values(p.records.as_ref().unwrap()),
                )
            });
            (topic.topic.0.to_string(), partitions.collect())
        });
        topics.collect()
    };
    let owned = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    for version in [4, 12] {
        let mut request = fetch("dup-a", 0, 0, 0, 0);
        request.topics = vec![
            entry("dup-a", &[0]),
            entry("dup-b", &[0]),
            entry("dup-a", &[1]),
        ];
        let response = client.send(request.clone(), version).await;
        let expected = vec![
            ("dup-a".to_owned(), vec![(0, owned(&["a1"]))]),
            ("dup-b".to_owned(), vec![(0, owned(&["b0"]))]),
        ];
        assert_eq!(answered(&response), expected, "v{version}");
        // Twice in one topic entry; and a topic named in two entries back to back.
        request.topics = vec![entry("dup-a", &[1, 0]), entry("dup-a", &[0])];
        let response = client.send(request, version).await;
        let expected = vec![("dup-a".to_owned(), vec![(0, owned(&["a0", "a1"]))])];
        assert_eq!(answered(&response), expected, "v{version}");
    }
}

/// Kafka answers a fetch's known partitions first and the ones it does not know
/// (UNKNOWN_TOPIC_OR_PARTITION) after them, each group in request order
/// (`KafkaApis.handleFetchRequest` appends its `erroneous` list to the partitions read);
/// consecutive partitions of one topic share a topic entry.
#[tokio::test]
async fn unknown_partitions_are_answered_after_the_known_ones() {
    use kafka_protocol::messages::fetch_request::FetchTopic;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for topic in ["ord-a", "ord-b"] {
        create(&mut client, topic).await;
        let response = client.send(produce(topic, 0, values(&[topic]), 1), 9).await;
        assert_eq!(partition_error(&response), 0);
    }
    let entry = |topic: &str, partitions: &[i32]| -> FetchTopic {
        let mut entry = fetch(topic, 0, 0, 0, 0).topics.remove(0);
        let template = entry.partitions.remove(0);
        entry.partitions = partitions
            .iter()
            .map(|&partition| template.clone().with_partition(partition))
            .collect();
        entry
    };
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for version in [4, 12] {
        let mut request = fetch("ord-a", 0, 0, 0, 0);
        request.topics = vec![
            entry("ord-a", &[7, 0]),
            entry("never-created", &[0]),
            entry("ord-b", &[0]),
        ];
        let response = client.send(request, version).await;
        let answered: Vec<(String, Vec<(i32, i16)>)> = response
            .responses
            .iter()
            .map(|topic| {
                let partitions = topic.partitions.iter();
                let partitions = partitions.map(|p| (p.partition_index, p.error_code));
                (topic.topic.0.to_string(), partitions.collect())
            })
            .collect();
        let expected = vec![
            ("ord-a".to_owned(), vec![(0, 0)]),
            ("ord-b".to_owned(), vec![(0, 0)]),
            ("ord-a".to_owned(), vec![(7, unknown)]),
            ("never-created".to_owned(), vec![(0, unknown)]),
        ];
        assert_eq!(answered, expected, "v{version}");
        let records = response.responses[1].partitions[0]
            .records
            .as_ref()
            .unwrap();
        assert_eq!(decode_values(records), ["ord-b"]);
    }
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
