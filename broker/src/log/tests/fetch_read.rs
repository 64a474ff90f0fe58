//! `PartitionLog::fetch_read`: large batches in the cached tail are left in the file (for
//! `sendfile`), with the same bytes and limits a copied read has.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::basic::{batch, batches_of, open, overrides, test_dir};
use crate::log::{FetchRecords, LogManager, LogManagerConfig, PartitionLog};

/// A record count per batch that differs by batch, so counts are checked, not assumed.
fn records_in(i: usize) -> i32 {
    1 + (i % 3) as i32
}

/// Appends `count` batches of `payload_bytes` each.
fn fill(log: &PartitionLog, count: usize, payload_bytes: usize) {
    for i in 0..count {
        log.append(&[batch(records_in(i), payload_bytes, i as i64)])
            .unwrap();
    }
}

/// Topic `t` with one partition on tmpfs (see `test_dir`), its segments `segment_bytes` large.
fn one_partition(segment_bytes: &str) -> (tempfile::TempDir, Arc<LogManager>, Arc<PartitionLog>) {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic(
            "t",
            1,
            overrides(&[("segment.bytes", segment_bytes)]),
            false,
        )
        .unwrap();
    let log = manager.partition("t", 0).unwrap();
    (dir, manager, log)
}

/// The bytes of a fetch read, wherever they are.
fn bytes_of(records: &FetchRecords) -> Bytes {
    match records {
        FetchRecords::Copied(bytes) => bytes.clone(),
        FetchRecords::InFile(slice) => slice.read_bytes().unwrap(),
    }
}

#[test]
fn large_batches_stay_in_the_file_with_the_bytes_a_copied_read_returns() {
    let (_dir, _manager, log) = one_partition("200000");
    fill(&log, 24, 20 * 1024);
    assert!(log.segment_count() > 1);
    let mut offset = 0;
    let mut batches_seen = 0;
    while offset < log.log_end_offset() {
        let read = log.fetch_read(offset, 70 * 1024, true).unwrap();
        let FetchRecords::InFile(slice) = &read.records else {
            panic!("20 KiB batches are left in the file: {:?}", read.records);
        };
        let copied = log.read(offset, 70 * 1024).unwrap().records;
        assert_eq!(slice.read_bytes().unwrap(), copied, "at offset {offset}");
        let batches = batches_of(copied);
        assert!(
            batches.len() <= 3,
            "within the limit: {} batches",
            batches.len()
        );
        let counted: i64 = batches.iter().map(|b| i64::from(b.record_count())).sum();
        assert_eq!(slice.record_count, counted as u64);
        assert_eq!(read.high_watermark, log.log_end_offset());
        batches_seen += batches.len();
        offset = batches.last().unwrap().next_offset();
    }
    assert_eq!(batches_seen, 24);
}

#[test]
fn only_the_first_partition_of_a_fetch_gets_a_batch_larger_than_its_limit() {
    let (_dir, _manager, log) = one_partition("1073741824");
    fill(&log, 3, 20 * 1024);
    let first = log.fetch_read(0, 10 * 1024, true).unwrap();
    assert_eq!(batches_of(bytes_of(&first.records)).len(), 1);
    let later = log.fetch_read(0, 10 * 1024, false).unwrap();
    assert_eq!(later.records.len_bytes(), 0);
    assert_eq!(later.high_watermark, log.log_end_offset());
    // Batches hold offsets [0], [1, 2], [3, 5].
    let two = log.fetch_read(2, 45 * 1024, false).unwrap();
    let batches = batches_of(bytes_of(&two.records));
    assert_eq!(batches.len(), 2, "the batch holding offset 2, and the next");
    assert_eq!(batches[0].base_offset(), 1);
}

#[test]
fn small_batches_are_copied_and_trimmed_to_whole_batches_within_the_limit() {
    let (_dir, _manager, log) = one_partition("1073741824");
    fill(&log, 10, 1000);
    let batch_bytes = log.read(0, 1).unwrap().records.len();
    let read = log.fetch_read(0, batch_bytes * 3 + 10, false).unwrap();
    let FetchRecords::Copied(bytes) = &read.records else {
        panic!("small batches are copied");
    };
    assert_eq!(batches_of(bytes.clone()).len(), 3);
    assert_eq!(
        log.fetch_read(0, batch_bytes - 1, false)
            .unwrap()
            .records
            .len_bytes(),
        0
    );
    let first = log.fetch_read(0, batch_bytes - 1, true).unwrap();
    assert_eq!(batches_of(bytes_of(&first.records)).len(), 1);
    let end = log.log_end_offset();
    assert_eq!(
        log.fetch_read(end, 1 << 20, true)
            .unwrap()
            .records
            .len_bytes(),
        0
    );
}

