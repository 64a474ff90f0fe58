//! Broker metrics: everything `GET /metrics` serves, in Prometheus text format.
//!
//! Two sources feed one page, and the split is deliberate:
//!
//! 1. **Events** — requests, errors, request latency, connections, fsync latency — go
//!    through the `metrics` facade into a [`PrometheusRecorder`] that this broker owns. It is
//!    never installed as the process-wide recorder: the end-to-end tests run several brokers
//!    in one process, and each must see only its own figures. Handles are registered once
//!    (per API at start, per error code on its first occurrence), so the hot path is an
//!    atomic add or a lock-free histogram push; no name lookup, no global lock.
//! 2. **State** — partition offsets, sizes and segments, bytes/records in and out per topic,
//!    consumer lag, group state, cleaner and process figures — is computed from the broker's
//!    own structures when the page is rendered ([`scrape`]). Lag is therefore exact at scrape
//!    time, a deleted topic or group disappears from the next scrape, and the produce and
//!    fetch paths do no more than bump the per-partition [`TrafficCounters`] atomics.
//!
//! Cardinality: per-partition series are emitted only for topics with at most
//! `metrics_partition_series_max` partitions; every topic always gets per-topic aggregates
//! (`runnel_topic_*`, `runnel_consumer_group_topic_*`), which is what the dashboards use.
//! Per-partition lag series multiply by groups as well, so they are also bounded in all:
//! groups, in id order, get them while their (group, partition) pairs fit in
//! `metrics_group_partition_series_max`; the rest get per group/topic lag only, and
//! `runnel_consumer_group_lag_partitions_folded` counts the pairs left out by each bound.
//! Every other per-group series (state, members, rebalances, per-topic lag) grows with the
//! number of groups, so only the first `metrics_group_series_max` groups in id order get
//! any; `runnel_consumer_groups_omitted` counts the rest (still counted by state in
//! `runnel_consumer_groups`). Id order, not "the most lagging", because choosing by lag
//! would mean computing every group's lag, which is the cost the bound is there to cap.
//!
//! Layout: [`traffic`] (per-partition atomics), [`requests`] (per-API handles and error
//! codes), [`lag`] (consumer lag at scrape time, shared with the HTTP admin API),
//! [`scrape`] (the state half of the page), [`process`] (/proc), [`text`] (the writer).

mod cleaner;
pub mod lag;
pub mod process;
pub mod requests;
pub mod scrape;
pub mod text;
pub mod traffic;

use std::time::{Instant, SystemTime};

use ::metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub use lag::{LagCache, PartitionLag};
pub use requests::RequestMetrics;
pub use traffic::TrafficCounters;

/// Latency buckets (seconds) for every histogram: 50 µs to 10 s.
const LATENCY_BUCKETS_SECONDS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

static METADATA: Metadata<'static> = Metadata::new("runnel", ::metrics::Level::INFO, None);

/// How `/metrics` is shaped.
#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    /// Topics with more partitions get per-topic series only.
    pub partition_series_max: usize,
    /// (group, partition) pairs, in all, that get per-partition lag series.
    pub group_partition_series_max: usize,
    /// Groups, the first in id order, that get per-group series at all.
    pub group_series_max: usize,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            partition_series_max: crate::config::defaults::METRICS_PARTITION_SERIES_MAX,
            group_partition_series_max: crate::config::defaults::METRICS_GROUP_PARTITION_SERIES_MAX,
            group_series_max: crate::config::defaults::METRICS_GROUP_SERIES_MAX,
        }
    }
}

/// Connection counts, updated by the accept loops.
pub struct ConnectionMetrics {
    pub accepted: Counter,
    pub rejected: Counter,
    pub closed: Counter,
    pub open: Gauge,
    /// Bytes of request frames read (or being read) and not yet applied, all connections.
    pub request_queue_bytes: Gauge,
    /// Frames whose reading waited for room under `queued_request_bytes_max`.
    pub request_memory_waits: Counter,
}

