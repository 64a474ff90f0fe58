//! Fetching end to end: from middle offsets, byte limits, large batches sent from the
//! segment file, unknown sessions, errored partitions, leader epochs, and the order of
//! partitions named twice or unknown.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchResponse;
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::TestBroker;

use super::{create, end_offset, fetched, partition_error};

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
