//! The accumulator's drain: which batches the sender takes now, and when it should look
//! again. Only a topic's pending partitions (those that may hold a batch) are looked at.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queues::PartitionQueue;
use super::{Accumulator, SealedBatch};

/// How much earlier than `created + linger_ms` a batch counts as due. The sender's timer
/// fires on the first whole millisecond at or after the time asked for (tokio's 1 ms wheel),
/// so a batch went out 0–1 ms after it was due: a 1 ms linger was 1–2 ms (1.5 on average).
/// With half a tick of slack it is 0.5–1.5 ms, `linger_ms` on average. e2e at 450 000 msg/s,
/// alternating: p50 1.8–1.9 ms against 2.4–2.6, p99 4.3 / 4.8 / 4.7 / 4.7 against 5.6 / 5.0 /
/// 5.0 / 5.1. A whole tick early (0–1 ms, like counting in whole milliseconds) made batches
/// smaller and the tail worse (session 6, BENCHMARKS.md).
const LINGER_TIMER_SLACK: Duration = Duration::from_micros(500);

impl Accumulator {
    /// Takes at most one sendable batch per partition not already in flight (sealing open
    /// batches that lingered long enough) and marks those partitions in flight. Also
    /// returns when the sender should look again. Only partitions that may hold a batch are
    /// looked at (each topic's `pending`), in ascending order as a walk of all would.
    pub fn drain(&self, now: Instant) -> (Vec<SealedBatch>, Option<Instant>) {
        // A batch is due this long after it opened (see `LINGER_TIMER_SLACK`).
        let linger =
            Duration::from_millis(self.config.linger_ms).saturating_sub(LINGER_TIMER_SLACK);
        let flushing = self.flushing.load(Ordering::Relaxed) > 0;
        let holding = self.idempotence().is_some_and(|i| i.bump_requested());
        let mut drained = Drained {
            now,
            linger,
            flushing,
            holding,
            ready: Vec::new(),
            next: None,
        };
        let mut queues = self.queues();
        for topic in queues.values_mut() {
            let mut advanced = Vec::new();
            // Bounded by the topic's partitions: a word per 64, a visit per pending one.
            for word in 0..topic.pending.word_count() {
                for index in topic.pending.in_word(word) {
                    let Some(queue) = topic.partitions.get_mut(index) else {
                        debug_assert!(false, "pending partition {index} has no queue");
                        topic.pending.remove(index);
                        continue;
                    };
                    let partition = i32::try_from(index).unwrap_or(i32::MAX);
                    if queue.in_flight < self.config.in_flight_per_partition()
                        && self.drain_queue(queue, &topic.name, partition, &mut drained)
                    {
                        advanced.push(partition);
                    }
                    if queue.is_idle() {
                        topic.pending.remove(index);
                    }
                }
            }
            for partition in advanced {
                topic.advance_sticky(partition);
            }
        }
        drop(queues);
        (drained.ready, drained.next)
    }

    /// [`drain`](Self::drain) of one partition with room for another batch in flight: seals
    /// its open batch if due, fails what passed its delivery deadline and takes the front
    /// batch if sendable.
    /// Returns whether the open batch was sealed (the sticky partition moves on).
    fn drain_queue(
        &self,
        queue: &mut PartitionQueue,
        topic: &Arc<str>,
        partition: i32,
        drained: &mut Drained,
    ) -> bool {
        let mut sealed_open = false;
        if queue.sealed.is_empty() {
            if let Some(open) = &queue.open {
                let due = open.created + drained.linger;
                if drained.flushing || due <= drained.now {
                    self.seal_open(queue, topic, partition);
                    sealed_open = true;
                } else {
                    drained.next_at(due);
                }
            }
        }
        // Batches past their delivery deadline fail here, whether they waited behind an
        // in-flight batch, for a retry or for a leader. Bounded by the queue.
        while queue
            .sealed
            .front()
            .is_some_and(|b| b.deadline <= drained.now && !b.bytes.is_empty())
        {
            if let Some(expired) = queue.sealed.pop_front() {
                let error = expired.expired(self.config.delivery_timeout_ms);
                self.fail(expired, error);
            }
        }
        let Some(front) = queue.sealed.front() else {
            return sealed_open;
        };
        if let Some(retry_at) = front.retry_at.filter(|at| *at > drained.now) {
            drained.next_at(retry_at);
            return sealed_open;
        }
        if drained.holding && front.base_sequence >= 0 {
            // Waits for the epoch bump, which renumbers it (the sender is woken then).
            return sealed_open;
        }
        if let Some(batch) = queue.sealed.pop_front() {
            // An empty batch failed while sealing; its records were completed.
            if !batch.bytes.is_empty() {
                queue.in_flight += 1;
                drained.ready.push(batch);
            }
        }
        sealed_open
    }
}

/// One drain's clock and settings, and what it has found so far.
struct Drained {
    now: Instant,
    /// How long after opening a batch is due.
    linger: Duration,
    /// Some caller is in `flush`: open batches are due now.
    flushing: bool,
    /// An idempotent producer waits for an epoch bump: numbered batches stay.
    holding: bool,
    ready: Vec<SealedBatch>,
    /// The earliest time the sender should look again.
    next: Option<Instant>,
}

impl Drained {
    fn next_at(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }
}
