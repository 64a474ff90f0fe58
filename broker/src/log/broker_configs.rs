//! Dynamic broker configs for the topic defaults (Kafka's KIP-226): a cluster-wide set and
//! this broker's own, stored in the metadata log (`SetBrokerOverrides`) and laid over the
//! static defaults (flags, environment, properties file). Precedence, highest first, as
//! Kafka's `DynamicBrokerConfig`: this broker's, the cluster-wide, the static, the built-in.
//!
//! A change is checked against every topic's overrides before it is stored, then every
//! topic's effective config is recomputed in place (what retention, rolling and the cleaner
//! read), under the metadata lock like any topic change.

use std::collections::BTreeMap;
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

/// The dynamic topic defaults in force, keyed by topic config (`retention.ms`), and the
/// defaults they make.
#[derive(Debug, Clone)]
pub struct BrokerDefaults {
    pub cluster: BTreeMap<String, String>,
    pub this_broker: BTreeMap<String, String>,
    /// Static defaults overlaid by `cluster`, then `this_broker`.
    pub config: Arc<TopicConfig>,
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
        let (defaults, usable) =
            usable_config(&config.topic_defaults, "dynamic broker configs", &merged);
        // What was left out is not in force: not described as set either.
        cluster.retain(|key, _| usable.contains_key(key));
        this_broker.retain(|key, _| usable.contains_key(key));
        BrokerDefaults {
            cluster,
            this_broker,
            config: defaults,
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
    /// Replaces the dynamic set of `scope` with what `edit` makes of it (keys are topic
    /// config names). The new defaults must be valid and leave every topic's overrides
    /// valid on top of them, else nothing changes. Applied live to every topic;
    /// `validate_only` checks and writes nothing.
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
        let config = Arc::new(TopicConfig::with_overrides(
            self.static_topic_defaults(),
            &merged,
        )?);
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
        });
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
