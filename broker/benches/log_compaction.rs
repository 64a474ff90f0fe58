//! Compaction throughput: one cleaner pass over keyed data vs a plain read + write copy of
//! the same segment bytes.
//!
//! `cargo bench -p runnel-broker --bench log_compaction` — 1 KiB records (keys `key-N`, 10 %
//! of them unique, written round-robin so every key's latest value is in the last tenth) in
//! uncompressed 16-record batches, 256 MiB of input by default. `RUNNEL_BENCH_BYTES` (e.g.
//! `64M`, `1G`) sets the size, `RUNNEL_BENCH_DIR` the directory (default: under `target/`),
//! `RUNNEL_BENCH_LIST=1` lists the partition's files after each pass, `RUNNEL_BENCH_CODEC`
//! (`none`, `gzip`, `snappy`, `lz4`, `zstd`) compresses the batches. Both sides end with an
//! fsync of what they wrote; the input is in the page cache for both.
//! Last, produce throughput (appends to a `delete` topic) with the cleaner idle and while a
//! pass over another partition of the same size runs on its own thread.
//! Run by `cargo test --all-targets` (no `--bench`), it is a smoke test on 4 MiB (`common`).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use runnel_broker::log::{CleanerConfig, CleanerStats, LogManager, LogManagerConfig};
use runnel_protocol::batch::{Compression, RecordBatch};
use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
const UNIQUE_KEYS_PERCENT: u64 = 10;
/// Segment size of a full run; a smoke run uses a quarter of its input so it still cleans.
const SEGMENT_BYTES: u64 = 8 << 20;
const COPY_CHUNK_BYTES: usize = 1 << 20;
const DEFAULT_INPUT_BYTES: u64 = 256 << 20;
const ROUNDS: usize = 2;

fn input_bytes() -> u64 {
    common::bench_bytes(DEFAULT_INPUT_BYTES)
}

/// 1 KiB value of record `record`: half pseudo-random bytes, half a repeated byte, so a
/// codec has about 2:1 to gain (like typical JSON-ish payloads), not 30:1.
fn record_value(record: u64) -> Vec<u8> {
    let mut state = record.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut value = Vec::with_capacity(RECORD_BYTES);
    for _ in 0..RECORD_BYTES / 2 {
        // xorshift64: cheap, deterministic noise.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value.push(state as u8);
    }
    value.resize(RECORD_BYTES, b'x');
    value
}

/// Batch `index` of the keyed stream: records `index * 16 ..`, key = record number modulo
/// the unique-key count, value from [`record_value`].
fn keyed_batch(index: u64, unique_keys: u64, compression: Compression) -> RecordBatch {
    let fields = BatchFields {
        compression,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for i in 0..RECORDS_PER_BATCH as u64 {
        let record = index * RECORDS_PER_BATCH as u64 + i;
        let key = format!("key-{}", record % unique_keys);
        let value = record_value(record);
        let new = NewRecord {
            timestamp: 1_000 + record as i64,
            key: Some(key.as_bytes()),
            value: Some(&value),
            headers: &[],
        };
        builder.push(&new).expect("record fits");
    }
    RecordBatch::parse(builder.finish().expect("batch")).expect("valid batch")
}

fn codec() -> Compression {
    match std::env::var("RUNNEL_BENCH_CODEC").as_deref() {
        Ok("gzip") => Compression::Gzip,
        Ok("snappy") => Compression::Snappy,
        Ok("lz4") => Compression::Lz4,
        Ok("zstd") => Compression::Zstd,
        _ => Compression::None,
    }
}

fn settle() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / seconds
}

/// Sealed segment files of a partition directory (every `.log` but the last).
fn sealed_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop();
    logs
}

/// Reads every file in 1 MiB chunks and writes it to `out`, then fsyncs: the floor.
fn raw_copy(inputs: &[PathBuf], out: &Path) -> f64 {
    let started = Instant::now();
    let mut writer = File::create(out).expect("create");
    let mut chunk = vec![0u8; COPY_CHUNK_BYTES];
    for input in inputs {
        let mut reader = File::open(input).expect("open");
        loop {
            let read = reader.read(&mut chunk).expect("read");
            if read == 0 {
                break;
            }
            writer.write_all(&chunk[..read]).expect("write");
        }
    }
    writer.sync_all().expect("fsync");
    started.elapsed().as_secs_f64()
}

fn segment_bytes() -> u64 {
    if common::is_bench_run() {
        SEGMENT_BYTES
    } else {
        common::SMOKE_BYTES / 4
    }
}

/// One round: fresh topic, write the stream, then time the raw copy and one cleaner pass.
fn round(
    manager: &LogManager,
    data_dir: &Path,
    round: usize,
    batches: u64,
) -> (u64, f64, f64, CleanerStats) {
    let topic = format!("compact-{round}");
    write_topic(manager, &topic, "compact", batches);
    let inputs = sealed_logs(&data_dir.join(format!("{topic}-0")));
    let input_bytes: u64 = inputs
        .iter()
        .map(|p| std::fs::metadata(p).expect("size").len())
        .sum();
    // Warm the page cache for both sides alike: the cleaner usually reads recent data.
    let copy = data_dir.join(format!("copy-{round}.bin"));
    raw_copy(&inputs, &copy);
    settle();
    let raw_s = raw_copy(&inputs, &copy);
    std::fs::remove_file(&copy).expect("remove copy");
    settle();
    let started = Instant::now();
    manager.clean_now(&topic, 0).expect("clean");
    let clean_s = started.elapsed().as_secs_f64();
    let stats = manager.cleaner_stats();
    if std::env::var_os("RUNNEL_BENCH_LIST").is_some() {
        for entry in std::fs::read_dir(data_dir.join(format!("{topic}-0"))).expect("dir") {
            let entry = entry.expect("entry");
            println!(
                "{:?} {}",
                entry.file_name(),
                entry.metadata().expect("meta").len()
            );
        }
    }
    manager.delete_topic(&topic).expect("delete");
    (input_bytes, clean_s, raw_s, stats)
}

