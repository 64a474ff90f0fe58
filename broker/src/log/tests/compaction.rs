//! Log compaction: the model property test, the first pass, and the helpers the other
//! compaction tests share (the cleaner thread: `compaction_cleaner.rs`; restarts:
//! `compaction_restarts.rs`; producers' batches: `compaction_producers.rs`; faults:
//! `compaction_faults.rs`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use runnel_protocol::batch::Compression;
use runnel_protocol::records::records;

use super::basic::{batches_of, keyed_batch, open, overrides, test_dir, TestRecord};
use crate::log::{CleanerConfig, LogManager, PartitionLog};

/// (offset, key, value) as a consumer sees it.
pub(super) type Seen = (i64, Vec<u8>, Option<Vec<u8>>);

const SENTINEL_KEY: &[u8] = b"sentinel";

/// Every record from the log start, in offset order.
pub(super) fn read_records(log: &PartitionLog) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let batches = batches_of(log.read(offset, 1 << 20).unwrap().records);
        assert!(!batches.is_empty(), "a read below the end returns a batch");
        for batch in &batches {
            batch.verify_crc().unwrap();
            for record in records(batch, 1 << 24).unwrap() {
                let record = record.unwrap();
                if record.offset >= offset {
                    let key = record.key.map(|k| k.to_vec()).unwrap_or_default();
                    out.push((record.offset, key, record.value.map(|v| v.to_vec())));
                }
            }
        }
        offset = batches.last().unwrap().next_offset();
    }
    out
}

/// A compacted topic with small segments; the cleaner thread effectively off.
pub(super) fn compacted(
    manager: &LogManager,
    name: &str,
    segment_bytes: u32,
    extra: &[(&str, &str)],
) {
    let segment = segment_bytes.to_string();
    let mut pairs = vec![
        ("cleanup.policy", "compact"),
        ("segment.bytes", segment.as_str()),
        ("delete.retention.ms", "0"),
    ];
    pairs.extend_from_slice(extra);
    manager
        .create_topic(name, 1, overrides(&pairs), false)
        .unwrap();
}

pub(super) fn quiet_cleaner(manager: &LogManager, offset_map_bytes: usize) {
    manager.set_cleaner_config(CleanerConfig {
        offset_map_bytes,
        backoff_ms: 3_600_000,
        io_bytes_per_second_max: u64::MAX,
    });
}

/// One produced batch: keys and values (`None` = tombstone) with a codec.
#[derive(Debug, Clone)]
pub(super) struct Write {
    pub codec: Compression,
    pub records: Vec<(u8, Option<u8>)>,
}

pub(super) fn write_strategy() -> impl Strategy<Value = Write> {
    let codec = prop_oneof![
        Just(Compression::None),
        Just(Compression::Zstd),
        Just(Compression::Gzip)
    ];
    let record = (0u8..8, prop::option::weighted(0.8, any::<u8>()));
    (codec, prop::collection::vec(record, 1..5))
        .prop_map(|(codec, records)| Write { codec, records })
}

/// Appends `writes`, then a large sentinel batch so every write sits in a sealed segment.
pub(super) fn append_writes(
    log: &PartitionLog,
    writes: &[Write],
    segment_bytes: usize,
) -> Vec<Seen> {
    let mut model = Vec::new();
    for write in writes {
        let keys: Vec<[u8; 1]> = write.records.iter().map(|(k, _)| [*k]).collect();
        let values: Vec<Option<Vec<u8>>> = write
            .records
            .iter()
            .map(|(_, v)| v.map(|v| vec![v; 40]))
            .collect();
        let records: Vec<TestRecord<'_>> = (0..keys.len())
            .map(|i| {
                (
                    i as i32,
                    1000 + i as i64,
                    &keys[i][..],
                    values[i].as_deref(),
                )
            })
            .collect();
        let info = log.append(&[keyed_batch(write.codec, &records)]).unwrap();
        for (i, key) in keys.iter().enumerate() {
            model.push((info.base_offset + i as i64, key.to_vec(), values[i].clone()));
        }
    }
    let big = vec![7u8; segment_bytes];
    let sentinel = [(0, 2000, SENTINEL_KEY, Some(&big[..]))];
    let info = log
        .append(&[keyed_batch(Compression::None, &sentinel)])
        .unwrap();
    model.push((info.base_offset, SENTINEL_KEY.to_vec(), Some(big)));
    model
}

