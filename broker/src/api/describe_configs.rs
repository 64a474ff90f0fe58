//! DescribeConfigs (v0–4): a topic's effective configs, or this broker's configs (rows of
//! broker resources: `broker_configs`).
//! v0 (sarama before 1.23 sends it for `ListTopics` and `DescribeConfig`) has no synonyms
//! and says `is_default` where v1 says the source; the codec derives it from the source.
//!
//! Also owns what the admin handlers know about config keys beyond their values: the Kafka
//! type of each key, its broker-level synonym (`retention.ms` ↔ `log.retention.ms`) and a
//! one-line documentation string (`key_info`). Values and validation belong to storage
//! (`TopicConfig`); this table only describes them.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::broker_configs::describe_broker;
use super::create_topics::Refusal;
use super::BrokerContext;
use crate::config::time_units;
use crate::log::{BrokerDefaults, ConfigEntry, TopicConfig};

/// Config resource types (Kafka's `ConfigResource.Type`).
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// Config sources (Kafka's `ConfigSource`).
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub(super) const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub(super) const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub(super) const SOURCE_STATIC_BROKER: i8 = 4;
pub(super) const SOURCE_DEFAULT: i8 = 5;

/// Config value types (Kafka's `ConfigType`), as DescribeConfigs v3+ reports them.
pub(super) mod config_type {
    pub const UNKNOWN: i8 = 0;
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
}

/// What DescribeConfigs says about a topic config key besides its value.
#[derive(Debug)]
pub(super) struct KeyInfo {
    pub topic_key: &'static str,
    /// The broker config that supplies this key's default (`None`: topic-only in Kafka,
    /// like the tiered-storage switches and the replication throttles).
    pub broker_key: Option<&'static str>,
    pub config_type: i8,
    pub documentation: &'static str,
}

const fn key(
    topic_key: &'static str,
    broker_key: &'static str,
    config_type: i8,
    documentation: &'static str,
) -> KeyInfo {
    KeyInfo {
        topic_key,
        broker_key: Some(broker_key),
        config_type,
        documentation,
    }
}

/// A key with no broker-wide default in Kafka.
const fn topic_only(
    topic_key: &'static str,
    config_type: i8,
    documentation: &'static str,
) -> KeyInfo {
    KeyInfo {
        topic_key,
        broker_key: None,
        config_type,
        documentation,
    }
}

use config_type::{BOOLEAN, DOUBLE, INT, LIST, LONG, STRING};

/// The topic configs we know how to describe. Storage may know more keys; those are
/// described with type UNKNOWN and no synonym.
#[rustfmt::skip]
const KEYS: &[KeyInfo] = &[
    key("segment.bytes", "log.segment.bytes", INT,
        "Size at which a log segment is rolled."),
    key("segment.ms", "log.roll.ms", LONG,
        "Age at which a log segment is rolled."),
    key("segment.index.bytes", "log.index.size.max.bytes", INT,
        "Offset index size limit."),
    key("index.interval.bytes", "log.index.interval.bytes", INT,
        "Log bytes between index entries."),
    key("retention.ms", "log.retention.ms", LONG,
        "Age after which old segments are deleted; -1 keeps them."),
    key("retention.bytes", "log.retention.bytes", LONG,
        "Partition size beyond which old segments are deleted; -1: unlimited."),
    key("cleanup.policy", "log.cleanup.policy", LIST,
        "delete, compact, or both (comma-separated)."),
    key("max.message.bytes", "message.max.bytes", INT,
        "Largest record batch accepted."),
    key("message.timestamp.type", "log.message.timestamp.type", STRING,
        "CreateTime or LogAppendTime."),
    key("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", LONG,
        "With CreateTime, how far a batch's timestamps may lie before the broker's clock."),
    key("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", LONG,
        "With CreateTime, how far a batch's timestamps may lie after the broker's clock."),
    key("flush.ms", "log.flush.interval.ms", LONG,
        "Interval of the background fsync for acks below all."),
    key("flush.messages", "log.flush.interval.messages", LONG,
        "Records left unflushed by an append that make it fsync before it is answered."),
    key("min.insync.replicas", "min.insync.replicas", INT,
        "In-sync replicas an acks=all write needs; this broker is the only one."),
    key("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", DOUBLE,
        "Dirty fraction that makes a log eligible for compaction."),
    key("delete.retention.ms", "log.cleaner.delete.retention.ms", LONG,
        "How long compaction keeps tombstones."),
    key("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", LONG,
        "Minimum age before a record may be compacted."),
    key("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", LONG,
        "Maximum age before a record must be eligible for compaction."),
    key("segment.jitter.ms", "log.roll.jitter.ms", LONG,
        "Largest random time a segment rolls before segment.ms."),
    key("compression.type", "compression.type", STRING,
        "Codec batches are stored in: producer (as sent), uncompressed, gzip, snappy, lz4, zstd."),
    key("compression.gzip.level", "compression.gzip.level", INT,
        "gzip level when the broker compresses: 1 to 9, or -1 for the default."),
    key("compression.lz4.level", "compression.lz4.level", INT,
        "lz4 level (1 to 17); accepted, the broker's lz4 encoder has one level."),
    key("compression.zstd.level", "compression.zstd.level", INT,
        "zstd level when the broker compresses: -131072 to 22."),
    key("preallocate", "log.preallocate", BOOLEAN,
        "No effect here: segments reserve disk blocks ahead on their own."),
    key("file.delete.delay.ms", "log.segment.delete.delay.ms", LONG,
        "No effect here: deleted segments are removed at once."),
    key("unclean.leader.election.enable", "unclean.leader.election.enable", BOOLEAN,
        "No effect on a single broker: there is no other replica to elect."),
    topic_only("leader.replication.throttled.replicas", LIST,
        "No effect on a single broker: nothing is replicated."),
    topic_only("follower.replication.throttled.replicas", LIST,
        "No effect on a single broker: nothing is replicated."),
    key("local.retention.ms", "log.local.retention.ms", LONG,
        "No effect without tiered storage: all data is local."),
    key("local.retention.bytes", "log.local.retention.bytes", LONG,
        "No effect without tiered storage: all data is local."),
    topic_only("remote.storage.enable", BOOLEAN,
        "Tiered storage is not supported: only false is accepted."),
    topic_only("remote.log.copy.disable", BOOLEAN,
        "No effect without tiered storage."),
    topic_only("remote.log.delete.on.disable", BOOLEAN,
        "No effect without tiered storage."),
    key("message.downconversion.enable", "log.message.downconversion.enable", BOOLEAN,
        "No effect (as in Kafka 4.0): only the current record format exists."),
];

