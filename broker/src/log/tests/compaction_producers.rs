//! Log compaction of producers' batches: transactional batches, and each idempotent
//! producer's last sequence kept for the produce path after a restart.

use runnel_protocol::batch::Compression;

use super::basic::{batches_of, open, read_all, test_dir};
use super::compaction::{
    append_writes, clean_fully, compacted, latest_per_key, quiet_cleaner, read_records, Write,
};
use crate::log::PartitionLog;
use crate::producers::{tail_scan, BatchIdentity, BatchMetadata, Verdict};

/// A transactional batch of producer 7 at sequence 0 holding `records` (key, value).
fn transactional_batch(records: &[(&[u8], Option<&[u8]>)]) -> runnel_protocol::batch::RecordBatch {
    use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
    let fields = BatchFields {
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 0,
        transactional: true,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for (key, value) in records {
        let record = NewRecord {
            timestamp: 1,
            key: Some(key),
            value: *value,
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    runnel_protocol::batch::RecordBatch::parse(builder.finish().unwrap()).unwrap()
}

/// A transactional batch whose records no later record supersedes stays byte for byte.
/// (It no longer outlives later records of its keys: see
/// `a_deleted_key_never_comes_back_from_a_transactional_batch`.)
#[test]
fn transactional_batches_are_kept_as_they_are() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "tx", 400, &[]);
    let log = manager.partition("tx", 0).unwrap();
    let value = [1u8; 40];
    let transactional = transactional_batch(&[(&[9u8][..], Some(&value[..]))]);
    log.append(std::slice::from_ref(&transactional)).unwrap();
    let writes: Vec<Write> = (0..10u8)
        .map(|i| Write {
            codec: Compression::None,
            records: vec![(0, Some(i))],
        })
        .collect();
    let model = append_writes(&log, &writes, 400);
    manager.clean_now("tx", 0).unwrap();
    let seen = read_records(&log);
    assert_eq!(
        seen[0],
        (0, vec![9u8], Some(vec![1u8; 40])),
        "kept verbatim"
    );
    assert_eq!(&seen[1..], &latest_per_key(&model, false)[..]);
    let first = batches_of(log.read(0, 1).unwrap().records).remove(0);
    // Byte for byte from the magic on (the log patches the leader epoch before it).
    assert_eq!(
        first.as_bytes()[16..],
        transactional.as_bytes()[16..],
        "byte for byte"
    );
}

/// A key deleted after a transactional batch wrote it stays deleted once the tombstone is
/// gone: the transactional record is superseded like any other, and the batch, rebuilt
/// without it, stays transactional.
#[test]
fn a_deleted_key_never_comes_back_from_a_transactional_batch() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "txd", 400, &[]);
    let log = manager.partition("txd", 0).unwrap();
    let (deleted, kept) = ([2u8; 40], [3u8; 40]);
    let records: [(&[u8], Option<&[u8]>); 2] = [(&[0u8], Some(&deleted)), (&[9u8], Some(&kept))];
    log.append(&[transactional_batch(&records)]).unwrap();
    // A later, non-transactional tombstone of key 0.
    let tombstone = [Write {
        codec: Compression::None,
        records: vec![(0, None)],
    }];
    let model = append_writes(&log, &tombstone, 400);
    // Past the tombstone horizon (delete.retention.ms = 0): the tombstone goes too.
    clean_fully(&manager, &log, "txd");
    let seen = read_records(&log);
    assert!(
        seen.iter().all(|(_, key, _)| key != &[0u8]),
        "key 0 came back: {seen:?}"
    );
    let mut expected = vec![(1, vec![9u8], Some(kept.to_vec()))];
    expected.extend(latest_per_key(&model, true));
    assert_eq!(seen, expected);
    let first = batches_of(log.read(0, 1).unwrap().records).remove(0);
    assert!(first.is_transactional() && first.producer_id() == 7);
    assert_eq!((first.base_offset(), first.last_offset()), (0, 1));
}

