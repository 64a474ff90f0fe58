//! Delivery results: one [`BatchOutcome`] per batch, shared by the [`DeliveryFuture`]s of
//! its records, so a record costs no channel and no allocation of its own.
//!
//! The sender completes a batch once ([`BatchOutcome::complete`] or `fail`); every future
//! of that batch then reads the same outcome and derives its record's offset from the batch
//! base offset and its index. A batch dropped without an outcome (the producer went away)
//! completes its futures with [`Error::Closed`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::error::{Error, Result};

/// Where an acknowledged record landed. `offset` is -1 with `Acks::None`.
///
/// ```no_run
/// # async fn example(producer: runnel_client::Producer) -> runnel_client::Result<()> {
/// let metadata: runnel_client::RecordMetadata =
///     producer.send(runnel_client::ProducerRecord::new("t", "v")).await?.await?;
/// assert!(metadata.offset >= 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// How a batch ended.
#[derive(Debug)]
enum Outcome {
    Stored {
        topic: Arc<str>,
        partition: i32,
        /// -1 when the broker gave no offset (acks=0).
        base_offset: i64,
    },
    /// A broker error code (`None`: a client-side failure) and its description.
    Failed {
        code: Option<i16>,
        message: String,
    },
    /// Not delivered within `delivery_timeout_ms`: kept whole, so every record's future
    /// gets [`Error::DeliveryTimeout`] with the topic, partition and timeout.
    Expired {
        topic: String,
        partition: i32,
        timeout_ms: u64,
        last_error: String,
    },
    Closed,
}

