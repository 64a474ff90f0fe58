//! `GET /metrics` after a known workload: exact traffic, offsets, request and error counts,
//! consumer lag in records and seconds (and 0 once caught up), group figures, connections,
//! fsyncs, the per-partition cardinality switch, and brokers in one process not sharing
//! figures.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::batch_at;
use runnel_tests::requests::{fetch, produce, topic_name};
use runnel_tests::{TestBroker, TestClient};

const TOPIC: &str = "events";
/// Records are stamped from this far in the past, so lag in seconds is large and exact.
const AGE_MS: i64 = 200_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The value of the series written exactly as `series` (name and labels), if present.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn must(page: &str, series: &str) -> f64 {
    value(page, series).unwrap_or_else(|| panic!("no {series} in\n{page}"))
}

async fn scrape(broker: &TestBroker) -> String {
    let (status, page) = broker.http_get("/metrics").await;
    assert_eq!(status, 200);
    page
}

/// The metrics page once the broker has counted one connection closed (at most
/// `IO_TIMEOUT`).
async fn once_one_connection_closed(broker: &TestBroker) -> String {
    let closed = async {
        loop {
            let page = scrape(broker).await;
            if value(&page, "runnel_connections_closed_total") == Some(1.0) {
                return page;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(runnel_tests::IO_TIMEOUT, closed)
        .await
        .unwrap()
}

/// 100 records to partition 0 of a 3-partition topic, 10 batches of 10, acks=all; batch
/// `b` is stamped `t0 + b·10 s` (+1 ms per record). Returns t0 and the bytes appended.
async fn produce_hundred(broker: &TestBroker, client: &mut TestClient) -> (i64, usize) {
    broker
        .context()
        .logs
        .create_topic(TOPIC, 3, BTreeMap::new(), false)
        .unwrap();
    let t0 = now_ms() - AGE_MS;
    let mut bytes = 0;
    for b in 0..10 {
        let values: Vec<String> = (0..10).map(|i| format!("value-{b}-{i}")).collect();
        let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
        let batch: Bytes = batch_at(&records, t0 + b * 10_000);
        bytes += batch.len();
        let response = client.send(produce(TOPIC, 0, batch, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    (t0, bytes)
}

async fn commit(client: &mut TestClient, group: &str, offset: i64) {
    commit_at(client, group, TOPIC, 0, offset).await;
}

/// Commits `topic`-`partition` at `offset` for `group`.
async fn commit_at(client: &mut TestClient, group: &str, topic: &str, partition: i32, offset: i64) {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(partition)
        .with_committed_offset(offset);
    let topic = OffsetCommitRequestTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![partition]);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![topic]);
    let response = client.send(request, 8).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

/// A consumer-group series of partition 0 of the topic, which must be on `page`.
fn lag(page: &str, name: &str, group: &str) -> f64 {
    let series = format!("{name}{{group=\"{group}\",topic=\"{TOPIC}\",partition=\"0\"}}");
    must(page, &series)
}

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
async fn consumer_lag_in_records_and_seconds_is_exact_at_scrape_time() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let (t0, _) = produce_hundred(&broker, &mut client).await;
    commit(&mut client, "at-40", 40).await;
    // 45 is inside the batch starting at 40: its own record's timestamp counts.
    commit(&mut client, "at-45", 45).await;
    commit(&mut client, "done", 100).await;

    let before = now_ms();
    let page = scrape(&broker).await;
    let after = now_ms();
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        60.0
    );
    assert_eq!(
        lag(&page, "runnel_consumer_group_committed_offset", "at-40"),
        40.0
    );
    // Record 40 is the first of batch 4: stamped t0 + 40 s.
    let expected = |ts: i64| ((before - ts) as f64 / 1000.0, (after - ts) as f64 / 1000.0);
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-40");
    let (low, high) = expected(t0 + 40_000);
    assert!(
        seconds > 0.0 && (low..=high).contains(&seconds),
        "{seconds} not in {low}..={high}"
    );
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-45");
    let (low, high) = expected(t0 + 40_005);
    assert!(
        (low..=high).contains(&seconds),
        "{seconds} not in {low}..={high}"
    );
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-45"),
        55.0
    );
    assert_eq!(lag(&page, "runnel_consumer_group_lag_records", "done"), 0.0);
    assert_eq!(lag(&page, "runnel_consumer_group_lag_seconds", "done"), 0.0);
    let topic_lag =
        format!("runnel_consumer_group_topic_lag_records{{group=\"at-40\",topic=\"{TOPIC}\"}}");
    assert_eq!(must(&page, &topic_lag), 60.0);

    // Simple groups commit without members: Empty, no members, no rebalance.
    assert_eq!(
        must(
            &page,
            "runnel_consumer_group_state{group=\"at-40\",state=\"Empty\"}"
        ),
        1.0
    );
    assert_eq!(
        must(
            &page,
            "runnel_consumer_group_state{group=\"at-40\",state=\"Stable\"}"
        ),
        0.0
    );
    assert_eq!(
        must(&page, "runnel_consumer_group_members{group=\"at-40\"}"),
        0.0
    );
    assert_eq!(
        must(
            &page,
            "runnel_consumer_group_rebalances_total{group=\"at-40\"}"
        ),
        0.0
    );
    assert_eq!(must(&page, "runnel_consumer_groups{state=\"Empty\"}"), 3.0);

    // Consuming to the end: lag 0 on the next scrape (no staleness).
    commit(&mut client, "at-40", 100).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        0.0
    );
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_seconds", "at-40"),
        0.0
    );
    // New records: lag again, at once.
    let batch = batch_at(&[(None, Some(b"late"))], now_ms() - 5_000);
    client.send(produce(TOPIC, 0, batch, 1), 9).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        1.0
    );
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-40");
    assert!((4.0..60.0).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn topics_above_the_partition_bound_get_per_topic_series_only() {
    let broker = TestBroker::start_with(|c| c.metrics_partition_series_max = 2).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "g", 30).await;
    let page = scrape(&broker).await;
    assert!(!page.contains(&format!(
        "runnel_partition_log_end_offset{{topic=\"{TOPIC}\""
    )));
    assert!(!page.contains("runnel_consumer_group_lag_records{group=\"g\""));
    let topic = format!("{{topic=\"{TOPIC}\"}}");
    assert_eq!(must(&page, &format!("runnel_topic_records{topic}")), 100.0);
    let topic_lag =
        format!("runnel_consumer_group_topic_lag_records{{group=\"g\",topic=\"{TOPIC}\"}}");
    assert_eq!(must(&page, &topic_lag), 70.0);
    let folded = "runnel_consumer_group_lag_partitions_folded";
    assert_eq!(
        must(
            &page,
            &format!("{folded}{{bound=\"partition_series_max\"}}")
        ),
        1.0
    );
}