/// What we know about a topic config key, if anything.
pub(super) fn key_info(topic_key: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|info| info.topic_key == topic_key)
}

/// The topic config a broker config sets the default of (`log.retention.ms` →
/// `retention.ms`): the broker configs Kafka lets change dynamically for the topic
/// defaults (`DynamicLogConfig.ReconfigurableConfigs`, the first synonym of each key).
pub(super) fn key_of_broker_config(broker_key: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|info| info.broker_key == Some(broker_key))
}

/// The DescribeConfigs / CreateTopics source of one topic config entry.
pub(crate) fn config_source(ctx: &BrokerContext, entry: &ConfigEntry) -> i8 {
    if entry.is_override {
        SOURCE_DYNAMIC_TOPIC
    } else {
        default_source(ctx, entry.name)
    }
}

/// The source of a topic config's broker-wide default, or of a broker-only setting (by its
/// broker name): this broker's dynamic config, the cluster-wide dynamic default, the
/// operator's setting (Kafka's STATIC_BROKER_CONFIG) or the built-in default, in Kafka's
/// precedence. Reporting the operator's value as the built-in default made admin clients
/// take it for Kafka's (`ConfigEntry.isDefault()`).
pub(super) fn default_source(ctx: &BrokerContext, topic_key: &str) -> i8 {
    let dynamic = ctx.logs.broker_defaults();
    if dynamic.this_broker.contains_key(topic_key) {
        SOURCE_DYNAMIC_BROKER
    } else if dynamic.cluster.contains_key(topic_key) {
        SOURCE_DYNAMIC_DEFAULT_BROKER
    } else if statically_set(ctx, topic_key) {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

/// Kafka's name of a config source (`ConfigEntry.ConfigSource`), as the HTTP admin API
/// shows it.
pub(crate) fn source_name(source: i8) -> &'static str {
    match source {
        SOURCE_DYNAMIC_TOPIC => "DYNAMIC_TOPIC_CONFIG",
        SOURCE_DYNAMIC_BROKER => "DYNAMIC_BROKER_CONFIG",
        SOURCE_DYNAMIC_DEFAULT_BROKER => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        SOURCE_STATIC_BROKER => "STATIC_BROKER_CONFIG",
        SOURCE_DEFAULT => "DEFAULT_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Which optional parts of each row the client asked for (and its version can carry).
#[derive(Debug, Clone, Copy)]
pub(super) struct Detail {
    pub synonyms: bool,
    pub documentation: bool,
}

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation && version >= 3,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| describe_resource(ctx, detail, resource))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_resource(
    ctx: &BrokerContext,
    detail: Detail,
    resource: DescribeConfigsResource,
) -> DescribeConfigsResult {
    let name = resource.resource_name.as_str();
    let rows = match resource.resource_type {
        RESOURCE_TOPIC => describe_topic(ctx, detail, name),
        RESOURCE_BROKER => describe_broker(ctx, detail, name),
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("config resource type {other} is not supported (only topics and brokers)"),
        )),
    };
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    match rows {
        Ok(mut rows) => {
            // As Kafka: a null or empty key list means every key.
            let wanted = resource
                .configuration_keys
                .as_ref()
                .filter(|keys| !keys.is_empty());
            if let Some(keys) = wanted {
                rows.retain(|row| keys.contains(&row.name));
            }
            result
                .with_error_code(0)
                .with_error_message(None)
                .with_configs(rows)
        }
        Err(refusal) => result
            .with_error_code(refusal.code)
            .with_error_message(refusal.message_field()),
    }
}

