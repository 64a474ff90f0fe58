//! Encoding a frame without copying its record batches.
//!
//! A Fetch response or a Produce request is mostly record batches that already sit in
//! `Bytes` (read from a segment, or built by a producer). Encoding into one `BytesMut`
//! copies every batch once more — and grows the buffer by doubling, which copies and
//! page-faults again. [`ChunkedBuf`] is a `ByteBufMut` that is told those `Bytes` up front
//! (its *shares*); when the encoder writes exactly one of them (`put_slice` with the same
//! pointer and length), it keeps a reference-counted handle instead of the bytes. The
//! result is a list of chunks to write with one vectored write.
//!
//! A share the encoder does not write whole is simply copied; shares are matched by
//! address only, never dereferenced, so a stale or foreign pointer can cost a copy but
//! never correctness.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// The 4-byte big-endian size that starts every frame.
const SIZE_PREFIX_BYTES: usize = 4;
/// First allocation for the bytes the encoder writes itself (headers, partition fields).
const FRAME_HEAD_CAPACITY_BYTES: usize = 512;

/// Slices shorter than this are copied even when they match a share: a chunk boundary
/// costs a vectored-write entry and an allocation, a small copy costs less.
pub const SHARE_BYTES_MIN: usize = 1024;

/// A finished piece of the frame: bytes the encoder wrote (still patchable) or a share.
#[derive(Debug)]
enum Chunk {
    Owned(BytesMut),
    Shared(Bytes),
}

/// A byte sink that references its shares instead of copying them.
#[derive(Debug, Default)]
pub struct ChunkedBuf {
    /// Finished chunks, in order: owned bytes written by the encoder, and shares.
    chunks: Vec<Chunk>,
    /// Total length of `chunks`.
    chunks_bytes: usize,
    /// The chunk being written.
    tail: BytesMut,
    /// Candidate shares, in the order the encoder is expected to write them.
    shares: Vec<Bytes>,
    /// The share expected next (a hint: any share matches, in any order).
    next_share: usize,
    /// Set when the encoder reached back across a share (a gap spanning one): the chunks
    /// are then unusable and [`ChunkedBuf::finish`] says so.
    broken: bool,
    /// What [`ByteBufMut::range`] hands out when it cannot serve a range (then `broken`).
    scratch: Vec<u8>,
}

impl ChunkedBuf {
    /// A sink that will reference `shares` (each at least [`SHARE_BYTES_MIN`] long to count)
    /// when the encoder writes them whole.
    pub fn new(shares: Vec<Bytes>, tail_capacity_bytes: usize) -> ChunkedBuf {
        ChunkedBuf {
            shares: shares
                .into_iter()
                .filter(|b| b.len() >= SHARE_BYTES_MIN)
                .collect(),
            tail: BytesMut::with_capacity(tail_capacity_bytes),
            ..ChunkedBuf::default()
        }
    }

    /// The chunks in order, or `None` if the encoder patched bytes across a share (then the
    /// caller encodes into a plain buffer instead).
    pub fn finish(self) -> Option<Vec<Bytes>> {
        if self.broken {
            return None;
        }
        let mut chunks: Vec<Bytes> = self
            .chunks
            .into_iter()
            .map(|chunk| match chunk {
                Chunk::Owned(owned) => owned.freeze(),
                Chunk::Shared(shared) => shared,
            })
            .collect();
        if !self.tail.is_empty() {
            chunks.push(self.tail.freeze());
        }
        Some(chunks)
    }

    /// Where the written bytes `r` lie, when one owned chunk (`Some(i)`) or the tail
    /// (`None`) holds them all: (chunk, start, end) within it.
    fn locate(&self, r: &Range<usize>) -> Option<(Option<usize>, usize, usize)> {
        let mut chunk_start = 0usize;
        for (index, chunk) in self.chunks.iter().enumerate() {
            let (len, owned) = match chunk {
                Chunk::Owned(owned) => (owned.len(), true),
                Chunk::Shared(shared) => (shared.len(), false),
            };
            if r.start < chunk_start + len {
                let end = r.end.checked_sub(chunk_start)?;
                return (owned && end <= len).then_some((Some(index), r.start - chunk_start, end));
            }
            chunk_start += len;
        }
        let end = r.end.checked_sub(chunk_start)?;
        (end <= self.tail.len()).then_some((None, r.start.checked_sub(chunk_start)?, end))
    }

