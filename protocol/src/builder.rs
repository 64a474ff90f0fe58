//! Builds one complete magic-2 record batch: records are encoded as they are pushed, and
//! [`BatchBuilder::finish`] compresses the records section, fills in the header (lengths,
//! last offset delta, base/max timestamps, attributes) and seals it with its CRC-32C.
//!
//! Used by tests, by the client's producer and by compaction (which keeps offset gaps, hence
//! [`BatchBuilder::push_at`]). The batch's size is bounded twice: the uncompressed records
//! section by `max_uncompressed_bytes` as records are pushed (so readers with that bound can
//! decompress it), and the finished batch by `max_batch_bytes`.

use bytes::Bytes;

use crate::batch::{
    batch_attributes, write_batch_header, Compression, RawBatchFields, RecordBatch, TimestampType,
    BATCH_HEADER_BYTES,
};
use crate::records::{codec, varint, Record};

/// Batch-level fields of the batch being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFields {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub compression: Compression,
    pub timestamp_type: TimestampType,
    pub transactional: bool,
    pub control: bool,
}

impl BatchFields {
    /// The fields of an existing data batch, to rebuild its records in `compression` (the
    /// cleaner keeping some records, the broker recompressing for `compression.type`).
    pub fn of(batch: &RecordBatch, compression: Compression) -> BatchFields {
        BatchFields {
            base_offset: batch.base_offset(),
            partition_leader_epoch: batch.partition_leader_epoch(),
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            compression,
            timestamp_type: batch.timestamp_type(),
            transactional: batch.is_transactional(),
            control: false,
        }
    }
}

impl Default for BatchFields {
    /// A plain, non-idempotent, uncompressed CreateTime batch at offset 0.
    fn default() -> Self {
        BatchFields {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
        }
    }
}

/// A record to add, borrowing its bytes from the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRecord<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [NewHeader<'a>],
}

/// A header to add: key bytes (a string for Kafka clients) and a nullable value.
#[derive(Debug, Clone, Copy)]
pub struct NewHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Why a record could not be added or the batch could not be finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("batch would be {size_bytes} bytes, above the {max_bytes}-byte limit")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    #[error(
        "offset delta {offset_delta} does not follow the previous delta {last_offset_delta:?}"
    )]
    OffsetDeltaOutOfOrder {
        offset_delta: i64,
        last_offset_delta: Option<i32>,
    },
    #[error("{0} is longer than a record field can be (i32::MAX bytes)")]
    FieldTooLong(&'static str),
    #[error("a batch needs at least one record")]
    Empty,
    #[error("compression failed: {0}")]
    Compress(String),
}

/// Accumulates encoded records for one batch. Owns its records section buffer (at most
/// `max_uncompressed_bytes` plus the header); not shared between threads while building.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    fields: BatchFields,
    max_batch_bytes: usize,
    max_uncompressed_bytes: usize,
    section: Vec<u8>,
    record_count: i32,
    last_offset_delta: Option<i32>,
    /// The header's last offset delta is at least this (see `with_last_offset_delta_min`).
    header_last_offset_delta_min: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// The codec's level (`None`: its default); see [`codec::compress_into`].
    compression_level: Option<i32>,
    /// The base timestamp when set (see `with_base_timestamp`); else the first record's.
    base_timestamp_fixed: Option<i64>,
}

