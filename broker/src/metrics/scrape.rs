//! The state half of `/metrics`, computed from the broker's own structures on each scrape:
//! topics and partitions, traffic per topic, consumer groups and their lag, the cleaner,
//! the process. See the module doc of [`crate::metrics`] for why it is not pushed into the
//! recorder.
//!
//! Partitions not opened since the broker started (they open lazily, on first use) are
//! counted in `runnel_partitions{state="unopened"}` but get no offset or size series: opening
//! thousands of idle logs would make a scrape cost more than the traffic it measures. A
//! partition a group has committed on is opened, because its lag must be exact (for the groups
//! shown, under `group_series_max`: lag is computed only for what the page emits).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::lag::{group_lag, PartitionLag};
use super::text::{Kind, Page};
use super::traffic::Traffic;
use super::BrokerMetrics;
use crate::api::BrokerContext;
use crate::groups::admin::GroupOverview;
use crate::groups::state::GroupState;
use crate::log::{PartitionLog, TopicInfo};

/// Bytes of text per partition row, to size the page once.
const PAGE_BYTES_PER_PARTITION: usize = 400;

/// One open partition's figures, read once per scrape.
struct PartitionRow {
    partition: i32,
    log_start_offset: i64,
    log_end_offset: i64,
    size_bytes: u64,
    segments: usize,
}

/// One topic's figures: per-partition rows (open partitions only) and their sums.
struct TopicRow {
    name: String,
    partitions: i32,
    /// Per-partition series are written for this topic (cardinality bound).
    detailed: bool,
    rows: Vec<PartitionRow>,
    traffic: Traffic,
    unopened: usize,
}

/// Renders the whole `/metrics` page: the recorder's events, then the state.
pub fn render(ctx: &BrokerContext, now_ms: i64) -> String {
    let metrics = &ctx.metrics;
    let topics = topic_rows(
        &ctx.logs.topic_partitions(),
        metrics.config.partition_series_max,
    );
    // Every live group, cheaply (id and state, id order); only the first
    // `group_series_max` are read whole and get their lag computed: the rest emit nothing
    // per group, so they cost no partition opened and no batch read.
    let listing = ctx.groups.list_groups(None);
    let shown_max = listing.len().min(metrics.config.group_series_max);
    let groups: Vec<GroupOverview> = listing[..shown_max]
        .iter()
        .filter_map(|g| ctx.groups.group_overview(&g.group_id))
        .collect();
    let partitions: usize = topics.iter().map(|t| t.rows.len()).sum();
    let mut page = Page::with_capacity((partitions + 16) * PAGE_BYTES_PER_PARTITION);
    render_broker(&mut page, metrics);
    render_topics(&mut page, &topics);
    let detailed: HashMap<&str, bool> = topics
        .iter()
        .map(|t| (t.name.as_str(), t.detailed))
        .collect();
    let lags: Vec<(&GroupOverview, Vec<PartitionLag>)> = groups
        .iter()
        .map(|g| (g, group_lag(&ctx.logs, g, &metrics.lag_cache, now_ms)))
        .collect();
    metrics.lag_cache.end_scrape();
    let states: Vec<GroupState> = listing.iter().map(|g| g.state).collect();
    let series = lag_series(&lags, &detailed, metrics.config.group_partition_series_max);
    render_group_counts(&mut page, &states, listing.len() - shown_max);
    render_groups(&mut page, &lags, &detailed, &series);
    super::cleaner::render(&mut page, &ctx.logs.cleaner_stats(), &detailed);
    let (tail_bytes, dropped_bytes) = ctx.logs.page_cache_stats();
    let sessions = ctx.fetch_sessions.stats();
    let singles = [
        (
            "runnel_log_fsyncs_total",
            Kind::Counter,
            "fsync calls on segment files",
            ctx.logs.fsync_count() as f64,
        ),
        (
            "runnel_log_page_cache_tail_bytes",
            Kind::Gauge,
            "Page cache each partition keeps at the end of its log (its share of --log-page-cache-bytes; 0: left to the kernel)",
            tail_bytes as f64,
        ),
        (
            "runnel_log_page_cache_dropped_bytes_total",
            Kind::Counter,
            "Log bytes the broker advised out of the page cache: written back behind a partition's cached tail, or read by a fetch behind it",
            dropped_bytes as f64,
        ),
        (
            "runnel_fetch_sessions",
            Kind::Gauge,
            "Incremental fetch sessions (KIP-227) kept (Kafka's NumIncrementalFetchSessions)",
            sessions.sessions as f64,
        ),
        (
            "runnel_fetch_session_partitions",
            Kind::Gauge,
            "Partitions the fetch sessions hold (Kafka's NumIncrementalFetchPartitionsCached)",
            sessions.partitions as f64,
        ),
        (
            "runnel_fetch_session_evictions_total",
            Kind::Counter,
            "Fetch sessions evicted to make room for new ones",
            sessions.evictions as f64,
        ),
    ];
    for (name, kind, help, value) in singles {
        page.single(name, kind, help, value);
    }
    let started_at = metrics
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    super::process::render(&mut page, started_at);
    let mut out = metrics.render_events();
    out.push_str(&page.into_string());
    out
}

