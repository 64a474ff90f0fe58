//! Consumer lag at the instant it is asked for: in records (log end offset − committed
//! offset) and in seconds (now − timestamp of the first record not yet committed; 0 when the
//! group has caught up). Used by `/metrics` and by `GET /v1/groups/{id}`.
//!
//! A negative committed offset (Kafka's -1, "no offset", which some clients commit) is no
//! position in the log: its lag is unknown, not "the whole log and one more". It is left out
//! of the lag figures, as `kafka-consumer-groups` shows `-` for it; the committed offset
//! itself is still reported. Likewise a first uncommitted record produced without a
//! timestamp (-1, which produce accepts as Kafka does) has no age: lag in seconds is unknown
//! there, while lag in records is exact; so is one whose batch cannot be read (a read error,
//! or retention racing the read).
//!
//! The timestamp comes from the batch holding the committed offset, read through the same
//! offset index a fetch uses (one small read per lagging partition): the batch's first
//! timestamp when the committed offset starts the batch, else the matching record's. The
//! answer for one (partition, offset) never changes while the record is in the log, so it
//! is cached, per (group, topic, partition): each computation of a group's lag, on any path
//! (scrape or admin API), replaces that group's entries with the ones it used, so a new
//! commit drops the old offset's entry and the cache holds at most one entry per committed
//! (group, partition). Groups that are gone are dropped by each full scrape (groups it did
//! not compute) and by each `/v1/groups` list (groups no longer listed);
//! `LAG_CACHE_ENTRIES_MAX` bounds it in any case. An entry holds on to (weakly) the log it
//! was read from and serves only that log: a topic deleted and created again under the same
//! name is a new log whose offsets say nothing of the old one's timestamps. Nor does it
//! outlive a compaction of that log: the cleaner may remove the record at the offset, after
//! which the first record at or after it is a later, younger one; an entry serves only while
//! the log's segment-rewrite count is the one it was read under.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use runnel_protocol::batch::{BatchSplitter, TimestampType};
use runnel_protocol::records::records;

use crate::groups::admin::GroupOverview;
use crate::log::{LogManager, PartitionLog};

/// Decompression bound when looking for a record's timestamp inside a compressed batch.
const LAG_DECOMPRESS_BYTES_MAX: usize = 16 << 20;
/// Entries kept at most, over all groups (a safety net: pruning keeps it to the committed
/// pairs of live groups); a group that does not fit goes uncached.
const LAG_CACHE_ENTRIES_MAX: usize = 200_000;

/// One committed partition of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// `None` when the committed offset is negative (no position; see the module doc).
    pub lag_records: Option<i64>,
    /// `None` as well when the first record not yet committed has no timestamp (-1).
    pub lag_seconds: Option<f64>,
}

/// Timestamps of first uncommitted records, per group and (topic, partition).
#[derive(Debug, Default)]
pub struct LagCache {
    inner: Mutex<CacheInner>,
    /// Batches read to find a timestamp (cache misses) since start: what lag costs.
    reads_total: AtomicU64,
}

#[derive(Debug, Default)]
struct CacheInner {
    groups: HashMap<String, GroupEntries>,
    /// Entries over all groups.
    entries: usize,
    generation: u64,
}

#[derive(Debug)]
struct GroupEntries {
    partitions: HashMap<(String, i32), CacheEntry>,
    /// The scrape generation that last stored it.
    generation: u64,
}

#[derive(Debug, Clone)]
struct CacheEntry {
    /// The offset whose first record at or after it has `timestamp_ms`.
    offset: i64,
    timestamp_ms: i64,
    /// The log it was read from: the entry serves no other under the same name. Weak, so a
    /// deleted log is not kept open (and, held, its address cannot be reused).
    log: Weak<PartitionLog>,
    /// The log's segment-rewrite count when read: a compaction since may have removed the
    /// record the timestamp came from.
    segment_rewrites: u64,
}

/// One computation of one group's lag: the entries it uses, stored back whole at the end.
struct GroupLookup<'a> {
    cache: &'a LagCache,
    group_id: &'a str,
    used: HashMap<(String, i32), CacheEntry>,
}