impl BatchBuilder {
    /// A builder whose finished batch, header included, is at most `max_batch_bytes`; the
    /// uncompressed records section is held to the same bound until
    /// [`with_max_uncompressed_bytes`](Self::with_max_uncompressed_bytes) says otherwise.
    pub fn new(fields: BatchFields, max_batch_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            fields,
            max_batch_bytes,
            max_uncompressed_bytes: max_batch_bytes,
            section: vec![0; BATCH_HEADER_BYTES],
            record_count: 0,
            last_offset_delta: None,
            header_last_offset_delta_min: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            compression_level: None,
            base_timestamp_fixed: None,
        }
    }

    /// The batch's base timestamp is `base_timestamp` rather than its first record's: a
    /// batch rebuilt with its original base keeps every record's timestamp delta, so its
    /// records section is no larger than the original's (what a broker recompressing a
    /// batch counts on to size its buffers).
    pub fn with_base_timestamp(mut self, base_timestamp: i64) -> BatchBuilder {
        self.base_timestamp_fixed = Some(base_timestamp);
        self
    }

    /// Compresses at `level` of the batch's codec (a broker applying
    /// `compression.<codec>.level`).
    pub fn with_compression_level(mut self, level: i32) -> BatchBuilder {
        self.compression_level = Some(level);
        self
    }

    /// The finished header's last offset delta is at least `delta` even when the last record
    /// pushed has a smaller one: a batch the log cleaner rebuilds keeps its original last
    /// offset (Kafka's `overrideLastOffset`), since for an idempotent producer base sequence
    /// + last offset delta is the batch's last sequence.
    pub fn with_last_offset_delta_min(mut self, delta: i32) -> BatchBuilder {
        self.header_last_offset_delta_min = delta;
        self
    }

    /// Lets a compressed batch hold up to `max_uncompressed_bytes` (header included) before
    /// compression; an uncompressed batch is still held to `max_batch_bytes`.
    pub fn with_max_uncompressed_bytes(mut self, max_uncompressed_bytes: usize) -> BatchBuilder {
        self.max_uncompressed_bytes = max_uncompressed_bytes;
        self
    }

    /// Reserves room for a batch of `capacity_bytes` (header included) up front, so a
    /// producer filling large batches does not grow (copy) the buffer record by record.
    pub fn with_capacity_bytes(mut self, capacity_bytes: usize) -> BatchBuilder {
        let capacity_bytes = capacity_bytes.min(self.max_uncompressed_bytes);
        self.section
            .reserve(capacity_bytes.saturating_sub(self.section.len()));
        self
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// The idempotent producer's id, epoch and base sequence the finished header carries: a
    /// producer learns the base sequence only when it seals the batch, in the partition's order.
    pub fn set_producer_state(&mut self, producer_id: i64, epoch: i16, base_sequence: i32) {
        self.fields.producer_id = producer_id;
        self.fields.producer_epoch = epoch;
        self.fields.base_sequence = base_sequence;
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Size of the batch if it were finished uncompressed now.
    pub fn uncompressed_size_bytes(&self) -> usize {
        self.section.len()
    }

    /// Adds a record at the next offset delta (0 for the first). Returns its offset delta.
    /// On error nothing is added, so a producer can finish this batch and start another.
    pub fn push(&mut self, record: &NewRecord<'_>) -> Result<i32, BuildError> {
        let offset_delta = self
            .last_offset_delta
            .map_or(Some(0), |last| last.checked_add(1));
        let Some(offset_delta) = offset_delta else {
            return Err(BuildError::OffsetDeltaOutOfOrder {
                offset_delta: i64::from(i32::MAX) + 1,
                last_offset_delta: self.last_offset_delta,
            });
        };
        self.push_at(offset_delta, record)?;
        Ok(offset_delta)
    }

    /// Adds a record at an explicit offset delta, which must be above every earlier one
    /// (compaction keeps the gaps left by removed records).
    pub fn push_at(&mut self, offset_delta: i32, record: &NewRecord<'_>) -> Result<(), BuildError> {
        let headers = record
            .headers
            .iter()
            .map(|header| (header.key, header.value));
        self.append(
            offset_delta,
            record.timestamp,
            record.key,
            record.value,
            headers,
        )
    }

    /// Re-adds a decoded record at its own absolute offset (relative to this batch's base
    /// offset); what compaction does with the records it keeps.
    pub fn push_record(&mut self, record: &Record) -> Result<(), BuildError> {
        let delta = record.offset.wrapping_sub(self.fields.base_offset);
        let offset_delta = i32::try_from(delta).map_err(|_| BuildError::OffsetDeltaOutOfOrder {
            offset_delta: delta,
            last_offset_delta: self.last_offset_delta,
        })?;
        let headers = record
            .headers
            .iter()
            .map(|header| (&header.key[..], header.value.as_deref()));
        self.append(
            offset_delta,
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            headers,
        )
    }

    /// Checks order and bounds, then encodes one record into the section.
    fn append<'h>(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)> + Clone,
    ) -> Result<(), BuildError> {
        if offset_delta < 0
            || self
                .last_offset_delta
                .is_some_and(|last| offset_delta <= last)
        {
            return Err(BuildError::OffsetDeltaOutOfOrder {
                offset_delta: i64::from(offset_delta),
                last_offset_delta: self.last_offset_delta,
            });
        }
        if self.record_count == i32::MAX {
            return Err(BuildError::FieldTooLong("record count"));
        }
        let base_timestamp = match self.base_timestamp_fixed {
            Some(base_timestamp) => base_timestamp,
            None if self.is_empty() => timestamp,
            None => self.base_timestamp,
        };
        let timestamp_delta = timestamp.wrapping_sub(base_timestamp);
        let body = RecordBody {
            timestamp_delta,
            offset_delta,
            key,
            value,
        };
        let body_bytes = body.size_bytes(headers.clone())?;
        let body_length =
            i32::try_from(body_bytes).map_err(|_| BuildError::FieldTooLong("record"))?;
        let record_bytes = varint::varint_len(body_length) + body_bytes;
        self.check_room(record_bytes)?;

        let start = self.section.len();
        self.section.reserve(record_bytes);
        varint::put_varint(&mut self.section, body_length);
        body.encode(headers, &mut self.section);
        debug_assert_eq!(self.section.len() - start, record_bytes);

        self.base_timestamp = base_timestamp;
        self.max_timestamp = if self.is_empty() {
            timestamp
        } else {
            self.max_timestamp.max(timestamp)
        };
        self.record_count += 1;
        self.last_offset_delta = Some(offset_delta);
        Ok(())
    }

    fn check_room(&self, record_bytes: usize) -> Result<(), BuildError> {
        let size_bytes = self.uncompressed_size_bytes().saturating_add(record_bytes);
        let max_bytes = match self.fields.compression {
            Compression::None => self.max_batch_bytes.min(self.max_uncompressed_bytes),
            _ => self.max_uncompressed_bytes,
        };
        if size_bytes > max_bytes {
            return Err(BuildError::TooLarge {
                size_bytes,
                max_bytes,
            });
        }
        Ok(())
    }

    /// Compresses the records and emits the finished batch with its CRC-32C.
    pub fn finish(self) -> Result<Bytes, BuildError> {
        let Some(last_offset_delta) = self.last_offset_delta else {
            return Err(BuildError::Empty);
        };
        // The section starts with room for the header; an uncompressed batch is finished in
        // place, a compressed one is compressed straight behind a fresh header's room (no
        // second copy of the compressed records), its worst-case room trimmed after.
        let mut batch = match self.fields.compression {
            Compression::None => self.section,
            codec => {
                let records = &self.section[BATCH_HEADER_BYTES..];
                let mut batch = vec![0; BATCH_HEADER_BYTES];
                codec::compress_into(codec, self.compression_level, records, &mut batch)
                    .map_err(|e| BuildError::Compress(e.to_string()))?;
                batch.shrink_to_fit();
                batch
            }
        };
        let size_bytes = batch.len();
        // The batch length field is an i32, whatever bound the caller gave.
        let max_bytes = self.max_batch_bytes.min(i32::MAX as usize);
        if size_bytes > max_bytes {
            return Err(BuildError::TooLarge {
                size_bytes,
                max_bytes,
            });
        }
        let fields = &self.fields;
        let attributes = batch_attributes(
            fields.compression,
            fields.timestamp_type,
            fields.transactional,
            fields.control,
        );
        write_batch_header(
            &mut batch,
            &RawBatchFields {
                base_offset: fields.base_offset,
                partition_leader_epoch: fields.partition_leader_epoch,
                attributes,
                last_offset_delta: last_offset_delta.max(self.header_last_offset_delta_min),
                base_timestamp: self.base_timestamp,
                max_timestamp: self.max_timestamp,
                producer_id: fields.producer_id,
                producer_epoch: fields.producer_epoch,
                base_sequence: fields.base_sequence,
                record_count: self.record_count,
                records: &[],
            },
        );
        let batch = Bytes::from(batch);
        debug_assert_eq!(batch.len(), size_bytes);
        Ok(batch)
    }
}

