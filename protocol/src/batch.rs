//! Zero-copy view of a Kafka record batch (magic 2), and in-place offset patching.
//!
//! On the wire and on disk a batch is:
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset            ┐ outside the CRC span: the broker patches
//!      8     4  batch_length           │ (bytes after this field)
//!     12     4  partition_leader_epoch ┘ these without touching the CRC
//!     16     1  magic (2)
//!     17     4  crc (CRC-32C of bytes 21..end)
//!     21     2  attributes (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  record_count
//!     61     …  records (possibly compressed)
//! ```
//!
//! [`RecordBatch`] checks the framing (sizes and magic) when it is made and reads every other
//! field lazily from the shared bytes; nothing is copied. The CRC is checked only on request
//! ([`RecordBatch::verify_crc`]) because it is the one per-batch cost that touches every byte.

use bytes::Bytes;

/// Bytes before `batch_length`'s span starts: base offset (8) + batch length (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Size of the fixed batch header, up to and including `record_count`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record format Runnel stores.
pub const MAGIC_V2: i8 = 2;

const OFFSET_BASE_OFFSET: usize = 0;
const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// The timestamp-type bit of a batch's attributes (LogAppendTime when set).
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// The transactional bit of a batch's attributes.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why bytes are not a well-formed record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("record batch length field {batch_length} is below the header size")]
    BadLength { batch_length: i32 },
    #[error("record batch magic {0} is not supported (only magic 2)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch compression codec {0} is unknown")]
    UnknownCompression(u8),
}

/// Compression codec of a batch's records section (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Decodes the codec id stored in the attributes.
    pub fn from_id(id: u8) -> Result<Compression, BatchError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The codec id stored in the attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// The attributes field for a batch with these properties (the inverse of
/// [`RecordBatch::compression`], [`RecordBatch::timestamp_type`], `is_transactional` and
/// `is_control`).
pub fn batch_attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
) -> i16 {
    let mut attributes = i16::from(compression.id());
    if timestamp_type == TimestampType::LogAppendTime {
        attributes |= ATTR_TIMESTAMP_TYPE;
    }
    if transactional {
        attributes |= ATTR_TRANSACTIONAL;
    }
    if control {
        attributes |= ATTR_CONTROL;
    }
    attributes
}

/// How a batch's timestamps were set (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Reads the total size (overhead included) of the batch that starts at `buf[0]` from its
/// 12-byte prefix, without needing the rest of the batch. `Ok(None)` when fewer than 12 bytes
/// are present, so a reader of a stream or file can tell "need more" from "garbage".
pub fn peek_batch_size(buf: &[u8]) -> Result<Option<usize>, BatchError> {
    let Some(length_bytes) = buf.get(OFFSET_BATCH_LENGTH..LOG_OVERHEAD_BYTES) else {
        return Ok(None);
    };
    let batch_length = i32::from_be_bytes(to_array(length_bytes));
    let min_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
    if batch_length < min_length {
        return Err(BatchError::BadLength { batch_length });
    }
    // Positive and at most i32::MAX, so it fits usize on every supported target.
    Ok(Some(LOG_OVERHEAD_BYTES + batch_length as usize))
}

/// The smallest batch length Kafka's batch iterator frames before it reads the magic: a
/// magic-0 message's bytes after its length field (`LegacyRecord.RECORD_OVERHEAD_V0`).
const FRAMED_LENGTH_MIN: i32 = 14;

/// A whole batch of any magic Kafka knows (0, 1 or 2) at the start of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFrame {
    /// The batch's bytes, overhead included.
    pub size_bytes: usize,
    pub magic: i8,
}

/// Frames the batch at `buf[0]` as Kafka's batch iterator (`ByteBufferLogInputStream`)
/// does, so a handler can answer what Kafka answers: `Ok(None)` when no whole batch is there
/// (too few bytes for its length and magic, or cut short); an error when its length is below
/// any magic's smallest or its magic is unknown (Kafka's `CorruptRecordException`). Only
/// the length and magic are read: a magic-2 batch still goes through [`RecordBatch::parse`].
pub fn peek_batch_frame(buf: &[u8]) -> Result<Option<BatchFrame>, BatchError> {
    let Some(length_bytes) = buf.get(OFFSET_BATCH_LENGTH..LOG_OVERHEAD_BYTES) else {
        return Ok(None);
    };
    let batch_length = i32::from_be_bytes(to_array(length_bytes));
    let length_bytes = match usize::try_from(batch_length) {
        Ok(length) if batch_length >= FRAMED_LENGTH_MIN => length,
        _ => return Err(BatchError::BadLength { batch_length }),
    };
    let Some(&magic) = buf.get(OFFSET_MAGIC) else {
        return Ok(None);
    };
    let magic = magic as i8;
    if !(0..=MAGIC_V2).contains(&magic) {
        return Err(BatchError::UnsupportedMagic(magic));
    }
    let size_bytes = LOG_OVERHEAD_BYTES.saturating_add(length_bytes);
    Ok((size_bytes <= buf.len()).then_some(BatchFrame { size_bytes, magic }))
}

