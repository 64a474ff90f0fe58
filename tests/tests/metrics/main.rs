//! `GET /metrics` after a known workload, one file per concept: broker figures (exact
//! traffic, offsets, request and error counts, connections, cleaner counters, brokers in one
//! process not sharing figures), consumer lag in records and seconds (and 0 once caught up,
//! none when unknown), and the series bounds (per-partition and per-group cardinality). The
//! workload and page helpers below are shared by all of them.

#![allow(clippy::unwrap_used)]

mod broker_figures;
mod consumer_lag;
mod series_bounds;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::batch_at;
use runnel_tests::requests::{produce, topic_name};
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

/// Topic `compacted`, one partition, whose small segments the cleaner compacts at once.
fn create_compacted(broker: &TestBroker) {
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
}