/// The shared completion of one batch: set once, read by every record's future.
///
/// Cache-line aligned so that the `Arc`'s reference count (bumped by the sending task for
/// every record) does not share a line with the outcome and wakers (touched by the tasks
/// awaiting deliveries): sharing one made that increment the producer's hottest
/// instruction (cross-core line bouncing).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct BatchOutcome {
    outcome: OnceLock<(Outcome, Instant)>,
    /// Futures polled before the outcome; woken (and cleared) when it is set.
    wakers: Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    pub fn complete(&self, topic: Arc<str>, partition: i32, base_offset: i64) {
        self.set(Outcome::Stored {
            topic,
            partition,
            base_offset,
        });
    }

    pub fn fail(&self, error: &Error) {
        let outcome = match error {
            Error::DeliveryTimeout {
                topic,
                partition,
                timeout_ms,
                last_error,
            } => Outcome::Expired {
                topic: topic.clone(),
                partition: *partition,
                timeout_ms: *timeout_ms,
                last_error: last_error.clone(),
            },
            _ => Outcome::Failed {
                code: error.code(),
                message: error.to_string(),
            },
        };
        self.set(outcome);
    }

    fn set(&self, outcome: Outcome) {
        // Only the first outcome counts (a batch completes once; `Drop` is a fallback).
        let _ = self.outcome.set((outcome, Instant::now()));
        let wakers = std::mem::take(&mut *self.lock_wakers());
        for waker in wakers {
            waker.wake();
        }
    }

    fn lock_wakers(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The accumulator's handle on a batch's outcome: completes it with `Closed` if the batch
/// is dropped (producer shut down) before the sender completed it.
#[derive(Debug, Default)]
pub(crate) struct Completer(pub Arc<BatchOutcome>);

impl Drop for Completer {
    fn drop(&mut self) {
        if self.0.outcome.get().is_none() {
            self.0.set(Outcome::Closed);
        }
    }
}

/// Resolves when the record is acknowledged (or has failed for good).
///
/// ```no_run
/// # async fn example(producer: runnel_client::Producer) -> runnel_client::Result<()> {
/// let delivery = producer.send(runnel_client::ProducerRecord::new("t", "v")).await?;
/// let metadata = delivery.await?;
/// println!("{}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeliveryFuture {
    batch: Arc<BatchOutcome>,
    /// The record's offset delta in its batch.
    index: i64,
    timestamp_ms: i64,
    /// This future's slot in `batch.wakers`, once registered.
    waker_slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(batch: Arc<BatchOutcome>, index: i64, timestamp_ms: i64) -> Self {
        DeliveryFuture {
            batch,
            index,
            timestamp_ms,
            waker_slot: None,
        }
    }

    /// When the broker's answer for this record's batch arrived (or the batch failed);
    /// `None` while it is pending. Lets a caller that notices completions late (a
    /// benchmark's collector) still measure the true send → acknowledgement time.
    pub fn completed_at(&self) -> Option<Instant> {
        self.batch.outcome.get().map(|(_, at)| *at)
    }

    fn result(&self, outcome: &Outcome) -> Result<RecordMetadata> {
        match outcome {
            Outcome::Stored {
                topic,
                partition,
                base_offset,
            } => Ok(RecordMetadata {
                topic: topic.clone(),
                partition: *partition,
                offset: if *base_offset < 0 {
                    -1
                } else {
                    base_offset.saturating_add(self.index)
                },
                timestamp_ms: self.timestamp_ms,
            }),
            Outcome::Failed {
                code: Some(code),
                message,
            } => Err(Error::Broker {
                code: *code,
                context: message.clone(),
            }),
            Outcome::Failed {
                code: None,
                message,
            } => Err(Error::Protocol(message.clone())),
            Outcome::Expired {
                topic,
                partition,
                timeout_ms,
                last_error,
            } => Err(Error::DeliveryTimeout {
                topic: topic.clone(),
                partition: *partition,
                timeout_ms: *timeout_ms,
                last_error: last_error.clone(),
            }),
            Outcome::Closed => Err(Error::Closed),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((outcome, _)) = this.batch.outcome.get() {
            return Poll::Ready(this.result(outcome));
        }
        let mut wakers = this.batch.lock_wakers();
        // Checked again under the lock: `set` stores the outcome before it takes the wakers.
        if let Some((outcome, _)) = this.batch.outcome.get() {
            drop(wakers);
            return Poll::Ready(this.result(outcome));
        }
        match this.waker_slot.and_then(|slot| wakers.get_mut(slot)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                this.waker_slot = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn every_record_of_a_batch_reads_the_shared_outcome() {
        let completer = Completer::default();
        let first = DeliveryFuture::new(completer.0.clone(), 0, 10);
        let mut second = DeliveryFuture::new(completer.0.clone(), 1, 11);
        assert!((&mut second).now_or_never().is_none());
        assert!(second.completed_at().is_none());
        let waiting = tokio::spawn(second);
        tokio::task::yield_now().await;
        completer.0.complete(Arc::from("t"), 3, 40);
        let second = waiting.await.unwrap().unwrap();
        let first = first.await.unwrap();
        assert_eq!((first.offset, first.timestamp_ms), (40, 10));
        assert_eq!((second.offset, second.timestamp_ms), (41, 11));
        assert_eq!((&*second.topic, second.partition), ("t", 3));
    }

    #[tokio::test]
    async fn failures_and_dropped_batches_complete_every_future() {
        let completer = Completer::default();
        let failed = DeliveryFuture::new(completer.0.clone(), 0, 0);
        completer.0.fail(&Error::Broker {
            code: 10,
            context: "too large".to_owned(),
        });
        assert!(matches!(failed.await, Err(Error::Broker { code: 10, .. })));
        let completer = Completer::default();
        let orphan = DeliveryFuture::new(completer.0.clone(), 0, 0);
        drop(completer);
        assert!(matches!(orphan.await, Err(Error::Closed)));
    }

    #[tokio::test]
    async fn acks_none_reports_no_offset() {
        let completer = Completer::default();
        let delivery = DeliveryFuture::new(completer.0.clone(), 5, 0);
        completer.0.complete(Arc::from("t"), 0, -1);
        assert_eq!(delivery.await.unwrap().offset, -1);
    }
}
