//! [`LogManager`]: every partition log under one data directory, the topic metadata log, and
//! the background flusher, retention and cleaner threads.
//!
//! Opening reads the metadata log and the checkpoints and lists nothing else: a partition's
//! directory is loaded on first use (thousands of partitions stay cheap), except after an
//! unclean stop, when every partition is recovered before `open` returns.
//! Thread-safety: topic changes take the metadata mutex then the topic-map write lock;
//! lookups take only the read lock. Background threads stop on `shutdown` or drop.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use super::broker_configs::{BrokerDefaults, DynamicProducerExpiration};
use super::checkpoint::{sync_dir, Checkpoints};
use super::cleaner::{pick_dirtiest, Cleaner, CleanerConfig, CleanerStats};
use super::dir_remover::DirRemover;
use super::file_cache::FileCache;
use super::flusher::{on_threads, run_flusher, run_fsync_thread, FlushQueue, FSYNC_THREADS};
use super::metadata_log::{
    apply, MetadataImage, MetadataLog, MetadataRecord, TopicRecord, METADATA_DIR,
};
use super::partition::{LogContext, PartitionLog};
use super::{now_ms, LogError, LogManagerConfig, TopicConfig, TopicInfo};

/// Present only between a clean `shutdown` and the next `open`.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".runnel_clean_shutdown";
/// Kafka's limit on topic name length.
const TOPIC_NAME_BYTES_MAX: usize = 249;
/// More partitions than this in one topic is refused (each is a directory and fds).
pub(crate) const PARTITIONS_MAX: i32 = 100_000;
/// Longest the cleaner thread sleeps before looking at its backoff again.
const CLEANER_TICK_MS: u64 = 100;
/// Kafka's `num.partitions` default, used when a CreateTopics asks for -1.
pub(crate) const DEFAULT_PARTITIONS: i32 = 1;

pub(crate) struct TopicEntry {
    pub info: TopicInfo,
    pub partitions: Vec<Arc<PartitionLog>>,
}

impl TopicEntry {
    /// Puts `config` in force on every partition, with the overrides it was made from.
    pub(crate) fn set_config(
        &mut self,
        config: Arc<TopicConfig>,
        overrides: BTreeMap<String, String>,
    ) {
        for partition in &self.partitions {
            partition.set_config(config.clone());
        }
        self.info.overrides = overrides;
        self.info.config = config;
    }
}

/// The metadata log and what it replays to.
pub(crate) type MetadataState = (MetadataLog, MetadataImage);

/// What the manager and its background threads share.
pub(crate) struct ManagerShared {
    pub config: LogManagerConfig,
    pub ctx: Arc<LogContext>,
    pub topics: RwLock<super::topic_table::TopicTable>,
    pub metadata: Mutex<MetadataState>,
    /// The topic defaults in force (static, overlaid by the dynamic broker configs) and the
    /// dynamic sets that made them. Replaced only under the metadata lock.
    pub defaults: RwLock<Arc<BrokerDefaults>>,
    /// `defaults`' producer expiration, where the producer registry reads it.
    pub producer_expiration: Arc<DynamicProducerExpiration>,
    stop: Mutex<bool>,
    stop_signal: Condvar,
    pub shut_down: AtomicBool,
    pub cleaner: Cleaner,
    /// Removes deleted partitions' directories in the background.
    pub remover: DirRemover,
}

