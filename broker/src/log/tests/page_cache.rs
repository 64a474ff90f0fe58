//! The cached tails (`log::page_cache`): pages behind a partition's share of
//! `page_cache_bytes` leave the page cache once on disk, the tail stays, and every byte
//! reads back the same either way. Residency is read with `mincore` on a real file system
//! (tmpfs pages cannot be dropped, so these tests use a directory on disk).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::basic::{batch, batches_of};
use crate::log::{LogManager, LogManagerConfig, PartitionLog};

const PAGE_BYTES: usize = 4096;
const TAIL_BYTES: u64 = 256 * 1024;
/// Share of a tail that must still be resident. Not all of it: the kernel may reclaim any
/// clean page at any time, and this machine's runs proactively (DAMON, a `pageout` scheme
/// on physical memory) — a CI run saw 62 of 64 tail pages resident. The cold side is
/// checked strictly (under 5 % left).
const TAIL_CACHED_MIN: f64 = 0.9;
/// Each batch ~16 KiB; 96 of them ≈ 1.5 MiB, six times the tail.
const BATCHES: i64 = 96;

/// Which pages of `path` are in the page cache.
fn resident_pages(path: &Path) -> Vec<bool> {
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    if len == 0 {
        return Vec::new();
    }
    let pages = len.div_ceil(PAGE_BYTES);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of `len` bytes of an open file, unmapped below; no
    // byte of it is read (mincore only reports residency into `vec`, `pages` long).
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
        libc::munmap(addr, len);
    }
    vec.iter().map(|v| v & 1 == 1).collect()
}

fn only_log_file(dir: &Path) -> PathBuf {
    let logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "one segment: {logs:?}");
    logs.into_iter().next().unwrap()
}

fn setup(budget_bytes: u64) -> (tempfile::TempDir, std::sync::Arc<LogManager>) {
    setup_partitions(budget_bytes, 1)
}

fn setup_partitions(
    budget_bytes: u64,
    partitions: i32,
) -> (tempfile::TempDir, std::sync::Arc<LogManager>) {
    setup_topic(budget_bytes, "c", partitions, BTreeMap::new())
}

fn setup_topic(
    budget_bytes: u64,
    topic: &str,
    partitions: i32,
    overrides: BTreeMap<String, String>,
) -> (tempfile::TempDir, std::sync::Arc<LogManager>) {
    // On disk, not tmpfs: see the module comment.
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(LogManagerConfig {
        page_cache_bytes: budget_bytes,
        ..LogManagerConfig::new(dir.path())
    })
    .unwrap();
    manager
        .create_topic(topic, partitions, overrides, false)
        .unwrap();
    (dir, manager)
}

fn fill(log: &PartitionLog) -> Vec<bytes::Bytes> {
    let mut appended = Vec::new();
    for i in 0..BATCHES {
        let batch = batch(4, 16 * 1024, i);
        log.append(std::slice::from_ref(&batch)).unwrap();
        appended.push(batch);
    }
    let read = read_all(log);
    assert_eq!(read.len(), appended.len());
    for (got, sent) in read.iter().zip(&appended) {
        assert_eq!(got.records_bytes(), sent.records_bytes());
        assert_eq!(got.max_timestamp(), sent.max_timestamp());
    }
    read.iter().map(|batch| batch.as_bytes().clone()).collect()
}

fn read_all(log: &PartitionLog) -> Vec<runnel_protocol::batch::RecordBatch> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let batches = batches_of(log.read(offset, 64 * 1024).unwrap().records);
        offset = batches.last().unwrap().next_offset();
        out.extend(batches);
    }
    out
}

fn cached_share(pages: &[bool]) -> f64 {
    pages.iter().filter(|p| **p).count() as f64 / pages.len().max(1) as f64
}

