//! Commits and committed-offset fetches against a scripted broker ([`crate::fake_broker`]):
//! a coordinator that moved is looked up again, synchronous calls retry retriable errors up
//! to `default_api_timeout_ms`, and a commit from an ended generation makes `poll` rejoin.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::consumer::tests::{poll_empty_within, t0, HANG};
use crate::consumer::RebalanceListener;
use crate::error::codes;
use crate::fake_broker::{self, Script, COMMITTED_OFFSET};
use crate::{Consumer, ConsumerConfig, Error, TopicPartition};

/// How many requests of each kind the fake broker was sent.
#[derive(Default, Clone)]
struct Counts {
    finds: Arc<AtomicUsize>,
    joins: Arc<AtomicUsize>,
    commits: Arc<AtomicUsize>,
    fetches: Arc<AtomicUsize>,
}

impl Counts {
    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

type Answers = fn(usize) -> Option<i16>;

/// A consumer of group `g` (auto-commit off, 50 ms retry backoff) on a broker whose n-th
/// OffsetCommit and OffsetFetch are answered by `commit` and `fetch`.
async fn consumer(
    commit: Answers,
    fetch: Answers,
    adjust: impl FnOnce(&mut ConsumerConfig),
) -> (Consumer, Counts) {
    consumer_finding(|_| Some(0), commit, fetch, adjust).await
}

/// [`consumer`], the n-th FindCoordinator answered by `find`.
async fn consumer_finding(
    find: Answers,
    commit: Answers,
    fetch: Answers,
    adjust: impl FnOnce(&mut ConsumerConfig),
) -> (Consumer, Counts) {
    let counts = Counts::default();
    let c = counts.clone();
    let addr = fake_broker::start(Script {
        find_coordinator: Arc::new(move || find(c.finds.fetch_add(1, Ordering::SeqCst))),
        join_group: {
            let joins = counts.joins.clone();
            Arc::new(move || {
                joins.fetch_add(1, Ordering::SeqCst);
                Some(0)
            })
        },
        offset_commit: {
            let commits = counts.commits.clone();
            Arc::new(move || commit(commits.fetch_add(1, Ordering::SeqCst)))
        },
        offset_fetch: {
            let fetches = counts.fetches.clone();
            Arc::new(move || fetch(fetches.fetch_add(1, Ordering::SeqCst)))
        },
        ..Script::default()
    })
    .await;
    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("g".to_owned());
    config.auto_commit = false;
    config.retry_backoff_ms = 50;
    config.retry_backoff_max_ms = 200;
    adjust(&mut config);
    (Consumer::new(config).await.unwrap(), counts)
}

fn offsets() -> BTreeMap<TopicPartition, i64> {
    BTreeMap::from([(t0(), 5)])
}

fn first_then_ok(code: i16) -> impl Fn(usize) -> Option<i16> {
    move |n| Some(if n == 0 { code } else { 0 })
}

/// NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE once: the coordinator is looked up again and
/// the commit (and the committed-offsets fetch) succeeds on the second try.
#[tokio::test]
async fn a_commit_answered_not_coordinator_finds_the_coordinator_again_and_succeeds() {
    let answers: [Answers; 2] = [
        |n| first_then_ok(codes::NOT_COORDINATOR)(n),
        |n| first_then_ok(codes::COORDINATOR_NOT_AVAILABLE)(n),
    ];
    for answer in answers {
        let (mut consumer, counts) = consumer(answer, answer, |_| {}).await;
        consumer.assign(&[t0()]).unwrap();
        let committed = tokio::time::timeout(HANG, consumer.commit_offsets(&offsets())).await;
        committed
            .expect("not hung")
            .expect("committed on the second try");
        assert_eq!(Counts::get(&counts.commits), 2);
        assert_eq!(Counts::get(&counts.finds), 2, "looked up again");
        let fetched = tokio::time::timeout(HANG, consumer.committed(&[t0()])).await;
        let fetched = fetched
            .expect("not hung")
            .expect("fetched on the second try");
        assert_eq!(fetched, BTreeMap::from([(t0(), COMMITTED_OFFSET)]));
        assert_eq!(Counts::get(&counts.fetches), 2);
        assert_eq!(Counts::get(&counts.finds), 3, "looked up again");
    }
}

/// A coordinator that stays loading: the commit is retried until `default_api_timeout_ms`,
/// then fails with a timeout that names the last error.
#[tokio::test]
async fn a_commit_to_a_coordinator_loading_past_the_api_timeout_fails_with_a_timeout() {
    let (mut consumer, counts) = consumer(
        |_| Some(codes::COORDINATOR_LOAD_IN_PROGRESS),
        |_| Some(codes::COORDINATOR_LOAD_IN_PROGRESS),
        |c| c.default_api_timeout_ms = 700,
    )
    .await;
    consumer.assign(&[t0()]).unwrap();
    let started = Instant::now();
    let committed = tokio::time::timeout(HANG, consumer.commit_offsets(&offsets())).await;
    let error = committed.expect("not hung").unwrap_err();
    let Error::ApiTimeout { last_error, .. } = &error else {
        panic!("not a timeout: {error}");
    };
    assert_eq!(last_error.code(), Some(codes::COORDINATOR_LOAD_IN_PROGRESS));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(Counts::get(&counts.commits) >= 3, "retried");
    assert_eq!(Counts::get(&counts.finds), 1, "still the coordinator");
    let fetched = tokio::time::timeout(HANG, consumer.committed(&[t0()])).await;
    let error = fetched.expect("not hung").unwrap_err();
    assert!(matches!(error, Error::ApiTimeout { .. }), "{error}");
}

/// A commit whose request times out (the coordinator went silent): the connection is given
/// up, the coordinator looked up again, and the commit retried.
#[tokio::test]
async fn a_commit_whose_request_times_out_is_retried_on_a_coordinator_looked_up_again() {
    let (mut consumer, counts) = consumer(
        |n| if n == 0 { None } else { Some(0) },
        |_| Some(0),
        |c| c.client.connection.request_timeout_ms = 300,
    )
    .await;
    consumer.assign(&[t0()]).unwrap();
    let committed = tokio::time::timeout(HANG, consumer.commit_offsets(&offsets())).await;
    committed
        .expect("not hung")
        .expect("committed on the second try");
    assert_eq!(Counts::get(&counts.commits), 2);
    assert_eq!(Counts::get(&counts.finds), 2, "looked up again");
}

/// An async commit is not retried, but a NOT_COORDINATOR answer still sends the next
/// commit to a coordinator looked up again.
#[tokio::test]
async fn an_async_commit_is_not_retried_but_forgets_a_moved_coordinator() {
    let (mut consumer, counts) = consumer(
        |n| first_then_ok(codes::NOT_COORDINATOR)(n),
        |_| Some(0),
        |_| {},
    )
    .await;
    consumer.assign(&[t0()]).unwrap();
    consumer.seek(&t0(), 5).unwrap();
    let handle = consumer.commit_async().await.unwrap();
    let result = tokio::time::timeout(HANG, handle).await.expect("not hung");
    let error = result.unwrap().unwrap_err();
    assert_eq!(error.code(), Some(codes::NOT_COORDINATOR), "{error}");
    assert_eq!(Counts::get(&counts.commits), 1, "not retried");
    let committed = tokio::time::timeout(HANG, consumer.commit()).await;
    committed.expect("not hung").expect("committed");
    assert_eq!(Counts::get(&counts.finds), 2, "looked up again");
}

/// Records what a rebalance told the application.
#[derive(Default, Clone)]
struct Told(Arc<Mutex<Vec<String>>>);

impl Told {
    fn push(&self, what: &str, partitions: &[TopicPartition]) {
        let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
        self.0
            .lock()
            .unwrap()
            .push(format!("{what} {}", names.join(",")));
    }
}

impl RebalanceListener for Told {
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        self.push("revoked", partitions);
    }
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        self.push("assigned", partitions);
    }
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        self.push("lost", partitions);
    }
}

