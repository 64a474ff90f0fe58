//! Short constructors for the requests end-to-end tests send most.

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    incremental_alter_configs_request, AlterConfigsRequest, BrokerId, DescribeConfigsRequest,
    DescribeProducersRequest, FetchRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// The config resource type of a topic (Kafka's `ConfigResource.Type.TOPIC`).
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;

/// A CreateTopics entry: `partitions` partitions, the broker's replication factor, `configs`
/// (key, value) as topic overrides.
pub fn creatable_topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    let text = |value: &str| StrBytes::from_string(value.to_owned());
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(text(key))
                .with_value(Some(text(value)))
        })
        .collect();
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(configs)
}

/// AlterConfigs that replaces every override of `topic` with `configs` (key, value).
pub fn alter_configs(topic: &str, configs: &[(&str, &str)]) -> AlterConfigsRequest {
    let text = |value: &str| StrBytes::from_string(value.to_owned());
    let configs = configs
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(text(key))
                .with_value(Some(text(value)))
        })
        .collect();
    let resource = AlterConfigsResource::default()
        .with_resource_type(CONFIG_RESOURCE_TOPIC)
        .with_resource_name(text(topic))
        .with_configs(configs);
    AlterConfigsRequest::default().with_resources(vec![resource])
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// DescribeProducers of `topic`'s `partitions`.
pub fn describe_producers(topic: &str, partitions: &[i32]) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(partitions.to_vec())])
}

/// Metadata for `topics` (`None`: all topics), auto-creation allowed.
pub fn metadata(topics: Option<&[&str]>) -> MetadataRequest {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
            .collect()
    });
    MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(true)
}

/// Produce `records` to one partition.
pub fn produce(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(records));
    let topic = TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![data]);
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic])
}

/// Fetch one partition from `offset`.
pub fn fetch(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1024 * 1024);
    let topic = FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(vec![partition]);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![topic])
}

/// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest, -3 max timestamp).
pub fn list_offsets(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    let partition = ListOffsetsPartition::default()
        .with_partition_index(partition)
        .with_timestamp(timestamp);
    let topic = ListOffsetsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![partition]);
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![topic])
}

/// DescribeConfigs of one resource (`resource_type`: 2 topic, 4 broker), every key, with
/// synonyms when asked.
pub fn describe_configs(
    resource_type: i8,
    resource: &str,
    synonyms: bool,
) -> DescribeConfigsRequest {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(resource.to_owned()))
        .with_configuration_keys(None);
    DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(synonyms)
}

/// IncrementalAlterConfigs of one resource: each op is (config name, operation — 0 SET,
/// 1 DELETE, 2 APPEND, 3 SUBTRACT —, value).
pub fn incremental_alter_configs(
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> IncrementalAlterConfigsRequest {
    let text = |value: &str| StrBytes::from_string(value.to_owned());
    let configs = ops
        .iter()
        .map(|(key, op, value)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(*op)
                .with_value(value.map(text))
        })
        .collect();
    let wanted = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(resource))
        .with_configs(configs);
    IncrementalAlterConfigsRequest::default().with_resources(vec![wanted])
}