fn topic_rows(
    topics: &[(TopicInfo, Vec<Arc<PartitionLog>>)],
    partition_series_max: usize,
) -> Vec<TopicRow> {
    topics
        .iter()
        .map(|(info, logs)| {
            let mut traffic = Traffic::default();
            let mut rows = Vec::with_capacity(logs.len());
            for log in logs {
                traffic += log.traffic.get();
                if log.is_loaded() {
                    rows.push(PartitionRow {
                        partition: log.partition(),
                        log_start_offset: log.log_start_offset(),
                        log_end_offset: log.log_end_offset(),
                        size_bytes: log.size_bytes(),
                        segments: log.segment_count(),
                    });
                }
            }
            TopicRow {
                name: info.name.clone(),
                partitions: info.partitions,
                detailed: logs.len() <= partition_series_max,
                unopened: logs.len() - rows.len(),
                rows,
                traffic,
            }
        })
        .collect()
}

fn render_broker(page: &mut Page, metrics: &BrokerMetrics) {
    page.family(
        "runnel_build_info",
        Kind::Gauge,
        "Broker version (always 1)",
    );
    page.sample(
        "runnel_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    page.single(
        "runnel_uptime_seconds",
        Kind::Gauge,
        "Seconds since the broker started",
        metrics.started.elapsed().as_secs_f64(),
    );
}

fn render_topics(page: &mut Page, topics: &[TopicRow]) {
    page.single("runnel_topics", Kind::Gauge, "Topics", topics.len() as f64);
    page.family(
        "runnel_partitions",
        Kind::Gauge,
        "Partitions, open or not yet opened since start",
    );
    let open: usize = topics.iter().map(|t| t.rows.len()).sum();
    let unopened: usize = topics.iter().map(|t| t.unopened).sum();
    page.sample("runnel_partitions", &[("state", "open")], open as f64);
    page.sample(
        "runnel_partitions",
        &[("state", "unopened")],
        unopened as f64,
    );

    type TopicFigure = fn(&TopicRow) -> f64;
    let per_topic: [(&str, Kind, &str, TopicFigure); 8] = [
        (
            "runnel_topic_partitions",
            Kind::Gauge,
            "Partitions of the topic",
            |t| f64::from(t.partitions),
        ),
        (
            "runnel_topic_bytes_in_total",
            Kind::Counter,
            "Record batch bytes appended",
            |t| t.traffic.bytes_in as f64,
        ),
        (
            "runnel_topic_records_in_total",
            Kind::Counter,
            "Records appended",
            |t| t.traffic.records_in as f64,
        ),
        (
            "runnel_topic_bytes_out_total",
            Kind::Counter,
            "Record batch bytes sent to fetchers",
            |t| t.traffic.bytes_out as f64,
        ),
        (
            "runnel_topic_records_out_total",
            Kind::Counter,
            "Records sent to fetchers",
            |t| t.traffic.records_out as f64,
        ),
        (
            "runnel_topic_size_bytes",
            Kind::Gauge,
            "Bytes of segment files of the open partitions",
            |t| t.rows.iter().map(|r| r.size_bytes as f64).sum(),
        ),
        (
            "runnel_topic_segments",
            Kind::Gauge,
            "Segments of the open partitions",
            |t| t.rows.iter().map(|r| r.segments as f64).sum(),
        ),
        (
            "runnel_topic_records",
            Kind::Gauge,
            "Offsets between log start and log end, summed over open partitions",
            |t| {
                t.rows
                    .iter()
                    .map(|r| (r.log_end_offset - r.log_start_offset) as f64)
                    .sum()
            },
        ),
    ];
    for (name, kind, help, figure) in per_topic {
        page.family(name, kind, help);
        for topic in topics {
            page.sample(name, &[("topic", &topic.name)], figure(topic));
        }
    }

    type PartitionFigure = fn(&PartitionRow) -> f64;
    let per_partition: [(&str, &str, PartitionFigure); 4] = [
        (
            "runnel_partition_log_start_offset",
            "First offset still in the log",
            |r| r.log_start_offset as f64,
        ),
        (
            "runnel_partition_log_end_offset",
            "Offset the next record will get",
            |r| r.log_end_offset as f64,
        ),
        (
            "runnel_partition_size_bytes",
            "Bytes of the partition's segment files",
            |r| r.size_bytes as f64,
        ),
        (
            "runnel_partition_segments",
            "Segments of the partition",
            |r| r.segments as f64,
        ),
    ];
    for (name, help, figure) in per_partition {
        page.family(name, Kind::Gauge, help);
        for topic in topics.iter().filter(|t| t.detailed) {
            for row in &topic.rows {
                let partition = row.partition.to_string();
                page.sample(
                    name,
                    &[("topic", &topic.name), ("partition", &partition)],
                    figure(row),
                );
            }
        }
    }
}

