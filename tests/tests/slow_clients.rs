//! Clients that do not keep up: one that pipelines fetches and never reads the answers,
//! one that goes quiet. The broker's memory and its connections stay bounded.

#![allow(clippy::unwrap_used)]

mod bad_input_common;

use std::time::Duration;

use bad_input_common::{proc_status_kib, still_serves, PEAK_RSS_MEASUREMENT};
use kafka_protocol::messages::FetchResponse;
use runnel_tests::records::{concat, values};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::TestBroker;

const MIB: usize = 1024 * 1024;

/// A client that pipelines many Fetch requests and reads none of the answers holds at most
/// a bounded amount of response memory in the broker (Kafka answers one request per
/// connection at a time); once it reads, every answer arrives, whole and in order.
#[tokio::test]
async fn pipelined_fetches_never_read_hold_bounded_memory() {
    const DATA_BYTES: usize = 8 * MIB;
    const FETCHES: usize = 40;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["unread"])), 12).await;
    // Batches below the sendfile threshold, so each answer is a copy in memory.
    let payload = "r".repeat(10 * 1024);
    let request_batches: Vec<_> = (0..96).map(|_| values(&[&payload])).collect();
    let request_records = concat(&request_batches);
    let mut produced = 0;
    while produced < DATA_BYTES {
        let response = client
            .send(produce("unread", 0, request_records.clone(), 1), 9)
            .await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        produced += request_records.len();
    }
    let records = (produced / request_records.len() * request_batches.len()) as i64;

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
