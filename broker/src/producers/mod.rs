//! The idempotent producer: producer ids ([`id_block`]) and, per partition, the sequence
//! state that turns retried batches into duplicates instead of second copies
//! ([`sequences`], rebuilt after a restart by [`tail_scan`]).
//!
//! [`ProducerRegistry`] owns both. Per-partition state lives in memory only; it is rebuilt
//! lazily from the partition's log tail on the first idempotent produce after start.
//!
//! Producers expire by time, as Kafka's: one timer task
//! ([`ProducerRegistry::start_expiration_timer`], every
//! `producer.id.expiration.check.interval.ms`) drops from every loaded partition the
//! producers idle for `producer.id.expiration.ms` (by their last batch's timestamp), and a
//! rebuild does not load producers already expired. An expired producer is unknown again:
//! its next batch is accepted at any sequence. `producer.id.expiration.ms` is a dynamic
//! broker config (KIP-854): each sweep and rebuild reads the value in force
//! ([`DynamicProducerExpiration`], else the static one); the check interval is static, as
//! in Kafka (its timer is not rescheduled).
//!
//! Thread-safety: the partition map is behind a mutex held only for lookups; each
//! partition's state has its own mutex, held across sequence check *and* log append so two
//! connections of one producer cannot both pass the check. Lock order: partition producer
//! state → partition log state (the log never calls back here).
//!
//! Not covered (no transactions yet): transactional batches are appended without producer
//! checks beyond sequences; producer state is not trimmed when retention or DeleteRecords
//! removes a producer's batches (a retry of such a batch is still answered as a duplicate
//! until the producer expires).

pub mod id_block;
pub mod sequences;
pub mod tail_scan;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use runnel_protocol::batch::RecordBatch;

pub use id_block::{ProducerIdBlock, ProducerIdError};
pub use sequences::{
    ActiveProducer, BatchIdentity, BatchMetadata, PartitionProducers, SequenceError, Verdict,
};

use crate::log::{now_ms, AppendInfo, DynamicProducerExpiration, LogError, PartitionLog};

/// Kafka resets a producer's epoch to a new producer id before it could overflow.
const PRODUCER_EPOCH_MAX: i16 = i16::MAX - 1;

/// How long idle producers are kept (Kafka's `ProducerStateManagerConfig`): the operator's
/// settings, `None` where Kafka's default applies (DescribeConfigs tells them apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStateConfig {
    /// `producer.id.expiration.ms`: a producer whose last batch's timestamp is this old is
    /// forgotten. Kafka: an INT, at least 1.
    pub producer_id_expiration_ms: Option<i32>,
    /// `producer.id.expiration.check.interval.ms`: how often expired producers are looked
    /// for. Kafka: an internal INT, at least 1.
    pub producer_id_expiration_check_interval_ms: Option<i32>,
}

impl ProducerStateConfig {
    /// Kafka's default `producer.id.expiration.ms` (1 day).
    pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i32 = 86_400_000;
    /// Kafka's default `producer.id.expiration.check.interval.ms` (10 minutes).
    pub const PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT: i32 = 600_000;

    /// At least 1, as Kafka's validator requires (the config parser refuses less; a config
    /// built in code is held to it here rather than panicking).
    pub fn expiration_ms(&self) -> i32 {
        self.producer_id_expiration_ms
            .unwrap_or(Self::PRODUCER_ID_EXPIRATION_MS_DEFAULT)
            .max(1)
    }

    /// At least 1, as [`Self::expiration_ms`].
    pub fn check_interval_ms(&self) -> i32 {
        self.producer_id_expiration_check_interval_ms
            .unwrap_or(Self::PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT)
            .max(1)
    }
}

/// Why an idempotent append failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What a partition's produce amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended(AppendInfo),
    /// A retry of batches already stored: nothing was appended.
    Duplicate(BatchMetadata),
}

