//! Helpers shared by the `bad_input*.rs` files: send hostile bytes, expect a close or an
//! error code, check that the broker still serves and that stored data is unharmed.

#![allow(clippy::unwrap_used, dead_code)]

use bytes::Bytes;
use kafka_protocol::messages::ApiVersionsRequest;
use runnel_tests::requests::{list_offsets, produce};
use runnel_tests::{TestBroker, TestClient};

/// Sends `bytes` on a new connection and expects the broker to close it, then checks that
/// another connection is served normally.
pub async fn closes_then_still_serves(broker: &TestBroker, bytes: &[u8]) {
    let mut bad = broker.client().await;
    // The broker may close before reading everything: a write error is fine.
    let _ = bad.try_send_raw(bytes).await;
    assert!(
        bad.is_closed().await,
        "connection should be closed after {bytes:02x?}"
    );
    still_serves(broker).await;
}

pub async fn still_serves(broker: &TestBroker) {
    let mut good = broker.client().await;
    let response = good.send(ApiVersionsRequest::default(), 0).await;
    assert_eq!(response.error_code, 0);
}

pub use runnel_tests::wire::frame;

pub fn header_only(api_key: i16, version: i16) -> Bytes {
    frame(api_key, version, &[])
}

/// The error code of an acks=1 Produce v9 of `records` to partition 0.
pub async fn produce_error(client: &mut TestClient, topic: &str, records: Bytes) -> i16 {
    let response = client.send(produce(topic, 0, records, 1), 9).await;
    response.responses[0].partition_responses[0].error_code
}

pub async fn end_offset(client: &mut TestClient, topic: &str) -> i64 {
    client.send(list_offsets(topic, 0, -1), 7).await.topics[0].partitions[0].offset
}

/// A field of /proc/self/status in KiB (the broker runs in this process).
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Resets VmHWM (peak RSS) to the current RSS, so a later reading shows the peak of what
/// happens in between (Linux `clear_refs` 5).
/// Held by tests that measure the process's peak RSS, so two of them (tests of one binary
/// run in parallel) do not count each other's memory.
pub static PEAK_RSS_MEASUREMENT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// A tiny deterministic generator, so failures replay exactly.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}
