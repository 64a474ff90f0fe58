//! Reads of a [`PartitionLog`] by offset (Fetch), and the segment snapshot they share with the
//! lookups by timestamp (`timestamp_lookup`).
//!
//! Both snapshot the segment list and sizes under the partition lock, then pread outside it,
//! so a slow read never holds up appends and never sees a half-written batch (the snapshot
//! size only ever covers whole batches). A Fetch read of large batches in the cached tail
//! reads only their headers and leaves the bytes in the file ([`FileSlice`]) for the
//! connection to send with `sendfile`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use runnel_protocol::batch::peek_batch_size;

use super::lock::MutexGuard;
use super::partition::PartitionLog;
use super::recovery::ensure_indexes;
use super::segment::{find_batch, read_header, BatchHeader, Segment, SegmentState};
use super::{FetchRead, FetchRecords, FileSlice, LogError, ReadResult};

/// Non-empty segments a read may walk past (offset gaps at a segment's end) before giving up.
const READ_SEGMENTS_MAX: usize = 8;
/// Snapshots a read takes before giving up when the cleaner keeps replacing its segments.
const READ_ATTEMPTS_MAX: usize = 4;

/// A Fetch leaves batches at least this large in the file (sent with `sendfile`): finding
/// where whole batches end then costs a header read per batch, which small batches would
/// pay more often than the copy it saves.
const SEND_BATCH_BYTES_MIN: u64 = 16 * 1024;
/// Batches a Fetch read left in the file may span (header reads to find their end).
const SEND_BATCHES_MAX: usize = 64;

/// How a read hands back its batches.
#[derive(Debug, Clone, Copy)]
enum ReadMode {
    /// Copied into memory, at least one whole batch.
    Copy,
    /// For a Fetch: left in the file when they are large batches in the cached tail; the
    /// first batch even when larger than the limit only if `at_least_one`.
    Fetch { at_least_one: bool },
}

/// One segment read's parameters (`bytes_after_segment`: log bytes in later segments, as
/// far as the snapshot saw).
#[derive(Debug, Clone, Copy)]
struct ReadAt {
    offset: i64,
    max_bytes: usize,
    bytes_after_segment: u64,
    mode: ReadMode,
}

/// A segment and how many of its bytes were whole batches at snapshot time.
pub(super) struct SegmentView {
    pub(super) segment: Arc<Segment>,
    pub(super) size_bytes: u64,
    /// First offset not in this segment (the next base, or the log end).
    pub(super) end_offset: i64,
}

impl PartitionLog {
    /// Segments from the one containing `offset` (or all with `None`), up to `count_max`.
    pub(super) fn snapshot(
        &self,
        offset: Option<i64>,
        count_max: usize,
    ) -> Result<(Vec<SegmentView>, i64, i64), LogError> {
        let guard = self.loaded()?;
        let Some(state) = guard.as_ref() else {
            return Err(LogError::ShutDown);
        };
        let start = self.log_start_offset();
        let from = match offset {
            Some(offset) => state
                .segments
                .range(..=offset)
                .next_back()
                .map_or(i64::MIN, |(base, _)| *base),
            None => i64::MIN,
        };
        let mut views: Vec<SegmentView> = Vec::new();
        let mut non_empty = 0usize;
        // Empty segments (the cleaner can leave a run of them) do not count towards
        // `count_max`: a read must always reach the next batch. Bounded by the segment map.
        for (base, segment) in state.segments.range(from..) {
            if non_empty == count_max {
                break;
            }
            if let Some(previous) = views.last_mut() {
                previous.end_offset = *base;
            }
            let size_bytes = segment.lock().size_bytes;
            non_empty += usize::from(size_bytes > 0);
            views.push(SegmentView {
                segment: segment.clone(),
                size_bytes,
                end_offset: state.next_offset,
            });
        }
        Ok((views, start, state.next_offset))
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (but always at least
    /// one whole batch when `offset` < end). `offset == end` is empty; outside
    /// [start, end] is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        let read = retry_on_retired(|| self.read_once(offset, max_bytes, ReadMode::Copy))?;
        let records = match read.records {
            FetchRecords::Copied(bytes) => bytes,
            // `ReadMode::Copy` never leaves batches in the file.
            FetchRecords::InFile(slice) => slice.read_bytes()?,
        };
        Ok(ReadResult {
            records,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
        })
    }

    /// [`read`](Self::read) for a Fetch: whole batches up to `max_bytes` — the first one
    /// even when larger only if `at_least_one` — left in the segment file
    /// ([`FetchRecords::InFile`], sent by the connection with `sendfile`) when they are
    /// large batches in the cached tail, else copied.
    pub fn fetch_read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<FetchRead, LogError> {
        if let Some(at_end) = self.read_at_end(offset) {
            return Ok(at_end);
        }
        retry_on_retired(|| self.read_once(offset, max_bytes, ReadMode::Fetch { at_least_one }))
    }

    /// A Fetch read at the log end, answered from the published end and start alone: no
    /// snapshot, no lock (a consumer tailing many partitions asks most of them for nothing,
    /// every fetch). `None` (read normally) unless the log is open, not closed, and `offset`
    /// is its end as last published under the state lock (see `published_end`: an append
    /// whose bytes a long poll counted is always found).
    pub fn read_at_end(&self, offset: i64) -> Option<FetchRead> {
        if !self.opened.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return None;
        }
        let end = self.published_end.load(Ordering::Acquire);
        let start = self.log_start_offset();
        (offset == end && start <= end).then(|| FetchRead {
            records: FetchRecords::Copied(Bytes::new()),
            high_watermark: end,
            log_start_offset: start,
        })
    }

