//! How the raw inputs become the checked [`BrokerConfig`]: [`BrokerArgs::or`] layers flags
//! and environment over the properties file, [`BrokerArgs::resolve`] fills in the defaults
//! (Kafka's time units and synonyms included) and has the result validated.

use super::*;

impl BrokerArgs {
    /// Fields set here win; the rest come from `fallback`.
    pub fn or(self, fallback: BrokerArgs) -> BrokerArgs {
        BrokerArgs {
            config: self.config.or(fallback.config),
            data_dir: self.data_dir.or(fallback.data_dir),
            listen: self.listen.or(fallback.listen),
            advertise: self.advertise.or(fallback.advertise),
            http_listen: self.http_listen.or(fallback.http_listen),
            node_id: self.node_id.or(fallback.node_id),
            cluster_id: self.cluster_id.or(fallback.cluster_id),
            max_connections: self.max_connections.or(fallback.max_connections),
            metrics_partition_series_max: self
                .metrics_partition_series_max
                .or(fallback.metrics_partition_series_max),
            metrics_group_partition_series_max: self
                .metrics_group_partition_series_max
                .or(fallback.metrics_group_partition_series_max),
            metrics_group_series_max: self
                .metrics_group_series_max
                .or(fallback.metrics_group_series_max),
            max_request_bytes: self.max_request_bytes.or(fallback.max_request_bytes),
            auto_create_topics: self.auto_create_topics.or(fallback.auto_create_topics),
            loopback_unpaced: self.loopback_unpaced.or(fallback.loopback_unpaced),
            num_partitions: self.num_partitions.or(fallback.num_partitions),
            request_timeout_ms: self.request_timeout_ms.or(fallback.request_timeout_ms),
            connections_max_idle_ms: self
                .connections_max_idle_ms
                .or(fallback.connections_max_idle_ms),
            shutdown_timeout_ms: self.shutdown_timeout_ms.or(fallback.shutdown_timeout_ms),
            inflight_requests_max: self
                .inflight_requests_max
                .or(fallback.inflight_requests_max),
            queued_request_bytes_max: self
                .queued_request_bytes_max
                .or(fallback.queued_request_bytes_max),
            decompression_bytes_max: self
                .decompression_bytes_max
                .or(fallback.decompression_bytes_max),
            log_segment_bytes: self.log_segment_bytes.or(fallback.log_segment_bytes),
            log_segment_ms: self.log_segment_ms.or(fallback.log_segment_ms),
            log_roll_hours: self.log_roll_hours.or(fallback.log_roll_hours),
            log_roll_jitter_ms: self.log_roll_jitter_ms.or(fallback.log_roll_jitter_ms),
            log_roll_jitter_hours: self
                .log_roll_jitter_hours
                .or(fallback.log_roll_jitter_hours),
            log_retention_ms: self.log_retention_ms.or(fallback.log_retention_ms),
            log_retention_minutes: self
                .log_retention_minutes
                .or(fallback.log_retention_minutes),
            log_retention_hours: self.log_retention_hours.or(fallback.log_retention_hours),
            log_retention_bytes: self.log_retention_bytes.or(fallback.log_retention_bytes),
            log_cleanup_policy: self.log_cleanup_policy.or(fallback.log_cleanup_policy),
            message_max_bytes: self.message_max_bytes.or(fallback.message_max_bytes),
            log_flush_interval_ms: self
                .log_flush_interval_ms
                .or(fallback.log_flush_interval_ms),
            log_index_interval_bytes: self
                .log_index_interval_bytes
                .or(fallback.log_index_interval_bytes),
            log_message_timestamp_before_max_ms: self
                .log_message_timestamp_before_max_ms
                .or(fallback.log_message_timestamp_before_max_ms),
            log_message_timestamp_after_max_ms: self
                .log_message_timestamp_after_max_ms
                .or(fallback.log_message_timestamp_after_max_ms),
            compression_type: self.compression_type.or(fallback.compression_type),
            compression_gzip_level: self
                .compression_gzip_level
                .or(fallback.compression_gzip_level),
            compression_lz4_level: self
                .compression_lz4_level
                .or(fallback.compression_lz4_level),
            compression_zstd_level: self
                .compression_zstd_level
                .or(fallback.compression_zstd_level),
            log_preallocate: self.log_preallocate.or(fallback.log_preallocate),
            log_segment_delete_delay_ms: self
                .log_segment_delete_delay_ms
                .or(fallback.log_segment_delete_delay_ms),
            unclean_leader_election_enable: self
                .unclean_leader_election_enable
                .or(fallback.unclean_leader_election_enable),
            log_local_retention_ms: self
                .log_local_retention_ms
                .or(fallback.log_local_retention_ms),
            log_local_retention_bytes: self
                .log_local_retention_bytes
                .or(fallback.log_local_retention_bytes),
            log_message_downconversion_enable: self
                .log_message_downconversion_enable
                .or(fallback.log_message_downconversion_enable),
            log_retention_check_interval_ms: self
                .log_retention_check_interval_ms
                .or(fallback.log_retention_check_interval_ms),
            log_page_cache_bytes: self.log_page_cache_bytes.or(fallback.log_page_cache_bytes),
            group_initial_rebalance_delay_ms: self
                .group_initial_rebalance_delay_ms
                .or(fallback.group_initial_rebalance_delay_ms),
            group_min_session_timeout_ms: self
                .group_min_session_timeout_ms
                .or(fallback.group_min_session_timeout_ms),
            group_max_session_timeout_ms: self
                .group_max_session_timeout_ms
                .or(fallback.group_max_session_timeout_ms),
            group_max_size: self.group_max_size.or(fallback.group_max_size),
            offsets_retention_minutes: self
                .offsets_retention_minutes
                .or(fallback.offsets_retention_minutes),
            offsets_topic_num_partitions: self
                .offsets_topic_num_partitions
                .or(fallback.offsets_topic_num_partitions),
            producer_id_expiration_ms: self
                .producer_id_expiration_ms
                .or(fallback.producer_id_expiration_ms),
            producer_id_expiration_check_interval_ms: self
                .producer_id_expiration_check_interval_ms
                .or(fallback.producer_id_expiration_check_interval_ms),
            max_incremental_fetch_session_cache_slots: self
                .max_incremental_fetch_session_cache_slots
                .or(fallback.max_incremental_fetch_session_cache_slots),
        }
    }