/// Which lag rows get per-partition series, under both cardinality bounds.
#[derive(Debug, PartialEq)]
struct LagSeries {
    /// Per group (in `lags` order): its rows of topics under the partition bound get
    /// per-partition series.
    groups: Vec<bool>,
    /// Rows left out because their topic has more than `partition_series_max` partitions.
    folded_by_topic: usize,
    /// Rows left out because their group did not fit in `group_partition_series_max`.
    folded_by_group: usize,
}

/// Groups, in id order, keep their per-partition series while all their rows (of topics
/// under the partition bound) fit in what is left of `group_partition_series_max`; a group
/// is kept or folded whole, so its partitions are never half shown, and a later smaller
/// group may still fit. Id order keeps the choice stable from scrape to scrape.
fn lag_series(
    lags: &[(&GroupOverview, Vec<PartitionLag>)],
    detailed: &HashMap<&str, bool>,
    group_partition_series_max: usize,
) -> LagSeries {
    let mut series = LagSeries {
        groups: Vec::with_capacity(lags.len()),
        folded_by_topic: 0,
        folded_by_group: 0,
    };
    let mut left = group_partition_series_max;
    for (_, lag) in lags {
        let rows = lag
            .iter()
            .filter(|l| detailed.get(l.topic.as_str()).copied().unwrap_or(false))
            .count();
        series.folded_by_topic += lag.len() - rows;
        let fits = rows <= left;
        if fits {
            left -= rows;
        } else {
            series.folded_by_group += rows;
        }
        series.groups.push(fits);
    }
    assert_eq!(series.groups.len(), lags.len());
    series
}

/// Series that do not grow with groups: every live group by state, and how many groups
/// `group_series_max` left without per-group series.
fn render_group_counts(page: &mut Page, states: &[GroupState], omitted: usize) {
    assert!(omitted <= states.len());
    page.family(
        "runnel_consumer_groups",
        Kind::Gauge,
        "Consumer groups by state",
    );
    for state in GroupState::ALL
        .into_iter()
        .filter(|s| *s != GroupState::Dead)
    {
        let count = states.iter().filter(|s| **s == state).count();
        page.sample(
            "runnel_consumer_groups",
            &[("state", state.name())],
            count as f64,
        );
    }
    page.single(
        "runnel_consumer_groups_omitted",
        Kind::Gauge,
        "Consumer groups beyond --metrics-group-series-max (in id order) that get no per-group series",
        omitted as f64,
    );
}

/// Per-group series of the groups shown (under `group_series_max`).
fn render_groups(
    page: &mut Page,
    lags: &[(&GroupOverview, Vec<PartitionLag>)],
    detailed: &HashMap<&str, bool>,
    series: &LagSeries,
) {
    page.family(
        "runnel_consumer_group_state",
        Kind::Gauge,
        "1 for the group's current state, 0 for the others",
    );
    for (group, _) in lags {
        for state in GroupState::ALL
            .into_iter()
            .filter(|s| *s != GroupState::Dead)
        {
            let value = if group.state == state { 1.0 } else { 0.0 };
            page.sample(
                "runnel_consumer_group_state",
                &[("group", &group.group_id), ("state", state.name())],
                value,
            );
        }
    }
    page.family(
        "runnel_consumer_group_members",
        Kind::Gauge,
        "Members of the group",
    );
    for (group, _) in lags {
        page.sample(
            "runnel_consumer_group_members",
            &[("group", &group.group_id)],
            group.members.len() as f64,
        );
    }
    page.family(
        "runnel_consumer_group_rebalances_total",
        Kind::Counter,
        "Rebalances the group completed (its generation id)",
    );
    for (group, _) in lags {
        page.sample(
            "runnel_consumer_group_rebalances_total",
            &[("group", &group.group_id)],
            f64::from(group.generation_id.max(0)),
        );
    }
    render_partition_lag(page, lags, detailed, series);
    render_topic_lag(page, lags, series);
}