/// A consumer subscribed to `t` that has joined and owns `t-0`; its first OffsetCommit is
/// answered `code`, later ones OK.
async fn joined_consumer(code: i16) -> (Consumer, Counts, Told) {
    let commit: Answers = match code {
        codes::ILLEGAL_GENERATION => |n| first_then_ok(codes::ILLEGAL_GENERATION)(n),
        codes::UNKNOWN_MEMBER_ID => |n| first_then_ok(codes::UNKNOWN_MEMBER_ID)(n),
        codes::FENCED_INSTANCE_ID => |n| first_then_ok(codes::FENCED_INSTANCE_ID)(n),
        _ => |n| first_then_ok(codes::REBALANCE_IN_PROGRESS)(n),
    };
    let (mut consumer, counts) = consumer(commit, |_| Some(0), |_| {}).await;
    let told = Told::default();
    consumer.set_rebalance_listener(Box::new(told.clone()));
    consumer.subscribe(&["t"]).unwrap();
    poll_until_joined(&mut consumer).await;
    assert_eq!(Counts::get(&counts.joins), 1);
    told.0.lock().unwrap().clear();
    (consumer, counts, told)
}

/// UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID on a commit: it fails as
/// CommitFailed, and the next poll rejoins afresh, the partitions lost (not revoked).
#[tokio::test]
async fn a_commit_from_an_ended_generation_fails_and_the_next_poll_rejoins() {
    for code in [
        codes::ILLEGAL_GENERATION,
        codes::UNKNOWN_MEMBER_ID,
        codes::FENCED_INSTANCE_ID,
    ] {
        let (mut consumer, counts, told) = joined_consumer(code).await;
        let committed = tokio::time::timeout(HANG, consumer.commit()).await;
        let error = committed.expect("not hung").unwrap_err();
        assert!(
            matches!(error, Error::CommitFailed { code: c, .. } if c == code),
            "{error}"
        );
        assert_eq!(Counts::get(&counts.commits), 1, "not retried");
        consumer.poll(Duration::from_millis(300)).await.unwrap();
        assert_eq!(Counts::get(&counts.joins), 2, "{code}: rejoined");
        let told = told.0.lock().unwrap().clone();
        assert_eq!(told.first().map(String::as_str), Some("lost t-0"), "{code}");
    }
}

