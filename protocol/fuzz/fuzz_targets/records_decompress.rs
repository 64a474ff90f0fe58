//! Fuzz target `records_decompress`: decompression and record decoding behind each codec.
//!
//! Input layout: byte 0 bits 0-2 pick the codec (mod 5), bit 3 asks to compress the rest
//! first (so garbage *records* reach the record parser through valid compression), byte 1 is
//! the declared record count, the rest is the records section. Must never panic, never
//! return more than the bound, and a bomb must be `TooLarge`.

use bytes::Bytes;
use runnel_protocol::batch::{build_raw_batch, Compression, RawBatchFields, RecordBatch};
use runnel_protocol::records::{codec, records};

const MAX_UNCOMPRESSED_BYTES: usize = 256 * 1024;

pub fn run(data: &[u8]) {
    let [mode, count, section @ ..] = data else {
        return;
    };
    let Ok(compression) = Compression::from_id((mode & 0x07) % 5) else {
        return;
    };
    let packed;
    let section = if mode & 0x08 != 0 {
        let Ok(bytes) = codec::compress(compression, section) else {
            return;
        };
        packed = bytes;
        &packed[..]
    } else {
        section
    };
    let section_bytes = Bytes::copy_from_slice(section);
    if let Ok(output) = codec::decompress(compression, &section_bytes, MAX_UNCOMPRESSED_BYTES) {
        assert!(output.len() <= MAX_UNCOMPRESSED_BYTES);
    }
    let raw = build_raw_batch(&RawBatchFields {
        attributes: i16::from(compression.id()),
        record_count: i32::from(*count),
        records: section,
        ..RawBatchFields::default()
    });
    let Ok(batch) = RecordBatch::parse(raw) else {
        return;
    };
    if let Ok(iter) = records(&batch, MAX_UNCOMPRESSED_BYTES) {
        assert!(iter.count() <= usize::from(*count) + 1);
    }
}
