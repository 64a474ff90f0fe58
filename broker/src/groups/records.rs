//! What `__consumer_offsets` holds, byte for byte.
//!
//! Keys and values follow Kafka's own schemas (so operators' tools recognise them); all
//! integers big-endian, STRING = i16 length + UTF-8, NULLABLE_STRING uses length -1 for null,
//! BYTES = i32 length + bytes:
//!
//! ```text
//! offset commit key  (v1): version i16 = 1, group STRING, topic STRING, partition i32
//! group metadata key (v2): version i16 = 2, group STRING
//! offset value (v1): version 1, offset i64, metadata STRING, commit_ts i64, expire_ts i64
//! offset value (v3): version 3, offset i64, leader_epoch i32, metadata STRING, commit_ts i64
//! group value  (v3): version 3, protocol_type STRING, generation i32,
//!                    protocol NULLABLE_STRING, leader NULLABLE_STRING, state_ts i64,
//!                    members i32 count × { member_id STRING, instance_id NULLABLE_STRING,
//!                    client_id STRING, client_host STRING, rebalance_timeout i32,
//!                    session_timeout i32, subscription BYTES, assignment BYTES }
//! ```
//!
//! A null value is a tombstone (deleted offsets or group). Records are carried in plain
//! magic-2 batches built by `runnel_protocol::builder` and read back with
//! `runnel_protocol::records` (which also copes with batches compaction rewrote).
//! Every decoder is total: any bytes give a value or a [`CodecError`].

use bytes::{BufMut, Bytes, BytesMut};
use runnel_protocol::builder::{BatchBuilder, BatchFields, BuildError, NewRecord};

/// Why a `__consumer_offsets` record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("bad length {0}")]
    BadLength(i64),
    #[error("not UTF-8")]
    NotUtf8,
    #[error("unknown schema version {0}")]
    UnknownVersion(i16),
    #[error("record without a key")]
    NoKey,
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2–v4 with an explicit retention time.
    pub expire_timestamp_ms: Option<i64>,
}

/// A group's membership as of its last rebalance (or its becoming empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// One member inside [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl OffsetsKey {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.put_i16(1);
                put_string(&mut out, group);
                put_string(&mut out, topic);
                out.put_i32(*partition);
            }
            OffsetsKey::Group { group } => {
                out.put_i16(2);
                put_string(&mut out, group);
            }
        }
        out.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<OffsetsKey, CodecError> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Ok(OffsetsKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            2 => Ok(OffsetsKey::Group { group: r.string()? }),
            other => Err(CodecError::UnknownVersion(other)),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self.expire_timestamp_ms {
            Some(expire_ms) => {
                out.put_i16(1);
                out.put_i64(self.offset);
                put_string(&mut out, &self.metadata);
                out.put_i64(self.commit_timestamp_ms);
                out.put_i64(expire_ms);
            }
            None => {
                out.put_i16(3);
                out.put_i64(self.offset);
                out.put_i32(self.leader_epoch);
                put_string(&mut out, &self.metadata);
                out.put_i64(self.commit_timestamp_ms);
            }
        }
        out.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<OffsetValue, CodecError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string()?;
        let commit_timestamp_ms = r.i64()?;
        let expire_timestamp_ms = match version {
            1 => Some(r.i64()?),
            0 | 2 | 3 => None,
            other => return Err(CodecError::UnknownVersion(other)),
        };
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        put_string(&mut out, &self.protocol_type);
        out.put_i32(self.generation_id);
        put_nullable_string(&mut out, self.protocol_name.as_deref());
        put_nullable_string(&mut out, self.leader_id.as_deref());
        out.put_i64(self.state_timestamp_ms);
        out.put_i32(i32::try_from(self.members.len()).unwrap_or(i32::MAX));
        for m in &self.members {
            put_string(&mut out, &m.member_id);
            put_nullable_string(&mut out, m.group_instance_id.as_deref());
            put_string(&mut out, &m.client_id);
            put_string(&mut out, &m.client_host);
            out.put_i32(m.rebalance_timeout_ms);
            out.put_i32(m.session_timeout_ms);
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupMetadataValue, CodecError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if version != 3 {
            return Err(CodecError::UnknownVersion(version));
        }
        let mut value = GroupMetadataValue {
            protocol_type: r.string()?,
            generation_id: r.i32()?,
            protocol_name: r.nullable_string()?,
            leader_id: r.nullable_string()?,
            state_timestamp_ms: r.i64()?,
            members: Vec::new(),
        };
        let count = r.i32()?;
        // Each member needs at least 24 bytes, so a count beyond that is a lie, not an
        // allocation request.
        let count = r.checked_len(i64::from(count), 24)?;
        for _ in 0..count {
            value.members.push(MemberMetadataValue {
                member_id: r.string()?,
                group_instance_id: r.nullable_string()?,
                client_id: r.string()?,
                client_host: r.string()?,
                rebalance_timeout_ms: r.i32()?,
                session_timeout_ms: r.i32()?,
                subscription: r.bytes()?,
                assignment: r.bytes()?,
            });
        }
        Ok(value)
    }
}