/// REBALANCE_IN_PROGRESS on a commit: it fails as RebalanceInProgress, and the next poll
/// rejoins with the same membership (the partitions are revoked, not lost).
#[tokio::test]
async fn a_commit_during_a_rebalance_fails_and_the_next_poll_rejoins() {
    let (mut consumer, counts, told) = joined_consumer(codes::REBALANCE_IN_PROGRESS).await;
    let committed = tokio::time::timeout(HANG, consumer.commit()).await;
    let error = committed.expect("not hung").unwrap_err();
    assert!(
        matches!(error, Error::RebalanceInProgress { .. }),
        "{error}"
    );
    consumer.poll(Duration::from_millis(300)).await.unwrap();
    assert_eq!(Counts::get(&counts.joins), 2, "rejoined");
    let told = told.0.lock().unwrap().clone();
    assert_eq!(told.first().map(String::as_str), Some("revoked t-0"));
    let committed = tokio::time::timeout(HANG, consumer.commit()).await;
    committed
        .expect("not hung")
        .expect("committed after the rebalance");
}

/// A coordinator that never answers: the commit ends at the API timeout, its last error the
/// request timeout, which names the API (it read "Ok(OffsetCommit) to …").
#[tokio::test]
async fn a_commit_never_answered_ends_at_the_api_timeout_naming_the_request() {
    let (mut consumer, _) = consumer(
        |_| None,
        |_| Some(0),
        |c| {
            c.client.connection.request_timeout_ms = 200;
            c.default_api_timeout_ms = 500;
        },
    )
    .await;
    consumer.assign(&[t0()]).unwrap();
    let committed = tokio::time::timeout(HANG, consumer.commit_offsets(&offsets())).await;
    let error = committed.expect("not hung").unwrap_err();
    let Error::ApiTimeout { last_error, .. } = &error else {
        panic!("not a timeout: {error}");
    };
    let Error::Timeout { what, .. } = last_error.as_ref() else {
        panic!("not a request timeout: {last_error}");
    };
    assert!(what.starts_with("OffsetCommit to 127.0.0.1:"), "{what}");
}

/// A coordinator loading when `poll` fetches the committed offsets: retried within the
/// poll's time (Java's `refreshCommittedOffsetsIfNeeded`), never an error from `poll`; the
/// position comes from the commit once it answers, and a coordinator loading for the whole
/// poll leaves the position unknown and the poll empty at its timeout.
#[tokio::test]
async fn a_poll_retries_a_loading_coordinator_within_its_time_instead_of_failing() {
    let (mut recovering, counts) = consumer(
        |_| Some(0),
        |n| {
            Some(if n < 2 {
                codes::COORDINATOR_LOAD_IN_PROGRESS
            } else {
                0
            })
        },
        |_| {},
    )
    .await;
    recovering.assign(&[t0()]).unwrap();
    let polled = tokio::time::timeout(HANG, recovering.poll(Duration::from_millis(1000))).await;
    let records = polled.expect("not hung").expect("no error from poll");
    assert!(records.is_empty());
    assert_eq!(recovering.position(&t0()), Some(COMMITTED_OFFSET));
    assert_eq!(Counts::get(&counts.fetches), 3, "retried");

    let (mut loading, counts) = consumer(
        |_| Some(0),
        |_| Some(codes::COORDINATOR_LOAD_IN_PROGRESS),
        |_| {},
    )
    .await;
    loading.assign(&[t0()]).unwrap();
    poll_empty_within(&mut loading, Duration::from_millis(400)).await;
    assert_eq!(loading.position(&t0()), None);
    assert!(Counts::get(&counts.fetches) >= 2, "retried");
}

