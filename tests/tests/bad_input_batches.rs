//! Bad-input catalogue, record batches and fetches (the cases `bad_input.rs` does not cover):
//! one batch of magic 2 per partition, negative record counts, decompression bombs on a
//! compacted topic (bounded output) and the broker-wide decompression budget, timestamps out
//! of range, and Fetch with a replica id from a client. Each gets its Kafka error code;
//! nothing is appended; the broker serves on.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::bad_input_common::{
    end_offset, proc_status_kib, produce_error, reset_peak_rss, still_serves, PEAK_RSS_MEASUREMENT,
};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::records::Compression;
use runnel_protocol::batch::{build_raw_batch, RawBatchFields};
use runnel_tests::records::{batch_with, concat, decode_values, keyed, values};
use runnel_tests::requests::{fetch, list_offsets, metadata, produce};
use runnel_tests::TestBroker;

const CORRUPT: i16 = 2; // CORRUPT_MESSAGE
const INVALID_RECORD: i16 = 87;

/// Produce v3+ carries exactly one batch of magic 2 per partition (Kafka's
/// `ProduceRequest.validateRecords`): two well-formed batches, or a batch after one, are
/// INVALID_RECORD, as is a batch cut short (Kafka's batch iterator finds no batch in it);
/// bytes after the batch whose length or magic no batch has are CORRUPT_MESSAGE. Nothing is
/// appended; each batch alone is accepted.
#[tokio::test]
async fn a_partition_carries_exactly_one_batch() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["one"])), 12).await;
    let (first, second) = (values(&["a"]), values(&["b", "c"]));
    for version in [3, 7, 9] {
        let twice = concat(&[first.clone(), second.clone()]);
        let response = client.send(produce("one", 0, twice, 1), version).await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, INVALID_RECORD, "v{version}");
        assert_eq!(partition.base_offset, -1);
    }
    let three = concat(&[first.clone(), second.clone(), first.clone()]);
    assert_eq!(
        produce_error(&mut client, "one", three).await,
        INVALID_RECORD
    );
    let cut = first.slice(..first.len() - 1);
    assert_eq!(produce_error(&mut client, "one", cut).await, INVALID_RECORD);
    let mut bad_length = vec![0u8; 12];
    bad_length[11] = 13;
    let tail = concat(&[first.clone(), Bytes::from(bad_length)]);
    assert_eq!(produce_error(&mut client, "one", tail).await, CORRUPT);
    assert_eq!(end_offset(&mut client, "one").await, 0);
    assert_eq!(produce_error(&mut client, "one", first).await, 0);
    assert_eq!(produce_error(&mut client, "one", second).await, 0);
    assert_eq!(end_offset(&mut client, "one").await, 3);
}

/// Bytes after a partition's batch that hold no whole batch (a few bytes, a header cut
/// before its magic, a second batch cut short) are what Kafka's batch iterator stops at and
/// its log trims: the batch is appended and the bytes after it are not, so a fetch returns
/// the batch exactly as it was sent.
#[tokio::test]
async fn bytes_after_the_batch_that_hold_no_whole_batch_are_not_stored() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["tail"])), 12).await;
    let (first, second) = (values(&["a"]), values(&["b", "c"]));
    let tails = [
        Bytes::from_static(&[0, 0, 0]),
        second.slice(..16),
        second.slice(..second.len() - 1),
    ];
    for (offset, tail) in (0i64..).zip(tails) {
        let records = concat(&[first.clone(), tail.clone()]);
        assert_eq!(produce_error(&mut client, "tail", records).await, 0);
        let response = client.send(fetch("tail", 0, offset, 0, 0), 12).await;
        let stored = response.responses[0].partitions[0].records.clone().unwrap();
        assert_eq!(stored.len(), first.len(), "{} bytes after", tail.len());
        assert_eq!(decode_values(&stored), ["a"]);
    }
    assert_eq!(end_offset(&mut client, "tail").await, 3);
    still_serves(&broker).await;
}

