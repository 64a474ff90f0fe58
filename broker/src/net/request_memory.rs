//! The broker-wide bound on request frames held in memory: `queued_request_bytes_max`
//! (Kafka's `queued.max.request.bytes`).
//!
//! Each connection bounds what it reads ahead of its applier, but 10 000 connections at that
//! bound would hold tens of GiB. So a connection reads a frame's body only once it holds
//! room for the whole frame here, from its size prefix until it is applied; what all
//! connections hold together stays at or below the bound. At the bound a connection stops
//! reading (TCP back-pressure, as Kafka mutes a channel when its memory pool is empty) and
//! room goes to the waiting connections in the order they asked. A frame larger than the
//! bound takes all of it and is read alone.
//!
//! Room is taken for the whole frame at once: taken as bytes arrive, two connections
//! halfway through large frames could each wait for the other's room forever. The price is
//! that a client that announces a frame and sends it slowly holds that room until the
//! request timeout closes it, and one whose answers back up (it does not read them) holds
//! the frames it sent ahead until it does; the wait itself has no timeout, since room comes
//! back as frames are applied and applying needs none.
//!
//! The same room, unmetered ([`RequestMemory::unmetered`]), bounds what one connection reads
//! ahead of its applier, and the Fetch answers it holds until they are written.
//!
//! Thread-safe: shared by every connection through their [`ConnectionLimits`].
//!
//! [`ConnectionLimits`]: super::connection::ConnectionLimits

use std::sync::Arc;

use metrics::{Counter, Gauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Room for request frames: all connections' (metered) or one connection's read-ahead.
pub struct RequestMemory {
    capacity_bytes: u32,
    free: Arc<Semaphore>,
    /// Bytes held now (`runnel_request_queue_bytes`).
    queued: Gauge,
    /// Frames that had to wait for room (`runnel_request_memory_waits_total`).
    waits: Counter,
}

/// One frame's room; given back (and the gauge lowered) when dropped.
#[must_use = "the room is given back as soon as it is dropped"]
pub struct RequestRoom {
    _permit: OwnedSemaphorePermit,
    bytes: u32,
    queued: Gauge,
}

impl RequestMemory {
    /// `capacity_bytes` is clamped to `1..=u32::MAX` (the config allows `1..=i32::MAX`).
    pub fn new(capacity_bytes: usize, queued: Gauge, waits: Counter) -> RequestMemory {
        let capacity_bytes = u32::try_from(capacity_bytes.max(1)).unwrap_or(u32::MAX);
        RequestMemory {
            capacity_bytes,
            free: Arc::new(Semaphore::new(capacity_bytes as usize)),
            queued,
            waits,
        }
    }

    /// Room with no metrics (one connection's read-ahead).
    pub fn unmetered(capacity_bytes: usize) -> RequestMemory {
        RequestMemory::new(capacity_bytes, Gauge::noop(), Counter::noop())
    }

    /// Room for a frame of `frame_bytes` (all of the bound for a larger one), waiting for
    /// other frames to be applied when there is not enough. `None` only if the room was
    /// closed, which nothing does.
    pub async fn reserve(&self, frame_bytes: usize) -> Option<RequestRoom> {
        let bytes = u32::try_from(frame_bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity_bytes);
        let permit = match Arc::clone(&self.free).try_acquire_many_owned(bytes) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                self.waits.increment(1);
                Arc::clone(&self.free)
                    .acquire_many_owned(bytes)
                    .await
                    .ok()?
            }
        };
        self.queued.increment(f64::from(bytes));
        Some(RequestRoom {
            _permit: permit,
            bytes,
            queued: self.queued.clone(),
        })
    }

    /// Bytes not held by any frame now.
    pub fn available_bytes(&self) -> usize {
        self.free.available_permits()
    }
}

impl std::fmt::Debug for RequestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMemory")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("available_bytes", &self.available_bytes())
            .finish()
    }
}

impl Drop for RequestRoom {
    fn drop(&mut self) {
        self.queued.decrement(f64::from(self.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn memory(capacity_bytes: usize) -> RequestMemory {
        RequestMemory::unmetered(capacity_bytes)
    }

    async fn reserve(memory: &RequestMemory, frame_bytes: usize) -> RequestRoom {
        memory.reserve(frame_bytes).await.expect("never closed")
    }

    #[tokio::test]
    async fn room_is_taken_for_whole_frames_and_given_back_on_drop() {
        let memory = memory(3_000);
        let a = reserve(&memory, 2_000).await;
        assert_eq!(memory.available_bytes(), 1_000);
        // 1 500 bytes do not fit until `a` goes.
        let waiting = tokio::time::timeout(Duration::from_millis(50), memory.reserve(1_500));
        assert!(waiting.await.is_err());
        drop(a);
        let b = reserve(&memory, 1_500).await;
        assert_eq!(memory.available_bytes(), 1_500);
        drop(b);
        assert_eq!(memory.available_bytes(), 3_000);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_bound_takes_all_of_it_and_empty_ones_take_a_byte() {
        let memory = memory(3_000);
        let large = reserve(&memory, 1 << 40).await;
        assert_eq!(memory.available_bytes(), 0);
        drop(large);
        let empty = reserve(&memory, 0).await;
        assert_eq!(memory.available_bytes(), 2_999);
        drop(empty);
    }
}
