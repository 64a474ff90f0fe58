//! Produce and Fetch end to end, one file per concept: producing (acks 0/1/-1, versions,
//! per-partition errors, codecs), fetching (offsets, byte limits, errors, ordering), the
//! long poll, and pipelining. The helpers below are shared by all of them.

#![allow(clippy::unwrap_used)]

mod fetch;
mod long_poll;
mod pipelining;
mod produce;

use kafka_protocol::messages::{FetchResponse, ProduceResponse};
use runnel_tests::records::decode_values;
use runnel_tests::requests::{list_offsets, metadata};
use runnel_tests::TestClient;

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
