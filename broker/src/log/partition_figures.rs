//! A [`PartitionLog`]'s figures — offsets, sizes — and the watches long-polling fetches wait
//! on; read without the append path's locks where an atomic or a watch holds them.

use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::partition::PartitionLog;
use super::LogError;

impl PartitionLog {
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
    pub fn log_end_offset(&self) -> i64 {
        *self.end_tx.borrow()
    }
    /// Single broker: everything appended is visible, so this equals the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset()
    }
    /// Watches the log end offset (for long-poll fetch); also woken, its value unchanged,
    /// when the log start moves or the log is deleted.
    pub fn end_offset_watch(&self) -> watch::Receiver<i64> {
        self.end_tx.subscribe()
    }

    /// Woken whenever any partition of this log's topic would wake its
    /// [`end_offset_watch`](Self::end_offset_watch): a fetch long-polling many partitions of
    /// a topic waits once, not once per partition (setting up and tearing down a thousand
    /// waits per fetch cost a tailing consumer's broker more than its reads).
    pub fn topic_moves(&self) -> watch::Receiver<u64> {
        self.topic_tx.subscribe()
    }

    /// Announces a move of the end, the start, or the log's deletion to the long polls.
    pub(crate) fn announce_move(&self) {
        self.end_tx.send_modify(|_| {});
        self.topic_tx
            .send_modify(|moves| *moves = moves.wrapping_add(1));
    }
    /// Bytes appended to this log since it was created in this process: only grows (unlike
    /// [`Self::size_bytes`], which retention shrinks), and costs one atomic load.
    pub fn appended_bytes(&self) -> u64 {
        self.appended_bytes.load(Ordering::Acquire)
    }
    pub fn size_bytes(&self) -> u64 {
        match self.state.lock().as_ref() {
            Some(state) => state.segments.values().map(|s| s.lock().size_bytes).sum(),
            None => 0,
        }
    }
    /// Bytes of this log's segment files: the loaded state's figure, or for a log not yet
    /// opened the `.log` files' lengths read from its directory (a listing, no recovery), so
    /// describing every partition opens none.
    pub fn size_on_disk_bytes(&self) -> Result<u64, LogError> {
        if let Some(state) = self.state.lock().as_ref() {
            return Ok(state.segments.values().map(|s| s.lock().size_bytes).sum());
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // Not created yet, or removed with its topic: no segment files.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut total_bytes = 0u64;
        for entry in entries {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "log") {
                total_bytes = total_bytes.saturating_add(entry.metadata()?.len());
            }
        }
        Ok(total_bytes)
    }
    pub fn segment_count(&self) -> usize {
        self.state
            .lock()
            .as_ref()
            .map_or(0, |state| state.segments.len())
    }

    /// Cleaner swaps begun on this log (see the field).
    pub fn segment_rewrites(&self) -> u64 {
        self.segment_rewrites.load(Ordering::Acquire)
    }
}
