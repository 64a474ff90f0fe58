//! What the client knows about the cluster: brokers, topics and partition leaders (from
//! Metadata), and one shared [`Connection`] per broker, opened on first use and reopened
//! after it dies. Shared by producer, consumer and admin behind an `Arc`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::conn::{Connection, ConnectionConfig};
use crate::error::{codes, Error, Result};

/// Where a client starts and how it talks to brokers.
///
/// ```
/// let config = runnel_client::ClientConfig::new("127.0.0.1:9092");
/// assert_eq!(config.bootstrap, vec!["127.0.0.1:9092".to_owned()]);
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of brokers to ask for metadata first.
    pub bootstrap: Vec<String>,
    pub connection: ConnectionConfig,
    /// Create topics on first Metadata (the broker decides whether it may).
    pub allow_auto_topic_creation: bool,
}

impl ClientConfig {
    /// A config for a comma-separated bootstrap list.
    pub fn new(bootstrap: &str) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            connection: ConnectionConfig::default(),
            allow_auto_topic_creation: true,
        }
    }
}

/// One partition's metadata.
///
/// ```no_run
/// # async fn example(cluster: &runnel_client::Cluster) -> runnel_client::Result<()> {
/// let info = cluster.topic("orders").await?;
/// let leaders: Vec<i32> = info.partitions.iter().map(|p| p.leader).collect();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic's metadata; `partitions` sorted by index.
///
/// ```no_run
/// # async fn example(cluster: &runnel_client::Cluster) -> runnel_client::Result<()> {
/// for topic in cluster.topics().await? {
///     println!("{}: {} partitions", topic.name, topic.partitions.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    pub internal: bool,
}

#[derive(Default)]
struct State {
    brokers: HashMap<i32, String>,
    topics: HashMap<String, TopicInfo>,
}

/// Brokers, topics and connections; see the module doc.
///
/// ```no_run
/// use runnel_client::{ClientConfig, Cluster};
/// # async fn example() -> runnel_client::Result<()> {
/// let cluster = Cluster::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// let leader = cluster.leader("orders", 0).await?;
/// let connection = cluster.broker(leader).await?;
/// # Ok(()) }
/// ```
pub struct Cluster {
    pub config: ClientConfig,
    state: Mutex<State>,
    /// Bumped whenever topic metadata changes, so callers may cache what they derived from
    /// it (the producer keeps each topic's partition count) and look again only after.
    topics_generation: AtomicU64,
    /// By address and lane (0: the shared connection; more: a consumer's extra fetch
    /// connections, see [`Cluster::broker_lane`]).
    connections: tokio::sync::Mutex<HashMap<String, BTreeMap<usize, Arc<Connection>>>>,
}

/// The lane of group coordinator connections (see [`Cluster::coordinator_connection`]);
/// fetch lanes count up from 0.
const COORDINATOR_LANE: usize = usize::MAX;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

