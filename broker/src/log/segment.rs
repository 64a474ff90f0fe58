//! One segment: `<base>.log` (record batches back to back) with its `.index` and `.timeindex`,
//! all named by the 20-digit base offset so `ls` sorts them.
//!
//! `.log` format: magic-2 record batches exactly as produced, with the base offset (bytes
//! 0..8) and partition leader epoch (12..16, always 0) patched; both lie outside the CRC span.
//!
//! Thread-safety: the immutable identity (`base_offset`, paths) is free to read; everything
//! that changes sits behind one mutex held only for in-memory work (index pushes, lookups),
//! never across the `.log` write or a read of it. The partition's append lock orders writers.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::lock::{Mutex, MutexGuard};
use runnel_protocol::batch::{peek_batch_size, BatchError, BATCH_HEADER_BYTES, MAGIC_V2};

use super::offset_index::OffsetIndex;
use super::time_index::TimeIndex;

/// Most disk blocks reserved past an appending segment's end (`fallocate` with
/// `FALLOC_FL_KEEP_SIZE`: the file's size, all that readers and recovery look at, is
/// unchanged). An append into reserved blocks skips ext4's delayed-allocation bookkeeping
/// (reservation, quota, extent-status inserts) and writeback allocates nothing: acks=1
/// produce, 1 producer, alternating in one sitting, 865 / 811 / 1 017 / 930 / 699 / 705
/// MiB/s with it against 674 / 872 / 739 / 706 / 783 / 583 without.
pub(crate) const PREALLOCATE_AHEAD_BYTES_MAX: u64 = 8 << 20;
/// A segment gets blocks reserved ahead only once it holds this much, and then at most as
/// many as it holds: a partition written now and then takes no more disk than its data.
pub(crate) const PREALLOCATE_FROM_SEGMENT_BYTES: u64 = 1 << 20;

/// The control bit of a batch's attributes.
const ATTR_CONTROL: i16 = 0x20;

/// The header fields the storage engine needs, parsed from the first 61 bytes of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    pub size_bytes: u64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub magic: i8,
    pub stored_crc: u32,
    pub record_count: i32,
    pub attributes: i16,
    pub producer_id: i64,
}

impl BatchHeader {
    /// Parses a header; framing errors (bad length, short input) are errors, never panics.
    pub(crate) fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        let Some(header) = bytes.get(..BATCH_HEADER_BYTES) else {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_BYTES,
                available_bytes: bytes.len(),
            });
        };
        let size_bytes = peek_batch_size(header)?.ok_or(BatchError::Truncated {
            needed_bytes: BATCH_HEADER_BYTES,
            available_bytes: bytes.len(),
        })?;
        let i64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&header[at..at + 8]);
            i64::from_be_bytes(raw)
        };
        let u32_at = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let base_offset = i64_at(0);
        let last_offset_delta = u32_at(23) as i32;
        Ok(BatchHeader {
            base_offset,
            size_bytes: size_bytes as u64,
            last_offset: base_offset.saturating_add(i64::from(last_offset_delta)),
            max_timestamp: i64_at(35),
            magic: header[16] as i8,
            stored_crc: u32_at(17),
            record_count: u32_at(57) as i32,
            attributes: i16::from_be_bytes([header[21], header[22]]),
            producer_id: i64_at(43),
        })
    }

    /// A control batch (transaction marker): the attributes' control bit.
    pub(crate) fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Magic 2 and a non-negative offset delta: what every stored batch must satisfy.
    pub(crate) fn is_plausible(&self) -> bool {
        self.magic == MAGIC_V2 && self.last_offset >= self.base_offset
    }
}

