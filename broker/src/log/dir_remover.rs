//! Removal of doomed partition directories off the caller's thread.
//!
//! A deleted topic's partition directories are renamed to `<dir>.<uuid>-delete` under the
//! metadata lock (one rename each, fast) and removed here in the background: removing
//! 10 000 directories one after another held the metadata lock, and so every topic change,
//! for seconds. A renamed directory no longer has a partition's name, so a topic re-created
//! at once under the same name never meets its files, and nothing opens it as a partition
//! (partitions are found by their exact `<topic>-<partition>` name, never by listing).
//! A crash or a stop leaves `*-delete` directories behind; the next `open` queues them
//! again ([`DirRemover::queue_leftovers`]).
//!
//! Thread-safety: any thread queues; one thread ([`DirRemover::run`]) removes.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex};

use super::LogError;

/// The suffix of a directory being removed.
const DOOMED_SUFFIX: &str = "-delete";

#[derive(Default)]
struct Queue {
    doomed: VecDeque<PathBuf>,
    stop: bool,
    /// Test seam: removal waits while set (to see what a crash would leave).
    #[cfg(test)]
    paused: bool,
}

/// Directories waiting for removal, and the thread's wake-up.
#[derive(Default)]
pub(crate) struct DirRemover {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl DirRemover {
    /// Renames `dir` to `<dir>.<uuid>-delete` and returns the new name (not yet queued).
    pub(crate) fn rename_doomed(dir: &Path) -> Result<PathBuf, LogError> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let doomed = dir.with_file_name(format!(
            "{name}.{}{DOOMED_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::rename(dir, &doomed)?;
        Ok(doomed)
    }

    /// Queues renamed directories for the removal thread.
    pub(crate) fn queue(&self, doomed: impl IntoIterator<Item = PathBuf>) {
        self.queue.lock().doomed.extend(doomed);
        self.wake.notify_one();
    }

    /// Queues every `*-delete` directory in `data_dir` (left by a crash or a stop).
    pub(crate) fn queue_leftovers(&self, data_dir: &Path) -> Result<usize, LogError> {
        let mut leftovers = Vec::new();
        for entry in fs::read_dir(data_dir)? {
            let entry = entry?;
            let doomed = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(DOOMED_SUFFIX));
            if doomed && entry.file_type()?.is_dir() {
                leftovers.push(entry.path());
            }
        }
        let count = leftovers.len();
        self.queue(leftovers);
        Ok(count)
    }

    /// Makes [`DirRemover::run`] return after the directory it is removing, if any (what is
    /// left goes at the next open: a stop never waits for a large deletion).
    pub(crate) fn stop(&self) {
        self.queue.lock().stop = true;
        self.wake.notify_all();
    }

    /// The removal thread's body: removes queued directories until stopped.
    pub(crate) fn run(&self) {
        while let Some(dir) = self.next() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                // Left for the next start to try again.
                tracing::warn!(dir = %dir.display(), error = %e, "removing a deleted partition's directory failed");
            }
        }
    }

    /// The next directory to remove, waiting for one; `None` when stopping.
    fn next(&self) -> Option<PathBuf> {
        let mut queue = self.queue.lock();
        loop {
            if queue.stop {
                return None;
            }
            #[cfg(test)]
            let paused = queue.paused;
            #[cfg(not(test))]
            let paused = false;
            if !paused {
                if let Some(dir) = queue.doomed.pop_front() {
                    return Some(dir);
                }
            }
            self.wake.wait(&mut queue);
        }
    }

    /// Test seam: holds (true) or resumes (false) removal.
    #[cfg(test)]
    pub(crate) fn set_paused(&self, paused: bool) {
        self.queue.lock().paused = paused;
        self.wake.notify_all();
    }
}
