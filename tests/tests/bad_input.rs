//! Hostile and broken input: bad frame sizes, unknown keys and versions, truncated headers,
//! lying array counts, corrupt or malformed batches, stalled frames, the connection cap,
//! the shared bound on request frames held.
//! After each, the broker still serves a fresh connection.

#![allow(clippy::unwrap_used)]

use crate::bad_input_common::{
    closes_then_still_serves, end_offset, header_only, produce_error, still_serves, Lcg,
};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use runnel_protocol::batch::{build_raw_batch, RawBatchFields};
use runnel_tests::records::values;
use runnel_tests::requests::metadata;
use runnel_tests::TestBroker;

#[tokio::test]
async fn bad_frame_sizes_close_the_connection() {
    let broker = TestBroker::start_with(|c| c.max_request_bytes = 1024 * 1024).await;
    closes_then_still_serves(&broker, &(-1i32).to_be_bytes()).await;
    closes_then_still_serves(&broker, &i32::MIN.to_be_bytes()).await;
    closes_then_still_serves(&broker, &i32::MAX.to_be_bytes()).await;
    closes_then_still_serves(&broker, &(1024 * 1024 + 1i32).to_be_bytes()).await;
    // Too short to hold api key, version and correlation id.
    closes_then_still_serves(&broker, &[0, 0, 0, 4, 0, 18, 0, 0]).await;
    closes_then_still_serves(&broker, &[0, 0, 0, 0]).await;
}

#[tokio::test]
async fn unknown_keys_and_versions_close_the_connection() {
    let broker = TestBroker::start().await;
    closes_then_still_serves(&broker, &header_only(999, 0)).await;
    closes_then_still_serves(&broker, &header_only(-1, 0)).await;
    closes_then_still_serves(&broker, &header_only(11, 0)).await; // JoinGroup v0 without its body
    closes_then_still_serves(&broker, &header_only(3, 13)).await; // Metadata v13
    closes_then_still_serves(&broker, &header_only(0, 2)).await; // Produce v2
    closes_then_still_serves(&broker, &header_only(3, -1)).await;
}

#[tokio::test]
async fn truncated_and_lying_requests_close_the_connection() {
    let broker = TestBroker::start().await;
    // Client id claims 300 bytes, 2 follow.
    let mut frame = BytesMut::new();
    frame.put_i32(12);
    frame.put_i16(3);
    frame.put_i16(1);
    frame.put_i32(1);
    frame.put_i16(300);
    frame.put_slice(b"ab");
    closes_then_still_serves(&broker, &frame).await;
    // Metadata v1 whose topic array claims i32::MAX entries, followed by a few bytes.
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 4 + 6);
    frame.put_i16(3);
    frame.put_i16(1);
    frame.put_i32(2);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX);
    frame.put_slice(&[0, 1, b'a', 0, 1, b'b']);
    closes_then_still_serves(&broker, &frame).await;
    // Produce v9 (flexible) with a compact array varint claiming a huge count.
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 1 + 1 + 2 + 4 + 5);
    frame.put_i16(0);
    frame.put_i16(9);
    frame.put_i32(3);
    frame.put_i16(-1);
    frame.put_u8(0); // header tagged fields
    frame.put_u8(0); // null transactional id
    frame.put_i16(1);
    frame.put_i32(1000);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
    closes_then_still_serves(&broker, &frame).await;
    // A body cut short by the frame size: Produce v3 with acks only.
    let mut frame = BytesMut::new();
    frame.put_i32(8 + 2 + 2 + 2);
    frame.put_i16(0);
    frame.put_i16(3);
    frame.put_i32(4);
    frame.put_i16(-1);
    frame.put_i16(-1);
    frame.put_i16(1);
    closes_then_still_serves(&broker, &frame).await;
}