fn describe_topic(
    ctx: &BrokerContext,
    detail: Detail,
    topic: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, Refusal> {
    let info = ctx
        .logs
        .topic(topic)
        .ok_or_else(|| Refusal::unknown_topic(topic))?;
    let dynamic = ctx.logs.broker_defaults();
    let statics = describe_all(ctx.logs.static_topic_defaults());
    let built_in = describe_all(&TopicConfig::default());
    let rows = info
        .config
        .describe(&info.overrides)
        .into_iter()
        .map(|entry| {
            let known = key_info(entry.name);
            let mut synonyms = Vec::new();
            if detail.synonyms {
                if entry.is_override {
                    synonyms.push(synonym(entry.name, &entry.value, SOURCE_DYNAMIC_TOPIC));
                }
                if let Some(known) = known {
                    let setting = BrokerSetting::of(ctx, known, &dynamic, &statics, &built_in);
                    synonyms.extend(setting.iter().flat_map(|s| s.synonyms(true)));
                }
            }
            row(entry.name, Some(entry.value.clone()), known, detail)
                .with_read_only(entry.read_only)
                .with_config_source(config_source(ctx, &entry))
                .with_synonyms(synonyms)
        });
    Ok(rows.collect())
}

/// Each topic config's value in `config`, by topic key.
pub(super) fn describe_all(config: &TopicConfig) -> BTreeMap<&'static str, String> {
    let entries = config.describe(&BTreeMap::new()).into_iter();
    entries.map(|entry| (entry.name, entry.value)).collect()
}

/// A topic config's broker-wide setting in each of Kafka's layers, under Kafka's broker
/// names (several for the time keys: `log.retention.ms`, `.minutes`, `.hours`).
pub(super) struct BrokerSetting<'a> {
    /// Its first broker synonym, the one that can change dynamically.
    pub broker_key: &'static str,
    /// This broker's dynamic value, if set.
    this_broker: Option<&'a str>,
    /// The cluster-wide dynamic value, if set.
    cluster: Option<&'a str>,
    /// The operator's values (flag, environment or properties file) by broker name: each
    /// unit-suffixed one as given, else the key's under `broker_key`.
    statics: Vec<(&'static str, &'a str)>,
    /// Kafka's built-in defaults by broker name.
    built_ins: Vec<(&'static str, &'a str)>,
    /// The broker names, in Kafka's precedence.
    names: Vec<&'static str>,
}

