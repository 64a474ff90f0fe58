//! Large response frames read into buffers kept from earlier ones.
//!
//! A response's records stay in its frame (zero-copy) until the application drops them, so a
//! frame's buffer cannot simply be reused by the next read. But glibc maps every allocation
//! above 32 MiB (its largest mmap threshold) afresh and unmaps it when freed: each large
//! Fetch response (4 partitions × 10 MiB, OpenMessaging Benchmark's
//! `max.partition.fetch.bytes`) then faults in every one of its pages, zeroed, at ~15 µs a
//! page on a VM whose freed memory goes back to the host — a quarter of a catch-up
//! consumer's CPU, which doubled its CPU per GB. Each connection keeps its last few large
//! frames; a read takes one back once nothing else holds it, so its pages stay mapped.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frames at least this large are kept for reuse (smaller ones come from malloc's heap,
/// which keeps freed memory).
pub(crate) const KEPT_FRAME_BYTES_MIN: usize = 8 << 20;
/// Frames a connection keeps: the one being read, the one being decoded and a spare. Their
/// memory stays with the connection while it reads large frames (at most this many of its
/// largest responses, which `response_bytes_max` bounds).
pub(crate) const KEPT_FRAMES_MAX: usize = 3;
/// A connection that reads this many smaller frames in a row lets its kept ones go: a
/// consumer that has caught up gets small responses again, and would otherwise hold up to
/// [`KEPT_FRAMES_MAX`] of its largest for as long as it stays connected.
pub(crate) const KEPT_IDLE_FRAMES_MAX: u32 = 1000;

/// One connection's kept frames, each with its buffer's capacity.
#[derive(Default)]
pub(crate) struct FrameBuffers {
    kept: Vec<(Bytes, usize)>,
    /// Frames below [`KEPT_FRAME_BYTES_MIN`] read since the last large one.
    small_frames_in_a_row: u32,
}

impl FrameBuffers {
    /// An empty buffer with room for `size_bytes`: the smallest kept frame nothing else holds
    /// any more that is large enough, else a new allocation — for a large frame, rounded up
    /// to a multiple of [`KEPT_FRAME_BYTES_MIN`], so the next frames of about its size fit
    /// in it (a consumer's responses differ by a few hundred KB).
    pub(crate) fn buffer(&mut self, size_bytes: usize) -> BytesMut {
        if size_bytes < KEPT_FRAME_BYTES_MIN {
            self.small_frames_in_a_row = self.small_frames_in_a_row.saturating_add(1);
            if self.small_frames_in_a_row >= KEPT_IDLE_FRAMES_MAX {
                // A frame still held elsewhere lives on in its holder's `Bytes`.
                self.kept.clear();
            }
            return BytesMut::with_capacity(size_bytes);
        }
        self.small_frames_in_a_row = 0;
        let free = (0..self.kept.len())
            .filter(|&i| self.kept[i].1 >= size_bytes && self.kept[i].0.is_unique())
            .min_by_key(|&i| self.kept[i].1);
        if let Some(index) = free {
            // Unique, so the conversion keeps the allocation (and cannot fail).
            if let Ok(mut buffer) = self.kept.swap_remove(index).0.try_into_mut() {
                buffer.clear();
                return buffer;
            }
        }
        let rounded = size_bytes.checked_next_multiple_of(KEPT_FRAME_BYTES_MIN);
        BytesMut::with_capacity(rounded.unwrap_or(size_bytes))
    }

