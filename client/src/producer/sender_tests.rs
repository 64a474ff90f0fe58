//! The sender against a scripted broker ([`crate::fake_broker`]): retries bounded by
//! `delivery_timeout_ms`, not by a count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{codes, Error};
use crate::fake_broker::{self, Script, TopicAnswer};
use crate::producer::accumulator::retry_backoff_ms;
use crate::{Acks, Producer, ProducerConfig, ProducerRecord};

/// Longest any outcome here may take before the test counts it as hung: only upper bounds,
/// and generous ones, since machines are noisy.
const HANG: Duration = Duration::from_secs(10);

async fn producer(addr: &str, adjust: impl FnOnce(&mut ProducerConfig)) -> Producer {
    let mut config = ProducerConfig::new(addr);
    adjust(&mut config);
    Producer::new(config).await.expect("producer")
}

/// Sends one record to `topic` and awaits its outcome, which must come within [`HANG`].
async fn outcome_of_one(producer: &Producer, topic: &str) -> crate::Result<crate::RecordMetadata> {
    let delivery = producer
        .send(ProducerRecord::new(topic, "v"))
        .await
        .expect("send");
    tokio::time::timeout(HANG, delivery)
        .await
        .expect("not hung")
}

#[tokio::test]
async fn a_batch_whose_leader_is_missing_for_two_seconds_is_delivered() {
    let started = Instant::now();
    let addr = fake_broker::start(Script {
        produce: Arc::new(
            move |_, _| match started.elapsed() < Duration::from_secs(2) {
                true => Some(codes::NOT_LEADER_OR_FOLLOWER),
                false => Some(0),
            },
        ),
        ..Script::default()
    })
    .await;
    let producer = producer(&addr, |_| {}).await;
    let metadata = outcome_of_one(&producer, "t")
        .await
        .expect("delivered once the leader is back");
    assert_eq!((metadata.partition, metadata.offset), (0, 0));
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_batch_to_a_broker_that_never_answers_fails_at_its_delivery_timeout() {
    let addr = fake_broker::start(Script {
        produce: Arc::new(|_, _| None),
        ..Script::default()
    })
    .await;
    let producer = producer(&addr, |c| {
        c.client.connection.request_timeout_ms = 200;
        c.delivery_timeout_ms = 500;
    })
    .await;
    let started = Instant::now();
    let error = outcome_of_one(&producer, "t")
        .await
        .expect_err("never answered");
    assert!(started.elapsed() < HANG);
    let Error::DeliveryTimeout {
        topic,
        partition,
        timeout_ms,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((topic.as_str(), *partition, *timeout_ms), ("t", 0, 500));
    let message = error.to_string();
    assert!(
        message.contains("t-0") && message.contains("500 ms"),
        "{message}"
    );
    assert!(!error.is_retriable());
}

#[tokio::test]
async fn a_batch_in_flight_at_its_deadline_fails_then_and_its_late_answer_is_ignored() {
    // Batch A is answered after 500 ms; batch B, opened just after it, waits behind it (one
    // batch in flight per partition), goes out at ~500 ms and is answered — with success —
    // at ~1 300 ms: after its 1 000 ms deadline, within the 900 ms request timeout.
    let requests = Arc::new(AtomicUsize::new(0));
    let (delays, answers) = (requests.clone(), requests.clone());
    let addr = fake_broker::start(Script {
        produce_delay_ms: Arc::new(move || match delays.load(Ordering::SeqCst) {
            0 => 500,
            1 => 800,
            _ => 0,
        }),
        produce: Arc::new(move |_, _| {
            answers.fetch_add(1, Ordering::SeqCst);
            Some(0)
        }),
        ..Script::default()
    })
    .await;
    let producer = producer(&addr, |c| {
        c.linger_ms = 0;
        c.client.connection.request_timeout_ms = 900;
        c.delivery_timeout_ms = 1_000;
    })
    .await;
    let buffer_bytes = producer.accumulator.memory_free_bytes();
    let started = Instant::now();
    let first = producer.send(ProducerRecord::new("t", "a")).await;
    let second = producer.send(ProducerRecord::new("t", "b")).await;
    let error = tokio::time::timeout(HANG, second.expect("send"))
        .await
        .expect("not hung")
        .expect_err("not delivered within its deadline");
    let failed_after = started.elapsed();
    assert!(matches!(error, Error::DeliveryTimeout { .. }), "{error:?}");
    assert!(error.to_string().contains("in flight"), "{error}");
    // At its deadline, not when the answer came (~1.3 s).
    assert!(
        failed_after < Duration::from_millis(1_250),
        "failed after {failed_after:?}"
    );
    let first = tokio::time::timeout(HANG, first.expect("send")).await;
    assert_eq!(first.expect("not hung").expect("delivered").offset, 0);
    // The late answer ends the request and is not applied to the failed batch: the
    // partition is sendable again and every batch gave its memory back once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(producer.accumulator.memory_free_bytes(), buffer_bytes);
    let third = producer.send(ProducerRecord::new("t", "c")).await;
    tokio::time::timeout(HANG, third.expect("send"))
        .await
        .expect("not hung")
        .expect("a later batch is delivered");
    assert_eq!(producer.accumulator.memory_free_bytes(), buffer_bytes);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

/// A producer whose first Produce is answered with `first_code`, later ones with success;
/// returns how many Metadata requests named the topic once the record was delivered.
async fn metadata_requests_after_one_failure(first_code: i16) -> usize {
    let (asked, answered) = (Arc::new(AtomicUsize::new(0)), AtomicUsize::new(0));
    let counted = asked.clone();
    let addr = fake_broker::start(Script {
        metadata: Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            TopicAnswer::Leaders(vec![0])
        }),
        produce: Arc::new(move |_, _| match answered.fetch_add(1, Ordering::SeqCst) {
            0 => Some(first_code),
            _ => Some(0),
        }),
        ..Script::default()
    })
    .await;
    let producer = producer(&addr, |_| {}).await;
    let metadata = outcome_of_one(&producer, "t")
        .await
        .expect("delivered on the retry");
    assert_eq!(metadata.offset, 0);
    // A background refresh may still be on its way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    asked.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_slow_broker_is_retried_without_asking_for_metadata() {
    // REQUEST_TIMED_OUT: the leader is right, only slow. One Metadata request: `send`'s.
    assert_eq!(metadata_requests_after_one_failure(7).await, 1);
}

#[tokio::test]
async fn a_moved_leader_is_looked_up_and_the_batch_delivered() {
    assert_eq!(
        metadata_requests_after_one_failure(codes::NOT_LEADER_OR_FOLLOWER).await,
        2
    );
}

#[tokio::test]
async fn a_delivery_timeout_below_linger_plus_request_timeout_is_refused() {
    let mut config = ProducerConfig::new("127.0.0.1:1");
    config.linger_ms = 100;
    config.client.connection.request_timeout_ms = 1_000;
    config.delivery_timeout_ms = 1_099;
    let Err(error) = Producer::new(config).await else {
        panic!("accepted");
    };
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(ProducerConfig::new("x").delivery_timeout_ms == 120_000);
}

#[tokio::test]
async fn no_batch_in_flight_per_partition_is_refused_and_the_default_follows_idempotence() {
    let mut config = ProducerConfig::new("127.0.0.1:1");
    assert_eq!(config.in_flight_per_partition_max, None);
    assert!(config.idempotent(), "acks=all is idempotent by default");
    assert_eq!(config.in_flight_per_partition(), 5);
    config.acks = Acks::Leader;
    assert!(!config.idempotent());
    assert_eq!(config.in_flight_per_partition(), 1);
    config.in_flight_per_partition_max = Some(0);
    let Err(error) = Producer::new(config).await else {
        panic!("accepted");
    };
    assert!(
        matches!(&error, Error::Config(m) if m.contains("in_flight_per_partition_max")),
        "{error:?}"
    );
}

#[test]
fn retry_backoff_doubles_within_its_bounds() {
    let pauses: Vec<u64> = (0..6).map(|n| retry_backoff_ms(100, 1_000, n)).collect();
    assert_eq!(pauses, vec![100, 200, 400, 800, 1_000, 1_000]);
    assert_eq!(retry_backoff_ms(100, 10, 3), 100);
    assert_eq!(retry_backoff_ms(100, 1_000, u32::MAX), 1_000);
}

#[tokio::test]
async fn a_topic_without_a_leader_does_not_hold_up_a_topic_with_one() {
    // "slow" has a leader for the first Metadata answer only (so `send` accepts records),
    // then none: its batches fail with NOT_LEADER_OR_FOLLOWER and wait for a leader.
    let slow_lookups = Arc::new(AtomicUsize::new(0));
    let lookups = slow_lookups.clone();
    let addr = fake_broker::start(Script {
        metadata: Arc::new(move |topic| match topic {
            "slow" if lookups.fetch_add(1, Ordering::SeqCst) > 0 => {
                TopicAnswer::Error(LEADER_NOT_AVAILABLE)
            }
            "slow" => TopicAnswer::Leaders(vec![0; SLOW_PARTITIONS]),
            _ => TopicAnswer::Leaders(vec![0]),
        }),
        produce: Arc::new(|topic, _| match topic {
            "slow" => Some(codes::NOT_LEADER_OR_FOLLOWER),
            _ => Some(0),
        }),
        ..Script::default()
    })
    .await;
    let producer = producer(&addr, |c| {
        c.client.connection.request_timeout_ms = 1_000;
        c.delivery_timeout_ms = 1_500;
    })
    .await;
    let mut stuck = Vec::new();
    for partition in 0..SLOW_PARTITIONS {
        let record = ProducerRecord::new("slow", "v").with_partition(partition as i32);
        stuck.push(producer.send(record).await.expect("send"));
    }
    // Let the slow batches fail once and start waiting for their leader.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let metadata = outcome_of_one(&producer, "fast").await.expect("delivered");
    assert_eq!(metadata.offset, 0);
    // Generous, but well under one blocking lookup per slow batch (2 s each).
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "fast waited {waited:?}");
    for delivery in stuck {
        let error = tokio::time::timeout(HANG, delivery)
            .await
            .expect("failed within the bound")
            .expect_err("no leader ever");
        assert!(matches!(error, Error::DeliveryTimeout { .. }), "{error:?}");
    }
}