    fn read_once(
        &self,
        offset: i64,
        max_bytes: usize,
        mode: ReadMode,
    ) -> (Vec<SegmentView>, Result<FetchRead, LogError>) {
        let (views, start, end) = match self.snapshot(Some(offset), READ_SEGMENTS_MAX) {
            Ok(snapshot) => snapshot,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let result = self.read_views(&views, offset, max_bytes, mode, (start, end));
        (views, result)
    }

    fn read_views(
        &self,
        views: &[SegmentView],
        offset: i64,
        max_bytes: usize,
        mode: ReadMode,
        (start, end): (i64, i64),
    ) -> Result<FetchRead, LogError> {
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let mut records = FetchRecords::Copied(Bytes::new());
        if offset < end {
            let mut bytes_after: u64 = views.iter().map(|view| view.size_bytes).sum();
            for view in views {
                bytes_after -= view.size_bytes;
                let read = ReadAt {
                    offset,
                    max_bytes,
                    bytes_after_segment: bytes_after,
                    mode,
                };
                if let Some(found) = self.read_segment(view, read)? {
                    records = found;
                    break;
                }
            }
        }
        Ok(FetchRead {
            records,
            high_watermark: end,
            log_start_offset: start,
        })
    }

    /// Reads from one segment; `None` when no batch in it reaches `read.offset`.
    fn read_segment(
        &self,
        view: &SegmentView,
        read: ReadAt,
    ) -> Result<Option<FetchRecords>, LogError> {
        let offset = read.offset;
        let position = match self.index_position(view, offset) {
            Ok(position) => position,
            // Deleted by retention after the snapshot: the offset is below the start now.
            Err(LogError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.out_of_range(offset))
            }
            Err(e) => return Err(e),
        };
        let file = match self.ctx.files.get(&view.segment.log_path) {
            Ok(file) => file,
            // Deleted by retention after the snapshot: the offset is below the start now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.out_of_range(offset)),
            Err(e) => return Err(e.into()),
        };
        let found = find_batch(&file, position, view.size_bytes, offset)
            .map_err(|e| self.corrupt(view, e))?;
        let Some((position, first)) = found else {
            return Ok(None);
        };
        let at_least_one = match read.mode {
            ReadMode::Copy => true,
            ReadMode::Fetch { at_least_one } => at_least_one,
        };
        if !at_least_one && first.size_bytes > read.max_bytes as u64 {
            return Ok(Some(FetchRecords::Copied(Bytes::new())));
        }
        let bytes_after = |read_end: u64| read.bytes_after_segment + (view.size_bytes - read_end);
        let (len, buffer) = match read.mode {
            ReadMode::Fetch { .. } if first.size_bytes >= SEND_BATCH_BYTES_MIN => {
                let walk = (position, first, read.max_bytes as u64);
                let (len, record_count) = whole_batches_in_file(&file, view.size_bytes, walk)
                    .map_err(|e| self.corrupt(view, e))?;
                if !self.is_cold_read(bytes_after(position + len)) {
                    return Ok(Some(FetchRecords::InFile(FileSlice {
                        file,
                        position,
                        len_bytes: len as usize,
                        record_count,
                    })));
                }
                // Outside the cached tail: read (the pages are dropped below, as for any
                // read back there).
                (len, pread_exact(&file, len as usize, position)?)
            }
            _ => {
                // Small batches: one read of up to `max_bytes`, cut to whole batches.
                let available = view.size_bytes - position;
                let want = (read.max_bytes as u64).min(available).max(first.size_bytes);
                let mut buffer = pread_exact(&file, want as usize, position)?;
                let whole = whole_batches_len(&buffer);
                assert!(
                    whole >= first.size_bytes as usize,
                    "the first batch was read whole"
                );
                buffer.truncate(whole);
                (whole as u64, buffer)
            }
        };
        let read_end = position + len;
        let range = (position, read_end);
        self.after_cold_read(&file, range, view.size_bytes, bytes_after(read_end));
        Ok(Some(FetchRecords::Copied(Bytes::from(buffer))))
    }

