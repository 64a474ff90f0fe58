//! Group membership against a scripted broker ([`crate::fake_broker`]): coordinator
//! lookups, joins and heartbeats bounded by time and by the caller's bound.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{find_coordinator, GroupMember};
use crate::error::codes;
use crate::fake_broker::{self, Script};
use crate::{ClientConfig, Cluster, ConsumerConfig, TopicPartition};

/// Longest a test here may take before it counts as hung (upper bounds only).
const HANG: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_coordinator_loading_for_three_seconds_is_waited_for() {
    let started = Instant::now();
    let addr = fake_broker::start(Script {
        find_coordinator: Arc::new(move || match started.elapsed() < Duration::from_secs(3) {
            true => Some(codes::COORDINATOR_NOT_AVAILABLE),
            false => Some(0),
        }),
        ..Script::default()
    })
    .await;
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let found = find_coordinator(&cluster, "g", deadline_after(HANG / 2));
    let found = tokio::time::timeout(HANG, found).await;
    found.expect("not hung").expect("found once loaded");
}

/// A member of group `g` on a broker whose JoinGroup answers come from `join_group`.
async fn group_member(
    join_group: impl Fn() -> Option<i16> + Send + Sync + 'static,
    adjust: impl FnOnce(&mut ConsumerConfig),
) -> GroupMember {
    let addr = fake_broker::start(Script {
        join_group: Arc::new(join_group),
        ..Script::default()
    })
    .await;
    let mut config = ConsumerConfig::new(&addr);
    adjust(&mut config);
    let cluster = Cluster::connect(config.client.clone()).await.unwrap();
    GroupMember::new(cluster, config, "g".to_owned())
}

#[tokio::test]
async fn a_join_waits_out_a_coordinator_loading_for_three_seconds() {
    let started = Instant::now();
    let mut member = group_member(
        move || match started.elapsed() < Duration::from_secs(3) {
            true => Some(codes::COORDINATOR_LOAD_IN_PROGRESS),
            false => Some(0),
        },
        |_| {},
    )
    .await;
    let joined = tokio::time::timeout(HANG, member.join(&["t".to_owned()], &[])).await;
    let joined = joined.expect("not hung").expect("joined once loaded");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.assignment, vec![TopicPartition::new("t", 0)]);
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn a_join_to_a_coordinator_that_never_loads_ends_at_the_api_timeout() {
    let mut member = group_member(
        || Some(codes::COORDINATOR_LOAD_IN_PROGRESS),
        |c| {
            c.default_api_timeout_ms = 700;
        },
    )
    .await;
    let started = Instant::now();
    let joined = tokio::time::timeout(HANG, member.join(&["t".to_owned()], &[])).await;
    let Err(error) = joined.expect("ended within the bound") else {
        panic!("joined a coordinator that never loads");
    };
    assert_eq!(error.code(), Some(codes::COORDINATOR_LOAD_IN_PROGRESS));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
}

