//! Topic administration on a [`LogManager`]: create, delete, grow, reconfigure, look up.
//!
//! Every change is made durable in the metadata log before it is applied in memory.
//! Partition directories are created before their create record (a replayed topic always
//! finds them) and renamed to `*-delete` after the delete record, then removed in the
//! background ([`super::dir_remover`]); a crash in between leaves at most a stale
//! directory, which a later create of the same name clears.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use super::checkpoint::{sync_dir, write_atomically};
use super::dir_remover::DirRemover;
use super::file_cache::FileCache;
use super::manager::{
    validate_topic_name, LogManager, TopicEntry, CLEAN_SHUTDOWN_FILE, DEFAULT_PARTITIONS,
    PARTITIONS_MAX,
};
use super::metadata_log::MetadataRecord;
use super::partition::PartitionLog;
use super::{now_ms, LogError, TopicConfig, TopicInfo};

/// Creates an empty partition directory. A leftover one (a crash after a topic's delete
/// record but before its files went) is renamed away first, for the background removal: a
/// new topic never inherits data.
fn fresh_partition_dir(
    remover: &DirRemover,
    files: &FileCache,
    dir: &std::path::Path,
) -> Result<(), LogError> {
    if dir.exists() {
        remover.queue([DirRemover::rename_doomed(dir)?]);
        // Durable before the create record is: a crash must not bring the old files back
        // under the new topic's name.
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        // Handles cached under its paths (a delete that could not rename it) are its files'.
        files.evict_dirs(&std::collections::HashSet::from([dir]));
    }
    fs::create_dir_all(dir)?;
    Ok(())
}

