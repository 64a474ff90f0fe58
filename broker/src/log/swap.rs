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
//! `recovery::resolve_stray_files` rolls back before step 3 and forward from it. The new
//! segment's indexes are rebuilt from its log on first use (indexes carry no checksum and are
//! always rebuildable), so only `.log` files travel through the protocol.
//! Thread-safety: runs under the partition's `flush_lock` then `state` lock (the documented
//! lock order), so no append, roll, retention, flush or fresh read snapshot interleaves; old
//! readers find their segment `retired` and take a new snapshot.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint::sync_dir;
use super::partition::PartitionLog;
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
        let Some(first) = old.first() else {
            unreachable!("a swap replaces at least one segment");
        };
        assert!(
            old.windows(2).all(|w| w[0].base_offset < w[1].base_offset),
            "old segments ascend"
        );
        assert!(
            cleaned.exists(),
            "the cleaned log is written before the swap"
        );
        let _no_flush = self.flush_lock.lock();
        let mut guard = self.loaded()?;
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
        self.crash_point(1)?;
        for segment in old {
            let mut segment_state = segment.lock();
            segment_state.retired = true;
            segment_state.indexes = None;
        }
        rename_all_to_deleted(old)?;
        sync_dir(&self.dir)?;
        self.crash_point(2)?;
        let swap = with_suffix(&first.log_path, ".swap");
        fs::rename(cleaned, &swap)?;
        sync_dir(&self.dir)?;
        self.crash_point(3)?;
        fs::rename(&swap, &first.log_path)?;
        sync_dir(&self.dir)?;
        self.crash_point(4)?;
        for segment in old {
            // After the renames: a reader may have cached an fd of a path in between.
            self.ctx.files.evict(&segment.log_path);
            state.segments.remove(&segment.base_offset);
        }
        let replacement = Segment::new(&self.dir, first.base_offset, cleaned_bytes);
        state
            .segments
            .insert(first.base_offset, Arc::new(replacement));
        for segment in old {
            for path in segment.paths() {
                remove_if_exists(&with_suffix(&path, ".deleted"))?;
            }
        }
        Ok(true)
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
