//! Storage throughput: the same bytes through a `PartitionLog` and through plain file I/O.
//!
//! `cargo bench -p runnel-broker --bench log_throughput` — 1 KiB records in 16 KiB batches,
//! 1 GiB per phase by default. `RUNNEL_BENCH_BYTES` (e.g. `256M`, `2G`) sets the size,
//! `RUNNEL_BENCH_DIR` the directory (default: a temp dir under `target/`), which must be on
//! the disk you mean to measure. Phases: append vs `write_all`; read in 1 MiB chunks vs
//! plain reads; append + `wait_durable` every 1 MiB vs `write_all` + `fsync` every 1 MiB.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use runnel_broker::log::{LogManager, LogManagerConfig, PartitionLog};
use runnel_protocol::batch::{build_raw_batch, BatchSplitter, RawBatchFields, RecordBatch};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
const CHUNK_BYTES: usize = 1 << 20;
const DEFAULT_TOTAL_BYTES: u64 = 1 << 30;

fn total_bytes() -> u64 {
    let Ok(text) = std::env::var("RUNNEL_BENCH_BYTES") else {
        return DEFAULT_TOTAL_BYTES;
    };
    let text = text.trim().to_ascii_uppercase();
    let (digits, unit) = match text.chars().last() {
        Some('K') => (&text[..text.len() - 1], 1u64 << 10),
        Some('M') => (&text[..text.len() - 1], 1 << 20),
        Some('G') => (&text[..text.len() - 1], 1 << 30),
        _ => (&text[..], 1),
    };
    digits
        .parse::<u64>()
        .map_or(DEFAULT_TOTAL_BYTES, |n| n * unit)
}

/// One 16 KiB-payload batch (16 records of 1 KiB, opaque to the log).
fn sample_batch() -> RecordBatch {
    let payload = vec![0x5a; RECORD_BYTES * RECORDS_PER_BATCH];
    let raw = build_raw_batch(&RawBatchFields {
        last_offset_delta: RECORDS_PER_BATCH as i32 - 1,
        record_count: RECORDS_PER_BATCH as i32,
        base_timestamp: 1,
        max_timestamp: 1,
        records: &payload,
        ..RawBatchFields::default()
    });
    RecordBatch::parse(raw).expect("valid batch")
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / seconds
}

struct Row {
    name: &'static str,
    log_mb_s: f64,
    raw_mb_s: f64,
}

fn raw_write(path: &Path, batch: &[u8], batches: u64, fsync_every_bytes: Option<u64>) -> f64 {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open");
    let start = Instant::now();
    let mut since_sync = 0u64;
    for _ in 0..batches {
        file.write_all(batch).expect("write");
        since_sync += batch.len() as u64;
        if fsync_every_bytes.is_some_and(|every| since_sync >= every) {
            file.sync_data().expect("fsync");
            since_sync = 0;
        }
    }
    if fsync_every_bytes.is_some() {
        file.sync_data().expect("fsync");
    }
    start.elapsed().as_secs_f64()
}

