//! Consumer groups: the classic group protocol's coordinator and durable committed offsets.
//!
//! Layout:
//! - [`state`]: one group's pure state machine (Empty → PreparingRebalance →
//!   CompletingRebalance → Stable → Dead). No I/O, no tokio: every call takes `now_ms`, so the
//!   unit tests drive it with a hand-set clock.
//! - `rebalance`: the join phase, member removal and the timers behind [`state::Group::tick`].
//! - [`membership`]: the client-facing transitions (join, sync, heartbeat, leave, commit check).
//! - [`coordinator`]: the groups map, pending JoinGroup/SyncGroup answers (tokio oneshots),
//!   the timer task (session and rebalance timeouts, offset retention).
//! - [`snapshot`]: a group as a metadata record and back (restart with members intact).
//! - [`commits`]: OffsetCommit / OffsetFetch / OffsetDelete and offset retention.
//! - [`admin`]: DescribeGroups, ListGroups, DeleteGroups, and `overview()` for metrics/HTTP.
//! - [`offsets`]: the `__consumer_offsets` store: appends durable records, replays at start.
//!   The topic (compacted, `offsets_topic_partitions` partitions) is created by the first
//!   write, as Kafka does; a group maps to one partition by Kafka's own hash.
//! - [`records`]: the key/value layouts of `__consumer_offsets` records (Kafka's schemas) and
//!   the batch they travel in.
//!
//! Every operation a client can trigger answers with a Kafka error code ([`ResponseError`]);
//! only storage failures travel as [`GroupError`]. Durability: a commit, a group deletion,
//! a leader's SyncGroup and a static member's rejoin under a new member id are answered only
//! after their records are fsynced (the group turns Stable only then); expiry tombstones, a deleted topic's offset tombstones and the metadata
//! of a group that became empty are not waited for (losing them only means redoing the
//! expiry, a deleted topic's offsets coming back after a crash, or an empty group coming back
//! as it was before the last member left).

pub mod admin;
pub mod commits;
pub mod coordinator;
mod invariants;
pub mod membership;
pub mod offsets;
mod rebalance;
pub mod records;
pub mod snapshot;
pub mod state;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod coordinator_membership_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod coordinator_offsets_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod coordinator_retention_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod coordinator_test_fixture;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod state_sim_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod state_tests;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use coordinator::GroupCoordinator;
pub use kafka_protocol::error::ResponseError;

use crate::log::LogError;

/// The internal compacted topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// True for topics the broker owns (Metadata reports them with `is_internal = true`).
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

/// Failures of the groups subsystem that are not a client's fault.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Reading or writing `__consumer_offsets` failed.
    #[error("consumer offsets storage: {0}")]
    Storage(#[from] LogError),
    /// The records of one write do not fit in one batch (`offsets_batch_bytes_max`).
    #[error("consumer offsets batch: {0}")]
    Batch(#[from] runnel_protocol::builder::BuildError),
    /// A `__consumer_offsets` record could not be decoded during replay.
    #[error("corrupt consumer offsets record at {partition}/{offset}: {detail}")]
    CorruptRecord {
        partition: i32,
        offset: i64,
        detail: String,
    },
}

/// Coordinator settings; Kafka's broker config names in the docs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (Kafka: 6 s).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka: 30 min).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long a rebalance out of Empty waits for more
    /// members before completing (Kafka: 3 s), so a group starting N consumers rebalances once.
    pub initial_rebalance_delay_ms: i32,
    /// How long a brand-new member may wait in a join before it is dropped (Kafka: 5 min).
    pub new_member_join_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub group_members_max: usize,
    /// Groups this coordinator keeps (Kafka has no limit; a bound on memory).
    pub groups_max: usize,
    /// `offsets.topic.num.partitions` (used only when the topic is created).
    pub offsets_topic_partitions: i32,
    /// `offsets.retention.minutes`, in ms: how long offsets of an empty group are kept.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// Resolution of session/rebalance timers: the timer task wakes this often.
    pub timer_tick_ms: u64,
    /// Bytes read per step while replaying `__consumer_offsets`.
    pub replay_read_bytes_max: usize,
    /// Decompression bound per batch while replaying (compaction may rewrite batches).
    pub replay_uncompressed_bytes_max: usize,
    /// Largest batch one write may produce (Kafka's `max.message.bytes` for the topic).
    pub offsets_batch_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 300_000,
            group_members_max: 10_000,
            groups_max: 100_000,
            offsets_topic_partitions: 8,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            timer_tick_ms: 100,
            replay_read_bytes_max: 1024 * 1024,
            replay_uncompressed_bytes_max: 64 * 1024 * 1024,
            offsets_batch_bytes_max: 1024 * 1024 + 12,
        }
    }
}

/// Wall-clock milliseconds, injectable so tests control time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: std::sync::atomic::AtomicI64::new(start_ms),
        })
    }
    pub fn advance(&self, by_ms: i64) {
        self.now_ms
            .fetch_add(by_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Kafka's `Utils.abs(groupId.hashCode) % partitions`: Java's String hash over UTF-16 units,
/// and Kafka's `abs` (which maps `i32::MIN` to 0), so a group lands where Kafka puts it.
pub fn partition_for_group(group_id: &str, partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let non_negative = if hash == i32::MIN { 0 } else { hash.abs() };
    non_negative % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_group_matches_java_string_hash() {
        // "abc".hashCode() == 96354 in Java.
        assert_eq!(partition_for_group("abc", 50), 96354 % 50);
        assert_eq!(partition_for_group("", 8), 0);
        // Negative hash (-1204742690): Kafka takes the absolute value, not the low 31 bits.
        assert_eq!(partition_for_group("orders-consumer", 50), 40);
        // The one string family whose hash is i32::MIN.
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
        for id in [
            "group-1",
            "émoji-☃",
            "a-very-long-group-id-that-overflows-the-hash",
        ] {
            let p = partition_for_group(id, 8);
            assert!((0..8).contains(&p));
        }
    }
}
