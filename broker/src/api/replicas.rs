//! What the replica-management APIs (ElectLeaders, the partition reassignment APIs) share:
//! Runnel is one broker, so this node is every partition's only replica and its leader, and
//! its preferred leader too. There is never an election or a reassignment to run.

use super::BrokerContext;

/// True when `topic` exists and has a partition `partition`.
pub fn partition_exists(ctx: &BrokerContext, topic: &str, partition: i32) -> bool {
    ctx.logs
        .topic(topic)
        .is_some_and(|info| (0..info.partitions).contains(&partition))
}

#[cfg(test)]
mod tests {
    use super::super::create_topics::fixture::{broker, topic};
    use super::*;

    #[test]
    fn only_existing_partitions_exist() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        assert!(partition_exists(&fixture.ctx, "t", 0));
        assert!(partition_exists(&fixture.ctx, "t", 1));
        assert!(!partition_exists(&fixture.ctx, "t", 2));
        assert!(!partition_exists(&fixture.ctx, "t", -1));
        assert!(!partition_exists(&fixture.ctx, "missing", 0));
    }
}
