//! Create, append, read, offsets, timestamp lookup and reopen through the public contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use runnel_protocol::batch::{
    build_raw_batch, BatchSplitter, Compression, RawBatchFields, RecordBatch,
};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};

use crate::log::{LogError, LogManager, LogManagerConfig, PartitionLog};

/// A batch of `records` records with `payload_bytes` of opaque record bytes.
pub(crate) fn batch(records: i32, payload_bytes: usize, max_timestamp: i64) -> RecordBatch {
    let payload = vec![0xab; payload_bytes];
    let raw = build_raw_batch(&RawBatchFields {
        base_offset: 0,
        last_offset_delta: records - 1,
        record_count: records,
        base_timestamp: max_timestamp,
        max_timestamp,
        records: &payload,
        ..RawBatchFields::default()
    });
    RecordBatch::parse(raw).unwrap()
}

/// A scratch directory, on tmpfs when there is one: these tests check behaviour, and
/// fsync on a shared disk (~7 ms each here) would dominate their run time.
pub(crate) fn test_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("runnel-log-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

pub(crate) fn open(dir: &std::path::Path) -> Arc<LogManager> {
    LogManager::open(LogManagerConfig::new(dir)).unwrap()
}

pub(crate) fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn batches_of(bytes: Bytes) -> Vec<RecordBatch> {
    BatchSplitter::new(bytes).map(|b| b.unwrap()).collect()
}

pub(crate) fn read_all(log: &PartitionLog) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20).unwrap();
        let batches = batches_of(read.records);
        assert!(!batches.is_empty());
        offset = batches.last().unwrap().next_offset();
        out.extend(batches);
    }
    out
}

#[test]
fn append_read_reopen() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("orders", 2, overrides(&[("segment.bytes", "1000")]), false)
        .unwrap();
    let log = manager.partition("orders", 1).unwrap();
    let first = log.append(&[batch(3, 100, 10), batch(2, 100, 20)]).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 4));
    for i in 0..20 {
        log.append(&[batch(1, 200, 30 + i)]).unwrap();
    }
    assert_eq!(log.log_end_offset(), 25);
    assert!(log.segment_count() > 1);
    let read = log.read(3, 1).unwrap();
    let batches = batches_of(read.records);
    assert_eq!(
        batches.len(),
        1,
        "at least one whole batch even when max_bytes is tiny"
    );
    assert_eq!(batches[0].base_offset(), 3);
    assert!(batches[0].verify_crc().is_ok());
    assert!(log.read(25, 100).unwrap().records.is_empty());
    assert!(matches!(
        log.read(26, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let found = log.offset_for_timestamp(35).unwrap().unwrap();
    assert_eq!(found.offset, 10);
    assert!(log.offset_for_timestamp(1000).unwrap().is_none());
    let before = read_all(&log);
    assert_eq!(before.len(), 22);
    manager.shutdown().unwrap();
    drop(log);
    drop(manager);
    let checkpoint =
        std::fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert!(checkpoint.starts_with("0\n"), "{checkpoint}");
    assert!(
        checkpoint.lines().any(|l| l == "orders 1 25"),
        "{checkpoint}"
    );
    assert!(dir.path().join(".runnel_clean_shutdown").exists());

    let manager = open(dir.path());
    assert!(!dir.path().join(".runnel_clean_shutdown").exists());
    let log = manager.partition("orders", 1).unwrap();
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(read_all(&log), before);
    let next = log.append(&[batch(1, 10, 99)]).unwrap();
    assert_eq!(next.base_offset, 25);
    drop(log);
    drop(manager);

    // Unclean (no shutdown): recovery keeps everything.
    let manager = open(dir.path());
    let log = manager.partition("orders", 1).unwrap();
    assert_eq!(log.log_end_offset(), 26);
    assert_eq!(read_all(&log).len(), 23);
}

#[test]
fn topics_admin() {
    let dir = test_dir();
    let manager = open(dir.path());
    assert!(matches!(
        manager.create_topic("bad/name", 1, BTreeMap::new(), false),
        Err(LogError::InvalidTopic(..))
    ));
    assert!(matches!(
        manager.create_topic("..", 1, BTreeMap::new(), false),
        Err(LogError::InvalidTopic(..))
    ));
    assert!(matches!(
        manager.create_topic("t", 0, BTreeMap::new(), false),
        Err(LogError::InvalidPartitions(_))
    ));
    assert!(matches!(
        manager.create_topic("t", 1, overrides(&[("nope", "1")]), false),
        Err(LogError::InvalidConfig(_))
    ));
    manager.create_topic("v", 1, BTreeMap::new(), true).unwrap();
    assert!(manager.topic("v").is_none());
    manager
        .create_topic("t", 1, BTreeMap::new(), false)
        .unwrap();
    assert!(matches!(
        manager.create_topic("t", 1, BTreeMap::new(), false),
        Err(LogError::TopicAlreadyExists(_))
    ));
    manager.create_partitions("t", 3, false).unwrap();
    assert!(matches!(
        manager.create_partitions("t", 2, false),
        Err(LogError::InvalidPartitions(_))
    ));
    manager
        .set_topic_overrides("t", overrides(&[("retention.ms", "5")]), false)
        .unwrap();
    manager
        .partition("t", 2)
        .unwrap()
        .append(&[batch(1, 1, 1)])
        .unwrap();
    assert!(manager.partition("t", 3).is_err());
    drop(manager);

    let manager = open(dir.path());
    let topic = manager.topic("t").unwrap();
    assert_eq!(topic.partitions, 3);
    assert_eq!(topic.config.retention_ms, 5);
    assert_eq!(manager.partition("t", 2).unwrap().log_end_offset(), 1);
    let id = manager.delete_topic("t").unwrap();
    assert_eq!(id, topic.id);
    assert!(!dir.path().join("t-2").exists());
    manager
        .create_topic("t", 1, BTreeMap::new(), false)
        .unwrap();
    assert_eq!(manager.partition("t", 0).unwrap().log_end_offset(), 0);
    assert_eq!(manager.topics().len(), 1);
}

#[test]
fn stray_compaction_and_deletion_files_are_resolved() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("s", 1, BTreeMap::new(), false)
        .unwrap();
    let log = manager.partition("s", 0).unwrap();
    log.append(&[batch(2, 50, 7)]).unwrap();
    let before = read_all(&log);
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let partition_dir = dir.path().join("s-0");
    let log_file = partition_dir.join("00000000000000000000.log");
    // A compaction that got as far as the swap: the .swap holds the new contents.
    std::fs::rename(
        &log_file,
        partition_dir.join("00000000000000000000.log.swap"),
    )
    .unwrap();
    std::fs::write(
        partition_dir.join("00000000000000000005.log.cleaned"),
        b"junk",
    )
    .unwrap();
    std::fs::write(
        partition_dir.join("00000000000000000009.log.deleted"),
        b"junk",
    )
    .unwrap();
    let manager = open(dir.path());
    let log = manager.partition("s", 0).unwrap();
    assert_eq!(read_all(&log), before);
    let mut names: Vec<String> = std::fs::read_dir(&partition_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex"
        ]
    );
}