/// One magic-2 record batch over shared bytes. Framing (size and magic) is valid by
/// construction; the CRC and record contents are not checked until asked.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("record_count", &self.record_count())
            .field("size_bytes", &self.size_bytes())
            .finish()
    }
}

impl RecordBatch {
    /// Views `bytes` as exactly one batch: its length field must account for every byte.
    pub fn parse(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        let size = peek_batch_size(&bytes)?.ok_or(BatchError::Truncated {
            needed_bytes: LOG_OVERHEAD_BYTES,
            available_bytes: bytes.len(),
        })?;
        if size != bytes.len() {
            // Longer input is a caller bug or trailing garbage; shorter is a truncation.
            return Err(BatchError::Truncated {
                needed_bytes: size,
                available_bytes: bytes.len(),
            });
        }
        let magic = bytes[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        debug_assert!(bytes.len() >= BATCH_HEADER_BYTES);
        Ok(RecordBatch { bytes })
    }

    pub fn base_offset(&self) -> i64 {
        self.i64_at(OFFSET_BASE_OFFSET)
    }
    /// Bytes after the `batch_length` field.
    pub fn batch_length(&self) -> i32 {
        self.i32_at(OFFSET_BATCH_LENGTH)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.i32_at(OFFSET_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[OFFSET_MAGIC] as i8
    }
    pub fn stored_crc(&self) -> u32 {
        u32::from_be_bytes(to_array(&self.bytes[OFFSET_CRC..OFFSET_CRC + 4]))
    }
    pub fn attributes(&self) -> i16 {
        self.i16_at(OFFSET_ATTRIBUTES)
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id((self.attributes() & ATTR_COMPRESSION_MASK) as u8)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(OFFSET_LAST_OFFSET_DELTA)
    }
    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    /// The offset after this batch: where the next batch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn base_timestamp(&self) -> i64 {
        self.i64_at(OFFSET_BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(OFFSET_MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        self.i64_at(OFFSET_PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        self.i16_at(OFFSET_PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(OFFSET_BASE_SEQUENCE)
    }
    pub fn record_count(&self) -> i32 {
        self.i32_at(OFFSET_RECORD_COUNT)
    }
    /// Total size on the wire and on disk, overhead included.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
    /// The records section (compressed when the codec is not `None`).
    pub fn records_bytes(&self) -> Bytes {
        self.bytes.slice(BATCH_HEADER_BYTES..)
    }
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// CRC-32C over attributes..end, as the batch says it should be.
    pub fn compute_crc(&self) -> u32 {
        crate::crc::crc32c(&self.bytes[OFFSET_ATTRIBUTES..])
    }

    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.stored_crc();
        let computed = self.compute_crc();
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }

    fn i16_at(&self, at: usize) -> i16 {
        i16::from_be_bytes(to_array(&self.bytes[at..at + 2]))
    }
    fn i32_at(&self, at: usize) -> i32 {
        i32::from_be_bytes(to_array(&self.bytes[at..at + 4]))
    }
    fn i64_at(&self, at: usize) -> i64 {
        i64::from_be_bytes(to_array(&self.bytes[at..at + 8]))
    }
}

/// Writes `base_offset` into the batch that starts at `batch[0]`. The field lies outside the
/// CRC span, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= BATCH_HEADER_BYTES, "not a batch header");
    batch[OFFSET_BASE_OFFSET..OFFSET_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (also outside the CRC span).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(batch.len() >= BATCH_HEADER_BYTES, "not a batch header");
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Writes the max timestamp, which lies inside the CRC span, and the CRC again over it.
/// For a producer that wrote a max timestamp its records contradict (sarama before 1.23
/// leaves it -1), as Kafka's broker sets it from the records on append.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp_ms: i64) {
    assert!(batch.len() >= BATCH_HEADER_BYTES, "not a batch header");
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8]
        .copy_from_slice(&max_timestamp_ms.to_be_bytes());
    let crc = crate::crc::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Writes an idempotent producer's id, epoch and base sequence, which lie inside the CRC span,
/// and the CRC again over them: a producer re-sequencing a batch it sealed earlier (after an
/// epoch bump, KIP-360) without building it again. CRC-32C over the whole batch, once.
pub fn set_producer_state(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    assert!(batch.len() >= BATCH_HEADER_BYTES, "not a batch header");
    batch[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[OFFSET_PRODUCER_EPOCH..OFFSET_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[OFFSET_BASE_SEQUENCE..OFFSET_BASE_SEQUENCE + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crate::crc::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Splits a records blob (a produce request's or a segment's bytes) into batches.
///
/// Yields `Err` once for the first malformed or truncated batch and then stops: bytes after a
/// bad length cannot be framed. A fetch response may legally end in a partial batch; callers
/// that read those use [`BatchSplitter::remaining`] to tell a clean end from a cut one.
pub struct BatchSplitter {
    rest: Bytes,
    failed: bool,
}

impl BatchSplitter {
    pub fn new(records: Bytes) -> BatchSplitter {
        BatchSplitter {
            rest: records,
            failed: false,
        }
    }

    /// Bytes not yet yielded (non-empty after an error or a truncated tail).
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }
}

impl Iterator for BatchSplitter {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let size = match peek_batch_size(&self.rest) {
            Ok(Some(size)) if size <= self.rest.len() => size,
            Ok(Some(size)) => {
                self.failed = true;
                return Some(Err(BatchError::Truncated {
                    needed_bytes: size,
                    available_bytes: self.rest.len(),
                }));
            }
            Ok(None) => {
                self.failed = true;
                return Some(Err(BatchError::Truncated {
                    needed_bytes: LOG_OVERHEAD_BYTES,
                    available_bytes: self.rest.len(),
                }));
            }
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let batch = self.rest.split_to(size);
        match RecordBatch::parse(batch) {
            Ok(batch) => Some(Ok(batch)),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn to_array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

/// Test and tool helper: an uncompressed batch header + records section with a correct CRC.
/// The records section is opaque here; `record_count` and `last_offset_delta` are trusted.
pub fn build_raw_batch(fields: &RawBatchFields<'_>) -> Bytes {
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + fields.records.len());
    out.resize(BATCH_HEADER_BYTES, 0);
    out.extend_from_slice(fields.records);
    write_batch_header(&mut out, fields);
    Bytes::from(out)
}

/// Fills the first [`BATCH_HEADER_BYTES`] of `batch` (header then records, as laid out on
/// the wire) from `fields` — lengths from the buffer itself, `fields.records` is not read —
/// and seals it with the CRC-32C of everything after the CRC field. Lets a builder encode
/// records straight after a reserved header and hand the buffer on without a copy.
pub fn write_batch_header(batch: &mut [u8], fields: &RawBatchFields<'_>) {
    assert!(
        batch.len() >= BATCH_HEADER_BYTES,
        "batch buffer shorter than its header"
    );
    let batch_length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    let mut at = 0usize;
    let mut put = |bytes: &[u8]| {
        batch[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&fields.base_offset.to_be_bytes());
    put(&batch_length.to_be_bytes());
    put(&fields.partition_leader_epoch.to_be_bytes());
    put(&[MAGIC_V2 as u8]);
    put(&[0; 4]); // CRC, filled below
    put(&fields.attributes.to_be_bytes());
    put(&fields.last_offset_delta.to_be_bytes());
    put(&fields.base_timestamp.to_be_bytes());
    put(&fields.max_timestamp.to_be_bytes());
    put(&fields.producer_id.to_be_bytes());
    put(&fields.producer_epoch.to_be_bytes());
    put(&fields.base_sequence.to_be_bytes());
    put(&fields.record_count.to_be_bytes());
    debug_assert_eq!(at, BATCH_HEADER_BYTES);
    let crc = crate::crc::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Header fields for [`build_raw_batch`].
#[derive(Debug, Clone)]
pub struct RawBatchFields<'a> {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
    pub records: &'a [u8],
}

impl Default for RawBatchFields<'_> {
    fn default() -> Self {
        RawBatchFields {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 1,
            records: &[],
        }
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
