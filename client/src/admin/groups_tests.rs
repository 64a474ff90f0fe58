//! Admin group calls against a scripted broker ([`crate::fake_broker`]): lag arithmetic, and
//! committed-offset fetches and commits that retry a coordinator loading or moved, as
//! Java's admin does.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::lag_records;
use crate::error::codes;
use crate::fake_broker::{self, Script};
use crate::{Admin, ClientConfig, TopicPartition};

/// Longest a test here may take before it counts as hung (upper bounds only).
const HANG: Duration = Duration::from_secs(15);

#[test]
fn lag_is_unknown_without_a_commit() {
    assert_eq!(lag_records(None, 10), None);
    assert_eq!(lag_records(None, 0), None);
    assert_eq!(lag_records(Some(4), 10), Some(6));
    assert_eq!(lag_records(Some(12), 10), Some(0));
}

/// How many FindCoordinator, OffsetFetch, OffsetCommit and DeleteGroups requests the
/// broker was sent.
#[derive(Default, Clone)]
struct Counts {
    finds: Arc<AtomicUsize>,
    fetches: Arc<AtomicUsize>,
    commits: Arc<AtomicUsize>,
    deletes: Arc<AtomicUsize>,
}

/// The n-th code of `codes` (0 past its end).
fn nth(codes: &[i16], n: usize) -> Option<i16> {
    Some(codes.get(n).copied().unwrap_or(0))
}

/// An admin on a broker whose n-th OffsetFetch and OffsetCommit are answered by the n-th
/// code of `fetch` and `commit` (0 past their ends).
async fn admin_on(fetch: &'static [i16], commit: &'static [i16]) -> (Admin, Counts) {
    admin_deleting(fetch, commit, &[]).await
}

/// [`admin_on`], the n-th DeleteGroups answered (per group) by the n-th code of `delete`.
async fn admin_deleting(
    fetch: &'static [i16],
    commit: &'static [i16],
    delete: &'static [i16],
) -> (Admin, Counts) {
    let counts = Counts::default();
    let (finds, fetches, commits, deletes) = (
        counts.finds.clone(),
        counts.fetches.clone(),
        counts.commits.clone(),
        counts.deletes.clone(),
    );
    let addr = fake_broker::start(Script {
        find_coordinator: Arc::new(move || {
            finds.fetch_add(1, Ordering::SeqCst);
            Some(0)
        }),
        offset_fetch: Arc::new(move || nth(fetch, fetches.fetch_add(1, Ordering::SeqCst))),
        offset_commit: Arc::new(move || nth(commit, commits.fetch_add(1, Ordering::SeqCst))),
        delete_groups: Arc::new(move |_| nth(delete, deletes.fetch_add(1, Ordering::SeqCst))),
        ..Script::default()
    })
    .await;
    (Admin::new(ClientConfig::new(&addr)).await.unwrap(), counts)
}

/// COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE on a
/// committed-offsets fetch (`groups describe`) are retried, the coordinator looked up again.
#[tokio::test]
async fn a_committed_offsets_fetch_retries_a_coordinator_loading_or_moved() {
    let retriable = &[
        codes::COORDINATOR_LOAD_IN_PROGRESS,
        codes::NOT_COORDINATOR,
        codes::COORDINATOR_NOT_AVAILABLE,
    ];
    let (admin, counts) = admin_on(retriable, &[]).await;
    let fetched = tokio::time::timeout(HANG, admin.committed_offsets("g")).await;
    fetched
        .expect("not hung")
        .expect("fetched on the fourth try");
    assert_eq!(counts.fetches.load(Ordering::SeqCst), 4);
    assert_eq!(counts.finds.load(Ordering::SeqCst), 4, "looked up again");

    let (admin, counts) = admin_on(retriable, &[]).await;
    let described = tokio::time::timeout(HANG, admin.describe_group_with_lag("g")).await;
    let (description, lag) = described.expect("not hung").expect("described");
    assert_eq!(description.state, "Empty");
    assert!(lag.is_empty());
    assert_eq!(counts.fetches.load(Ordering::SeqCst), 4);
}

/// A reset's commit (`groups reset-offsets`) answered NOT_COORDINATOR, then
/// COORDINATOR_LOAD_IN_PROGRESS, is retried until it lands.
#[tokio::test]
async fn an_offset_reset_retries_a_coordinator_loading_or_moved() {
    let retriable = &[codes::NOT_COORDINATOR, codes::COORDINATOR_LOAD_IN_PROGRESS];
    let (admin, counts) = admin_on(&[], retriable).await;
    let offsets = BTreeMap::from([(TopicPartition::new("t", 0), 3)]);
    let reset = tokio::time::timeout(HANG, admin.reset_group_offsets("g", &offsets)).await;
    reset
        .expect("not hung")
        .expect("committed on the third try");
    assert_eq!(counts.commits.load(Ordering::SeqCst), 3);
}

