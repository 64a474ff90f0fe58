//! Offset checkpoint files in the data dir: `recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint` and `cleaner-offset-checkpoint`, in Kafka's text format:
//!
//! ```text
//! 0                 <- version
//! 2                 <- entry count
//! orders 0 1234     <- topic partition offset
//! orders 1 99
//! ```
//!
//! Written atomically (tmp + fsync + rename + directory fsync). Thread-safety: the in-memory
//! maps sit behind a mutex; a second mutex serialises writers of each file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// Where each compacted partition's clean section ends (its first dirty offset).
pub(crate) const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";
/// A checkpoint larger than this is not ours; it is ignored rather than read into memory.
const CHECKPOINT_BYTES_MAX: u64 = 64 << 20;

/// `(topic, partition)`.
pub(crate) type PartitionKey = (String, i32);

/// Writes `entries` to `path` atomically.
pub(crate) fn write_checkpoint(
    path: &Path,
    entries: &BTreeMap<PartitionKey, i64>,
) -> io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for ((topic, partition), offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomically(path, text.as_bytes())
}

/// tmp + fsync + rename + fsync of the directory.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a checkpoint; a missing file is empty, a malformed one is ignored with a warning
/// (the safe reading of both files: recover everything, start at the first segment).
pub(crate) fn read_checkpoint(path: &Path) -> BTreeMap<PartitionKey, i64> {
    let text = match fs::metadata(path) {
        Ok(meta) if meta.len() <= CHECKPOINT_BYTES_MAX => {
            fs::read_to_string(path).unwrap_or_default()
        }
        _ => return BTreeMap::new(),
    };
    match parse_checkpoint(&text) {
        Some(entries) => entries,
        None => {
            tracing::warn!(path = %path.display(), "ignoring malformed checkpoint");
            BTreeMap::new()
        }
    }
}

fn parse_checkpoint(text: &str) -> Option<BTreeMap<PartitionKey, i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = BTreeMap::new();
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let topic = fields.next()?.to_string();
        let partition: i32 = fields.next()?.parse().ok()?;
        let offset: i64 = fields.next()?.parse().ok()?;
        entries.insert((topic, partition), offset);
    }
    (entries.len() == count).then_some(entries)
}

/// Both checkpoints of one data dir, kept in memory and written on change / on demand.
pub(crate) struct Checkpoints {
    data_dir: PathBuf,
    recovery_points: Mutex<BTreeMap<PartitionKey, i64>>,
    log_starts: Mutex<BTreeMap<PartitionKey, i64>>,
    cleaner_offsets: Mutex<BTreeMap<PartitionKey, i64>>,
    recovery_write: Mutex<()>,
    /// A recovery point moved since the file was last written (the flusher's periodic
    /// write skips an unchanged file: with 10 000 idle partitions it rewrote and fsynced
    /// the same ~300 KiB every 10 s).
    recovery_points_changed: AtomicBool,
    log_start_write: Mutex<()>,
    cleaner_write: Mutex<()>,
    /// Test seam: checkpoint files written by `retain`.
    #[cfg(test)]
    pub(crate) retain_writes: std::sync::atomic::AtomicU64,
}

