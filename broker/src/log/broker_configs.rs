//! Dynamic broker configs for the topic defaults (Kafka's KIP-226): a cluster-wide set and
//! this broker's own, stored in the metadata log (`SetBrokerOverrides`) and laid over the
//! static defaults (flags, environment, properties file). Precedence, highest first, as
//! Kafka's `DynamicBrokerConfig`: this broker's, the cluster-wide, the static, the built-in.
//!
//! A change is checked against every topic's overrides before it is stored, then every
//! topic's effective config is recomputed in place (what retention, rolling and the cleaner
//! read), under the metadata lock like any topic change.
//!
//! One dynamic broker config is not a topic default: `producer.id.expiration.ms`
//! (KIP-854). It is stored in the same sets under its own name (no topic config has it, and
//! a version without it leaves it out of a replayed set as a key it does not know), and
//! published to the producer registry's expiry sweep through
//! [`DynamicProducerExpiration`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use super::manager::{usable_config, LogManager};
use super::metadata_log::{BrokerOverrides, MetadataRecord};
use super::{LogError, LogManagerConfig, TopicConfig};

/// Which dynamic set a change replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerScope {
    /// Every broker's default (Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG, resource name "").
    Cluster,
    /// This broker's own (Kafka's DYNAMIC_BROKER_CONFIG, resource name = its node id).
    ThisBroker,
}

/// The broker config `producer.id.expiration.ms`, the one dynamic setting kept in the
/// sets that is not a topic default.
pub const PRODUCER_ID_EXPIRATION_MS: &str = "producer.id.expiration.ms";

/// The dynamic topic defaults in force, keyed by topic config (`retention.ms`), and the
/// defaults they make; also [`PRODUCER_ID_EXPIRATION_MS`] under its own name.
#[derive(Debug, Clone)]
pub struct BrokerDefaults {
    pub cluster: BTreeMap<String, String>,
    pub this_broker: BTreeMap<String, String>,
    /// Static defaults overlaid by `cluster`, then `this_broker`.
    pub config: Arc<TopicConfig>,
    /// `producer.id.expiration.ms` of `this_broker`, else of `cluster`; `None`: the static.
    pub producer_id_expiration_ms: Option<i32>,
}

/// `producer.id.expiration.ms` as a dynamic broker config, for the producer registry's
/// expiry sweep to read at each pass without a restart (Kafka's KIP-854 makes it
/// dynamic). Written by the log manager only, at start and whenever a set changes.
#[derive(Debug, Default)]
pub struct DynamicProducerExpiration {
    /// 0 when no dynamic value is set (a set one is at least 1): the static one applies.
    ms: AtomicI32,
}

impl DynamicProducerExpiration {
    /// The dynamic value, if one is set.
    pub fn get(&self) -> Option<i32> {
        let ms = self.ms.load(Ordering::Relaxed);
        (ms >= 1).then_some(ms)
    }

    pub(crate) fn set(&self, ms: Option<i32>) {
        debug_assert!(ms.is_none_or(|ms| ms >= 1), "{ms:?}");
        self.ms.store(ms.unwrap_or(0), Ordering::Relaxed);
    }
}

/// A stored `producer.id.expiration.ms`: an INT of at least 1, as Kafka's validator
/// (`TransactionLogConfig`) and the static flag require.
fn producer_expiration_of(value: &str) -> Result<i32, LogError> {
    match value.trim().parse::<i32>() {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err(LogError::InvalidConfig(format!(
            "{PRODUCER_ID_EXPIRATION_MS}={value:?}: must be an integer of at least 1"
        ))),
    }
}

/// `set` less the settings that are not topic defaults: what `TopicConfig` checks.
fn topic_part(set: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut topic = set.clone();
    topic.remove(PRODUCER_ID_EXPIRATION_MS);
    topic
}

/// The producer expiration `set` holds, checked.
fn producer_part(set: &BTreeMap<String, String>) -> Result<Option<i32>, LogError> {
    let value = set.get(PRODUCER_ID_EXPIRATION_MS);
    value.map(|value| producer_expiration_of(value)).transpose()
}

