//! Log compaction: the model property test, the cleaner thread and its choices, checkpoint,
//! transactional batches, concurrent readers and stats (faults: `compaction_faults.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use runnel_protocol::batch::Compression;
use runnel_protocol::records::records;

use super::basic::{batches_of, keyed_batch, open, overrides, read_all, test_dir, TestRecord};
use crate::log::{CleanerConfig, LogManager, PartitionLog};
use crate::producers::{tail_scan, BatchIdentity, BatchMetadata, Verdict};

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
fn clean_fully(manager: &LogManager, log: &PartitionLog, topic: &str) {
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

#[test]
fn the_cleaner_thread_cleans_dirty_partitions_and_skips_others() {
    let dir = test_dir();
    let manager = open(dir.path());
    compacted(
        &manager,
        "auto",
        400,
        &[("min.cleanable.dirty.ratio", "0.1")],
    );
    manager
        .create_topic("plain", 1, overrides(&[("segment.bytes", "400")]), false)
        .unwrap();
    let log = manager.partition("auto", 0).unwrap();
    let plain = manager.partition("plain", 0).unwrap();
    let writes: Vec<Write> = (0..30u8)
        .map(|i| Write {
            codec: Compression::Zstd,
            records: vec![(i % 2, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    let plain_model = append_writes(&plain, &writes, 400);
    manager.set_cleaner_config(CleanerConfig {
        backoff_ms: 20,
        ..CleanerConfig::default()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while manager.cleaner_stats().records_removed_total == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cleaner never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(read_records(&log), latest_per_key(&model, false));
    assert_eq!(
        read_records(&plain),
        plain_model,
        "delete-only topics are not compacted"
    );
    let stats = manager.cleaner_stats();
    assert_eq!(stats.partitions.len(), 1);
    assert_eq!(stats.partitions[0].topic, "auto");
    assert!(stats.bytes_read_total > stats.bytes_written_total);
    drop(Arc::clone(&log));
}

#[test]
fn min_compaction_lag_leaves_young_segments_alone() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    // Records carry timestamps of 1970 + ~1 s: a lag of "now" keeps everything young
    // only if the lag is measured from the record timestamps, which it is.
    let lag = (crate::log::now_ms() - 500).to_string();
    compacted(&manager, "lag", 400, &[("min.compaction.lag.ms", &lag)]);
    let log = manager.partition("lag", 0).unwrap();
    let writes: Vec<Write> = (0..20u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(0, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    manager.clean_now("lag", 0).unwrap();
    assert_eq!(
        read_records(&log),
        model,
        "every segment is younger than the lag"
    );
}

#[test]
fn readers_during_cleaning_see_only_produced_records() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "r", 400, &[]);
    let log = manager.partition("r", 0).unwrap();
    let writes: Vec<Write> = (0..60u8)
        .map(|i| Write {
            codec: Compression::Zstd,
            records: vec![(i % 3, Some(i)), (i % 5, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    let latest = latest_per_key(&model, true);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop, model) = (log.clone(), stop.clone(), model.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                let seen = read_records(&log);
                assert!(
                    seen.iter().all(|r| model.contains(r)),
                    "only produced records"
                );
                reads += 1;
            }
            reads
        })
    };
    for _ in 0..5 {
        manager.clean_now("r", 0).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(read_records(&log), latest);
}

#[test]
fn compact_delete_topics_get_both_retention_and_cleaning() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(
        &manager,
        "cd",
        400,
        &[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "1000"),
        ],
    );
    let log = manager.partition("cd", 0).unwrap();
    let writes: Vec<Write> = (0..20u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 2, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    manager.clean_now("cd", 0).unwrap();
    assert_eq!(read_records(&log), latest_per_key(&model, false));
    // Record timestamps are from 1970: time retention removes every sealed segment.
    manager.enforce_retention(crate::log::now_ms()).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), log.log_end_offset() - 1);
    manager.clean_now("cd", 0).unwrap();
    assert_eq!(read_records(&log).len(), 1, "only the sentinel is left");
}

#[test]
fn dirty_ratio_and_max_lag_decide_what_the_cleaner_picks() {
    use crate::log::cleaner::pick_dirtiest;
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(
        &manager,
        "lazy",
        400,
        &[("min.cleanable.dirty.ratio", "0.9")],
    );
    let log = manager.partition("lazy", 0).unwrap();
    let writes: Vec<Write> = (0..20u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 2, Some(i))],
        })
        .collect();
    append_writes(&log, &writes, 400);
    let partitions = manager.shared.all_partitions();
    let now = crate::log::now_ms();
    let cleaner = &manager.shared.cleaner;
    // Never cleaned: everything sealed is dirty (ratio 1.0 ≥ 0.9).
    assert!(pick_dirtiest(cleaner, &partitions, now).is_some());
    manager.clean_now("lazy", 0).unwrap();
    assert!(
        pick_dirtiest(cleaner, &partitions, now).is_none(),
        "nothing dirty"
    );
    assert_eq!(manager.cleaner_stats().partitions[0].dirty_ratio, 0.0);
    // A little new dirt stays below the ratio…
    let more: Vec<Write> = (0..2u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i, Some(i))],
        })
        .collect();
    append_writes(&log, &more, 400);
    assert!(
        pick_dirtiest(cleaner, &partitions, now).is_none(),
        "below the ratio"
    );
    // …until max.compaction.lag.ms says the oldest dirty record waited too long.
    let mut config = (*log.config()).clone();
    config.max_compaction_lag_ms = 1;
    log.set_config(Arc::new(config));
    assert!(
        pick_dirtiest(cleaner, &partitions, now).is_some(),
        "overdue"
    );
}

