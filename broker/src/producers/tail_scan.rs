//! Rebuilds a partition's [`PartitionProducers`] after a restart from the batch headers of
//! the log's tail (producer id, epoch, base sequence and last offset delta sit in the header:
//! no record is decoded).
//!
//! Bounded by [`TAIL_SCAN_BYTES_MAX`]: the scan starts at an offset estimated from the last
//! batch's bytes per offset so that it covers about that many bytes, and shrinks the window
//! when the estimate was low. Producers whose last batches lie before the window are
//! unknown afterwards, and unknown producers are accepted at any sequence — the same answer
//! Kafka gives once retention removed a producer's batches.
//!
//! Producers already expired at rebuild time (idle for `producer.id.expiration.ms`, by
//! their last batch's timestamp) are not kept, as Kafka does not load expired producers
//! from a snapshot (`ProducerStateManager.loadFromSnapshot`).

use runnel_protocol::batch::{BatchSplitter, RecordBatch};

use super::sequences::{BatchIdentity, PartitionProducers};
use crate::log::{LogError, PartitionLog};

/// Most log bytes one rebuild reads (per attempt).
pub const TAIL_SCAN_BYTES_MAX: usize = 16 << 20;
/// Bytes asked of one `PartitionLog::read`.
const TAIL_READ_BYTES_MAX: usize = 1 << 20;
/// Windows tried before giving up (each smaller than the previous).
const TAIL_SCAN_ATTEMPTS_MAX: usize = 4;

/// The producer state found in the last ~[`TAIL_SCAN_BYTES_MAX`] of `log`, less the
/// producers expired at `now_ms` (idle `expiration_ms` or longer).
pub fn rebuild(
    log: &PartitionLog,
    now_ms: i64,
    expiration_ms: i64,
) -> Result<PartitionProducers, LogError> {
    let mut state = rebuild_within(log, TAIL_SCAN_BYTES_MAX)?;
    let expired = state.remove_expired(now_ms, expiration_ms);
    if expired > 0 {
        tracing::debug!(
            topic = log.topic(),
            partition = log.partition(),
            expired,
            "expired producers not loaded"
        );
    }
    Ok(state)
}

/// Every producer in the last ~`bytes_max` bytes of `log` (per attempt), expired or not.
pub fn rebuild_within(
    log: &PartitionLog,
    bytes_max: usize,
) -> Result<PartitionProducers, LogError> {
    // Reading loads the partition, so its offsets are known after this read.
    let probe = log.read(log.log_start_offset(), 0);
    let (start, end) = match probe {
        Ok(read) => (read.log_start_offset, read.high_watermark),
        Err(LogError::OffsetOutOfRange {
            log_start_offset,
            log_end_offset,
            ..
        }) => (log_start_offset, log_end_offset),
        Err(e) => return Err(e),
    };
    if end <= start {
        return Ok(PartitionProducers::default());
    }
    let bytes_max = bytes_max.max(1);
    let mut window_offsets = window_estimate(log, end, bytes_max)?;
    for _attempt in 0..TAIL_SCAN_ATTEMPTS_MAX {
        let from = end.saturating_sub(window_offsets).max(start);
        match scan(log, from, end, bytes_max)? {
            Scan::Complete(state) => return Ok(state),
            Scan::Overflow { offsets, bytes } => {
                // Denser than estimated: aim at half the bound with the density just seen.
                let fitting = offsets.saturating_mul(as_i64(bytes_max)) / as_i64(bytes).max(1);
                window_offsets = (fitting / 2).clamp(1, (window_offsets / 2).max(1));
            }
        }
    }
    tracing::warn!(
        topic = log.topic(),
        partition = log.partition(),
        "producer state not rebuilt: the log tail is denser than the scan bound"
    );
    Ok(PartitionProducers::default())
}

fn as_i64(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Offsets that hold about `bytes_max` if the tail is as dense as its last batch.
fn window_estimate(log: &PartitionLog, end: i64, bytes_max: usize) -> Result<i64, LogError> {
    let last = log.read(end - 1, 1)?;
    let batch = BatchSplitter::new(last.records).next();
    let Some(Ok(batch)) = batch else {
        return Ok(1);
    };
    let offsets = i64::from(batch.last_offset_delta())
        .saturating_add(1)
        .max(1);
    let bytes_per_offset = (as_i64(batch.size_bytes()) / offsets).max(1);
    Ok((as_i64(bytes_max) / bytes_per_offset).max(1))
}

/// How one scan of a window ended.
enum Scan {
    Complete(PartitionProducers),
    /// The bound was reached after `bytes` covering `offsets` offsets, before the end.
    Overflow {
        offsets: i64,
        bytes: usize,
    },
}

/// Replays every batch header from `from` to `end`, reading at most `bytes_max` bytes.
fn scan(log: &PartitionLog, from: i64, end: i64, bytes_max: usize) -> Result<Scan, LogError> {
    let mut state = PartitionProducers::default();
    let mut offset = from;
    let mut scanned_bytes = 0usize;
    // Every pass advances `offset` past ≥ 1 batch or stops, and the byte bound caps passes.
    while offset < end {
        if scanned_bytes >= bytes_max {
            let offsets = offset - from;
            return Ok(Scan::Overflow {
                offsets,
                bytes: scanned_bytes,
            });
        }
        let read_bytes = TAIL_READ_BYTES_MAX.min(bytes_max - scanned_bytes);
        let read = log.read(offset, read_bytes)?;
        let mut advanced = false;
        // A cut last batch ends the splitter; the next read starts at it.
        for batch in BatchSplitter::new(read.records).map_while(Result::ok) {
            scanned_bytes = scanned_bytes.saturating_add(batch.size_bytes());
            if batch.next_offset() > offset {
                replay(&mut state, &batch);
                offset = batch.next_offset();
                advanced = true;
            }
        }
        if !advanced {
            break;
        }
    }
    Ok(Scan::Complete(state))
}

fn replay(state: &mut PartitionProducers, batch: &RecordBatch) {
    if batch.is_control() {
        return;
    }
    // A batch the append path accepted always has a valid identity; skip anything else.
    if let Ok(Some(id)) = BatchIdentity::of(batch) {
        state.record(
            &id,
            batch.base_offset(),
            batch.last_offset(),
            batch.max_timestamp(),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "tail_scan_tests.rs"]
mod tests;
