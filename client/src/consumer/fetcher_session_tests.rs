//! Fetch sessions and topic ids against a scripted broker ([`crate::fake_broker`]): what
//! each Fetch the fetcher sends lists, and that lost or declined sessions cost the
//! application nothing.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::tests::batch;
use super::*;
use crate::error::codes;
use crate::fake_broker::{self, Script, SeenFetch, TopicAnswer};

/// A fetcher of one lane on a broker scripted by `script`, where every topic has three
/// partitions, with `topics`' metadata loaded.
async fn fetcher_on(script: Script, topics: &[&str]) -> Fetcher {
    let script = Script {
        metadata: Arc::new(|_| TopicAnswer::Leaders(vec![0; 3])),
        ..script
    };
    let addr = fake_broker::start(script).await;
    let cluster = Cluster::connect(crate::ClientConfig::new(&addr))
        .await
        .unwrap();
    for topic in topics {
        cluster.topic(topic).await.unwrap();
    }
    let mut config = ConsumerConfig::new(&addr);
    config.fetch_connections_per_broker = 1;
    config.fetch_wait_ms_max = 20;
    Fetcher::new(cluster, config)
}

/// Assigns `partitions`, each at offset 0.
fn assign_at_0(fetcher: &mut Fetcher, partitions: &[TopicPartition]) {
    fetcher.assign(partitions);
    for tp in partitions {
        fetcher.seek(tp, 0).unwrap();
    }
}

/// One Fetch sent and its answer read; the Fetch as the broker saw it.
async fn round(fetcher: &mut Fetcher, seen: &Arc<std::sync::Mutex<Vec<SeenFetch>>>) -> SeenFetch {
    let before = seen.lock().unwrap().len();
    fetcher.send_fetches();
    assert_eq!(fetcher.busy_lanes.len(), 1, "a Fetch went out");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    fetcher.wait_for_data(deadline).await;
    assert!(fetcher.busy_lanes.is_empty(), "its answer was read");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), before + 1);
    seen[before].clone()
}

fn listed(fetch: &SeenFetch) -> Vec<(&str, i32, i64)> {
    let listed = fetch.partitions.iter();
    listed.map(|(t, p, o)| (t.as_str(), *p, *o)).collect()
}

fn t(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

/// The broker opens session 7: the next Fetches are incremental and list only what
/// changed (t-1, which got records; t-0 after a seek), forget what is no longer assigned,
/// and go by topic id (v17) — the records, answered by id, reach the application.
#[tokio::test]
async fn an_opened_session_makes_the_next_fetches_list_only_what_changed() {
    let script = Script {
        fetch: Some(Arc::new(|_| 0)),
        fetch_records: Arc::new(|_, partition, offset| {
            (partition == 1 && offset == 0).then(|| Bytes::from(batch(0, 3)))
        }),
        fetch_session: Arc::new(|_| (0, 7)),
        fetch_version_max: 17,
        ..Script::default()
    };
    let seen = script.fetches_seen.clone();
    let mut fetcher = fetcher_on(script, &["t"]).await;
    assign_at_0(&mut fetcher, &[t(0), t(1), t(2)]);

    let first = round(&mut fetcher, &seen).await;
    assert_eq!((first.version, first.session_id, first.epoch), (17, 0, 0));
    assert_eq!(listed(&first), vec![("t", 0, 0), ("t", 1, 0), ("t", 2, 0)]);
    let taken: Vec<i64> = fetcher.take(10).iter().map(|r| r.offset).collect();
    assert_eq!(taken, vec![0, 1, 2], "t-1's records, answered by topic id");

    let second = round(&mut fetcher, &seen).await;
    assert_eq!((second.session_id, second.epoch), (7, 1));
    assert_eq!(listed(&second), vec![("t", 1, 3)], "only t-1 moved");
    let third = round(&mut fetcher, &seen).await;
    assert_eq!((third.epoch, listed(&third)), (2, vec![]));

    fetcher.assign(&[t(0), t(1)]);
    fetcher.seek(&t(0), 5).unwrap();
    let fourth = round(&mut fetcher, &seen).await;
    assert_eq!(fourth.epoch, 3);
    assert_eq!(listed(&fourth), vec![("t", 0, 5)]);
    assert_eq!(fourth.forgotten, vec![("t".to_owned(), 2)]);

    // Closing takes the session back from the Fetch in flight and sends the FINAL epoch.
    fetcher.send_fetches();
    assert_eq!(fetcher.busy_lanes.len(), 1);
    fetcher.close_sessions().await;
    assert!(fetcher.busy_lanes.is_empty() && fetcher.sessions.is_empty());
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.session_id, last.epoch), (7, -1));
    assert!(last.partitions.is_empty());
}

