//! The fetcher's buffers, record side: staging a fetched blob (headers only, so the next
//! Fetch can go out at once), handing records out (`Fetcher::take`), decoding a blob when
//! `take` needs its records, and rewinding a partition past a corrupt batch.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use runnel_protocol::batch::BatchSplitter;

use super::{ConsumerRecord, Fetcher, PartitionState, TopicPartition};

/// Pause before fetching again a corrupt batch's partition, so a broken partition does
/// not spin the poll loop.
const REFETCH_BACKOFF_MS: u64 = 100;

impl Fetcher {
    /// Up to `max` buffered records of unpaused partitions, advancing their positions;
    /// fetched data is decoded here, as it is needed. Partitions are visited round-robin,
    /// from the one after the last that gave records (as Kafka's fetcher moves a drained
    /// partition to the end of its order), so later partitions are not starved.
    pub fn take(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let (record_bytes_max, prefetch_bytes_max) =
            (self.config.record_bytes_max, self.config.prefetch_bytes_max);
        let start = self.take_after.take();
        let mut last_taken = None;
        let mut dry = Vec::new();
        // Two passes over the ring: after the start, then up to and including it.
        for pass in 0..2 {
            let range = match (&start, pass) {
                (Some(tp), 0) => (Bound::Excluded(tp), Bound::Unbounded),
                (Some(tp), _) => (Bound::Unbounded, Bound::Included(tp)),
                (None, 0) => (Bound::Unbounded, Bound::Unbounded),
                (None, _) => break,
            };
            // Bounded by the partitions with data: each is visited once.
            for tp in self.with_data.range::<TopicPartition, _>(range) {
                if out.len() >= max {
                    break;
                }
                let Some(state) = self.partitions.get_mut(&**tp) else {
                    dry.push(tp.clone()); // unassigned
                    continue;
                };
                let (before, was_full, epoch) = (
                    out.len(),
                    state.buffered_bytes >= prefetch_bytes_max,
                    state.epoch,
                );
                take_partition(
                    tp,
                    state,
                    &mut out,
                    max,
                    record_bytes_max,
                    &mut self.next_epoch,
                );
                if out.len() > before {
                    last_taken = Some(TopicPartition::clone(tp));
                }
                // Room to prefetch again, or rewound past a corrupt batch: wants a Fetch.
                if (was_full && state.buffered_bytes < prefetch_bytes_max) || state.epoch != epoch {
                    self.may_fetch = true;
                }
                if state.buffered.is_empty() && state.undecoded.is_empty() {
                    dry.push(tp.clone());
                }
            }
        }
        for tp in dry {
            self.with_data.remove(&tp);
        }
        self.take_after = last_taken.or(start);
        out
    }
}

/// Moves `tp`'s buffered records into `out` until it holds `max`, decoding as needed;
/// `next_epoch` is drawn from when a corrupt batch rewinds the partition.
fn take_partition(
    tp: &TopicPartition,
    state: &mut PartitionState,
    out: &mut Vec<ConsumerRecord>,
    max: usize,
    record_bytes_max: usize,
    next_epoch: &mut u64,
) {
    if state.paused {
        return;
    }
    while out.len() < max {
        if state.buffered.is_empty() {
            match decode_next(tp, state, record_bytes_max) {
                Decoded::Records => continue,
                Decoded::Nothing => break,
                Decoded::Corrupt { refetch_from } => {
                    rewind(state, refetch_from, *next_epoch);
                    *next_epoch += 1;
                    break;
                }
            }
        }
        // As many as `out` takes, moved together, counted as they go.
        let count = state.buffered.len().min(max - out.len());
        let (mut taken_bytes, mut last) = (0usize, None);
        out.extend(state.buffered.drain(..count).inspect(|record| {
            taken_bytes += record.size_bytes();
            last = Some(record.offset);
        }));
        let Some(last) = last else { break };
        state.position = Some(last + 1);
        state.buffered_bytes = state.buffered_bytes.saturating_sub(taken_bytes);
    }
    // Drained: every offset below the fetch offset was handed out or is not in the log (a
    // compacted batch's removed records, a control batch), so the position moves there, as
    // Java's consumer moves it to a drained fetch's next offset. Without this a compacted
    // tail would leave `current_lag` above 0 and commits short of the end for good. After a
    // rewind the fetch offset is the corrupt batch's first offset not yet handed out, which
    // the position then reaches at most.
    if state.buffered.is_empty() && state.undecoded.is_empty() {
        if let Some(position) = state.position {
            state.position = Some(position.max(state.fetch_offset));
        }
    }
}