/// Per-partition lag series multiply by groups too: beyond
/// `--metrics-group-partition-series-max` (group, partition) pairs, the groups left (in id
/// order) get per group/topic lag only, and a gauge counts the pairs folded.
#[tokio::test]
async fn lag_series_beyond_the_group_partition_bound_fold_to_topic_lag() {
    let broker = TestBroker::start_with(|c| c.metrics_group_partition_series_max = 2).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit_at(&mut client, "a", TOPIC, 0, 30).await;
    commit_at(&mut client, "a", TOPIC, 1, 0).await;
    commit(&mut client, "b", 40).await;
    commit(&mut client, "c", 50).await;
    let page = scrape(&broker).await;
    assert_eq!(lag(&page, "runnel_consumer_group_lag_records", "a"), 70.0);
    let a1 = format!(
        "runnel_consumer_group_committed_offset{{group=\"a\",topic=\"{TOPIC}\",partition=\"1\"}}"
    );
    assert_eq!(must(&page, &a1), 0.0);
    for group in ["b", "c"] {
        for name in [
            "runnel_consumer_group_committed_offset",
            "runnel_consumer_group_lag_records",
            "runnel_consumer_group_lag_seconds",
        ] {
            let series = format!("{name}{{group=\"{group}\"");
            assert!(!page.contains(&series), "{series} in\n{page}");
        }
    }
    let topic_lag = |group: &str| {
        let series = format!(
            "runnel_consumer_group_topic_lag_records{{group=\"{group}\",topic=\"{TOPIC}\"}}"
        );
        must(&page, &series)
    };
    assert_eq!((topic_lag("b"), topic_lag("c")), (60.0, 50.0));
    let folded = "runnel_consumer_group_lag_partitions_folded";
    let by = |bound: &str| must(&page, &format!("{folded}{{bound=\"{bound}\"}}"));
    assert_eq!(by("group_partition_series_max"), 2.0);
    assert_eq!(by("partition_series_max"), 0.0);
    let (_, info) = broker.http_get("/v1/broker").await;
    assert!(
        info.contains("\"metrics_group_partition_series_max\":2"),
        "{info}"
    );
}

