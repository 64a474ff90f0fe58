//! `poll` against a scripted broker ([`crate::fake_broker`]): setting unknown positions
//! (by the reset policy, or from the commit during a rejoin) keeps to the poll's time, as
//! Java's consumer does.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consumer::Assignor;
use crate::error::codes;
use crate::fake_broker::{self, Script, LISTED_OFFSET};
use crate::{Consumer, ConsumerConfig, Error, TopicPartition};

/// TOPIC_AUTHORIZATION_FAILED: final.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// Longest a test here (or in `commit_tests.rs`) may take before it counts as hung (upper
/// bounds only).
pub(super) const HANG: Duration = Duration::from_secs(15);

/// A consumer without a group (so positions come from the reset policy), assigned `t-0`,
/// on a broker whose n-th ListOffsets is answered by `list`; also how many were sent.
async fn assigned_consumer(list: fn(usize) -> Option<i16>) -> (Consumer, Arc<AtomicUsize>) {
    let lists = Arc::new(AtomicUsize::new(0));
    let counted = lists.clone();
    let addr = fake_broker::start(Script {
        list_offsets: Arc::new(move || list(counted.fetch_add(1, Ordering::SeqCst))),
        ..Script::default()
    })
    .await;
    let mut config = ConsumerConfig::new(&addr);
    config.retry_backoff_ms = 50;
    config.retry_backoff_max_ms = 200;
    let mut consumer = Consumer::new(config).await.unwrap();
    consumer.assign(&[t0()]).unwrap();
    (consumer, lists)
}

pub(super) fn t0() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// One `poll` of `timeout` that must end without an error, with no records, and near its
/// timeout (well within 1.5 s): what a poll does while positions cannot be set yet.
pub(super) async fn poll_empty_within(consumer: &mut Consumer, timeout: Duration) {
    let started = Instant::now();
    let polled = tokio::time::timeout(HANG, consumer.poll(timeout)).await;
    let records = polled.expect("not hung").expect("no error from poll");
    assert!(records.is_empty());
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "kept to its timeout: {waited:?}"
    );
}

/// A retriable ListOffsets error while resetting a position (no committed offset) is
/// retried within the poll's time, never an error from `poll` (Java's
/// `resetPositionsIfNeeded`); a leader gone for the whole poll leaves the position unknown
/// and the poll empty at its timeout.
#[tokio::test]
async fn a_poll_retries_a_retriable_offset_reset_error_within_its_time() {
    let (mut recovering, lists) = assigned_consumer(|n| {
        Some(match n {
            0 => codes::NOT_LEADER_OR_FOLLOWER,
            1 => codes::LEADER_NOT_AVAILABLE,
            _ => 0,
        })
    })
    .await;
    let polled = tokio::time::timeout(HANG, recovering.poll(Duration::from_millis(1000))).await;
    let records = polled.expect("not hung").expect("no error from poll");
    assert!(records.is_empty());
    assert_eq!(recovering.position(&t0()), Some(LISTED_OFFSET));
    assert_eq!(lists.load(Ordering::SeqCst), 3, "retried");

    let (mut leaderless, lists) = assigned_consumer(|_| Some(codes::NOT_LEADER_OR_FOLLOWER)).await;
    poll_empty_within(&mut leaderless, Duration::from_millis(400)).await;
    assert_eq!(leaderless.position(&t0()), None);
    assert!(lists.load(Ordering::SeqCst) >= 2, "retried");
}

/// A final ListOffsets error (not authorized) is still returned from `poll`, at once.
#[tokio::test]
async fn a_poll_returns_a_final_offset_reset_error() {
    let (mut denied, lists) = assigned_consumer(|_| Some(TOPIC_AUTHORIZATION_FAILED)).await;
    let polled = tokio::time::timeout(HANG, denied.poll(Duration::from_millis(1000))).await;
    let error = polled.expect("not hung").expect_err("a final error");
    assert_eq!(error.code(), Some(TOPIC_AUTHORIZATION_FAILED), "{error}");
    assert!(!matches!(error, Error::ApiTimeout { .. }));
    assert_eq!(lists.load(Ordering::SeqCst), 1, "not retried");
}