impl Checkpoints {
    pub(crate) fn load(data_dir: &Path) -> Checkpoints {
        Checkpoints {
            data_dir: data_dir.to_path_buf(),
            recovery_points: Mutex::new(read_checkpoint(&data_dir.join(RECOVERY_POINT_FILE))),
            log_starts: Mutex::new(read_checkpoint(&data_dir.join(LOG_START_FILE))),
            cleaner_offsets: Mutex::new(read_checkpoint(&data_dir.join(CLEANER_OFFSET_FILE))),
            recovery_write: Mutex::new(()),
            recovery_points_changed: AtomicBool::new(false),
            log_start_write: Mutex::new(()),
            cleaner_write: Mutex::new(()),
            #[cfg(test)]
            retain_writes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn recovery_point(&self, key: &PartitionKey) -> Option<i64> {
        self.recovery_points.lock().get(key).copied()
    }

    pub(crate) fn log_start(&self, key: &PartitionKey) -> Option<i64> {
        self.log_starts.lock().get(key).copied()
    }

    /// Remembers a recovery point (everything below is fsynced); written by
    /// [`Checkpoints::write_recovery_points`].
    pub(crate) fn set_recovery_point(&self, key: PartitionKey, offset: i64) {
        self.set_live_recovery_point(key, offset, &AtomicBool::new(false));
    }

    /// [`Checkpoints::set_recovery_point`] unless `deleted` (the partition's flag, set before
    /// its topic's entries are removed): a flush whose fsync ran while its topic was deleted
    /// would otherwise put back the entry the delete had just removed.
    pub(crate) fn set_live_recovery_point(
        &self,
        key: PartitionKey,
        offset: i64,
        deleted: &AtomicBool,
    ) {
        let mut points = self.recovery_points.lock();
        // Read under the lock `remove_topic` takes: a delete either removed its entries
        // after this insert, or set the flag before this look.
        if deleted.load(Ordering::Acquire) {
            return;
        }
        if points.insert(key, offset) != Some(offset) {
            // After the insert: a writer that sees the flag clear took its snapshot after
            // the flag was cleared, and one that sees it set snapshots this insert.
            self.recovery_points_changed.store(true, Ordering::SeqCst);
        }
    }

    /// Moves a log start offset and writes the file at once: a restart must never expose
    /// records a client deleted.
    pub(crate) fn set_log_start(&self, key: PartitionKey, offset: i64) -> io::Result<()> {
        let _writer = self.log_start_write.lock();
        let snapshot = {
            let mut starts = self.log_starts.lock();
            starts.insert(key, offset);
            starts.clone()
        };
        write_checkpoint(&self.data_dir.join(LOG_START_FILE), &snapshot)
    }

    /// The first dirty offset the cleaner recorded (`None`: never cleaned).
    pub(crate) fn cleaner_offset(&self, key: &PartitionKey) -> Option<i64> {
        self.cleaner_offsets.lock().get(key).copied()
    }

    /// Records where the clean section now ends and writes the file at once (a lost update
    /// only costs a re-clean, but writing per pass keeps the file honest for operators).
    /// Nothing when `deleted` (the partition's flag): as for recovery points, a pass ending
    /// while its topic is deleted must not put back an entry a re-created topic would inherit.
    pub(crate) fn set_cleaner_offset(
        &self,
        key: PartitionKey,
        offset: i64,
        deleted: &AtomicBool,
    ) -> io::Result<()> {
        let _writer = self.cleaner_write.lock();
        let snapshot = {
            let mut offsets = self.cleaner_offsets.lock();
            // Read under the lock `remove_topic` takes (see `set_live_recovery_point`).
            if deleted.load(Ordering::Acquire) {
                return Ok(());
            }
            offsets.insert(key, offset);
            offsets.clone()
        };
        write_checkpoint(&self.data_dir.join(CLEANER_OFFSET_FILE), &snapshot)
    }

    pub(crate) fn write_recovery_points(&self) -> io::Result<()> {
        self.write_recovery_points_when(true)
    }

    /// Writes the recovery points only if one moved since the last write.
    pub(crate) fn write_changed_recovery_points(&self) -> io::Result<()> {
        self.write_recovery_points_when(false)
    }

    fn write_recovery_points_when(&self, always: bool) -> io::Result<()> {
        let _writer = self.recovery_write.lock();
        // Cleared before the snapshot, so a point set meanwhile is either in it or sets
        // the flag again for the next write.
        let changed = self.recovery_points_changed.swap(false, Ordering::SeqCst);
        if !changed && !always {
            return Ok(());
        }
        let snapshot = self.recovery_points.lock().clone();
        let written = write_checkpoint(&self.data_dir.join(RECOVERY_POINT_FILE), &snapshot);
        if written.is_err() && changed {
            self.recovery_points_changed.store(true, Ordering::SeqCst);
        }
        written
    }

    /// Forgets every partition `exists` rejects, rewriting each file that held one; how many
    /// entries went.
    pub(crate) fn retain(&self, exists: impl Fn(&PartitionKey) -> bool) -> io::Result<usize> {
        let mut dropped = 0;
        let files = [
            (
                &self.recovery_points,
                &self.recovery_write,
                RECOVERY_POINT_FILE,
            ),
            (&self.log_starts, &self.log_start_write, LOG_START_FILE),
            (
                &self.cleaner_offsets,
                &self.cleaner_write,
                CLEANER_OFFSET_FILE,
            ),
        ];
        for (entries, write_lock, file) in files {
            let _writer = write_lock.lock();
            let snapshot = {
                let mut entries = entries.lock();
                let before = entries.len();
                entries.retain(|key, _| exists(key));
                if entries.len() == before {
                    continue;
                }
                dropped += before - entries.len();
                entries.clone()
            };
            write_checkpoint(&self.data_dir.join(file), &snapshot)?;
            #[cfg(test)]
            self.retain_writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(dropped)
    }

    /// Drops every entry of `topic`, each file rewritten at most once: per partition, a
    /// 10 000-partition topic's delete rewrote (and fsynced) files of every partition's
    /// entries 10 000 times.
    pub(crate) fn remove_topic(&self, topic: &str) -> io::Result<()> {
        self.retain(|(kept, _)| kept != topic).map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The flusher's periodic write skips a file nothing moved in; a moved point (not the
    /// same one set again) is written at the next one.
    #[test]
    fn the_periodic_write_skips_unchanged_recovery_points() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_FILE);
        let checkpoints = Checkpoints::load(dir.path());
        checkpoints.set_recovery_point(("t".to_string(), 0), 5);
        checkpoints.write_changed_recovery_points().unwrap();
        assert_eq!(read_checkpoint(&path).len(), 1);
        fs::remove_file(&path).unwrap();
        checkpoints.set_recovery_point(("t".to_string(), 0), 5);
        checkpoints.write_changed_recovery_points().unwrap();
        assert!(!path.exists(), "rewritten though nothing moved");
        checkpoints.set_recovery_point(("t".to_string(), 0), 6);
        checkpoints.write_changed_recovery_points().unwrap();
        assert_eq!(read_checkpoint(&path).get(&("t".to_string(), 0)), Some(&6));
        // The unconditional write (shutdown) always writes.
        fs::remove_file(&path).unwrap();
        checkpoints.write_recovery_points().unwrap();
        assert!(path.exists());
    }

    #[test]
    fn a_deleted_partitions_late_flush_sets_no_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::load(dir.path());
        let deleted = AtomicBool::new(false);
        checkpoints.set_live_recovery_point(("t".to_string(), 0), 5, &deleted);
        deleted.store(true, Ordering::Release);
        checkpoints.remove_topic("t").unwrap();
        checkpoints.set_live_recovery_point(("t".to_string(), 0), 9, &deleted);
        assert_eq!(checkpoints.recovery_point(&("t".to_string(), 0)), None);
    }

    #[test]
    fn a_deleted_partitions_late_clean_sets_no_cleaner_offset() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::load(dir.path());
        let deleted = AtomicBool::new(false);
        let key = ("t".to_string(), 0);
        checkpoints
            .set_cleaner_offset(key.clone(), 5, &deleted)
            .unwrap();
        assert_eq!(checkpoints.cleaner_offset(&key), Some(5));
        deleted.store(true, Ordering::Release);
        checkpoints.remove_topic("t").unwrap();
        checkpoints
            .set_cleaner_offset(key.clone(), 9, &deleted)
            .unwrap();
        assert_eq!(checkpoints.cleaner_offset(&key), None);
        assert!(read_checkpoint(&dir.path().join(CLEANER_OFFSET_FILE)).is_empty());
    }

    #[test]
    fn round_trips_and_ignores_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_FILE);
        let mut entries = BTreeMap::new();
        entries.insert(("a.b-c".to_string(), 3), 42);
        entries.insert(("x".to_string(), 0), 0);
        write_checkpoint(&path, &entries).unwrap();
        assert_eq!(read_checkpoint(&path), entries);
        fs::write(&path, "0\n5\nx 0 1\n").unwrap();
        assert!(read_checkpoint(&path).is_empty());
        assert!(read_checkpoint(&dir.path().join("missing")).is_empty());
    }
}
