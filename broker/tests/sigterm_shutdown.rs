//! SIGTERM with acks=all produces in flight, against the real binary: every request is
//! answered or its connection closed (none hangs), the process exits 0 and leaves the
//! clean-shutdown marker, the restart skips the recovery scan and serves every acknowledged
//! record at its offset. A kill -9 afterwards does lead to a recovering start (so the log
//! line the check relies on is real).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{batch, metadata, produce, read_all, BrokerProcess, Client};

const TOPIC: &str = "term";
const MARKER: &str = ".runnel_clean_shutdown";
const UNCLEAN_LINE: &str = "unclean shutdown";
const PRODUCERS: usize = 3;

#[derive(Default)]
struct Outcomes {
    acked: Vec<(i64, String)>,
    refused: usize,
    closed: usize,
    hung: usize,
}

async fn producer(addr: SocketAddr, id: usize, outcomes: Arc<Mutex<Outcomes>>) {
    let mut client = Client::connect(addr).await.unwrap();
    for seq in 0.. {
        let value = format!("p{id}-{seq}");
        let request = produce(TOPIC, batch(std::slice::from_ref(&value)), -1);
        let result = client.send(&request, 9).await;
        let mut outcomes = outcomes.lock().unwrap();
        match result {
            Ok(response) => {
                let partition = &response.responses[0].partition_responses[0];
                if partition.error_code == 0 {
                    outcomes.acked.push((partition.base_offset, value));
                } else {
                    outcomes.refused += 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                outcomes.hung += 1;
                return;
            }
            Err(_) => {
                outcomes.closed += 1;
                return;
            }
        }
    }
}

fn unclean_starts(log_path: &std::path::Path) -> usize {
    std::fs::read_to_string(log_path)
        .unwrap()
        .matches(UNCLEAN_LINE)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_in_flight_acks_all_and_restarts_without_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("broker.log");
    let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
    broker.wait_ready().await;
    let mut client = Client::connect(broker.addr).await.unwrap();
    client.send(&metadata(&[TOPIC]), 12).await.unwrap();
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|id| tokio::spawn(producer(broker.addr, id, outcomes.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        broker.sigterm_and_wait(Duration::from_secs(30)),
        "SIGTERM must end the broker with status 0; see {log_path:?}"
    );
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert_eq!(outcomes.hung, 0, "a request neither answered nor closed");
    assert_eq!(
        outcomes.closed, PRODUCERS,
        "every producer ends on a closed connection"
    );
    assert!(!outcomes.acked.is_empty());
    assert!(data_dir.join(MARKER).exists(), "clean-shutdown marker");
    eprintln!(
        "sigterm: {} acknowledged, {} refused, {} connections closed",
        outcomes.acked.len(),
        outcomes.refused,
        outcomes.closed
    );

    let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
    broker.wait_ready().await;
    let mut client = Client::connect(broker.addr).await.unwrap();
    let log = read_all(&mut client, TOPIC).await;
    assert_eq!(
        unclean_starts(&log_path),
        0,
        "the restart after SIGTERM recovered"
    );
    for (i, (offset, _)) in log.iter().enumerate() {
        assert_eq!(*offset, i as i64, "gap-free offsets");
    }
    for (offset, value) in &outcomes.acked {
        assert_eq!(log.get(*offset as usize).map(|(_, v)| v), Some(value));
    }

    broker.kill9();
    let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
    broker.wait_ready().await;
    assert_eq!(
        unclean_starts(&log_path),
        1,
        "a start after kill -9 recovers"
    );
    assert!(broker.sigterm_and_wait(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_sigterm_as_soon_as_the_broker_answers_is_a_clean_shutdown() {
    // The handlers are installed before the listeners open: a SIGTERM right after the first
    // answer used to find the default action still in place now and then (killed, exit ≠ 0;
    // seen once in CI). The window was microseconds wide, so this guards the order rather
    // than reproducing the race at will.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("broker.log");
    for _ in 0..5 {
        let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
        broker.wait_ready().await;
        assert!(broker.sigterm_and_wait(Duration::from_secs(30)));
        assert!(data_dir.join(MARKER).exists(), "clean-shutdown marker");
    }
}
