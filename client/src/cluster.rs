//! What the client knows about the cluster: brokers, topics and partition leaders (from
//! Metadata), and one shared [`Connection`] per broker, opened on first use and reopened
//! after it dies. Shared by producer, consumer and admin behind an `Arc`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::conn::{Connection, ConnectionConfig};
use crate::error::{codes, Error, Result};

#[path = "cluster_topics.rs"]
mod topics;
use topics::{is_retriable_topic_error, topic_info};
pub use topics::{MetadataWait, PartitionInfo, TopicInfo, TopicLeaders};

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
    /// Each slot has its own lock, held while its connection is opened: a connect that
    /// hangs (up to the connect and request timeouts) holds up only the callers of that
    /// address and lane, not every request on the others.
    connections: Mutex<HashMap<String, BTreeMap<usize, ConnectionSlot>>>,
    /// Topics whose metadata a background refresh should ask for next (see
    /// [`Cluster::request_refresh`]); `None` while no refresh task runs.
    refresh_pending: Mutex<Option<BTreeSet<String>>>,
}

/// Bound on the Metadata requests one background refresh task sends in a row (each asks
/// for the topics requested while the previous one was out); topics still pending after
/// it are asked for when they are next requested.
const REFRESH_PASSES_MAX: usize = 16;

/// One address and lane's connection, `None` until opened (see [`Cluster::lane_to`]).
type ConnectionSlot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

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
            connections: Mutex::default(),
            refresh_pending: Mutex::default(),
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
                topic_id: uuid::Uuid::nil(),
                partitions,
                internal: false,
            };
            state.topics.insert((*name).to_owned(), info);
        }
        Arc::new(Cluster {
            config: ClientConfig::new("127.0.0.1:1"),
            state: Mutex::new(state),
            topics_generation: AtomicU64::new(0),
            connections: Mutex::default(),
            refresh_pending: Mutex::default(),
        })
    }

    /// A live connection to `addr`, opened if needed.
    pub async fn connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        self.lane_to(addr, 0).await
    }

    /// A live connection to `addr` on `lane`, opened if needed. A dead connection is
    /// replaced here, so a connection killed after a timeout is closed once its last
    /// in-flight caller lets go, and the next attempt gets a new one. Slots are few (an
    /// address's lanes are the shared one, the coordinator's and a consumer's fetch lanes)
    /// and stay; a slot whose connection died holds nothing but its `None`.
    async fn lane_to(&self, addr: &str, lane: usize) -> Result<Arc<Connection>> {
        let slot = {
            let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            for lanes in connections.values() {
                for other in lanes.values() {
                    // Not waited for: a slot being connected is not dead.
                    if let Ok(mut other) = other.try_lock() {
                        if other.as_ref().is_some_and(|conn| conn.is_dead()) {
                            *other = None;
                        }
                    }
                }
            }
            match connections.get(addr).and_then(|lanes| lanes.get(&lane)) {
                Some(slot) => slot.clone(),
                None => connections
                    .entry(addr.to_owned())
                    .or_default()
                    .entry(lane)
                    .or_default()
                    .clone(),
            }
        };
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref().filter(|conn| !conn.is_dead()) {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = Arc::new(Connection::connect(addr, &self.config.connection).await?);
        *slot = Some(conn.clone());
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
            return Err(Error::BrokerNotInMetadata { broker_id: id });
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
        self.refresh_topics(topics).await.map(|_| ())
    }

    /// [`refresh`](Self::refresh), returning the error code of each topic the broker
    /// answered with one. A full refresh replaces the topic map, so topics deleted
    /// elsewhere are forgotten. A topic with a retriable error (LEADER_NOT_AVAILABLE while
    /// it is being created, …) keeps what was known of it; any other error removes it.
    async fn refresh_topics(&self, topics: Option<&[String]>) -> Result<HashMap<String, i16>> {
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
        let mut known = match topics {
            None => std::mem::take(&mut state.topics),
            Some(_) => HashMap::new(),
        };
        let mut errors = HashMap::new();
        for topic in response.topics {
            let Some(name) = &topic.name else { continue };
            let name = name.0.to_string();
            if topic.error_code != 0 {
                match (
                    is_retriable_topic_error(topic.error_code),
                    known.remove(&name),
                ) {
                    // A full refresh keeps what it knew; a partial one left it in place.
                    (true, Some(info)) => {
                        state.topics.insert(name.clone(), info);
                    }
                    (true, None) => {}
                    (false, _) => {
                        state.topics.remove(&name);
                    }
                }
                errors.insert(name, topic.error_code);
                continue;
            }
            state.topics.insert(name.clone(), topic_info(name, &topic));
        }
        self.topics_generation.fetch_add(1, Ordering::Release);
        Ok(errors)
    }

    /// Changes whenever topic metadata may have changed (see the field).
    pub fn topics_generation(&self) -> u64 {
        self.topics_generation.load(Ordering::Acquire)
    }

    /// Cached metadata of `topic`, fetched (and auto-created, if allowed) when missing,
    /// waiting as [`MetadataWait::LOOKUP`] says while the broker answers with a retriable
    /// error (LEADER_NOT_AVAILABLE just after an auto-create).
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        self.wait_for_topic(topic, &MetadataWait::LOOKUP).await
    }

    /// Cached metadata of `topic`, asking the broker again (`wait`'s backoff apart) while it
    /// answers with a retriable error, the request fails retriably (a lost connection), or,
    /// with `wait_for_missing`, the broker does not know the topic.
    /// Past `wait.max_block_ms` the answer is [`Error::TopicMetadataTimeout`], naming the
    /// topic and how long was waited. A missing topic not waited for is
    /// [`Error::UnknownTopicOrPartition`] at once.
    pub async fn wait_for_topic(&self, topic: &str, wait: &MetadataWait) -> Result<TopicInfo> {
        let started = tokio::time::Instant::now();
        let deadline = started + std::time::Duration::from_millis(wait.max_block_ms);
        let mut pause_ms = 0;
        // Bounded by the deadline: each pass sleeps at least `backoff_ms` (≥ 1 ms) or ends.
        loop {
            if let Some(info) = self.cached_topic(topic) {
                return Ok(info);
            }
            // The broker's code for the topic, or why the request failed: a lost connection
            // or unreachable brokers (one restarting) are asked again like a topic error.
            let last = match self.refresh_topics(Some(&[topic.to_owned()])).await {
                Ok(errors) => Ok(errors.get(topic).copied()),
                Err(e) if e.is_retriable() || matches!(e, Error::NoBrokers(_)) => Err(e),
                Err(e) => return Err(e),
            };
            if let Some(info) = self.cached_topic(topic) {
                return Ok(info);
            }
            if let Ok(code) = last {
                // No error and no topic: the broker left it out; treat it as unknown.
                let code = code.unwrap_or(codes::UNKNOWN_TOPIC_OR_PARTITION);
                let missing = code == codes::UNKNOWN_TOPIC_OR_PARTITION;
                if missing && !wait.wait_for_missing {
                    return Err(Error::UnknownTopicOrPartition(topic.to_owned()));
                }
                if !missing && !is_retriable_topic_error(code) {
                    return Err(Error::Broker {
                        code,
                        context: format!("metadata of {topic}"),
                    });
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let waited = now.duration_since(started).as_millis();
                return Err(match last {
                    Ok(code) => Error::TopicMetadataTimeout {
                        topic: topic.to_owned(),
                        waited_ms: u64::try_from(waited).unwrap_or(u64::MAX),
                        code: code.unwrap_or(codes::UNKNOWN_TOPIC_OR_PARTITION),
                    },
                    Err(failure) => failure,
                });
            }
            if let Err(failure) = &last {
                tracing::debug!(%topic, %failure, "metadata request failed; asking again");
            }
            pause_ms = wait.next_backoff_ms(pause_ms).max(1);
            let pause = std::time::Duration::from_millis(pause_ms);
            tokio::time::sleep_until((now + pause).min(deadline)).await;
        }
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

    /// The cached leader of one partition, if metadata names one; never asks the broker
    /// (the producer's sender asks per batch and must not wait on a topic without one).
    pub fn cached_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let state = self.lock();
        let info = state.topics.get(topic)?;
        info.partition(partition)
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
    }

    /// The cached id and partition leaders of `topic`: one lock for all its partitions.
    pub fn cached_topic_leaders(&self, topic: &str) -> Option<TopicLeaders> {
        self.lock().topics.get(topic).map(TopicLeaders::of)
    }

    /// The cached id of `topic` (KIP-516), `None` when unknown or nil: Fetch v13+ names
    /// topics by id, and falls back to names (v12) for a topic without one.
    pub fn cached_topic_id(&self, topic: &str) -> Option<uuid::Uuid> {
        let state = self.lock();
        let id = state.topics.get(topic)?.topic_id;
        (!id.is_nil()).then_some(id)
    }

    /// Asks the broker for `topic`'s metadata once; `Some(code)` when the answer means it is
    /// not worth waiting for (missing, or a non-retriable error).
    pub(crate) async fn refresh_topic(&self, topic: &str) -> Result<Option<i16>> {
        let errors = self.refresh_topics(Some(&[topic.to_owned()])).await?;
        Ok(errors
            .get(topic)
            .copied()
            .filter(|code| !is_retriable_topic_error(*code)))
    }

    /// Asks for `topic`'s metadata in the background (a leader moved, a connection was
    /// lost): what is cached stays usable meanwhile, so callers retry against the leader
    /// they know until the answer says otherwise (Java's `requestUpdate`). Requests made
    /// while a refresh is out are merged into the next one: one task, one Metadata request
    /// at a time, however many partitions fail at once.
    pub fn request_refresh(self: &Arc<Self>, topic: &str) {
        {
            let mut pending = self.refresh_pending();
            match pending.as_mut() {
                Some(topics) => {
                    topics.insert(topic.to_owned());
                    return;
                }
                None => *pending = Some(BTreeSet::new()),
            }
        }
        let cluster = self.clone();
        let mut topics = vec![topic.to_owned()];
        tokio::spawn(async move {
            for pass in 1..=REFRESH_PASSES_MAX {
                if let Err(error) = cluster.refresh(Some(&topics)).await {
                    tracing::debug!(?topics, %error, "background metadata refresh failed");
                }
                // Under the lock: a request either lands in `next` or finds no task
                // running and starts one.
                let mut pending = cluster.refresh_pending();
                let next = pending.take().unwrap_or_default();
                if next.is_empty() || pass == REFRESH_PASSES_MAX {
                    return;
                }
                *pending = Some(BTreeSet::new());
                topics = next.into_iter().collect();
            }
        });
    }

    fn refresh_pending(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<String>>> {
        self.refresh_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Leader broker id of one partition, refreshing metadata once if unknown.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        // Callers ask per partition: the cached answer must not clone the topic's metadata
        // (`runnel topics describe` of 10 000 partitions spent 14 s of CPU cloning it).
        if let Some(leader) = self.cached_leader(topic, partition) {
            return Ok(leader);
        }
        for attempt in 0..2 {
            let info = self.topic(topic).await?;
            let leader = info
                .partition(partition)
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

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
