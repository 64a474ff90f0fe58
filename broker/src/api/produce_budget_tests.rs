//! Unit tests of the decompression budget: key checks and recompression hold their
//! decompressed and rebuilt bytes within it, or answer REQUEST_TIMED_OUT.

use std::time::{Duration, Instant};

use runnel_protocol::batch::{Compression, BATCH_HEADER_BYTES};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
use runnel_protocol::records::records;

use super::batch::{rebuild_bytes, DECOMPRESSION_WAIT_MS_MAX};
use super::test_fixture::{batch_of, code, compressed_keyed, validate_with, NOW_MS};
use super::*;
use crate::budget::DecompressionBudget;
use crate::log::{CleanupPolicy, CompressionType, TopicConfig};

#[test]
fn key_checks_without_decompression_budget_fail_with_request_timed_out() {
    let compacted = TopicConfig {
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
            compact_first: false,
        },
        ..TopicConfig::default()
    };
    let budget = DecompressionBudget::new(1 << 20);
    let batch = compressed_keyed(10);
    let validate =
        |records: Bytes| validate_with(&compacted, &budget, records).map_err(|(error, _)| error);
    assert!(validate(batch.clone()).is_ok());
    assert_eq!(budget.available_bytes(), 1 << 20, "permit given back");
    // Another connection holds the whole budget: this one gives up after a short wait.
    let held = budget.acquire(1 << 20, Duration::ZERO).unwrap();
    let started = Instant::now();
    assert_eq!(
        validate(batch.clone()).err(),
        Some(ResponseError::RequestTimedOut)
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX));
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // Uncompressed batches are read in place and need no budget.
    let plain = {
        let mut builder = BatchBuilder::new(BatchFields::default(), 1 << 20);
        let record = NewRecord {
            timestamp: NOW_MS,
            key: Some(b"k"),
            value: None,
            headers: &[],
        };
        builder.push(&record).unwrap();
        builder.finish().unwrap()
    };
    assert!(validate(plain).is_ok());
    drop(held);
    assert!(validate(batch).is_ok());
    // A budget below the 64 MiB per-batch bound lowers the bound: a batch decompressing
    // past it is refused as corrupt rather than waiting forever for a permit.
    let tiny = DecompressionBudget::new(512);
    let result = validate_with(&compacted, &tiny, compressed_keyed(10));
    assert_eq!(
        result.err().map(|(e, _)| e),
        Some(ResponseError::CorruptMessage)
    );
}

/// A topic whose `compression.type` rebuilds batches in gzip.
fn gzip_topic() -> TopicConfig {
    TopicConfig {
        compression_type: CompressionType::Codec(Compression::Gzip),
        max_message_bytes: 1 << 20,
        ..TopicConfig::default()
    }
}

/// Recompression holds the rebuilt batch (its records section, the compressed output and
/// the finished batch) within the decompression budget as well as the decompressed
/// records: a rebuild the budget cannot hold now is REQUEST_TIMED_OUT after the usual
/// wait, one it can never hold at once, as a key check without budget is; nothing is
/// allocated for it. Uncompressed batches, read in place, were rebuilt outside the budget.
#[test]
fn recompression_is_charged_to_the_decompression_budget() {
    let plain = batch_of(10, 1000);
    let need_bytes = rebuild_bytes(plain.len(), Compression::Gzip);
    let timed_out = Some(ResponseError::RequestTimedOut);
    let budget = DecompressionBudget::new(need_bytes);
    let rebuilt = validate_with(&gzip_topic(), &budget, plain.clone()).unwrap();
    assert_eq!(rebuilt.compression(), Ok(Compression::Gzip));
    assert_eq!(budget.available_bytes(), need_bytes, "permits given back");
    // Another connection holds a byte of it: this one waits, then gives up.
    let held = budget.acquire(1, Duration::ZERO).unwrap();
    let started = Instant::now();
    assert_eq!(
        code(validate_with(&gzip_topic(), &budget, plain.clone())),
        timed_out
    );
    assert!(started.elapsed() >= Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX));
    drop(held);
    // A budget that can never hold the rebuild refuses it without waiting.
    let small = DecompressionBudget::new(need_bytes - 1);
    let started = Instant::now();
    assert_eq!(code(validate_with(&gzip_topic(), &small, plain)), timed_out);
    assert!(started.elapsed() < Duration::from_millis(DECOMPRESSION_WAIT_MS_MAX));
    assert_eq!(small.available_bytes(), need_bytes - 1);
    // A compressed batch holds its decompressed records beside the rebuild (not the whole
    // 64 MiB output bound, which is given back once the records' size is known).
    let zstd = compressed_keyed(10);
    let records_bytes = records(&RecordBatch::parse(zstd.clone()).unwrap(), 1 << 20)
        .unwrap()
        .section_bytes();
    let need_bytes =
        rebuild_bytes(records_bytes + BATCH_HEADER_BYTES, Compression::Gzip) + records_bytes as u64;
    let exact = DecompressionBudget::new(need_bytes);
    assert!(validate_with(&gzip_topic(), &exact, zstd.clone()).is_ok());
    let short = DecompressionBudget::new(need_bytes - 1);
    assert_eq!(code(validate_with(&gzip_topic(), &short, zstd)), timed_out);
}