    /// Reads a frame body of `size_bytes` into uninitialised capacity (zero-filling a large
    /// fetch response first cost as much as the kernel's copy into it), a large one into a
    /// kept buffer when one is free.
    pub(crate) async fn read_body<R: AsyncRead + Unpin>(
        &mut self,
        read: &mut R,
        size_bytes: usize,
    ) -> std::io::Result<Bytes> {
        let mut frame = self.buffer(size_bytes);
        let capacity = frame.capacity();
        // Each read adds ≥ 1 byte or ends the loop, so this runs at most `size_bytes` times.
        while frame.len() < size_bytes {
            let want = size_bytes - frame.len();
            if read.read_buf(&mut (&mut frame).limit(want)).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let frame = frame.freeze();
        self.keep(&frame, capacity);
        Ok(frame)
    }

    /// Keeps `frame` (a clone: the same memory), read into a buffer of `capacity` bytes, for
    /// a later read if it is large; the smallest kept one goes when there are too many.
    pub(crate) fn keep(&mut self, frame: &Bytes, capacity: usize) {
        if frame.len() < KEPT_FRAME_BYTES_MIN {
            return;
        }
        if self.kept.len() >= KEPT_FRAMES_MAX {
            if let Some(smallest) = (0..self.kept.len()).min_by_key(|&i| self.kept[i].1) {
                self.kept.swap_remove(smallest);
            }
        }
        self.kept.push((frame.clone(), capacity));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(buffers: &mut FrameBuffers, size_bytes: usize, fill: u8) -> Bytes {
        let mut buffer = buffers.buffer(size_bytes);
        let capacity = buffer.capacity();
        buffer.put_bytes(fill, size_bytes);
        let frame = buffer.freeze();
        buffers.keep(&frame, capacity);
        frame
    }

    /// A frame's memory is read into again once every slice of it is dropped, not before;
    /// small frames are never kept.
    #[test]
    fn a_large_frame_is_reused_once_nothing_holds_it() {
        let mut buffers = FrameBuffers::default();
        let size = KEPT_FRAME_BYTES_MIN + 100;
        let first = frame(&mut buffers, size, 1);
        let records = first.slice(100..200);
        let first_at = first.as_ptr();
        drop(first);
        let second = frame(&mut buffers, size, 2);
        let second_at = second.as_ptr();
        assert_ne!(second_at, first_at, "a slice still holds the first");
        drop(records);
        drop(second);
        let third = buffers.buffer(size - 10);
        assert!(third.is_empty() && third.capacity() >= size);
        assert!(
            [first_at, second_at].contains(&third.as_ptr()),
            "a kept frame is reused"
        );
        assert_eq!(buffers.kept.len(), 1, "taken out while in use");
        let small = frame(&mut buffers, 1024, 3);
        assert!(buffers.kept.iter().all(|(kept, _)| kept.len() >= size));
        drop(small);
    }

    /// A frame read in pieces arrives whole; a large one's buffer is read into again once
    /// the frame is dropped; a peer gone mid-frame is an error.
    #[tokio::test]
    async fn frames_are_read_whole_into_kept_buffers() {
        use tokio::io::AsyncWriteExt;
        let mut buffers = FrameBuffers::default();
        let size = KEPT_FRAME_BYTES_MIN + 1;
        let (mut writer, mut reader) = tokio::io::duplex(64 * 1024);
        let sending = tokio::spawn(async move {
            for fill in [1u8, 2] {
                writer.write_all(&vec![fill; size]).await.unwrap();
            }
            writer.write_all(&[3; 10]).await.unwrap();
        });
        let first = buffers.read_body(&mut reader, size).await.unwrap();
        assert!(first.len() == size && first.iter().all(|&b| b == 1));
        let first_at = first.as_ptr();
        drop(first);
        assert_eq!(buffers.kept.len(), 1, "kept");
        let second = buffers.read_body(&mut reader, size).await.unwrap();
        assert!(second.iter().all(|&b| b == 2));
        // The kept buffer taken back, not one the allocator happened to hand out at the same
        // place: the only kept frame is now the second, in the first one's memory.
        assert_eq!(second.as_ptr(), first_at, "the first frame's buffer");
        assert_eq!(buffers.kept.len(), 1);
        assert_eq!(buffers.kept[0].0.as_ptr(), first_at);
        sending.await.unwrap();
        let cut = buffers.read_body(&mut reader, 11).await;
        assert_eq!(cut.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }

    /// No more than [`KEPT_FRAMES_MAX`] are kept; a frame larger than every kept one is a
    /// new allocation, rounded up; one a little larger than another fits its rounded buffer.
    #[test]
    fn the_kept_frames_are_bounded() {
        let mut buffers = FrameBuffers::default();
        let frames: Vec<Bytes> = (0..5)
            .map(|i| frame(&mut buffers, KEPT_FRAME_BYTES_MIN + i, 0))
            .collect();
        assert_eq!(buffers.kept.len(), KEPT_FRAMES_MAX);
        drop(frames);
        let larger = buffers.buffer(2 * KEPT_FRAME_BYTES_MIN + 1);
        assert!(larger.capacity() >= 3 * KEPT_FRAME_BYTES_MIN, "rounded up");
        assert_eq!(buffers.kept.len(), KEPT_FRAMES_MAX, "none large enough");
        let similar = buffers.buffer(KEPT_FRAME_BYTES_MIN + 5_000);
        assert!(similar.capacity() >= KEPT_FRAME_BYTES_MIN + 5_000);
        assert_eq!(
            buffers.kept.len(),
            KEPT_FRAMES_MAX - 1,
            "a larger neighbour taken"
        );
    }

    /// Kept frames go after [`KEPT_IDLE_FRAMES_MAX`] smaller frames in a row (not before);
    /// a large frame in between starts the count again.
    #[test]
    fn kept_frames_go_once_the_frames_are_small_again() {
        let mut buffers = FrameBuffers::default();
        drop(frame(&mut buffers, KEPT_FRAME_BYTES_MIN, 1));
        for _ in 1..KEPT_IDLE_FRAMES_MAX {
            frame(&mut buffers, 4096, 2);
        }
        assert_eq!(buffers.kept.len(), 1, "kept until the last small frame");
        drop(frame(&mut buffers, KEPT_FRAME_BYTES_MIN, 3));
        for _ in 1..KEPT_IDLE_FRAMES_MAX {
            frame(&mut buffers, 4096, 4);
        }
        assert_eq!(
            buffers.kept.len(),
            1,
            "the large frame started the count again"
        );
        frame(&mut buffers, 4096, 5);
        assert!(buffers.kept.is_empty());
    }
}
