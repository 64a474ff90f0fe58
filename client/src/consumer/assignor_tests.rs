use std::collections::HashMap;

use super::*;

fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
    MemberSubscription {
        member_id: id.to_owned(),
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        owned: owned
            .iter()
            .map(|(t, p)| TopicPartition::new(t, *p))
            .collect(),
        generation: 1,
    }
}

fn counts(topics: &[(&str, i32)]) -> HashMap<String, i32> {
    topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

fn sizes(assignment: &Assignment) -> Vec<usize> {
    assignment.values().map(Vec::len).collect()
}

/// Every partition assigned exactly once.
fn assert_complete(assignment: &Assignment, topics: &[(&str, i32)]) {
    let mut all: Vec<TopicPartition> = assignment.values().flatten().cloned().collect();
    all.sort();
    let expected: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t, p)))
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn range_gives_consecutive_ranges_extras_first() {
    let members = [
        member("a", &["t"], &[]),
        member("b", &["t"], &[]),
        member("c", &["t"], &[]),
    ];
    let result = Assignor::Range.assign(&members, &counts(&[("t", 7)]));
    let a: Vec<i32> = result["a"].iter().map(|tp| tp.partition).collect();
    let c: Vec<i32> = result["c"].iter().map(|tp| tp.partition).collect();
    assert_eq!(a, vec![0, 1, 2]);
    assert_eq!(c, vec![5, 6]);
    assert_complete(&result, &[("t", 7)]);
}

#[test]
fn round_robin_balances_across_topics() {
    let members = [member("a", &["x", "y"], &[]), member("b", &["x", "y"], &[])];
    let result = Assignor::RoundRobin.assign(&members, &counts(&[("x", 3), ("y", 3)]));
    assert_eq!(sizes(&result), vec![3, 3]);
    assert_complete(&result, &[("x", 3), ("y", 3)]);
}

#[test]
fn sticky_is_balanced_from_scratch() {
    let members = [
        member("a", &["t"], &[]),
        member("b", &["t"], &[]),
        member("c", &["t"], &[]),
    ];
    let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 8)]));
    let mut s = sizes(&result);
    s.sort();
    assert_eq!(s, vec![2, 3, 3]);
    assert_complete(&result, &[("t", 8)]);
}

#[test]
fn sticky_keeps_owned_partitions_when_a_member_leaves() {
    let owned_a = [("t", 0), ("t", 1)];
    let owned_b = [("t", 2), ("t", 3)];
    let members = [member("a", &["t"], &owned_a), member("b", &["t"], &owned_b)];
    let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 6)]));
    for (t, p) in owned_a {
        assert!(
            result["a"].contains(&TopicPartition::new(t, p)),
            "a keeps {p}"
        );
    }
    for (t, p) in owned_b {
        assert!(
            result["b"].contains(&TopicPartition::new(t, p)),
            "b keeps {p}"
        );
    }
    assert_eq!(sizes(&result), vec![3, 3]);
    assert_complete(&result, &[("t", 6)]);
}

#[test]
fn cooperative_withholds_moving_partitions_for_one_round() {
    let all: Vec<(&str, i32)> = (0..4).map(|p| ("t", p)).collect();
    // a owns everything; b joins.
    let members = [member("a", &["t"], &all), member("b", &["t"], &[])];
    let first = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 4)]));
    assert_eq!(first["a"].len(), 2, "a is told to give two up");
    assert!(first["b"].is_empty(), "b waits until a has revoked them");
    // a rejoins owning only what it kept: now b gets the rest.
    let kept: Vec<(&str, i32)> = first["a"].iter().map(|tp| ("t", tp.partition)).collect();
    let members = [member("a", &["t"], &kept), member("b", &["t"], &[])];
    let second = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 4)]));
    assert_eq!(second["a"], first["a"], "a's partitions did not move again");
    assert_eq!(second["b"].len(), 2);
    assert_complete(&second, &[("t", 4)]);
}

#[test]
fn names_round_trip() {
    for a in [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ] {
        assert_eq!(Assignor::from_name(a.name()), Some(a));
    }
}
