//! Property test: damage after an unclean stop (truncation, garbage, broken or missing index
//! files) loses exactly the batches at or after the damage, byte for byte, and the log keeps
//! accepting appends.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use runnel_protocol::batch::{set_base_offset, set_partition_leader_epoch, RecordBatch};

use super::basic::{batch, batches_of, overrides, test_dir};
use crate::log::{LogManager, LogManagerConfig};

#[derive(Debug, Clone)]
enum Damage {
    /// Cut the active segment at this fraction (per mille) of its length.
    Truncate(u16),
    GarbageLog(Vec<u8>),
    GarbageIndex(Vec<u8>),
    OverwriteIndex(Vec<u8>),
    DeleteIndexes,
}

fn damage() -> impl Strategy<Value = Damage> {
    let garbage = || prop::collection::vec(any::<u8>(), 1..200);
    prop_oneof![
        (0..1000u16).prop_map(Damage::Truncate),
        garbage().prop_map(Damage::GarbageLog),
        garbage().prop_map(Damage::GarbageIndex),
        garbage().prop_map(Damage::OverwriteIndex),
        Just(Damage::DeleteIndexes),
    ]
}

fn segment_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

fn read_everything(manager: &LogManager) -> Vec<RecordBatch> {
    let log = manager.partition("r", 0).unwrap();
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let batches = batches_of(log.read(offset, 4096).unwrap().records);
        offset = batches.last().unwrap().next_offset();
        out.extend(batches);
    }
    out
}

/// Cuts `active` at `per_mille` of its length; returns how many of its batches survive.
fn truncate(active: &Path, per_mille: u16, in_active: &[RecordBatch]) -> usize {
    let len = fs::metadata(active).unwrap().len();
    let cut = len * u64::from(per_mille) / 1000;
    OpenOptions::new()
        .write(true)
        .open(active)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut end = 0u64;
    in_active
        .iter()
        .take_while(|b| {
            end += b.size_bytes() as u64;
            end <= cut
        })
        .count()
}

/// Applies `damage`; returns how many batches must survive.
fn apply(partition_dir: &Path, damage: &Damage, stored: &[RecordBatch]) -> usize {
    let logs = segment_files(partition_dir, "log");
    let active = logs.last().unwrap();
    let active_base: i64 = active
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_earlier = stored
        .iter()
        .filter(|b| b.base_offset() < active_base)
        .count();
    let pick = |files: Vec<PathBuf>, seed: usize| files[seed % files.len()].clone();
    match damage {
        Damage::Truncate(per_mille) => {
            truncate(active, *per_mille, &stored[in_earlier..]) + in_earlier
        }
        Damage::GarbageLog(bytes) => {
            OpenOptions::new()
                .append(true)
                .open(active)
                .unwrap()
                .write_all(bytes)
                .unwrap();
            stored.len()
        }
        Damage::GarbageIndex(bytes) => {
            let mut files = segment_files(partition_dir, "index");
            files.extend(segment_files(partition_dir, "timeindex"));
            let target = pick(files, bytes.len());
            OpenOptions::new()
                .append(true)
                .open(target)
                .unwrap()
                .write_all(bytes)
                .unwrap();
            stored.len()
        }
        Damage::OverwriteIndex(bytes) => {
            let mut files = segment_files(partition_dir, "index");
            files.extend(segment_files(partition_dir, "timeindex"));
            fs::write(pick(files, bytes.len()), bytes).unwrap();
            stored.len()
        }
        Damage::DeleteIndexes => {
            for f in segment_files(partition_dir, "index")
                .into_iter()
                .chain(segment_files(partition_dir, "timeindex"))
            {
                fs::remove_file(f).unwrap();
            }
            stored.len()
        }
    }
}