/// One broker's metrics: its own recorder, the handles the hot paths use, and what the
/// scrape needs to remember between scrapes.
pub struct BrokerMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub config: MetricsConfig,
    pub requests: RequestMetrics,
    pub connections: ConnectionMetrics,
    /// Handed to the storage engine, which records each segment fsync in it.
    pub fsync_seconds: Histogram,
    /// Timestamps of the first uncommitted record, reused while a commit stays put.
    pub lag_cache: LagCache,
    pub started: Instant,
    pub started_at: SystemTime,
}

impl BrokerMetrics {
    pub fn new(config: MetricsConfig) -> BrokerMetrics {
        let builder = PrometheusBuilder::new();
        // Never fails for a non-empty bucket list; a summary is the fallback shape.
        let recorder = match builder.set_buckets(&LATENCY_BUCKETS_SECONDS) {
            Ok(builder) => builder.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let counter = |name: &'static str, help: &'static str| {
            describe(&recorder, name, Unit::Count, help);
            recorder.register_counter(&Key::from_static_name(name), &METADATA)
        };
        let gauge = |name: &'static str, unit: Unit, help: &'static str| {
            describe(&recorder, name, unit, help);
            recorder.register_gauge(&Key::from_static_name(name), &METADATA)
        };
        let connections = ConnectionMetrics {
            accepted: counter(
                "runnel_connections_accepted_total",
                "Kafka connections accepted",
            ),
            rejected: counter(
                "runnel_connections_rejected_total",
                "Kafka connections closed at once: the connection limit was reached",
            ),
            closed: counter(
                "runnel_connections_closed_total",
                "Kafka connections that ended",
            ),
            open: gauge(
                "runnel_connections_open",
                Unit::Count,
                "Kafka connections open now",
            ),
            request_queue_bytes: gauge(
                "runnel_request_queue_bytes",
                Unit::Bytes,
                "Bytes of request frames read or being read and not yet applied, across \
                 connections (bounded by queued-request-bytes-max)",
            ),
            request_memory_waits: counter(
                "runnel_request_memory_waits_total",
                "Request frames whose reading waited for room under queued-request-bytes-max",
            ),
        };
        describe(
            &recorder,
            "runnel_log_fsync_duration_seconds",
            Unit::Seconds,
            "Duration of one segment fsync",
        );
        let fsync_seconds = recorder.register_histogram(
            &Key::from_static_name("runnel_log_fsync_duration_seconds"),
            &METADATA,
        );
        let requests = RequestMetrics::register(&recorder);
        BrokerMetrics {
            recorder,
            handle,
            config,
            requests,
            connections,
            fsync_seconds,
            lag_cache: LagCache::default(),
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    /// The event half of the page (counters and histograms of the facade).
    pub fn render_events(&self) -> String {
        self.handle.render()
    }

    /// Counts one answered request (see [`requests`]); `response` is `None` for requests
    /// answered with nothing (acks=0 produce).
    pub fn record_request(
        &self,
        api_key: i16,
        started: Instant,
        response: Option<&kafka_protocol::messages::ResponseKind>,
    ) {
        self.requests
            .observe(&self.recorder, api_key, started, response);
    }
}

/// Registers `# HELP` text for a facade metric.
pub(crate) fn describe(
    recorder: &PrometheusRecorder,
    name: &'static str,
    unit: Unit,
    help: &'static str,
) {
    recorder.describe_counter(KeyName::from_const_str(name), Some(unit), help.into());
}

pub(crate) fn metadata() -> &'static Metadata<'static> {
    &METADATA
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn two_brokers_keep_separate_figures() {
        let a = BrokerMetrics::new(MetricsConfig::default());
        let b = BrokerMetrics::new(MetricsConfig::default());
        a.connections.accepted.increment(3);
        b.connections.accepted.increment(1);
        assert!(a
            .render_events()
            .contains("runnel_connections_accepted_total 3"));
        assert!(b
            .render_events()
            .contains("runnel_connections_accepted_total 1"));
    }

    #[test]
    fn fsync_histogram_renders_buckets() {
        let metrics = BrokerMetrics::new(MetricsConfig::default());
        metrics.fsync_seconds.record(0.002);
        let page = metrics.render_events();
        assert!(page.contains("runnel_log_fsync_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(page.contains("runnel_log_fsync_duration_seconds_count 1"));
    }
}
