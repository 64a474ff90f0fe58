//! Retention by time and size, DeleteRecords, and the log start offset across restarts.

use std::collections::BTreeMap;

use super::basic::{batch, batches_of, open, overrides, test_dir};
use crate::log::{now_ms, LogError};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[test]
fn time_retention_deletes_old_sealed_segments_only() {
    let dir = test_dir();
    let manager = open(dir.path());
    let topic = overrides(&[
        ("segment.bytes", "300"),
        ("retention.ms", &DAY_MS.to_string()),
    ]);
    manager.create_topic("t", 1, topic, false).unwrap();
    let log = manager.partition("t", 0).unwrap();
    let now = now_ms();
    for _ in 0..10 {
        log.append(&[batch(1, 200, now - 3 * DAY_MS)]).unwrap();
    }
    for _ in 0..3 {
        log.append(&[batch(1, 200, now)]).unwrap();
    }
    let segments = log.segment_count();
    manager.enforce_retention(now).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.segment_count(), segments - 10);
    assert!(matches!(
        log.read(9, 1000),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        batches_of(log.read(10, 1000).unwrap().records)[0].base_offset(),
        10
    );
    // The active segment is never deleted, however old.
    manager.enforce_retention(now + 10 * DAY_MS).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 13);
    drop(log);
    drop(manager);
    let manager = open(dir.path());
    let log = manager.partition("t", 0).unwrap();
    assert_eq!(log.log_start_offset(), 12);
}

#[test]
fn size_retention_keeps_the_newest_bytes() {
    let dir = test_dir();
    let manager = open(dir.path());
    let topic = overrides(&[
        ("segment.bytes", "300"),
        ("retention.bytes", "1000"),
        ("retention.ms", "-1"),
    ]);
    manager.create_topic("s", 1, topic, false).unwrap();
    let log = manager.partition("s", 0).unwrap();
    for _ in 0..20 {
        log.append(&[batch(1, 200, now_ms())]).unwrap();
    }
    manager.enforce_retention(now_ms()).unwrap();
    // Kafka keeps at least retention.bytes: one more deletion would go below it.
    assert!(log.size_bytes() >= 1000, "{} bytes left", log.size_bytes());
    assert!(log.size_bytes() - 261 < 1000, "kept more than needed");
    assert_eq!(log.size_bytes(), 4 * 261);
    assert_eq!(log.log_start_offset(), 20 - log.segment_count() as i64);
}

#[test]
fn compact_only_disables_retention() {
    let dir = test_dir();
    let manager = open(dir.path());
    let topic = overrides(&[
        ("segment.bytes", "300"),
        ("retention.ms", "1"),
        ("cleanup.policy", "compact"),
    ]);
    manager.create_topic("c", 1, topic, false).unwrap();
    let log = manager.partition("c", 0).unwrap();
    for _ in 0..5 {
        log.append(&[batch(1, 200, 1)]).unwrap();
    }
    manager.enforce_retention(now_ms()).unwrap();
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.segment_count(), 5);
}

#[test]
fn delete_records_moves_the_start_and_survives_restart() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("d", 1, overrides(&[("segment.bytes", "300")]), false)
        .unwrap();
    let log = manager.partition("d", 0).unwrap();
    for _ in 0..6 {
        log.append(&[batch(2, 200, 1)]).unwrap();
    }
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    assert_eq!(log.delete_records_before(3).unwrap(), 5, "never moves back");
    assert!(matches!(
        log.read(4, 1000),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Offset 5 is inside the batch [4, 5]: that batch is still returned whole.
    assert_eq!(
        batches_of(log.read(5, 1).unwrap().records)[0].base_offset(),
        4
    );
    assert_eq!(
        log.segment_count(),
        4,
        "segments wholly below the start are gone"
    );
    assert!(matches!(
        log.delete_records_before(13),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    manager.shutdown().unwrap();
    drop(log);
    drop(manager);
    let manager = open(dir.path());
    let log = manager.partition("d", 0).unwrap();
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.delete_records_before(-1).unwrap(), 12);
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(12, 100).unwrap().records.is_empty());
    assert_eq!(log.append(&[batch(1, 1, 1)]).unwrap().base_offset, 12);
    let _ = BTreeMap::<String, String>::new();
}

#[test]
fn log_append_time_topics_stamp_batches() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic(
            "l",
            1,
            overrides(&[("message.timestamp.type", "LogAppendTime")]),
            false,
        )
        .unwrap();
    let log = manager.partition("l", 0).unwrap();
    let before = now_ms();
    let info = log.append(&[batch(2, 30, 5)]).unwrap();
    assert!(info.log_append_time_ms >= before);
    let stored = &batches_of(log.read(0, 1000).unwrap().records)[0];
    assert!(stored.verify_crc().is_ok());
    assert_eq!(stored.max_timestamp(), info.log_append_time_ms);
    assert_eq!(
        stored.timestamp_type(),
        runnel_protocol::batch::TimestampType::LogAppendTime
    );
    let found = log.offset_for_timestamp(before).unwrap().unwrap();
    assert_eq!(found.offset, 0);
}

