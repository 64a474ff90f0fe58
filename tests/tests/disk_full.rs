//! Disk full: the data directory is a small tmpfs (mounted by the test, so it needs root;
//! otherwise the test says so and passes without checking anything). Filling it makes
//! produce answer KAFKA_STORAGE_ERROR while Metadata and Fetch keep working; freeing space
//! makes produce work again; every acknowledged record is intact after a restart.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kafka_protocol::error::ResponseError;
use runnel_tests::records::{decode, values};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::{TestBroker, TestClient};

const TMPFS_SIZE: &str = "size=8m";
/// Leaves this much of the tmpfs free after the filler file is written.
const HEADROOM_BYTES: usize = 2 * 1024 * 1024;
const VALUE_BYTES: usize = 60 * 1024;
/// Bound on the produce loop: the headroom holds far fewer batches than this.
const PRODUCES_MAX: usize = 400;

/// A tmpfs mounted on a temp dir; unmounted (lazily, if still busy) on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(&path)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs { path, _dir: dir }),
            other => {
                eprintln!("SKIPPED disk_full: cannot mount a tmpfs ({other:?}); needs root");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes zeros into `path` until the file system is full except `headroom` bytes.
fn fill_leaving(dir: &Path, headroom: usize) -> PathBuf {
    let stats = free_bytes(dir);
    let filler = dir.join("filler");
    let size = stats.saturating_sub(headroom as u64) as usize;
    std::fs::write(&filler, vec![0u8; size]).unwrap();
    filler
}

/// Free bytes on the file system holding `dir` (from `df`, to stay dependency-free).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

async fn produce_code(client: &mut TestClient, value: &str) -> (i16, i64) {
    let response = client
        .send(produce("full", 0, values(&[value]), -1), 9)
        .await;
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

async fn fetch_values(client: &mut TestClient) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut next = 0;
    for _ in 0..PRODUCES_MAX {
        let response = client.send(fetch("full", 0, next, 0, 0), 12).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let records = decode(&partition.records.clone().unwrap_or_default());
        if records.is_empty() {
            break;
        }
        for record in records {
            let value = String::from_utf8_lossy(&record.value.unwrap()).into_owned();
            out.push((record.offset, value));
        }
        next = out.last().unwrap().0 + 1;
    }
    out
}

#[tokio::test]
async fn a_full_disk_fails_produce_cleanly_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount() else {
        return;
    };
    let data_dir = tmpfs.path.join("data");
    let broker = TestBroker::start_in(&data_dir, |c| {
        c.topic_defaults
            .insert("segment.bytes".into(), (128 * 1024).to_string());
    })
    .await;
    let mut client = broker.client().await;
    client.send(metadata(Some(&["full"])), 12).await;
    assert_eq!(produce_code(&mut client, "before").await, (0, 0));
    let filler = fill_leaving(&tmpfs.path, HEADROOM_BYTES);

    let mut acked = vec![(0, "before".to_owned())];
    let mut storage_errors = 0;
    for i in 0..PRODUCES_MAX {
        let value = format!("{i:05}-{}", "x".repeat(VALUE_BYTES));
        let (code, offset) = produce_code(&mut client, &value).await;
        if code == 0 {
            acked.push((offset, value));
            continue;
        }
        assert_eq!(code, ResponseError::KafkaStorageError.code(), "batch {i}");
        storage_errors += 1;
        if storage_errors == 3 {
            break;
        }
    }
    assert_eq!(storage_errors, 3, "the disk never filled");
    eprintln!("disk full after {} acknowledged batches", acked.len());

    // Still serving reads and metadata, with every acknowledged record.
    let meta = client.send(metadata(Some(&["full"])), 12).await;
    assert_eq!(meta.topics[0].error_code, 0);
    assert_eq!(fetch_values(&mut client).await, acked);
    // Creating a topic on a full disk may fail (its error is the client's to see) but must
    // not take the broker down.
    let created = client.send(metadata(Some(&["while-full"])), 12).await;
    eprintln!(
        "auto-create on a full disk: error {}",
        created.topics[0].error_code
    );
    assert_eq!(fetch_values(&mut client).await, acked);

    // Space returns: produce works again, at the next offset.
    std::fs::remove_file(filler).unwrap();
    let (code, offset) = produce_code(&mut client, "after").await;
    assert_eq!(code, 0, "produce after space returned");
    assert_eq!(offset, acked.len() as i64);
    acked.push((offset, "after".to_owned()));

    // No segment is damaged: a restart reads back exactly what was acknowledged.
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(fetch_values(&mut client).await, acked);
    drop(client);
    let mut broker = broker;
    broker.shutdown().await;
}
