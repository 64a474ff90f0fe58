//! What an append writes: the batches checked, their base offsets patched in (and, on
//! LogAppendTime topics, stamped copies), and the bounded vectored write that puts them at
//! the end of the active segment.

use std::fs::File;
use std::io::{self, IoSlice, Write};

use runnel_protocol::batch::{BatchError, RecordBatch, BATCH_HEADER_BYTES};

use super::super::LogError;

/// Bytes of a batch the append path patches: base offset, length (copied), leader epoch.
const PATCHED_PREFIX_BYTES: usize = 16;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: u8 = 0x08;

/// Checks what append relies on beyond the framing the API layer validated; returns the
/// number of offsets the batches take.
pub(super) fn check_batches(batches: &[RecordBatch]) -> Result<i64, LogError> {
    if batches.is_empty() {
        return Err(LogError::InvalidBatch(BatchError::Truncated {
            needed_bytes: BATCH_HEADER_BYTES,
            available_bytes: 0,
        }));
    }
    let mut offsets = 0i64;
    for batch in batches {
        assert!(
            batch.size_bytes() >= BATCH_HEADER_BYTES,
            "RecordBatch guarantees a header"
        );
        if batch.last_offset_delta() < 0 {
            // No BatchError names this; a negative delta is a malformed length of offsets.
            return Err(LogError::InvalidBatch(BatchError::BadLength {
                batch_length: batch.batch_length(),
            }));
        }
        offsets += i64::from(batch.last_offset_delta()) + 1;
    }
    Ok(offsets)
}

/// Patched prefixes (and, for LogAppendTime, rewritten copies) of the batches to append.
pub(super) struct Prepared<'a> {
    batches: &'a [RecordBatch],
    prefixes: Vec<[u8; PATCHED_PREFIX_BYTES]>,
    /// LogAppendTime: whole patched copies (the CRC changes, so the batch must be copied).
    copies: Option<Vec<Vec<u8>>>,
    offsets: Vec<i64>,
    append_time_ms: Option<i64>,
}

pub(super) fn prepare_batches(
    batches: &[RecordBatch],
    base_offset: i64,
    append_time_ms: Option<i64>,
) -> Prepared<'_> {
    let mut offsets = Vec::with_capacity(batches.len());
    let mut next = base_offset;
    for batch in batches {
        offsets.push(next);
        next += i64::from(batch.last_offset_delta()) + 1;
    }
    let prefixes = batches
        .iter()
        .zip(&offsets)
        .map(|(batch, offset)| {
            let mut prefix = [0u8; PATCHED_PREFIX_BYTES];
            prefix[..8].copy_from_slice(&offset.to_be_bytes());
            prefix[8..12].copy_from_slice(&batch.as_bytes()[8..12]);
            prefix
        })
        .collect();
    let copies = append_time_ms.map(|now| {
        batches
            .iter()
            .zip(&offsets)
            .map(|(batch, offset)| log_append_time_copy(batch, *offset, now))
            .collect()
    });
    Prepared {
        batches,
        prefixes,
        copies,
        offsets,
        append_time_ms,
    }
}

/// A copy of `batch` stamped with LogAppendTime: timestamp-type bit, max timestamp, CRC.
fn log_append_time_copy(batch: &RecordBatch, offset: i64, now_ms: i64) -> Vec<u8> {
    let mut copy = batch.as_bytes().to_vec();
    copy[..8].copy_from_slice(&offset.to_be_bytes());
    copy[12..16].copy_from_slice(&0i32.to_be_bytes());
    copy[22] |= ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    copy[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = runnel_protocol::crc::crc32c(&copy[21..]);
    copy[17..21].copy_from_slice(&crc.to_be_bytes());
    copy
}

impl Prepared<'_> {
    pub(super) fn slices(&self) -> Vec<IoSlice<'_>> {
        match &self.copies {
            Some(copies) => copies.iter().map(|c| IoSlice::new(c)).collect(),
            None => self
                .prefixes
                .iter()
                .zip(self.batches)
                .flat_map(|(prefix, batch)| {
                    [
                        IoSlice::new(prefix),
                        IoSlice::new(&batch.as_bytes()[PATCHED_PREFIX_BYTES..]),
                    ]
                })
                .collect(),
        }
    }

    pub(super) fn offsets_and_timestamps(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.batches
            .iter()
            .zip(&self.offsets)
            .map(|(batch, offset)| {
                (
                    *offset,
                    self.append_time_ms.unwrap_or(batch.max_timestamp()),
                )
            })
    }
}

/// `write_all` for a list of slices, at most `write_bytes_max` bytes per system call (the
/// kernel sizes the page-cache folios of a write by its length: see
/// [`WRITE_BYTES_MAX`](super::super::page_cache::WRITE_BYTES_MAX));
/// loops on short writes (bounded: each pass writes ≥ 1 byte or fails).
pub(super) fn write_all_vectored(
    mut file: &File,
    mut slices: &mut [IoSlice<'_>],
    write_bytes_max: usize,
) -> io::Result<()> {
    /// Slices per bounded write (a window of more is cut short, still within the bound).
    const WINDOW_SLICES_MAX: usize = 64;
    IoSlice::advance_slices(&mut slices, 0);
    let mut left_bytes: usize = slices.iter().map(|s| s.len()).sum();
    while left_bytes > 0 {
        let result = if left_bytes <= write_bytes_max {
            file.write_vectored(slices)
        } else {
            // The first `write_bytes_max` bytes, without allocating.
            let mut window = [IoSlice::new(&[]); WINDOW_SLICES_MAX];
            let (mut used, mut room) = (0, write_bytes_max);
            for slice in slices.iter().take(WINDOW_SLICES_MAX) {
                if room == 0 {
                    break;
                }
                let take = slice.len().min(room);
                window[used] = IoSlice::new(&slice[..take]);
                (used, room) = (used + 1, room - take);
            }
            file.write_vectored(&window[..used])
        };
        match result {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "segment write returned 0",
                ))
            }
            Ok(written) => {
                IoSlice::advance_slices(&mut slices, written);
                left_bytes -= written;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod write_tests {
    use std::io::{IoSlice, Read, Seek};

    use super::write_all_vectored;

    #[test]
    fn a_bounded_vectored_write_writes_every_byte_in_order() {
        let parts: [&[u8]; 4] = [b"abc", b"defghij", b"", b"klmnopqrstuvwxyz"];
        // And more one-byte slices than a bounded write's window takes.
        let bytes: Vec<u8> = (0..200u8).collect();
        let many: Vec<&[u8]> = bytes.chunks(1).collect();
        for (parts, expected) in [
            (&parts[..], b"abcdefghijklmnopqrstuvwxyz".to_vec()),
            (&many[..], bytes.clone()),
        ] {
            for write_bytes_max in [1, 2, 3, 5, 7, 26, 64, 150, usize::MAX] {
                let mut file = tempfile::tempfile().unwrap();
                let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
                write_all_vectored(&file, &mut slices, write_bytes_max).unwrap();
                file.rewind().unwrap();
                let mut written = Vec::new();
                file.read_to_end(&mut written).unwrap();
                assert_eq!(written, expected, "at most {write_bytes_max}");
            }
        }
    }
}