/// A cooperative member of group `g` subscribed to `t`: its first JoinGroup is answered
/// (it owns `t-0`), later ones never; OffsetFetch answers COORDINATOR_LOAD_IN_PROGRESS
/// until `loaded` is set. Polled once so it owns `t-0` with its position still unknown.
async fn member_with_unknown_position(loaded: Arc<AtomicBool>) -> Consumer {
    let joins = Arc::new(AtomicUsize::new(0));
    let addr = fake_broker::start(Script {
        join_group: Arc::new(move || (joins.fetch_add(1, Ordering::SeqCst) == 0).then_some(0)),
        offset_fetch: Arc::new(move || {
            Some(match loaded.load(Ordering::SeqCst) {
                true => 0,
                false => codes::COORDINATOR_LOAD_IN_PROGRESS,
            })
        }),
        ..Script::default()
    })
    .await;
    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("g".to_owned());
    config.auto_commit = false;
    config.assignors = vec![Assignor::CooperativeSticky];
    config.retry_backoff_ms = 50;
    config.retry_backoff_max_ms = 200;
    let mut consumer = Consumer::new(config).await.unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let polled = tokio::time::timeout(HANG, consumer.poll(Duration::from_millis(500))).await;
    polled.expect("not hung").expect("joined");
    assert_eq!(consumer.assignment(), vec![t0()]);
    assert_eq!(consumer.position(&t0()), None);
    consumer
}

/// A kept partition whose position is unknown while a (cooperative) rejoin is in progress
/// does not make `poll` wait for the whole join past its timeout: the committed offsets need
/// the membership the join holds, so they are fetched once it has been taken in.
#[tokio::test]
async fn a_poll_keeps_to_its_timeout_while_a_rejoin_holds_an_unknown_position() {
    let loaded = Arc::new(AtomicBool::new(false));
    let mut consumer = member_with_unknown_position(loaded.clone()).await;
    loaded.store(true, Ordering::SeqCst);
    consumer.subscribe(&["t"]).unwrap(); // asks for a rejoin, which is never answered
    poll_empty_within(&mut consumer, Duration::from_millis(300)).await;
    assert_eq!(consumer.assignment(), vec![t0()], "still owned");
}

/// The n-th ListOffsets fails with a retriable error for n < 3 (a leader moved, the topic
/// not yet known to the leader, a broker too slow), then succeeds.
fn recovers_after_three(n: usize) -> Option<i16> {
    Some(match n {
        0 => codes::NOT_LEADER_OR_FOLLOWER,
        1 => codes::UNKNOWN_TOPIC_OR_PARTITION,
        2 => codes::REQUEST_TIMED_OUT,
        _ => 0,
    })
}

/// `seek_to_beginning`, `seek_to_end` and `seek_to_timestamp` retry retriable ListOffsets
/// errors (Java's `beginningOffsets`/`endOffsets`/`offsetsForTimes` do, until
/// `default.api.timeout.ms`) instead of failing at the first one.
#[tokio::test]
async fn a_seek_retries_a_retriable_list_offsets_error() {
    let (mut beginning, lists) = assigned_consumer(recovers_after_three).await;
    let sought = tokio::time::timeout(HANG, beginning.seek_to_beginning(&[t0()])).await;
    sought.expect("not hung").expect("retried to success");
    assert_eq!(beginning.position(&t0()), Some(LISTED_OFFSET));
    assert_eq!(lists.load(Ordering::SeqCst), 4, "retried");

    let (mut end, lists) = assigned_consumer(recovers_after_three).await;
    let sought = tokio::time::timeout(HANG, end.seek_to_end(&[t0()])).await;
    sought.expect("not hung").expect("retried to success");
    assert_eq!(end.position(&t0()), Some(LISTED_OFFSET));
    assert_eq!(lists.load(Ordering::SeqCst), 4, "retried");

    let (mut by_time, lists) = assigned_consumer(recovers_after_three).await;
    let sought = tokio::time::timeout(HANG, by_time.seek_to_timestamp(&[t0()], 1_000)).await;
    sought.expect("not hung").expect("retried to success");
    assert_eq!(by_time.position(&t0()), Some(LISTED_OFFSET));
    assert!(lists.load(Ordering::SeqCst) >= 4, "retried");
}