/// A broker that declines sessions (session id 0, as today's runnel broker) gets a full
/// Fetch each time, each asking again (epoch 0), at v12 here: the broker offers no more.
#[tokio::test]
async fn a_declined_session_keeps_every_fetch_full() {
    let script = Script {
        fetch: Some(Arc::new(|_| 0)),
        ..Script::default()
    };
    let seen = script.fetches_seen.clone();
    let mut fetcher = fetcher_on(script, &["t"]).await;
    assign_at_0(&mut fetcher, &[t(0), t(1)]);
    for _ in 0..3 {
        let fetch = round(&mut fetcher, &seen).await;
        assert_eq!((fetch.version, fetch.session_id, fetch.epoch), (12, 0, 0));
        assert_eq!(listed(&fetch), vec![("t", 0, 0), ("t", 1, 0)]);
    }
    fetcher.close_sessions().await;
    assert_eq!(seen.lock().unwrap().len(), 3, "no session to close");
}

/// One assigned topic without a known id sends the whole Fetch at v12 by name (Java's
/// `FetchRequest.Builder`); with ids for all, v17.
#[tokio::test]
async fn a_topic_without_a_known_id_sends_the_fetch_at_v12() {
    let script = Script {
        fetch: Some(Arc::new(|_| 0)),
        fetch_version_max: 17,
        topic_has_id: Arc::new(|topic| topic != "u"),
        ..Script::default()
    };
    let seen = script.fetches_seen.clone();
    let mut fetcher = fetcher_on(script, &["t", "u"]).await;
    assign_at_0(&mut fetcher, &[t(0), TopicPartition::new("u", 0)]);
    let mixed = round(&mut fetcher, &seen).await;
    assert_eq!(mixed.version, 12);
    assert_eq!(listed(&mixed), vec![("t", 0, 0), ("u", 0, 0)]);
    assign_at_0(&mut fetcher, &[t(0)]);
    let by_id = round(&mut fetcher, &seen).await;
    assert_eq!(by_id.version, 17);
    assert_eq!(listed(&by_id), vec![("t", 0, 0)]);
}

/// A lost session (FETCH_SESSION_ID_NOT_FOUND: the broker evicted it) or a wrong epoch is
/// answered by a full Fetch at once; `poll` reports no error and every record arrives
/// once, in order.
#[tokio::test]
async fn a_lost_session_is_fetched_again_in_full_without_an_error() {
    for (code, next_session_id) in [
        (codes::FETCH_SESSION_ID_NOT_FOUND, 0),
        (codes::INVALID_FETCH_SESSION_EPOCH, 7),
    ] {
        let fetches = Arc::new(AtomicUsize::new(0));
        let script = Script {
            fetch: Some(Arc::new(|_| 0)),
            fetch_records: Arc::new(|_, _, offset| {
                matches!(offset, 0 | 2).then(|| Bytes::from(batch(offset, 2)))
            }),
            // The first incremental Fetch finds its session gone.
            fetch_session: Arc::new(move |seen| {
                let nth = fetches.fetch_add(1, Ordering::SeqCst);
                match (nth, seen.epoch) {
                    (1, _) => (code, 0),
                    _ => (0, 7),
                }
            }),
            ..Script::default()
        };
        let seen = script.fetches_seen.clone();
        let addr = fake_broker::start(script).await;
        let mut config = ConsumerConfig::new(&addr);
        config.fetch_wait_ms_max = 20;
        config.fetch_connections_per_broker = 1;
        let mut consumer = crate::Consumer::new(config).await.unwrap();
        consumer.assign(&[t(0)]).unwrap();
        consumer.seek(&t(0), 0).unwrap();
        let mut offsets = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while offsets.len() < 4 && tokio::time::Instant::now() < deadline {
            let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
            offsets.extend(records.iter().map(|r| r.offset));
        }
        assert_eq!(offsets, vec![0, 1, 2, 3], "{code}");
        let seen = seen.lock().unwrap().clone();
        let metadata: Vec<(i32, i32)> = seen.iter().map(|f| (f.session_id, f.epoch)).collect();
        assert_eq!(
            metadata[..3],
            [(0, 0), (7, 1), (next_session_id, 0)],
            "{code}"
        );
        assert_eq!(listed(&seen[2]), vec![("t", 0, 2)], "in full, {code}");
    }
}
