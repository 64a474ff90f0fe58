//! Group commit: many concurrent `wait_durable` callers complete on few fsyncs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::basic::{batch, open, overrides, test_dir};
use crate::log::now_ms;

#[test]
fn concurrent_waiters_share_fsyncs() {
    // A real disk: this one is about fsync. `flush.ms` "never" (Kafka's Long.MAX_VALUE): only
    // the waiters fsync, so the counts below are theirs — with the 1 s default, a flusher tick
    // that came due while a loaded machine ran the test added one (seen once in CI).
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path());
    let never = overrides(&[("flush.ms", "9223372036854775807")]);
    manager.create_topic("d", 1, never, false).unwrap();
    let log = manager.partition("d", 0).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = manager.fsync_count();
    let mut ends = Vec::new();
    for _ in 0..100 {
        ends.push(log.append(&[batch(2, 50, 1)]).unwrap().last_offset + 1);
    }
    let waiters: Vec<_> = ends.iter().map(|end| log.wait_durable(*end)).collect();
    runtime.block_on(async {
        for result in futures::future::join_all(waiters).await {
            result.unwrap();
        }
    });
    let fsyncs = manager.fsync_count() - before;
    assert!(fsyncs >= 1, "durable means fsynced");
    assert!(
        fsyncs <= 10,
        "100 waiters took {fsyncs} fsyncs: no group commit"
    );
    // Already durable: resolves at once without another fsync.
    let again = manager.fsync_count();
    runtime.block_on(log.wait_durable(200)).unwrap();
    assert_eq!(manager.fsync_count(), again);
    // Beyond the log end can never become durable: an error, not a hang.
    assert!(runtime.block_on(log.wait_durable(201)).is_err());
}

#[test]
fn waiters_never_fsync_on_their_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path());
    manager
        .create_topic("r", 8, BTreeMap::new(), false)
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One acks=all request's partitions: all eight waits queue before any is awaited.
    let waits: Vec<_> = (0..8)
        .map(|partition| {
            let log = manager.partition("r", partition).unwrap();
            let end = log.append(&[batch(4, 1000, 1)]).unwrap().last_offset + 1;
            log.wait_durable(end)
        })
        .collect();
    runtime.block_on(async {
        for result in futures::future::join_all(waits).await {
            result.unwrap();
        }
    });
    let names = manager.fsync_thread_names();
    assert!(!names.is_empty(), "durable means fsynced");
    assert!(
        names.iter().all(|name| name.starts_with("runnel-fsync-")),
        "fsyncs ran on {names:?}, not only on the fsync threads"
    );
    assert!(manager.fsync_count() >= 8, "every partition fsynced");
}

#[test]
fn concurrent_appenders_and_waiters() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("d", 1, BTreeMap::new(), false)
        .unwrap();
    let log = manager.partition("d", 0).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let info = log.append(&[batch(1, 100, 1)]).unwrap();
                    log.wait_durable(info.last_offset + 1).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(log.log_end_offset(), 160);
    assert!(manager.fsync_count() >= 1);
}

#[test]
fn background_flush_makes_acks1_data_durable() {
    let dir = test_dir();
    let manager = open(dir.path());
    let overrides = super::basic::overrides(&[("flush.ms", "10")]);
    manager.create_topic("d", 1, overrides, false).unwrap();
    let log = manager.partition("d", 0).unwrap();
    log.append(&[batch(1, 10, 1)]).unwrap();
    assert!(within_flusher_ticks(|| manager.fsync_count() > 0));
}

#[test]
fn idle_partitions_are_not_visited_by_the_flusher() {
    let dir = test_dir();
    let manager = open(dir.path());
    let overrides = super::basic::overrides(&[("flush.ms", "10")]);
    manager.create_topic("i", 500, overrides, false).unwrap();
    let log = manager.partition("i", 7).unwrap();
    log.append(&[batch(1, 10, 1)]).unwrap();
    // Only the partition appended to is visited; once flushed it settles.
    assert!(manager.flush_set_stats().0 <= 1);
    assert!(within_flusher_ticks(|| manager.flush_set_stats().0 == 0));
    assert_eq!(log.durable_offset(), 1);
    let (_, visits_before) = manager.flush_set_stats();
    // Six ticks or more with nothing to do visit nothing.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(manager.flush_set_stats(), (0, visits_before));
}

