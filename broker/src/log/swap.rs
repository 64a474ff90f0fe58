//! The crash-safe swap of cleaned segments into a partition (Kafka's suffix protocol).
//!
//! Order, with a directory fsync after each step so a crash (or power loss) stops between
//! steps, never inside one:
//! 1. `X.log.cleaned` is written and fsynced by the cleaner (X = base of the first old one);
//! 2. every file of every old segment is renamed to `*.deleted`;
//! 3. `X.log.cleaned` → `X.log.swap` (the commit point);
//! 4. `X.log.swap` → `X.log`;
//! 5. the `*.deleted` files are removed.
//!
//! `recovery::resolve_stray_files` rolls back before step 3 and forward from it; after an
//! I/O error mid-swap the same resolution is done in place, so the partition keeps serving. The new
//! segment's indexes are rebuilt from its log on first use (indexes carry no checksum and are
//! always rebuildable), so only `.log` files travel through the protocol.
//! Thread-safety: runs under the partition's `flush_lock` then `state` lock (the documented
//! lock order), so no append, roll, retention, flush or fresh read snapshot interleaves; old
//! readers find their segment `retired` and take a new snapshot.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint::sync_dir;
use super::partition::{LogState, PartitionLog};
use super::recovery::remove_if_exists;
use super::segment::Segment;
use super::LogError;

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

impl PartitionLog {
    /// Replaces `old` (consecutive sealed segments, ascending) by the fsynced `cleaned` log
    /// of `cleaned_bytes`. False (and `cleaned` removed) when the segments changed since the
    /// cleaner looked (retention or DeleteRecords got there first).
    pub(crate) fn swap_in(
        &self,
        old: &[Arc<Segment>],
        cleaned: &Path,
        cleaned_bytes: u64,
    ) -> Result<bool, LogError> {
        assert!(!old.is_empty(), "a swap replaces at least one segment");
        assert!(
            old.windows(2).all(|w| w[0].base_offset < w[1].base_offset),
            "old segments ascend"
        );
        assert!(
            cleaned.exists(),
            "the cleaned log is written before the swap"
        );
        let _no_flush = self.flush_lock.lock();
        let mut guard = match self.loaded() {
            Ok(guard) => guard,
            Err(e) => {
                // Closed, or deleted while the cleaner wrote: the output is nobody's. (A
                // topic deleted and created again under its name has a directory at this
                // path again, the new topic's: it must not keep a stray `.cleaned` file
                // until the next start's recovery.)
                if let Err(remove) = remove_if_exists(cleaned) {
                    tracing::debug!(path = %cleaned.display(), error = %remove, "removing an unused cleaned log failed");
                }
                return Err(e);
            }
        };
        let Some(state) = guard.as_mut() else {
            return Err(LogError::ShutDown);
        };
        let unchanged = old.iter().all(|segment| {
            state
                .segments
                .get(&segment.base_offset)
                .is_some_and(|current| Arc::ptr_eq(current, segment))
        });
        let touches_active = old.iter().any(|s| Arc::ptr_eq(s, state.active()));
        if !unchanged || touches_active {
            remove_if_exists(cleaned)?;
            return Ok(false);
        }
        // Counted before any file moves, under the state lock: a reader that saw the old
        // count read the old segments, and whatever happens next (even a failed swap
        // repaired forward) may have removed records.
        self.segment_rewrites
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Err(e) = self.swap_files(old, cleaned) {
            if !self.crash_injected() {
                self.repair_failed_swap(state, old, cleaned, cleaned_bytes);
            }
            return Err(e);
        }
        self.install(state, old, cleaned_bytes)?;
        Ok(true)
    }