/// Waits (up to 30 s of flusher ticks: writeback and ticks slow down a lot on a loaded
/// 2-core machine) until less than 5 % of the first `cold_pages(n)` of
/// the `n` pages of `path` are cached; returns the residency map then.
fn wait_for_cold_dropped(
    path: &Path,
    cold_pages: impl Fn(usize) -> usize,
    what: &str,
) -> Vec<bool> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pages = resident_pages(path);
        let cold = &pages[..cold_pages(pages.len())];
        if cached_share(cold) < 0.05 {
            return pages;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {:.0} % cached behind the tail after 30 s",
            cached_share(cold) * 100.0
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn pages_behind_the_tail_leave_the_cache_and_read_back_the_same() {
    let (dir, manager) = setup(TAIL_BYTES);
    let log = manager.partition("c", 0).unwrap();
    let before = fill(&log);
    // Drops go as far as the flusher started writeback: start it here, as a tick does.
    log.start_writeback().unwrap();
    log.drop_cold_pages().unwrap();
    // What the budget is shared by: the bytes past the drops, one tail (to a page boundary).
    let cached = log.cached_bytes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (TAIL_BYTES..TAIL_BYTES + PAGE_BYTES as u64).contains(&cached),
        "{cached} bytes counted as cached"
    );
    let path = only_log_file(&dir.path().join("c-0"));
    let pages = resident_pages(&path);
    let tail_pages = TAIL_BYTES as usize / PAGE_BYTES;
    let (cold, tail) = pages.split_at(pages.len() - tail_pages);
    assert!(
        cached_share(cold) < 0.05,
        "{:.0} % of the pages behind the tail still cached",
        cached_share(cold) * 100.0
    );
    assert!(
        cached_share(tail) >= TAIL_CACHED_MIN,
        "the tail stays cached"
    );
    // Everything reads back byte for byte (the cold part from disk).
    let after: Vec<bytes::Bytes> = read_all(&log)
        .iter()
        .map(|batch| batch.as_bytes().clone())
        .collect();
    assert_eq!(before, after);
    // That read streamed the cold part through the cache: it is not left behind.
    let pages = resident_pages(&path);
    let (cold, tail) = pages.split_at(pages.len() - tail_pages);
    assert!(
        cached_share(&cold[..cold.len() / 2]) < 0.05,
        "a catch-up read left {:.0} % of what it read cached",
        cached_share(cold) * 100.0
    );
    assert!(
        cached_share(tail) >= TAIL_CACHED_MIN,
        "reads of the tail keep it cached"
    );
    manager.shutdown().unwrap();
}

#[test]
fn the_flusher_drops_cold_pages_on_its_own() {
    let (dir, manager) = setup(TAIL_BYTES);
    let log = manager.partition("c", 0).unwrap();
    fill(&log);
    let path = only_log_file(&dir.path().join("c-0"));
    wait_for_cold_dropped(&path, |pages| pages / 2, "the cold half");
    manager.shutdown().unwrap();
}

#[test]
fn a_zero_tail_leaves_the_page_cache_to_the_kernel() {
    let (dir, manager) = setup(0);
    let log = manager.partition("c", 0).unwrap();
    fill(&log);
    // Drops go as far as the flusher started writeback: start it here, as a tick does.
    log.start_writeback().unwrap();
    log.drop_cold_pages().unwrap();
    let pages = resident_pages(&only_log_file(&dir.path().join("c-0")));
    assert!(
        cached_share(&pages) > 0.95,
        "only {:.0} % cached with the tail off",
        cached_share(&pages) * 100.0
    );
    manager.shutdown().unwrap();
}

#[test]
fn the_partitions_being_written_share_the_budget() {
    // Four partitions under a budget of four tails: each keeps one tail, not the budget.
    let (dir, manager) = setup_partitions(4 * TAIL_BYTES, 4);
    let logs: Vec<_> = (0..4).map(|p| manager.partition("c", p).unwrap()).collect();
    for log in &logs {
        fill(log);
    }
    // Under a whole-budget tail (1 MiB of ~1.5 MiB) most of the cold part would stay.
    each_keeps_only(&dir, 4, TAIL_BYTES);
    manager.shutdown().unwrap();
}

/// Waits until each of partitions `0..partitions` of topic `c` holds only its last
/// `tail_bytes` in the page cache, and checks that those stay.
fn each_keeps_only(dir: &tempfile::TempDir, partitions: i32, tail_bytes: u64) {
    let tail_pages = tail_bytes as usize / PAGE_BYTES;
    for p in 0..partitions {
        let path = only_log_file(&dir.path().join(format!("c-{p}")));
        let what = format!("partition {p}");
        let pages = wait_for_cold_dropped(&path, |pages| pages - tail_pages, &what);
        let tail = &pages[pages.len() - tail_pages..];
        assert!(
            cached_share(tail) >= TAIL_CACHED_MIN,
            "{what}: its tail stays cached ({:.3})",
            cached_share(tail)
        );
    }
}

