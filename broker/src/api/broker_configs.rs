//! Broker config resources (type 4) for DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs: the topic defaults under their broker names, changeable at run
//! time as Kafka's KIP-226 dynamic broker configs, and this broker's identity (read-only).
//!
//! Resource name "" is the cluster-wide dynamic default, this broker's node id its own
//! (Kafka's `ConfigAdminManager.validateResourceNameIsCurrentNodeId`: another id, or one
//! that is not a number, is INVALID_REQUEST). Only the broker configs that set a topic
//! default can change (`key_of_broker_config`), and `producer.id.expiration.ms` (KIP-854;
//! its check interval stays static and read-only, as in Kafka); any other name is refused
//! with INVALID_REQUEST, and so is a value storage refuses: Kafka's `ConfigAdminManager`
//! turns every validation failure of a broker config into INVALID_REQUEST (KAFKA-13609).
//! Deliberately unlike Kafka, a name Kafka does not know is refused too (Kafka stores it
//! for plugins; this broker has none, so it would only hide a typo).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource as IncrementalResource;

use super::create_topics::Refusal;
use super::describe_configs::{
    config_type, default_source, describe_all, key_info, key_of_broker_config, row, synonym,
    BrokerSetting, Detail, KeyInfo, SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER,
    SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_STATIC_BROKER,
};
use super::incremental_alter_configs::apply_op;
use super::BrokerContext;
use crate::config::{time_units, TIME_UNITS};
use crate::log::{BrokerDefaults, BrokerScope, LogError, TopicConfig, PRODUCER_ID_EXPIRATION_MS};
use crate::producers::ProducerStateConfig;

/// The dynamic set a broker resource name stands for.
pub(super) fn broker_scope(ctx: &BrokerContext, name: &str) -> Result<BrokerScope, Refusal> {
    if name.is_empty() {
        return Ok(BrokerScope::Cluster);
    }
    let Ok(id) = name.parse::<i32>() else {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("Node id must be an integer, but it is: {name}"),
        ));
    };
    if id != ctx.node_id {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {}, but received {name}",
                ctx.node_id
            ),
        ));
    }
    Ok(BrokerScope::ThisBroker)
}

/// A refusal from the storage edit, or one of ours.
struct Failed(Refusal);

impl From<LogError> for Failed {
    fn from(error: LogError) -> Failed {
        Failed(match error {
            // KAFKA-13609: broker config validation failures are INVALID_REQUEST in Kafka.
            LogError::InvalidConfig(message) => {
                Refusal::new(ResponseError::InvalidRequest, message)
            }
            other => Refusal::from(other),
        })
    }
}

impl From<Refusal> for Failed {
    fn from(refusal: Refusal) -> Failed {
        Failed(refusal)
    }
}

/// The key storage keeps each named broker config under (the topic key of a topic
/// default, else its own name); every name that cannot change dynamically refuses the
/// whole resource, listed as Kafka's `DynamicBrokerConfig.validateConfigs` lists them.
fn topic_keys<'a>(names: impl Iterator<Item = &'a str>) -> Result<Vec<&'static str>, Refusal> {
    let (mut keys, mut refused) = (Vec::new(), Vec::new());
    for name in names {
        match key_of_broker_config(name) {
            Some(known) => keys.push(known.topic_key),
            None if name == PRODUCER_ID_EXPIRATION_MS => keys.push(PRODUCER_ID_EXPIRATION_MS),
            None => refused.push(name),
        }
    }
    if refused.is_empty() {
        return Ok(keys);
    }
    Err(Refusal::new(
        ResponseError::InvalidRequest,
        format!(
            "Cannot update these configs dynamically: {}",
            refused.join(", ")
        ),
    ))
}

