//! Bounded, decompressing iterator over the records of one batch.
//!
//! `records(batch, max_uncompressed_bytes)` yields each record with its absolute offset and
//! timestamp. Decompression output is capped at `max_uncompressed_bytes` (a bomb is an error,
//! see [`codec`]); an uncompressed batch is read in place and every key, value and header is
//! a sub-slice of the batch's own `Bytes`.
//!
//! Record layout inside the (decompressed) records section, all varints zig-zag:
//!
//! ```text
//! length varint (bytes after this field)   attributes i8 (unused)
//! timestampDelta varlong                   offsetDelta varint
//! keyLength varint (-1 = null) + key       valueLength varint (-1 = null) + value
//! headerCount varint, then per header: keyLength varint + key, valueLength varint + value
//! ```
//!
//! Every length is checked against the bytes present before slicing, and counts are checked
//! against the bytes left before anything is allocated for them.

pub mod codec;
pub(crate) mod varint;

use bytes::Bytes;

use crate::batch::{BatchError, RecordBatch, TimestampType};

/// One record, with offsets and timestamps made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// A record header: the key is a string on the wire, the value may be null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Why the records of a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("decompressed records exceed {max_bytes} bytes")]
    TooLarge { max_bytes: usize },
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("batch declares {declared} records but its records section holds {found}")]
    CountMismatch { declared: i32, found: usize },
}

/// Smallest possible encoded record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each.
const RECORD_MIN_BYTES: usize = 7;
/// Smallest possible encoded header: key length and value length, one byte each.
const HEADER_MIN_BYTES: usize = 2;

/// Iterator over the records of one batch; see [`records`]. Owns the (decompressed) records
/// section as one `Bytes`; yields at most `record_count` records, then checks nothing is left.
/// After the first error it yields nothing more: bytes after a bad record cannot be framed.
pub struct Records {
    section: Bytes,
    position: usize,
    records_left: usize,
    records_declared: i32,
    base_offset: i64,
    base_timestamp: i64,
    /// `Some(max_timestamp)` for LogAppendTime batches: it overrides every record's own.
    log_append_time: Option<i64>,
    done: bool,
}

impl Iterator for Records {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes_left = self.section.len() - self.position;
        if self.records_left == 0 {
            self.done = true;
            return (bytes_left != 0)
                .then_some(Err(RecordError::Malformed("bytes after the last record")));
        }
        if bytes_left == 0 {
            self.done = true;
            let found = self.declared_count() - self.records_left;
            return Some(Err(RecordError::CountMismatch {
                declared: self.records_declared,
                found,
            }));
        }
        let result = self.decode_next();
        match result {
            Ok(_) => self.records_left -= 1,
            Err(_) => self.done = true,
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(self.records_left.saturating_add(1)))
        }
    }
}

/// Once done (all records read, or an error yielded) it stays done.
impl std::iter::FusedIterator for Records {}

impl Records {
    /// Bytes of the (decompressed) records section this iterator holds.
    pub fn section_bytes(&self) -> usize {
        self.section.len()
    }

    fn declared_count(&self) -> usize {
        usize::try_from(self.records_declared).unwrap_or(0)
    }

    /// Decodes the record at `position` and moves past it.
    fn decode_next(&mut self) -> Result<Record, RecordError> {
        let mut cursor = Cursor {
            bytes: &self.section,
            position: self.position,
            end: self.section.len(),
        };
        let length = cursor
            .length("record length")?
            .ok_or(RecordError::Malformed("null record length"))?;
        let body_end = cursor.position + length;
        let mut body = Cursor {
            bytes: &self.section,
            position: cursor.position,
            end: body_end,
        };
        let fields = RecordFields::decode(&mut body)?;
        if body.position != body_end {
            return Err(RecordError::Malformed(
                "record length does not match its fields",
            ));
        }
        self.position = body_end;
        let offset = self
            .base_offset
            .checked_add(i64::from(fields.offset_delta))
            .ok_or(RecordError::Malformed("record offset overflows"))?;
        // Wrapping mirrors how Kafka adds the delta; the builder subtracts the same way, so
        // any i64 timestamp survives the round trip.
        let timestamp = self
            .log_append_time
            .unwrap_or_else(|| self.base_timestamp.wrapping_add(fields.timestamp_delta));
        Ok(Record {
            offset,
            timestamp,
            key: fields.key,
            value: fields.value,
            headers: fields.headers,
        })
    }
}