/// Every partition log under one data directory, plus topic metadata.
pub struct LogManager {
    pub(crate) shared: Arc<ManagerShared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Kafka's rule: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let invalid = |why| Err(LogError::InvalidTopic(name.to_string(), why));
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("must be 1 to 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("must not be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if name == METADATA_DIR {
        return invalid("reserved for the metadata log");
    }
    Ok(())
}

/// `overrides` on top of `defaults`, leaving out (with a warning) each override that cannot
/// apply; also the overrides kept. `what` names the owner in the warning.
pub(crate) fn usable_config(
    defaults: &TopicConfig,
    what: &str,
    overrides: &BTreeMap<String, String>,
) -> (Arc<TopicConfig>, BTreeMap<String, String>) {
    if let Ok(config) = TopicConfig::with_overrides(defaults, overrides) {
        return (Arc::new(config), overrides.clone());
    }
    let mut usable = BTreeMap::new();
    for (key, value) in overrides {
        let mut candidate = usable.clone();
        candidate.insert(key.clone(), value.clone());
        match TopicConfig::with_overrides(defaults, &candidate) {
            Ok(_) => usable = candidate,
            Err(e) => {
                tracing::warn!(owner = what, key = key.as_str(), error = %e, "stored override no longer valid; the default applies");
            }
        }
    }
    // Every key kept was valid together with the ones before it.
    let config = TopicConfig::with_overrides(defaults, &usable).unwrap_or_else(|_| {
        usable.clear();
        defaults.clone()
    });
    (Arc::new(config), usable)
}

impl ManagerShared {
    pub(crate) fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// A topic's config and the overrides in force, from its stored overrides. An override
    /// this version cannot apply (a name it does not know, say written by a newer version,
    /// or a value out of its range) is left out alone, with a warning, and the others still
    /// apply: falling back to every default turned a compacted topic with one such
    /// override into a `delete` one, whose retention then deleted what compaction keeps.
    pub(crate) fn effective_config(
        &self,
        name: &str,
        overrides: &BTreeMap<String, String>,
    ) -> (Arc<TopicConfig>, BTreeMap<String, String>) {
        let defaults = self.defaults.read().config.clone();
        usable_config(&defaults, name, overrides)
    }

    /// A partition of `topic`, announcing its moves on `topic_tx` too (one per topic, shared
    /// by its partitions: see [`PartitionLog::topic_moves`]).
    pub(crate) fn new_partition(
        &self,
        topic: &str,
        partition: i32,
        config: &Arc<TopicConfig>,
        topic_tx: &Arc<watch::Sender<u64>>,
    ) -> Arc<PartitionLog> {
        let dir = self.partition_dir(topic, partition);
        let (ctx, topic_tx) = (self.ctx.clone(), topic_tx.clone());
        PartitionLog::new(topic, partition, dir, config.clone(), ctx, topic_tx)
    }

    fn entry(&self, name: &str, record: &TopicRecord) -> TopicEntry {
        let (config, overrides) = self.effective_config(name, &record.overrides);
        let topic_tx = Arc::new(watch::Sender::new(0));
        let partitions = (0..record.partitions)
            .map(|p| self.new_partition(name, p, &config, &topic_tx))
            .collect();
        let info = TopicInfo {
            name: name.to_string(),
            id: record.id,
            partitions: record.partitions,
            overrides,
            config,
        };
        TopicEntry { info, partitions }
    }

    pub(crate) fn all_partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Appends a record (fsynced), applies it, and snapshots the log when it grew too big.
    /// The caller holds the metadata lock for the whole check-then-change.
    ///
    /// The change is made once the record is fsynced: a failed snapshot is only logged
    /// (the next commit tries again). Failing the change then told the client no while the
    /// next start applied it, and the running broker never did.
    pub(crate) fn commit(
        &self,
        metadata: &mut MetadataState,
        record: MetadataRecord,
    ) -> Result<(), LogError> {
        let (log, records) = metadata;
        log.append(&record)?;
        apply(records, &record);
        if log.wants_snapshot() {
            if let Err(e) = log.snapshot(records) {
                tracing::warn!(error = %e, "metadata log snapshot failed; retried at the next change");
            }
        }
        Ok(())
    }