#[tokio::test]
async fn mixed_magic_and_negative_counts_are_refused() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["magic"])), 12).await;
    let good = values(&["good"]);
    // The same bytes claiming magic 0 and magic 1, alone and after a magic-2 batch (a second
    // batch is refused whatever its magic: Kafka's `ProduceRequest.validateRecords`).
    for magic in [0u8, 1] {
        let mut legacy = good.to_vec();
        legacy[16] = magic;
        let legacy = Bytes::from(legacy);
        let after_good = concat(&[good.clone(), legacy.clone()]);
        for blob in [legacy, after_good] {
            let code = produce_error(&mut client, "magic", blob).await;
            assert_eq!(code, INVALID_RECORD, "magic {magic}");
        }
    }
    // A magic-3 batch (from the future): Kafka's batch iterator calls it corrupt.
    let mut future = good.to_vec();
    future[16] = 3;
    assert_eq!(
        produce_error(&mut client, "magic", Bytes::from(future)).await,
        CORRUPT
    );
    for (count, delta) in [(-1, -2), (i32::MIN, i32::MAX), (-5, 3)] {
        let negative = build_raw_batch(&RawBatchFields {
            record_count: count,
            last_offset_delta: delta,
            ..RawBatchFields::default()
        });
        let code = produce_error(&mut client, "magic", negative).await;
        assert_eq!(code, INVALID_RECORD, "count {count}");
    }
    // A batch whose last offset delta would overflow the log's offsets.
    let overflowing = build_raw_batch(&RawBatchFields {
        record_count: i32::MAX,
        last_offset_delta: i32::MAX - 1,
        ..RawBatchFields::default()
    });
    let code = produce_error(&mut client, "magic", overflowing).await;
    assert_eq!(
        code, CORRUPT,
        "a batch claiming i32::MAX records in 0 bytes"
    );
    assert_eq!(end_offset(&mut client, "magic").await, 0);
    assert_eq!(produce_error(&mut client, "magic", good).await, 0);
    assert_eq!(end_offset(&mut client, "magic").await, 1);
}

#[tokio::test]
async fn decompression_bombs_on_a_compacted_topic_are_bounded() {
    let broker = TestBroker::start_with(|c| {
        c.topic_defaults
            .insert("cleanup.policy".into(), "compact".into());
    })
    .await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["bombs"])), 12).await;
    // 65 MiB of zeros compress to well under max.message.bytes (1 MiB) with every codec;
    // the broker's key check decompresses at most 64 MiB.
    let zeros = vec![0u8; 65 * 1024 * 1024];
    let bombs: Vec<(Compression, Bytes)> = [Compression::Gzip, Compression::Zstd, Compression::Lz4]
        .into_iter()
        .map(|codec| {
            (
                codec,
                batch_with(&[(Some(b"k"), Some(&zeros))], 1_000, codec),
            )
        })
        .collect();
    drop(zeros);
    let _measuring = PEAK_RSS_MEASUREMENT.lock().await;
    reset_peak_rss();
    let peak_rss_before = proc_status_kib("VmHWM");
    for (codec, bomb) in bombs {
        assert!(
            bomb.len() < 1024 * 1024,
            "{codec:?} bomb is {} bytes",
            bomb.len()
        );
        let code = produce_error(&mut client, "bombs", bomb).await;
        assert_eq!(code, CORRUPT, "{codec:?}");
    }
    let growth_kib = proc_status_kib("VmHWM").saturating_sub(peak_rss_before);
    eprintln!("decompression bombs: peak RSS grew {growth_kib} KiB");
    // The key check materialises at most 64 MiB of decompressed records (sequential bombs
    // reuse that memory): bounded, not sized by the bomb.
    assert!(growth_kib < 160 * 1024, "peak RSS grew {growth_kib} KiB");
    assert_eq!(end_offset(&mut client, "bombs").await, 0);
    let small = batch_with(&[(Some(b"k"), Some(b"v"))], 1_000, Compression::Gzip);
    assert_eq!(produce_error(&mut client, "bombs", small).await, 0);
    still_serves(&broker).await;
}