fn raw_read(path: &Path) -> (u64, f64) {
    let mut file = File::open(path).expect("open");
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut read = 0u64;
    let start = Instant::now();
    loop {
        let n = file.read(&mut buffer).expect("read");
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    (read, start.elapsed().as_secs_f64())
}

fn log_append(
    log: &Arc<PartitionLog>,
    batch: &RecordBatch,
    batches: u64,
    durable_every_bytes: Option<u64>,
    runtime: &tokio::runtime::Runtime,
) -> f64 {
    let start = Instant::now();
    let mut since_sync = 0u64;
    for _ in 0..batches {
        let info = log.append(std::slice::from_ref(batch)).expect("append");
        since_sync += batch.size_bytes() as u64;
        if durable_every_bytes.is_some_and(|every| since_sync >= every) {
            runtime
                .block_on(log.wait_durable(info.last_offset + 1))
                .expect("durable");
            since_sync = 0;
        }
    }
    if durable_every_bytes.is_some() {
        runtime
            .block_on(log.wait_durable(log.log_end_offset()))
            .expect("durable");
    }
    start.elapsed().as_secs_f64()
}

fn log_read(log: &PartitionLog) -> (u64, f64) {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut read = 0u64;
    let start = Instant::now();
    while offset < end {
        let result = log.read(offset, CHUNK_BYTES).expect("read");
        read += result.records.len() as u64;
        let last = BatchSplitter::new(Bytes::clone(&result.records))
            .last()
            .expect("a batch");
        offset = last.expect("whole batches").next_offset();
    }
    (read, start.elapsed().as_secs_f64())
}

/// Flushes every dirty page (untimed) so each measurement starts from the same state.
fn settle() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

/// Rounds alternate which side goes first, so neither inherits the other's writeback.
const ROUNDS: usize = 4;

fn main() {
    let total = total_bytes();
    let batch = sample_batch();
    let batches = total.div_ceil(batch.size_bytes() as u64);
    let bytes = batches * batch.size_bytes() as u64;
    let base = match std::env::var_os("RUNNEL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")),
    }
    .expect("temp dir");
    println!(
        "log_throughput: {batches} batches of {} bytes = {} MiB per phase, best of {ROUNDS}, in {}",
        batch.size_bytes(),
        bytes >> 20,
        base.path().display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let manager =
        LogManager::open(LogManagerConfig::new(base.path().join("data"))).expect("open log");
    let mut best = [
        Row {
            name: "append (page cache)",
            log_mb_s: 0.0,
            raw_mb_s: 0.0,
        },
        Row {
            name: "read 1 MiB chunks",
            log_mb_s: 0.0,
            raw_mb_s: 0.0,
        },
        Row {
            name: "append, flush.ms=max",
            log_mb_s: 0.0,
            raw_mb_s: 0.0,
        },
        Row {
            name: "append + fsync/1 MiB",
            log_mb_s: 0.0,
            raw_mb_s: 0.0,
        },
    ];
    for round in 0..ROUNDS {
        let topic = format!("bench-{round}");
        let durable_topic = format!("bench-durable-{round}");
        manager
            .create_topic(&topic, 1, Default::default(), false)
            .expect("topic");
        manager
            .create_topic(&durable_topic, 1, Default::default(), false)
            .expect("topic");
        let log = manager.partition(&topic, 0).expect("partition");
        let durable_log = manager.partition(&durable_topic, 0).expect("partition");
        let raw_path = base.path().join(format!("raw-{round}.bin"));
        let raw_durable_path = base.path().join(format!("raw-durable-{round}.bin"));
        let mut record = |i: usize, log_s: f64, raw_s: f64| {
            best[i].log_mb_s = best[i].log_mb_s.max(mb_per_s(bytes, log_s));
            best[i].raw_mb_s = best[i].raw_mb_s.max(mb_per_s(bytes, raw_s));
        };

        let log_first = round % 2 == 1;
        let raw_write_phase = |path: &Path, every: Option<u64>| {
            settle();
            raw_write(path, batch.as_bytes(), batches, every)
        };
        let log_write_phase = |log: &Arc<PartitionLog>, every: Option<u64>| {
            settle();
            log_append(log, &batch, batches, every, &runtime)
        };
        let (log_s, raw_s) = if log_first {
            (
                log_write_phase(&log, None),
                raw_write_phase(&raw_path, None),
            )
        } else {
            let raw_s = raw_write_phase(&raw_path, None);
            (log_write_phase(&log, None), raw_s)
        };
        record(0, log_s, raw_s);

        // The same without the background flush.ms fsync: the engine's own overhead.
        let lazy_topic = format!("bench-lazy-{round}");
        let lazy = BTreeMap::from([("flush.ms".to_string(), i64::MAX.to_string())]);
        manager
            .create_topic(&lazy_topic, 1, lazy, false)
            .expect("topic");
        let lazy_log = manager.partition(&lazy_topic, 0).expect("partition");
        let raw_lazy_path = base.path().join(format!("raw-lazy-{round}.bin"));
        let (log_s, raw_s) = if log_first {
            (
                log_write_phase(&lazy_log, None),
                raw_write_phase(&raw_lazy_path, None),
            )
        } else {
            let raw_s = raw_write_phase(&raw_lazy_path, None);
            (log_write_phase(&lazy_log, None), raw_s)
        };
        record(2, log_s, raw_s);
        drop(lazy_log);
        manager.delete_topic(&lazy_topic).expect("delete");
        std::fs::remove_file(&raw_lazy_path).expect("remove");

        settle();
        let ((log_read_bytes, log_s), (raw_read_bytes, raw_s)) = if log_first {
            (log_read(&log), raw_read(&raw_path))
        } else {
            let raw = raw_read(&raw_path);
            (log_read(&log), raw)
        };
        assert_eq!(raw_read_bytes, bytes);
        assert_eq!(log_read_bytes, bytes);
        record(1, log_s, raw_s);

        let every = Some(CHUNK_BYTES as u64);
        let (log_s, raw_s) = if log_first {
            (
                log_write_phase(&durable_log, every),
                raw_write_phase(&raw_durable_path, every),
            )
        } else {
            let raw_s = raw_write_phase(&raw_durable_path, every);
            (log_write_phase(&durable_log, every), raw_s)
        };
        record(3, log_s, raw_s);
        drop((log, durable_log));
        manager.delete_topic(&topic).expect("delete");
        manager.delete_topic(&durable_topic).expect("delete");
        std::fs::remove_file(&raw_path).expect("remove");
        std::fs::remove_file(&raw_durable_path).expect("remove");
    }

    println!(
        "{:<22} {:>12} {:>12} {:>8} {:>8}",
        "phase", "log MB/s", "raw MB/s", "ratio", "target"
    );
    for row in &best {
        println!(
            "{:<22} {:>12.1} {:>12.1} {:>8.2} {:>8}",
            row.name,
            row.log_mb_s,
            row.raw_mb_s,
            row.log_mb_s / row.raw_mb_s,
            "0.80"
        );
    }
    println!("fsyncs by the log: {}", manager.fsync_count());
    manager.shutdown().expect("shutdown");
}
