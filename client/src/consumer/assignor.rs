//! Partition assignors run by the group leader, with the names Kafka clients use in
//! JoinGroup so mixed groups agree: `range`, `roundrobin` and `cooperative-sticky`.
//!
//! `cooperative-sticky` keeps every member's owned partitions while balanced, moves only
//! the excess, and (the cooperative part) withholds a moving partition from its new owner
//! in the rebalance where the old owner still holds it: the old owner revokes it, rejoins,
//! and the follow-up rebalance hands it over.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::TopicPartition;

/// Which assignment strategy to offer.
///
/// ```
/// use runnel_client::consumer::Assignor;
/// assert_eq!(Assignor::CooperativeSticky.name(), "cooperative-sticky");
/// assert_eq!(Assignor::from_name("range"), Some(Assignor::Range));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    RoundRobin,
    CooperativeSticky,
}

/// One member's subscription as the leader sees it.
///
/// ```
/// use std::collections::HashMap;
/// use runnel_client::consumer::assignor::{Assignor, MemberSubscription};
/// let member = MemberSubscription {
///     member_id: "m1".into(), topics: vec!["t".into()], owned: vec![], generation: -1,
/// };
/// let counts = HashMap::from([("t".to_owned(), 3)]);
/// assert_eq!(Assignor::Range.assign(&[member], &counts)["m1"].len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub topics: Vec<String>,
    pub owned: Vec<TopicPartition>,
    pub generation: i32,
}

/// member id → assigned partitions (sorted).
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Assigns every partition of the subscribed topics (`partition_counts`) to members.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partition_counts: &HashMap<String, i32>,
    ) -> Assignment {
        let mut assignment: Assignment = members
            .iter()
            .map(|m| (m.member_id.clone(), Vec::new()))
            .collect();
        match self {
            Assignor::Range => range(members, partition_counts, &mut assignment),
            Assignor::RoundRobin => round_robin(members, partition_counts, &mut assignment),
            Assignor::CooperativeSticky => sticky(members, partition_counts, &mut assignment),
        }
        for partitions in assignment.values_mut() {
            partitions.sort();
        }
        assignment
    }
}

fn subscribed_topics(members: &[MemberSubscription]) -> BTreeSet<&str> {
    members
        .iter()
        .flat_map(|m| m.topics.iter().map(String::as_str))
        .collect()
}

/// Per topic, members sorted by id take consecutive ranges; the first `count % n` get one
/// more (Kafka's RangeAssignor).
fn range(members: &[MemberSubscription], counts: &HashMap<String, i32>, out: &mut Assignment) {
    for topic in subscribed_topics(members) {
        let count = counts.get(topic).copied().unwrap_or(0).max(0);
        let mut consumers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.iter().any(|t| t == topic))
            .map(|m| m.member_id.as_str())
            .collect();
        consumers.sort_unstable();
        let n = consumers.len() as i32;
        if n == 0 {
            continue;
        }
        let (per, extra) = (count / n, count % n);
        for (i, member) in consumers.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            let partitions = out.entry((*member).to_owned()).or_default();
            partitions.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
        }
    }
}

/// All partitions sorted by (topic, partition), dealt in turn to members sorted by id,
/// skipping members not subscribed to the topic (Kafka's RoundRobinAssignor).
fn round_robin(
    members: &[MemberSubscription],
    counts: &HashMap<String, i32>,
    out: &mut Assignment,
) {
    let mut consumers: Vec<&MemberSubscription> = members.iter().collect();
    consumers.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    if consumers.is_empty() {
        return;
    }
    let mut next = 0usize;
    for topic in subscribed_topics(members) {
        for partition in 0..counts.get(topic).copied().unwrap_or(0).max(0) {
            for step in 0..consumers.len() {
                let member = consumers[(next + step) % consumers.len()];
                if member.topics.iter().any(|t| t == topic) {
                    out.entry(member.member_id.clone())
                        .or_default()
                        .push(TopicPartition::new(topic, partition));
                    next = (next + step + 1) % consumers.len();
                    break;
                }
            }
        }
    }
}

fn sticky(members: &[MemberSubscription], counts: &HashMap<String, i32>, out: &mut Assignment) {
    let all: BTreeSet<TopicPartition> = subscribed_topics(members)
        .into_iter()
        .flat_map(|topic| {
            (0..counts.get(topic).copied().unwrap_or(0).max(0))
                .map(move |p| TopicPartition::new(topic, p))
        })
        .collect();
    // Claims: the member with the highest generation wins a partition two members list.
    let mut by_generation: Vec<&MemberSubscription> = members.iter().collect();
    by_generation.sort_by(|a, b| {
        b.generation
            .cmp(&a.generation)
            .then(a.member_id.cmp(&b.member_id))
    });
    let mut owner: HashMap<&TopicPartition, &str> = HashMap::new();
    for member in &by_generation {
        for tp in &member.owned {
            let valid = all.contains(tp) && member.topics.contains(&tp.topic);
            if valid {
                owner.entry(tp).or_insert(member.member_id.as_str());
            }
        }
    }
    // Quotas: floor(total / n), and the members owning most get the `total % n` extras.
    let n = members.len().max(1);
    let (base, mut extras) = (all.len() / n, all.len() % n);
    let mut kept: BTreeMap<&str, Vec<TopicPartition>> = BTreeMap::new();
    for (tp, member) in &owner {
        kept.entry(member).or_default().push((*tp).clone());
    }
    let mut order: Vec<&MemberSubscription> = members.iter().collect();
    order.sort_by_key(|m| {
        (
            std::cmp::Reverse(kept.get(m.member_id.as_str()).map_or(0, Vec::len)),
            m.member_id.clone(),
        )
    });
    let mut quota: HashMap<&str, usize> = HashMap::new();
    let mut unassigned: BTreeSet<TopicPartition> = all.clone();
    for member in order {
        let extra = usize::from(extras > 0);
        extras -= extra;
        let q = base + extra;
        quota.insert(member.member_id.as_str(), q);
        let mut mine = kept.remove(member.member_id.as_str()).unwrap_or_default();
        mine.sort();
        mine.truncate(q);
        for tp in &mine {
            unassigned.remove(tp);
        }
        out.insert(member.member_id.clone(), mine);
    }
    // Hand out the rest to the least-loaded subscribed member with room (then any).
    for tp in unassigned {
        let pick = members
            .iter()
            .filter(|m| m.topics.contains(&tp.topic))
            .min_by_key(|m| {
                let load = out.get(&m.member_id).map_or(0, Vec::len);
                let full = load >= quota.get(m.member_id.as_str()).copied().unwrap_or(0);
                (full, load, m.member_id.clone())
            });
        if let Some(member) = pick {
            out.entry(member.member_id.clone()).or_default().push(tp);
        }
    }
    // Cooperative: a partition still owned by someone else waits one rebalance.
    for (member, partitions) in out.iter_mut() {
        partitions.retain(|tp| owner.get(tp).is_none_or(|o| *o == member.as_str()));
    }
}

#[cfg(test)]
#[path = "assignor_tests.rs"]
mod tests;