/// An async commit with no coordinator to be found returns at once, as Java's
/// `commitAsync`: the lookup runs in its task, whose result is the lookup's last error.
#[tokio::test]
async fn an_async_commit_does_not_wait_for_the_coordinator_lookup() {
    let (mut consumer, counts) = consumer_finding(
        |_| Some(codes::COORDINATOR_NOT_AVAILABLE),
        |_| Some(0),
        |_| Some(0),
        |c| c.default_api_timeout_ms = 1000,
    )
    .await;
    consumer.assign(&[t0()]).unwrap();
    consumer.seek(&t0(), 5).unwrap();
    let started = Instant::now();
    let handle = tokio::time::timeout(HANG, consumer.commit_async()).await;
    let handle = handle.expect("not hung").expect("started");
    let returned = started.elapsed();
    assert!(returned < Duration::from_millis(300), "waited {returned:?}");
    let result = tokio::time::timeout(HANG, handle).await.expect("not hung");
    let error = result.unwrap().unwrap_err();
    assert_eq!(
        error.code(),
        Some(codes::COORDINATOR_NOT_AVAILABLE),
        "{error}"
    );
    assert!(
        Counts::get(&counts.finds) >= 2,
        "looked up in the background"
    );
    assert_eq!(Counts::get(&counts.commits), 0);
}

/// A consumer with auto-commit on (its interval never due here) and a `rebalance_timeout_ms`
/// of `rebalance_ms`, subscribed to `t`, that owns `t-0` at a known position; the n-th
/// OffsetCommit is answered by `commit`.
async fn auto_committing_consumer(commit: Answers, rebalance_ms: i32) -> (Consumer, Counts, Told) {
    let (mut consumer, counts) = consumer(
        commit,
        |_| Some(0),
        |c| {
            c.auto_commit = true;
            c.auto_commit_interval_ms = 600_000;
            c.rebalance_timeout_ms = rebalance_ms;
        },
    )
    .await;
    let told = Told::default();
    consumer.set_rebalance_listener(Box::new(told.clone()));
    consumer.subscribe(&["t"]).unwrap();
    poll_until_joined(&mut consumer).await;
    assert_eq!(Counts::get(&counts.commits), 0);
    told.0.lock().unwrap().clear();
    (consumer, counts, told)
}

/// The auto-commit before an eager rebalance revokes the partitions retries a loading
/// coordinator, as Java's `onJoinPrepare`, up to `rebalance_timeout_ms`: the commit lands
/// before `on_revoked`; one that never lands holds the rebalance up no longer than that.
#[tokio::test]
async fn the_commit_before_a_rebalance_is_retried_within_the_rebalance_timeout() {
    let loading_once: Answers = |n| first_then_ok(codes::COORDINATOR_LOAD_IN_PROGRESS)(n);
    let (mut consumer, counts, told) = auto_committing_consumer(loading_once, 5_000).await;
    consumer.subscribe(&["t"]).unwrap(); // asks for a rejoin
    let polled = tokio::time::timeout(HANG, consumer.poll(Duration::from_millis(300))).await;
    polled.expect("not hung").unwrap();
    assert_eq!(Counts::get(&counts.commits), 2, "retried");
    assert_eq!(Counts::get(&counts.joins), 2, "rejoined");
    let told_now = told.0.lock().unwrap().clone();
    assert_eq!(told_now.first().map(String::as_str), Some("revoked t-0"));

    let loading: Answers = |_| Some(codes::COORDINATOR_LOAD_IN_PROGRESS);
    let (mut stuck, counts, _) = auto_committing_consumer(loading, 500).await;
    stuck.subscribe(&["t"]).unwrap();
    let started = Instant::now();
    let polled = tokio::time::timeout(HANG, stuck.poll(Duration::from_millis(100))).await;
    polled.expect("not hung").unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(Counts::get(&counts.commits) >= 3, "retried");
    // The join it went on to runs in the background: the next poll takes it in.
    let polled = tokio::time::timeout(HANG, stuck.poll(Duration::from_millis(300))).await;
    polled.expect("not hung").unwrap();
    assert_eq!(Counts::get(&counts.joins), 2, "rejoined after giving up");
}