#[tokio::test]
async fn a_frame_ending_before_its_size_closes_the_connection() {
    let broker = TestBroker::start().await;
    // Announced sizes on both read paths: within the eager bound (one buffer of that size)
    // and beyond it (a buffer that grows as bytes arrive); the sender stops a little short.
    for size_bytes in [100 * 1024, 4 * 1024 * 1024] {
        let mut client = broker.client().await;
        let mut frame = BytesMut::new();
        frame.put_i32(size_bytes);
        frame.put_slice(&vec![0u8; size_bytes as usize - 10]);
        client.send_raw(&frame).await;
        client.shutdown_write().await;
        assert!(
            client.is_closed().await,
            "{size_bytes}-byte frame cut short"
        );
    }
    still_serves(&broker).await;
}

#[tokio::test]
async fn a_frame_stalled_midway_times_out() {
    let broker = TestBroker::start_with(|c| c.request_timeout_ms = 200).await;
    let mut stalled = broker.client().await;
    stalled.send_raw(&[0, 0]).await;
    assert!(stalled.is_closed().await);
    let mut stalled_body = broker.client().await;
    stalled_body.send_raw(&[0, 0, 0, 20, 0, 18]).await;
    assert!(stalled_body.is_closed().await);
    still_serves(&broker).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let broker = TestBroker::start_with(|c| c.max_connections = 1).await;
    let mut first = broker.client().await;
    first.send(ApiVersionsRequest::default(), 0).await;
    let mut second = broker.client().await;
    assert!(second.is_closed().await);
    first.send(ApiVersionsRequest::default(), 0).await;
    drop(first);
    // The permit comes back once the first connection's task ends.
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut third = broker.client().await;
        if third
            .try_send_raw(&runnel_tests::encode_request(
                &ApiVersionsRequest::default(),
                0,
                1,
            ))
            .await
            .is_ok()
            && third.read_frame().await.is_some()
        {
            served = true;
            break;
        }
    }
    assert!(served);
}

/// Frames read and not yet applied, across connections, stay within
/// `queued_request_bytes_max`: a frame announced at the whole bound and stalled holds it, so
/// another connection's request waits unread (counted and shown in `/metrics`) and is
/// answered once the stalled one goes; a produce larger than the bound is read alone.
#[tokio::test]
async fn request_frames_of_all_connections_stay_within_the_shared_bound() {
    const BOUND: usize = 1024 * 1024;
    let broker = TestBroker::start_with(|c| {
        c.queued_request_bytes_max = BOUND;
        c.max_request_bytes = 4 * BOUND;
        c.topic_defaults
            .insert("max.message.bytes".into(), (2 * BOUND).to_string());
    })
    .await;
    let mut stalled = broker.client().await;
    stalled.send_raw(&(BOUND as i32).to_be_bytes()).await;
    stalled.send_raw(&[0, 18, 0, 0]).await;
    metric_reaches(&broker, "runnel_request_queue_bytes", BOUND as f64).await;
    let mut waiting = broker.client().await;
    waiting
        .write_request(&ApiVersionsRequest::default(), 0)
        .await;
    metric_reaches(&broker, "runnel_request_memory_waits_total", 1.0).await;
    assert!(waiting.is_silent_for(Duration::from_millis(300)).await);
    drop(stalled);
    let (_, versions) = waiting.read_response::<ApiVersionsResponse>(0).await;
    assert_eq!(versions.error_code, 0);
    let big = "x".repeat(3 * BOUND / 2);
    waiting.send(metadata(Some(&["big"])), 12).await;
    assert_eq!(produce_error(&mut waiting, "big", values(&[&big])).await, 0);
    assert_eq!(end_offset(&mut waiting, "big").await, 1);
    metric_reaches(&broker, "runnel_request_queue_bytes", 0.0).await;
}

