//! A memory-mapped, fixed-entry-size index file: the mechanics shared by the offset index and
//! the time index (preallocation, append, trim, sanity of the length).
//!
//! File format: `entries × entry_bytes`, big-endian fields, no header and **no checksum** —
//! index files are rebuilt from the `.log` after an unclean stop. While a segment is active
//! the file is preallocated to `capacity_bytes` (zeros past the used entries) and trimmed to
//! the used size when the segment is sealed or the log is closed.
//!
//! Thread-safety: none inside; the owning segment keeps it behind its mutex.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::{Advice, MmapMut};

/// One index file mapped into memory.
pub(crate) struct IndexFile {
    path: PathBuf,
    /// `None` when the mapped length is zero (memmap cannot map nothing portably).
    mmap: Option<MmapMut>,
    entry_bytes: usize,
    entries: usize,
    capacity_entries: usize,
}

impl IndexFile {
    /// Opens `path` (created if missing) keeping its entries; when `capacity_bytes` is given
    /// the file is grown to it so later pushes land in the mapping. A length that is not a
    /// whole number of entries is an error: the caller rebuilds the index.
    pub(crate) fn open(
        path: &Path,
        entry_bytes: usize,
        capacity_bytes: Option<u64>,
    ) -> io::Result<IndexFile> {
        assert!(entry_bytes > 0);
        // Only an active segment (capacity given) may start an index from nothing; a sealed
        // one with a missing index must be rebuilt, not silently given an empty one.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(capacity_bytes.is_some())
            .truncate(false)
            .open(path)?;
        let len_bytes = file.metadata()?.len();
        if len_bytes % entry_bytes as u64 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "index length is not whole entries",
            ));
        }
        let entries = usize::try_from(len_bytes / entry_bytes as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "index too large"))?;
        let capacity_entries = match capacity_bytes {
            Some(bytes) => entries.max(usize::try_from(bytes).unwrap_or(usize::MAX) / entry_bytes),
            None => entries,
        };
        let mut index = IndexFile {
            path: path.to_path_buf(),
            mmap: None,
            entry_bytes,
            entries,
            capacity_entries,
        };
        index.map(&file)?;
        Ok(index)
    }

    /// Creates (or empties) `path` and preallocates `capacity_bytes`.
    pub(crate) fn create(
        path: &Path,
        entry_bytes: usize,
        capacity_bytes: u64,
    ) -> io::Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        drop(file);
        IndexFile::open(path, entry_bytes, Some(capacity_bytes))
    }

    fn map(&mut self, file: &File) -> io::Result<()> {
        let len_bytes = (self.capacity_entries * self.entry_bytes) as u64;
        if file.metadata()?.len() != len_bytes {
            file.set_len(len_bytes)?;
        }
        self.mmap = if len_bytes == 0 {
            None
        } else {
            // SAFETY: the file is private to this segment; the only writer is this struct
            // (behind the segment mutex) and nothing else truncates it while mapped.
            let mmap = unsafe { MmapMut::map_mut(file)? };
            // No fault-around or readahead: without this, the first write into the sparse
            // preallocated file faulted in a large zeroed folio per index, and with 1 000
            // partitions the broker spent ~94 % of its time zero-filling index pages.
            mmap.advise(Advice::Random)?;
            Some(mmap)
        };
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn room_entries(&self) -> usize {
        self.capacity_entries.saturating_sub(self.entries)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity_entries
    }

    /// The bytes of entry `i` (`i < len()`).
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        assert!(i < self.entries, "index entry {i} out of {}", self.entries);
        let start = i * self.entry_bytes;
        match &self.mmap {
            Some(mmap) => &mmap[start..start + self.entry_bytes],
            None => unreachable!("entries > 0 implies a mapping"),
        }
    }

    /// Appends one entry; false when the index is full (the segment must roll).
    pub(crate) fn push(&mut self, entry: &[u8]) -> bool {
        assert_eq!(entry.len(), self.entry_bytes);
        if self.is_full() {
            return false;
        }
        let start = self.entries * self.entry_bytes;
        let Some(mmap) = self.mmap.as_mut() else {
            return false;
        };
        mmap[start..start + self.entry_bytes].copy_from_slice(entry);
        self.entries += 1;
        true
    }

    /// Shrinks the file to the used entries: no more pushes fit afterwards.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        if self.capacity_entries == self.entries {
            return Ok(());
        }
        if let Some(mmap) = &self.mmap {
            mmap.flush_async()?;
        }
        self.mmap = None;
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.capacity_entries = self.entries;
        self.map(&file)
    }

    /// Grows a trimmed file back to `capacity_bytes` (reopening a sealed-at-close segment
    /// as the active one).
    pub(crate) fn grow(&mut self, capacity_bytes: u64) -> io::Result<()> {
        let wanted = usize::try_from(capacity_bytes).unwrap_or(usize::MAX) / self.entry_bytes;
        if wanted <= self.capacity_entries {
            return Ok(());
        }
        self.mmap = None;
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.capacity_entries = wanted;
        self.map(&file)
    }

    /// Doubles the capacity (at least one entry): a rebuild grows an index as the log needs
    /// rather than drop entries (see `recovery::scan_log`).
    pub(crate) fn double_capacity(&mut self) -> io::Result<()> {
        let wanted_entries = self.capacity_entries.saturating_mul(2).max(1);
        let wanted_bytes = u64::try_from(wanted_entries.saturating_mul(self.entry_bytes))
            .map_err(io::Error::other)?;
        self.grow(wanted_bytes)
    }

    /// Writes the mapping to disk (used before a clean shutdown and for sealed segments).
    pub(crate) fn sync(&self) -> io::Result<()> {
        match &self.mmap {
            Some(mmap) => mmap.flush(),
            None => Ok(()),
        }
    }
}