#[test]
fn a_page_cache_budget_near_u64_max_lets_partitions_settle() {
    let dir = test_dir();
    let mut config = crate::log::LogManagerConfig::new(dir.path());
    // "As much as there is": everything fits, so the tail is the whole budget.
    config.page_cache_bytes = u64::MAX;
    let manager = crate::log::LogManager::open(config).unwrap();
    let overrides = super::basic::overrides(&[("flush.ms", "10")]);
    manager.create_topic("m", 1, overrides, false).unwrap();
    let log = manager.partition("m", 0).unwrap();
    // More than a page cached: a tail plus a page that wrapped around would call it a drop.
    log.append(&[batch(1, 8192, 1)]).unwrap();
    assert!(within_flusher_ticks(|| log.durable_offset() == 1));
    assert!(within_flusher_ticks(|| manager.flush_set_stats().0 == 0));
}

#[test]
fn records_published_by_an_append_that_failed_later_are_flushed_on_time() {
    let dir = test_dir();
    let manager = open(dir.path());
    let overrides = super::basic::overrides(&[
        ("flush.ms", "10"),
        ("segment.index.bytes", "12"),
        ("index.interval.bytes", "0"),
    ]);
    manager.create_topic("p", 1, overrides, false).unwrap();
    let log = manager.partition("p", 0).unwrap();
    // Room for one index entry: the second batch rolls, and the roll cannot create its
    // segment file (a directory has the name).
    std::fs::create_dir(dir.path().join("p-0").join("00000000000000000001.log")).unwrap();
    assert!(log.append(&[batch(1, 10, 1), batch(1, 10, 2)]).is_err());
    // The first batch was published (readable, offset 0 taken) before the failure.
    assert_eq!(log.log_end_offset(), 1);
    assert!(within_flusher_ticks(|| log.durable_offset() == 1));
}

#[test]
fn a_partition_appended_after_going_idle_is_flushed_on_time() {
    let dir = test_dir();
    let manager = open(dir.path());
    let overrides = super::basic::overrides(&[("flush.ms", "100")]);
    manager.create_topic("r", 3, overrides, false).unwrap();
    let log = manager.partition("r", 1).unwrap();
    log.append(&[batch(1, 10, 1)]).unwrap();
    assert!(within_flusher_ticks(|| log.durable_offset() == 1));
    assert!(within_flusher_ticks(|| manager.flush_set_stats().0 == 0));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let fsyncs_before = manager.fsync_count();
    // No waiter asks for an fsync: only the flusher's `flush.ms` pass makes it durable.
    log.append(&[batch(2, 10, 2)]).unwrap();
    assert!(within_flusher_ticks(|| log.durable_offset() == 3));
    assert!(manager.fsync_count() > fsyncs_before);
    assert!(!log.dirty.load(std::sync::atomic::Ordering::Acquire));
}

#[test]
fn a_partition_never_flushed_on_time_settles_and_an_alter_brings_its_flush() {
    let dir = test_dir();
    let manager = open(dir.path());
    let never = i64::MAX.to_string();
    let overrides = super::basic::overrides(&[("flush.ms", never.as_str())]);
    manager.create_topic("n", 1, overrides, false).unwrap();
    let log = manager.partition("n", 0).unwrap();
    log.append(&[batch(1, 10, 1)]).unwrap();
    // Not fsynced (flush.ms "never"), and still no work for the tick once written back.
    assert!(within_flusher_ticks(|| manager.flush_set_stats().0 == 0));
    assert_eq!(log.durable_offset(), 0);
    // flush.ms altered to 10 ms: the append made under "never" comes due without another.
    let overrides = super::basic::overrides(&[("flush.ms", "10")]);
    manager.set_topic_overrides("n", overrides, false).unwrap();
    assert!(within_flusher_ticks(|| log.durable_offset() == 1));
    assert!(within_flusher_ticks(|| manager.flush_set_stats().0 == 0));
}

/// Waits (at most 2 s, i.e. 40 of the flusher's 50 ms ticks) until `done`; its last answer.
fn within_flusher_ticks(done: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    done()
}

