//! Storage throughput: the same bytes through a `PartitionLog` and through plain file I/O.
//!
//! `cargo bench -p runnel-broker --bench log_throughput` — 1 KiB records in 16 KiB batches,
//! 1 GiB per phase by default. `RUNNEL_BENCH_BYTES` (e.g. `256M`, `2G`) sets the size,
//! `RUNNEL_BENCH_DIR` the directory (default: a temp dir under `target/`), which must be on
//! the disk you mean to measure. Phases: append vs `write_all`; read in 1 MiB chunks vs
//! plain reads; append + `wait_durable` every 1 MiB vs `write_all` + `fsync` every 1 MiB.
//! Run by `cargo test --all-targets` (no `--bench`), it is a smoke test on 4 MiB (`common`).

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
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
    common::bench_bytes(DEFAULT_TOTAL_BYTES)
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

/// What every phase needs.
struct Setup {
    manager: Arc<LogManager>,
    dir: tempfile::TempDir,
    batch: RecordBatch,
    batches: u64,
    runtime: tokio::runtime::Runtime,
}

/// Runs both sides in the round's order; returns (log seconds, raw seconds).
fn pair(log_first: bool, log: impl FnOnce() -> f64, raw: impl FnOnce() -> f64) -> (f64, f64) {
    if log_first {
        let log_s = log();
        (log_s, raw())
    } else {
        let raw_s = raw();
        (log(), raw_s)
    }
}

/// One write phase through a fresh topic and a fresh raw file.
struct Written {
    log_s: f64,
    raw_s: f64,
    topic: String,
    log: Arc<PartitionLog>,
    raw_path: PathBuf,
}

fn write_phase(
    setup: &Setup,
    name: &str,
    flush_ms: Option<i64>,
    every: Option<u64>,
    log_first: bool,
) -> Written {
    let overrides: BTreeMap<String, String> = flush_ms
        .map(|ms| ("flush.ms".to_string(), ms.to_string()))
        .into_iter()
        .collect();
    setup
        .manager
        .create_topic(name, 1, overrides, false)
        .expect("topic");
    let log = setup.manager.partition(name, 0).expect("partition");
    let raw_path = setup.dir.path().join(format!("{name}.bin"));
    let (log_s, raw_s) = pair(
        log_first,
        || {
            settle();
            log_append(&log, &setup.batch, setup.batches, every, &setup.runtime)
        },
        || {
            settle();
            raw_write(&raw_path, setup.batch.as_bytes(), setup.batches, every)
        },
    );
    Written {
        log_s,
        raw_s,
        topic: name.to_string(),
        log,
        raw_path,
    }
}

fn remove(setup: &Setup, written: Written) {
    drop(written.log);
    setup.manager.delete_topic(&written.topic).expect("delete");
    std::fs::remove_file(&written.raw_path).expect("remove");
}

/// One round of every phase: (log seconds, raw seconds) per row of [`ROW_NAMES`].
fn run_round(setup: &Setup, round: usize) -> [(f64, f64); 4] {
    let log_first = round % 2 == 1;
    let page_cache = write_phase(setup, &format!("bench-{round}"), None, None, log_first);
    settle();
    let ((log_read_bytes, log_read_s), (raw_read_bytes, raw_read_s)) = if log_first {
        (log_read(&page_cache.log), raw_read(&page_cache.raw_path))
    } else {
        let raw = raw_read(&page_cache.raw_path);
        (log_read(&page_cache.log), raw)
    };
    let bytes = setup.batches * setup.batch.size_bytes() as u64;
    assert_eq!((log_read_bytes, raw_read_bytes), (bytes, bytes));
    let times = [
        (page_cache.log_s, page_cache.raw_s),
        (log_read_s, raw_read_s),
    ];
    remove(setup, page_cache);
    // The same without the background flush.ms fsync: the engine's own overhead.
    let lazy = write_phase(
        setup,
        &format!("bench-lazy-{round}"),
        Some(i64::MAX),
        None,
        log_first,
    );
    let lazy_times = (lazy.log_s, lazy.raw_s);
    remove(setup, lazy);
    let every = Some(CHUNK_BYTES as u64);
    let durable = write_phase(
        setup,
        &format!("bench-durable-{round}"),
        None,
        every,
        log_first,
    );
    let durable_times = (durable.log_s, durable.raw_s);
    remove(setup, durable);
    [times[0], times[1], lazy_times, durable_times]
}

const ROW_NAMES: [&str; 4] = [
    "append (page cache)",
    "read 1 MiB chunks",
    "append, flush.ms=max",
    "append + fsync/1 MiB",
];

fn main() {
    let batch = sample_batch();
    let batches = total_bytes().div_ceil(batch.size_bytes() as u64);
    let bytes = batches * batch.size_bytes() as u64;
    let dir = match std::env::var_os("RUNNEL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")),
    }
    .expect("temp dir");
    println!(
        "log_throughput: {batches} batches of {} bytes = {} MiB per phase, best of {ROUNDS}, in {}",
        batch.size_bytes(),
        bytes >> 20,
        dir.path().display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let manager =
        LogManager::open(LogManagerConfig::new(dir.path().join("data"))).expect("open log");
    let setup = Setup {
        manager,
        dir,
        batch,
        batches,
        runtime,
    };
    let mut best = [(0.0f64, 0.0f64); 4];
    for round in 0..ROUNDS {
        for (row, (log_s, raw_s)) in best.iter_mut().zip(run_round(&setup, round)) {
            row.0 = row.0.max(mb_per_s(bytes, log_s));
            row.1 = row.1.max(mb_per_s(bytes, raw_s));
        }
    }
    println!(
        "{:<22} {:>12} {:>12} {:>8} {:>8}",
        "phase", "log MB/s", "raw MB/s", "ratio", "target"
    );
    for (name, (log_mb_s, raw_mb_s)) in ROW_NAMES.iter().zip(best) {
        println!(
            "{name:<22} {log_mb_s:>12.1} {raw_mb_s:>12.1} {:>8.2} {:>8}",
            log_mb_s / raw_mb_s,
            "0.80"
        );
    }
    println!("fsyncs by the log: {}", setup.manager.fsync_count());
    setup.manager.shutdown().expect("shutdown");
}