#[test]
fn partitions_written_earlier_give_up_their_share_when_others_fill_the_cache() {
    // Eight partitions under a budget of four tails; the first four are written, then,
    // after they have gone quiet, the other four: the cached bytes of all eight together
    // stay within the budget, so each ends with half a tail — the quiet ones too.
    let (dir, manager) = setup_partitions(4 * TAIL_BYTES, 8);
    let logs: Vec<_> = (0..8).map(|p| manager.partition("c", p).unwrap()).collect();
    for log in &logs[..4] {
        fill(log);
    }
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    for log in &logs[4..] {
        fill(log);
    }
    each_keeps_only(&dir, 8, TAIL_BYTES / 2);
    manager.shutdown().unwrap();
}

#[test]
fn the_cleaners_output_leaves_the_cache_when_it_lies_behind_the_tail() {
    // A compacted topic with 64 KiB segments (three 16 KiB records each), 3 MiB written,
    // under a 128 KiB budget: the cleaned segments lie far behind the tail, and a pass leaves them
    // on disk, not in memory (it fsyncs them first, so the drop finds clean pages).
    use super::basic::{keyed_batch, overrides};
    use super::compaction::{quiet_cleaner, read_records};
    use runnel_protocol::batch::Compression;

    let pairs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "65536"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    let (dir, manager) = setup_topic(128 * 1024, "k", 1, overrides(&pairs));
    quiet_cleaner(&manager, 1 << 20);
    let log = manager.partition("k", 0).unwrap();
    let value = vec![5u8; 16 * 1024];
    for i in 0..192u16 {
        // Every third record shares key 0: each segment loses one record to the pass and
        // is rewritten.
        let key = if i % 3 == 0 { 0 } else { i }.to_be_bytes();
        let records = [(0, 1000 + i64::from(i), &key[..], Some(&value[..]))];
        log.append(&[keyed_batch(Compression::None, &records)])
            .unwrap();
    }
    let before = read_records(&log);
    let part_dir = dir.path().join("k-0");
    let segment_logs = || {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&part_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        logs.sort();
        logs
    };
    // Segments behind the tail (all but the last four: 128 KiB covers at most three)
    // leave the cache as the flusher drops them, last partial page and all; only the
    // cleaner could bring pages back.
    let behind_tail = |logs: &[PathBuf]| logs[..logs.len().saturating_sub(4)].to_vec();
    let resident = |path: &Path| resident_pages(path).iter().filter(|r| **r).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for path in behind_tail(&segment_logs()) {
        while resident(&path) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{path:?} never dropped"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    manager.clean_now("k", 0).unwrap();
    let logs = segment_logs();
    assert!(
        logs.len() >= 20,
        "cleaned segments and the newest: {logs:?}"
    );
    for path in behind_tail(&logs) {
        let pages = resident(&path);
        assert_eq!(pages, 0, "{path:?}: pages cached after the pass");
    }
    // What is left reads back from disk as it was written, every key but the shared one
    // whole (128 of them), the shared one's superseded records gone.
    let after = read_records(&log);
    assert!(
        after.iter().all(|record| before.contains(record)),
        "records read back as written"
    );
    let unique_keys = after.iter().filter(|(_, key, _)| key[..] != [0, 0]).count();
    assert_eq!(unique_keys, 128);
    assert!(
        after.len() < before.len(),
        "the pass removed superseded records"
    );
    manager.shutdown().unwrap();
}

#[test]
fn a_roll_to_a_segment_without_a_whole_page_still_lets_the_old_one_drop() {
    let mut overrides = BTreeMap::new();
    overrides.insert("segment.bytes".to_string(), (1024 * 1024).to_string());
    overrides.insert("flush.ms".to_string(), "10".to_string());
    let (_dir, manager) = setup_topic(TAIL_BYTES, "r", 1, overrides);
    let log = manager.partition("r", 0).unwrap();
    // Nearly a full segment, then a batch that rolls to a new one shorter than a page.
    let big: Vec<_> = (0..4).map(|i| batch(1, 261_700, i)).collect();
    log.append(&big).unwrap();
    log.append(&[batch(1, 2000, 9)]).unwrap();
    assert_eq!(log.segment_count(), 2);
    // As a tick does: writeback of the (active) new segment, then drops.
    log.start_writeback().unwrap();
    log.drop_cold_pages().unwrap();
    let cached = log.cached_bytes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        cached < TAIL_BYTES + PAGE_BYTES as u64,
        "{cached} bytes still counted as cached: the old segment was never dropped"
    );
    // With nothing left to drop, write back or fsync, it leaves the flusher's set.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while manager.flush_set_stats().0 != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never left the flush set"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
