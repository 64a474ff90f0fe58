//! `/metrics` at scale: scrape cost with 10 000 partitions and 100 consumer groups, and
//! produce throughput with and without a 1 s scrape loop, in the same run.
//!
//! `cargo bench -p runnel-broker --bench metrics_scrape`. An in-process broker on loopback
//! ports and a temp dir under `target/` (or `RUNNEL_BENCH_DIR`) gets 10 topics × 1 000
//! partitions, each holding one small batch, and 100 groups each committing 100 partitions
//! mid-log (so every scrape computes 10 000 lags). Then:
//! 1. scrape cost: the page rendered in-process, measured in CPU time of the rendering
//!    thread (cold: first scrape, lag timestamps read from the logs; warm: later scrapes),
//!    and `GET /metrics` over HTTP, measured in process CPU time and wall time;
//! 2. throughput: `RUNNEL_BENCH_PRODUCERS` (default 2) connections produce 16 KiB batches
//!    (acks=1) to an 8-partition topic for `RUNNEL_BENCH_PHASE_S` seconds (default 5),
//!    phases without and with an HTTP scrape every second (which goes first alternates by
//!    round), `RUNNEL_BENCH_ROUNDS`
//!    times (default 3); the ratio of their total throughputs is the figure.
//!
//! Run by `cargo test --all-targets` (no `--bench`), it is a smoke pass: 20 partitions,
//! 2 groups, one 1 s round.

#[allow(dead_code)] // the size helpers serve the storage benches
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use runnel_broker::api::BrokerContext;
use runnel_broker::config::BrokerConfig;
use runnel_broker::groups::commits::{CommitEntry, Committer};
use runnel_broker::net::Broker;
use runnel_protocol::batch::{build_raw_batch, RawBatchFields, RecordBatch};

/// `full` under `cargo bench`; `smoke` under `cargo test --all-targets` (a pass of seconds).
fn scaled<T>(full: T, smoke: T) -> T {
    if common::is_bench_run() {
        full
    } else {
        smoke
    }
}
fn topics() -> usize {
    scaled(10, 2)
}
fn partitions_per_topic() -> i32 {
    scaled(1_000, 10)
}
fn groups() -> usize {
    scaled(100, 2)
}
fn commits_per_group() -> usize {
    scaled(100, 5)
}
const RECORDS_PER_PARTITION: i32 = 10;
const WARM_SCRAPES: usize = 5;
const PRODUCE_TOPIC: &str = "bench-produce";
const PRODUCE_PARTITIONS: i32 = 8;
const PRODUCE_BATCH_BYTES: usize = 16 * 1024;
const PRODUCE_VERSION: i16 = 9;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn thread_cpu() -> Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn process_cpu() -> Duration {
    cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn batch(records: i32, payload_bytes: usize, timestamp_ms: i64) -> Bytes {
    let payload = vec![0x5a; payload_bytes];
    build_raw_batch(&RawBatchFields {
        last_offset_delta: records - 1,
        record_count: records,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        records: &payload,
        ..RawBatchFields::default()
    })
}

/// 10 000 partitions with data, 100 groups × 100 commits in the middle of the logs.
async fn populate(ctx: &Arc<BrokerContext>) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let logs = Arc::clone(&ctx.logs);
    tokio::task::spawn_blocking(move || {
        let one = RecordBatch::parse(batch(RECORDS_PER_PARTITION, 64, now_ms - 60_000))
            .expect("valid batch");
        for t in 0..topics() {
            let topic = format!("scale-{t}");
            logs.create_topic(&topic, partitions_per_topic(), BTreeMap::new(), false)
                .expect("create topic");
            for p in 0..partitions_per_topic() {
                let log = logs.partition(&topic, p).expect("partition");
                log.append(std::slice::from_ref(&one)).expect("append");
            }
        }
        logs.create_topic(PRODUCE_TOPIC, PRODUCE_PARTITIONS, BTreeMap::new(), false)
            .expect("create topic");
    })
    .await
    .expect("populate");
    let who = Committer {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
    };
    for g in 0..groups() {
        let entries: Vec<CommitEntry> = (0..commits_per_group())
            .map(|i| {
                let n = g * commits_per_group() + i;
                CommitEntry {
                    topic: format!("scale-{}", n % topics()),
                    partition: (n / topics()) as i32 % partitions_per_topic(),
                    offset: i64::from(RECORDS_PER_PARTITION / 2),
                    leader_epoch: -1,
                    metadata: None,
                }
            })
            .collect();
        let errors = ctx
            .groups
            .commit_offsets(&format!("group-{g}"), &who, &entries)
            .wait()
            .await;
        assert!(errors.iter().all(Option::is_none), "commit failed");
    }
}

fn http_get(addr: SocketAddr, path: &str) -> usize {
    let mut stream = TcpStream::connect(addr).expect("connect HTTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut body = Vec::new();
    stream.read_to_end(&mut body).expect("read");
    assert!(body.starts_with(b"HTTP/1.1 200"), "scrape failed");
    body.len()
}

fn produce_frame(partition: i32, records: &Bytes, correlation_id: i32) -> Vec<u8> {
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(records.clone()));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str(PRODUCE_TOPIC)))
        .with_partition_data(vec![data]);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut body = BytesMut::new();
    let header_version = ProduceRequest::header_version(PRODUCE_VERSION);
    header.encode(&mut body, header_version).expect("header");
    request.encode(&mut body, PRODUCE_VERSION).expect("body");
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

