//! Fuzz target `batch_parse`: any bytes as a records blob (a produce request's or a
//! segment's) through `RecordBatch::parse`, `BatchSplitter`, `verify_crc` and `records()`.
//! Must never panic, and decoding must stop at the declared record count.

use bytes::Bytes;
use runnel_protocol::batch::{BatchSplitter, RecordBatch};
use runnel_protocol::records::records;

/// Decompression bound: big enough for real seeds, small enough to keep runs fast.
const MAX_UNCOMPRESSED_BYTES: usize = 1 << 20;

pub fn run(data: &[u8]) {
    let blob = Bytes::copy_from_slice(data);
    let _ = RecordBatch::parse(blob.clone());
    for batch in BatchSplitter::new(blob).flatten() {
        let _ = batch.verify_crc();
        let Ok(iter) = records(&batch, MAX_UNCOMPRESSED_BYTES) else {
            continue;
        };
        let declared = usize::try_from(batch.record_count()).unwrap_or(0);
        // One more than declared: a trailing-bytes or count error may follow the last record.
        assert!(iter.count() <= declared + 1);
    }
}