    /// Applies defaults and validates.
    pub fn resolve(self) -> Result<BrokerConfig, ConfigError> {
        let mut groups = crate::groups::GroupConfig::default();
        self.resolve_groups(&mut groups);
        let topic_defaults = self.topic_defaults();
        let unit_configs = self.unit_configs();
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR));
        let listen = self.listen.unwrap_or_else(|| defaults::LISTEN.to_owned());
        let mut config = BrokerConfig::new(data_dir, listen);
        config.groups = groups;
        config.producers = crate::producers::ProducerStateConfig {
            producer_id_expiration_ms: self.producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms: self.producer_id_expiration_check_interval_ms,
        };
        let set = [
            ("node.id", self.node_id.is_some()),
            ("num.partitions", self.num_partitions.is_some()),
            (
                "auto.create.topics.enable",
                self.auto_create_topics.is_some(),
            ),
            (
                "max.incremental.fetch.session.cache.slots",
                self.max_incremental_fetch_session_cache_slots.is_some(),
            ),
        ];
        config.set_broker_keys = set
            .into_iter()
            .filter(|&(_, s)| s)
            .map(|(k, _)| k)
            .collect();
        config.static_unit_configs = unit_configs;
        config.advertise = self.advertise;
        config.http_listen = self.http_listen.unwrap_or(config.http_listen);
        config.node_id = self.node_id.unwrap_or(config.node_id);
        config.cluster_id = self.cluster_id.unwrap_or(config.cluster_id);
        config.max_connections = self.max_connections.unwrap_or(config.max_connections);
        config.fetch_session_cache_slots = self
            .max_incremental_fetch_session_cache_slots
            .unwrap_or(config.fetch_session_cache_slots);
        config.metrics_partition_series_max = self
            .metrics_partition_series_max
            .unwrap_or(config.metrics_partition_series_max);
        config.metrics_group_partition_series_max = self
            .metrics_group_partition_series_max
            .unwrap_or(config.metrics_group_partition_series_max);
        config.metrics_group_series_max = self
            .metrics_group_series_max
            .unwrap_or(config.metrics_group_series_max);
        config.max_request_bytes = self.max_request_bytes.unwrap_or(config.max_request_bytes);
        config.auto_create_topics = self.auto_create_topics.unwrap_or(config.auto_create_topics);
        config.loopback_unpaced = self.loopback_unpaced.unwrap_or(config.loopback_unpaced);
        config.num_partitions = self.num_partitions.unwrap_or(config.num_partitions);
        config.request_timeout_ms = self.request_timeout_ms.unwrap_or(config.request_timeout_ms);
        config.connections_max_idle_ms = self
            .connections_max_idle_ms
            .unwrap_or(config.connections_max_idle_ms);
        config.shutdown_timeout_ms = self
            .shutdown_timeout_ms
            .unwrap_or(config.shutdown_timeout_ms);
        config.inflight_requests_max = self
            .inflight_requests_max
            .unwrap_or(config.inflight_requests_max);
        config.queued_request_bytes_max = self
            .queued_request_bytes_max
            .unwrap_or(config.queued_request_bytes_max);
        config.decompression_bytes_max = self
            .decompression_bytes_max
            .unwrap_or(config.decompression_bytes_max);
        config.retention_check_interval_ms = self
            .log_retention_check_interval_ms
            .unwrap_or(config.retention_check_interval_ms);
        config.page_cache_bytes = self.log_page_cache_bytes.unwrap_or(config.page_cache_bytes);
        config.topic_defaults = topic_defaults;
        super::checks::validate(&config)?;
        Ok(config)
    }
}

