//! Power-loss simulation: while writers append (some waiting for durability, as acks=all
//! does, some not, as acks=1 does), the data directory is copied as a power cut would leave
//! it — every segment file keeps its last-fsynced length plus a random part of its unsynced
//! tail, which is sometimes zero-filled (size metadata reached the disk, data did not). A new
//! `LogManager` recovering that copy must keep every batch whose durability was reported,
//! at its offset, with offsets gap-free, and must accept appends again.
//!
//! The synced lengths come from the `synced_lengths` seam (cfg(test)) in `flusher.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_protocol::batch::{build_raw_batch, RawBatchFields, RecordBatch};

use super::basic::{batches_of, open, overrides, test_dir};
use crate::log::LogManager;

const PARTITIONS: i32 = 2;
const WRITERS: u64 = 3;
const APPENDS_PER_WRITER_MAX: u64 = 400;
const ROUNDS: u64 = 24;

/// A batch whose timestamps carry `tag`, so it can be recognised after recovery.
fn tagged_batch(tag: i64, records: i32, payload_bytes: usize) -> RecordBatch {
    let payload = vec![0x5a; payload_bytes];
    let raw = build_raw_batch(&RawBatchFields {
        last_offset_delta: records - 1,
        record_count: records,
        base_timestamp: tag,
        max_timestamp: tag,
        records: &payload,
        ..RawBatchFields::default()
    });
    RecordBatch::parse(raw).unwrap()
}

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// (partition, base offset) → tag of every batch reported durable.
type Durable = Arc<Mutex<BTreeMap<(i32, i64), i64>>>;

fn writer(manager: Arc<LogManager>, id: u64, seed: u64, durable: Durable, stop: Arc<AtomicBool>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = Lcg(seed);
    for seq in 0..APPENDS_PER_WRITER_MAX {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let partition = rng.below(PARTITIONS as u64) as i32;
        let log = manager.partition("p", partition).unwrap();
        let tag = (id * 1_000_000 + seq) as i64;
        let records = 1 + rng.below(4) as i32;
        let batch = tagged_batch(tag, records, 20 + rng.below(300) as usize);
        let info = log.append(&[batch]).unwrap();
        // Writer 0 never waits (acks=1), so unsynced tails exist when the power goes.
        if id > 0 && rng.below(2) == 0 {
            runtime
                .block_on(log.wait_durable(info.last_offset + 1))
                .unwrap();
            durable
                .lock()
                .unwrap()
                .insert((partition, info.base_offset), tag);
        }
    }
}

/// Copies `from` into `to` as a power cut would leave it (see the module doc). Returns the
/// unsynced bytes dropped or zeroed.
fn copy_after_power_cut(
    from: &Path,
    to: &Path,
    synced: &HashMap<PathBuf, u64>,
    rng: &mut Lcg,
) -> u64 {
    let mut lost_bytes = 0;
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            lost_bytes += copy_after_power_cut(&path, &target, synced, rng);
            continue;
        }
        let mut bytes = fs::read(&path).unwrap();
        // Segment files only: the metadata log and checkpoints keep what they had (they
        // fsync before every change they report).
        let in_partition = from
            .file_name()
            .is_some_and(|d| d.to_string_lossy().starts_with("p-"));
        if in_partition && path.extension().is_some_and(|e| e == "log") {
            let synced_len = synced
                .get(&path)
                .copied()
                .unwrap_or(0)
                .min(bytes.len() as u64);
            let unsynced = bytes.len() as u64 - synced_len;
            let kept = (synced_len + rng.below(unsynced + 1)) as usize;
            let zeroed = rng.below(3) == 0;
            lost_bytes += if zeroed {
                unsynced
            } else {
                unsynced - (kept as u64 - synced_len)
            };
            bytes.truncate(kept);
            if zeroed {
                bytes[synced_len as usize..].fill(0);
            }
        }
        fs::write(&target, bytes).unwrap();
    }
    lost_bytes
}

/// Every batch of `partition`, checking offsets run without gaps from the log start.
fn read_checked(manager: &LogManager, partition: i32) -> BTreeMap<i64, i64> {
    let log = manager.partition("p", partition).unwrap();
    let mut found = BTreeMap::new();
    let mut offset = log.log_start_offset();
    assert_eq!(offset, 0);
    while offset < log.log_end_offset() {
        let batches = batches_of(log.read(offset, 1 << 20).unwrap().records);
        assert!(!batches.is_empty(), "p-{partition}: nothing at {offset}");
        for batch in batches {
            assert_eq!(batch.base_offset(), offset, "p-{partition}: offset gap");
            batch.verify_crc().unwrap();
            found.insert(batch.base_offset(), batch.base_timestamp());
            offset = batch.next_offset();
        }
    }
    assert_eq!(offset, log.log_end_offset());
    found
}

/// One cut; returns (batches reported durable, unsynced bytes lost).
fn round(seed: u64) -> (usize, u64) {
    let mut rng = Lcg(seed);
    let dir = test_dir();
    let live = dir.path().join("live");
    let manager = open(&live);
    let small_segments = overrides(&[("segment.bytes", "3000"), ("flush.ms", "1000")]);
    manager
        .create_topic("p", PARTITIONS, small_segments, false)
        .unwrap();
    let durable: Durable = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            let (manager, durable, stop) = (manager.clone(), durable.clone(), stop.clone());
            let seed = rng.below(u64::MAX);
            std::thread::spawn(move || writer(manager, id, seed, durable, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1 + rng.below(40)));
    // Order matters: durability reported ⇒ its fsync was recorded ⇒ within `synced`.
    let reported = durable.lock().unwrap().clone();
    let synced = manager.synced_lengths();
    let cut = dir.path().join("cut");
    let lost_bytes = copy_after_power_cut(&live, &cut, &synced, &mut rng);
    stop.store(true, Ordering::Release);
    for handle in writers {
        handle.join().unwrap();
    }
    drop(manager);

    let recovered = open(&cut);
    for partition in 0..PARTITIONS {
        let found = read_checked(&recovered, partition);
        for ((p, base), tag) in reported.range((partition, i64::MIN)..=(partition, i64::MAX)) {
            assert_eq!(
                found.get(base),
                Some(tag),
                "seed {seed}: durable batch p-{p}@{base} lost"
            );
        }
        let log = recovered.partition("p", partition).unwrap();
        let end = log.log_end_offset();
        let info = log.append(&[tagged_batch(-7, 1, 10)]).unwrap();
        assert_eq!(
            info.base_offset, end,
            "appends continue at the recovered end"
        );
    }
    // Recovery is stable: a clean restart sees the same logs.
    let before: Vec<_> = (0..PARTITIONS)
        .map(|p| read_checked(&recovered, p))
        .collect();
    recovered.shutdown().unwrap();
    let reopened = open(&cut);
    let after: Vec<_> = (0..PARTITIONS)
        .map(|p| read_checked(&reopened, p))
        .collect();
    assert_eq!(before, after);
    (reported.len(), lost_bytes)
}

#[test]
fn durable_batches_survive_a_power_cut() {
    let base_seed = std::env::var("RUNNEL_POWER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_u64);
    let (mut reported, mut lost_bytes) = (0, 0);
    for i in 0..ROUNDS {
        let (r, l) = round(base_seed.wrapping_add(i));
        reported += r;
        lost_bytes += l;
    }
    eprintln!("power_loss: {ROUNDS} cuts, {reported} durable batches kept, {lost_bytes} unsynced bytes lost");
    assert!(reported > 0 && lost_bytes > 0, "the cuts exercised nothing");
}
