//! Broker figures on `/metrics`: exact traffic, offsets, request and error counts,
//! connections closed, records sent from the segment file, the cleaner's counters, and
//! brokers in one process keeping their own figures.

use std::collections::BTreeMap;

use bytes::Bytes;
use runnel_tests::records::batch_at;
use runnel_tests::requests::{fetch, produce, topic_name};
use runnel_tests::TestBroker;

use super::{
    create_compacted, must, now_ms, once_one_connection_closed, produce_hundred, scrape, value,
    TOPIC,
};

#[tokio::test]
async fn traffic_offsets_and_requests_are_exact() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let (_, bytes) = produce_hundred(&broker, &mut client).await;
    let response = client.send(fetch(TOPIC, 0, 0, 0, 1), 12).await;
    let fetched = response.responses[0].partitions[0].records.clone().unwrap();
    // Unknown partition: an error counted by code.
    let failed = client
        .send(produce(TOPIC, 7, batch_at(&[(None, Some(b"x"))], 1), 1), 9)
        .await;
    assert_eq!(failed.responses[0].partition_responses[0].error_code, 3);

    let page = scrape(&broker).await;
    let topic = format!("{{topic=\"{TOPIC}\"}}");
    assert_eq!(
        must(&page, &format!("runnel_topic_records_in_total{topic}")),
        100.0
    );
    assert_eq!(
        must(&page, &format!("runnel_topic_bytes_in_total{topic}")),
        bytes as f64
    );
    assert_eq!(
        must(&page, &format!("runnel_topic_records_out_total{topic}")),
        100.0
    );
    assert_eq!(
        must(&page, &format!("runnel_topic_bytes_out_total{topic}")),
        fetched.len() as f64
    );
    assert_eq!(must(&page, &format!("runnel_topic_partitions{topic}")), 3.0);
    let p0 = format!("{{topic=\"{TOPIC}\",partition=\"0\"}}");
    assert_eq!(
        must(&page, &format!("runnel_partition_log_end_offset{p0}")),
        100.0
    );
    assert_eq!(
        must(&page, &format!("runnel_partition_log_start_offset{p0}")),
        0.0
    );
    assert_eq!(must(&page, &format!("runnel_partition_segments{p0}")), 1.0);
    assert_eq!(
        must(&page, &format!("runnel_partition_size_bytes{p0}")),
        bytes as f64
    );
    assert_eq!(must(&page, "runnel_requests_total{api=\"Produce\"}"), 11.0);
    assert_eq!(must(&page, "runnel_requests_total{api=\"Fetch\"}"), 1.0);
    assert_eq!(
        must(
            &page,
            "runnel_request_duration_seconds_count{api=\"Produce\"}"
        ),
        11.0
    );
    assert_eq!(
        must(&page, "runnel_request_errors_total{api=\"Produce\",error_code=\"3\",error=\"UnknownTopicOrPartition\"}"),
        1.0
    );
    assert_eq!(
        value(&page, "runnel_request_errors_total{api=\"Fetch\""),
        None
    );
    assert_eq!(must(&page, "runnel_connections_accepted_total"), 1.0);
    assert_eq!(must(&page, "runnel_connections_open"), 1.0);
    // acks=all: every produce waited for an fsync.
    assert!(must(&page, "runnel_log_fsync_duration_seconds_count") >= 1.0);
    assert!(must(&page, "runnel_log_fsyncs_total") >= 1.0);
    assert!(must(&page, "runnel_process_resident_memory_bytes") > 0.0);
    assert!(must(&page, "runnel_process_open_fds") > 0.0);

    drop(client);
    let page = once_one_connection_closed(&broker).await;
    assert_eq!(must(&page, "runnel_connections_open"), 0.0);
}