/// One partition's producer state, tied to the log instance it describes: a deleted and
/// re-created topic gets a new [`PartitionLog`] and so fresh state.
pub struct PartitionEntry {
    log: Weak<PartitionLog>,
    /// `None` until rebuilt from the log tail.
    state: Mutex<Option<PartitionProducers>>,
}

/// Producer ids and every partition's producer state.
pub struct ProducerRegistry {
    ids: ProducerIdBlock,
    partitions: Mutex<HashMap<(String, i32), Arc<PartitionEntry>>>,
    /// The static settings.
    config: ProducerStateConfig,
    /// `producer.id.expiration.ms` as set dynamically, over `config`'s.
    dynamic_expiration: Arc<DynamicProducerExpiration>,
}

impl ProducerRegistry {
    /// Opens the producer-id block file in `data_dir` (reserving a fresh block). Producers
    /// expire after `dynamic_expiration`'s value when one is set, else `config`'s.
    pub fn open(
        data_dir: &Path,
        config: ProducerStateConfig,
        dynamic_expiration: Arc<DynamicProducerExpiration>,
    ) -> Result<ProducerRegistry, ProducerIdError> {
        Ok(ProducerRegistry {
            ids: ProducerIdBlock::open(data_dir)?,
            partitions: Mutex::new(HashMap::new()),
            config,
            dynamic_expiration,
        })
    }

    /// The static settings (flags, environment, properties file).
    pub fn config(&self) -> &ProducerStateConfig {
        &self.config
    }

    /// `producer.id.expiration.ms` in force now: the dynamic value, else the static one.
    pub fn expiration_ms(&self) -> i32 {
        let dynamic = self.dynamic_expiration.get();
        dynamic.unwrap_or_else(|| self.config.expiration_ms())
    }