impl LogManager {
    /// Creates a topic (persisted in the metadata log). `validate_only` checks and writes
    /// nothing.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicInfo, LogError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            DEFAULT_PARTITIONS
        } else {
            partitions
        };
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(LogError::InvalidPartitions(format!(
                "{partitions} partitions requested"
            )));
        }
        let shared = &self.shared;
        let mut metadata = shared.metadata.lock();
        // Under the metadata lock: the dynamic broker defaults change only under it.
        let config = Arc::new(TopicConfig::with_overrides(
            &self.topic_defaults(),
            &overrides,
        )?);
        if shared.topics.read().contains_key(name) {
            return Err(LogError::TopicAlreadyExists(name.to_string()));
        }
        let info = TopicInfo {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            partitions,
            overrides,
            config,
        };
        if validate_only {
            return Ok(info);
        }
        for p in 0..partitions {
            fresh_partition_dir(
                &shared.remover,
                &shared.ctx.files,
                &shared.partition_dir(name, p),
            )?;
        }
        shared.commit(
            &mut metadata,
            MetadataRecord::CreateTopic {
                name: name.to_string(),
                id: info.id,
                partitions,
                overrides: info.overrides.clone(),
            },
        )?;
        let topic_tx = Arc::new(tokio::sync::watch::Sender::new(0));
        let logs: Vec<Arc<PartitionLog>> = (0..partitions)
            .map(|p| shared.new_partition(name, p, &info.config, &topic_tx))
            .collect();
        shared.topics.write().insert(
            name.to_string(),
            TopicEntry {
                info: info.clone(),
                partitions: logs,
            },
        );
        Ok(info)
    }

    /// Deletes a topic and its data; returns its id.
    pub fn delete_topic(&self, name: &str) -> Result<uuid::Uuid, LogError> {
        let shared = &self.shared;
        let mut metadata = shared.metadata.lock();
        if !shared.topics.read().contains_key(name) {
            return Err(LogError::UnknownTopicOrPartition {
                topic: name.to_string(),
                partition: -1,
            });
        }
        shared.commit(
            &mut metadata,
            MetadataRecord::DeleteTopic {
                name: name.to_string(),
            },
        )?;
        let Some(entry) = shared.topics.write().remove(name) else {
            unreachable!("checked under the metadata lock");
        };
        for partition in &entry.partitions {
            partition.close_for_delete();
        }
        shared.ctx.flush_set.topic_deleted();
        // Only renamed here: removing 10 000 directories took seconds, and the metadata lock
        // (every topic change) waited for it.
        #[cfg(test)]
        if let Some(hook) = shared.ctx.before_delete_renames.lock().as_ref() {
            hook(&shared.ctx);
        }
        let mut doomed = Vec::with_capacity(entry.partitions.len());
        for partition in &entry.partitions {
            shared.cleaner.forget(&partition.key());
            match DirRemover::rename_doomed(&partition.dir) {
                Ok(path) => doomed.push(path),
                // Never loaded since a crash that took it, say: nothing to remove.
                Err(LogError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                // The topic is deleted (its record is committed): an error here would tell
                // the client otherwise. The directory stays under its name, unloaded, until
                // a topic of that name is created, which moves it aside first.
                Err(e) => tracing::warn!(
                    dir = %partition.dir.display(),
                    error = %e,
                    "deleted topic's partition directory could not be renamed for removal"
                ),
            }
        }
        // Evicted only after the renames: a read or flush that took its segment before the
        // delete may open the file until then, and a handle cached under the old path would
        // be handed to a topic re-created under the name (its appends landing in this file).
        // Once renamed, the old paths open nothing.
        let dirs: std::collections::HashSet<&std::path::Path> =
            entry.partitions.iter().map(|p| p.dir.as_path()).collect();
        shared.ctx.files.evict_dirs(&dirs);
        shared.remover.queue(doomed);
        // One fsync of the data directory makes every rename durable: without it a crash
        // could bring the old names back, and a deleted topic's directories would sit
        // unloaded (no metadata names them) until a topic of that name came again.
        // The checkpoint entries go whatever the fsync says: the topic is deleted, and a
        // topic re-created under its name must not start from its log start or cleaner
        // offset.
        let synced = sync_dir(&shared.config.data_dir);
        shared.ctx.checkpoints.remove_topic(name)?;
        synced?;
        Ok(entry.info.id)
    }

    /// Grows a topic to `total_partitions`.
    pub fn create_partitions(
        &self,
        name: &str,
        total_partitions: i32,
        validate_only: bool,
    ) -> Result<(), LogError> {
        let shared = &self.shared;
        let mut metadata = shared.metadata.lock();
        let Some(current) = shared.topics.read().get(name).map(|t| t.info.partitions) else {
            return Err(LogError::UnknownTopicOrPartition {
                topic: name.to_string(),
                partition: -1,
            });
        };
        if total_partitions <= current || total_partitions > PARTITIONS_MAX {
            return Err(LogError::InvalidPartitions(format!(
                "topic {name} has {} partitions; asked for {total_partitions}",
                current
            )));
        }
        if validate_only {
            return Ok(());
        }
        for p in current..total_partitions {
            fresh_partition_dir(
                &shared.remover,
                &shared.ctx.files,
                &shared.partition_dir(name, p),
            )?;
        }
        let record = MetadataRecord::SetPartitions {
            name: name.to_string(),
            partitions: total_partitions,
        };
        shared.commit(&mut metadata, record)?;
        let mut topics = shared.topics.write();
        if let Some(entry) = topics.get_mut(name) {
            let config = entry.info.config.clone();
            let topic_tx = match entry.partitions.first() {
                Some(first) => first.topic_tx.clone(),
                None => Arc::new(tokio::sync::watch::Sender::new(0)),
            };
            for p in current..total_partitions {
                entry
                    .partitions
                    .push(shared.new_partition(name, p, &config, &topic_tx));
            }
            entry.info.partitions = total_partitions;
        }
        Ok(())
    }

    /// Replaces a topic's overrides with `overrides` (validated first).
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), LogError> {
        self.edit_topic_overrides(name, validate_only, |_| Ok(overrides))
    }

    /// Replaces a topic's overrides with what `edit` makes of the current ones (validated
    /// first). The read, the edit and the write happen under the metadata lock, so edits
    /// of one topic from several connections apply one after the other: an edit never
    /// starts from overrides another one is about to replace (IncrementalAlterConfigs of
    /// different keys at once used to undo each other).
    pub fn edit_topic_overrides<E: From<LogError>>(
        &self,
        name: &str,
        validate_only: bool,
        edit: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, E>,
    ) -> Result<(), E> {
        let shared = &self.shared;
        let mut metadata = shared.metadata.lock();
        let current = shared
            .topics
            .read()
            .get(name)
            .map(|entry| entry.info.overrides.clone());
        let Some(current) = current else {
            return Err(LogError::UnknownTopicOrPartition {
                topic: name.to_string(),
                partition: -1,
            }
            .into());
        };
        let overrides = edit(&current)?;
        let config = Arc::new(TopicConfig::with_overrides(
            &self.topic_defaults(),
            &overrides,
        )?);
        if validate_only {
            return Ok(());
        }
        let record = MetadataRecord::SetOverrides {
            name: name.to_string(),
            overrides: overrides.clone(),
        };
        shared.commit(&mut metadata, record)?;
        let mut topics = shared.topics.write();
        if let Some(entry) = topics.get_mut(name) {
            entry.set_config(config, overrides);
        }
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.shared.topics.read().get(name).map(|t| t.info.clone())
    }

    /// The topic with this id (KIP-516: Metadata, DeleteTopics and Fetch name topics by id).
    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<TopicInfo> {
        let topics = self.shared.topics.read();
        let name = topics.name_of(id)?;
        topics.get(name).map(|t| t.info.clone())
    }

    /// Each id's topic name, in order (`None`: no topic has it), under one read lock.
    pub fn topic_names_by_id(&self, ids: &[uuid::Uuid]) -> Vec<Option<String>> {
        let topics = self.shared.topics.read();
        ids.iter()
            .map(|id| topics.name_of(id).map(str::to_owned))
            .collect()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.shared
            .topics
            .read()
            .values()
            .map(|t| t.info.clone())
            .collect()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<PartitionLog>, LogError> {
        let log = self.partition_unopened(topic, partition)?;
        log.open()?;
        Ok(log)
    }

    /// [`Self::partition`] for many partitions of one topic, in order: the topic looked up
    /// once under one hold of the topics' lock (a fetch of a thousand partitions of a topic
    /// hashed its name a thousand times). With `id` (a caller that resolved the id to the
    /// name earlier), INCONSISTENT_TOPIC_ID when the topic of that name has another id,
    /// deleted and created again in between, as Kafka's `ReplicaManager` checks a fetch's
    /// topic id against the partition's.
    pub fn partitions_of(
        &self,
        topic: &str,
        id: Option<uuid::Uuid>,
        partitions: &[i32],
    ) -> Vec<Result<Arc<PartitionLog>, LogError>> {
        let found: Vec<Result<Arc<PartitionLog>, LogError>> = {
            let topics = self.shared.topics.read();
            let entry = topics.get(topic);
            (partitions.iter())
                .map(|&partition| log_in(entry, topic, id, partition))
                .collect()
        };
        (found.into_iter())
            .map(|log| log.and_then(|log| log.open().map(|()| log)))
            .collect()
    }

    /// The partition's log as [`Self::partition`] finds it, but not opened when it has not
    /// been yet (partitions open lazily): for callers that may not need its segments.
    pub fn partition_unopened(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionLog>, LogError> {
        log_in(self.shared.topics.read().get(topic), topic, None, partition)
    }

    /// Runs one retention pass now (the background thread calls this on its interval).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<(), LogError> {
        self.shared.enforce_retention(now_ms)
    }

    /// Flushes everything, writes checkpoints and the clean-shutdown marker. Idempotent.
    pub fn shutdown(&self) -> Result<(), LogError> {
        if self
            .shared
            .shut_down
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        self.stop_threads();
        // Without every flush succeeding the next start must recover: no marker.
        super::flusher::close_all(&self.shared.all_partitions())?;
        self.shared.ctx.checkpoints.write_recovery_points()?;
        let marker = self.data_dir().join(CLEAN_SHUTDOWN_FILE);
        write_atomically(&marker, now_ms().to_string().as_bytes())?;
        Ok(())
    }
}

/// Partition `partition`'s log in `entry` (the topic named `topic`, if there is one), not
/// opened; with `id`, INCONSISTENT_TOPIC_ID when the topic has another (see
/// [`LogManager::partitions_of`]).
fn log_in(
    entry: Option<&TopicEntry>,
    topic: &str,
    id: Option<uuid::Uuid>,
    partition: i32,
) -> Result<Arc<PartitionLog>, LogError> {
    let unknown = || LogError::UnknownTopicOrPartition {
        topic: topic.to_owned(),
        partition,
    };
    let entry = entry.ok_or_else(unknown)?;
    if let Some(id) = id.filter(|&id| id != entry.info.id) {
        return Err(LogError::InconsistentTopicId {
            topic: topic.to_owned(),
            id,
        });
    }
    (usize::try_from(partition).ok())
        .and_then(|p| entry.partitions.get(p))
        .cloned()
        .ok_or_else(unknown)
}
