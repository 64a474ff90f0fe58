//! The sparse offset index (`.index`): relative offset → byte position in the `.log`.
//!
//! File format: entries of `(relative_offset u32, position u32)`, big-endian, both strictly
//! increasing; one entry per `index.interval.bytes` of log. No checksum: rebuilt from the log
//! after an unclean stop or whenever [`OffsetIndex::is_sane`] fails.
//! Thread-safety: none inside; owned by a segment behind its mutex.

use std::io;
use std::path::Path;

use super::index_file::IndexFile;

const ENTRY_BYTES: usize = 8;

/// Offset index of one segment.
pub(crate) struct OffsetIndex {
    file: IndexFile,
}

impl OffsetIndex {
    pub(crate) fn open(path: &Path, capacity_bytes: Option<u64>) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            file: IndexFile::open(path, ENTRY_BYTES, capacity_bytes)?,
        })
    }

    pub(crate) fn create(path: &Path, capacity_bytes: u64) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
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

    pub(crate) fn entry(&self, i: usize) -> (u32, u32) {
        let bytes = self.file.entry(i);
        let relative = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let position = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        (relative, position)
    }

    /// Appends an entry; false when full. Entries must grow in both fields.
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32) -> bool {
        if let Some(last) = self.len().checked_sub(1).map(|i| self.entry(i)) {
            assert!(
                relative_offset > last.0 && position > last.1,
                "offset index must grow"
            );
        }
        let mut entry = [0u8; ENTRY_BYTES];
        entry[..4].copy_from_slice(&relative_offset.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&entry)
    }

    /// The last entry whose relative offset is ≤ `relative_offset`: where a scan for it may
    /// start. `(0, 0)` when there is none.
    pub(crate) fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        // Binary search for the number of entries with offset ≤ target.
        let (mut low, mut high) = (0usize, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.entry(mid).0 <= relative_offset {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        if low == 0 {
            (0, 0)
        } else {
            self.entry(low - 1)
        }
    }

    /// Both fields strictly increasing and positions inside a log of `log_size_bytes`.
    pub(crate) fn is_sane(&self, log_size_bytes: u64) -> bool {
        let mut previous: Option<(u32, u32)> = None;
        for i in 0..self.len() {
            let (relative, position) = self.entry(i);
            if u64::from(position) >= log_size_bytes.max(1) {
                return false;
            }
            if let Some((prev_relative, prev_position)) = previous {
                if relative <= prev_relative || position <= prev_position {
                    return false;
                }
            }
            previous = Some((relative, position));
        }
        true
    }
}