/// Every per-group series grows with the number of groups: only the first
/// `--metrics-group-series-max` groups in id order get any, the rest are counted.
#[tokio::test]
async fn groups_beyond_the_group_series_bound_get_no_per_group_series() {
    let broker = TestBroker::start_with(|c| c.metrics_group_series_max = 2).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    for (group, offset) in [("c", 50), ("a", 30), ("b", 40)] {
        commit(&mut client, group, offset).await;
    }
    let page = scrape(&broker).await;
    for (group, lag_records) in [("a", 70.0), ("b", 60.0)] {
        assert_eq!(
            lag(&page, "runnel_consumer_group_lag_records", group),
            lag_records
        );
        let labels = format!("{{group=\"{group}\"}}");
        assert_eq!(
            must(&page, &format!("runnel_consumer_group_members{labels}")),
            0.0
        );
        let topic_lag = format!(
            "runnel_consumer_group_topic_lag_records{{group=\"{group}\",topic=\"{TOPIC}\"}}"
        );
        assert_eq!(must(&page, &topic_lag), lag_records);
    }
    assert!(!page.contains("group=\"c\""), "group c in\n{page}");
    assert_eq!(must(&page, "runnel_consumer_groups_omitted"), 1.0);
    assert_eq!(must(&page, "runnel_consumer_groups{state=\"Empty\"}"), 3.0);
    let (_, info) = broker.http_get("/v1/broker").await;
    assert!(info.contains("\"metrics_group_series_max\":2"), "{info}");
}

/// A scrape computes lag only for the groups it shows: one left out by
/// `--metrics-group-series-max` costs no batch read and no cache entry. (Groups folded by
/// the partition bounds still need every partition's timestamp: their per-topic lag in
/// seconds, which is emitted, is the largest over the partitions.)
#[tokio::test]
async fn a_scrape_reads_nothing_for_the_groups_it_leaves_out() {
    let broker = TestBroker::start_with(|c| c.metrics_group_series_max = 1).await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "a", 30).await;
    commit(&mut client, "b", 40).await;
    let cache = &broker.context().metrics.lag_cache;
    let page = scrape(&broker).await;
    assert_eq!(lag(&page, "runnel_consumer_group_lag_records", "a"), 70.0);
    assert_eq!(must(&page, "runnel_consumer_groups_omitted"), 1.0);
    assert_eq!((cache.reads_total(), cache.len()), (1, 1));
    scrape(&broker).await;
    assert_eq!((cache.reads_total(), cache.len()), (1, 1));
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

/// After a restart, partitions open lazily; the lag of a group on a partition nobody has
/// touched since must still be measured against its real log end, not against an unopened
/// (empty-looking) log.
#[tokio::test]
async fn consumer_lag_after_a_restart_counts_partitions_not_yet_opened() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "at-40", 40).await;
    drop(client);
    let broker = broker.restart().await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        60.0
    );
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-40");
    assert!(
        seconds >= 160.0,
        "record 40 was stamped ≥ 160 s ago: {seconds}"
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

/// A commit of -1 (Kafka's "no offset", which some clients send) is no position: no lag
/// series and no share of the topic aggregate, `null` lag in the admin API, as
/// kafka-consumer-groups shows `-` — not "the whole log and one more" records.
#[tokio::test]
async fn a_negative_committed_offset_has_no_lag() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "unset", -1).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_committed_offset", "unset"),
        -1.0
    );
    for name in [
        "runnel_consumer_group_lag_records",
        "runnel_consumer_group_lag_seconds",
    ] {
        let series = format!("{name}{{group=\"unset\",topic=\"{TOPIC}\",partition=\"0\"}}");
        assert_eq!(value(&page, &series), None, "{series}");
    }
    for name in [
        "runnel_consumer_group_topic_lag_records",
        "runnel_consumer_group_topic_lag_seconds",
    ] {
        let series = format!("{name}{{group=\"unset\",topic=\"{TOPIC}\"}}");
        assert_eq!(value(&page, &series), None, "{series}");
    }
    let (status, body) = broker.http_get("/v1/groups/unset").await;
    assert_eq!(status, 200);
    let group: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(group["offsets"][0]["committed_offset"], -1);
    assert!(group["offsets"][0]["lag_records"].is_null(), "{group}");
    assert!(group["offsets"][0]["lag_seconds"].is_null(), "{group}");
    assert_eq!(group["lag_records"], 0);
}