/// The cleaner leaves an offset gap where it dropped a segment's last records; recovery
/// takes a gap past the recovery point for a lost tail and drops what follows. So before a
/// pass rewrites segments it records them durable on disk: a crash right after the pass
/// (the recovery-point file as the pass left it, no clean shutdown) loses nothing, even once
/// the topic has been switched to `delete`.
#[test]
fn the_cleaners_gaps_survive_an_unclean_restart_whatever_the_policy() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "g", 300, &[("flush.ms", "3600000")]);
    let log = manager.partition("g", 0).unwrap();
    // The last write before the sentinel's segment is a tombstone: once it goes, the cleaned
    // segment ends short of the next one's base.
    let writes: Vec<Write> = (0..24u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 3, (i != 23).then_some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 300);
    clean_fully(&manager, &log, "g");
    let cleaned = read_records(&log);
    assert_eq!(cleaned, latest_per_key(&model, true));
    let recovery_points = dir.path().join(crate::log::checkpoint::RECOVERY_POINT_FILE);
    let after_the_pass = std::fs::read(&recovery_points).unwrap();
    manager
        .set_topic_overrides(
            "g",
            overrides(&[("cleanup.policy", "delete"), ("segment.bytes", "300")]),
            false,
        )
        .unwrap();
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    std::fs::write(&recovery_points, after_the_pass).unwrap();
    std::fs::remove_file(dir.path().join(".runnel_clean_shutdown")).unwrap();
    let manager = open(dir.path());
    let log = manager.partition("g", 0).unwrap();
    assert_eq!(read_records(&log), cleaned);
}

/// With the recovery-point checkpoint lost (or malformed), recovery cannot tell the
/// cleaner's gaps from a tail lost in a power cut. In a partition the cleaner has rewritten
/// it keeps the segments after a gap — dropping them would delete acknowledged records — and
/// still truncates a torn batch (a never-cleaned partition drops them:
/// `recovery::segments_after_a_lost_tail_are_dropped_not_served_across_a_gap`).
#[test]
fn the_cleaners_gaps_survive_an_unclean_restart_without_a_recovery_point() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "g", 300, &[]);
    let log = manager.partition("g", 0).unwrap();
    // As in the test above: the cleaned segments end short of the next one's base.
    let writes: Vec<Write> = (0..24u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 3, (i != 23).then_some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 300);
    clean_fully(&manager, &log, "g");
    let cleaned = read_records(&log);
    assert_eq!(cleaned, latest_per_key(&model, true));
    let end = log.log_end_offset();
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let recovery_points = dir.path().join(crate::log::checkpoint::RECOVERY_POINT_FILE);
    std::fs::remove_file(dir.path().join(".runnel_clean_shutdown")).unwrap();
    // Half a batch at the end of the active segment: a torn write.
    let mut logs: Vec<_> = std::fs::read_dir(dir.path().join("g-0"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let active = logs.last().unwrap().clone();
    let active_bytes = std::fs::metadata(&active).unwrap().len();
    let mut torn = keyed_batch(Compression::None, &[(0, 1, &b"t"[..], Some(&b"torn"[..]))])
        .as_bytes()
        .to_vec();
    torn.truncate(torn.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut file, &torn).unwrap();
    drop(file);
    for lost in [None, Some("0\n1\ng 0 not-a-number\n")] {
        match lost {
            None => std::fs::remove_file(&recovery_points).unwrap(),
            Some(malformed) => std::fs::write(&recovery_points, malformed).unwrap(),
        }
        let manager = open(dir.path());
        let log = manager.partition("g", 0).unwrap();
        assert_eq!(read_records(&log), cleaned, "{lost:?}");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(std::fs::metadata(&active).unwrap().len(), active_bytes);
        drop(log);
        // Stop uncleanly again, for the next case.
        drop(manager);
        let _ = std::fs::remove_file(dir.path().join(".runnel_clean_shutdown"));
    }
}

#[test]
fn the_cleaner_checkpoint_survives_a_restart_in_kafkas_format() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "ck", 400, &[]);
    let log = manager.partition("ck", 0).unwrap();
    let writes: Vec<Write> = (0..10u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 2, Some(i))],
        })
        .collect();
    append_writes(&log, &writes, 400);
    manager.clean_now("ck", 0).unwrap();
    let active_base = log.log_end_offset() - 1;
    let text = std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap();
    assert_eq!(text, format!("0\n1\nck 0 {active_base}\n"));
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(dir.path());
    let key = ("ck".to_string(), 0);
    assert_eq!(
        manager.shared.ctx.checkpoints.cleaner_offset(&key),
        Some(active_base)
    );
}