fn run(sizes: Vec<(i32, usize)>, segment_bytes: u32, clean: bool, damage: Damage) {
    let dir = test_dir();
    let config = LogManagerConfig::new(dir.path());
    let manager = LogManager::open(config.clone()).unwrap();
    let topic_overrides = overrides(&[
        ("segment.bytes", &segment_bytes.to_string()),
        ("index.interval.bytes", "100"),
    ]);
    manager
        .create_topic("r", 1, topic_overrides, false)
        .unwrap();
    let log = manager.partition("r", 0).unwrap();
    let mut stored = Vec::new();
    for (i, (records, bytes)) in sizes.iter().enumerate() {
        let b = batch(*records, *bytes, i as i64);
        let info = log.append(std::slice::from_ref(&b)).unwrap();
        let mut raw = b.as_bytes().to_vec();
        set_base_offset(&mut raw, info.base_offset);
        set_partition_leader_epoch(&mut raw, 0);
        stored.push(RecordBatch::parse(Bytes::from(raw)).unwrap());
    }
    drop(log);
    if clean {
        manager.shutdown().unwrap();
    }
    drop(manager);
    // Whatever happened before, the damage makes this an unclean start.
    let _ = fs::remove_file(dir.path().join(".runnel_clean_shutdown"));
    let kept = apply(&dir.path().join("r-0"), &damage, &stored);

    let manager = LogManager::open(config.clone()).unwrap();
    let survived = read_everything(&manager);
    assert_eq!(survived.len(), kept, "damage {damage:?}");
    assert_eq!(&survived[..], &stored[..kept]);
    let log = manager.partition("r", 0).unwrap();
    let next_offset = stored[..kept].last().map_or(0, |b| b.next_offset());
    assert_eq!(log.log_end_offset(), next_offset);
    let info = log.append(&[batch(1, 7, 5)]).unwrap();
    assert_eq!(info.base_offset, next_offset);
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = LogManager::open(config).unwrap();
    assert_eq!(read_everything(&manager).len(), kept + 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn recovery_keeps_exactly_the_undamaged_prefix(
        sizes in prop::collection::vec((1..4i32, 0..400usize), 1..25),
        segment_bytes in 200..4000u32,
        clean in any::<bool>(),
        damage in damage(),
    ) {
        run(sizes, segment_bytes, clean, damage);
    }
}

/// A power cut can keep a later segment's unsynced data while losing an earlier segment's
/// unsynced tail (writeback order is the kernel's). The log must come back gap-free: the
/// segments after the gap go too — on compacted topics as well (the cleaner's own gaps lie
/// below the recovery point:
/// `compaction_restarts::the_cleaners_gaps_survive_an_unclean_restart_*`).
#[test]
fn segments_after_a_lost_tail_are_dropped_not_served_across_a_gap() {
    for policy in ["delete", "compact"] {
        let dir = test_dir();
        let config = LogManagerConfig::new(dir.path());
        let manager = LogManager::open(config.clone()).unwrap();
        // Every append rolls: one batch per segment.
        let topic_overrides = overrides(&[
            ("segment.bytes", "100"),
            ("flush.ms", "3600000"),
            ("cleanup.policy", policy),
        ]);
        manager
            .create_topic("r", 1, topic_overrides, false)
            .unwrap();
        let log = manager.partition("r", 0).unwrap();
        for i in 0..4 {
            assert_eq!(log.append(&[batch(1, 150, i)]).unwrap().base_offset, i);
        }
        drop(log);
        drop(manager);
        let _ = fs::remove_file(dir.path().join(".runnel_clean_shutdown"));
        let logs = segment_files(&dir.path().join("r-0"), "log");
        assert_eq!(logs.len(), 4);
        // The second segment's only batch never reached the disk; the third's and fourth's did.
        OpenOptions::new()
            .write(true)
            .open(&logs[1])
            .unwrap()
            .set_len(0)
            .unwrap();

        let manager = LogManager::open(config).unwrap();
        let survived = read_everything(&manager);
        let offsets: Vec<i64> = survived.iter().map(RecordBatch::base_offset).collect();
        assert_eq!(
            offsets,
            vec![0],
            "{policy}: nothing is served across the gap"
        );
        let log = manager.partition("r", 0).unwrap();
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(log.append(&[batch(1, 7, 9)]).unwrap().base_offset, 1);
    }
}
