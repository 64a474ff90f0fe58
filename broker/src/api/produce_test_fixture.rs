//! Helpers shared by the produce unit tests (`tests`, `budget_tests`, `request_tests`):
//! the broker clock, batch builders and the handler's two checks as it runs them.

use runnel_protocol::batch::{build_raw_batch, Compression, RawBatchFields};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};

use super::*;
use crate::budget::DecompressionBudget;
use crate::log::TopicConfig;

pub(super) fn raw(fields: RawBatchFields<'_>) -> Bytes {
    build_raw_batch(&fields)
}

/// The broker clock the tests validate against.
pub(super) const NOW_MS: i64 = 1_700_000_000_000;

/// A Produce v9 partition's records through both checks, as the handler runs them.
pub(super) fn validate_with(
    config: &TopicConfig,
    budget: &DecompressionBudget,
    records: Bytes,
) -> Result<RecordBatch, (ResponseError, String)> {
    single_batch(records, 9).and_then(|batch| validate_batch(config, NOW_MS, budget, batch))
}

pub(super) fn code(result: Result<RecordBatch, (ResponseError, String)>) -> Option<ResponseError> {
    result.err().map(|(error, _)| error)
}

/// A zstd batch of `records` keyed records.
pub(super) fn compressed_keyed(records: usize) -> Bytes {
    let fields = BatchFields {
        compression: Compression::Zstd,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for _ in 0..records {
        let record = NewRecord {
            timestamp: NOW_MS,
            key: Some(b"k"),
            value: Some(&[7; 100]),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap()
}

/// One uncompressed batch of `records` records, `value_bytes` each.
pub(super) fn batch_of(records: i32, value_bytes: usize) -> Bytes {
    let value = vec![b'v'; value_bytes];
    let mut builder = BatchBuilder::new(BatchFields::default(), 1 << 20);
    for _ in 0..records {
        let record = NewRecord {
            timestamp: NOW_MS,
            key: None,
            value: Some(&value),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap()
}
