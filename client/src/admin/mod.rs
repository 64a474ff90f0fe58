//! The admin client: topics, partitions, configs and records here; groups, committed
//! offsets and lag in `groups`. Requests go to any broker (Runnel is one node; on a
//! Kafka cluster they are forwarded to the controller), except DeleteRecords and
//! ListOffsets, which go to partition leaders.

mod groups;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeLogDirsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

pub use groups::{
    GroupDescription, GroupListing, GroupMemberInfo, PartitionLag, GROUP_DELETES_IN_FLIGHT_MAX,
};

use crate::cluster::{topic_name, ClientConfig, Cluster, TopicInfo};
use crate::consumer::TopicPartition;
use crate::error::{Error, Result};
use crate::offsets;

/// ConfigResource type of a topic in Describe/AlterConfigs.
const RESOURCE_TOPIC: i8 = 2;
/// Broker-side bound on topic operations.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

/// A topic to create.
///
/// ```
/// let topic = runnel_client::admin::NewTopic::new("orders", 3).with_config("retention.ms", "60000");
/// ```
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.to_owned(),
            partitions,
            replication_factor: 1,
            configs: Vec::new(),
        }
    }

    pub fn with_config(mut self, key: &str, value: &str) -> NewTopic {
        self.configs.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// One config entry of a topic.
///
/// ```no_run
/// # async fn example(admin: runnel_client::Admin) -> runnel_client::Result<()> {
/// for entry in admin.describe_topic_configs("orders").await? {
///     println!("{} = {:?}", entry.name, entry.value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub is_default: bool,
    pub read_only: bool,
}