/// Queues a fetched records blob for decoding and moves the fetch offset past its whole
/// batches, reading only their headers (a partial batch at the end is normal; it is asked
/// for again).
pub(super) fn stage_records(state: &mut PartitionState, records: Bytes) {
    let (mut whole_bytes, mut next) = (0usize, state.fetch_offset);
    for batch in BatchSplitter::new(records.clone()) {
        let Ok(batch) = batch else { break };
        whole_bytes += batch.size_bytes();
        next = next.max(batch.next_offset());
    }
    if whole_bytes == 0 {
        return;
    }
    state
        .undecoded
        .push_back((state.fetch_offset, records.slice(..whole_bytes)));
    state.buffered_bytes += whole_bytes;
    state.fetch_offset = next;
}

/// What [`decode_next`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    /// A blob was decoded (its records, if any, are buffered).
    Records,
    /// Nothing was waiting.
    Nothing,
    /// A batch failed its CRC or could not be decoded; what precedes it is buffered.
    Corrupt { refetch_from: i64 },
}

/// Decodes the oldest undecoded blob into the partition's records, skipping records before
/// the offset it was fetched at (a compressed batch can start earlier), records at or below
/// one already taken from it (so the offsets handed out only grow, as Java's consumer skips
/// records below its next fetch offset: a batch's base offset is outside its CRC) and
/// control batches.
pub(super) fn decode_next(tp: &TopicPartition, state: &mut PartitionState, max: usize) -> Decoded {
    let Some((fetched_at, blob)) = state.undecoded.pop_front() else {
        return Decoded::Nothing;
    };
    state.buffered_bytes = state.buffered_bytes.saturating_sub(blob.len());
    // One shared name for every record of this blob, not a copy per record.
    let topic: Arc<str> = Arc::from(tp.topic.as_str());
    // The lowest offset the next record may have.
    let mut from = fetched_at;
    // Staging kept whole batches only: every split succeeds.
    for batch in BatchSplitter::new(blob).flatten() {
        let refetch_from = batch.base_offset().max(from);
        if batch.verify_crc().is_err() {
            tracing::warn!(%tp, offset = batch.base_offset(), "CRC mismatch; refetching");
            return Decoded::Corrupt { refetch_from };
        }
        if batch.is_control() || batch.next_offset() <= from {
            continue;
        }
        let Ok(iter) = runnel_protocol::records::records(&batch, max) else {
            tracing::warn!(%tp, offset = batch.base_offset(), "undecodable batch");
            return Decoded::Corrupt { refetch_from };
        };
        // Straight into the buffer (one move per record less than through a list of the
        // batch's own); a record that fails takes the batch's records back out.
        let (before, before_bytes) = (state.buffered.len(), state.buffered_bytes);
        for record in iter {
            let Ok(record) = record else {
                state.buffered.truncate(before);
                state.buffered_bytes = before_bytes;
                return Decoded::Corrupt { refetch_from };
            };
            if record.offset >= from {
                from = record.offset.saturating_add(1);
                let record = ConsumerRecord::from_wire(&topic, tp.partition, record);
                state.buffered_bytes += record.size_bytes();
                state.buffered.push_back(record);
            }
        }
    }
    Decoded::Records
}

/// After a corrupt batch: drop everything fetched past it (a fetch in flight too: its
/// answer no longer names this partition's request) and ask for it again, after a backoff.
pub(super) fn rewind(state: &mut PartitionState, refetch_from: i64, epoch: u64) {
    state.undecoded.clear();
    state.buffered_bytes = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
    state.fetch_offset = refetch_from;
    state.epoch = epoch;
    state.request = 0;
    state.backoff_until =
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(REFETCH_BACKOFF_MS));
}