/// A leader gone for longer than `default_api_timeout_ms` fails the seek with
/// [`Error::ApiTimeout`] at about that time; a final error fails it at once.
#[tokio::test]
async fn a_seek_keeps_to_the_api_timeout_and_returns_a_final_error_at_once() {
    let (mut leaderless, lists) = assigned_consumer(|_| Some(codes::NOT_LEADER_OR_FOLLOWER)).await;
    leaderless.config.default_api_timeout_ms = 400;
    let started = Instant::now();
    let sought = tokio::time::timeout(HANG, leaderless.seek_to_end(&[t0()])).await;
    let error = sought.expect("not hung").expect_err("timed out");
    let waited = started.elapsed();
    assert!(matches!(error, Error::ApiTimeout { .. }), "{error}");
    assert!(
        waited < Duration::from_millis(1500),
        "kept to it: {waited:?}"
    );
    assert!(lists.load(Ordering::SeqCst) >= 2, "retried");
    assert_eq!(leaderless.position(&t0()), None);

    let (mut denied, lists) = assigned_consumer(|_| Some(TOPIC_AUTHORIZATION_FAILED)).await;
    let sought = tokio::time::timeout(HANG, denied.seek_to_timestamp(&[t0()], 1_000)).await;
    let error = sought.expect("not hung").expect_err("a final error");
    assert_eq!(error.code(), Some(TOPIC_AUTHORIZATION_FAILED), "{error}");
    assert_eq!(lists.load(Ordering::SeqCst), 1, "not retried");
}

/// A position that went out of range is set by the reset policy, as Java's AWAIT_RESET:
/// when the reset's ListOffsets cannot be answered within one poll, the next poll resets
/// again instead of starting from the group's commit (whose offset may be the one that is
/// out of range).
#[tokio::test]
async fn an_out_of_range_position_waits_for_its_reset_not_the_commit() {
    let listable = Arc::new(AtomicBool::new(false));
    let (lists, offset_fetches) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let addr = fake_broker::start(Script {
        list_offsets: {
            let (listable, lists) = (listable.clone(), lists.clone());
            Arc::new(move || {
                lists.fetch_add(1, Ordering::SeqCst);
                Some(match listable.load(Ordering::SeqCst) {
                    true => 0,
                    false => codes::NOT_LEADER_OR_FOLLOWER,
                })
            })
        },
        offset_fetch: {
            let offset_fetches = offset_fetches.clone();
            Arc::new(move || {
                offset_fetches.fetch_add(1, Ordering::SeqCst);
                Some(0)
            })
        },
        fetch: Some(Arc::new(|offset| match offset {
            fake_broker::COMMITTED_OFFSET => codes::OFFSET_OUT_OF_RANGE,
            _ => 0,
        })),
        ..Script::default()
    })
    .await;
    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("g".to_owned());
    config.auto_commit = false;
    config.retry_backoff_ms = 50;
    config.retry_backoff_max_ms = 100;
    config.fetch_wait_ms_max = 100;
    let mut consumer = Consumer::new(config).await.unwrap();
    consumer.assign(&[t0()]).unwrap();
    let started = Instant::now();
    while lists.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < HANG, "never reset");
        poll_empty_within(&mut consumer, Duration::from_millis(200)).await;
    }
    // The reset ran out of that poll's time; the position is unknown, awaiting a reset.
    poll_empty_within(&mut consumer, Duration::from_millis(200)).await;
    assert_eq!(consumer.position(&t0()), None);
    listable.store(true, Ordering::SeqCst);
    while consumer.position(&t0()).is_none() {
        assert!(started.elapsed() < HANG, "never reset");
        poll_empty_within(&mut consumer, Duration::from_millis(200)).await;
    }
    assert_eq!(consumer.position(&t0()), Some(LISTED_OFFSET));
    assert_eq!(
        offset_fetches.load(Ordering::SeqCst),
        1,
        "the commit was not asked for again"
    );
}