const SLOW_PARTITIONS: usize = 6;
const LEADER_NOT_AVAILABLE: i16 = 5;

/// Metadata that names a leader missing from its own broker list (caught mid-change) is
/// stale: the batch waits for fresh metadata and goes to the real leader, instead of
/// failing at once with a non-retriable error.
#[tokio::test]
async fn a_leader_missing_from_the_broker_list_is_looked_up_again() {
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let addr = fake_broker::start(Script {
        // Broker 7 is not in the broker list (only this node, 0, is).
        metadata: Arc::new(move |_| match counted.fetch_add(1, Ordering::SeqCst) {
            0 => TopicAnswer::Leaders(vec![7]),
            _ => TopicAnswer::Leaders(vec![0]),
        }),
        ..Script::default()
    })
    .await;
    let producer = producer(&addr, |_| {}).await;
    let metadata = outcome_of_one(&producer, "t")
        .await
        .expect("delivered once metadata names a known leader");
    assert_eq!((metadata.partition, metadata.offset), (0, 0));
    assert!(asked.load(Ordering::SeqCst) >= 2, "metadata asked again");
}

/// A broker without InitProducerId: idempotence by default falls back to a plain producer,
/// idempotence asked for fails at once; with acks=1 it is refused before connecting.
#[tokio::test]
async fn without_init_producer_id_default_idempotence_falls_back_and_asked_for_fails() {
    let addr = fake_broker::start(Script::default()).await;
    let producer = producer(&addr, |_| {}).await;
    assert!(!producer.idempotent(), "fell back");
    let metadata = outcome_of_one(&producer, "t").await.expect("delivered");
    assert_eq!(metadata.offset, 0);
    let mut config = ProducerConfig::new(&addr);
    config.idempotence = Some(true);
    match Producer::new(config).await {
        Err(Error::UnsupportedVersion { api }) => assert!(api.contains("InitProducerId")),
        Err(other) => panic!("expected UnsupportedVersion: {other:?}"),
        Ok(_) => panic!("an idempotent producer without a producer id"),
    }
    let mut config = ProducerConfig::new(&addr);
    config.idempotence = Some(true);
    config.acks = Acks::Leader;
    let Err(Error::Config(message)) = Producer::new(config).await else {
        panic!("idempotence with acks=1 is refused");
    };
    assert!(message.contains("acks"), "{message}");
}

/// A broker that refuses InitProducerId (here CLUSTER_AUTHORIZATION_FAILED, 31: not
/// retriable): idempotence by default falls back to a plain producer, asked for it fails
/// with that answer; one that gives an id makes the default producer idempotent.
#[tokio::test]
async fn a_refused_init_producer_id_falls_back_by_default_and_fails_when_asked_for() {
    let refusing = fake_broker::start(Script {
        init_producer_id: Some(31),
        ..Script::default()
    })
    .await;
    let plain = producer(&refusing, |_| {}).await;
    assert!(!plain.idempotent(), "fell back");
    assert_eq!(
        outcome_of_one(&plain, "t").await.expect("delivered").offset,
        0
    );
    let mut config = ProducerConfig::new(&refusing);
    config.idempotence = Some(true);
    match Producer::new(config).await {
        Err(Error::Broker { code: 31, .. }) => {}
        Err(other) => panic!("expected the broker's refusal: {other:?}"),
        Ok(_) => panic!("an idempotent producer without a producer id"),
    }
    let giving = fake_broker::start(Script {
        init_producer_id: Some(0),
        ..Script::default()
    })
    .await;
    assert!(producer(&giving, |_| {}).await.idempotent());
}
