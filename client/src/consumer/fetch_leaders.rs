//! The fetcher's view of the cluster's leaders: which broker (and so which lane) each
//! assigned partition is fetched from, copied out of the cluster's metadata once per
//! change rather than looked up per partition per Fetch.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cluster::{Cluster, TopicLeaders};

/// The cluster's cached leaders of the assigned topics, copied out once per metadata
/// change (the cluster's topics generation) rather than per Fetch planned: looking up
/// each partition's leader (a lock and a hash of its topic's name each), then copying a
/// topic's leaders per Fetch, were a visible part of a tailing consumer's CPU.
#[derive(Default)]
pub(super) struct LeaderCache {
    generation: u64,
    /// Topics whose metadata is cached; one without is looked up again at each Fetch.
    /// Bounded by the assigned topics (dropped at each metadata change).
    topics: HashMap<String, Arc<TopicLeaders>>,
}

impl LeaderCache {
    /// Forgets what was copied before the last metadata change.
    pub(super) fn refresh(&mut self, cluster: &Cluster) {
        let generation = cluster.topics_generation();
        if generation != self.generation {
            self.topics.clear();
            self.generation = generation;
        }
    }

    pub(super) fn topic(&mut self, cluster: &Cluster, topic: &str) -> CachedTopic {
        let leaders = match self.topics.get(topic) {
            Some(leaders) => Some(leaders.clone()),
            None => cluster.cached_topic_leaders(topic).map(|leaders| {
                let leaders = Arc::new(leaders);
                self.topics.insert(topic.to_owned(), leaders.clone());
                leaders
            }),
        };
        CachedTopic {
            name: topic.to_owned(),
            leaders,
        }
    }
}

/// One topic's name and cached leaders, while `send_fetches` walks its (sorted) partitions.
pub(super) struct CachedTopic {
    pub(super) name: String,
    leaders: Option<Arc<TopicLeaders>>,
}

impl CachedTopic {
    /// The partition's leader and the topic's id (nil when unknown), if a leader is known.
    pub(super) fn leader(&self, partition: i32) -> Option<(i32, uuid::Uuid)> {
        let leaders = self.leaders.as_ref()?;
        Some((leaders.leader(partition)?, leaders.topic_id))
    }
}