/// A batch of `keys` (value "v") from producer `producer_id` starting at sequence
/// `first_seq`; `-1, -1` is a producer without idempotence.
fn producer_batch(
    producer_id: i64,
    first_seq: i32,
    keys: &[&[u8]],
) -> runnel_protocol::batch::RecordBatch {
    use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};
    let fields = BatchFields {
        producer_id,
        producer_epoch: if producer_id < 0 { -1 } else { 0 },
        base_sequence: first_seq,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for key in keys {
        let record = NewRecord {
            timestamp: 1,
            key: Some(key),
            value: Some(b"v"),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    runnel_protocol::batch::RecordBatch::parse(builder.finish().unwrap()).unwrap()
}

/// Producer `producer_id`'s batch of sequences `first_seq..=last_seq`, as the produce path
/// checks it.
fn identity(producer_id: i64, first_seq: i32, last_seq: i32) -> Option<BatchIdentity> {
    Some(BatchIdentity {
        producer_id,
        epoch: 0,
        first_seq,
        last_seq,
    })
}

/// (base offset, last offset, record count) of `producer_id`'s batches in the log.
fn batches_of_producer(log: &PartitionLog, producer_id: i64) -> Vec<(i64, i64, i32)> {
    read_all(log)
        .iter()
        .filter(|batch| batch.producer_id() == producer_id)
        .map(|batch| {
            (
                batch.base_offset(),
                batch.last_offset(),
                batch.record_count(),
            )
        })
        .collect()
}

/// Filler batches of unique keys, so the segments before them are sealed and cleanable.
fn roll_past(log: &PartitionLog, tag: u8) {
    for i in 0..6u8 {
        log.append(&[producer_batch(-1, -1, &[&[tag, i][..]])])
            .unwrap();
    }
}

/// After a restart the produce path reads each producer's last sequence back from the
/// header of its last batch (base sequence + last offset delta, `producers::tail_scan`).
/// Cleaning keeps that: a rebuilt batch keeps its last offset delta, and a producer's last
/// batch whose records are all superseded stays as an empty batch, as Kafka's cleaner does;
/// once the producer's newer batch is cleaned too, the empty one goes.
#[test]
fn cleaning_keeps_each_idempotent_producers_last_sequence() {
    let dir = test_dir();
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    compacted(&manager, "p", 200, &[]);
    let log = manager.partition("p", 0).unwrap();
    // Producer 7: sequences 0..=1 (a, b) at offsets 0..=1. Producer 8: sequence 0 (e) at
    // offset 2, then 1..=2 (c, d) at 3..=4. Another producer then overwrites b, c and d.
    log.append(&[producer_batch(7, 0, &[b"a", b"b"])]).unwrap();
    log.append(&[producer_batch(8, 0, &[b"e"])]).unwrap();
    log.append(&[producer_batch(8, 1, &[b"c", b"d"])]).unwrap();
    log.append(&[producer_batch(-1, -1, &[b"b", b"c", b"d"])])
        .unwrap();
    roll_past(&log, b'x');
    let next_batches_accepted = |log: &PartitionLog, next_of_8: i32| {
        // An expiration no producer reaches: the records are from 1970.
        let producers = tail_scan::rebuild(log, 0, i64::MAX).unwrap();
        assert_eq!(producers.check(&[identity(7, 2, 2)]), Ok(Verdict::Append));
        let next = next_of_8;
        assert_eq!(
            producers.check(&[identity(8, next, next)]),
            Ok(Verdict::Append)
        );
        producers
    };
    next_batches_accepted(&log, 3);
    manager.clean_now("p", 0).unwrap();
    assert_eq!(
        batches_of_producer(&log, 7),
        vec![(0, 1, 1)],
        "rebuilt without b, its last offset kept"
    );
    assert_eq!(
        batches_of_producer(&log, 8),
        vec![(2, 2, 1), (3, 4, 0)],
        "the last batch kept as a header"
    );
    // What a restart rebuilds: the producers' next batches are in sequence, and a retry of
    // producer 8's last batch is still answered as a duplicate.
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(dir.path());
    quiet_cleaner(&manager, 1 << 20);
    let log = manager.partition("p", 0).unwrap();
    let producers = next_batches_accepted(&log, 3);
    let retry = BatchMetadata {
        first_seq: 1,
        last_seq: 2,
        base_offset: 3,
        last_offset: 4,
    };
    assert_eq!(
        producers.check(&[identity(8, 1, 2)]),
        Ok(Verdict::Duplicate(retry))
    );
    // Producer 8's next batch, cleaned too: the empty batch is no longer its last, and goes.
    let appended = log.append(&[producer_batch(8, 3, &[b"f"])]).unwrap();
    roll_past(&log, b'y');
    manager.clean_now("p", 0).unwrap();
    let base = appended.base_offset;
    assert_eq!(
        batches_of_producer(&log, 8),
        vec![(2, 2, 1), (base, base, 1)]
    );
    next_batches_accepted(&log, 4);
}
