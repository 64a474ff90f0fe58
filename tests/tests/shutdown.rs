//! Graceful shutdown: the clean marker is written, data survives a restart on the same
//! directory, and in-flight requests are answered.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kafka_protocol::messages::FetchResponse;
use runnel_tests::records::{decode_values, values};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::TestBroker;

const CLEAN_SHUTDOWN_FILE: &str = ".runnel_clean_shutdown";

#[tokio::test]
async fn graceful_shutdown_writes_the_clean_marker_and_data_survives_restart() {
    let broker = TestBroker::start_with(|c| c.num_partitions = 2).await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["durable"])), 12).await;
    for (partition, value) in [(0, "zero"), (1, "one"), (0, "zero-again")] {
        let response = client
            .send(produce("durable", partition, values(&[value]), 1), 9)
            .await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    drop(client);
    let mut broker = broker;
    let data_dir = broker.data_dir().to_owned();
    broker.shutdown().await;
    assert!(data_dir.join(CLEAN_SHUTDOWN_FILE).exists());

    let broker = TestBroker::start_in(&data_dir, |_| {}).await;
    let mut client = broker.client().await;
    let meta = client.send(metadata(Some(&["durable"])), 12).await;
    assert_eq!(meta.topics[0].partitions.len(), 2);
    let zero = client.send(fetch("durable", 0, 0, 0, 0), 12).await;
    let one = client.send(fetch("durable", 1, 0, 0, 0), 12).await;
    let records =
        |r: &FetchResponse| decode_values(r.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(records(&zero), ["zero", "zero-again"]);
    assert_eq!(records(&one), ["one"]);
    drop(client);
    let mut broker = broker;
    broker.shutdown().await;
}

#[tokio::test]
async fn restart_keeps_the_same_topics_and_offsets() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["again"])), 12).await;
    client
        .send(produce("again", 0, values(&["a", "b"]), -1), 9)
        .await;
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let response = client.send(produce("again", 0, values(&["c"]), 1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 2);
}

#[tokio::test]
async fn shutdown_answers_a_waiting_fetch_and_stops_accepting() {
    let mut broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["waiting"])), 12).await;
    let addr = broker.addr;
    let waiting = tokio::spawn(async move {
        client
            .write_request(&fetch("waiting", 0, 0, 2_000, 1), 12)
            .await;
        client.read_frame().await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    broker.shutdown().await;
    // The long poll was answered (empty, at its deadline) before the socket closed.
    assert!(waiting.await.unwrap().is_some());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_is_bounded_even_with_a_long_wait_in_flight() {
    let mut broker = TestBroker::start_with(|c| c.shutdown_timeout_ms = 200).await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["slow"])), 12).await;
    client
        .write_request(&fetch("slow", 0, 0, 25_000, 1), 12)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let data_dir = broker.data_dir().to_owned();
    // Far below the fetch's 25 s wait: the grace period, not the fetch, ends the shutdown.
    tokio::time::timeout(Duration::from_secs(10), broker.shutdown())
        .await
        .expect("shutdown within its bound");
    assert!(data_dir.join(CLEAN_SHUTDOWN_FILE).exists());
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn a_taken_port_fails_start_cleanly() {
    let broker = TestBroker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestBroker::config(dir.path());
    config.listen = broker.addr.to_string();
    let result = runnel_broker::net::Broker::start(config).await;
    assert!(matches!(
        result,
        Err(runnel_broker::net::BrokerError::Bind { .. })
    ));
}