#[test]
fn fsync_failure_fails_waiters_and_never_reports_durable() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("f", 1, BTreeMap::new(), false)
        .unwrap();
    let log = manager.partition("f", 0).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = log.append(&[batch(1, 10, 1)]).unwrap();
    runtime
        .block_on(log.wait_durable(first.last_offset + 1))
        .unwrap();
    manager.fail_fsyncs();
    let second = log.append(&[batch(1, 10, 1)]).unwrap();
    let result = runtime.block_on(log.wait_durable(second.last_offset + 1));
    assert!(
        matches!(result, Err(crate::log::LogError::Io(_))),
        "{result:?}"
    );
    // Sticky: later appends are never reported durable either...
    let third = log.append(&[batch(1, 10, 1)]).unwrap();
    assert!(runtime
        .block_on(log.wait_durable(third.last_offset + 1))
        .is_err());
    // ...while what was fsynced before the failure still is.
    runtime
        .block_on(log.wait_durable(first.last_offset + 1))
        .unwrap();
    // A flush of the failed partition counts as one for `flush.ms`: the tick does not ask
    // again (and log again) every 50 ms.
    log.last_flush_ms
        .store(0, std::sync::atomic::Ordering::Release);
    assert!(log.flush().is_err());
    assert!(log.last_flush_ms.load(std::sync::atomic::Ordering::Acquire) > 0);
}

#[test]
fn flusher_starts_writeback_between_fsyncs() {
    let dir = test_dir();
    let manager = open(dir.path());
    // No periodic fsync within the test: only the early writeback runs.
    let overrides = super::basic::overrides(&[("flush.ms", "3600000")]);
    manager.create_topic("w", 1, overrides, false).unwrap();
    let log = manager.partition("w", 0).unwrap();
    let fsyncs_before = manager.fsync_count();
    // Whole pages and a partial last page.
    log.append(&[batch(20, 1000, 1)]).unwrap();
    assert!(log
        .writeback_pending
        .load(std::sync::atomic::Ordering::Acquire));
    // The flusher's next tick takes the pending mark.
    assert!(within_flusher_ticks(|| !log
        .writeback_pending
        .load(std::sync::atomic::Ordering::Acquire)));
    // Writeback is not durability: nothing was fsynced, nothing reported durable.
    assert_eq!(manager.fsync_count(), fsyncs_before);
    assert!(log.dirty.load(std::sync::atomic::Ordering::Acquire));
    // A log with less than a page written, or none, starts nothing and fails nothing.
    manager
        .create_topic("e", 1, BTreeMap::new(), false)
        .unwrap();
    let empty = manager.partition("e", 0).unwrap();
    empty.start_writeback().unwrap();
    empty.append(&[batch(1, 10, 1)]).unwrap();
    empty.start_writeback().unwrap();
}

/// Deletion rounds the race test runs at most, and how long (a few seconds: without the
/// flush lock in deletion the first failure came within the first second here).
const RACE_ROUNDS_MAX: u64 = 5_000;
const RACE_DURATION_MS: u64 = 4_000;

#[test]
fn a_flush_racing_retention_or_delete_records_is_not_an_fsync_failure() {
    // A real disk: the directory fsync at the start of a flush takes time, which opens the
    // window between the flush's copy of the segment list and its fsyncs.
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path());
    let config = overrides(&[("segment.bytes", "2000"), ("retention.ms", "0")]);
    manager.create_topic("d", 1, config, false).unwrap();
    let log = manager.partition("d", 0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                log.flush().map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
    };
    let deadline = Instant::now() + Duration::from_millis(RACE_DURATION_MS);
    let mut rounds = 0u64;
    while rounds < RACE_ROUNDS_MAX && Instant::now() < deadline && !flusher.is_finished() {
        for _ in 0..3 {
            log.append(&[batch(1, 900, 1)]).unwrap();
        }
        // Both ways segments go: DeleteRecords (which rolls the active segment) and
        // retention (retention.ms 0: every sealed segment is expired).
        match rounds % 2 {
            0 => assert_eq!(log.delete_records_before(-1).unwrap(), log.log_end_offset()),
            _ => manager.enforce_retention(now_ms()).unwrap(),
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let flushed = flusher.join().unwrap();
    assert_eq!(flushed, Ok(()), "after {rounds} rounds");
    // acks=all still works.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let last = log.append(&[batch(1, 10, 1)]).unwrap();
    runtime
        .block_on(log.wait_durable(last.last_offset + 1))
        .unwrap();
}