/// Creates `topic` with `policy` and appends `batches` keyed batches; returns the seconds the
/// appends took.
fn write_topic(manager: &LogManager, topic: &str, policy: &str, batches: u64) -> f64 {
    let overrides: BTreeMap<String, String> = [
        ("cleanup.policy", policy.to_string()),
        ("segment.bytes", segment_bytes().to_string()),
        ("flush.ms", i64::MAX.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    manager
        .create_topic(topic, 1, overrides, false)
        .expect("topic");
    let log = manager.partition(topic, 0).expect("partition");
    let unique_keys = (batches * RECORDS_PER_BATCH as u64 * UNIQUE_KEYS_PERCENT / 100).max(1);
    let started = Instant::now();
    for index in 0..batches {
        log.append(&[keyed_batch(index, unique_keys, codec())])
            .expect("append");
    }
    started.elapsed().as_secs_f64()
}

/// Produce throughput with the cleaner idle, then while a pass over another partition of the
/// same size runs on its own thread (the "≥ 0.8 × without it"). Returns (MB/s idle,
/// MB/s beside the cleaner, the share of the second append phase the pass overlapped).
fn produce_beside_cleaner(manager: &Arc<LogManager>, batches: u64, bytes: u64) -> (f64, f64, f64) {
    write_topic(manager, "dirty", "compact", batches);
    settle();
    let idle_s = write_topic(manager, "produce-idle", "delete", batches);
    settle();
    let cleaner = {
        let manager = Arc::clone(manager);
        std::thread::spawn(move || {
            let started = Instant::now();
            manager.clean_now("dirty", 0).expect("clean");
            started.elapsed().as_secs_f64()
        })
    };
    let busy_s = write_topic(manager, "produce-busy", "delete", batches);
    let clean_s = cleaner.join().expect("cleaner thread");
    for topic in ["dirty", "produce-idle", "produce-busy"] {
        manager.delete_topic(topic).expect("delete");
    }
    (
        mb_per_s(bytes, idle_s),
        mb_per_s(bytes, busy_s),
        (clean_s / busy_s).min(1.0),
    )
}

fn main() {
    let sample = keyed_batch(0, 1, codec());
    let batches = input_bytes().div_ceil(sample.size_bytes() as u64);
    let dir = match std::env::var_os("RUNNEL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")),
    }
    .expect("temp dir");
    let data_dir = dir.path().join("data");
    let manager = LogManager::open(LogManagerConfig::new(&data_dir)).expect("open log");
    // Only the timed `clean_now` may clean: the background cleaner would race the copy.
    manager.set_cleaner_config(CleanerConfig {
        backoff_ms: 24 * 3_600_000,
        ..CleanerConfig::default()
    });
    println!(
        "log_compaction: {batches} {:?} batches of {} bytes ({} % unique keys), best of {ROUNDS}, in {}",
        codec(),
        sample.size_bytes(),
        UNIQUE_KEYS_PERCENT,
        dir.path().display()
    );
    let (mut best_clean, mut best_raw, mut input) = (0.0f64, 0.0f64, 0u64);
    let mut stats = CleanerStats::default();
    for r in 0..ROUNDS {
        let (bytes, clean_s, raw_s, round_stats) = round(&manager, &data_dir, r, batches);
        input = bytes;
        stats = round_stats;
        best_clean = best_clean.max(mb_per_s(bytes, clean_s));
        best_raw = best_raw.max(mb_per_s(bytes, raw_s));
    }
    println!(
        "{:<26} {:>12} {:>12} {:>8} {:>8}",
        "phase", "clean MB/s", "copy MB/s", "ratio", "target"
    );
    println!(
        "{:<26} {best_clean:>12.1} {best_raw:>12.1} {:>8.2} {:>8}",
        "compact (MB/s of input)",
        best_clean / best_raw,
        "0.50"
    );
    println!(
        "input {} MiB per round; last pass: read {} MiB, written {} MiB, {} records removed, {} errors",
        input >> 20,
        stats.bytes_read_total >> 20,
        stats.bytes_written_total >> 20,
        stats.records_removed_total,
        stats.errors_total
    );
    let (idle, busy, overlap) =
        produce_beside_cleaner(&manager, batches, batches * sample.size_bytes() as u64);
    println!(
        "{:<26} {:>12} {:>12} {:>8} {:>8}",
        "phase", "idle MB/s", "cleaning MB/s", "ratio", "target"
    );
    println!(
        "{:<26} {idle:>12.1} {busy:>12.1} {:>8.2} {:>8}",
        "produce beside the cleaner",
        busy / idle,
        "0.80"
    );
    println!(
        "the pass ran for {:.0} % of the second append phase",
        overlap * 100.0
    );
    manager.shutdown().expect("shutdown");
}