/// A random number for a segment's `segment.jitter.ms` draw: std's per-instance random
/// SipHash keys (each `RandomState` gets fresh ones), so no RNG crate on the data path.
fn jitter_draw() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The 20-digit file name stem of a segment.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Parses `00000000000000000042.log` → 42.
pub(crate) fn parse_stem(name: &str, extension: &str) -> Option<i64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Mutable state of a segment.
pub(crate) struct SegmentState {
    /// Bytes of whole batches in the `.log` (a reader never looks past this).
    pub size_bytes: u64,
    /// Newest batch max timestamp, -1 when unknown or empty.
    pub max_timestamp: i64,
    /// Wall clock of the first append into this segment (for `segment.ms`).
    pub first_append_ms: Option<i64>,
    /// This segment's random draw for `segment.jitter.ms` (see
    /// `TopicConfig::segment_roll_ms`); drawn again when the segment is reopened, as Kafka
    /// draws a segment's jitter whenever it loads it.
    pub roll_jitter_draw: u64,
    pub bytes_since_index_entry: u64,
    /// Loaded lazily for sealed segments; always loaded for the active one.
    pub indexes: Option<(OffsetIndex, TimeIndex)>,
    /// Replaced by the cleaner: its files are (being) renamed away, so a reader that
    /// snapshotted this segment must take a fresh snapshot instead of touching its paths.
    pub retired: bool,
    /// The file's blocks reach at least this far (reserved ahead of `size_bytes` while it is
    /// the active segment; 0 when nothing was reserved).
    pub allocated_bytes: u64,
}

/// One segment of a partition log.
pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    state: Mutex<SegmentState>,
}

impl Segment {
    /// A segment whose files exist (or are about to be created) with `size_bytes` of log.
    pub(crate) fn new(dir: &Path, base_offset: i64, size_bytes: u64) -> Segment {
        assert!(base_offset >= 0, "segment base offset must be non-negative");
        Segment {
            base_offset,
            log_path: dir.join(format!("{}.log", file_stem(base_offset))),
            state: Mutex::new(SegmentState {
                size_bytes,
                max_timestamp: -1,
                first_append_ms: None,
                roll_jitter_draw: jitter_draw(),
                bytes_since_index_entry: 0,
                indexes: None,
                retired: false,
                allocated_bytes: 0,
            }),
        }
    }

    /// Creates empty files for a new active segment with preallocated indexes.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        index_capacity_bytes: u64,
    ) -> io::Result<Segment> {
        let segment = Segment::new(dir, base_offset, 0);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&segment.log_path)?;
        if file.metadata()?.len() != 0 {
            // A stale file at the new base would mix old and new batches.
            file.set_len(0)?;
        }
        let offset_index = OffsetIndex::create(&segment.index_path(), index_capacity_bytes)?;
        let time_index = TimeIndex::create(&segment.time_index_path(), index_capacity_bytes)?;
        segment.lock().indexes = Some((offset_index, time_index));
        Ok(segment)
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.log_path.with_extension("index")
    }

    pub(crate) fn time_index_path(&self) -> PathBuf {
        self.log_path.with_extension("timeindex")
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SegmentState> {
        self.state.lock()
    }

    /// Offset relative to the base, as the indexes store it.
    pub(crate) fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment"
        );
        relative as u32
    }

    /// Every path this segment owns.
    pub(crate) fn paths(&self) -> [PathBuf; 3] {
        [
            self.log_path.clone(),
            self.index_path(),
            self.time_index_path(),
        ]
    }
}