/// The fields of one record body, before offsets and timestamps are made absolute.
struct RecordFields {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<RecordHeader>,
}

impl RecordFields {
    fn decode(body: &mut Cursor<'_>) -> Result<RecordFields, RecordError> {
        let _attributes = body.byte("record attributes")?;
        let timestamp_delta = body.varlong("timestamp delta")?;
        let offset_delta = body.varint("offset delta")?;
        let key = body.nullable_bytes("record key")?;
        let value = body.nullable_bytes("record value")?;
        let header_count = body.varint("header count")?;
        let header_count = usize::try_from(header_count)
            .map_err(|_| RecordError::Malformed("negative header count"))?;
        if header_count > body.remaining() / HEADER_MIN_BYTES {
            return Err(RecordError::Malformed(
                "header count exceeds the record's bytes",
            ));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let key = body
                .nullable_bytes("header key")?
                .ok_or(RecordError::Malformed("null header key"))?;
            let value = body.nullable_bytes("header value")?;
            headers.push(RecordHeader { key, value });
        }
        Ok(RecordFields {
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }
}

/// A read position inside `bytes[..end]`; slices come out as zero-copy `Bytes`.
struct Cursor<'a> {
    bytes: &'a Bytes,
    position: usize,
    end: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.end - self.position
    }

    fn window(&self) -> &[u8] {
        &self.bytes[self.position..self.end]
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, RecordError> {
        let byte = *self.window().first().ok_or(RecordError::Malformed(field))?;
        self.position += 1;
        Ok(byte)
    }

    fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let (value, used) =
            varint::read_varint(self.window()).ok_or(RecordError::Malformed(field))?;
        self.position += used;
        Ok(value)
    }

    fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let (value, used) =
            varint::read_varlong(self.window()).ok_or(RecordError::Malformed(field))?;
        self.position += used;
        Ok(value)
    }

    /// A varint length that must fit in the bytes left: `None` for -1 (null).
    fn length(&mut self, field: &'static str) -> Result<Option<usize>, RecordError> {
        let length = self.varint(field)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| RecordError::Malformed(field))?;
        if length > self.remaining() {
            return Err(RecordError::Malformed(field));
        }
        Ok(Some(length))
    }

    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, RecordError> {
        let Some(length) = self.length(field)? else {
            return Ok(None);
        };
        let slice = self.bytes.slice(self.position..self.position + length);
        self.position += length;
        Ok(Some(slice))
    }
}

/// Decompresses (bounded by `max_uncompressed_bytes`) and iterates the records of `batch`.
///
/// The bound applies to decompression output; an uncompressed batch is already in memory and
/// is read in place whatever its size. The CRC is not checked here: call
/// [`RecordBatch::verify_crc`] first where it matters. Errors here are about the whole batch
/// (codec, bound, impossible record count); errors in one record come from the iterator.
pub fn records(batch: &RecordBatch, max_uncompressed_bytes: usize) -> Result<Records, RecordError> {
    let records_declared = batch.record_count();
    let records_left = usize::try_from(records_declared)
        .map_err(|_| RecordError::Malformed("negative record count"))?;
    let section = codec::decompress(
        batch.compression()?,
        &batch.records_bytes(),
        max_uncompressed_bytes,
    )?;
    if records_left > section.len() / RECORD_MIN_BYTES {
        return Err(RecordError::Malformed(
            "record count exceeds what the records section can hold",
        ));
    }
    let log_append_time = match batch.timestamp_type() {
        TimestampType::LogAppendTime => Some(batch.max_timestamp()),
        TimestampType::CreateTime => None,
    };
    Ok(Records {
        section,
        position: 0,
        records_left,
        records_declared,
        base_offset: batch.base_offset(),
        base_timestamp: batch.base_timestamp(),
        log_append_time,
        done: false,
    })
}

#[cfg(test)]
mod tests;