    fn share_for(&mut self, src: &[u8]) -> Option<Bytes> {
        let matches = |b: &Bytes| b.as_ptr() == src.as_ptr() && b.len() == src.len();
        if let Some(share) = self.shares.get(self.next_share).filter(|b| matches(b)) {
            let share = share.clone();
            self.next_share += 1;
            return Some(share);
        }
        let index = self.shares.iter().position(matches)?;
        self.next_share = index + 1;
        self.shares.get(index).cloned()
    }

    fn total_bytes(&self) -> usize {
        self.chunks_bytes + self.tail.len()
    }
}

// SAFETY: every method delegates to the tail `BytesMut`, which upholds `BufMut`'s contract;
// `put_slice` either delegates too or appends a whole chunk without touching the tail's
// uninitialised capacity.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller guarantees `cnt` bytes of `chunk_mut` were initialised, and
        // `chunk_mut` is the tail's.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARE_BYTES_MIN {
            if let Some(share) = self.share_for(src) {
                if !self.tail.is_empty() {
                    let owned = self.tail.split();
                    self.chunks_bytes += owned.len();
                    self.chunks.push(Chunk::Owned(owned));
                }
                self.chunks_bytes += share.len();
                self.chunks.push(Chunk::Shared(share));
                return;
            }
        }
        self.tail.extend_from_slice(src);
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.total_bytes()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.chunks_bytes) {
            Some(tail_offset) => self.tail.resize(tail_offset, 0),
            None => self.broken = true,
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let slice = match self.locate(&r) {
            Some((None, start, end)) => self.tail.get_mut(start..end),
            Some((Some(index), start, end)) => match self.chunks.get_mut(index) {
                Some(Chunk::Owned(owned)) => owned.get_mut(start..end),
                _ => None,
            },
            None => None,
        };
        if let Some(slice) = slice {
            return slice;
        }
        // Message encoders never patch across a share; if one did, refuse the result
        // (`finish` says `None`) and hand out scratch bytes rather than panic.
        self.broken = true;
        self.scratch.clear();
        self.scratch.resize(r.len(), 0);
        &mut self.scratch
    }
}

/// Why [`encode_frame`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedEncodeError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("frame of {size_bytes} bytes does not fit the i32 size prefix")]
    TooLarge { size_bytes: usize },
}

/// Encodes one whole frame — size prefix, `header` at `header_version`, `body` at
/// `version` — as chunks that reference `shares` (the record batches inside `body`)
/// instead of copying them. `Ok(None)`: the encoder patched across a share; encode into a
/// plain buffer instead.
pub fn encode_frame<H: Encodable, M: Encodable>(
    header: &H,
    header_version: i16,
    body: &M,
    version: i16,
    shares: Vec<Bytes>,
) -> Result<Option<Vec<Bytes>>, ChunkedEncodeError> {
    let mut buf = ChunkedBuf::new(shares, FRAME_HEAD_CAPACITY_BYTES);
    buf.put_i32(0); // patched below, once the size is known
    header
        .encode(&mut buf, header_version)
        .map_err(|e| ChunkedEncodeError::Encode(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| ChunkedEncodeError::Encode(e.to_string()))?;
    let size_bytes = buf.total_bytes() - SIZE_PREFIX_BYTES;
    let size =
        i32::try_from(size_bytes).map_err(|_| ChunkedEncodeError::TooLarge { size_bytes })?;
    buf.range(0..SIZE_PREFIX_BYTES)
        .copy_from_slice(&size.to_be_bytes());
    Ok(buf.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shares_written_whole_are_referenced_not_copied() {
        let big = Bytes::from(vec![7u8; 4096]);
        let other = Bytes::from(vec![9u8; 2048]);
        let mut buf = ChunkedBuf::new(vec![big.clone(), other.clone()], 64);
        buf.put_i32(0);
        buf.put_slice(&big);
        buf.put_u8(1);
        buf.put_slice(&other[..1500]); // not whole: copied
        buf.range(0..4).copy_from_slice(&5i32.to_be_bytes());
        let chunks = buf.finish().unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        let flat: Vec<u8> = chunks.concat();
        let mut expected = 5i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&big);
        expected.push(1);
        expected.extend_from_slice(&other[..1500]);
        assert_eq!(flat, expected);
    }

    #[test]
    fn reaching_back_across_a_share_refuses_the_result() {
        let big = Bytes::from(vec![1u8; 2048]);
        let mut buf = ChunkedBuf::new(vec![big.clone()], 16);
        buf.put_u8(0);
        buf.put_slice(&big);
        buf.put_u8(2);
        buf.range(0..1)[0] = 3; // before the share: fine
        assert_eq!(buf.range(1..2049).len(), 2048); // the share itself: refused
        assert!(buf.finish().is_none());
    }
}