impl GroupLookup<'_> {
    /// The timestamp (ms) of the first record at or after `offset` in `log`.
    fn timestamp(&mut self, log: &Arc<PartitionLog>, offset: i64) -> Option<i64> {
        let key = (log.topic().to_owned(), log.partition());
        // Read before the log: a swap racing the read leaves an entry that misses next time.
        let segment_rewrites = log.segment_rewrites();
        let cached = self.cache.cached(self.group_id, &key).filter(|entry| {
            entry.offset == offset
                && std::ptr::eq(entry.log.as_ptr(), Arc::as_ptr(log))
                && entry.segment_rewrites == segment_rewrites
        });
        let entry = match cached {
            Some(entry) => entry,
            None => {
                self.cache.reads_total.fetch_add(1, Ordering::Relaxed);
                CacheEntry {
                    offset,
                    timestamp_ms: first_timestamp_at(log, offset)?,
                    log: Arc::downgrade(log),
                    segment_rewrites,
                }
            }
        };
        let timestamp_ms = entry.timestamp_ms;
        self.used.insert(key, entry);
        Some(timestamp_ms)
    }

    /// Replaces the group's entries with the ones this computation used.
    fn finish(self) {
        self.cache.store_group(self.group_id, self.used);
    }
}

impl LagCache {
    fn cached(&self, group_id: &str, key: &(String, i32)) -> Option<CacheEntry> {
        let inner = self.inner.lock();
        inner.groups.get(group_id)?.partitions.get(key).cloned()
    }