    /// Offset-index position to start scanning for `offset` in a segment (loads the indexes
    /// of a sealed segment on first use).
    pub(super) fn index_position(&self, view: &SegmentView, offset: i64) -> Result<u64, LogError> {
        let state = self.indexed_state(view)?;
        let relative = (offset - view.segment.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        Ok(state.lookup_position(relative))
    }

    /// The segment's state with its indexes loaded (a sealed segment's on first use); a
    /// segment the cleaner retired is an error the caller retries with a fresh snapshot.
    pub(super) fn indexed_state<'a>(
        &self,
        view: &'a SegmentView,
    ) -> Result<MutexGuard<'a, SegmentState>, LogError> {
        let segment = &view.segment;
        let mut state = segment.lock();
        if state.retired {
            return Err(retired_error());
        }
        if state.indexes.is_none() {
            ensure_indexes(segment, &mut state, &self.config(), None, view.end_offset)?;
        }
        Ok(state)
    }

    pub(super) fn corrupt(&self, view: &SegmentView, error: io::Error) -> LogError {
        LogError::Corruption {
            path: view.segment.log_path.clone(),
            detail: error.to_string(),
        }
    }
}

/// Attempts a read of a snapshot again (bounded) when the cleaner replaced one of its
/// segments meanwhile: the bytes read may come from the new file at old positions, so the
/// result, good or bad, is not trusted.
pub(super) fn retry_on_retired<T>(
    mut attempt: impl FnMut() -> (Vec<SegmentView>, Result<T, LogError>),
) -> Result<T, LogError> {
    let mut attempts_left = READ_ATTEMPTS_MAX;
    loop {
        let (views, result) = attempt();
        attempts_left -= 1;
        let stale = views.iter().any(|view| view.segment.lock().retired);
        if !stale || attempts_left == 0 {
            return result;
        }
    }
}

fn retired_error() -> LogError {
    LogError::Io(io::Error::other("segment replaced by the cleaner"))
}

/// The whole batches from `position` (where `first` starts) that fit in `max_bytes` — `first`
/// always — within a segment of `end_bytes`: their length and record count, from their
/// headers alone (one small read per batch, at most [`SEND_BATCHES_MAX`] of them).
fn whole_batches_in_file(
    file: &File,
    end_bytes: u64,
    (position, first, max_bytes): (u64, BatchHeader, u64),
) -> io::Result<(u64, u64)> {
    let mut len = first.size_bytes;
    let mut record_count = u64::try_from(first.record_count).unwrap_or(0);
    for _ in 1..SEND_BATCHES_MAX {
        let Some(header) = read_header(file, position + len, end_bytes)? else {
            break;
        };
        if len + header.size_bytes > max_bytes {
            break;
        }
        len += header.size_bytes;
        record_count += u64::try_from(header.record_count).unwrap_or(0);
    }
    Ok((len, record_count))
}

/// Reads exactly `len` bytes at `position` into a fresh buffer without zeroing it first: a
/// fetch reads up to a MiB per call, and zeroing that costs about as much as the page-cache
/// copy itself (measured by the log_throughput bench).
pub(super) fn pread_exact(file: &File, len: usize, position: u64) -> io::Result<Vec<u8>> {
    let mut buffer: Vec<u8> = Vec::with_capacity(len);
    // Each pass reads ≥ 1 byte or returns: bounded by `len`.
    while buffer.len() < len {
        let filled = buffer.len();
        let at = libc::off_t::try_from(position + filled as u64)
            .map_err(|_| io::Error::other("read position beyond off_t"))?;
        // SAFETY: the destination is `buffer`'s spare capacity from `filled`, which holds at
        // least `len - filled` bytes; pread writes at most that many.
        let read = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buffer.as_mut_ptr().add(filled).cast(),
                len - filled,
                at,
            )
        };
        if read < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than its snapshot",
            ));
        }
        // SAFETY: pread initialised bytes [filled, filled + read), and read ≤ len - filled.
        unsafe { buffer.set_len(filled + read as usize) };
    }
    Ok(buffer)
}

/// Length of the whole batches at the start of `buffer` (a trailing partial one is cut).
fn whole_batches_len(buffer: &[u8]) -> usize {
    let mut used = 0usize;
    // Each step consumes a whole batch of ≥ 61 bytes: bounded by buffer.len().
    while let Ok(Some(size)) = peek_batch_size(&buffer[used..]) {
        if used + size > buffer.len() {
            break;
        }
        used += size;
    }
    used
}