#[test]
fn a_slice_spans_a_bounded_number_of_batches() {
    let (_dir, _manager, log) = one_partition("1073741824");
    fill(&log, 70, 16 * 1024);
    let read = log.fetch_read(0, 8 << 20, true).unwrap();
    let FetchRecords::InFile(slice) = &read.records else {
        panic!("16 KiB batches are left in the file");
    };
    assert_eq!(batches_of(slice.read_bytes().unwrap()).len(), 64);
}

#[test]
fn reads_behind_the_cached_tail_are_copied_so_their_pages_can_be_dropped() {
    // On disk, not tmpfs: pages are dropped from the page cache only there.
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(LogManagerConfig {
        page_cache_bytes: 256 * 1024,
        ..LogManagerConfig::new(dir.path())
    })
    .unwrap();
    manager
        .create_topic("t", 1, BTreeMap::new(), false)
        .unwrap();
    let log = manager.partition("t", 0).unwrap();
    fill(&log, 64, 20 * 1024);
    let cold = log.fetch_read(0, 64 * 1024, true).unwrap();
    assert!(matches!(cold.records, FetchRecords::Copied(_)));
    let hot = log
        .fetch_read(log.log_end_offset() - 1, 64 * 1024, true)
        .unwrap();
    assert!(matches!(hot.records, FetchRecords::InFile(_)));
    assert_eq!(batches_of(bytes_of(&cold.records)).len(), 3);
}

#[test]
fn a_read_at_the_end_is_answered_without_a_snapshot_only_once_the_log_is_open() {
    let (dir, manager, log) = one_partition("200000");
    fill(&log, 3, 100);
    let end = log.log_end_offset();
    let at_end = log
        .read_at_end(end)
        .expect("an open log answers a read at its end");
    assert_eq!((at_end.high_watermark, at_end.log_start_offset), (end, 0));
    assert!(bytes_of(&at_end.records).is_empty());
    assert!(log.read_at_end(end - 1).is_none(), "only at the end");
    manager.shutdown().unwrap();
    drop((log, manager));

    // Reopened, the log loads on first use: until then its published end is 0, which must
    // not pass for "nothing at offset 0" (`partition` loads it; the flusher, the HTTP API and
    // metrics hold logs not loaded).
    let manager = open(dir.path());
    let log = manager.partition_unopened("t", 0).unwrap();
    assert!(log.read_at_end(0).is_none(), "not loaded yet");
    let read = log.fetch_read(0, 1 << 20, true).unwrap();
    assert_eq!(batches_of(bytes_of(&read.records)).len(), 3);
    assert_eq!(read.high_watermark, end);
    assert!(log.read_at_end(end).is_some(), "loaded by the read");
    log.delete_records_before(end).unwrap();
    let moved = log.read_at_end(end).unwrap();
    assert_eq!(moved.log_start_offset, end, "a moved log start is seen");
    manager.shutdown().unwrap();
    assert!(
        log.read_at_end(end).is_none(),
        "a closed log reads normally (its error)"
    );
}

/// Between an append's publishing its records (and counting their bytes, which a long poll
/// compares) and its announcing the new end on the watch, a read at the old end must find
/// the records: a long poll that counted their bytes would not read again until the next
/// append. Simulated by setting the watch back to the old end.
#[test]
fn a_read_at_the_end_finds_records_published_but_not_yet_announced() {
    let (_dir, _manager, log) = one_partition("200000");
    fill(&log, 2, 100);
    let before = log.log_end_offset();
    let appended_before = log.appended_bytes();
    fill(&log, 1, 100);
    log.end_tx.send_replace(before);
    assert!(log.appended_bytes() > appended_before);
    assert!(
        log.read_at_end(before).is_none(),
        "records past the announced end"
    );
    let read = log.fetch_read(before, 1 << 20, true).unwrap();
    assert_eq!(batches_of(bytes_of(&read.records)).len(), 1);
}