/// A crash inside DeleteTopic after its metadata record was committed, before the
/// partition's checkpoint entries were removed, must not hand the old log start offset to a
/// topic re-created under the same name: entries of partitions the metadata log does not
/// have are dropped at open.
#[test]
fn a_topic_recreated_after_a_crash_mid_delete_starts_at_zero() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("d", 1, overrides(&[("segment.bytes", "300")]), false)
        .unwrap();
    let log = manager.partition("d", 0).unwrap();
    for _ in 0..6 {
        log.append(&[batch(2, 200, 1)]).unwrap();
    }
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    drop(log);
    let log_starts = dir.path().join(crate::log::checkpoint::LOG_START_FILE);
    let before_the_delete = std::fs::read(&log_starts).unwrap();
    manager.delete_topic("d").unwrap();
    manager.shutdown().unwrap();
    drop(manager);
    // As if the process had died right after the DeleteTopic record.
    std::fs::write(&log_starts, before_the_delete).unwrap();
    let manager = open(dir.path());
    let text = std::fs::read_to_string(&log_starts).unwrap();
    assert!(!text.contains("d 0"), "stale entry kept: {text:?}");
    manager
        .create_topic("d", 1, overrides(&[("segment.bytes", "300")]), false)
        .unwrap();
    let log = manager.partition("d", 0).unwrap();
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.append(&[batch(1, 10, 1)]).unwrap().base_offset, 0);
}

/// Segment 0 of a new topic `name` holds four batches one day apart, the newest written
/// `now_ms` (offset 3) and so not expired under `retention.ms` = one day; segment 1 is active.
fn write_aging_segment(manager: &crate::log::LogManager, name: &str, now_ms: i64) {
    let settings = overrides(&[
        ("segment.bytes", "1000"),
        ("retention.ms", &DAY_MS.to_string()),
    ]);
    manager.create_topic(name, 1, settings, false).unwrap();
    let log = manager.partition(name, 0).unwrap();
    for age_days in [3, 2, 1, 0] {
        log.append(&[batch(1, 100, now_ms - age_days * DAY_MS)])
            .unwrap();
    }
    // 4 × 161 bytes + 561 > segment.bytes: this one rolls.
    log.append(&[batch(1, 500, now_ms)]).unwrap();
    assert_eq!(log.segment_count(), 2);
}

/// Segment 0 is still there and a timestamp lookup past its oldest entries finds offset 3.
fn assert_newest_records_kept(manager: &crate::log::LogManager, name: &str, now_ms: i64) {
    manager.enforce_retention(now_ms).unwrap();
    let log = manager.partition(name, 0).unwrap();
    assert_eq!(
        log.log_start_offset(),
        0,
        "nothing in segment 0 expired yet"
    );
    assert_eq!(log.segment_count(), 2);
    let found = log.offset_for_timestamp(now_ms - DAY_MS / 2).unwrap();
    assert_eq!(found.map(|t| t.offset), Some(3));
}

/// A rebuild after `segment.index.bytes` was lowered must index every batch the segment
/// holds: a time index cut to the new capacity made a later start take the segment's max
/// timestamp from its oldest batch, and retention deleted unexpired records.
#[test]
fn lowering_segment_index_bytes_never_cuts_a_rebuilt_time_index() {
    let dir = test_dir();
    let now = now_ms();
    let manager = open(dir.path());
    write_aging_segment(&manager, "i", now);
    let lowered = overrides(&[
        ("segment.bytes", "1000"),
        ("retention.ms", &DAY_MS.to_string()),
        ("segment.index.bytes", "12"),
    ]);
    manager.set_topic_overrides("i", lowered, false).unwrap();
    manager.shutdown().unwrap();
    drop(manager);
    // Missing indexes (a clean start: nothing else is rebuilt): the first use rebuilds
    // them, at the lowered capacity.
    let stem = dir.path().join("i-0").join("00000000000000000000");
    std::fs::remove_file(stem.with_extension("index")).unwrap();
    std::fs::remove_file(stem.with_extension("timeindex")).unwrap();
    let manager = open(dir.path());
    assert_newest_records_kept(&manager, "i", now);
    manager.shutdown().unwrap();
    drop(manager);
    // The next clean start loads the rebuilt indexes as they were written.
    let manager = open(dir.path());
    assert_newest_records_kept(&manager, "i", now);
    let time_index_bytes = std::fs::metadata(stem.with_extension("timeindex"))
        .unwrap()
        .len();
    assert_eq!(time_index_bytes, 4 * 12, "one entry per batch");
}

/// A time index already cut short on disk (by the rebuild above before it was fixed) is
/// sane in every other way; it must be rebuilt, not trusted.
#[test]
fn a_time_index_cut_short_on_disk_is_rebuilt_not_trusted() {
    let dir = test_dir();
    let now = now_ms();
    let manager = open(dir.path());
    write_aging_segment(&manager, "c", now);
    manager.shutdown().unwrap();
    drop(manager);
    let time_index = dir
        .path()
        .join("c-0")
        .join("00000000000000000000.timeindex");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&time_index)
        .unwrap()
        .set_len(12)
        .unwrap();
    let manager = open(dir.path());
    assert_newest_records_kept(&manager, "c", now);
}