/// Cluster administration.
///
/// ```no_run
/// use runnel_client::admin::{Admin, NewTopic};
/// # async fn example() -> runnel_client::Result<()> {
/// let admin = Admin::new(runnel_client::ClientConfig::new("127.0.0.1:9092")).await?;
/// admin.create_topics(&[NewTopic::new("orders", 3)]).await?;
/// for topic in admin.list_topics().await? {
///     println!("{} ({} partitions)", topic.name, topic.partitions.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    pub async fn new(mut config: ClientConfig) -> Result<Admin> {
        config.allow_auto_topic_creation = false;
        Ok(Admin {
            cluster: Cluster::connect(config).await?,
        })
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(str_bytes(k))
                                            .with_value(Some(str_bytes(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self.cluster.send_any(&request).await?;
        for topic in response.topics {
            Error::check(topic.error_code, || {
                describe_failure(
                    "create topic",
                    topic.name.0.as_str(),
                    topic.error_message.as_ref(),
                )
            })?;
        }
        Ok(())
    }

    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let response = self.cluster.send_any(&request).await?;
        for topic in response.responses {
            let name = topic.name.map(|n| n.0.to_string()).unwrap_or_default();
            Error::check(topic.error_code, || {
                describe_failure("delete topic", &name, topic.error_message.as_ref())
            })?;
            self.cluster.forget_topic(&name);
        }
        Ok(())
    }

    /// Every topic, sorted by name (internal topics included, flagged).
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        self.cluster.topics().await
    }

    /// One topic's partitions, leaders and replicas.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        self.cluster.forget_topic(name);
        self.cluster.refresh(Some(&[name.to_owned()])).await?;
        self.cluster
            .cached_topic(name)
            .ok_or_else(|| Error::UnknownTopicOrPartition(name.to_owned()))
    }

    /// Grows `topic` to `total_count` partitions.
    pub async fn create_partitions(&self, topic: &str, total_count: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total_count)]);
        let response = self.cluster.send_any(&request).await?;
        for result in response.results {
            Error::check(result.error_code, || {
                describe_failure("create partitions", topic, result.error_message.as_ref())
            })?;
        }
        self.cluster.forget_topic(topic);
        Ok(())
    }

    /// Every config of a topic, sorted by name.
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes(topic))
                .with_configuration_keys(None),
        ]);
        let response = self.cluster.send_any(&request).await?;
        let mut entries = Vec::new();
        for result in response.results {
            Error::check(result.error_code, || {
                describe_failure("describe configs", topic, result.error_message.as_ref())
            })?;
            for config in result.configs {
                entries.push(ConfigEntry {
                    name: config.name.to_string(),
                    value: config.value.map(|v| v.to_string()),
                    // config_source 5 = DEFAULT_CONFIG (v1+)
                    is_default: config.config_source == 5,
                    read_only: config.read_only,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Sets (`Some`) or removes (`None`) topic configs, leaving the others as they are.
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        let configs = changes
            .iter()
            .map(|(name, value)| {
                AlterableConfig::default()
                    .with_name(str_bytes(name))
                    .with_config_operation(if value.is_some() { 0 } else { 1 })
                    .with_value(value.as_deref().map(str_bytes))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes(topic))
                .with_configs(configs),
        ]);
        let response = self.cluster.send_any(&request).await?;
        for result in response.responses {
            Error::check(result.error_code, || {
                describe_failure("alter configs", topic, result.error_message.as_ref())
            })?;
        }
        Ok(())
    }

    /// Offsets at `timestamp_ms`, or [`offsets::EARLIEST`] / [`offsets::LATEST`]. Retriable
    /// errors (a leader moved or missing, a lost connection) are retried for up to 60 s, as
    /// Java's admin does until `default.api.timeout.ms`.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut retry = groups::api_retry();
        offsets::list_offsets_retrying(&self.cluster, partitions, timestamp, &mut retry).await
    }

    /// Every partition of `topic`.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<TopicPartition>> {
        let info = self.describe_topic(topic).await?;
        Ok(info
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect())
    }

    /// Bytes on disk of each of `topic`'s partitions (DescribeLogDirs, asked of every broker
    /// and summed over their log directories). A partition no broker reports is left out.
    pub async fn partition_sizes(&self, topic: &str) -> Result<BTreeMap<i32, i64>> {
        let info = self.describe_topic(topic).await?;
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(info.partitions.iter().map(|p| p.partition).collect()),
        ]));
        let mut sizes = BTreeMap::new();
        for (broker_id, _) in self.cluster.brokers() {
            let response = self.cluster.broker(broker_id).await?.send(&request).await?;
            Error::check(response.error_code, || {
                format!("describe log dirs of {topic}")
            })?;
            for dir in response.results {
                Error::check(dir.error_code, || {
                    format!("log dir {} of broker {broker_id}", dir.log_dir.as_str())
                })?;
                let partitions = dir
                    .topics
                    .into_iter()
                    .filter(|t| t.name.0.as_str() == topic);
                for partition in partitions.flat_map(|t| t.partitions) {
                    *sizes.entry(partition.partition_index).or_insert(0) +=
                        partition.partition_size;
                }
            }
        }
        Ok(sizes)
    }

    /// Deletes records before `offset` in each partition; returns the new low watermarks.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_leader: HashMap<i32, BTreeMap<&str, Vec<DeleteRecordsPartition>>> =
            HashMap::new();
        for (tp, offset) in before {
            let leader = self.cluster.leader(&tp.topic, tp.partition).await?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(&tp.topic)
                .or_default()
                .push(
                    DeleteRecordsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_offset(*offset),
                );
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = DeleteRecordsRequest::default()
                .with_timeout_ms(ADMIN_TIMEOUT_MS)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DeleteRecordsTopic::default()
                                .with_name(topic_name(name))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let response = self.cluster.broker(leader).await?.send(&request).await?;
            for topic in response.topics {
                for p in topic.partitions {
                    let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
                    Error::check(p.error_code, || format!("delete records {tp}"))?;
                    out.insert(tp, p.low_watermark);
                }
            }
        }
        Ok(out)
    }
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn describe_failure(what: &str, name: &str, message: Option<&StrBytes>) -> String {
    match message {
        Some(message) => format!("{what} {name}: {}", message.as_str()),
        None => format!("{what} {name}"),
    }
}