/// Committed offset and lag per (group, topic, partition), for the groups and topics whose
/// partitions get series of their own.
fn render_partition_lag(
    page: &mut Page,
    lags: &[(&GroupOverview, Vec<PartitionLag>)],
    detailed: &HashMap<&str, bool>,
    series: &LagSeries,
) {
    // `None`: no series (a negative commit has no lag).
    type LagFigure = fn(&PartitionLag) -> Option<f64>;
    let per_partition: [(&str, &str, LagFigure); 3] = [
        (
            "runnel_consumer_group_committed_offset",
            "Offset the group committed",
            |l| Some(l.committed_offset as f64),
        ),
        (
            "runnel_consumer_group_lag_records",
            "Log end offset minus committed offset",
            |l| l.lag_records.map(|r| r as f64),
        ),
        (
            "runnel_consumer_group_lag_seconds",
            "Age of the first record not yet committed (0 when caught up)",
            |l| l.lag_seconds,
        ),
    ];
    for (name, help, figure) in per_partition {
        page.family(name, Kind::Gauge, help);
        let shown = lags.iter().zip(&series.groups).filter(|(_, shown)| **shown);
        for ((group, lag), _) in shown {
            for l in lag
                .iter()
                .filter(|l| detailed.get(l.topic.as_str()).copied().unwrap_or(false))
            {
                let Some(value) = figure(l) else { continue };
                let partition = l.partition.to_string();
                let labels = [
                    ("group", group.group_id.as_str()),
                    ("topic", &l.topic),
                    ("partition", &partition),
                ];
                page.sample(name, &labels, value);
            }
        }
    }
}

/// Per-topic aggregates of every group shown (summed records, the oldest uncommitted record),
/// and how many partitions' lag was folded into them by the series bounds.
fn render_topic_lag(
    page: &mut Page,
    lags: &[(&GroupOverview, Vec<PartitionLag>)],
    series: &LagSeries,
) {
    let aggregated: Vec<_> = lags
        .iter()
        .map(|(g, lag)| (g.group_id.as_str(), topic_lag(lag)))
        .collect();
    page.family(
        "runnel_consumer_group_topic_lag_records",
        Kind::Gauge,
        "Lag in records summed over the topic's partitions",
    );
    for (group, topics) in &aggregated {
        for (topic, (records, _)) in topics {
            page.sample(
                "runnel_consumer_group_topic_lag_records",
                &[("group", group), ("topic", topic)],
                *records as f64,
            );
        }
    }
    page.family(
        "runnel_consumer_group_topic_lag_seconds",
        Kind::Gauge,
        "Largest lag in seconds over the topic's partitions",
    );
    for (group, topics) in &aggregated {
        for (topic, (_, seconds)) in topics {
            let Some(seconds) = seconds else { continue };
            page.sample(
                "runnel_consumer_group_topic_lag_seconds",
                &[("group", group), ("topic", topic)],
                *seconds,
            );
        }
    }
    page.family(
        "runnel_consumer_group_lag_partitions_folded",
        Kind::Gauge,
        "Committed (group, partition) pairs whose lag is exported per group/topic only, by the bound that folded them (--metrics-partition-series-max, --metrics-group-partition-series-max)",
    );
    page.sample(
        "runnel_consumer_group_lag_partitions_folded",
        &[("bound", "partition_series_max")],
        series.folded_by_topic as f64,
    );
    page.sample(
        "runnel_consumer_group_lag_partitions_folded",
        &[("bound", "group_partition_series_max")],
        series.folded_by_group as f64,
    );
}

/// Lag per topic: records summed over partitions, seconds of the oldest uncommitted record.
/// Partitions whose lag is unknown (negative commits; for seconds, records without a
/// timestamp too) are left out; a topic with no other partition gets no aggregate.
fn topic_lag(lag: &[PartitionLag]) -> BTreeMap<&str, (i64, Option<f64>)> {
    let mut by_topic: BTreeMap<&str, (i64, Option<f64>)> = BTreeMap::new();
    for l in lag {
        let Some(records) = l.lag_records else {
            continue;
        };
        let entry = by_topic.entry(l.topic.as_str()).or_default();
        entry.0 += records;
        if let Some(seconds) = l.lag_seconds {
            entry.1 = Some(entry.1.map_or(seconds, |worst| worst.max(seconds)));
        }
    }
    by_topic
}

#[cfg(test)]
#[path = "scrape_tests.rs"]
mod tests;