fn put_string(out: &mut BytesMut, s: &str) {
    // Wire strings (group ids, topics, client ids) have i16 lengths, metadata is capped far
    // lower and member ids use a capped prefix, so this does not cut; if it ever had to, it
    // cuts on a char boundary so the record still decodes.
    let mut len = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    out.put_i16(i16::try_from(len).unwrap_or(i16::MAX));
    out.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    out.put_slice(b);
}

/// A bounds-checked cursor.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array("i16")?))
    }
    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array("i32")?))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array("i64")?))
    }
    /// `len` items of at least `item_bytes_min` each must fit in what is left.
    fn checked_len(&self, len: i64, item_bytes_min: usize) -> Result<usize, CodecError> {
        let n = usize::try_from(len).map_err(|_| CodecError::BadLength(len))?;
        if n.saturating_mul(item_bytes_min.max(1)) > self.0.len() {
            return Err(CodecError::BadLength(len));
        }
        Ok(n)
    }
    fn nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let n = self.checked_len(i64::from(len), 1)?;
        let raw = self.take(n, "string")?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| CodecError::NotUtf8)
    }
    fn string(&mut self) -> Result<String, CodecError> {
        self.nullable_string()?.ok_or(CodecError::BadLength(-1))
    }
    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let len = self.i32()?;
        let n = self.checked_len(i64::from(len), 1)?;
        Ok(Bytes::copy_from_slice(self.take(n, "bytes")?))
    }
}

/// One record of a batch: key, and value (`None`: tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// An uncompressed magic-2 batch holding `entries` in order, all stamped `timestamp_ms`, of
/// at most `batch_bytes_max` bytes.
pub fn build_batch(
    entries: &[KeyValue],
    timestamp_ms: i64,
    batch_bytes_max: usize,
) -> Result<Bytes, BuildError> {
    let mut builder = BatchBuilder::new(BatchFields::default(), batch_bytes_max);
    for entry in entries {
        builder.push(&NewRecord {
            timestamp: timestamp_ms,
            key: Some(&entry.key),
            value: entry.value.as_deref(),
            headers: &[],
        })?;
    }
    builder.finish()
}