/// AlterConfigs of a broker resource: `configs` (broker name, value) replace its whole
/// dynamic set.
pub(super) fn alter_whole(
    ctx: &BrokerContext,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> Result<(), Refusal> {
    let scope = broker_scope(ctx, name)?;
    let keys = topic_keys(configs.iter().map(|(name, _)| *name))?;
    let mut wanted = BTreeMap::new();
    for (&(name, value), key) in configs.iter().zip(keys) {
        let Some(value) = value else {
            return Err(null_value(name));
        };
        wanted.insert(key.to_owned(), value.to_owned());
    }
    ctx.logs
        .edit_broker_overrides(scope, validate_only, |_| Ok::<_, Failed>(wanted))
        .map_err(|Failed(refusal)| refusal)
}

/// Kafka's `ConfigAdminManager.preprocess`: a null value (other than for DELETE).
fn null_value(name: &str) -> Refusal {
    Refusal::new(
        ResponseError::InvalidRequest,
        format!("Null value not supported for : {name}"),
    )
}

/// IncrementalAlterConfigs of a broker resource: each operation applied to its dynamic set.
/// APPEND / SUBTRACT start from the value in force below the set when it has none (the
/// cluster default or the static one), as they start from the default for a topic.
pub(super) fn alter_incremental(
    ctx: &BrokerContext,
    resource: &IncrementalResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let scope = broker_scope(ctx, resource.resource_name.as_str())?;
    let keys = topic_keys(resource.configs.iter().map(|c| c.name.as_str()))?;
    let statics = describe_all(ctx.logs.static_topic_defaults());
    ctx.logs
        .edit_broker_overrides(scope, validate_only, |current| {
            let cluster = ctx.logs.broker_defaults().cluster.clone();
            let mut edited = current.clone();
            for (config, key) in resource.configs.iter().zip(&keys) {
                let below = match scope {
                    BrokerScope::ThisBroker => cluster.get(*key),
                    BrokerScope::Cluster => None,
                };
                let now = edited.get(*key).or(below).or_else(|| statics.get(key));
                match apply_op(config, key, now.map(String::as_str))? {
                    Some(value) => edited.insert((*key).to_owned(), value),
                    None => edited.remove(*key),
                };
            }
            Ok::<_, Failed>(edited)
        })
        .map_err(|Failed(refusal)| refusal)
}

/// One described row: name, value (none: Kafka's null), the key it describes (if a topic
/// default), its source, whether it is read-only, and its synonyms.
type Described = (
    &'static str,
    Option<String>,
    Option<&'static KeyInfo>,
    i8,
    bool,
    Vec<kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym>,
);

/// DescribeConfigs of a broker resource. This broker's: every topic default under its
/// broker names (the time keys under each unit's name, as Kafka lists `log.retention.ms`,
/// `.minutes` and `.hours`; alterable) with its source and, when asked, synonyms in Kafka's
/// order, and its identity (read-only). The cluster default (""): only the configs set
/// there, as Kafka's `ConfigHelper.describeConfigs` lists `currentDynamicDefaultConfigs`,
/// each with only that layer as synonym (`createBrokerConfigEntry`'s filter).
pub(super) fn describe_broker(
    ctx: &BrokerContext,
    detail: Detail,
    broker: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, Refusal> {
    let scope = broker_scope(ctx, broker)?;
    let dynamic = ctx.logs.broker_defaults();
    let statics = describe_all(ctx.logs.static_topic_defaults());
    let built_in = describe_all(&TopicConfig::default());
    let setting = |known| BrokerSetting::of(ctx, known, &dynamic, &statics, &built_in);
    let asked = |synonyms: Vec<_>| match detail.synonyms {
        true => synonyms,
        false => Vec::new(),
    };
    let mut values: Vec<Described> = Vec::new();
    if scope == BrokerScope::Cluster {
        for (key, value) in &dynamic.cluster {
            let Some(known) = key_info(key) else { continue };
            let Some(setting) = setting(known) else {
                continue;
            };
            let synonyms = asked(setting.synonyms(false));
            let source = SOURCE_DYNAMIC_DEFAULT_BROKER;
            let name = setting.broker_key;
            values.push((
                name,
                Some(value.clone()),
                Some(known),
                source,
                false,
                synonyms,
            ));
        }
        values.extend(producer_expiration_row(ctx, &dynamic, false, detail));
    } else {
        for entry in dynamic.config.describe(&BTreeMap::new()) {
            let Some(known) = key_info(entry.name) else {
                continue;
            };
            let Some(setting) = setting(known) else {
                continue;
            };
            let single = time_units(known.topic_key).is_none();
            for (name, value, source) in setting.rows() {
                // One broker name: the value in force as storage renders it (from the same
                // layers). Several: each name's own value (Kafka's null when unset).
                let value = match single {
                    true => Some(entry.value.clone()),
                    false => value.map(str::to_owned),
                };
                let synonyms = asked(setting.synonyms_of(name, true));
                // Only the first name can change at run time (Kafka's
                // `DynamicLogConfig.ReconfigurableConfigs`): `log.retention.hours` is static.
                let read_only = name != setting.broker_key;
                values.push((name, value, Some(known), source, read_only, synonyms));
            }
        }
        values.extend(identity_rows(ctx, &dynamic, detail));
    }
    let rows = values
        .into_iter()
        .map(|(name, value, known, source, read_only, synonyms)| {
            let config_type = match (unit_kind(name), known) {
                (Some(unit_type), _) => unit_type,
                (None, Some(info)) => info.config_type,
                (None, None) => broker_only_type(name),
            };
            row(name, value, known, detail)
                .with_read_only(read_only)
                .with_config_source(source)
                .with_config_type(config_type)
                .with_synonyms(synonyms)
        });
    Ok(rows.collect())
}

/// Kafka's type for the coarse time units (`log.retention.hours`, `.minutes`,
/// `log.roll.hours`, `log.roll.jitter.hours` are INT; the `.ms` ones LONG, as their keys).
fn unit_kind(name: &str) -> Option<i8> {
    let coarse = (TIME_UNITS.iter())
        .flat_map(|(_, units)| units.iter())
        .any(|&(unit_name, unit_ms, _)| unit_name == name && unit_ms > 1);
    coarse.then_some(config_type::INT)
}

/// This broker's settings that are not topic defaults: static, read-only, but for
/// `producer.id.expiration.ms`.
fn identity_rows(ctx: &BrokerContext, dynamic: &BrokerDefaults, detail: Detail) -> Vec<Described> {
    let listener = format!(
        "PLAINTEXT://{}:{}",
        ctx.advertised_host, ctx.advertised_port
    );
    let broker_only = [
        ("node.id", ctx.node_id.to_string()),
        ("broker.id", ctx.node_id.to_string()),
        ("num.partitions", ctx.default_partitions.to_string()),
        (
            "auto.create.topics.enable",
            ctx.auto_create_topics.to_string(),
        ),
        ("default.replication.factor", "1".to_owned()),
        ("advertised.listeners", listener),
        (
            "max.incremental.fetch.session.cache.slots",
            ctx.fetch_sessions.slots_max().to_string(),
        ),
    ];
    let statics = broker_only.map(|(name, value)| {
        // `broker.id` is `node.id`'s synonym: set when that is.
        let set_as = if name == "broker.id" { "node.id" } else { name };
        (name, value, default_source(ctx, set_as))
    });
    let read_only = |(name, value, source): (&'static str, String, i8)| {
        let synonyms = match detail.synonyms {
            true => vec![synonym(name, &value, source)],
            false => Vec::new(),
        };
        (name, Some(value), None, source, true, synonyms)
    };
    let mut rows: Vec<Described> = statics.into_iter().map(read_only).collect();
    rows.extend(producer_expiration_row(ctx, dynamic, true, detail));
    rows.extend(check_interval_row(ctx.producers.config()).map(read_only));
    rows
}

/// `producer.id.expiration.ms` as this broker (`per_broker`) or the cluster default
/// describes it: the value in force and its source, with synonyms in Kafka's order
/// (`ConfigHelper.configSynonyms`: DYNAMIC_BROKER_CONFIG, only for this broker;
/// DYNAMIC_DEFAULT_BROKER_CONFIG; STATIC_BROKER_CONFIG; DEFAULT_CONFIG). The cluster
/// default lists it only when set there, as its topic defaults.
fn producer_expiration_row(
    ctx: &BrokerContext,
    dynamic: &BrokerDefaults,
    per_broker: bool,
    detail: Detail,
) -> Option<Described> {
    let name = PRODUCER_ID_EXPIRATION_MS;
    // Storage keeps only values it could parse (`BrokerDefaults::replayed`).
    let stored = |set: &BTreeMap<String, String>| set.get(name)?.trim().parse::<i32>().ok();
    let config = ctx.producers.config();
    let layers = [
        (
            stored(&dynamic.this_broker).filter(|_| per_broker),
            SOURCE_DYNAMIC_BROKER,
        ),
        (stored(&dynamic.cluster), SOURCE_DYNAMIC_DEFAULT_BROKER),
        (
            (config.producer_id_expiration_ms).map(|_| config.expiration_ms()),
            SOURCE_STATIC_BROKER,
        ),
        (
            Some(ProducerStateConfig::PRODUCER_ID_EXPIRATION_MS_DEFAULT),
            SOURCE_DEFAULT,
        ),
    ];
    let set: Vec<(String, i8)> = layers
        .into_iter()
        .filter_map(|(ms, source)| Some((ms?.to_string(), source)))
        .collect();
    let (value, source) = set.first()?.clone();
    if !per_broker && source != SOURCE_DYNAMIC_DEFAULT_BROKER {
        return None;
    }
    let synonyms = set
        .iter()
        .filter(|_| detail.synonyms)
        .filter(|(_, source)| per_broker || *source == SOURCE_DYNAMIC_DEFAULT_BROKER)
        .map(|(value, source)| synonym(name, value, *source))
        .collect();
    Some((name, Some(value), None, source, false, synonyms))
}

/// `producer.id.expiration.check.interval.ms` when set: Kafka lists it only when given,
/// being an internal config (`ConfigHelper.allConfigs` adds the originals to the
/// non-internal values). Static, as in Kafka.
fn check_interval_row(config: &ProducerStateConfig) -> Option<(&'static str, String, i8)> {
    let interval_ms = config.producer_id_expiration_check_interval_ms?;
    Some((
        "producer.id.expiration.check.interval.ms",
        interval_ms.to_string(),
        SOURCE_STATIC_BROKER,
    ))
}

/// Types of the broker-only entries [`describe_broker`] adds.
fn broker_only_type(name: &str) -> i8 {
    match name {
        "auto.create.topics.enable" => config_type::BOOLEAN,
        "advertised.listeners" => config_type::STRING,
        _ => config_type::INT,
    }
}

#[cfg(test)]
#[path = "broker_configs_tests.rs"]
mod tests;