/// The broker-wide decompression budget: while other requests hold all of it, a compressed
/// batch for a compacted topic waits a bounded time and is answered REQUEST_TIMED_OUT (which
/// clients retry); nothing is appended, the connection serves on, and the retry succeeds
/// once the budget is free.
#[tokio::test]
async fn a_spent_decompression_budget_is_request_timed_out_then_retried() {
    let broker = TestBroker::start_with(|c| {
        c.topic_defaults
            .insert("cleanup.policy".into(), "compact".into());
        c.decompression_bytes_max = 1024 * 1024;
    })
    .await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["budget"])), 12).await;
    let batch = batch_with(&[(Some(b"k"), Some(b"v"))], 1_000, Compression::Zstd);
    let budget = &broker.context().decompression_budget;
    let held = budget
        .acquire(budget.capacity_bytes(), Duration::ZERO)
        .unwrap();
    let started = Instant::now();
    let code = produce_error(&mut client, "budget", batch.clone()).await;
    assert_eq!(code, ResponseError::RequestTimedOut.code());
    assert!(started.elapsed() < Duration::from_secs(5), "answered late");
    assert_eq!(end_offset(&mut client, "budget").await, 0);
    // Uncompressed records are checked in place, without budget.
    assert_eq!(
        produce_error(&mut client, "budget", keyed(&[("k", "v")])).await,
        0
    );
    drop(held);
    assert_eq!(produce_error(&mut client, "budget", batch).await, 0);
    assert_eq!(end_offset(&mut client, "budget").await, 2);
    assert_eq!(budget.available_bytes(), budget.capacity_bytes());
    // A budget below the 64 MiB per-batch bound lowers the bound.
    let zeros = vec![0u8; 2 * 1024 * 1024];
    let past_budget = batch_with(&[(Some(b"k"), Some(&zeros))], 1_000, Compression::Zstd);
    assert_eq!(
        produce_error(&mut client, "budget", past_budget).await,
        CORRUPT
    );
    still_serves(&broker).await;
}

#[tokio::test]
async fn timestamps_out_of_range_are_invalid_timestamp() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["times"])), 12).await;
    let invalid = ResponseError::InvalidTimestamp.code();
    for (base, max) in [(-2, -2), (i64::MIN, i64::MIN), (0, -5), (i64::MIN, 10)] {
        let batch = build_raw_batch(&RawBatchFields {
            base_timestamp: base,
            max_timestamp: max,
            records: &[0; 7],
            ..RawBatchFields::default()
        });
        let code = produce_error(&mut client, "times", batch).await;
        assert_eq!(code, invalid, "timestamps {base}..{max}");
    }
    assert_eq!(end_offset(&mut client, "times").await, 0);
    // -1 (no timestamp) and the far future are legal, and lookups by time still work.
    let none = build_raw_batch(&RawBatchFields {
        base_timestamp: -1,
        max_timestamp: -1,
        records: &[0; 7],
        ..RawBatchFields::default()
    });
    assert_eq!(produce_error(&mut client, "times", none).await, 0);
    let far = build_raw_batch(&RawBatchFields {
        base_timestamp: i64::MAX,
        max_timestamp: i64::MAX,
        records: &[0; 7],
        ..RawBatchFields::default()
    });
    assert_eq!(produce_error(&mut client, "times", far).await, 0);
    assert_eq!(
        produce_error(&mut client, "times", keyed(&[("k", "v")])).await,
        0
    );
    let found = client.send(list_offsets("times", 0, 5_000), 7).await;
    assert_eq!(
        found.topics[0].partitions[0].offset, 1,
        "first timestamp ≥ 5000"
    );
    let latest = client.send(list_offsets("times", 0, -3), 7).await;
    assert_eq!(latest.topics[0].partitions[0].timestamp, i64::MAX);
    assert_eq!(end_offset(&mut client, "times").await, 3);
}

#[tokio::test]
async fn fetch_with_a_replica_id_from_a_client_is_refused() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["replica"])), 12).await;
    assert_eq!(
        produce_error(&mut client, "replica", values(&["v"])).await,
        0
    );
    for (version, replica_id) in [(4, 0), (11, 1), (12, i32::MAX)] {
        let request = fetch("replica", 0, 0, 0, 0).with_replica_id(BrokerId(replica_id));
        let response = client.send(request, version).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(
            partition.error_code,
            ResponseError::NotLeaderOrFollower.code(),
            "v{version} replica {replica_id}"
        );
        assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    }
    // A consumer's fetch is unaffected.
    let response = client.send(fetch("replica", 0, 0, 0, 0), 12).await;
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(decode_values(&records), ["v"]);
}