#[tokio::test]
async fn brokers_in_one_process_keep_their_own_figures() {
    let a = TestBroker::start().await;
    let b = TestBroker::start().await;
    let mut client = a.client().await;
    produce_hundred(&a, &mut client).await;
    let page_b = scrape(&b).await;
    assert_eq!(
        value(&page_b, "runnel_requests_total{api=\"Produce\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &page_b,
            &format!("runnel_topic_records_in_total{{topic=\"{TOPIC}\"}}")
        ),
        None
    );
    let page_a = scrape(&a).await;
    assert_eq!(
        must(&page_a, "runnel_requests_total{api=\"Produce\"}"),
        10.0
    );
}

#[tokio::test]
async fn a_failed_acks_0_produce_closes_the_connection_though_the_client_sends_no_more() {
    let broker = TestBroker::start().await;
    broker
        .context()
        .logs
        .create_topic("quiet", 1, BTreeMap::new(), false)
        .unwrap();
    let mut client = broker.client().await;
    // Partition 7 does not exist: acks=0 has no answer to carry the error, so the broker
    // closes the connection (as Kafka does), while the client keeps its socket open.
    client
        .write_request(
            &produce("quiet", 7, batch_at(&[(None, Some(b"x"))], 1), 0),
            9,
        )
        .await;
    assert!(client.is_closed().await);
    let page = once_one_connection_closed(&broker).await;
    assert_eq!(must(&page, "runnel_connections_open"), 0.0);
    drop(client);
}

#[tokio::test]
async fn traffic_out_counts_records_sent_from_the_segment_file() {
    // Batches of ≥ 16 KiB in the cached tail go out by sendfile: counted from their headers.
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    broker
        .context()
        .logs
        .create_topic("large", 1, BTreeMap::new(), false)
        .unwrap();
    let value = "v".repeat(1_000);
    for b in 0..3 {
        let records: Vec<_> = (0..20 + b)
            .map(|_| (None, Some(value.as_bytes())))
            .collect();
        let batch: Bytes = batch_at(&records, now_ms());
        assert!(batch.len() >= 16 * 1024);
        let response = client.send(produce("large", 0, batch, 1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let response = client.send(fetch("large", 0, 0, 0, 1), 12).await;
    let fetched = response.responses[0].partitions[0].records.clone().unwrap();
    let page = scrape(&broker).await;
    assert_eq!(
        must(&page, "runnel_topic_records_out_total{topic=\"large\"}"),
        63.0
    );
    assert_eq!(
        must(&page, "runnel_topic_bytes_out_total{topic=\"large\"}"),
        fetched.len() as f64
    );
}

/// The cleaner's counters are broker totals: deleting a compacted topic must not take its
/// share back out of them. A counter that falls reads to Prometheus as a reset, and
/// `rate()` then counts the whole remaining total again as new work.
#[tokio::test]
async fn cleaner_counters_do_not_fall_when_a_compacted_topic_is_deleted() {
    let broker = TestBroker::start().await;
    create_compacted(&broker);
    let logs = &broker.context().logs;
    let mut client = broker.client().await;
    let value = "v".repeat(100);
    for _ in 0..40 {
        let pairs = [("k1", value.as_str()), ("k2", value.as_str())];
        let batch = runnel_tests::records::keyed(&pairs);
        let response = client.send(produce("compacted", 0, batch, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    logs.clean_now("compacted", 0).unwrap();
    let counters = [
        "runnel_cleaner_passes_total",
        "runnel_cleaner_bytes_read_total",
        "runnel_cleaner_bytes_written_total",
        "runnel_cleaner_records_removed_total",
    ];
    let page = scrape(&broker).await;
    let before: Vec<f64> = counters.iter().map(|c| must(&page, c)).collect();
    assert!(
        before[0] >= 1.0 && before[1] > 0.0 && before[3] > 0.0,
        "{before:?}"
    );

    let delete = kafka_protocol::messages::DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("compacted")])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(delete, 5).await.responses[0].error_code, 0);
    let page = scrape(&broker).await;
    for (name, before) in counters.iter().zip(before) {
        let after = must(&page, name);
        assert!(after >= before, "{name} fell from {before} to {after}");
    }
    assert!(!page.contains("runnel_cleaner_dirty_ratio{topic=\"compacted\""));
}
