//! Log compaction across restarts: the cleaner's offset gaps survive an unclean restart
//! (with or without a recovery point) and its checkpoint is kept in Kafka's format.

use runnel_protocol::batch::Compression;

use super::basic::{keyed_batch, open, overrides, test_dir};
use super::compaction::{
    append_writes, clean_fully, compacted, latest_per_key, quiet_cleaner, read_records, Write,
};

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