    /// InitProducerId without a transactional id: a fresh id at epoch 0, or (KIP-360) the
    /// same id with the next epoch when the client names an id this broker issued and its
    /// epoch is not exhausted.
    pub fn init_producer_id(
        &self,
        existing: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ProducerIdError> {
        if let Some((producer_id, epoch)) = existing {
            let bumpable = (0..PRODUCER_EPOCH_MAX).contains(&epoch);
            if bumpable && self.ids.may_have_issued(producer_id) {
                return Ok((producer_id, epoch + 1));
            }
        }
        Ok((self.ids.allocate()?, 0))
    }

    /// Appends a partition's validated batches, checking idempotent ones against their
    /// producers' sequences first. Batches without a producer id are appended unchecked.
    pub fn append(
        &self,
        log: &Arc<PartitionLog>,
        batches: &[RecordBatch],
    ) -> Result<AppendOutcome, ProduceError> {
        let ids = batches
            .iter()
            .map(BatchIdentity::of)
            .collect::<Result<Vec<_>, _>>()?;
        if ids.iter().all(Option::is_none) {
            return Ok(AppendOutcome::Appended(log.append(batches)?));
        }
        let entry = self.entry(log);
        let mut guard = entry.state.lock();
        let state = self.loaded(&mut guard, log)?;
        if let Verdict::Duplicate(original) = state.check(&ids)? {
            return Ok(AppendOutcome::Duplicate(original));
        }
        let info = log.append(batches)?;
        let mut base_offset = info.base_offset;
        for (batch, id) in batches.iter().zip(&ids) {
            let last_offset = base_offset + i64::from(batch.last_offset_delta());
            if let Some(id) = id {
                // The log stamps LogAppendTime batches; the state keeps what was stored.
                let timestamp_ms = if info.log_append_time_ms >= 0 {
                    info.log_append_time_ms
                } else {
                    batch.max_timestamp()
                };
                state.record(id, base_offset, last_offset, timestamp_ms);
            }
            base_offset = last_offset + 1;
        }
        debug_assert_eq!(base_offset, info.last_offset + 1, "offsets of {batches:?}");
        Ok(AppendOutcome::Appended(info))
    }

    /// The producers `log`'s partition tracks (DescribeProducers), by producer id: rebuilt
    /// from the log tail and kept, as the first idempotent produce would, when none was
    /// since the start. A partition not yet opened whose segments are empty has none and
    /// stays closed; any other must be read to know.
    pub fn active_producers(
        &self,
        log: &Arc<PartitionLog>,
    ) -> Result<Vec<ActiveProducer>, LogError> {
        if !log.is_loaded() && log.size_on_disk_bytes()? == 0 {
            return Ok(Vec::new());
        }
        let entry = self.entry(log);
        let mut guard = entry.state.lock();
        Ok(self.loaded(&mut guard, log)?.active_producers())
    }

    /// Drops, from every partition whose state is loaded, the producers expired at `now_ms`
    /// (Kafka's periodic `UnifiedLog.removeExpiredProducers`, here one pass over all
    /// partitions), and says how many. Each partition's lock is held only for its own pass.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        let entries: Vec<Arc<PartitionEntry>> = {
            let mut partitions = self.partitions.lock();
            retain_live(&mut partitions);
            partitions.values().cloned().collect()
        };
        let expiration_ms = i64::from(self.expiration_ms());
        entries
            .iter()
            .filter_map(|entry| {
                let mut guard = entry.state.lock();
                Some(guard.as_mut()?.remove_expired(now_ms, expiration_ms))
            })
            .sum()
    }

    /// Runs [`ProducerRegistry::remove_expired_producers`] every
    /// `producer.id.expiration.check.interval.ms`, first one interval after the start (as
    /// Kafka's `PeriodicProducerExpirationCheck`), off the async workers. The task ends when
    /// the registry is dropped. Needs a tokio runtime.
    pub fn start_expiration_timer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<ProducerRegistry> = Arc::downgrade(self);
        let interval_ms = u64::try_from(self.config.check_interval_ms()).unwrap_or(1);
        let period = Duration::from_millis(interval_ms.max(1));
        tokio::spawn(async move {
            let first = tokio::time::Instant::now() + period;
            let mut interval = tokio::time::interval_at(first, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                let sweep = move || registry.remove_expired_producers(now_ms());
                match tokio::task::spawn_blocking(sweep).await {
                    Ok(0) => {}
                    Ok(expired) => tracing::debug!(expired, "expired idle producers"),
                    Err(e) => tracing::warn!(error = %e, "producer expiration check failed"),
                }
            }
        })
    }

    /// `guard`'s state, rebuilt from `log`'s tail (less the producers expired now) when
    /// not yet loaded.
    fn loaded<'a>(
        &self,
        guard: &'a mut Option<PartitionProducers>,
        log: &PartitionLog,
    ) -> Result<&'a mut PartitionProducers, LogError> {
        if guard.is_none() {
            let expiration_ms = i64::from(self.expiration_ms());
            *guard = Some(tail_scan::rebuild(log, now_ms(), expiration_ms)?);
        }
        Ok(guard.get_or_insert_with(PartitionProducers::default))
    }

    /// The entry for `log`'s partition, replacing one left by an earlier incarnation.
    fn entry(&self, log: &Arc<PartitionLog>) -> Arc<PartitionEntry> {
        let key = (log.topic().to_owned(), log.partition());
        let mut partitions = self.partitions.lock();
        if let Some(entry) = partitions.get(&key) {
            if std::ptr::eq(entry.log.as_ptr(), Arc::as_ptr(log)) {
                return Arc::clone(entry);
            }
        }
        // A new partition or a re-created topic: drop entries of deleted logs while here,
        // which bounds the map by the live partitions.
        retain_live(&mut partitions);
        let entry = Arc::new(PartitionEntry {
            log: Arc::downgrade(log),
            state: Mutex::new(None),
        });
        partitions.insert(key, Arc::clone(&entry));
        entry
    }
}

/// Drops the entries of logs that no longer exist (deleted or re-created topics).
fn retain_live(partitions: &mut HashMap<(String, i32), Arc<PartitionEntry>>) {
    partitions.retain(|_, entry| entry.log.strong_count() > 0);
}
