//! Mutation property tests for recovery (no nightly needed, unlike the cargo-fuzz targets):
//! - bytes flipped *anywhere* in a partition's segments after an unclean stop: recovery keeps
//!   exactly the batches before the first damaged one (a flip in the leader epoch, which no
//!   checksum covers, damages nothing) and the log accepts appends again. The base offset is
//!   not flipped: no checksum covers it either, and a larger one reads as a gap that
//!   compaction legitimately leaves, which recovery must accept (Kafka does the same);
//!   a smaller one is caught as offsets going backwards;
//! - a segment made of arbitrary bytes, or a valid prefix followed by them: opening never
//!   panics, whatever is served is whole CRC-valid batches with gap-free offsets, the files
//!   are truncated to exactly those batches, and appends continue at the recovered end.
//!
//! The libFuzzer counterpart, `segment_recovery` in `protocol/fuzz`, is run by hand (it needs
//! the whole broker in the instrumented build); this test is what CI runs.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use runnel_protocol::batch::{set_base_offset, RecordBatch};

use super::basic::{batch, batches_of, overrides, test_dir};
use crate::log::{LogManager, LogManagerConfig};

/// Byte range of the partition leader epoch inside a batch (outside the CRC span).
const EPOCH_BYTES: std::ops::Range<usize> = 12..16;
/// Byte range of the base offset inside a batch (outside the CRC span; see the module doc).
const BASE_OFFSET_BYTES: std::ops::Range<usize> = 0..8;

/// Writes `sizes` batches to `m`-0 and stops uncleanly; returns what was stored (epoch
/// masked) and the segment files in offset order.
fn build(dir: &Path, sizes: &[(i32, usize)]) -> (Vec<Vec<u8>>, Vec<std::path::PathBuf>) {
    let manager = LogManager::open(LogManagerConfig::new(dir)).unwrap();
    let small = overrides(&[("segment.bytes", "600"), ("index.interval.bytes", "100")]);
    manager.create_topic("m", 1, small, false).unwrap();
    let log = manager.partition("m", 0).unwrap();
    let mut stored = Vec::new();
    for (i, (records, bytes)) in sizes.iter().enumerate() {
        let b = batch(*records, *bytes, i as i64);
        let info = log.append(std::slice::from_ref(&b)).unwrap();
        let mut raw = b.as_bytes().to_vec();
        set_base_offset(&mut raw, info.base_offset);
        raw[EPOCH_BYTES].fill(0);
        stored.push(raw);
    }
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let _ = fs::remove_file(dir.join(".runnel_clean_shutdown"));
    let _ = fs::remove_file(dir.join("recovery-point-offset-checkpoint"));
    let mut logs: Vec<_> = fs::read_dir(dir.join("m-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    (stored, logs)
}

/// Bytes in the partition's `.log` files.
fn log_bytes(dir: &Path) -> u64 {
    let logs = fs::read_dir(dir.join("m-0"))
        .unwrap()
        .map(|e| e.unwrap().path());
    logs.filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Every served batch, checked: whole, CRC-valid, offsets gap-free from the log start.
fn served(manager: &LogManager) -> Vec<Vec<u8>> {
    let log = manager.partition("m", 0).unwrap();
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let batches = batches_of(log.read(offset, 1 << 16).unwrap().records);
        assert!(!batches.is_empty(), "nothing served at {offset}");
        for b in batches {
            assert_eq!(b.base_offset(), offset, "offset gap");
            b.verify_crc().unwrap();
            offset = b.next_offset();
            let mut raw = b.as_bytes().to_vec();
            raw[EPOCH_BYTES].fill(0);
            out.push(raw);
        }
    }
    let info = log.append(&[batch(1, 9, 1)]).unwrap();
    assert_eq!(
        info.base_offset, offset,
        "appends continue at the recovered end"
    );
    out
}

fn flips_keep_the_undamaged_prefix(sizes: Vec<(i32, usize)>, flips: Vec<(usize, u8)>) {
    let dir = test_dir();
    let (stored, logs) = build(dir.path(), &sizes);
    // Lay the segments end to end: global position → (file, position) and → batch.
    let contents: Vec<Vec<u8>> = logs.iter().map(|p| fs::read(p).unwrap()).collect();
    let total: usize = contents.iter().map(Vec::len).sum();
    assert_eq!(total, stored.iter().map(Vec::len).sum::<usize>());
    let mut first_damaged = stored.len();
    let mut mutated = contents.clone();
    for (at, xor) in flips {
        let mut global = at % total;
        let (mut start, mut index) = (0, 0);
        while start + stored[index].len() <= global {
            start += stored[index].len();
            index += 1;
        }
        if BASE_OFFSET_BYTES.contains(&(global - start)) {
            continue;
        }
        if !EPOCH_BYTES.contains(&(global - start)) {
            first_damaged = first_damaged.min(index);
        }
        for file in mutated.iter_mut() {
            if global < file.len() {
                file[global] ^= xor;
                break;
            }
            global -= file.len();
        }
    }
    for (path, bytes) in logs.iter().zip(&mutated) {
        fs::write(path, bytes).unwrap();
    }
    let manager = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    let survived = served(&manager);
    assert_eq!(survived.len(), first_damaged, "kept batches");
    assert_eq!(&survived[..], &stored[..first_damaged]);
}

fn arbitrary_segment_never_panics(valid_batches: usize, garbage: Vec<u8>) {
    let dir = test_dir();
    let sizes = vec![(2, 40); valid_batches.max(1)];
    let (stored, logs) = build(dir.path(), &sizes);
    let last = logs.last().unwrap();
    let mut bytes = fs::read(last).unwrap();
    bytes.truncate(if valid_batches == 0 { 0 } else { bytes.len() });
    bytes.extend_from_slice(&garbage);
    fs::write(last, bytes).unwrap();
    let manager = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    let survived = served(&manager);
    // Truncated to whole batches: the segment files hold exactly what is served, plus the
    // batch `served` appended.
    let kept_bytes: usize = survived.iter().map(Vec::len).sum();
    let appended_bytes = batch(1, 9, 1).size_bytes();
    assert_eq!(log_bytes(dir.path()), (kept_bytes + appended_bytes) as u64);
    // Nothing invented: what is served is a prefix of what was written (arbitrary bytes
    // that happen to form a valid batch are astronomically unlikely at these sizes).
    assert!(survived.len() <= stored.len());
    assert_eq!(&survived[..], &stored[..survived.len()]);
}

/// A garbage tail that starts like a batch header: a plausible base offset and length.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            any::<i64>(),
            0..400i32,
            prop::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(base, length, rest)| {
                let mut out = base.to_be_bytes().to_vec();
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0, 2]);
                out.extend_from_slice(&rest);
                out
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn byte_flips_anywhere_keep_exactly_the_undamaged_prefix(
        sizes in prop::collection::vec((1..4i32, 0..200usize), 1..16),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..4),
    ) {
        flips_keep_the_undamaged_prefix(sizes, flips);
    }

    #[test]
    fn arbitrary_segment_bytes_never_panic(valid in 0..6usize, garbage in garbage()) {
        arbitrary_segment_never_panics(valid, garbage);
    }
}

#[test]
fn a_stored_batch_parses_back() {
    // Guards the helper: what `build` records is what the log serves.
    let dir = test_dir();
    let (stored, _) = build(dir.path(), &[(2, 10), (1, 300)]);
    let manager = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    assert_eq!(served(&manager), stored);
    assert!(RecordBatch::parse(Bytes::from(stored[0].clone())).is_ok());
}