/// Waits (at most 10 s) until the broker's `/metrics` shows `series` at `expected`.
async fn metric_reaches(broker: &TestBroker, series: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = broker.http_get("/metrics").await;
        let value = page
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if value == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value:?}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn corrupt_or_malformed_batches_are_refused_and_nothing_is_appended() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["strict"])), 12).await;
    let good = values(&["good"]);

    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let corrupt = Bytes::from(corrupt);
    assert_eq!(
        produce_error(&mut client, "strict", corrupt.clone()).await,
        ResponseError::CorruptMessage.code()
    );
    // After a good batch: a second batch is refused before its CRC is read (Kafka), and
    // the good one is not appended either.
    let blob = runnel_tests::records::concat(&[good.clone(), corrupt]);
    assert_eq!(
        produce_error(&mut client, "strict", blob).await,
        ResponseError::InvalidRecord.code()
    );

    let based = build_raw_batch(&RawBatchFields {
        base_offset: 5,
        ..RawBatchFields::default()
    });
    assert_eq!(
        produce_error(&mut client, "strict", based).await,
        ResponseError::InvalidRecord.code()
    );
    let miscounted = build_raw_batch(&RawBatchFields {
        last_offset_delta: 3,
        record_count: 2,
        ..RawBatchFields::default()
    });
    assert_eq!(
        produce_error(&mut client, "strict", miscounted).await,
        ResponseError::InvalidRecord.code()
    );
    let empty = build_raw_batch(&RawBatchFields {
        last_offset_delta: -1,
        record_count: 0,
        ..RawBatchFields::default()
    });
    assert_eq!(
        produce_error(&mut client, "strict", empty).await,
        ResponseError::InvalidRecord.code()
    );
    // Kafka's batch iterator finds no batch in a cut one.
    let cut = good.slice(..good.len() - 3);
    assert_eq!(
        produce_error(&mut client, "strict", cut).await,
        ResponseError::InvalidRecord.code()
    );
    let mut old_magic = good.to_vec();
    old_magic[16] = 1;
    assert_eq!(
        produce_error(&mut client, "strict", Bytes::from(old_magic)).await,
        ResponseError::InvalidRecord.code()
    );

    assert_eq!(end_offset(&mut client, "strict").await, 0);
    assert_eq!(produce_error(&mut client, "strict", good).await, 0);
    assert_eq!(end_offset(&mut client, "strict").await, 1);
}

#[tokio::test]
async fn oversize_batches_are_message_too_large() {
    let broker = TestBroker::start_with(|c| {
        c.topic_defaults
            .insert("max.message.bytes".into(), "1000".into());
    })
    .await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["small"])), 12).await;
    let big = "b".repeat(2_000);
    let code = produce_error(&mut client, "small", values(&[&big])).await;
    assert_eq!(code, ResponseError::MessageTooLarge.code());
    assert_eq!(end_offset(&mut client, "small").await, 0);
    assert_eq!(
        produce_error(&mut client, "small", values(&["fits"])).await,
        0
    );
}

#[tokio::test]
async fn random_bodies_for_every_supported_api_never_take_the_broker_down() {
    let broker = TestBroker::start().await;
    let mut rng = Lcg(0x5eed);
    for round in 0..200 {
        let api = runnel_protocol::versions::SUPPORTED_APIS
            [round % runnel_protocol::versions::SUPPORTED_APIS.len()];
        let span = (api.max_version - api.min_version + 1) as u64;
        let version = api.min_version + (rng.next() % span) as i16;
        let body_len = (rng.next() % 64) as usize;
        let mut frame = BytesMut::new();
        frame.put_i32((8 + 2 + body_len) as i32);
        frame.put_i16(api.api_key as i16);
        frame.put_i16(version);
        frame.put_i32(round as i32);
        frame.put_i16(-1);
        for _ in 0..body_len {
            frame.put_u8(rng.next() as u8);
        }
        let mut client = broker.client().await;
        let _ = client.try_send_raw(&frame).await;
        // Either an answer or a close; anything else times out inside read_frame.
        let _ = client.read_frame().await;
    }
    still_serves(&broker).await;
}
