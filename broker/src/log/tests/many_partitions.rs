//! Thousands of partitions: opening is lazy and open files stay bounded.

use std::collections::BTreeMap;

use super::basic::{batch, test_dir};
use crate::log::{LogManager, LogManagerConfig};

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn open_files_stay_bounded_with_3000_partitions() {
    let dir = test_dir();
    let config = LogManagerConfig {
        open_segments_max: 16,
        ..LogManagerConfig::new(dir.path())
    };
    let manager = LogManager::open(config.clone()).unwrap();
    manager
        .create_topic("many", 3000, BTreeMap::new(), false)
        .unwrap();
    for p in (0..3000).step_by(100) {
        manager
            .partition("many", p)
            .unwrap()
            .append(&[batch(1, 10, 1)])
            .unwrap();
    }
    manager.shutdown().unwrap();
    drop(manager);

    let manager = LogManager::open(config).unwrap();
    for p in (0..3000).step_by(50) {
        let log = manager.partition("many", p).unwrap();
        log.append(&[batch(1, 10, 2)]).unwrap();
        assert!(!log
            .read(log.log_start_offset(), 1024)
            .unwrap()
            .records
            .is_empty());
    }
    // 60 partitions touched with room for 16 open segment files: a bound independent of the
    // partition count (other tests in this process hold a few descriptors of their own).
    let open_fds = fd_count();
    assert!(open_fds < 300, "{open_fds} descriptors open");
    assert_eq!(manager.partition("many", 2999).unwrap().log_end_offset(), 0);
}

#[test]
fn recovery_after_an_unclean_stop_runs_on_several_threads() {
    let dir = test_dir();
    let config = LogManagerConfig::new(dir.path());
    let manager = LogManager::open(config.clone()).unwrap();
    manager
        .create_topic("crashed", 64, BTreeMap::new(), false)
        .unwrap();
    for p in 0..64 {
        manager
            .partition("crashed", p)
            .unwrap()
            .append(&[batch(2, 10, 1)])
            .unwrap();
    }
    // Dropped without `shutdown`: no clean-shutdown marker, so the next open recovers.
    drop(manager);

    let manager = LogManager::open(config).unwrap();
    let names = manager.recovery_thread_names();
    assert!(
        names.contains("runnel-recover"),
        "partitions recovered only on {names:?}"
    );
    for p in 0..64 {
        assert_eq!(manager.partition("crashed", p).unwrap().log_end_offset(), 2);
    }
}

#[test]
fn deleting_a_topic_rewrites_each_checkpoint_file_at_most_once() {
    let dir = test_dir();
    let manager = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    manager
        .create_topic("doomed", 50, BTreeMap::new(), false)
        .unwrap();
    manager
        .create_topic("kept", 1, BTreeMap::new(), false)
        .unwrap();
    for (topic, p) in (0..50).map(|p| ("doomed", p)).chain([("kept", 0)]) {
        // Loading a partition gives it a recovery-point entry.
        manager
            .partition(topic, p)
            .unwrap()
            .append(&[batch(1, 10, 1)])
            .unwrap();
    }
    let before = manager.checkpoint_retain_writes();
    manager.delete_topic("doomed").unwrap();
    let writes = manager.checkpoint_retain_writes() - before;
    // One per checkpoint file at most (recovery points, log starts, cleaner offsets).
    assert!(
        (1..=3).contains(&writes),
        "{writes} checkpoint writes for one topic"
    );
    manager.shutdown().unwrap();
    drop(manager);

    let manager = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    assert_eq!(manager.partition("kept", 0).unwrap().log_end_offset(), 1);
    manager
        .create_topic("doomed", 50, BTreeMap::new(), false)
        .unwrap();
    assert_eq!(manager.partition("doomed", 7).unwrap().log_end_offset(), 0);
}

/// Times `delete_topic` of a 10 000-partition topic whose every partition holds a segment
/// (run by hand: `cargo test --release -p runnel-broker --lib -- --ignored delete_topic_timing
/// --nocapture`; prints, asserts nothing about time).
#[test]
#[ignore]
fn delete_topic_timing_at_10_000_partitions() {
    // On the disk, not /dev/shm: directory removal costs what it costs there.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let manager = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    manager
        .create_topic("big", 10_000, BTreeMap::new(), false)
        .unwrap();
    for p in 0..10_000 {
        let log = manager.partition("big", p).unwrap();
        log.append(&[batch(1, 100, 1)]).unwrap();
    }
    let started = std::time::Instant::now();
    manager.delete_topic("big").unwrap();
    let delete = started.elapsed();
    let started = std::time::Instant::now();
    manager
        .create_topic("other", 1, BTreeMap::new(), false)
        .unwrap();
    eprintln!(
        "delete_topic of 10 000 partitions: {delete:?}; the next create_topic: {:?}",
        started.elapsed()
    );
}