impl<'a> BrokerSetting<'a> {
    /// `known`'s broker-wide setting (`None`: a topic-only key). `statics` and `built_in`
    /// are [`describe_all`] of the static and built-in defaults.
    pub(super) fn of(
        ctx: &'a BrokerContext,
        known: &'static KeyInfo,
        dynamic: &'a BrokerDefaults,
        statics: &'a BTreeMap<&'static str, String>,
        built_in: &'a BTreeMap<&'static str, String>,
    ) -> Option<BrokerSetting<'a>> {
        let key = known.topic_key;
        let broker_key = known.broker_key?;
        let (names, statics, built_ins) = match time_units(key) {
            Some(units) => (
                units.iter().map(|&(name, _, _)| name).collect(),
                (units.iter())
                    .filter_map(|&(name, _, _)| {
                        Some((name, ctx.static_unit_configs.get(name)?.as_str()))
                    })
                    .collect(),
                (units.iter())
                    .filter_map(|&(name, _, value)| Some((name, value?)))
                    .collect(),
            ),
            None => {
                let set = ctx.static_config_keys.contains(key);
                let value = statics.get(key).filter(|_| set);
                (
                    vec![broker_key],
                    value
                        .map(|v| (broker_key, v.as_str()))
                        .into_iter()
                        .collect(),
                    (built_in.get(key))
                        .map(|v| (broker_key, v.as_str()))
                        .into_iter()
                        .collect(),
                )
            }
        };
        Some(BrokerSetting {
            broker_key,
            this_broker: dynamic.this_broker.get(key).map(String::as_str),
            cluster: dynamic.cluster.get(key).map(String::as_str),
            statics,
            built_ins,
            names,
        })
    }

    /// Every layer's value as Kafka's `ConfigHelper.configSynonyms` collects them: this
    /// broker's dynamic value (DYNAMIC_BROKER_CONFIG, only `per_broker`), the cluster-wide
    /// one (DYNAMIC_DEFAULT_BROKER_CONFIG), the operator's (STATIC_BROKER_CONFIG), the
    /// built-in defaults (DEFAULT_CONFIG); within a layer, in the names' precedence.
    fn layers(&self, per_broker: bool) -> Vec<(&'static str, &'a str, i8)> {
        let this_broker = self.this_broker.filter(|_| per_broker);
        let dynamic = [
            (this_broker, SOURCE_DYNAMIC_BROKER),
            (self.cluster, SOURCE_DYNAMIC_DEFAULT_BROKER),
        ]
        .into_iter()
        .filter_map(|(value, source)| Some((self.broker_key, value?, source)));
        let statics =
            (self.statics.iter()).map(|&(name, value)| (name, value, SOURCE_STATIC_BROKER));
        let defaults = (self.built_ins.iter()).map(|&(name, value)| (name, value, SOURCE_DEFAULT));
        dynamic.chain(statics).chain(defaults).collect()
    }

    /// The synonyms of the row named `name` (`broker_key` for a topic's row): the
    /// [`layers`](Self::layers) less those ahead of the first one named `name`, as Kafka
    /// drops them — so `log.retention.ms` has none until it is set itself (no built-in
    /// default; `log.retention.hours` = 24 does not count), and the cluster default
    /// resource (not `per_broker`) keeps only its own layer.
    pub(super) fn synonyms_of(&self, name: &str, per_broker: bool) -> Vec<DescribeConfigsSynonym> {
        (self.layers(per_broker).into_iter())
            .skip_while(|&(layer_name, _, _)| layer_name != name)
            .filter(|&(_, _, source)| per_broker || source == SOURCE_DYNAMIC_DEFAULT_BROKER)
            .map(|(name, value, source)| synonym(name, value, source))
            .collect()
    }

    /// [`synonyms_of`](Self::synonyms_of) `broker_key`, as a topic's row lists them.
    pub(super) fn synonyms(&self, per_broker: bool) -> Vec<DescribeConfigsSynonym> {
        self.synonyms_of(self.broker_key, per_broker)
    }

    /// This broker's row for each broker name: its value in the first layer that sets it
    /// (none: Kafka's null, as for `log.retention.ms` unset) and that layer's source
    /// (DEFAULT_CONFIG when none does).
    pub(super) fn rows(&self) -> Vec<(&'static str, Option<&'a str>, i8)> {
        let layers = self.layers(true);
        (self.names.iter())
            .map(|&name| {
                let first = layers
                    .iter()
                    .find(|&&(layer_name, _, _)| layer_name == name);
                (
                    name,
                    first.map(|l| l.1),
                    first.map_or(SOURCE_DEFAULT, |l| l.2),
                )
            })
            .collect()
    }
}

/// Whether the operator set `topic_key`'s broker-wide default under its first broker name
/// (for a time key, `log.retention.hours` alone does not: Kafka then describes the topic's
/// `retention.ms` as DEFAULT_CONFIG, its synonyms starting at `log.retention.ms`).
fn statically_set(ctx: &BrokerContext, topic_key: &str) -> bool {
    match time_units(topic_key).and_then(|names| names.first()) {
        Some(&(first, _, _)) => ctx.static_unit_configs.contains_key(first),
        None => ctx.static_config_keys.contains(topic_key),
    }
}

/// One row with its name, value, type and (when asked) documentation.
pub(super) fn row(
    name: &'static str,
    value: Option<String>,
    known: Option<&'static KeyInfo>,
    detail: Detail,
) -> DescribeConfigsResourceResult {
    let documentation = known
        .filter(|_| detail.documentation)
        .map(|info| StrBytes::from_static_str(info.documentation));
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(value.map(StrBytes::from_string))
        .with_is_sensitive(false)
        .with_config_type(known.map_or(config_type::UNKNOWN, |info| info.config_type))
        .with_documentation(documentation)
}

pub(super) fn synonym(name: &'static str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value.to_owned())))
        .with_source(source)
}

#[cfg(test)]
#[path = "describe_configs_tests.rs"]
mod tests;