fn text<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|value| value.to_string())
}

impl BrokerArgs {
    /// The value given for one of [`TIME_UNITS`]' broker names.
    fn time_unit_given(&self, name: &str) -> Option<i64> {
        match name {
            "log.retention.ms" => self.log_retention_ms,
            "log.retention.minutes" => self.log_retention_minutes,
            "log.retention.hours" => self.log_retention_hours,
            "log.roll.ms" => self.log_segment_ms,
            "log.roll.hours" => self.log_roll_hours,
            "log.roll.jitter.ms" => self.log_roll_jitter_ms,
            "log.roll.jitter.hours" => self.log_roll_jitter_hours,
            _ => None,
        }
    }

    /// The unit-suffixed time settings given, by Kafka name ([`BrokerConfig::static_unit_configs`]).
    fn unit_configs(&self) -> BTreeMap<&'static str, String> {
        (TIME_UNITS.iter())
            .flat_map(|(_, units)| units.iter())
            .filter_map(|&(name, _, _)| Some((name, self.time_unit_given(name)?.to_string())))
            .collect()
    }

    /// `units`' milliseconds, the finest given winning (Kafka: `log.retention.ms` >
    /// `.minutes` > `.hours`); a negative coarse value is -1 ("never"), as Kafka's
    /// `log.retention.*` read it.
    fn finest_ms(&self, units: &[TimeUnit]) -> Option<i64> {
        let (value, unit_ms) = (units.iter())
            .find_map(|&(name, unit_ms, _)| Some((self.time_unit_given(name)?, unit_ms)))?;
        Some(match unit_ms {
            1 => value,
            _ if value < 0 => -1,
            _ => value.saturating_mul(unit_ms),
        })
    }

    /// The broker-wide topic defaults set here, as topic config names (Kafka's broker
    /// names map to them: `log.roll.ms` → `segment.ms`, …). Storage validates the values.
    fn topic_defaults(&self) -> BTreeMap<String, String> {
        let timed = (TIME_UNITS.iter()).map(|&(key, units)| (key, text(self.finest_ms(units))));
        let pairs = [
            ("segment.bytes", text(self.log_segment_bytes)),
            ("retention.bytes", text(self.log_retention_bytes)),
            ("cleanup.policy", self.log_cleanup_policy.clone()),
            ("max.message.bytes", text(self.message_max_bytes)),
            ("flush.ms", text(self.log_flush_interval_ms)),
            ("index.interval.bytes", text(self.log_index_interval_bytes)),
            (
                "message.timestamp.before.max.ms",
                text(self.log_message_timestamp_before_max_ms),
            ),
            (
                "message.timestamp.after.max.ms",
                text(self.log_message_timestamp_after_max_ms),
            ),
            ("compression.type", self.compression_type.clone()),
            ("compression.gzip.level", text(self.compression_gzip_level)),
            ("compression.lz4.level", text(self.compression_lz4_level)),
            ("compression.zstd.level", text(self.compression_zstd_level)),
            ("preallocate", text(self.log_preallocate)),
            (
                "file.delete.delay.ms",
                text(self.log_segment_delete_delay_ms),
            ),
            (
                "unclean.leader.election.enable",
                text(self.unclean_leader_election_enable),
            ),
            ("local.retention.ms", text(self.log_local_retention_ms)),
            (
                "local.retention.bytes",
                text(self.log_local_retention_bytes),
            ),
            (
                "message.downconversion.enable",
                text(self.log_message_downconversion_enable),
            ),
        ];
        (pairs.into_iter().chain(timed))
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect()
    }

    /// The group coordinator's settings (Kafka's `group.*` / `offsets.*` names).
    fn resolve_groups(&self, groups: &mut crate::groups::GroupConfig) {
        let or = |value: Option<i32>, default: i32| value.unwrap_or(default);
        groups.initial_rebalance_delay_ms = or(
            self.group_initial_rebalance_delay_ms,
            groups.initial_rebalance_delay_ms,
        );
        groups.min_session_timeout_ms = or(
            self.group_min_session_timeout_ms,
            groups.min_session_timeout_ms,
        );
        groups.max_session_timeout_ms = or(
            self.group_max_session_timeout_ms,
            groups.max_session_timeout_ms,
        );
        groups.group_members_max = self.group_max_size.unwrap_or(groups.group_members_max);
        if let Some(minutes) = self.offsets_retention_minutes {
            groups.offsets_retention_ms = minutes.saturating_mul(60_000);
        }
        groups.offsets_topic_partitions = or(
            self.offsets_topic_num_partitions,
            groups.offsets_topic_partitions,
        );
    }
}
