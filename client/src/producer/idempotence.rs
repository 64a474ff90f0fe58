//! The idempotent producer (Java's `enable.idempotence`, on by default with acks=all): a
//! producer id and epoch from InitProducerId, and per partition a sequence number that each
//! batch takes as it is sealed (base sequence, then one per record), so the broker stores a
//! retried batch once and answers it with its original offset, and refuses a batch that
//! skips one (OUT_OF_ORDER_SEQUENCE_NUMBER) — which is what keeps up to five batches of a
//! partition in flight in order across retries.
//!
//! A batch that ends without being stored (failed, or expired at its delivery deadline —
//! in flight, its fate unknown) leaves a gap the broker would never accept past, and an
//! answer saying the broker has lost this producer (UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH,
//! or OUT_OF_ORDER_SEQUENCE_NUMBER for the batch right after the last one acknowledged) means
//! the same. Then, as Java's idempotent producer does (KIP-360), the producer bumps its
//! epoch: it stops sending, waits until nothing is in flight, asks InitProducerId for the next
//! epoch of its id (a fresh id from a broker before v3), and numbers every waiting batch again
//! from 0 per partition under the new epoch. As in Java, a batch re-numbered after an attempt
//! whose answer never came may then be stored twice; nothing acknowledged is lost.

use kafka_protocol::messages::InitProducerIdRequest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::cluster::Cluster;
use crate::error::{codes, Error, Result};
use crate::retry::Retry;

/// Batches of one partition an idempotent producer may have in flight: the broker remembers
/// the last five batches per producer and partition for duplicate detection (Kafka's bound,
/// and Java's limit on `max.in.flight.requests.per.connection` with idempotence).
pub const IN_FLIGHT_PER_PARTITION_IDEMPOTENT_MAX: usize = 5;

/// Java's `transaction.timeout.ms` default, which its idempotent producer sends too.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// The producer id and epoch batches are sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity {
    pub producer_id: i64,
    pub epoch: i16,
}

/// The identity in use and whether it must be bumped (a gap in some partition's sequence).
pub(super) struct Idempotence {
    /// Read as batches are sealed and replaced by a bump, both under the accumulator's
    /// queues lock, so every batch sealed after a bump carries the new epoch.
    identity: Mutex<Identity>,
    bump_requested: AtomicBool,
}

