//! Readers racing appenders, rolls and DeleteRecords only ever see whole, valid batches with
//! contiguous offsets, or `OffsetOutOfRange` below the moving start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::basic::{batch, batches_of, open, overrides, test_dir};
use crate::log::LogError;

#[test]
fn readers_never_see_partial_or_invalid_batches() {
    let dir = test_dir();
    let manager = open(dir.path());
    let topic = overrides(&[("segment.bytes", "2000"), ("index.interval.bytes", "300")]);
    manager.create_topic("c", 1, topic, false).unwrap();
    let log = manager.partition("c", 0).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for seed in 0..2u64 {
        let (log, done) = (log.clone(), done.clone());
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut pick = seed;
            // Bounded by the writer finishing; each pass is one read.
            while !done.load(Ordering::Acquire) || reads < 100 {
                pick = pick
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let end = log.log_end_offset();
                let offset = (pick >> 33) as i64 % (end + 1);
                match log.read(offset, (pick % 5000) as usize + 1) {
                    Ok(result) => {
                        let batches = batches_of(result.records);
                        if offset < result.high_watermark {
                            assert!(!batches.is_empty());
                            assert!(
                                batches[0].base_offset() <= offset
                                    && offset <= batches[0].last_offset()
                            );
                        }
                        for pair in batches.windows(2) {
                            assert_eq!(pair[0].next_offset(), pair[1].base_offset());
                        }
                        for b in &batches {
                            b.verify_crc().unwrap();
                        }
                    }
                    Err(LogError::OffsetOutOfRange { .. }) => {}
                    Err(e) => panic!("read failed: {e}"),
                }
                reads += 1;
            }
        }));
    }
    for i in 0..2000i64 {
        let n = (i % 4) as i32 + 1;
        log.append(&[batch(n, (i as usize * 37) % 700, i)]).unwrap();
        if i % 500 == 499 {
            let start = log.log_end_offset() / 2;
            log.delete_records_before(start).unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().unwrap();
    }
    assert!(log.segment_count() > 1);
}

/// Appends copy their bytes outside the state lock (one at a time, under the append lock):
/// writers on several threads, rolls among them and readers meanwhile still give a log of
/// every batch once, whole, with contiguous offsets, and each append's offsets are its own.
#[test]
fn appends_from_several_threads_land_whole_and_contiguous() {
    let dir = test_dir();
    let manager = open(dir.path());
    let topic = overrides(&[("segment.bytes", "5000"), ("index.interval.bytes", "300")]);
    manager.create_topic("w", 1, topic, false).unwrap();
    let log = manager.partition("w", 0).unwrap();
    let (writers, appends) = (3i64, 300i64);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                for b in super::basic::read_all(&log) {
                    b.verify_crc().unwrap();
                }
            }
        })
    };
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut ranges = Vec::new();
                for i in 0..appends {
                    let records = ((w + i) % 3) as i32 + 1;
                    let info = log.append(&[batch(records, 200, w * 1000 + i)]).unwrap();
                    assert_eq!(info.last_offset - info.base_offset + 1, i64::from(records));
                    ranges.push((info.base_offset, info.last_offset));
                }
                ranges
            })
        })
        .collect();
    let mut ranges: Vec<(i64, i64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    done.store(true, Ordering::Release);
    reader.join().unwrap();
    ranges.sort();
    for pair in ranges.windows(2) {
        assert_eq!(
            pair[0].1 + 1,
            pair[1].0,
            "appends own disjoint, adjacent offsets"
        );
    }
    let all = super::basic::read_all(&log);
    assert_eq!(all.len() as i64, writers * appends);
    for (b, (base, last)) in all.iter().zip(&ranges) {
        assert_eq!((b.base_offset(), b.last_offset()), (*base, *last));
    }
    assert!(log.segment_count() > 1, "rolls happened among the appends");
}