#[test]
fn segment_ms_rolls_by_age_of_the_first_append() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("aged", 1, overrides(&[("segment.ms", "20")]), false)
        .unwrap();
    let log = manager.partition("aged", 0).unwrap();
    log.append(&[batch(1, 10, 1)]).unwrap();
    log.append(&[batch(1, 10, 2)]).unwrap();
    assert_eq!(log.segment_count(), 1);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let info = log.append(&[batch(1, 10, 3)]).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert!(dir
        .path()
        .join("aged-0")
        .join("00000000000000000002.log")
        .exists());
    assert_eq!(info.base_offset, 2);
    assert_eq!(read_all(&log).len(), 3);
}

/// One record of [`keyed_batch`]: (offset delta, timestamp, key, value; `None` = tombstone).
pub(crate) type TestRecord<'a> = (i32, i64, &'a [u8], Option<&'a [u8]>);

/// A real record batch (decodable records) with `compression`, built like a producer would.
pub(crate) fn keyed_batch(compression: Compression, records: &[TestRecord<'_>]) -> RecordBatch {
    let fields = BatchFields {
        compression,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for &(delta, timestamp, key, value) in records {
        let record = NewRecord {
            timestamp,
            key: Some(key),
            value,
            headers: &[],
        };
        builder.push_at(delta, &record).unwrap();
    }
    RecordBatch::parse(builder.finish().unwrap()).unwrap()
}

#[test]
fn timestamp_lookup_answers_per_record_inside_compressed_batches() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("ts", 1, overrides(&[]), false)
        .unwrap();
    let log = manager.partition("ts", 0).unwrap();
    let v: &[u8] = b"v";
    // Offsets 0..=3 (timestamps 10, 40, 20, 30) and 4..=5 (50, 60), both zstd.
    let first = [
        (0, 10, &b"a"[..], Some(v)),
        (1, 40, b"b", Some(v)),
        (2, 20, b"c", Some(v)),
        (3, 30, b"d", Some(v)),
    ];
    log.append(&[keyed_batch(Compression::Zstd, &first)])
        .unwrap();
    let second = [(0, 50, &b"e"[..], Some(v)), (1, 60, b"f", Some(v))];
    log.append(&[keyed_batch(Compression::Gzip, &second)])
        .unwrap();
    let at = |t| {
        log.offset_for_timestamp(t)
            .unwrap()
            .map(|f| (f.offset, f.timestamp))
    };
    assert_eq!(at(0), Some((0, 10)));
    assert_eq!(
        at(15),
        Some((1, 40)),
        "first record with ts >= 15 in offset order"
    );
    assert_eq!(at(40), Some((1, 40)));
    assert_eq!(
        at(45),
        Some((4, 50)),
        "none in the first batch: the next batch answers"
    );
    assert_eq!(at(55), Some((5, 60)));
    assert_eq!(at(61), None);
    // Below the log start, records are skipped even when their timestamp matches.
    log.delete_records_before(2).unwrap();
    assert_eq!(at(15), Some((2, 20)));
    assert_eq!(at(35), Some((4, 50)), "offset 1 is below the start");
}

#[test]
fn max_timestamp_lookup_reads_the_winning_segment_not_the_log() {
    let dir = test_dir();
    let manager = open(dir.path());
    // One batch per segment: every batch rolls the next one.
    manager
        .create_topic("max", 1, overrides(&[("segment.bytes", "100")]), false)
        .unwrap();
    let log = manager.partition("max", 0).unwrap();
    assert!(log.max_timestamp_record().unwrap().is_none(), "empty log");
    let v: &[u8] = b"v";
    let max = |log: &PartitionLog| {
        log.max_timestamp_record()
            .unwrap()
            .map(|f| (f.offset, f.timestamp))
    };
    // Offsets 0..=2 (10, 90, 20), 3..=4 (50, 90), 5 (30), 6..=7 (70, 80).
    log.append(&[keyed_batch(
        Compression::Zstd,
        &[
            (0, 10, b"a", Some(v)),
            (1, 90, b"b", Some(v)),
            (2, 20, b"c", Some(v)),
        ],
    )])
    .unwrap();
    log.append(&[keyed_batch(
        Compression::None,
        &[(0, 50, b"d", Some(v)), (1, 90, b"e", Some(v))],
    )])
    .unwrap();
    log.append(&[keyed_batch(Compression::None, &[(0, 30, b"f", Some(v))])])
        .unwrap();
    log.append(&[keyed_batch(
        Compression::Gzip,
        &[(0, 70, b"g", Some(v)), (1, 80, b"h", Some(v))],
    )])
    .unwrap();
    assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
    assert_eq!(max(&log), Some((1, 90)), "the earliest record on ties");
    // Sealed segments reopen with their indexes unloaded: the max comes back with them.
    manager.shutdown().unwrap();
    drop(log);
    drop(manager);
    let manager = open(dir.path());
    let log = manager.partition("max", 0).unwrap();
    assert_eq!(max(&log), Some((1, 90)), "after a reopen");
    // Below the log start the max record is gone: the first segment's live batches and the
    // later segments decide.
    log.delete_records_before(2).unwrap();
    assert_eq!(max(&log), Some((4, 90)), "offset 1 is below the start");
    log.delete_records_before(5).unwrap();
    assert_eq!(max(&log), Some((7, 80)));
    log.delete_records_before(8).unwrap();
    assert_eq!(max(&log), None, "nothing left");
}

/// A stored override this version cannot apply (here a name from a newer version) is left
/// out alone: the topic keeps its other overrides, `cleanup.policy=compact` above all. All
/// of them used to be dropped, turning a compacted topic into a `delete` one.
#[test]
fn a_stored_override_no_longer_valid_leaves_the_others_in_force() {
    use crate::log::metadata_log::{MetadataLog, MetadataRecord};
    let dir = test_dir();
    let kept = [("cleanup.policy", "compact"), ("retention.ms", "1000")];
    {
        let manager = open(dir.path());
        manager
            .create_topic("kept", 1, overrides(&kept), false)
            .unwrap();
        manager.shutdown().unwrap();
    }
    {
        let (mut metadata, _) = MetadataLog::open(dir.path()).unwrap();
        let mut stored = overrides(&kept);
        stored.insert("from.a.newer.version".to_owned(), "1".to_owned());
        stored.insert("segment.ms".to_owned(), "-5".to_owned());
        let record = MetadataRecord::SetOverrides {
            name: "kept".to_owned(),
            overrides: stored,
        };
        metadata.append(&record).unwrap();
    }
    let manager = open(dir.path());
    let info = manager.topic("kept").unwrap();
    assert!(info.config.cleanup_policy.compact && !info.config.cleanup_policy.delete);
    assert_eq!(info.config.retention_ms, 1000);
    assert_eq!(
        info.overrides,
        overrides(&kept),
        "only the overrides in force"
    );
    let log = manager.partition("kept", 0).unwrap();
    assert!(log.config().cleanup_policy.compact);
}

/// A change is made once its metadata record is fsynced; the snapshot that may follow is
/// housekeeping. A failed snapshot used to fail the change, which the next start applied
/// all the same (the client was told no, and the change was there after a restart), while
/// the running broker did not apply it at all.
#[test]
fn a_failed_metadata_snapshot_does_not_fail_the_change_it_follows() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("t", 1, BTreeMap::new(), false)
        .unwrap();
    // The snapshot's temporary file cannot be created while a directory holds its name.
    let blocker = dir.path().join("__cluster_metadata").join("metadata.tmp");
    std::fs::create_dir(&blocker).unwrap();
    // A valid 800 KB value: five of them take the metadata log past its snapshot size.
    let long_policy = vec!["delete"; 800_000 / 7].join(",");
    for retention_ms in 1..=6 {
        let settings = overrides(&[
            ("cleanup.policy", &long_policy),
            ("retention.ms", &retention_ms.to_string()),
        ]);
        manager.set_topic_overrides("t", settings, false).unwrap();
        assert_eq!(
            manager.topic("t").unwrap().config.retention_ms,
            retention_ms
        );
    }
    // Once the snapshot can be written again, it is.
    std::fs::remove_dir(&blocker).unwrap();
    let small = overrides(&[("retention.ms", "7")]);
    manager
        .set_topic_overrides("t", small.clone(), false)
        .unwrap();
    let metadata = dir.path().join("__cluster_metadata").join("metadata.log");
    assert!(std::fs::metadata(&metadata).unwrap().len() < 1 << 20);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(dir.path());
    assert_eq!(manager.topic("t").unwrap().overrides, small);
}