    pub(crate) fn enforce_retention(&self, now: i64) -> Result<(), LogError> {
        let mut first_error = None;
        for partition in self.all_partitions() {
            match partition.enforce_retention(now) {
                // Stopping, or the topic was deleted since the list was taken.
                Ok(()) | Err(LogError::ShutDown | LogError::UnknownTopicOrPartition { .. }) => {}
                Err(e) => {
                    tracing::warn!(topic = partition.topic(), partition = partition.partition(), error = %e, "retention failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Cleans the dirtiest compacted partition, if one is due (errors are counted in the
    /// cleaner stats and logged there).
    fn clean_dirtiest(&self, now: i64) {
        if let Some(log) = pick_dirtiest(&self.cleaner, &self.all_partitions(), now) {
            let _ = self.cleaner.run_pass(&log, now);
        }
    }

    /// Sleeps up to `timeout_ms`; true when asked to stop.
    fn wait_stop(&self, timeout_ms: u64) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.stop_signal
                .wait_for(&mut stop, Duration::from_millis(timeout_ms));
        }
        *stop
    }
}

/// Recovers every partition (loads it, scanning and fsyncing what lies past its recovery
/// point) side by side ([`on_threads`]). Each recovered segment ends in an fsync that waits
/// for the disk: 11 000 partitions recovered one after another took 14.4 s at start (a
/// restart after a crash was that much longer an outage); side by side 2.1–3.1 s.
fn recover_all(partitions: &[Arc<PartitionLog>]) -> Result<(), LogError> {
    on_threads(partitions, "runnel-recover", |partition| {
        #[cfg(test)]
        partition.ctx.recovery_thread_names.lock().insert(
            std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned(),
        );
        partition.loaded().map(|_| ())
    })
}

impl LogManager {
    /// Opens (and, after an unclean stop, recovers) the data directory; starts the flusher
    /// and retention threads.
    pub fn open(config: LogManagerConfig) -> Result<Arc<LogManager>, LogError> {
        fs::create_dir_all(&config.data_dir)?;
        let marker = config.data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_start = marker.exists();
        if clean_start {
            fs::remove_file(&marker)?;
            sync_dir(&config.data_dir)?;
        } else if config.data_dir.join(METADATA_DIR).exists() {
            // Operators (and the crash tests) can tell a recovering start from a clean one.
            tracing::info!(data_dir = %config.data_dir.display(), "unclean shutdown: scanning logs past their recovery points");
        }
        let (metadata_log, image) = MetadataLog::open(&config.data_dir)?;
        let defaults = BrokerDefaults::replayed(&config, &image.brokers);
        let producer_expiration = defaults.producer_id_expiration_ms;
        let ctx = Arc::new(LogContext {
            files: FileCache::new(config.open_segments_max),
            checkpoints: Checkpoints::load(&config.data_dir),
            flusher: Arc::new(FlushQueue::new()),
            fsyncs: AtomicU64::new(0),
            fsync_seconds: std::sync::OnceLock::new(),
            clean_start,
            page_cache: super::page_cache::PageCacheBudget::new(config.page_cache_bytes),
            flush_set: super::flush_set::FlushSet::default(),
            #[cfg(test)]
            fail_fsyncs: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            synced_lengths: parking_lot::Mutex::default(),
            #[cfg(test)]
            fsync_thread_names: parking_lot::Mutex::default(),
            #[cfg(test)]
            recovery_thread_names: parking_lot::Mutex::default(),
            #[cfg(test)]
            swap_crash_step: std::sync::atomic::AtomicU8::new(0),
            #[cfg(test)]
            swap_failure_repairs: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            before_delete_renames: parking_lot::Mutex::default(),
        });
        let shared = Arc::new(ManagerShared {
            config,
            ctx,
            topics: RwLock::new(super::topic_table::TopicTable::default()),
            metadata: Mutex::new((metadata_log, MetadataImage::default())),
            producer_expiration: Arc::new(DynamicProducerExpiration::default()),
            defaults: RwLock::new(Arc::new(defaults)),
            stop: Mutex::new(false),
            stop_signal: Condvar::new(),
            shut_down: AtomicBool::new(false),
            cleaner: Cleaner::new(CleanerConfig::default()),
            remover: DirRemover::default(),
        });
        shared.producer_expiration.set(producer_expiration);
        let leftovers = shared.remover.queue_leftovers(&shared.config.data_dir)?;
        if leftovers > 0 {
            tracing::info!(
                leftovers,
                "removing directories of deleted partitions in the background"
            );
        }
        {
            let mut topics = shared.topics.write();
            for (name, record) in &image.topics {
                topics.insert(name.clone(), shared.entry(name, record));
            }
        }
        // A crash inside `delete_topic` after its metadata record was committed, before its
        // checkpoint entries went, leaves entries a re-created topic of the same name would
        // inherit (its log start offset above all, so it would start past offset 0). They
        // go here. (Removing them before the record instead would let a crash in between
        // leave a live partition without its log start: deleted records exposed again.)
        let dropped = shared.ctx.checkpoints.retain(|(topic, partition)| {
            image
                .topics
                .get(topic)
                .is_some_and(|record| (0..record.partitions).contains(partition))
        })?;
        if dropped > 0 {
            tracing::info!(
                dropped,
                "dropped checkpoint entries of partitions that no longer exist"
            );
        }
        shared.metadata.lock().1 = image;
        if !clean_start {
            recover_all(&shared.all_partitions())?;
            shared.ctx.checkpoints.write_recovery_points()?;
        }
        let manager = Arc::new(LogManager {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
        });
        manager.start_threads()?;
        Ok(manager)
    }

    fn start_threads(&self) -> Result<(), LogError> {
        let flusher_shared = self.shared.clone();
        let queue = self.shared.ctx.flusher.clone();
        let ctx = self.shared.ctx.clone();
        let flusher = std::thread::Builder::new()
            .name("runnel-log-flusher".into())
            .spawn(move || {
                run_flusher(queue, &ctx, || !flusher_shared.topics.read().is_empty());
            })?;
        let retention_shared = self.shared.clone();
        let interval_ms = self.shared.config.retention_check_interval_ms.max(1);
        let retention = std::thread::Builder::new()
            .name("runnel-log-retention".into())
            .spawn(move || {
                while !retention_shared.wait_stop(interval_ms) {
                    let _ = retention_shared.enforce_retention(now_ms());
                }
            })?;
        let cleaner_shared = self.shared.clone();
        let cleaner = std::thread::Builder::new()
            .name("runnel-log-cleaner".into())
            .spawn(move || {
                let backoff_ms = || cleaner_shared.cleaner.config.lock().backoff_ms.max(1);
                let mut last_look = std::time::Instant::now();
                // Short ticks so a changed backoff applies at once (tests, benchmarks).
                while !cleaner_shared.wait_stop(backoff_ms().min(CLEANER_TICK_MS)) {
                    if last_look.elapsed() >= Duration::from_millis(backoff_ms()) {
                        cleaner_shared.clean_dirtiest(now_ms());
                        last_look = std::time::Instant::now();
                    }
                }
            })?;
        let remover_shared = self.shared.clone();
        let remover = std::thread::Builder::new()
            .name("runnel-log-remover".into())
            .spawn(move || remover_shared.remover.run())?;
        let mut threads = vec![flusher, retention, cleaner, remover];
        for i in 0..FSYNC_THREADS {
            let queue = self.shared.ctx.flusher.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("runnel-fsync-{i}"))
                    .spawn(move || run_fsync_thread(queue))?,
            );
        }
        self.threads.lock().extend(threads);
        Ok(())
    }

    pub(crate) fn stop_threads(&self) {
        self.shared.cleaner.abort.store(true, Ordering::Release);
        *self.shared.stop.lock() = true;
        self.shared.stop_signal.notify_all();
        self.shared.ctx.flusher.stop();
        self.shared.remover.stop();
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
    }

    /// The topic defaults in force: the static ones overlaid by the dynamic broker configs.
    pub fn topic_defaults(&self) -> Arc<TopicConfig> {
        self.shared.defaults.read().config.clone()
    }

    /// The topic defaults as configured at start (flags, environment, properties file).
    pub fn static_topic_defaults(&self) -> &TopicConfig {
        &self.shared.config.topic_defaults
    }

    /// The dynamic broker configs in force and the topic defaults they make.
    pub fn broker_defaults(&self) -> Arc<BrokerDefaults> {
        self.shared.defaults.read().clone()
    }

    /// fsync calls made on segment files so far (for tests and metrics).
    pub fn fsync_count(&self) -> u64 {
        self.shared.ctx.fsyncs.load(Ordering::Relaxed)
    }

    /// Each written partition's cached tail now (0: the page cache is left to the kernel),
    /// and the log bytes advised out of the page cache since start.
    pub fn page_cache_stats(&self) -> (u64, u64) {
        let budget = &self.shared.ctx.page_cache;
        (budget.tail_bytes(), budget.dropped_bytes())
    }

    /// Records every segment fsync's duration in `histogram` from now on (set once).
    pub fn set_fsync_histogram(&self, histogram: metrics::Histogram) {
        let _ = self.shared.ctx.fsync_seconds.set(histogram);
    }

    /// Every topic with its partition logs, without opening any (for metrics: opening
    /// thousands of idle partitions on a scrape would cost more than the scrape).
    pub fn topic_partitions(&self) -> Vec<(TopicInfo, Vec<Arc<PartitionLog>>)> {
        self.shared
            .topics
            .read()
            .values()
            .map(|t| (t.info.clone(), t.partitions.clone()))
            .collect()
    }

    /// Test seam: from now on every segment fsync fails.
    #[cfg(test)]
    pub(crate) fn fail_fsyncs(&self) {
        self.shared.ctx.fail_fsyncs.store(true, Ordering::Release);
    }

    /// Test seam: every segment file's length as of its last fsync (power-loss tests keep
    /// only that much, plus a random part of the unsynced tail).
    #[cfg(test)]
    pub(crate) fn synced_lengths(&self) -> std::collections::HashMap<std::path::PathBuf, u64> {
        self.shared.ctx.synced_lengths.lock().clone()
    }

    /// Test seam: holds (true) or resumes (false) the background removal of deleted
    /// partitions' directories.
    #[cfg(test)]
    pub(crate) fn pause_dir_removal(&self, paused: bool) {
        self.shared.remover.set_paused(paused);
    }

    /// Test seam: `hook` runs in every `delete_topic` just before its directory renames.
    #[cfg(test)]
    pub(crate) fn set_before_delete_renames(&self, hook: Option<super::partition::DeleteHook>) {
        *self.shared.ctx.before_delete_renames.lock() = hook;
    }

    /// Test seam: partitions the flusher's tick visits now, and visits so far.
    #[cfg(test)]
    pub(crate) fn flush_set_stats(&self) -> (usize, u64) {
        let set = &self.shared.ctx.flush_set;
        (set.active_len(), set.visits())
    }

    /// Test seam: checkpoint files rewritten to drop entries.
    #[cfg(test)]
    pub(crate) fn checkpoint_retain_writes(&self) -> u64 {
        self.shared
            .ctx
            .checkpoints
            .retain_writes
            .load(Ordering::Relaxed)
    }

    /// Test seam: the names of the threads that recovered partitions at `open`.
    #[cfg(test)]
    pub(crate) fn recovery_thread_names(&self) -> std::collections::BTreeSet<String> {
        self.shared.ctx.recovery_thread_names.lock().clone()
    }

    /// Test seam: the names of the threads that have run segment fsyncs.
    #[cfg(test)]
    pub(crate) fn fsync_thread_names(&self) -> std::collections::BTreeSet<String> {
        self.shared.ctx.fsync_thread_names.lock().clone()
    }

    /// The log cleaner's figures: per compacted partition and totals (for metrics).
    pub fn cleaner_stats(&self) -> CleanerStats {
        self.shared.cleaner.snapshot()
    }

    /// Replaces the cleaner's tuning (memory of its offset map, backoff, I/O cap).
    pub fn set_cleaner_config(&self, config: CleanerConfig) {
        self.shared.cleaner.set_config(config);
    }

    /// Runs one cleaning pass over `topic`-`partition` now, whatever its dirty ratio (still
    /// honouring `min.compaction.lag.ms`); for tools, tests and benchmarks. A topic without
    /// `compact` in its `cleanup.policy` is left alone.
    pub fn clean_now(&self, topic: &str, partition: i32) -> Result<(), LogError> {
        let log = self.partition(topic, partition)?;
        if !log.config().cleanup_policy.compact {
            return Ok(());
        }
        self.shared.cleaner.run_pass(&log, now_ms())
    }

    /// Test seam: the next cleaner swaps stop after `step` (1–4; 0: never) like a crash.
    #[cfg(test)]
    pub(crate) fn crash_swap_after(&self, step: u8) {
        self.shared
            .ctx
            .swap_crash_step
            .store(step, Ordering::Release);
    }

    /// Test seam: the next cleaner swaps fail after `step` with an I/O error, which the
    /// swap repairs in place (0: never).
    #[cfg(test)]
    pub(crate) fn fail_swap_after(&self, step: u8) {
        let ctx = &self.shared.ctx;
        ctx.swap_failure_repairs.store(step != 0, Ordering::Release);
        ctx.swap_crash_step.store(step, Ordering::Release);
    }

    /// The data directory this manager owns.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.shared.config.data_dir
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        self.stop_threads();
    }
}
