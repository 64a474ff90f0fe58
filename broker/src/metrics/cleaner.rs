//! The log cleaner's series on `/metrics` (compaction of `cleanup.policy=compact` topics):
//! totals, and each partition's dirty ratio where its topic's per-partition series are
//! written (the cardinality bound).

use std::collections::HashMap;

use super::text::{Kind, Page};
use crate::log::CleanerStats;

pub(super) fn render(page: &mut Page, stats: &CleanerStats, detailed: &HashMap<&str, bool>) {
    let totals: [(&str, Kind, &str, f64); 6] = [
        (
            "runnel_cleaner_bytes_read_total",
            Kind::Counter,
            "Bytes the log cleaner read",
            stats.bytes_read_total as f64,
        ),
        (
            "runnel_cleaner_bytes_written_total",
            Kind::Counter,
            "Bytes the log cleaner wrote",
            stats.bytes_written_total as f64,
        ),
        (
            "runnel_cleaner_records_removed_total",
            Kind::Counter,
            "Records compaction removed",
            stats.records_removed_total as f64,
        ),
        (
            "runnel_cleaner_passes_total",
            Kind::Counter,
            "Cleaning passes run",
            stats.passes_total as f64,
        ),
        (
            "runnel_cleaner_errors_total",
            Kind::Counter,
            "Cleaning passes that failed",
            stats.errors_total as f64,
        ),
        (
            "runnel_cleaner_last_run_duration_seconds",
            Kind::Gauge,
            "Duration of the most recent cleaning pass",
            stats.last_run_duration_seconds,
        ),
    ];
    for (name, kind, help, value) in totals {
        page.single(name, kind, help, value);
    }
    let uncleanable = stats.partitions.iter().filter(|p| p.uncleanable).count();
    page.single(
        "runnel_cleaner_uncleanable_partitions",
        Kind::Gauge,
        "Compacted partitions the cleaner gave up on after an error",
        uncleanable as f64,
    );
    page.family(
        "runnel_cleaner_dirty_ratio",
        Kind::Gauge,
        "Dirty bytes over all bytes of a compacted partition, when last looked at",
    );
    // Per-partition, so under the same cardinality bound as the other partition series.
    let partitions = stats
        .partitions
        .iter()
        .filter(|p| detailed.get(p.topic.as_str()).copied().unwrap_or(false));
    for p in partitions {
        let partition = p.partition.to_string();
        page.sample(
            "runnel_cleaner_dirty_ratio",
            &[("topic", &p.topic), ("partition", &partition)],
            p.dirty_ratio,
        );
    }
}