/// Polls until the consumer owns `t-0` and knows its position.
async fn poll_until_joined(consumer: &mut Consumer) {
    let started = Instant::now();
    while consumer.assignment().is_empty() || consumer.position(&t0()).is_none() {
        assert!(started.elapsed() < HANG, "never joined");
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
}

/// A group consumer with auto-commit every `interval_ms`, assigned `t-0` (its position from
/// the group's commit); the n-th OffsetCommit is answered by `commit`.
async fn assigned_auto_committer(commit: Answers, interval_ms: u64) -> (Consumer, Counts) {
    let (mut consumer, counts) = consumer(
        commit,
        |_| Some(0),
        |c| {
            c.auto_commit = true;
            c.auto_commit_interval_ms = interval_ms;
        },
    )
    .await;
    consumer.assign(&[t0()]).unwrap();
    (consumer, counts)
}

/// Auto-commit runs in the background, as Java's: a coordinator that never answers the
/// commit does not hold `poll` up (it held each due poll for the request timeout), and no
/// second commit starts while the first is in flight.
#[tokio::test]
async fn an_unanswered_auto_commit_does_not_hold_poll_up() {
    let (mut consumer, counts) = assigned_auto_committer(|_| None, 100).await;
    let started = Instant::now();
    while Counts::get(&counts.commits) == 0 {
        assert!(started.elapsed() < HANG, "never auto-committed");
        poll_empty_within(&mut consumer, Duration::from_millis(200)).await;
    }
    for _ in 0..3 {
        poll_empty_within(&mut consumer, Duration::from_millis(200)).await;
    }
    assert_eq!(Counts::get(&counts.commits), 1, "one auto-commit at a time");
}

/// An auto-commit that fails with a retriable error is tried again after
/// `retry_backoff_ms`, not a whole interval later (Java's `nextAutoCommitTimer`).
#[tokio::test]
async fn a_retriable_auto_commit_failure_is_retried_after_the_backoff() {
    let loading_once: Answers = |n| first_then_ok(codes::COORDINATOR_LOAD_IN_PROGRESS)(n);
    let (mut consumer, counts) = assigned_auto_committer(loading_once, 3_000).await;
    let started = Instant::now();
    while Counts::get(&counts.commits) == 0 {
        assert!(started.elapsed() < HANG, "never auto-committed");
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    let failed_at = Instant::now();
    while Counts::get(&counts.commits) < 2 {
        let waited = failed_at.elapsed();
        assert!(
            waited < Duration::from_millis(2_000),
            "not retried soon: {waited:?}"
        );
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
}

/// Commits land in the order they were made, as Java's (one coordinator connection, in
/// order): async commits in their order, and each before a later synchronous commit, so
/// older positions never overwrite newer ones.
#[tokio::test]
async fn commits_land_in_the_order_they_were_made() {
    let script = Script::default();
    let seen = script.commits_seen.clone();
    let addr = fake_broker::start(script).await;
    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("g".to_owned());
    config.auto_commit = false;
    let mut consumer = Consumer::new(config).await.unwrap();
    consumer.assign(&[t0()]).unwrap();
    let at = |offset| BTreeMap::from([(t0(), offset)]);
    for round in 0..20 {
        seen.lock().unwrap().clear();
        consumer.seek(&t0(), round * 10 + 1).unwrap();
        let first = consumer.commit_async().await.unwrap();
        consumer.seek(&t0(), round * 10 + 2).unwrap();
        let second = consumer.commit_async().await.unwrap();
        let sync = tokio::time::timeout(HANG, consumer.commit_offsets(&at(round * 10 + 3))).await;
        sync.expect("not hung").expect("committed");
        first.await.unwrap().expect("first async commit");
        second.await.unwrap().expect("second async commit");
        let order: Vec<i64> = seen.lock().unwrap().iter().map(|c| c[0]).collect();
        let expected: Vec<i64> = (1..=3).map(|n| round * 10 + n).collect();
        assert_eq!(order, expected, "round {round}");
    }
}

/// A ticket that lands before an earlier one (its coordinator lookup failed) does not let a
/// later one go before the earlier one has landed.
#[tokio::test]
async fn a_ticket_waits_for_every_earlier_one_even_when_a_middle_one_landed_first() {
    let mut order = super::CommitOrder::default();
    let (first, second, third) = (order.ticket(), order.ticket(), order.ticket());
    drop(second);
    let waited = tokio::time::timeout(Duration::from_millis(100), third.turn()).await;
    assert!(waited.is_err(), "went before the first landed");
    drop(first);
    tokio::time::timeout(HANG, third.turn())
        .await
        .expect("its turn");
    let all = tokio::time::timeout(Duration::from_millis(100), order.all_landed()).await;
    assert!(all.is_err(), "the third has not landed");
    drop(third);
    tokio::time::timeout(HANG, order.all_landed())
        .await
        .expect("all landed");
}