/// GROUP_ID_NOT_FOUND: final for a delete.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// A delete answered, in its per-group result, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR
/// and COORDINATOR_NOT_AVAILABLE is retried, the coordinator looked up again, as the other
/// group calls are; a final error (no such group) is returned at once.
#[tokio::test]
async fn a_group_delete_retries_a_coordinator_loading_or_moved() {
    let retriable = &[
        codes::COORDINATOR_LOAD_IN_PROGRESS,
        codes::NOT_COORDINATOR,
        codes::COORDINATOR_NOT_AVAILABLE,
    ];
    let (admin, counts) = admin_deleting(&[], &[], retriable).await;
    let deleted = tokio::time::timeout(HANG, admin.delete_groups(&["g"])).await;
    deleted
        .expect("not hung")
        .expect("deleted on the fourth try");
    assert_eq!(counts.deletes.load(Ordering::SeqCst), 4);
    assert_eq!(counts.finds.load(Ordering::SeqCst), 4, "looked up again");

    let (admin, counts) = admin_deleting(&[], &[], &[GROUP_ID_NOT_FOUND]).await;
    let deleted = tokio::time::timeout(HANG, admin.delete_groups(&["g"])).await;
    let error = deleted.expect("not hung").expect_err("no such group");
    assert_eq!(error.code(), Some(GROUP_ID_NOT_FOUND), "{error}");
    assert_eq!(counts.deletes.load(Ordering::SeqCst), 1, "not retried");
}

/// Deleting several groups tries every one, even after one fails, and says how each went
/// (Java's `deleteConsumerGroups` has a result per group); `delete_groups` fails with the
/// first failure, as Java's `all()` does, but only after trying them all.
#[tokio::test]
async fn a_group_delete_tries_every_group_and_reports_each() {
    let tried = Arc::new(std::sync::Mutex::new(Vec::new()));
    let asked = tried.clone();
    let addr = fake_broker::start(Script {
        delete_groups: Arc::new(move |group: &str| {
            asked.lock().unwrap().push(group.to_owned());
            Some(match group {
                "a" | "c" => GROUP_ID_NOT_FOUND,
                _ => 0,
            })
        }),
        ..Script::default()
    })
    .await;
    let admin = Admin::new(ClientConfig::new(&addr)).await.unwrap();

    let outcomes = tokio::time::timeout(HANG, admin.delete_groups_each(&["a", "b", "c", "b"]))
        .await
        .expect("not hung");
    let codes: Vec<(&str, Option<i16>)> = outcomes
        .iter()
        .map(|(group, outcome)| {
            (
                group.as_str(),
                outcome.as_ref().err().and_then(|e| e.code()),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("a", Some(GROUP_ID_NOT_FOUND)),
            ("b", None),
            ("c", Some(GROUP_ID_NOT_FOUND)),
        ],
        "one outcome per group, in order, a repeated group once"
    );
    assert!(outcomes[1].1.is_ok());

    tried.lock().unwrap().clear();
    let deleted = tokio::time::timeout(HANG, admin.delete_groups(&["a", "b", "c"])).await;
    let error = deleted.expect("not hung").expect_err("a failed");
    assert_eq!(error.code(), Some(GROUP_ID_NOT_FOUND), "{error}");
    assert!(
        error.to_string().contains("group a"),
        "the first failure: {error}"
    );
    let mut tried = tried.lock().unwrap().clone();
    tried.sort();
    assert_eq!(tried, ["a", "b", "c"], "every group tried");
}

/// `Admin::list_offsets` (`topics describe`, `groups describe`'s lag, `groups reset-offsets`)
/// retries a leader moved or missing and a timed-out request, as Java's admin does until
/// `default.api.timeout.ms`, instead of failing at the first one.
#[tokio::test]
async fn list_offsets_retries_a_moved_leader_and_a_timeout() {
    let lists = Arc::new(AtomicUsize::new(0));
    let counted = lists.clone();
    let addr = fake_broker::start(Script {
        list_offsets: Arc::new(move || {
            let retriable = [codes::NOT_LEADER_OR_FOLLOWER, codes::REQUEST_TIMED_OUT];
            nth(&retriable, counted.fetch_add(1, Ordering::SeqCst))
        }),
        ..Script::default()
    })
    .await;
    let admin = Admin::new(ClientConfig::new(&addr)).await.unwrap();
    let tp = TopicPartition::new("t", 0);
    let listed = tokio::time::timeout(
        Duration::from_secs(20),
        admin.list_offsets(std::slice::from_ref(&tp), crate::offsets::LATEST),
    )
    .await
    .expect("not hung")
    .expect("retried to success");
    assert_eq!(listed.get(&tp), Some(&fake_broker::LISTED_OFFSET));
    assert_eq!(lists.load(Ordering::SeqCst), 3, "retried twice");
}
