use std::sync::Arc;

use runnel_protocol::batch::{build_raw_batch, RawBatchFields};

use super::*;
use crate::log::{LogManager, LogManagerConfig, TopicConfig};
use crate::producers::Verdict;

/// A log with one partition, kept with its directory.
struct Fixture {
    logs: Arc<LogManager>,
    log: Arc<PartitionLog>,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.logs.shutdown();
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogManager::open(LogManagerConfig {
        data_dir: dir.path().to_path_buf(),
        topic_defaults: TopicConfig::default(),
        node_id: 0,
        retention_check_interval_ms: 3_600_000,
        open_segments_max: 16,
        page_cache_bytes: 0,
    })
    .unwrap();
    logs.create_topic("t", 1, Default::default(), false)
        .unwrap();
    let log = logs.partition("t", 0).unwrap();
    Fixture {
        logs,
        log,
        _dir: dir,
    }
}

/// An expiration no producer reaches, for tests of the scan itself.
const NEVER_EXPIRES_MS: i64 = i64::MAX;

/// Appends one batch of `records` records (producer -1: not idempotent) of `bytes` payload.
fn append(log: &PartitionLog, producer_id: i64, first_seq: i32, records: i32, bytes: usize) -> i64 {
    append_at(log, producer_id, first_seq, records, bytes, 0)
}

/// [`append`] with `max_timestamp_ms` as the batch's timestamps.
fn append_at(
    log: &PartitionLog,
    producer_id: i64,
    first_seq: i32,
    records: i32,
    bytes: usize,
    max_timestamp_ms: i64,
) -> i64 {
    let payload = vec![7u8; bytes];
    let raw = build_raw_batch(&RawBatchFields {
        base_timestamp: max_timestamp_ms,
        max_timestamp: max_timestamp_ms,
        producer_id,
        producer_epoch: if producer_id >= 0 { 0 } else { -1 },
        base_sequence: if producer_id >= 0 { first_seq } else { -1 },
        record_count: records,
        last_offset_delta: records - 1,
        records: &payload,
        ..RawBatchFields::default()
    });
    let batch = RecordBatch::parse(raw).unwrap();
    log.append(&[batch]).unwrap().base_offset
}

fn identity(producer_id: i64, first_seq: i32, records: i32) -> Option<BatchIdentity> {
    Some(BatchIdentity {
        producer_id,
        epoch: 0,
        first_seq,
        last_seq: first_seq + records - 1,
    })
}

#[test]
fn an_empty_log_has_no_producers() {
    let f = fixture();
    assert_eq!(
        rebuild(&f.log, 0, NEVER_EXPIRES_MS)
            .unwrap()
            .producer_count(),
        0
    );
}

#[test]
fn rebuild_finds_the_last_batches_among_other_data() {
    let f = fixture();
    let mut offsets = Vec::new();
    for i in 0..7 {
        append(&f.log, -1, 0, 3, 100);
        offsets.push(append(&f.log, 42, i * 2, 2, 50));
    }
    let state = rebuild(&f.log, 0, NEVER_EXPIRES_MS).unwrap();
    assert_eq!(state.producer_count(), 1);
    // The last five batches are duplicates with their offsets; older ones are out of order.
    for i in 2..7 {
        let verdict = state.check(&[identity(42, i * 2, 2)]).unwrap();
        let Verdict::Duplicate(original) = verdict else {
            panic!("batch {i}: {verdict:?}");
        };
        assert_eq!(original.base_offset, offsets[usize::try_from(i).unwrap()]);
    }
    assert!(state.check(&[identity(42, 0, 2)]).is_err());
    assert_eq!(state.check(&[identity(42, 14, 1)]), Ok(Verdict::Append));
}

#[test]
fn a_tail_denser_than_the_bound_forgets_older_producers_only() {
    let f = fixture();
    append(&f.log, 1, 0, 1, 10);
    for _ in 0..100 {
        append(&f.log, -1, 0, 1, 2_000);
    }
    append(&f.log, 2, 0, 1, 10);
    let state = rebuild_within(&f.log, 16 * 1024).unwrap();
    // Producer 1 is beyond the bound: unknown, so any sequence is accepted.
    assert_eq!(state.check(&[identity(1, 9, 1)]), Ok(Verdict::Append));
    assert!(matches!(
        state.check(&[identity(2, 0, 1)]),
        Ok(Verdict::Duplicate(_))
    ));
    assert!(state.check(&[identity(2, 5, 1)]).is_err());
    // With room for everything, producer 1 is known again.
    let state = rebuild_within(&f.log, 1 << 20).unwrap();
    assert!(state.check(&[identity(1, 9, 1)]).is_err());
}

/// A producer whose last batch is `producer.id.expiration.ms` old or older at rebuild time
/// is not loaded (Kafka's `loadFromSnapshot` filter); a younger one is, with its batches.
#[test]
fn rebuild_skips_producers_expired_at_rebuild_time() {
    let f = fixture();
    append_at(&f.log, 1, 0, 1, 10, 9_000);
    append_at(&f.log, 1, 1, 1, 10, 1_000);
    append_at(&f.log, 2, 0, 1, 10, 1_001);
    // Producer 1's last batch is exactly 5 000 ms old: expired (`>=`), though its first
    // batch is young. Producer 2's is 4 999 ms old: kept.
    let state = rebuild(&f.log, 6_000, 5_000).unwrap();
    assert_eq!(state.producer_count(), 1);
    assert_eq!(state.check(&[identity(1, 7, 1)]), Ok(Verdict::Append));
    assert!(matches!(
        state.check(&[identity(2, 0, 1)]),
        Ok(Verdict::Duplicate(_))
    ));
    assert_eq!(
        rebuild(&f.log, 5_999, 5_000).unwrap().producer_count(),
        2,
        "nothing is expired a millisecond earlier"
    );
}