/// A transactional batch of producer 7 at sequence 0 holding `records` (key, value).
fn transactional_batch(records: &[(&[u8], Option<&[u8]>)]) -> runnel_protocol::batch::RecordBatch {
    use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
    let fields = BatchFields {
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 0,
        transactional: true,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for (key, value) in records {
        let record = NewRecord {
            timestamp: 1,
            key: Some(key),
            value: *value,
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    runnel_protocol::batch::RecordBatch::parse(builder.finish().unwrap()).unwrap()
}

/// A transactional batch whose records no later record supersedes stays byte for byte.
/// (It no longer outlives later records of its keys: see
/// `a_deleted_key_never_comes_back_from_a_transactional_batch`.)
#[test]
fn transactional_batches_are_kept_as_they_are() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "tx", 400, &[]);
    let log = manager.partition("tx", 0).unwrap();
    let value = [1u8; 40];
    let transactional = transactional_batch(&[(&[9u8][..], Some(&value[..]))]);
    log.append(std::slice::from_ref(&transactional)).unwrap();
    let writes: Vec<Write> = (0..10u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(0, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    manager.clean_now("tx", 0).unwrap();
    let seen = read_records(&log);
    assert_eq!(
        seen[0],
        (0, vec![9u8], Some(vec![1u8; 40])),
        "kept verbatim"
    );
    assert_eq!(&seen[1..], &latest_per_key(&model, false)[..]);
    let first = batches_of(log.read(0, 1).unwrap().records).remove(0);
    // Byte for byte from the magic on (the log patches the leader epoch before it).
    assert_eq!(
        first.as_bytes()[16..],
        transactional.as_bytes()[16..],
        "byte for byte"
    );
}

/// A key deleted after a transactional batch wrote it stays deleted once the tombstone is
/// gone: the transactional record is superseded like any other, and the batch, rebuilt
/// without it, stays transactional.
#[test]
fn a_deleted_key_never_comes_back_from_a_transactional_batch() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "txd", 400, &[]);
    let log = manager.partition("txd", 0).unwrap();
    let (deleted, kept) = ([2u8; 40], [3u8; 40]);
    let records: [(&[u8], Option<&[u8]>); 2] = [(&[0u8], Some(&deleted)), (&[9u8], Some(&kept))];
    log.append(&[transactional_batch(&records)]).unwrap();
    // A later, non-transactional tombstone of key 0.
    let tombstone = [Write {
        codec: Compression::None,
        records: vec![(0, None)],
    }];
    let model = append_writes(&log, &tombstone, 400);
    // Past the tombstone horizon (delete.retention.ms = 0): the tombstone goes too.
    clean_fully(&manager, &log, "txd");
    let seen = read_records(&log);
    assert!(
        seen.iter().all(|(_, key, _)| key != &[0u8]),
        "key 0 came back: {seen:?}"
    );
    let mut expected = vec![(1, vec![9u8], Some(kept.to_vec()))];
    expected.extend(latest_per_key(&model, true));
    assert_eq!(seen, expected);
    let first = batches_of(log.read(0, 1).unwrap().records).remove(0);
    assert!(first.is_transactional() && first.producer_id() == 7);
    assert_eq!((first.base_offset(), first.last_offset()), (0, 1));
}

/// A batch of `keys` (value "v") from producer `producer_id` starting at sequence
/// `first_seq`; `-1, -1` is a producer without idempotence.
fn producer_batch(
    producer_id: i64,
    first_seq: i32,
    keys: &[&[u8]],
) -> runnel_protocol::batch::RecordBatch {
    use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
    let fields = BatchFields {
        producer_id,
        producer_epoch: if producer_id < 0 { -1 } else { 0 },
        base_sequence: first_seq,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for key in keys {
        let record = NewRecord {
            timestamp: 1,
            key: Some(key),
            value: Some(b"v"),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    runnel_protocol::batch::RecordBatch::parse(builder.finish().unwrap()).unwrap()
}

/// Producer `producer_id`'s batch of sequences `first_seq..=last_seq`, as the produce path
/// checks it.
fn identity(producer_id: i64, first_seq: i32, last_seq: i32) -> Option<BatchIdentity> {
    Some(BatchIdentity {
        producer_id,
        epoch: 0,
        first_seq,
        last_seq,
    })
}

/// (base offset, last offset, record count) of `producer_id`'s batches in the log.
fn batches_of_producer(log: &PartitionLog, producer_id: i64) -> Vec<(i64, i64, i32)> {
    read_all(log)
        .iter()
        .filter(|batch| batch.producer_id() == producer_id)
        .map(|batch| {
            (
                batch.base_offset(),
                batch.last_offset(),
                batch.record_count(),
            )
        })
        .collect()
}

/// Filler batches of unique keys, so the segments before them are sealed and cleanable.
fn roll_past(log: &PartitionLog, tag: u8) {
    for i in 0..6u8 {
        log.append(&[producer_batch(-1, -1, &[&[tag, i][..]])])
            .unwrap();
    }
}

/// After a restart the produce path reads each producer's last sequence back from the
/// header of its last batch (base sequence + last offset delta, `producers::tail_scan`).
/// Cleaning keeps that: a rebuilt batch keeps its last offset delta, and a producer's last
/// batch whose records are all superseded stays as an empty batch, as Kafka's cleaner does;
/// once the producer's newer batch is cleaned too, the empty one goes.
#[test]
fn cleaning_keeps_each_idempotent_producers_last_sequence() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "p", 200, &[]);
    let log = manager.partition("p", 0).unwrap();
    // Producer 7: sequences 0..=1 (a, b) at offsets 0..=1. Producer 8: sequence 0 (e) at
    // offset 2, then 1..=2 (c, d) at 3..=4. Another producer then overwrites b, c and d.
    log.append(&[producer_batch(7, 0, &[b"a", b"b"])]).unwrap();
    log.append(&[producer_batch(8, 0, &[b"e"])]).unwrap();
    log.append(&[producer_batch(8, 1, &[b"c", b"d"])]).unwrap();
    log.append(&[producer_batch(-1, -1, &[b"b", b"c", b"d"])])
        .unwrap();
    roll_past(&log, b'x');
    let next_batches_accepted = |log: &PartitionLog, next_of_8: i32| {
        // An expiration no producer reaches: the records are from 1970.
        let producers = tail_scan::rebuild(log, 0, i64::MAX).unwrap();
        assert_eq!(producers.check(&[identity(7, 2, 2)]), Ok(Verdict::Append));
        let next = next_of_8;
        assert_eq!(
            producers.check(&[identity(8, next, next)]),
            Ok(Verdict::Append)
        );
        producers
    };
    next_batches_accepted(&log, 3);
    manager.clean_now("p", 0).unwrap();
    assert_eq!(
        batches_of_producer(&log, 7),
        vec![(0, 1, 1)],
        "rebuilt without b, its last offset kept"
    );
    assert_eq!(
        batches_of_producer(&log, 8),
        vec![(2, 2, 1), (3, 4, 0)],
        "the last batch kept as a header"
    );
    // What a restart rebuilds: the producers' next batches are in sequence, and a retry of
    // producer 8's last batch is still answered as a duplicate.
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    let log = manager.partition("p", 0).unwrap();
    let producers = next_batches_accepted(&log, 3);
    let retry = BatchMetadata {
        first_seq: 1,
        last_seq: 2,
        base_offset: 3,
        last_offset: 4,
    };
    assert_eq!(
        producers.check(&[identity(8, 1, 2)]),
        Ok(Verdict::Duplicate(retry))
    );
    // Producer 8's next batch, cleaned too: the empty batch is no longer its last, and goes.
    let appended = log.append(&[producer_batch(8, 3, &[b"f"])]).unwrap();
    roll_past(&log, b'y');
    manager.clean_now("p", 0).unwrap();
    let base = appended.base_offset;
    assert_eq!(
        batches_of_producer(&log, 8),
        vec![(2, 2, 1), (base, base, 1)]
    );
    next_batches_accepted(&log, 4);
}