/// `entries` in order as as many batches as it takes to keep each within `batch_bytes_max`:
/// how a write that need not be atomic (a large group's tombstones) gets past the one-batch
/// bound. Every batch but the last is full; an entry too large for a batch of its own fails
/// with [`BuildError::TooLarge`], as it would in [`build_batch`].
pub fn build_batches(
    entries: &[KeyValue],
    timestamp_ms: i64,
    batch_bytes_max: usize,
) -> Result<Vec<Bytes>, BuildError> {
    let new_builder = || BatchBuilder::new(BatchFields::default(), batch_bytes_max);
    let mut batches = Vec::new();
    let mut builder = new_builder();
    for entry in entries {
        let record = NewRecord {
            timestamp: timestamp_ms,
            key: Some(&entry.key),
            value: entry.value.as_deref(),
            headers: &[],
        };
        match builder.push(&record) {
            Ok(_) => {}
            // A refused push adds nothing: close this batch and put the entry in the next.
            Err(BuildError::TooLarge { .. }) if !builder.is_empty() => {
                let full = std::mem::replace(&mut builder, new_builder());
                batches.push(full.finish()?);
                builder.push(&record)?;
            }
            Err(error) => return Err(error),
        }
    }
    if !builder.is_empty() {
        batches.push(builder.finish()?);
    }
    debug_assert!(batches.len() <= entries.len());
    Ok(batches)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use runnel_protocol::batch::RecordBatch;

    #[test]
    fn keys_and_values_round_trip() {
        let key = OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(OffsetsKey::decode(&key.encode()).unwrap(), key);
        let key = OffsetsKey::Group { group: "g".into() };
        assert_eq!(OffsetsKey::decode(&key.encode()).unwrap(), key);
        for expire in [None, Some(99)] {
            let value = OffsetValue {
                offset: 42,
                leader_epoch: if expire.is_some() { -1 } else { 7 },
                metadata: "m".into(),
                commit_timestamp_ms: 5,
                expire_timestamp_ms: expire,
            };
            assert_eq!(OffsetValue::decode(&value.encode()).unwrap(), value);
        }
        let group = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation_id: 4,
            protocol_name: Some("range".into()),
            leader_id: None,
            state_timestamp_ms: 77,
            members: vec![MemberMetadataValue {
                member_id: "m-1".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::new(),
            }],
        };
        assert_eq!(GroupMetadataValue::decode(&group.encode()).unwrap(), group);
    }

    #[test]
    fn batch_round_trips_with_tombstones() {
        let entries = vec![
            KeyValue {
                key: Bytes::from_static(b"k1"),
                value: Some(Bytes::from_static(b"v1")),
            },
            KeyValue {
                key: Bytes::from_static(b"k2"),
                value: None,
            },
        ];
        let batch = RecordBatch::parse(build_batch(&entries, 1000, 1 << 20).unwrap()).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.record_count(), 2);
        let records: Vec<_> = runnel_protocol::records::records(&batch, 1 << 20)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].offset, records[0].key.as_deref()),
            (0, Some(&b"k1"[..]))
        );
        assert_eq!(records[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!((records[1].offset, records[1].value.clone()), (1, None));
        assert!(
            build_batch(&entries, 1000, 64).is_err(),
            "the size bound holds"
        );
    }

    #[test]
    fn batches_split_at_the_bound_and_keep_the_order() {
        let entries: Vec<KeyValue> = (0..50u32)
            .map(|i| KeyValue {
                key: Bytes::from(format!("key-{i:03}")),
                value: (i % 2 == 0).then(|| Bytes::from(vec![b'v'; 40])),
            })
            .collect();
        let batch_bytes_max = 400;
        assert!(build_batch(&entries, 1000, batch_bytes_max).is_err());
        let batches = build_batches(&entries, 1000, batch_bytes_max).unwrap();
        assert!(batches.len() > 1);
        let mut keys = Vec::new();
        for bytes in batches {
            assert!(bytes.len() <= batch_bytes_max);
            let batch = RecordBatch::parse(bytes).unwrap();
            batch.verify_crc().unwrap();
            for record in runnel_protocol::records::records(&batch, 1 << 20).unwrap() {
                keys.push(record.unwrap().key.unwrap());
            }
        }
        let expected: Vec<Bytes> = entries.iter().map(|e| e.key.clone()).collect();
        assert_eq!(keys, expected);
        assert!(build_batches(&[], 1000, batch_bytes_max)
            .unwrap()
            .is_empty());
        let huge = KeyValue {
            key: Bytes::from(vec![b'k'; 1000]),
            value: None,
        };
        assert!(matches!(
            build_batches(&[huge], 1000, batch_bytes_max),
            Err(BuildError::TooLarge { .. })
        ));
    }

    #[test]
    fn decoders_are_total_on_garbage() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = OffsetsKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
        }
        let good = OffsetValue {
            offset: 1,
            leader_epoch: 1,
            metadata: "abc".into(),
            commit_timestamp_ms: 1,
            expire_timestamp_ms: None,
        }
        .encode();
        for cut in 0..good.len() {
            assert!(OffsetValue::decode(&good[..cut]).is_err());
        }
    }
}