/// `segment.jitter.ms` (Kafka: each segment rolls a random part of it before `segment.ms`)
/// was refused as unknown. The draw is set by hand and the segment's first append moved
/// back in time, so no sleep decides the outcome.
#[test]
fn segment_jitter_rolls_a_segment_before_segment_ms() {
    let dir = test_dir();
    let manager = open(dir.path());
    let configs = overrides(&[("segment.ms", "100000"), ("segment.jitter.ms", "60000")]);
    manager.create_topic("jittered", 1, configs, false).unwrap();
    let log = manager.partition("jittered", 0).unwrap();
    log.append(&[batch(1, 10, 1)]).unwrap();
    let age_by = |first_ago_ms: i64, draw: u64| {
        let guard = log.state.lock();
        let mut segment = guard.as_ref().unwrap().active().lock();
        segment.first_append_ms = Some(crate::log::now_ms() - first_ago_ms);
        segment.roll_jitter_draw = draw;
    };
    // 50 s old, no jitter drawn: below segment.ms, no roll.
    age_by(50_000, 0);
    log.append(&[batch(1, 10, 2)]).unwrap();
    assert_eq!(log.segment_count(), 1);
    // 50 s old with 55 s of jitter drawn: due at 45 s, so this append starts a segment.
    age_by(50_000, 55_000);
    let info = log.append(&[batch(1, 10, 3)]).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(info.base_offset, 2);
}