/// `cluster` overlaid by `this_broker`.
fn layered(
    cluster: &BTreeMap<String, String>,
    this_broker: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut merged = cluster.clone();
    merged.extend(this_broker.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

impl BrokerDefaults {
    /// The defaults replayed from the metadata log. A stored value this version cannot
    /// apply is left out with a warning, as a topic's is (`usable_config`).
    pub(crate) fn replayed(config: &LogManagerConfig, stored: &BrokerOverrides) -> BrokerDefaults {
        let mut cluster = stored.cluster.clone();
        let mut this_broker = stored
            .scope(Some(config.node_id))
            .cloned()
            .unwrap_or_default();
        let merged = layered(&cluster, &this_broker);
        let (defaults, mut usable) = usable_config(
            &config.topic_defaults,
            "dynamic broker configs",
            &topic_part(&merged),
        );
        for set in [&mut cluster, &mut this_broker] {
            match producer_part(set) {
                Ok(Some(ms)) => {
                    usable.insert(PRODUCER_ID_EXPIRATION_MS.to_owned(), ms.to_string());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "stored dynamic broker config no longer valid; the static one applies");
                    set.remove(PRODUCER_ID_EXPIRATION_MS);
                }
            }
        }
        // What was left out is not in force: not described as set either.
        cluster.retain(|key, _| usable.contains_key(key));
        this_broker.retain(|key, _| usable.contains_key(key));
        let producer_id_expiration_ms = producer_part(&this_broker)
            .ok()
            .flatten()
            .or(producer_part(&cluster).ok().flatten());
        BrokerDefaults {
            cluster,
            this_broker,
            config: defaults,
            producer_id_expiration_ms,
        }
    }

    /// The dynamic set of `scope`.
    pub fn scope(&self, scope: BrokerScope) -> &BTreeMap<String, String> {
        match scope {
            BrokerScope::Cluster => &self.cluster,
            BrokerScope::ThisBroker => &self.this_broker,
        }
    }
}

impl LogManager {
    /// `producer.id.expiration.ms` as set dynamically, kept current by this manager: for
    /// the producer registry's expiry sweep.
    pub fn dynamic_producer_expiration(&self) -> Arc<DynamicProducerExpiration> {
        Arc::clone(&self.shared.producer_expiration)
    }

    /// Replaces the dynamic set of `scope` with what `edit` makes of it (keys are topic
    /// config names, and [`PRODUCER_ID_EXPIRATION_MS`]). The new defaults must be valid and
    /// leave every topic's overrides valid on top of them, else nothing changes. Applied
    /// live to every topic and to the producer expiry; `validate_only` checks and writes
    /// nothing.
    pub fn edit_broker_overrides<E: From<LogError>>(
        &self,
        scope: BrokerScope,
        validate_only: bool,
        edit: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, E>,
    ) -> Result<(), E> {
        let shared = &self.shared;
        let mut metadata = shared.metadata.lock();
        let current = self.broker_defaults();
        let edited = edit(current.scope(scope))?;
        let (cluster, this_broker) = match scope {
            BrokerScope::Cluster => (edited.clone(), current.this_broker.clone()),
            BrokerScope::ThisBroker => (current.cluster.clone(), edited.clone()),
        };
        let merged = layered(&cluster, &this_broker);
        let statics = self.static_topic_defaults();
        let config = Arc::new(TopicConfig::with_overrides(statics, &topic_part(&merged))?);
        // The cluster-wide set is what every other broker applies: it must be valid
        // without ours on top, which could hide a bad value here.
        if scope == BrokerScope::Cluster {
            TopicConfig::with_overrides(statics, &topic_part(&cluster))?;
        }
        let producer_id_expiration_ms = producer_part(&this_broker)?.or(producer_part(&cluster)?);
        // Every topic's config on the new defaults, computed before anything is stored so a
        // default that some topic's overrides cannot stand on is refused, not half applied.
        let image = &metadata.1;
        let mut topic_configs = Vec::with_capacity(image.topics.len());
        for (name, record) in &image.topics {
            let topic_config =
                TopicConfig::with_overrides(&config, &record.overrides).map_err(|e| {
                    LogError::InvalidConfig(format!("topic {name} would be invalid: {e}"))
                })?;
            topic_configs.push((
                name.clone(),
                Arc::new(topic_config),
                record.overrides.clone(),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let node_id = match scope {
            BrokerScope::Cluster => None,
            BrokerScope::ThisBroker => Some(shared.config.node_id),
        };
        let record = MetadataRecord::SetBrokerOverrides {
            node_id,
            overrides: edited,
        };
        shared.commit(&mut metadata, record)?;
        *shared.defaults.write() = Arc::new(BrokerDefaults {
            cluster,
            this_broker,
            config,
            producer_id_expiration_ms,
        });
        (shared.producer_expiration).set(producer_id_expiration_ms);
        let mut topics = shared.topics.write();
        for (name, topic_config, overrides) in topic_configs {
            if let Some(entry) = topics.get_mut(&name) {
                entry.set_config(topic_config, overrides);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn set(logs: &LogManager, scope: BrokerScope, pairs: &[(&str, &str)]) -> Result<(), LogError> {
        let wanted = map(pairs);
        logs.edit_broker_overrides(scope, false, |_| Ok::<_, LogError>(wanted))
    }

    fn open(dir: &std::path::Path) -> Arc<LogManager> {
        let mut config = LogManagerConfig::new(dir);
        config.node_id = 5;
        config.topic_defaults = TopicConfig::with_overrides(
            &TopicConfig::default(),
            &map(&[("retention.ms", "9000"), ("segment.ms", "8000")]),
        )
        .unwrap();
        LogManager::open(config).unwrap()
    }

    #[test]
    fn layers_apply_live_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let logs = open(dir.path());
        logs.create_topic("plain", 1, BTreeMap::new(), false)
            .unwrap();
        logs.create_topic("own", 1, map(&[("retention.ms", "1")]), false)
            .unwrap();
        set(&logs, BrokerScope::Cluster, &[("retention.ms", "7000")]).unwrap();
        let plain = logs.partition("plain", 0).unwrap();
        assert_eq!(plain.config().retention_ms, 7000);
        assert_eq!(logs.topic("plain").unwrap().config.retention_ms, 7000);
        assert_eq!(logs.topic("own").unwrap().config.retention_ms, 1);
        set(&logs, BrokerScope::ThisBroker, &[("retention.ms", "6000")]).unwrap();
        assert_eq!(plain.config().retention_ms, 6000);
        // The static default stays under the keys no dynamic set names.
        assert_eq!(logs.topic_defaults().segment_ms, 8000);
        logs.shutdown().unwrap();
        drop((plain, logs));
        let logs = open(dir.path());
        assert_eq!(logs.topic("plain").unwrap().config.retention_ms, 6000);
        assert_eq!(
            logs.broker_defaults().cluster,
            map(&[("retention.ms", "7000")])
        );
        set(&logs, BrokerScope::ThisBroker, &[]).unwrap();
        assert_eq!(logs.topic("plain").unwrap().config.retention_ms, 7000);
        set(&logs, BrokerScope::Cluster, &[]).unwrap();
        assert_eq!(logs.topic("plain").unwrap().config.retention_ms, 9000);
        assert_eq!(
            logs.partition("plain", 0).unwrap().config().retention_ms,
            9000
        );
    }

    #[test]
    fn invalid_or_validate_only_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let logs = open(dir.path());
        logs.create_topic("t", 1, BTreeMap::new(), false).unwrap();
        assert!(set(&logs, BrokerScope::Cluster, &[("retention.ms", "abc")]).is_err());
        assert!(set(&logs, BrokerScope::Cluster, &[("no.such.key", "1")]).is_err());
        let wanted = map(&[("retention.ms", "5")]);
        logs.edit_broker_overrides(BrokerScope::Cluster, true, |_| Ok::<_, LogError>(wanted))
            .unwrap();
        assert!(logs.broker_defaults().cluster.is_empty());
        assert_eq!(logs.topic("t").unwrap().config.retention_ms, 9000);
    }

    /// A default that one topic's own overrides cannot stand on (its min.compaction.lag.ms
    /// above the new max.compaction.lag.ms) is refused, naming the topic, and nothing
    /// changes: not the defaults, not any topic, not what a restart replays.
    #[test]
    fn a_default_that_breaks_a_topics_overrides_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let logs = open(dir.path());
        let lagged = map(&[("min.compaction.lag.ms", "60000")]);
        logs.create_topic("lagged", 1, lagged, false).unwrap();
        logs.create_topic("plain", 1, BTreeMap::new(), false)
            .unwrap();
        let breaking = [("max.compaction.lag.ms", "1000"), ("retention.ms", "5")];
        for validate_only in [true, false] {
            let wanted = map(&breaking);
            let refused = logs
                .edit_broker_overrides(BrokerScope::Cluster, validate_only, |_| {
                    Ok::<_, LogError>(wanted)
                })
                .unwrap_err();
            let LogError::InvalidConfig(message) = refused else {
                panic!("{refused:?}");
            };
            assert!(message.contains("topic lagged"), "{message}");
        }
        let refused = set(&logs, BrokerScope::ThisBroker, &breaking);
        assert!(matches!(refused, Err(LogError::InvalidConfig(_))));
        let unchanged = |logs: &LogManager| {
            let defaults = logs.broker_defaults();
            assert!(defaults.cluster.is_empty() && defaults.this_broker.is_empty());
            assert_eq!(defaults.config.max_compaction_lag_ms, i64::MAX);
            assert_eq!(logs.topic("plain").unwrap().config.retention_ms, 9000);
            let lagged = logs.topic("lagged").unwrap().config;
            assert_eq!(lagged.max_compaction_lag_ms, i64::MAX);
        };
        unchanged(&logs);
        // The same default is fine once no topic's overrides conflict with it.
        set(
            &logs,
            BrokerScope::Cluster,
            &[("max.compaction.lag.ms", "60000")],
        )
        .unwrap();
        set(&logs, BrokerScope::Cluster, &[]).unwrap();
        logs.shutdown().unwrap();
        drop(logs);
        unchanged(&open(dir.path()));
    }

    /// `producer.id.expiration.ms` lives in the sets beside the topic defaults without
    /// being one: checked as the static flag (an INT of at least 1), this broker's over the
    /// cluster's, published to the shared handle at once and again after a restart.
    #[test]
    fn producer_expiration_is_kept_checked_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let logs = open(dir.path());
        logs.create_topic("t", 1, BTreeMap::new(), false).unwrap();
        let handle = logs.dynamic_producer_expiration();
        let key = PRODUCER_ID_EXPIRATION_MS;
        for bad in ["0", "-1", "soon", "2147483648", ""] {
            for scope in [BrokerScope::Cluster, BrokerScope::ThisBroker] {
                let refused = set(&logs, scope, &[(key, bad)]);
                assert!(matches!(refused, Err(LogError::InvalidConfig(_))), "{bad}");
            }
        }
        let wanted = map(&[(key, "5000")]);
        logs.edit_broker_overrides(BrokerScope::Cluster, true, |_| Ok::<_, LogError>(wanted))
            .unwrap();
        assert_eq!(
            (
                handle.get(),
                logs.broker_defaults().producer_id_expiration_ms
            ),
            (None, None)
        );

        set(
            &logs,
            BrokerScope::Cluster,
            &[(key, "5000"), ("retention.ms", "7000")],
        )
        .unwrap();
        assert_eq!(handle.get(), Some(5000));
        assert_eq!(logs.topic("t").unwrap().config.retention_ms, 7000);
        set(&logs, BrokerScope::ThisBroker, &[(key, "3000")]).unwrap();
        assert_eq!(handle.get(), Some(3000));
        // A bad cluster value is refused even where this broker's own would hide it.
        let hidden = set(&logs, BrokerScope::Cluster, &[(key, "0")]);
        assert!(matches!(hidden, Err(LogError::InvalidConfig(_))));
        set(
            &logs,
            BrokerScope::ThisBroker,
            &[(key, "3000"), ("retention.ms", "1")],
        )
        .unwrap();
        let masked = set(&logs, BrokerScope::Cluster, &[("retention.ms", "soon")]);
        assert!(matches!(masked, Err(LogError::InvalidConfig(_))));
        logs.shutdown().unwrap();
        drop((handle, logs));

        let logs = open(dir.path());
        let handle = logs.dynamic_producer_expiration();
        assert_eq!(handle.get(), Some(3000));
        let defaults = logs.broker_defaults();
        assert_eq!(defaults.producer_id_expiration_ms, Some(3000));
        assert_eq!(
            defaults.cluster,
            map(&[(key, "5000"), ("retention.ms", "7000")])
        );
        assert_eq!(defaults.config.retention_ms, 1);
        set(&logs, BrokerScope::ThisBroker, &[]).unwrap();
        assert_eq!(handle.get(), Some(5000));
        set(&logs, BrokerScope::Cluster, &[]).unwrap();
        assert_eq!(handle.get(), None);
    }

    /// A metadata log written before `producer.id.expiration.ms` could be set (records as
    /// that version framed them, JSON by hand) replays as it did: its topics and topic
    /// defaults, no producer expiration; and one stored value this version cannot use is
    /// left out alone.
    #[test]
    fn older_metadata_logs_still_replay() {
        let dir = tempfile::tempdir().unwrap();
        let records = [
            r#"{"type":"set_broker_overrides","node_id":null,"overrides":{"retention.ms":"7000"}}"#,
            r#"{"type":"create_topic","name":"t","id":"00000000-0000-0000-0000-000000000007","partitions":2,"overrides":{"segment.ms":"100"}}"#,
            r#"{"type":"set_broker_overrides","node_id":5,"overrides":{"retention.ms":"6000"}}"#,
        ];
        let mut log = Vec::new();
        for json in records {
            log.extend_from_slice(&(json.len() as u32).to_be_bytes());
            log.extend_from_slice(&runnel_protocol::crc::crc32c(json.as_bytes()).to_be_bytes());
            log.extend_from_slice(json.as_bytes());
        }
        let metadata_dir = dir.path().join(super::super::metadata_log::METADATA_DIR);
        std::fs::create_dir_all(&metadata_dir).unwrap();
        std::fs::write(metadata_dir.join("metadata.log"), &log).unwrap();
        let logs = open(dir.path());
        let topic = logs.topic("t").unwrap();
        assert_eq!((topic.partitions, topic.config.segment_ms), (2, 100));
        assert_eq!(topic.config.retention_ms, 6000);
        let defaults = logs.broker_defaults();
        assert_eq!(defaults.cluster, map(&[("retention.ms", "7000")]));
        assert_eq!(defaults.producer_id_expiration_ms, None);
        assert_eq!(logs.dynamic_producer_expiration().get(), None);

        let stored = BrokerOverrides {
            cluster: map(&[(PRODUCER_ID_EXPIRATION_MS, "0"), ("retention.ms", "7")]),
            per_broker: BTreeMap::from([(5, map(&[(PRODUCER_ID_EXPIRATION_MS, "9")]))]),
        };
        let mut config = LogManagerConfig::new("/nonexistent");
        config.node_id = 5;
        let replayed = BrokerDefaults::replayed(&config, &stored);
        assert_eq!(replayed.cluster, map(&[("retention.ms", "7")]));
        assert_eq!(replayed.producer_id_expiration_ms, Some(9));
    }

    #[test]
    fn another_brokers_set_is_not_ours() {
        let stored = BrokerOverrides {
            cluster: map(&[("retention.ms", "1")]),
            per_broker: BTreeMap::from([(9, map(&[("retention.ms", "2")]))]),
        };
        let mut config = LogManagerConfig::new("/nonexistent");
        config.node_id = 5;
        let defaults = BrokerDefaults::replayed(&config, &stored);
        assert_eq!(defaults.config.retention_ms, 1);
        // A stored value this version cannot apply is left out, and not reported as set.
        let unusable = BrokerOverrides {
            cluster: map(&[("retention.ms", "soon"), ("segment.ms", "7")]),
            per_broker: BTreeMap::new(),
        };
        let defaults = BrokerDefaults::replayed(&config, &unusable);
        assert_eq!(defaults.cluster, map(&[("segment.ms", "7")]));
        assert_eq!(defaults.config.segment_ms, 7);
        config.node_id = 9;
        assert_eq!(
            BrokerDefaults::replayed(&config, &stored)
                .config
                .retention_ms,
            2
        );
    }
}
