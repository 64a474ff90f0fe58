//! The time index (`.timeindex`): max timestamp so far → relative offset of the batch that
//! raised it.
//!
//! File format: entries of `(timestamp i64, relative_offset u32)`, big-endian; an entry is
//! appended only when a batch's max timestamp exceeds every earlier one, so both fields grow.
//! No checksum: rebuilt from the log after an unclean stop or when [`TimeIndex::is_sane`]
//! fails. Thread-safety: none inside; owned by a segment behind its mutex.

use std::io;
use std::path::Path;

use super::index_file::IndexFile;

const ENTRY_BYTES: usize = 12;

/// Time index of one segment.
pub(crate) struct TimeIndex {
    file: IndexFile,
}

impl TimeIndex {
    pub(crate) fn open(path: &Path, capacity_bytes: Option<u64>) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            file: IndexFile::open(path, ENTRY_BYTES, capacity_bytes)?,
        })
    }

    pub(crate) fn create(path: &Path, capacity_bytes: u64) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            file: IndexFile::create(path, ENTRY_BYTES, capacity_bytes)?,
        })
    }

    pub(crate) fn file(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub(crate) fn room_entries(&self) -> usize {
        self.file.room_entries()
    }

    pub(crate) fn len(&self) -> usize {
        self.file.len()
    }

    pub(crate) fn entry(&self, i: usize) -> (i64, u32) {
        let bytes = self.file.entry(i);
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&bytes[..8]);
        let relative = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        (i64::from_be_bytes(timestamp), relative)
    }

    /// The newest timestamp indexed, if any.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.len().checked_sub(1).map(|i| self.entry(i).0)
    }

    /// Appends an entry; false when full.
    pub(crate) fn push(&mut self, timestamp: i64, relative_offset: u32) -> bool {
        if let Some(last) = self.len().checked_sub(1).map(|i| self.entry(i)) {
            assert!(
                timestamp > last.0 && relative_offset >= last.1,
                "time index must grow"
            );
        }
        let mut entry = [0u8; ENTRY_BYTES];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.file.push(&entry)
    }

    /// The first entry with timestamp ≥ `timestamp_ms`: the first batch that can hold such a
    /// record.
    pub(crate) fn first_at_or_after(&self, timestamp_ms: i64) -> Option<(i64, u32)> {
        let (mut low, mut high) = (0usize, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.entry(mid).0 < timestamp_ms {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        (low < self.len()).then(|| self.entry(low))
    }

    /// Timestamps strictly and offsets weakly increasing, offsets below `relative_end`.
    pub(crate) fn is_sane(&self, relative_end: u64) -> bool {
        let mut previous: Option<(i64, u32)> = None;
        for i in 0..self.len() {
            let (timestamp, relative) = self.entry(i);
            if u64::from(relative) >= relative_end.max(1) {
                return false;
            }
            if let Some((prev_timestamp, prev_relative)) = previous {
                if timestamp <= prev_timestamp || relative < prev_relative {
                    return false;
                }
            }
            previous = Some((timestamp, relative));
        }
        true
    }
}
