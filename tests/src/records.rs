//! Record batches for tests: build with kafka-protocol's encoder, decode fetched bytes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record's key and value (either may be null).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One magic-2 batch holding `(key, value)` records with timestamps `timestamp_ms + i`.
pub fn batch_at(records: &[KeyValue<'_>], timestamp_ms: i64) -> Bytes {
    batch_with(records, timestamp_ms, Compression::None)
}

/// Like [`batch_at`] with a compression codec.
pub fn batch_with(records: &[KeyValue<'_>], timestamp_ms: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence` changes; keeping it
            // constant (and the first sequence -1, "none") yields one batch for all records.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms + i as i64,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf.freeze()
}

/// One idempotent batch of `values` from `producer_id` at `epoch`, sequences `first_seq..`,
/// timestamps from 1_000 (a producer idle since 1970: expired wherever the broker checks).
pub fn idempotent_batch(producer_id: i64, epoch: i16, first_seq: i32, values: &[&str]) -> Bytes {
    idempotent_batch_at(producer_id, epoch, first_seq, values, 1_000)
}

/// [`idempotent_batch`] with timestamps from `timestamp_ms` (e.g. [`now_ms`], for a
/// producer the broker must not expire).
pub fn idempotent_batch_at(
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    values: &[&str],
    timestamp_ms: i64,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: timestamp_ms + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    buf.freeze()
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit i64")
}

/// One batch of unkeyed values, timestamps from 1_000.
pub fn values(values: &[&str]) -> Bytes {
    let records: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    batch_at(&records, 1_000)
}

/// One batch of keyed values, timestamps from 1_000.
pub fn keyed(pairs: &[(&str, &str)]) -> Bytes {
    let records: Vec<KeyValue<'_>> = pairs
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    batch_at(&records, 1_000)
}

/// Several batches back to back in one records blob.
pub fn concat(batches: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for batch in batches {
        out.extend_from_slice(batch);
    }
    out.freeze()
}

/// Every record in a fetched records blob (a cut last batch is ignored, as clients do).
pub fn decode(records: &Bytes) -> Vec<Record> {
    let mut whole = records.clone();
    let mut end = 0usize;
    while let Ok(Some(size)) = runnel_protocol::batch::peek_batch_size(&records[end..]) {
        if end + size > records.len() {
            break;
        }
        end += size;
    }
    whole.truncate(end);
    RecordBatchDecoder::decode_all(&mut whole)
        .expect("decode fetched batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// The values of [`decode`] as strings.
pub fn decode_values(records: &Bytes) -> Vec<String> {
    decode(records)
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned())
        .collect()
}
