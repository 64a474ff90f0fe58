//! Rebuilds a partition's [`PartitionProducers`] after a restart from the batch headers of
//! the log's tail (producer id, epoch, base sequence and last offset delta sit in the header:
//! no record is decoded).
//!
//! Bounded by [`TAIL_SCAN_BYTES_MAX`]: the scan starts at an offset estimated from the last
//! batch's bytes per offset so that it covers about that many bytes, and shrinks the window
//! when the estimate was low. Producers whose last batches lie before the window are
//! unknown afterwards, and unknown producers are accepted at any sequence — the same answer
//! Kafka gives once retention removed a producer's batches.

use runnel_protocol::batch::{BatchSplitter, RecordBatch};

use super::sequences::{BatchIdentity, PartitionProducers};
use crate::log::{LogError, PartitionLog};

/// Most log bytes one rebuild reads (per attempt).
pub const TAIL_SCAN_BYTES_MAX: usize = 16 << 20;
/// Bytes asked of one `PartitionLog::read`.
const TAIL_READ_BYTES_MAX: usize = 1 << 20;
/// Windows tried before giving up (each a quarter of the previous).
const TAIL_SCAN_ATTEMPTS_MAX: usize = 3;

/// The producer state found in the last ~[`TAIL_SCAN_BYTES_MAX`] of `log`.
pub fn rebuild(log: &PartitionLog) -> Result<PartitionProducers, LogError> {
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
    let mut window_offsets = window_estimate(log, end)?;
    for _attempt in 0..TAIL_SCAN_ATTEMPTS_MAX {
        let from = end.saturating_sub(window_offsets).max(start);
        if let Some(state) = scan(log, from, end)? {
            return Ok(state);
        }
        window_offsets = (window_offsets / 4).max(1);
    }
    tracing::warn!(
        topic = log.topic(),
        partition = log.partition(),
        "producer state not rebuilt: the log tail is denser than the scan bound"
    );
    Ok(PartitionProducers::default())
}

/// Offsets that hold about [`TAIL_SCAN_BYTES_MAX`] if the tail is as dense as its last batch.
fn window_estimate(log: &PartitionLog, end: i64) -> Result<i64, LogError> {
    let last = log.read(end - 1, 1)?;
    let batch = BatchSplitter::new(last.records).next();
    let Some(Ok(batch)) = batch else {
        return Ok(1);
    };
    let offsets = i64::from(batch.last_offset_delta())
        .saturating_add(1)
        .max(1);
    let size = i64::try_from(batch.size_bytes()).unwrap_or(i64::MAX).max(1);
    let bytes_per_offset = (size / offsets).max(1);
    let bytes_max = i64::try_from(TAIL_SCAN_BYTES_MAX).unwrap_or(i64::MAX);
    Ok((bytes_max / bytes_per_offset).max(1))
}

/// Replays every batch header from `from` to `end`; `None` when that exceeds the bound.
fn scan(log: &PartitionLog, from: i64, end: i64) -> Result<Option<PartitionProducers>, LogError> {
    let mut state = PartitionProducers::default();
    let mut offset = from;
    let mut scanned_bytes = 0usize;
    // Every pass advances `offset` past ≥ 1 batch or stops, and the byte bound caps passes.
    while offset < end {
        if scanned_bytes > TAIL_SCAN_BYTES_MAX {
            return Ok(None);
        }
        let read = log.read(offset, TAIL_READ_BYTES_MAX)?;
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
    Ok(Some(state))
}

fn replay(state: &mut PartitionProducers, batch: &RecordBatch) {
    if batch.is_control() {
        return;
    }
    // A batch the append path accepted always has a valid identity; skip anything else.
    if let Ok(Some(id)) = BatchIdentity::of(batch) {
        state.record(&id, batch.base_offset(), batch.last_offset());
    }
}
