//! Compaction under faults: a crash at every step of the swap (then recovery), an I/O
//! error at every step (repaired in place), a corrupt batch, and an aborted pass.

use proptest::prelude::*;
use runnel_protocol::batch::Compression;

use super::basic::{open, overrides, test_dir};
use super::compaction::{
    append_writes, compacted, latest_per_key, quiet_cleaner, read_records, write_strategy, Seen,
    Write,
};
use crate::log::{CleanerConfig, LogError, LogManager, PartitionLog};

/// Writes `writes` over several segments then widens segment.bytes so one swap merges
/// them all; returns the records before and the expected records after one pass.
fn crash_fixture(
    manager: &LogManager,
    log: &PartitionLog,
    writes: &[Write],
) -> (Vec<Seen>, Vec<Seen>) {
    let model = append_writes(log, writes, 400);
    manager
        .set_topic_overrides(
            "c",
            overrides(&[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "1000000"),
                ("delete.retention.ms", "0"),
            ]),
            false,
        )
        .unwrap();
    (model.clone(), latest_per_key(&model, false))
}

/// Cleans with the swap stopped after `step`, reopens without a clean shutdown, and checks
/// the log holds exactly the old records (before the commit point) or the new ones.
fn crash_at(step: u8, writes: &[Write]) {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "c", 400, &[]);
    let log = manager.partition("c", 0).unwrap();
    let (before, after) = crash_fixture(&manager, &log, writes);
    manager.crash_swap_after(step);
    let result = manager.clean_now("c", 0);
    if before == after {
        return; // nothing to remove: no swap happened
    }
    assert!(result.is_err(), "step {step}");
    drop(log);
    drop(manager); // no shutdown: the next open recovers
    let manager = open(dir.path());
    let log = manager.partition("c", 0).unwrap();
    let expected = if step >= 3 { &after } else { &before };
    assert_eq!(&read_records(&log), expected, "crash after step {step}");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("c-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".deleted") && !n.contains(".cleaned") && !n.contains(".swap")),
        "{names:?}"
    );
    // The cleaner finishes the job after the restart.
    quiet_cleaner(&manager, 1 << 20);
    manager.clean_now("c", 0).unwrap();
    assert_eq!(read_records(&log), after, "step {step}, cleaned again");
}

#[test]
fn a_crash_at_any_swap_step_leaves_old_or_new_segments() {
    let writes: Vec<Write> = (0..40u8)
        .map(|i| Write {
            codec: Compression::Gzip,
            records: vec![(i % 4, Some(i)), ((i + 1) % 5, Some(i))],
        })
        .collect();
    for step in 1..=4u8 {
        crash_at(step, &writes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_logs_survive_a_crash_at_any_swap_step(
        writes in prop::collection::vec(write_strategy(), 1..30),
        step in 1u8..=4,
    ) {
        crash_at(step, &writes);
    }
}

#[test]
fn a_corrupt_batch_stops_cleaning_that_partition_untouched() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "x", 400, &[]);
    let log = manager.partition("x", 0).unwrap();
    let writes: Vec<Write> = (0..20u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 2, Some(i))],
        })
        .collect();
    append_writes(&log, &writes, 400);
    let first = dir.path().join("x-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let listing = |d: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files_before = listing(&dir.path().join("x-0"));
    let result = manager.clean_now("x", 0);
    assert!(
        matches!(result, Err(LogError::Corruption { .. })),
        "{result:?}"
    );
    assert_eq!(std::fs::read(&first).unwrap(), bytes, "data untouched");
    assert_eq!(listing(&dir.path().join("x-0")), files_before);
    let stats = manager.cleaner_stats();
    assert_eq!(stats.errors_total, 1);
    assert!(stats.partitions[0].uncleanable);
    assert_eq!(stats.records_removed_total, 0);
}

#[test]
fn a_stopping_manager_aborts_a_pass_without_leaving_files() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager.set_cleaner_config(CleanerConfig {
        io_bytes_per_second_max: 1 << 30,
        backoff_ms: 3_600_000,
        ..CleanerConfig::default()
    });
    compacted(&manager, "ab", 400, &[]);
    let log = manager.partition("ab", 0).unwrap();
    let writes: Vec<Write> = (0..10u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(i % 2, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    manager
        .shared
        .cleaner
        .abort
        .store(true, std::sync::atomic::Ordering::Release);
    assert!(matches!(
        manager.clean_now("ab", 0),
        Err(LogError::ShutDown)
    ));
    assert_eq!(read_records(&log), model);
    assert_eq!(manager.cleaner_stats().errors_total, 0);
    let strays = std::fs::read_dir(dir.path().join("ab-0"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".cleaned") || name.ends_with(".swap") || name.ends_with(".deleted")
        })
        .count();
    assert_eq!(strays, 0);
}

#[test]
fn an_io_error_at_any_swap_step_is_repaired_in_place() {
    let writes: Vec<Write> = (0..30u8)
        .map(|i| Write {
            codec: Compression::Zstd,
            records: vec![(i % 3, Some(i)), ((i + 2) % 4, Some(i))],
        })
        .collect();
    for step in 1..=4u8 {
        let dir = test_dir();
        let manager = open(dir.path());
        quiet_cleaner(&manager, 1 << 20);
        compacted(&manager, "c", 400, &[]);
        let log = manager.partition("c", 0).unwrap();
        let (before, after) = crash_fixture(&manager, &log, &writes);
        manager.fail_swap_after(step);
        assert!(manager.clean_now("c", 0).is_err(), "step {step}");
        // Still serving, without a restart: the old records before the commit point, the
        // new ones from it.
        let expected = if step >= 3 { &after } else { &before };
        assert_eq!(&read_records(&log), expected, "I/O error after step {step}");
        let strays = std::fs::read_dir(dir.path().join("c-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".deleted") || n.contains(".cleaned") || n.contains(".swap"))
            .count();
        assert_eq!(strays, 0, "step {step}");
        manager.fail_swap_after(0);
        manager.clean_now("c", 0).unwrap();
        assert_eq!(read_records(&log), after, "step {step}, cleaned again");
        drop(log);
        manager.shutdown().unwrap();
        drop(manager);
        let manager = open(dir.path());
        let log = manager.partition("c", 0).unwrap();
        assert_eq!(read_records(&log), after, "step {step}, reopened");
    }
}