/// `partitions_of` answers as `partition` would for each partition asked, in order (an
/// unknown topic or partition), and INCONSISTENT_TOPIC_ID for an id that is not the topic's.
#[test]
fn partitions_of_answers_each_partition_as_partition_does() {
    let dir = test_dir();
    let manager = open(dir.path());
    manager
        .create_topic("t", 3, BTreeMap::new(), false)
        .unwrap();
    manager.shutdown().unwrap();
    drop(manager);
    // Reopened, the partitions are not loaded until used (partitions open lazily).
    let manager = open(dir.path());
    assert!(!manager.partition_unopened("t", 2).unwrap().is_loaded());
    let id = manager.topic("t").unwrap().id;
    let asked = [2, 0, 7, -1];
    let found = manager.partitions_of("t", Some(id), &asked);
    let got: Vec<Result<i32, String>> = (found.iter())
        .map(|log| {
            log.as_ref()
                .map(|l| l.partition())
                .map_err(|e| format!("{e:?}"))
        })
        .collect();
    assert_eq!(got[..2], [Ok(2), Ok(0)]);
    for (at, p) in [(2, 7), (3, -1)] {
        let Err(single) = manager.partition("t", p) else {
            panic!("partition {p} of 3")
        };
        assert_eq!(got[at], Err(format!("{single:?}")));
    }
    assert!(
        found[0].as_ref().unwrap().is_loaded(),
        "opened, as partition() does"
    );
    let other_id = uuid::Uuid::from_u128(7);
    for log in manager.partitions_of("t", Some(other_id), &[0, 1]) {
        assert!(matches!(log, Err(LogError::InconsistentTopicId { .. })));
    }
    for log in manager.partitions_of("missing", None, &[0]) {
        assert!(matches!(log, Err(LogError::UnknownTopicOrPartition { .. })));
    }
    manager.delete_topic("t").unwrap();
    assert!(manager.partitions_of("t", None, &[0])[0].is_err());
}