/// One producer connection: request, response, repeat, until `stop`. Returns bytes sent.
fn produce_loop(addr: SocketAddr, id: i32, stop: Arc<AtomicBool>, bytes: Arc<AtomicU64>) {
    let mut stream = TcpStream::connect(addr).expect("connect Kafka");
    stream.set_nodelay(true).expect("nodelay");
    let records = batch(16, PRODUCE_BATCH_BYTES, 1);
    let mut n = 0i32;
    let mut response = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let frame = produce_frame((id + n) % PRODUCE_PARTITIONS, &records, n);
        stream.write_all(&frame).expect("send produce");
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).expect("response size");
        response.resize(i32::from_be_bytes(size) as usize, 0);
        stream.read_exact(&mut response).expect("response");
        let mut cursor = &response[..];
        assert_eq!(cursor.get_i32(), n, "correlation id");
        bytes.fetch_add(records.len() as u64, Ordering::Relaxed);
        n = n.wrapping_add(1);
    }
}

/// Produces for `phase` with `producers` connections; returns MB/s.
fn produce_phase(
    kafka: SocketAddr,
    http: SocketAddr,
    producers: i32,
    phase: Duration,
    scrape: bool,
) -> (f64, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..producers)
        .map(|id| {
            let (stop, bytes) = (Arc::clone(&stop), Arc::clone(&bytes));
            std::thread::spawn(move || produce_loop(kafka, id, stop, bytes))
        })
        .collect();
    let started = Instant::now();
    let mut scrapes = 0;
    while started.elapsed() < phase {
        let tick = Instant::now();
        if scrape {
            http_get(http, "/metrics");
            scrapes += 1;
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for t in threads {
        t.join().expect("producer");
    }
    let mb = bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
    (mb / elapsed.as_secs_f64(), scrapes)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base = std::env::var("RUNNEL_BENCH_DIR").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{target}/bench-tmp")
    });
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let mut config = BrokerConfig::new(dir.path(), "127.0.0.1:0");
    config.http_listen = "127.0.0.1:0".into();
    let broker = runtime.block_on(Broker::start(config)).expect("broker");
    let (kafka, http) = (broker.kafka_addr, broker.http_addr);
    let ctx = Arc::clone(broker.context());

    let started = Instant::now();
    runtime.block_on(populate(&ctx));
    println!(
        "setup: {} partitions, {} groups x {} commits in {:.1} s",
        topics() * partitions_per_topic() as usize,
        groups(),
        commits_per_group(),
        started.elapsed().as_secs_f64()
    );

    // 1. Scrape cost.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let page = runnel_broker::metrics::scrape::render(&ctx, now());
    println!(
        "render, cold:  {:7.1} ms CPU, {:7.1} ms wall, {} bytes, {} lines",
        ms(thread_cpu() - cpu),
        ms(wall.elapsed()),
        page.len(),
        page.lines().count()
    );
    let mut warm = Vec::new();
    for _ in 0..WARM_SCRAPES {
        let cpu = thread_cpu();
        let _ = runnel_broker::metrics::scrape::render(&ctx, now());
        warm.push(ms(thread_cpu() - cpu));
    }
    warm.sort_by(f64::total_cmp);
    println!(
        "render, warm:  {:7.1} ms CPU (median of {WARM_SCRAPES}; min {:.1}, max {:.1})",
        warm[WARM_SCRAPES / 2],
        warm[0],
        warm[WARM_SCRAPES - 1]
    );
    let mut over_http = Vec::new();
    for _ in 0..WARM_SCRAPES {
        let (cpu, wall) = (process_cpu(), Instant::now());
        let bytes = http_get(http, "/metrics");
        over_http.push((ms(process_cpu() - cpu), ms(wall.elapsed()), bytes));
    }
    over_http.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (cpu_ms, wall_ms, bytes) = over_http[WARM_SCRAPES / 2];
    println!(
        "GET /metrics:  {cpu_ms:7.1} ms process CPU (incl. this client), {wall_ms:7.1} ms wall, {bytes} bytes (median of {WARM_SCRAPES})"
    );

    // 2. Produce throughput with and without a 1 s scrape loop, alternating.
    let producers = env_or("RUNNEL_BENCH_PRODUCERS", 2) as i32;
    let phase = Duration::from_secs(env_or("RUNNEL_BENCH_PHASE_S", scaled(5, 1)));
    let rounds = env_or("RUNNEL_BENCH_ROUNDS", scaled(3, 1));
    let (mut without, mut with) = (0.0, 0.0);
    for round in 1..=rounds {
        // Alternate which phase goes first: the first phase of a run meets a colder log.
        let ((a, _), (b, scrapes)) = if round % 2 == 1 {
            let a = produce_phase(kafka, http, producers, phase, false);
            (a, produce_phase(kafka, http, producers, phase, true))
        } else {
            let b = produce_phase(kafka, http, producers, phase, true);
            (produce_phase(kafka, http, producers, phase, false), b)
        };
        println!("round {round}: produce {a:7.1} MB/s without scraping, {b:7.1} MB/s with {scrapes} scrapes ({:.3}x)", b / a);
        without += a;
        with += b;
    }
    println!(
        "produce throughput with a 1 s scrape loop / without: {:.3}x ({producers} producers, 16 KiB batches, acks=1)",
        with / without
    );
    runtime.block_on(broker.shutdown()).expect("shutdown");
}