    /// Steps 2–4 on disk: the old files go to `.deleted`, the cleaned log comes into place.
    fn swap_files(&self, old: &[Arc<Segment>], cleaned: &Path) -> Result<(), LogError> {
        self.crash_point(1)?;
        for segment in old {
            let mut segment_state = segment.lock();
            segment_state.retired = true;
            segment_state.indexes = None;
        }
        rename_all_to_deleted(old)?;
        sync_dir(&self.dir)?;
        self.crash_point(2)?;
        let first_log = &old[0].log_path;
        let swap = with_suffix(first_log, ".swap");
        fs::rename(cleaned, &swap)?;
        sync_dir(&self.dir)?;
        self.crash_point(3)?;
        fs::rename(&swap, first_log)?;
        sync_dir(&self.dir)?;
        self.crash_point(4)
    }

    /// Puts the swapped-in segment into the segment map and removes the `.deleted` files.
    fn install(
        &self,
        state: &mut LogState,
        old: &[Arc<Segment>],
        cleaned_bytes: u64,
    ) -> Result<(), LogError> {
        let base = old[0].base_offset;
        for segment in old {
            // After the renames: a reader may have cached an fd of a path in between.
            self.ctx.files.evict(&segment.log_path);
            state.segments.remove(&segment.base_offset);
        }
        let replacement = Segment::new(&self.dir, base, cleaned_bytes);
        state.segments.insert(base, Arc::new(replacement));
        for segment in old {
            for path in segment.paths() {
                remove_if_exists(&with_suffix(&path, ".deleted"))?;
            }
        }
        Ok(())
    }

    /// After a real I/O error mid-swap, does in place what recovery would do at the next
    /// start, so the partition keeps serving: forward when the cleaned log already left its
    /// `.cleaned` name (the commit point), else back. Best effort: if this fails too, the
    /// next start resolves the files.
    fn repair_failed_swap(
        &self,
        state: &mut LogState,
        old: &[Arc<Segment>],
        cleaned: &Path,
        cleaned_bytes: u64,
    ) {
        let first_log = &old[0].log_path;
        let swap = with_suffix(first_log, ".swap");
        let repaired = if cleaned.exists() {
            roll_back(old, cleaned)
        } else {
            let placed = if swap.exists() {
                fs::rename(&swap, first_log).map_err(LogError::from)
            } else {
                Ok(())
            };
            placed.and_then(|()| self.install(state, old, cleaned_bytes))
        };
        match repaired {
            Ok(()) => {
                tracing::warn!(dir = %self.dir.display(), "repaired a failed compaction swap")
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "could not repair a failed compaction swap; the next start will")
            }
        }
    }

    /// Whether the test seam caused the current failure (a simulated crash: no repair).
    fn crash_injected(&self) -> bool {
        #[cfg(test)]
        if self
            .ctx
            .swap_crash_step
            .load(std::sync::atomic::Ordering::Acquire)
            != 0
            && !self
                .ctx
                .swap_failure_repairs
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return true;
        }
        false
    }

    /// Test seam: fails the swap right after `step` as if the process died there.
    fn crash_point(&self, step: u8) -> Result<(), LogError> {
        #[cfg(test)]
        if self
            .ctx
            .swap_crash_step
            .load(std::sync::atomic::Ordering::Acquire)
            == step
        {
            return Err(LogError::Io(std::io::Error::other(format!(
                "injected crash after swap step {step}"
            ))));
        }
        let _ = step;
        Ok(())
    }
}

/// Step 2: every file of every old segment becomes `*.deleted` (index files may be missing:
/// they are rebuilt on demand).
fn rename_all_to_deleted(old: &[Arc<Segment>]) -> Result<(), LogError> {
    for segment in old {
        for path in segment.paths() {
            match fs::rename(&path, with_suffix(&path, ".deleted")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Undoes steps 1–2: the old files get their names back and are served again.
fn roll_back(old: &[Arc<Segment>], cleaned: &Path) -> Result<(), LogError> {
    for segment in old {
        for path in segment.paths() {
            let doomed = with_suffix(&path, ".deleted");
            if doomed.exists() {
                fs::rename(&doomed, &path)?;
            }
        }
    }
    remove_if_exists(cleaned)?;
    for segment in old {
        segment.lock().retired = false;
    }
    Ok(())
}