/// The fixed fields of one record body; headers are passed alongside as an iterator.
struct RecordBody<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

impl RecordBody<'_> {
    /// Encoded size after the length prefix.
    fn size_bytes<'h>(
        &self,
        headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>,
    ) -> Result<usize, BuildError> {
        let mut size = 1 // attributes
            + varint::varlong_len(self.timestamp_delta)
            + varint::varint_len(self.offset_delta)
            + nullable_size(self.key, "record key")?
            + nullable_size(self.value, "record value")?;
        let mut header_count: i32 = 0;
        for (key, value) in headers {
            header_count = header_count
                .checked_add(1)
                .ok_or(BuildError::FieldTooLong("header count"))?;
            size = size.saturating_add(nullable_size(Some(key), "header key")?);
            size = size.saturating_add(nullable_size(value, "header value")?);
        }
        Ok(size.saturating_add(varint::varint_len(header_count)))
    }

    /// Writes the body; lengths were checked by `size_bytes`, so the casts cannot truncate.
    fn encode<'h>(
        &self,
        headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)> + Clone,
        out: &mut Vec<u8>,
    ) {
        out.push(0); // attributes: unused in magic 2
        varint::put_varlong(out, self.timestamp_delta);
        varint::put_varint(out, self.offset_delta);
        put_nullable(out, self.key);
        put_nullable(out, self.value);
        varint::put_varint(out, headers.clone().count() as i32);
        for (key, value) in headers {
            put_nullable(out, Some(key));
            put_nullable(out, value);
        }
    }
}

fn nullable_size(bytes: Option<&[u8]>, field: &'static str) -> Result<usize, BuildError> {
    let Some(bytes) = bytes else {
        return Ok(varint::varint_len(-1));
    };
    let length = i32::try_from(bytes.len()).map_err(|_| BuildError::FieldTooLong(field))?;
    Ok(varint::varint_len(length) + bytes.len())
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint::put_varint(out, -1),
        Some(bytes) => {
            varint::put_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests;
