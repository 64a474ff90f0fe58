//! Metadata: this broker, the cluster id, and topics with their partitions. A single node
//! leads every partition (replicas and ISR are just this node, leader epoch 0). Unknown
//! topics are auto-created when the broker and the request (v4+) allow it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

use super::errors::log_error_i16;
use super::BrokerContext;
use crate::log::{LogError, TopicInfo};

/// Kafka's "authorized operations not asked for" marker.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Every topic ACL operation (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11): all allowed, as by Kafka without an authorizer.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// Every cluster operation (CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12), as Kafka without one.
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

/// Topics Kafka marks internal (clients skip them in pattern subscriptions).
const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];
/// Longest legal topic name (Kafka's limit).
const TOPIC_NAME_MAX_BYTES: usize = 249;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    let mut response = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(ctx.node_id);
    broker.host = StrBytes::from_string(ctx.advertised_host.clone());
    broker.port = ctx.advertised_port;
    response.brokers = vec![broker];
    response.cluster_id = Some(StrBytes::from_string(ctx.cluster_id.clone()));
    response.controller_id = BrokerId(ctx.node_id);
    let asked = OperationsAsked {
        topics: version >= 8 && request.include_topic_authorized_operations,
        cluster: (8..=10).contains(&version) && request.include_cluster_authorized_operations,
    };
    // v0 has no null list: an empty list means "all topics" there.
    let requested = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => topics,
        _ => {
            response.topics = listed_topics(ctx)
                .iter()
                .map(|t| topic_entry(ctx, t))
                .collect();
            return with_authorized_operations(response, asked);
        }
    };
    // Before v4 there is no flag and Kafka always allowed auto-creation.
    let allow_create = ctx.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    response.topics = requested
        .into_iter()
        .map(|topic| requested_topic(ctx, topic, allow_create))
        .collect();
    with_authorized_operations(response, asked)
}

/// Which authorized operations the request asks for (topics' from v8, the cluster's in
/// v8–10).
#[derive(Clone, Copy)]
struct OperationsAsked {
    topics: bool,
    cluster: bool,
}

/// The authorized operations `asked` for, as Kafka without an authorizer answers them:
/// every operation that applies; Kafka's "not asked" marker otherwise.
fn with_authorized_operations(
    mut response: MetadataResponse,
    asked: OperationsAsked,
) -> MetadataResponse {
    let topic_operations = match asked.topics {
        true => TOPIC_AUTHORIZED_OPERATIONS,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    for topic in &mut response.topics {
        topic.topic_authorized_operations = topic_operations;
    }
    response.cluster_authorized_operations = match asked.cluster {
        true => CLUSTER_AUTHORIZED_OPERATIONS,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    response
}

/// One requested topic, by name (or by id from v10).
fn requested_topic(
    ctx: &BrokerContext,
    topic: MetadataRequestTopic,
    allow_create: bool,
) -> MetadataResponseTopic {
    let Some(name) = topic.name else {
        return match ctx.logs.topic_by_id(&topic.topic_id) {
            Some(info) => topic_entry(ctx, &info),
            None => {
                // Kafka's KafkaApis.handleTopicMetadataRequest: an unknown id gets a null
                // name (the schema default would be "", which reads as a topic called "").
                let mut entry = MetadataResponseTopic::default();
                entry.name = None;
                entry.topic_id = topic.topic_id;
                entry.error_code = ResponseError::UnknownTopicId.code();
                entry
            }
        };
    };
    let name_str = name.0.to_string();
    let error_entry = |code: i16| {
        let mut entry = MetadataResponseTopic::default();
        entry.name = Some(name.clone());
        entry.error_code = code;
        entry
    };
    if validate_topic_name(&name_str).is_err() {
        return error_entry(ResponseError::InvalidTopicException.code());
    }
    if let Some(info) = ctx.logs.topic(&name_str) {
        return topic_entry(ctx, &info);
    }
    // The coordinator creates its internal topic, with its own configuration, on first use.
    if !allow_create || crate::groups::is_internal_topic(&name_str) {
        return error_entry(ResponseError::UnknownTopicOrPartition.code());
    }
    match ctx
        .logs
        .create_topic(&name_str, ctx.default_partitions, BTreeMap::new(), false)
    {
        Ok(info) => topic_entry(ctx, &info),
        // Another connection created it between the lookup and here.
        Err(LogError::TopicAlreadyExists(_)) => match ctx.logs.topic(&name_str) {
            Some(info) => topic_entry(ctx, &info),
            None => error_entry(ResponseError::UnknownTopicOrPartition.code()),
        },
        Err(e) => error_entry(log_error_i16(&e)),
    }
}

/// The topics an "all topics" request lists, sorted by name, internal ones
/// (`__consumer_offsets`) included and flagged, as Kafka lists them.
pub fn listed_topics(ctx: &BrokerContext) -> Vec<TopicInfo> {
    ctx.logs.topics()
}

/// Whether clients see `name` as internal (they skip such topics in pattern subscriptions).
pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// What Metadata and DescribeTopicPartitions say of a partition: this node leads it as its
/// only replica, always in sync, at the one leader epoch.
pub struct PartitionLeadership {
    pub leader_id: BrokerId,
    pub leader_epoch: i32,
    pub replica_nodes: Vec<BrokerId>,
    pub isr_nodes: Vec<BrokerId>,
}

pub fn partition_leadership(ctx: &BrokerContext) -> PartitionLeadership {
    PartitionLeadership {
        leader_id: BrokerId(ctx.node_id),
        leader_epoch: super::leader_epoch::LEADER_EPOCH,
        replica_nodes: vec![BrokerId(ctx.node_id)],
        isr_nodes: vec![BrokerId(ctx.node_id)],
    }
}

/// A known topic with all its partitions led by this node.
fn topic_entry(ctx: &BrokerContext, info: &TopicInfo) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(StrBytes::from_string(info.name.clone())));
    entry.topic_id = info.id;
    entry.is_internal = is_internal(&info.name);
    entry.partitions = (0..info.partitions.max(0))
        .map(|index| {
            let leadership = partition_leadership(ctx);
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = index;
            partition.leader_id = leadership.leader_id;
            partition.leader_epoch = leadership.leader_epoch;
            partition.replica_nodes = leadership.replica_nodes;
            partition.isr_nodes = leadership.isr_nodes;
            partition
        })
        .collect();
    entry
}

/// Kafka's topic name rules: 1..=249 bytes of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > TOPIC_NAME_MAX_BYTES {
        return Err("longer than 249 bytes");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_topic_name;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders-v1.eu_west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
