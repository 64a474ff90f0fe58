//! Bytes and records in and out of one partition: four relaxed atomics, bumped once per
//! request (never per record) by the produce and fetch handlers and summed per topic when
//! `/metrics` is rendered. They count since the broker started (a Prometheus counter may
//! reset on restart; `rate()` handles that).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use runnel_protocol::batch::BatchSplitter;

/// One partition's traffic since start.
#[derive(Debug, Default)]
pub struct TrafficCounters {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

/// A copy of [`TrafficCounters`] at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

impl TrafficCounters {
    /// An append of `bytes` holding `records`.
    pub fn add_in(&self, bytes: u64, records: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// A fetch answer of `bytes` holding `records` (counted by the caller: batches sent from
    /// a file are not in memory; [`count_records`] counts those that are).
    pub fn add_out(&self, bytes: u64, records: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.records_out.fetch_add(records, Ordering::Relaxed);
    }

    pub fn get(&self) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            records_in: self.records_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        self.bytes_in += other.bytes_in;
        self.records_in += other.records_in;
        self.bytes_out += other.bytes_out;
        self.records_out += other.records_out;
    }
}

/// Records in a run of batches, read from each batch header (nothing is decompressed). A
/// cut batch at the end, as a fetch may carry, is not counted.
pub fn count_records(batches: &Bytes) -> u64 {
    BatchSplitter::new(batches.clone())
        .map_while(Result::ok)
        .map(|batch| u64::try_from(batch.record_count()).unwrap_or(0))
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use runnel_protocol::batch::{build_raw_batch, RawBatchFields};

    fn batch(records: i32) -> Vec<u8> {
        build_raw_batch(&RawBatchFields {
            record_count: records,
            records: b"abcdefgh",
            ..RawBatchFields::default()
        })
        .to_vec()
    }

    #[test]
    fn counts_records_of_whole_batches_only() {
        let mut bytes = batch(3);
        bytes.extend(batch(5));
        assert_eq!(count_records(&Bytes::from(bytes.clone())), 8);
        let whole = bytes.len();
        bytes.extend(&batch(7)[..20]);
        assert_eq!(count_records(&Bytes::from(bytes.clone())), 8);
        assert_eq!(count_records(&Bytes::from(bytes[..whole - 1].to_vec())), 3);
        assert_eq!(count_records(&Bytes::new()), 0);
    }

    #[test]
    fn counters_add_up() {
        let counters = TrafficCounters::default();
        counters.add_in(100, 4);
        let out = Bytes::from(batch(2));
        counters.add_out(out.len() as u64, count_records(&out));
        let traffic = counters.get();
        assert_eq!((traffic.bytes_in, traffic.records_in), (100, 4));
        assert_eq!(traffic.records_out, 2);
        assert!(traffic.bytes_out > 61);
    }
}
