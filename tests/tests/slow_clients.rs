//! Clients that do not keep up: one that pipelines fetches and never reads the answers,
//! one that goes quiet. The broker's memory and its connections stay bounded.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::bad_input_common::{proc_status_kib, still_serves, PEAK_RSS_MEASUREMENT};
use kafka_protocol::messages::{ApiVersionsRequest, FetchResponse, ProduceResponse};
use runnel_tests::records::values;
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::{encode_request, TestBroker, TestClient};

const MIB: usize = 1024 * 1024;

/// A client that pipelines many Fetch requests and reads none of the answers holds at most
/// a bounded amount of response memory in the broker (Kafka answers one request per
/// connection at a time); once it reads, every answer arrives, whole and in order.
#[tokio::test]
async fn pipelined_fetches_never_read_hold_bounded_memory() {
    const DATA_BYTES: usize = 8 * MIB;
    const FETCHES: usize = 40;
    let broker = TestBroker::start().await;
    let (produced, records) = produce_small_batches(&broker, "unread", DATA_BYTES).await;

    let _measuring = PEAK_RSS_MEASUREMENT.lock().await;
    let rss_before_kib = proc_status_kib("VmRSS");
    let mut reader = broker.client().await;
    let mut request = fetch("unread", 0, 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = 50 * MIB as i32;
    for _ in 0..FETCHES {
        reader.write_request(&request, 12).await;
    }
    // Let the broker apply all it will.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let growth_kib = proc_status_kib("VmRSS").saturating_sub(rss_before_kib);
    eprintln!("{FETCHES} unread fetches of {produced} bytes: RSS grew {growth_kib} KiB");
    assert!(
        growth_kib < 96 * 1024,
        "RSS grew {growth_kib} KiB holding unread fetch answers"
    );
    for _ in 0..FETCHES {
        let (_, response) = reader.read_response::<FetchResponse>(12).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.high_watermark, records);
        assert_eq!(partition.records.as_ref().unwrap().len(), produced);
    }
    still_serves(&broker).await;
}

/// Fills partition 0 of `topic` with at least `data_bytes` of 10 KiB batches (below the
/// sendfile threshold, so a Fetch answer is a copy in memory): (bytes, records) written.
async fn produce_small_batches(
    broker: &TestBroker,
    topic: &str,
    data_bytes: usize,
) -> (usize, i64) {
    let mut client = broker.client().await;
    client.send(metadata(Some(&[topic])), 12).await;
    let batch = values(&["r".repeat(10 * 1024).as_str()]);
    // One batch a request (Kafka's rule for a partition), 96 requests in flight at a time.
    const PIPELINED: usize = 96;
    let mut produced = 0;
    let mut records = 0;
    while produced < data_bytes {
        for _ in 0..PIPELINED {
            client
                .write_request(&produce(topic, 0, batch.clone(), 1), 9)
                .await;
        }
        for _ in 0..PIPELINED {
            let (_, response) = client.read_response::<ProduceResponse>(9).await;
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        }
        produced += PIPELINED * batch.len();
        records += PIPELINED as i64;
    }
    (produced, records)
}

/// A connection that moves no byte for `connections_max_idle_ms` is closed (Kafka's
/// `connections.max.idle.ms`); one that keeps sending requests is not.
#[tokio::test]
async fn idle_connections_are_closed_busy_ones_are_not() {
    let broker = TestBroker::start_with(|c| c.connections_max_idle_ms = 500).await;
    let mut idle = broker.client().await;
    idle.send(ApiVersionsRequest::default(), 0).await;
    let mut busy = broker.client().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        busy.send(ApiVersionsRequest::default(), 0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idle.is_closed().await, "the idle connection was closed");
    busy.send(ApiVersionsRequest::default(), 0).await;
}

/// A client that asks for more than its socket holds and then reads nothing is closed after
/// `connections_max_idle_ms` without progress: its connection slot and queued answers do not
/// stay taken forever.
#[tokio::test]
async fn a_client_that_stops_reading_gives_its_connection_back() {
    let broker = TestBroker::start_with(|c| {
        c.connections_max_idle_ms = 500;
        c.max_connections = 1;
    })
    .await;
    let (produced, _) = produce_small_batches(&broker, "stuck", 4 * MIB).await;
    let mut stuck = connect_when_a_slot_is_free(&broker).await;
    let mut request = fetch("stuck", 0, 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = 50 * MIB as i32;
    // Far more than the socket buffers on both sides hold; none of it is read.
    for _ in 0..16 {
        stuck.write_request(&request, 12).await;
    }
    assert!(16 * produced > 32 * MIB);
    let freed = Instant::now();
    let _next = connect_when_a_slot_is_free(&broker).await;
    eprintln!("slot given back after {:?}", freed.elapsed());
}

/// A connection that is answered, retried for up to 10 s while the only slot is taken.
async fn connect_when_a_slot_is_free(broker: &TestBroker) -> TestClient {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no connection slot came free");
        let mut client = broker.client().await;
        let frame = encode_request(&ApiVersionsRequest::default(), 0, 1);
        if client.try_send_raw(&frame).await.is_ok() && client.read_frame().await.is_some() {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