impl SegmentState {
    /// Records a batch written at `position`: an offset-index entry every
    /// `index_interval_bytes`, a time-index entry when the max timestamp grows. False when an
    /// index is full (the caller rolls before the next append).
    pub(crate) fn track_batch(
        &mut self,
        relative_offset: u32,
        position: u32,
        size_bytes: u64,
        max_timestamp: i64,
        index_interval_bytes: u32,
    ) -> bool {
        let Some((offset_index, time_index)) = self.indexes.as_mut() else {
            unreachable!("indexes are loaded before batches are tracked");
        };
        let mut fits = true;
        if self.bytes_since_index_entry >= u64::from(index_interval_bytes) {
            let grows = offset_index
                .len()
                .checked_sub(1)
                .map(|i| offset_index.entry(i));
            if grows.is_none_or(|(rel, pos)| relative_offset > rel && position > pos) {
                fits &= offset_index.push(relative_offset, position);
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += size_bytes;
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            fits &= time_index.push(max_timestamp, relative_offset);
        }
        fits && !offset_index.is_full() && !time_index.is_full()
    }

    /// Batches that can still be indexed without overflowing either index (each batch may
    /// add one entry to each).
    pub(crate) fn index_room_entries(&self) -> usize {
        match &self.indexes {
            Some((offset_index, time_index)) => {
                offset_index.room_entries().min(time_index.room_entries())
            }
            None => 0,
        }
    }

    /// The byte range of the `.log` to reserve before appending `append_bytes` (see
    /// [`PREALLOCATE_AHEAD_BYTES_MAX`]), if any, counted as reserved from now on (a failed
    /// reservation is not retried: it was only a speed-up). None below
    /// [`PREALLOCATE_FROM_SEGMENT_BYTES`] or while the append fits the reserved blocks, and
    /// never past `limit_bytes` (`segment.bytes`) unless the append itself goes there.
    pub(crate) fn reserve_ahead(
        &mut self,
        append_bytes: u64,
        limit_bytes: u64,
    ) -> Option<(u64, u64)> {
        let end = self.size_bytes.saturating_add(append_bytes);
        if end < PREALLOCATE_FROM_SEGMENT_BYTES || end <= self.allocated_bytes {
            return None;
        }
        let from = self.allocated_bytes.max(self.size_bytes);
        let ahead = end.min(PREALLOCATE_AHEAD_BYTES_MAX);
        let to = end.saturating_add(ahead).min(limit_bytes.max(end));
        self.allocated_bytes = to;
        Some((from, to - from))
    }

    /// Doubles both indexes' capacity. Only a rebuild does this: a log written under a larger
    /// `segment.index.bytes` than today's needs more entries than today's capacity, and an
    /// entry dropped from its time index would make the segment look older than it is.
    pub(crate) fn grow_indexes(&mut self) -> io::Result<()> {
        if let Some((offset_index, time_index)) = self.indexes.as_mut() {
            offset_index.file().double_capacity()?;
            time_index.file().double_capacity()?;
        }
        Ok(())
    }

    /// Shrinks both indexes to their used size and writes them out (the segment is sealed).
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        if let Some((offset_index, time_index)) = self.indexes.as_mut() {
            offset_index.file().trim()?;
            time_index.file().trim()?;
            offset_index.file().sync()?;
            time_index.file().sync()?;
        }
        Ok(())
    }

    /// Position to start scanning for `relative_offset` (0 without indexes).
    pub(crate) fn lookup_position(&self, relative_offset: u32) -> u64 {
        match &self.indexes {
            Some((offset_index, _)) => u64::from(offset_index.lookup(relative_offset).1),
            None => 0,
        }
    }
}

/// Reserves disk blocks for `[from, from + len)` of `file` without changing its size.
#[cfg(target_os = "linux")]
pub(crate) fn reserve_blocks(file: &File, from: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(from).map_err(io::Error::other)?;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: the descriptor is open for the duration of the call (borrowed from `file`);
    // fallocate reads no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Elsewhere blocks are allocated as writes arrive.
#[cfg(not(target_os = "linux"))]
pub(crate) fn reserve_blocks(_file: &File, _from: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Reads the header of the batch at `position`, or `None` past `end_bytes`.
pub(crate) fn read_header(
    file: &File,
    position: u64,
    end_bytes: u64,
) -> io::Result<Option<BatchHeader>> {
    if position + BATCH_HEADER_BYTES as u64 > end_bytes {
        return Ok(None);
    }
    let mut raw = [0u8; BATCH_HEADER_BYTES];
    file.read_exact_at(&mut raw, position)?;
    let header =
        BatchHeader::parse(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if !header.is_plausible() || position + header.size_bytes > end_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad batch header at {position}"),
        ));
    }
    Ok(Some(header))
}

/// Scans batch headers from `position` to the first batch whose last offset is ≥ `offset`;
/// returns its position and header. Bounded by `end_bytes` (each step advances ≥ 61 bytes).
pub(crate) fn find_batch(
    file: &File,
    mut position: u64,
    end_bytes: u64,
    offset: i64,
) -> io::Result<Option<(u64, BatchHeader)>> {
    while let Some(header) = read_header(file, position, end_bytes)? {
        if header.last_offset >= offset {
            return Ok(Some((position, header)));
        }
        position += header.size_bytes;
    }
    Ok(None)
}