/// The latest record per key, in offset order; tombstones dropped when `drop_tombstones`.
pub(super) fn latest_per_key(model: &[Seen], drop_tombstones: bool) -> Vec<Seen> {
    let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (offset, key, _) in model {
        latest.insert(key, *offset);
    }
    model
        .iter()
        .filter(|(offset, key, value)| {
            latest[&key[..]] == *offset && (value.is_some() || !drop_tombstones)
        })
        .cloned()
        .collect()
}

/// Cleans until the clean section reaches the active segment, then once more (past the
/// tombstone horizon with delete.retention.ms=0).
pub(super) fn clean_fully(manager: &LogManager, log: &PartitionLog, topic: &str) {
    let active_base = log.log_end_offset() - 1;
    for _ in 0..=log.log_end_offset() {
        manager.clean_now(topic, 0).unwrap();
        let checkpoint = manager.shared.ctx.checkpoints.cleaner_offset(&log.key());
        if checkpoint == Some(active_base) {
            break;
        }
    }
    manager.clean_now(topic, 0).unwrap();
}

/// The first record a consumer positioned at each offset receives is the next one retained.
/// As Kafka's consumers do, it skips records below its position, and a batch holding none
/// at or above it moves the position past the batch: a cleaned batch keeps its last offset
/// (`clean_filter::rebuild`), so the batch read may end in offsets whose records are gone.
fn check_positioned_reads(log: &PartitionLog, expected: &[Seen]) {
    for offset in 0..log.log_end_offset() {
        let mut position = offset;
        let mut first = None;
        // Each read moves the position past ≥ 1 batch: bounded by the log end.
        while first.is_none() && position < log.log_end_offset() {
            let batches = batches_of(log.read(position, 1).unwrap().records);
            first = batches
                .iter()
                .flat_map(|b| records(b, 1 << 24).unwrap())
                .map(|r| r.unwrap().offset)
                .find(|o| *o >= offset);
            position = batches.last().unwrap().next_offset();
        }
        let next_retained = expected.iter().map(|s| s.0).find(|o| *o >= offset);
        assert_eq!(first, next_retained, "read positioned at {offset}");
    }
}

fn run_model(writes: Vec<Write>, map_entries: usize) {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, map_entries * 32);
    compacted(&manager, "m", 400, &[]);
    let log = manager.partition("m", 0).unwrap();
    let model = append_writes(&log, &writes, 400);
    assert_eq!(read_records(&log), model, "before cleaning");
    clean_fully(&manager, &log, "m");
    let expected = latest_per_key(&model, true);
    assert_eq!(
        read_records(&log),
        expected,
        "after cleaning past the horizon"
    );
    check_positioned_reads(&log, &expected);
    let stats = manager.cleaner_stats();
    let removed = (model.len() - expected.len()) as u64;
    assert_eq!(stats.records_removed_total, removed);
    assert_eq!(stats.errors_total, 0);
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(dir.path());
    let log = manager.partition("m", 0).unwrap();
    assert_eq!(read_records(&log), expected, "after reopening");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cleaning_keeps_the_latest_value_per_key(
        writes in prop::collection::vec(write_strategy(), 1..40),
        small_map in any::<bool>(),
    ) {
        run_model(writes, if small_map { 4 } else { 1024 });
    }
}

#[test]
fn first_pass_keeps_tombstones_and_latest_records() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "t", 400, &[("delete.retention.ms", "86400000")]);
    let log = manager.partition("t", 0).unwrap();
    let writes: Vec<Write> = (0..30u8)
        .map(|i| Write {
            codec: Compression::Zstd,
            records: vec![(i % 3, if i == 28 { None } else { Some(i) })],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    clean_fully(&manager, &log, "t");
    // A day of delete.retention.ms: the tombstone of key 1 (offset 28) stays.
    assert_eq!(read_records(&log), latest_per_key(&model, false));
    assert!(log.segment_count() < 5, "small segments were merged");
}