#[tokio::test]
async fn a_permanent_join_error_fails_at_once_and_member_id_required_retries_at_once() {
    // GROUP_AUTHORIZATION_FAILED: not retriable.
    let mut member = group_member(|| Some(30), |_| {}).await;
    let started = Instant::now();
    let error = member.join(&["t".to_owned()], &[]).await.err().unwrap();
    assert_eq!(error.code(), Some(30), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // MEMBER_ID_REQUIRED, then accepted: no backoff in between, however long.
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let mut member = group_member(
        move || match asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Some(codes::MEMBER_ID_REQUIRED),
            _ => Some(0),
        },
        |c| c.retry_backoff_ms = 5_000,
    )
    .await;
    let started = Instant::now();
    let joined = tokio::time::timeout(HANG, member.join(&["t".to_owned()], &[])).await;
    joined.expect("not hung").expect("joined on the second try");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A caller's bound `after` from now.
fn deadline_after(after: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + after
}

/// A broker whose FindCoordinator answers come from `find_coordinator`; the client's
/// request timeout is `request_timeout_ms`.
async fn cluster_finding(
    find_coordinator: impl Fn() -> Option<i16> + Send + Sync + 'static,
    request_timeout_ms: u64,
) -> Arc<Cluster> {
    let addr = fake_broker::start(Script {
        find_coordinator: Arc::new(find_coordinator),
        ..Script::default()
    })
    .await;
    let mut config = ClientConfig::new(&addr);
    config.connection.request_timeout_ms = request_timeout_ms;
    Cluster::connect(config).await.unwrap()
}

#[tokio::test]
async fn a_coordinator_that_never_loads_fails_at_the_callers_deadline() {
    let cluster = cluster_finding(|| Some(codes::COORDINATOR_NOT_AVAILABLE), 30_000).await;
    let started = Instant::now();
    let found = find_coordinator(&cluster, "g", deadline_after(Duration::from_millis(500)));
    let Err(error) = tokio::time::timeout(HANG, found).await.expect("not hung") else {
        panic!("found a coordinator that never loads");
    };
    assert_eq!(
        error.code(),
        Some(codes::COORDINATOR_NOT_AVAILABLE),
        "{error}"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "not the request timeout: {waited:?}"
    );
}

/// A commit's coordinator lookup waits as long as the commit may (`default_api_timeout_ms`),
/// not just one `request_timeout_ms`.
#[tokio::test]
async fn a_coordinator_lookup_for_a_commit_waits_up_to_the_api_timeout() {
    let started = Instant::now();
    let cluster = cluster_finding(
        move || match started.elapsed() < Duration::from_millis(1_500) {
            true => Some(codes::COORDINATOR_NOT_AVAILABLE),
            false => Some(0),
        },
        300,
    )
    .await;
    let mut config = ConsumerConfig::new("unused:1");
    config.default_api_timeout_ms = 10_000;
    let mut member = GroupMember::new(cluster, config, "g".to_owned());
    let found = tokio::time::timeout(HANG, member.coordinator()).await;
    found.expect("not hung").expect("found once available");
}

/// A join's coordinator lookup ends at the join's deadline, not a request timeout later.
#[tokio::test]
async fn a_join_whose_coordinator_is_never_found_ends_at_the_api_timeout() {
    let cluster = cluster_finding(|| Some(codes::COORDINATOR_NOT_AVAILABLE), 30_000).await;
    let mut config = ConsumerConfig::new("unused:1");
    config.default_api_timeout_ms = 500;
    let mut member = GroupMember::new(cluster, config, "g".to_owned());
    let started = Instant::now();
    let joined = tokio::time::timeout(HANG, member.join(&["t".to_owned()], &[])).await;
    let Err(error) = joined.expect("not hung") else {
        panic!("joined without a coordinator");
    };
    assert_eq!(error.code(), Some(codes::COORDINATOR_NOT_AVAILABLE));
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// A member of group `g` joined (generation 1) on a broker whose Heartbeat answers come
/// from `heartbeat` (counted in `beats`) and whose FindCoordinator calls are counted in
/// `finds`; heartbeats 50 ms apart, a session of `session_timeout_ms`.
async fn joined_member(
    heartbeat: impl Fn(usize) -> Option<i16> + Send + Sync + 'static,
    session_timeout_ms: i32,
    beats: Arc<AtomicUsize>,
    finds: Arc<AtomicUsize>,
) -> GroupMember {
    let addr = fake_broker::start(Script {
        heartbeat: Arc::new(move || heartbeat(beats.fetch_add(1, Ordering::SeqCst))),
        find_coordinator: Arc::new(move || {
            finds.fetch_add(1, Ordering::SeqCst);
            Some(0)
        }),
        ..Script::default()
    })
    .await;
    let mut config = ConsumerConfig::new(&addr);
    config.heartbeat_interval_ms = 50;
    config.retry_backoff_ms = 50;
    config.session_timeout_ms = session_timeout_ms;
    let cluster = Cluster::connect(config.client.clone()).await.unwrap();
    let mut member = GroupMember::new(cluster, config, "g".to_owned());
    let joined = tokio::time::timeout(HANG, member.join(&["t".to_owned()], &[])).await;
    joined.expect("not hung").expect("joined");
    assert!(!member.needs_rejoin());
    member
}

/// NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS: the
/// coordinator is looked up again and the same generation keeps heartbeating, no rejoin.
#[tokio::test]
async fn a_heartbeat_to_a_moved_coordinator_finds_it_again_without_a_rejoin() {
    let (beats, finds) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let answers = [
        codes::NOT_COORDINATOR,
        codes::COORDINATOR_NOT_AVAILABLE,
        codes::COORDINATOR_LOAD_IN_PROGRESS,
    ];
    let member = joined_member(
        move |n| Some(answers.get(n).copied().unwrap_or(0)),
        10_000,
        beats.clone(),
        finds.clone(),
    )
    .await;
    let finds_at_join = finds.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(!member.needs_rejoin(), "no rejoin");
    assert!(beats.load(Ordering::SeqCst) >= 6, "heartbeats went on");
    assert!(
        finds.load(Ordering::SeqCst) >= finds_at_join + 3,
        "coordinator looked up again after each"
    );
}

/// REBALANCE_IN_PROGRESS: rejoin with the same member id, heartbeating meanwhile.
#[tokio::test]
async fn a_rebalance_flags_a_rejoin_and_keeps_the_membership_and_the_heartbeats() {
    let beats = Arc::new(AtomicUsize::new(0));
    let mut member = joined_member(
        |_| Some(codes::REBALANCE_IN_PROGRESS),
        10_000,
        beats.clone(),
        Arc::default(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(member.needs_rejoin());
    assert!(!member.take_lost(), "the member id is kept");
    assert_eq!(member.member_id, "m-1");
    let before = beats.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(beats.load(Ordering::SeqCst) > before, "heartbeats went on");
}

/// UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID: the membership is lost.
#[tokio::test]
async fn a_fenced_member_loses_its_membership() {
    for code in [codes::UNKNOWN_MEMBER_ID, codes::ILLEGAL_GENERATION, 82] {
        let mut member =
            joined_member(move |_| Some(code), 10_000, Arc::default(), Arc::default()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(member.needs_rejoin(), "{code}");
        assert!(member.take_lost(), "{code}");
        assert_eq!((member.member_id.as_str(), member.generation_id), ("", -1));
    }
}

/// A coordinator that stays unknown past the session: rejoin (the coordinator has dropped
/// the member by then), keeping the member id for the join to try.
#[tokio::test]
async fn a_coordinator_unknown_for_a_whole_session_flags_a_rejoin() {
    let mut member = joined_member(
        |_| Some(codes::COORDINATOR_NOT_AVAILABLE),
        400,
        Arc::default(),
        Arc::default(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!member.needs_rejoin(), "not before the session ends");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(member.needs_rejoin());
    assert!(!member.take_lost());
}

/// A commit's answer about its generation (ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS) ends
/// it only while no later join has replaced it: a late answer leaves the new one alone.
#[tokio::test]
async fn a_commit_answer_about_a_replaced_generation_leaves_the_new_one_alone() {
    let mut member = joined_member(|_| Some(0), 10_000, Arc::default(), Arc::default()).await;
    let current = member.handle();
    current.generation_ended();
    assert!(member.needs_rejoin());
    let old = member.handle();
    let joined = tokio::time::timeout(HANG, member.join(&["t".to_owned()], &[])).await;
    joined.expect("not hung").expect("joined");
    assert!(
        !member.take_lost(),
        "a loss flagged before a join is the old generation's"
    );
    old.generation_ended();
    old.rebalancing();
    assert!(!member.needs_rejoin());
    assert!(!member.take_lost());
}