impl Cluster {
    /// Checks that a bootstrap broker answers; fetches no topic metadata yet.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap.is_empty() {
            return Err(Error::Config("empty bootstrap list".to_owned()));
        }
        let cluster = Arc::new(Cluster {
            config,
            state: Mutex::default(),
            topics_generation: AtomicU64::new(0),
            connections: tokio::sync::Mutex::default(),
        });
        cluster.refresh(Some(&[])).await?;
        Ok(cluster)
    }

    /// A cluster view with fixed topic metadata and no connections, for unit tests.
    #[cfg(test)]
    pub(crate) fn offline(topics: &[(&str, i32)]) -> Arc<Cluster> {
        let mut state = State::default();
        for (name, count) in topics {
            let partitions = (0..*count)
                .map(|partition| PartitionInfo {
                    partition,
                    leader: 0,
                    replicas: vec![0],
                    isr: vec![0],
                    error_code: 0,
                })
                .collect();
            let info = TopicInfo {
                name: (*name).to_owned(),
                partitions,
                internal: false,
            };
            state.topics.insert((*name).to_owned(), info);
        }
        Arc::new(Cluster {
            config: ClientConfig::new("127.0.0.1:1"),
            state: Mutex::new(state),
            topics_generation: AtomicU64::new(0),
            connections: tokio::sync::Mutex::default(),
        })
    }

    /// A live connection to `addr`, opened if needed.
    pub async fn connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        self.lane_to(addr, 0).await
    }

    /// A live connection to `addr` on `lane`, opened if needed. Dead connections (any
    /// address) leave the map here, so a connection killed after a timeout is closed once
    /// its last in-flight caller lets go, and the next attempt gets a new one.
    async fn lane_to(&self, addr: &str, lane: usize) -> Result<Arc<Connection>> {
        let mut connections = self.connections.lock().await;
        for lanes in connections.values_mut() {
            lanes.retain(|_, conn| !conn.is_dead());
        }
        connections.retain(|_, lanes| !lanes.is_empty());
        if let Some(conn) = connections.get(addr).and_then(|lanes| lanes.get(&lane)) {
            return Ok(conn.clone());
        }
        let conn = Arc::new(Connection::connect(addr, &self.config.connection).await?);
        connections
            .entry(addr.to_owned())
            .or_default()
            .insert(lane, conn.clone());
        Ok(conn)
    }

    /// A live connection to the group coordinator at `addr`, apart from the shared one
    /// (as the Java client's coordinator has): the broker may hold a JoinGroup for the
    /// whole rebalance timeout and answers a connection's requests in order, so anything
    /// queued behind it on a shared connection would time out — and a timeout closes the
    /// connection, JoinGroup with it.
    pub async fn coordinator_connection(&self, addr: &str) -> Result<Arc<Connection>> {
        self.lane_to(addr, COORDINATOR_LANE).await
    }

    /// A live connection to broker `id` (its address from the last Metadata).
    pub async fn broker(&self, id: i32) -> Result<Arc<Connection>> {
        self.broker_lane(id, 0).await
    }

    /// A live connection to broker `id` on `lane`: lane 0 is the connection everything
    /// shares; each further lane is a connection of its own, so a consumer can have one
    /// Fetch in flight per lane (a broker answers one connection's requests in order).
    pub async fn broker_lane(&self, id: i32, lane: usize) -> Result<Arc<Connection>> {
        let addr = self.lock().brokers.get(&id).cloned();
        let Some(addr) = addr else {
            return Err(Error::Protocol(format!(
                "broker {id} is not in the metadata"
            )));
        };
        self.lane_to(&addr, lane).await
    }

    /// A connection to any broker: a known one first, then the bootstrap list.
    pub async fn any_broker(&self) -> Result<Arc<Connection>> {
        let mut candidates: Vec<String> = self.lock().brokers.values().cloned().collect();
        candidates.sort();
        candidates.extend(self.config.bootstrap.iter().cloned());
        let mut last_error = String::from("no address");
        for addr in candidates {
            match self.connection_to(&addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(Error::NoBrokers(last_error))
    }

    /// Sends to any broker (metadata-free requests: admin, group lookup).
    pub async fn send_any<R: Request + 'static>(&self, request: &R) -> Result<R::Response> {
        self.any_broker().await?.send(request).await
    }

    /// Refreshes metadata for `topics` (`None`: every topic; `Some(&[])`: brokers only).
    pub async fn refresh(&self, topics: Option<&[String]>) -> Result<()> {
        let request_topics = topics.map(|names| {
            names
                .iter()
                .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                .collect()
        });
        let auto_create = self.config.allow_auto_topic_creation;
        let conn = self.any_broker().await?;
        let response = conn
            .send_with(|version| {
                let request = MetadataRequest::default().with_topics(request_topics);
                if version >= 4 {
                    request.with_allow_auto_topic_creation(auto_create)
                } else {
                    request
                }
            })
            .await?;
        let mut state = self.lock();
        for broker in &response.brokers {
            let addr = format!("{}:{}", broker.host.as_str(), broker.port);
            state.brokers.insert(broker.node_id.0, addr);
        }
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let name = name.0.to_string();
            if topic.error_code != 0 {
                state.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                name: name.clone(),
                partitions,
                internal: topic.is_internal,
            };
            state.topics.insert(name, info);
        }
        self.topics_generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Changes whenever topic metadata may have changed (see the field).
    pub fn topics_generation(&self) -> u64 {
        self.topics_generation.load(Ordering::Acquire)
    }

    /// Cached metadata of `topic`, fetched (and auto-created, if allowed) when missing.
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        if let Some(info) = self.cached_topic(topic) {
            return Ok(info);
        }
        self.refresh(Some(&[topic.to_owned()])).await?;
        self.cached_topic(topic)
            .ok_or_else(|| Error::UnknownTopicOrPartition(topic.to_owned()))
    }

    pub fn cached_topic(&self, topic: &str) -> Option<TopicInfo> {
        self.lock().topics.get(topic).cloned()
    }

    /// Partitions of a cached topic, without cloning its metadata (the producer asks this
    /// once per record: a `TopicInfo` clone is 2 allocations per partition).
    pub fn cached_partition_count(&self, topic: &str) -> Option<usize> {
        self.lock()
            .topics
            .get(topic)
            .map(|info| info.partitions.len())
    }

    /// Partitions of `topic`, refreshing metadata once if it is not cached.
    pub async fn partition_count(&self, topic: &str) -> Result<usize> {
        if let Some(count) = self.cached_partition_count(topic) {
            return Ok(count);
        }
        Ok(self.topic(topic).await?.partitions.len())
    }

    /// Leader broker id of one partition, refreshing metadata once if unknown.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        for attempt in 0..2 {
            let info = self.topic(topic).await?;
            let leader = info
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .map(|p| p.leader)
                .filter(|leader| *leader >= 0);
            if let Some(leader) = leader {
                return Ok(leader);
            }
            if attempt == 0 {
                self.refresh(Some(&[topic.to_owned()])).await?;
            }
        }
        Err(Error::Broker {
            code: codes::NOT_LEADER_OR_FOLLOWER,
            context: format!("no leader for {topic}-{partition}"),
        })
    }

    /// Every topic (a full Metadata request).
    pub async fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.refresh(None).await?;
        let mut topics: Vec<TopicInfo> = self.lock().topics.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Removes a topic's metadata without bumping the topics generation (unit tests of
    /// what callers keep while the generation stands).
    #[cfg(test)]
    pub(crate) fn drop_topic_quietly(&self, topic: &str) {
        self.lock().topics.remove(topic);
    }

    /// Forgets a topic (after a delete) so the next lookup asks the broker.
    pub fn forget_topic(&self, topic: &str) {
        self.lock().topics.remove(topic);
        self.topics_generation.fetch_add(1, Ordering::Release);
    }

    pub fn brokers(&self) -> Vec<(i32, String)> {
        let mut brokers: Vec<_> = self
            .lock()
            .brokers
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        brokers.sort();
        brokers
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State half-updated in a way that
        // matters (it is a cache), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