/// A topic deleted and created again under the same name is a new log: a group that
/// commits the same offset on it is measured against the new records' timestamps, not the
/// deleted topic's (the lag cache is keyed by offset, and its entry survived the delete).
#[tokio::test]
async fn lag_seconds_after_a_topic_is_recreated_come_from_the_new_records() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "again", 40).await;
    let page = scrape(&broker).await;
    let old = lag(&page, "runnel_consumer_group_lag_seconds", "again");
    assert!(old >= 160.0, "record 40 was stamped ≥ 160 s ago: {old}");

    let delete = kafka_protocol::messages::DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name(TOPIC)])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(delete, 5).await.responses[0].error_code, 0);
    broker
        .context()
        .logs
        .create_topic(TOPIC, 3, BTreeMap::new(), false)
        .unwrap();
    let values: Vec<String> = (0..100).map(|i| format!("fresh-{i}")).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    let response = client
        .send(produce(TOPIC, 0, batch_at(&records, now_ms()), -1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    commit(&mut client, "again", 40).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "again"),
        60.0
    );
    let fresh = lag(&page, "runnel_consumer_group_lag_seconds", "again");
    assert!(fresh < 60.0, "record 40 of the new topic is new: {fresh} s");
}

/// Records produced without a timestamp (-1, Kafka's NO_TIMESTAMP, which produce accepts)
/// have no age: the lag in seconds of a group behind them is unknown — no series, `null`
/// in the admin API — not "now minus -1 ms" (56 years); the lag in records stays exact.
#[tokio::test]
async fn records_without_a_timestamp_give_no_lag_in_seconds() {
    let broker = TestBroker::start().await;
    broker
        .context()
        .logs
        .create_topic(TOPIC, 1, BTreeMap::new(), false)
        .unwrap();
    let mut client = broker.client().await;
    for i in 0..10 {
        let value = format!("untimed-{i}");
        let batch = batch_at(&[(None, Some(value.as_bytes()))], -1);
        let response = client.send(produce(TOPIC, 0, batch, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    commit(&mut client, "untimed", 3).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "untimed"),
        7.0
    );
    let series = format!(
        "runnel_consumer_group_lag_seconds{{group=\"untimed\",topic=\"{TOPIC}\",partition=\"0\"}}"
    );
    assert_eq!(value(&page, &series), None, "{page}");
    let topic = format!("{{group=\"untimed\",topic=\"{TOPIC}\"}}");
    let records = format!("runnel_consumer_group_topic_lag_records{topic}");
    assert_eq!(must(&page, &records), 7.0);
    let seconds = format!("runnel_consumer_group_topic_lag_seconds{topic}");
    assert_eq!(value(&page, &seconds), None);
    let (status, body) = broker.http_get("/v1/groups/untimed").await;
    assert_eq!(status, 200);
    let group: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(group["offsets"][0]["lag_records"], 7);
    assert!(group["offsets"][0]["lag_seconds"].is_null(), "{group}");
}

/// The cleaner's counters are broker totals: deleting a compacted topic must not take its
/// share back out of them. A counter that falls reads to Prometheus as a reset, and
/// `rate()` then counts the whole remaining total again as new work.
#[tokio::test]
async fn cleaner_counters_do_not_fall_when_a_compacted_topic_is_deleted() {
    let broker = TestBroker::start().await;
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let logs = &broker.context().logs;
    logs.create_topic("compacted", 1, configs, false).unwrap();
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

/// `runnel_cleaner_dirty_ratio` is a per-partition series: a compacted topic above the
/// partition bound gets none, like the other per-partition families.
#[tokio::test]
async fn cleaner_dirty_ratio_keeps_to_the_partition_bound() {
    let broker = TestBroker::start_with(|c| c.metrics_partition_series_max = 2).await;
    let compacted: BTreeMap<String, String> = [("cleanup.policy".to_owned(), "compact".to_owned())]
        .into_iter()
        .collect();
    let logs = &broker.context().logs;
    logs.create_topic("wide", 3, compacted.clone(), false)
        .unwrap();
    logs.create_topic("narrow", 2, compacted, false).unwrap();
    logs.clean_now("wide", 0).unwrap();
    logs.clean_now("narrow", 0).unwrap();
    let page = scrape(&broker).await;
    assert!(page.contains("runnel_cleaner_dirty_ratio{topic=\"narrow\",partition=\"0\"}"));
    assert!(
        !page.contains("runnel_cleaner_dirty_ratio{topic=\"wide\""),
        "{page}"
    );
}

/// Compaction may remove the record at a group's committed offset: the first record not
/// yet consumed is then a later, younger one, and the lag in seconds must follow it, not
/// keep the removed record's age (the lag cache is keyed by offset).
#[tokio::test]
async fn lag_seconds_follow_compaction_removing_the_committed_record() {
    let broker = TestBroker::start().await;
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let logs = &broker.context().logs;
    logs.create_topic("compacted", 1, configs, false).unwrap();
    let mut client = broker.client().await;
    let value = "v".repeat(100);
    let send = |key: String, timestamp_ms: i64| {
        let batch = batch_at(
            &[(Some(key.as_bytes()), Some(value.as_bytes()))],
            timestamp_ms,
        );
        produce("compacted", 0, batch, -1)
    };
    // Offset 0: key "stale", 200 s old; superseded at offset 41, then enough records to
    // seal the segment holding 41, so the cleaner removes offset 0.
    let recent = now_ms() - 5_000;
    let mut requests = vec![send("stale".to_owned(), now_ms() - AGE_MS)];
    requests.extend((1..41).map(|i| send(format!("k{i}"), recent)));
    requests.push(send("stale".to_owned(), recent));
    requests.extend((42..70).map(|i| send(format!("k{i}"), recent)));
    for request in requests {
        let response = client.send(request, 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    commit_at(&mut client, "behind", "compacted", 0, 0).await;
    let series =
        "runnel_consumer_group_lag_seconds{group=\"behind\",topic=\"compacted\",partition=\"0\"}";
    let before = must(&scrape(&broker).await, series);
    assert!(before >= 190.0, "record 0 was stamped 200 s ago: {before}");

    logs.clean_now("compacted", 0).unwrap();
    let first = logs.partition("compacted", 0).unwrap().read(0, 1).unwrap();
    let first_offset = i64::from_be_bytes(first.records[..8].try_into().unwrap());
    assert!(first_offset > 0, "the cleaner kept offset 0");
    let after = must(&scrape(&broker).await, series);
    assert!(after < 60.0, "record 1 onwards are 5 s old: {after}");
}

/// A first uncommitted record whose batch cannot be read (here: its length field ruined on
/// disk) has an unknown age: lag in seconds is left out, not reported as 0 ("caught up"),
/// which would hide the read error behind a healthy-looking panel.
#[tokio::test]
async fn an_unreadable_record_gives_no_lag_in_seconds_not_zero() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "blind", 10).await;
    // Batch by batch (base offset, length) to the one starting at offset 10; its length
    // becomes larger than the file.
    let path = broker
        .data_dir()
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.log");
    let mut file = std::fs::read(&path).unwrap();
    let mut position = 0;
    while i64::from_be_bytes(file[position..position + 8].try_into().unwrap()) < 10 {
        let length = i32::from_be_bytes(file[position + 8..position + 12].try_into().unwrap());
        position += 12 + length as usize;
    }
    file[position + 8..position + 12].copy_from_slice(&i32::MAX.to_be_bytes());
    std::fs::write(&path, &file).unwrap();

    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "blind"),
        90.0
    );
    let series = "runnel_consumer_group_lag_seconds";
    assert_eq!(
        value(
            &page,
            &format!("{series}{{group=\"blind\",topic=\"{TOPIC}\",partition=\"0\"}}")
        ),
        None,
        "{page}"
    );
}