impl Idempotence {
    /// Asks the cluster for a producer id, retrying retriable failures until `max_block_ms`
    /// (the shared [`Retry`] loop); a failure that lasts that long ends with its last error.
    pub async fn init(
        cluster: &Cluster,
        max_block_ms: u64,
        backoff_ms: u64,
        backoff_max_ms: u64,
    ) -> Result<Idempotence> {
        let mut retry = Retry::within(max_block_ms, backoff_ms, backoff_max_ms);
        let identity = loop {
            match init_producer_id(cluster, None).await {
                Ok(identity) => break identity,
                Err(e) => {
                    let retriable = e.is_retriable();
                    match retry
                        .after(e, retriable, || "InitProducerId".to_owned())
                        .await
                    {
                        Ok(()) => {}
                        Err(Error::ApiTimeout { last_error, .. }) => return Err(*last_error),
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        Ok(Idempotence {
            identity: Mutex::new(identity),
            bump_requested: AtomicBool::new(false),
        })
    }

    /// An idempotence already holding `identity` (tests without a broker).
    #[cfg(test)]
    pub fn holding(identity: Identity) -> Idempotence {
        Idempotence {
            identity: Mutex::new(identity),
            bump_requested: AtomicBool::new(false),
        }
    }

    pub fn identity(&self) -> Identity {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A partition's sequence has a gap (or the broker lost this producer): no batch goes
    /// out until the epoch is bumped.
    pub fn request_bump(&self, why: &str) {
        if !self.bump_requested.swap(true, Ordering::AcqRel) {
            tracing::debug!(why, "idempotent producer: epoch bump needed");
        }
    }

    pub fn bump_requested(&self) -> bool {
        self.bump_requested.load(Ordering::Acquire)
    }

    /// The next identity from the cluster (the caller installs it with [`install`]).
    ///
    /// [`install`]: Self::install
    pub async fn next_identity(&self, cluster: &Cluster) -> Result<Identity> {
        init_producer_id(cluster, Some(self.identity())).await
    }

    /// Makes `identity` the one batches are sealed with and lifts the hold on sending
    /// (called under the accumulator's queues lock, as the waiting batches are renumbered).
    pub fn install(&self, identity: Identity) {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
        self.bump_requested.store(false, Ordering::Release);
    }
}

/// InitProducerId: a new id, or (`current`, from v3: KIP-360) the next epoch of this one.
async fn init_producer_id(cluster: &Cluster, current: Option<Identity>) -> Result<Identity> {
    let conn = cluster.any_broker().await?;
    let response = conn
        .send_with(|version| {
            let (producer_id, epoch) = match current {
                Some(identity) if version >= 3 => (identity.producer_id, identity.epoch),
                _ => (-1, -1),
            };
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
                .with_producer_id(producer_id.into())
                .with_producer_epoch(epoch)
        })
        .await?;
    if response.error_code != 0 {
        return Err(Error::Broker {
            code: response.error_code,
            context: "InitProducerId".to_owned(),
        });
    }
    Ok(Identity {
        producer_id: response.producer_id.0,
        epoch: response.producer_epoch,
    })
}

/// The sequence `count` records after `sequence`: sequences wrap from `i32::MAX` to 0, as
/// Kafka's do.
pub(super) fn sequence_after(sequence: i32, count: i32) -> i32 {
    let next = i64::from(sequence) + i64::from(count.max(0));
    let wrapped = next.rem_euclid(i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).unwrap_or(0)
}

/// Whether sequence `a` comes after `b` (with wrapping: within half the range ahead).
pub(super) fn sequence_is_after(a: i32, b: i32) -> bool {
    let ahead = (i64::from(a) - i64::from(b)).rem_euclid(i64::from(i32::MAX) + 1);
    ahead != 0 && ahead <= i64::from(i32::MAX / 2)
}

/// What an idempotent batch's error answer asks of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SequenceAnswer {
    /// Not a sequence error: the ordinary retry rules apply.
    Ordinary,
    /// Send it again as it is: a batch before it in the partition is not stored yet (it is
    /// being retried, or failed and a bump is already coming).
    Retry,
    /// Send it again after an epoch bump: the broker has lost this producer's sequence.
    RetryAfterBump,
}

/// Reads an error `code` for a batch whose base sequence is `base_sequence`, given the
/// partition's last sequence acknowledged in this epoch (`None`: none yet), looked up only
/// for an out-of-order answer.
pub(super) fn sequence_answer(
    code: i16,
    base_sequence: i32,
    last_acked: impl FnOnce() -> Option<i32>,
) -> SequenceAnswer {
    match code {
        codes::OUT_OF_ORDER_SEQUENCE_NUMBER => {
            let expected = last_acked().map_or(0, |last| sequence_after(last, 1));
            if sequence_is_after(base_sequence, expected) {
                SequenceAnswer::Retry
            } else {
                // The batch follows the last one the broker acknowledged (or a later batch
                // was acknowledged before it), yet it is out of order: the broker's state
                // for this producer is not ours, and sending it as it is cannot succeed.
                SequenceAnswer::RetryAfterBump
            }
        }
        codes::UNKNOWN_PRODUCER_ID | codes::INVALID_PRODUCER_EPOCH => {
            SequenceAnswer::RetryAfterBump
        }
        _ => SequenceAnswer::Ordinary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_from_max_to_zero() {
        assert_eq!(sequence_after(0, 5), 5);
        assert_eq!(sequence_after(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(sequence_after(i32::MAX, 1), 0);
        assert_eq!(sequence_after(i32::MAX - 1, 5), 3);
        assert!(sequence_is_after(5, 4) && !sequence_is_after(4, 5) && !sequence_is_after(4, 4));
        assert!(sequence_is_after(2, i32::MAX - 2));
    }

    #[test]
    fn out_of_order_behind_an_unacknowledged_batch_is_retried_as_it_is() {
        let ooo = codes::OUT_OF_ORDER_SEQUENCE_NUMBER;
        // Batches 0..9 acknowledged; 20 waits for 10..19 to land.
        assert_eq!(sequence_answer(ooo, 20, || Some(9)), SequenceAnswer::Retry);
        // 10 is what the broker should expect: it has lost this producer's sequence.
        assert_eq!(
            sequence_answer(ooo, 10, || Some(9)),
            SequenceAnswer::RetryAfterBump
        );
        assert_eq!(
            sequence_answer(ooo, 0, || None),
            SequenceAnswer::RetryAfterBump
        );
        assert_eq!(
            sequence_answer(ooo, 0, || Some(i32::MAX)),
            SequenceAnswer::RetryAfterBump
        );
        // A later batch was acknowledged first (a broker that had forgotten the producer
        // took it at any sequence): this one can never go in as it is.
        assert_eq!(
            sequence_answer(ooo, 0, || Some(19)),
            SequenceAnswer::RetryAfterBump
        );
        for code in [codes::UNKNOWN_PRODUCER_ID, codes::INVALID_PRODUCER_EPOCH] {
            assert_eq!(
                sequence_answer(code, 20, || Some(9)),
                SequenceAnswer::RetryAfterBump
            );
        }
        assert_eq!(sequence_answer(7, 20, || Some(9)), SequenceAnswer::Ordinary);
    }
}
