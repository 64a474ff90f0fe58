//! Startup recovery time of an unclean log, measured against the real binary (ignored by
//! default: it writes gigabytes). It writes `RUNNEL_RECOVERY_GIB` GiB (default 2) of 512 KiB
//! batches to one partition with acks=1, kills the broker with SIGKILL, removes the
//! recovery-point checkpoint (so every segment is scanned: size, magic, CRC-32C, offsets,
//! index rebuild) and times start → first answer from that partition (partitions load on
//! first use). For comparison it times a clean start of the same data, and with
//! `RUNNEL_RECOVERY_DROP_CACHES=1` (root) a recovery with a cold page cache.
//!
//! `RUNNEL_RECOVERY_GIB=2 cargo test --release -p runnel-broker --test recovery_time -- --ignored --nocapture`

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};
use support::{batch, metadata, produce, topic_name, BrokerProcess, Client};

const TOPIC: &str = "big";
const BATCH_BYTES: usize = 512 * 1024;
const CONNECTIONS: usize = 4;

/// Starts the broker and returns (seconds until the partition answered, its end offset).
async fn timed_start(data_dir: &Path, log_path: &Path) -> (BrokerProcess, f64, i64) {
    let started = Instant::now();
    let mut broker = BrokerProcess::spawn(data_dir, log_path, &[]);
    broker.wait_ready().await;
    let mut client = Client::connect(broker.addr).await.unwrap();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response = tokio::time::timeout(Duration::from_secs(3600), client.send(&request, 7))
        .await
        .unwrap()
        .unwrap();
    let end = response.topics[0].partitions[0].offset;
    (broker, started.elapsed().as_secs_f64(), end)
}

fn forget_recovery_points(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join("recovery-point-offset-checkpoint"));
}

fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes gigabytes; run by hand (see the module doc)"]
async fn unclean_start_recovery_time_per_gib() {
    let gib: u64 = std::env::var("RUNNEL_RECOVERY_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("broker.log");
    let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
    broker.wait_ready().await;
    Client::connect(broker.addr)
        .await
        .unwrap()
        .send(&metadata(&[TOPIC]), 12)
        .await
        .unwrap();
    let value = "v".repeat(BATCH_BYTES);
    let records = batch(&[value]);
    let batches = gib * 1024 * 1024 * 1024 / BATCH_BYTES as u64;
    let written = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (addr, records) = (broker.addr, records.clone());
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await.unwrap();
                for _ in 0..batches / CONNECTIONS as u64 {
                    let response = client.send(&produce(TOPIC, records.clone(), 1), 9).await;
                    let code = response.unwrap().responses[0].partition_responses[0].error_code;
                    assert_eq!(code, 0);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!(
        "wrote {gib} GiB in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    broker.kill9();

    forget_recovery_points(&data_dir);
    let (mut broker, warm_s, end) = timed_start(&data_dir, &log_path).await;
    assert_eq!(
        end as u64,
        batches / CONNECTIONS as u64 * CONNECTIONS as u64
    );
    eprintln!(
        "unclean start, full scan, warm cache: {warm_s:.2} s = {:.2} s/GiB",
        warm_s / gib as f64
    );
    assert!(broker.sigterm_and_wait(Duration::from_secs(120)));
    let (mut broker, clean_s, _) = timed_start(&data_dir, &log_path).await;
    eprintln!("clean start: {clean_s:.2} s");
    broker.kill9();
    if std::env::var("RUNNEL_RECOVERY_DROP_CACHES").is_ok_and(|v| v == "1") {
        forget_recovery_points(&data_dir);
        if drop_page_cache() {
            let (mut broker, cold_s, _) = timed_start(&data_dir, &log_path).await;
            eprintln!(
                "unclean start, full scan, cold cache: {cold_s:.2} s = {:.2} s/GiB",
                cold_s / gib as f64
            );
            broker.kill9();
        } else {
            eprintln!("could not drop the page cache (needs root)");
        }
    }
}