    fn store_group(&self, group_id: &str, used: HashMap<(String, i32), CacheEntry>) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.groups.remove(group_id) {
            inner.entries -= old.partitions.len();
        }
        if used.is_empty() {
            return;
        }
        if inner.entries + used.len() > LAG_CACHE_ENTRIES_MAX {
            // This group's lag is read afresh next time. Emptying the cache instead made
            // every group's next lag a miss, and with more committed pairs than the bound
            // the cache emptied on every scrape and served nothing.
            return;
        }
        inner.entries += used.len();
        let generation = inner.generation;
        let entries = GroupEntries {
            partitions: used,
            generation,
        };
        inner.groups.insert(group_id.to_owned(), entries);
    }

    /// Ends a full scrape: forgets the groups it did not compute.
    pub fn end_scrape(&self) {
        let mut inner = self.inner.lock();
        let generation = inner.generation;
        inner.groups.retain(|_, g| g.generation == generation);
        inner.recount();
        inner.generation += 1;
    }

    /// Forgets every group `live` says is gone (the admin list, which sees every group id).
    pub fn retain_groups(&self, live: impl Fn(&str) -> bool) {
        let mut inner = self.inner.lock();
        inner.groups.retain(|id, _| live(id));
        inner.recount();
    }

    /// Batches read to find a timestamp since start (cache misses).
    pub fn reads_total(&self) -> u64 {
        self.reads_total.load(Ordering::Relaxed)
    }

    /// Entries over all groups.
    pub fn len(&self) -> usize {
        self.inner.lock().entries
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CacheInner {
    fn recount(&mut self) {
        self.entries = self.groups.values().map(|g| g.partitions.len()).sum();
        assert!(self.entries <= LAG_CACHE_ENTRIES_MAX);
    }
}

/// Lag of every partition `group` has committed on (partitions of deleted topics are left
/// out). Opens a partition log that is not open yet: lag must be exact.
pub fn group_lag(
    logs: &LogManager,
    group: &GroupOverview,
    cache: &LagCache,
    now_ms: i64,
) -> Vec<PartitionLag> {
    let mut lookup = GroupLookup {
        cache,
        group_id: &group.group_id,
        used: HashMap::with_capacity(group.offsets.len()),
    };
    let lag = group
        .offsets
        .iter()
        .filter_map(|(topic, partition, committed, _)| {
            let log = logs.partition(topic, *partition).ok()?;
            Some(partition_lag(&log, *committed, &mut lookup, now_ms))
        })
        .collect();
    lookup.finish();
    lag
}

/// Lag of one partition whose group committed `committed`.
fn partition_lag(
    log: &Arc<PartitionLog>,
    committed: i64,
    lookup: &mut GroupLookup<'_>,
    now_ms: i64,
) -> PartitionLag {
    let log_start_offset = log.log_start_offset();
    let log_end_offset = log.log_end_offset();
    let (lag_records, lag_seconds) = if committed < 0 {
        (None, None)
    } else {
        let lag_records = (log_end_offset - committed).max(0);
        let seconds = lag_seconds(log, committed, lag_records, lookup, now_ms);
        (Some(lag_records), seconds)
    };
    PartitionLag {
        topic: log.topic().to_owned(),
        partition: log.partition(),
        committed_offset: committed,
        log_start_offset,
        log_end_offset,
        lag_records,
        lag_seconds,
    }
}

/// Age of the first record at or after `committed` (0 when nothing is left to consume; `None`
/// when it has no timestamp or cannot be read).
fn lag_seconds(
    log: &Arc<PartitionLog>,
    committed: i64,
    lag_records: i64,
    lookup: &mut GroupLookup<'_>,
    now_ms: i64,
) -> Option<f64> {
    if lag_records == 0 {
        return Some(0.0);
    }
    // Below the log start the first uncommitted record still in the log is the start.
    let first_uncommitted = committed.max(log.log_start_offset());
    match lookup.timestamp(log, first_uncommitted) {
        // A record without a timestamp (-1) has no age.
        Some(ts) if ts < 0 => None,
        Some(ts) => Some((now_ms - ts).max(0) as f64 / 1000.0),
        // Not readable now (retention racing the read, a read error): unknown, not "caught
        // up" — a zero would hide the error behind a healthy-looking panel.
        None => None,
    }
}

/// Reads the batch holding `offset` (or the next one, across a compaction gap) and returns
/// the timestamp of its first record at or after `offset`.
fn first_timestamp_at(log: &PartitionLog, offset: i64) -> Option<i64> {
    // A read always returns at least one whole batch, whatever the byte limit.
    let read = log.read(offset, 1).ok()?;
    let batch = BatchSplitter::new(read.records).next()?.ok()?;
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        return Some(batch.max_timestamp());
    }
    if batch.base_offset() >= offset {
        return Some(batch.base_timestamp());
    }
    let found = records(&batch, LAG_DECOMPRESS_BYTES_MAX)
        .ok()
        .and_then(|mut iter| {
            iter.find_map(|r| r.ok().filter(|r| r.offset >= offset).map(|r| r.timestamp))
        });
    Some(found.unwrap_or_else(|| batch.max_timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(topic: &str, count: usize) -> HashMap<(String, i32), CacheEntry> {
        (0..count)
            .map(|p| {
                let entry = CacheEntry {
                    offset: 0,
                    timestamp_ms: 0,
                    log: Weak::new(),
                    segment_rewrites: 0,
                };
                ((topic.to_owned(), p as i32), entry)
            })
            .collect()
    }

    /// A full cache keeps what it holds; the group that does not fit is not cached.
    #[test]
    fn a_group_beyond_the_bound_goes_uncached_and_the_rest_stay() {
        let cache = LagCache::default();
        let half = LAG_CACHE_ENTRIES_MAX / 2;
        cache.store_group("a", entries("t", half));
        cache.store_group("b", entries("t", LAG_CACHE_ENTRIES_MAX - half));
        cache.store_group("c", entries("t", 10));
        assert_eq!(cache.len(), LAG_CACHE_ENTRIES_MAX);
        let key = ("t".to_owned(), 0);
        assert!(cache.cached("a", &key).is_some());
        assert!(cache.cached("c", &key).is_none());
        // A group shrinking makes room for the next one.
        cache.store_group("b", entries("t", 1));
        cache.store_group("c", entries("t", 10));
        assert!(cache.cached("c", &key).is_some());
        assert_eq!(cache.len(), half + 11);
    }
}
