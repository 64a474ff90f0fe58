//! The last batch of each idempotent producer among the segments a cleaning pass rewrites.
//!
//! After a restart the produce path rebuilds each producer's last sequence from the batch
//! headers of the log's tail (`producers::tail_scan`): base sequence + last offset delta of
//! the producer's last batch. Compaction must therefore keep that batch, with its header's
//! offsets, even when every one of its records is superseded: it stays as an empty batch
//! (header only, record count 0), as Kafka's cleaner keeps the batch holding an active
//! producer's last data offset (`BatchRetention.RETAIN_EMPTY`, `writeEmptyHeader`).
//!
//! Kafka asks its producer-state map which batch that is in the whole log. This log keeps no
//! such map, so a pass scans the headers of the segments it rewrites and keeps each
//! producer's last batch among them: the same batch whenever it is also the last in the log;
//! otherwise one extra empty batch, which a later pass drops once it sees the producer's
//! newer batches. Erring that way costs 61 bytes; erring the other way refuses the
//! producer's next batch with OUT_OF_ORDER_SEQUENCE_NUMBER after a restart.

use std::collections::HashMap;
use std::fs::File;

use runnel_protocol::batch::BATCH_HEADER_BYTES;

use super::clean_pass::SealedView;
use super::cleaner::Throttle;
use super::segment::read_header;
use super::LogError;

/// Producers tracked per pass (a map entry is ~24 bytes: ≤ ~8 MiB). Producers beyond it are
/// not tracked, and every batch of theirs counts as possibly last (kept, if only as a
/// header): safe, merely less compact.
pub(crate) const PRODUCER_IDS_MAX: usize = 1 << 18;

/// Each producer's last data batch (by last offset) in the segments scanned.
pub(crate) struct LastBatches {
    last_offsets: HashMap<i64, i64>,
    /// A producer was seen while the map was full.
    overflowed: bool,
}

impl LastBatches {
    /// Reads the batch headers of `segments` (one small read per batch, no record decoded).
    pub(crate) fn scan(
        segments: &[SealedView],
        throttle: &mut Throttle,
    ) -> Result<LastBatches, LogError> {
        let mut last_batches = LastBatches {
            last_offsets: HashMap::new(),
            overflowed: false,
        };
        for view in segments {
            let path = &view.segment.log_path;
            let corrupt = |detail: String| LogError::Corruption {
                path: path.clone(),
                detail,
            };
            let file = File::open(path)?;
            let mut position = 0u64;
            // Each step moves past one whole batch (≥ 61 bytes) within the segment's size.
            while let Some(header) =
                read_header(&file, position, view.size_bytes).map_err(|e| corrupt(e.to_string()))?
            {
                throttle.charge(BATCH_HEADER_BYTES as u64)?;
                // A control batch (a transaction marker) carries no sequence.
                if !header.is_control() {
                    last_batches.note(header.producer_id, header.last_offset);
                }
                position += header.size_bytes;
            }
            if position != view.size_bytes {
                return Err(corrupt(format!("torn batch at {position}")));
            }
        }
        Ok(last_batches)
    }

    fn note(&mut self, producer_id: i64, last_offset: i64) {
        if producer_id < 0 {
            return;
        }
        let room = self.last_offsets.len() < PRODUCER_IDS_MAX;
        match self.last_offsets.get_mut(&producer_id) {
            Some(last) => *last = (*last).max(last_offset),
            None if room => {
                self.last_offsets.insert(producer_id, last_offset);
            }
            None => self.overflowed = true,
        }
    }

    /// Whether the batch of `producer_id` ending at `last_offset` must be kept (if only as
    /// an empty batch): it is the producer's last one scanned, or the producer went
    /// untracked. Never for batches without a producer id.
    pub(crate) fn is_last(&self, producer_id: i64, last_offset: i64) -> bool {
        if producer_id < 0 {
            return false;
        }
        match self.last_offsets.get(&producer_id) {
            Some(last) => *last == last_offset,
            None => self.overflowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_each_producers_last_batch_counts_and_untracked_ones_all_do() {
        let mut last_batches = LastBatches {
            last_offsets: HashMap::new(),
            overflowed: false,
        };
        last_batches.note(7, 3);
        last_batches.note(7, 9);
        last_batches.note(-1, 12);
        assert!(last_batches.is_last(7, 9));
        assert!(!last_batches.is_last(7, 3));
        assert!(!last_batches.is_last(-1, 12), "no producer id, no sequence");
        assert!(!last_batches.is_last(8, 1), "never seen");
        for producer_id in 100..100 + PRODUCER_IDS_MAX as i64 {
            last_batches.note(producer_id, 0);
        }
        assert!(last_batches.is_last(8, 1), "untracked: kept to be safe");
        last_batches.note(7, 20);
        assert!(last_batches.is_last(7, 20), "tracked ones stay exact");
        assert!(!last_batches.is_last(7, 9));
    }
}
