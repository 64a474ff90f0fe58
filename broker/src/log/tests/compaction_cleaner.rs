//! Log compaction by the cleaner thread: which partitions it picks (dirty ratio, max and
//! min compaction lag), compact+delete topics, and readers while it cleans.

use std::sync::Arc;

use runnel_protocol::batch::Compression;

use super::basic::{open, overrides, test_dir};
use super::compaction::{
    append_writes, compacted, latest_per_key, quiet_cleaner, read_records, Write,
};
use crate::log::CleanerConfig;

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
