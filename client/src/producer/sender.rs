//! The sender task: drains ready batches, groups them by leader, and sends one Produce
//! request per broker (at most `in_flight_per_broker_max` at once per broker). Completes,
//! retries (retriable errors, with backoff; a background metadata refresh when the error
//! says the leader may have moved) or fails each batch.
//! Leaders come from cached metadata only: a batch whose leader is not known waits for a
//! background lookup, so one topic without a leader never delays the others.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use super::accumulator::{Accumulator, SealedBatch, TopicPartition};
use super::idempotence::{sequence_answer, SequenceAnswer};
use super::{Acks, ProducerConfig};
use crate::cluster::topic_name;
use crate::error::{codes, Error};

/// Stops the sender task when the last producer clone is dropped (after what is queued
/// has had a chance to go: callers flush first if they care).
pub(crate) struct SenderHandle {
    task: JoinHandle<()>,
}

impl Drop for SenderHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn spawn(accumulator: Arc<Accumulator>) -> SenderHandle {
    SenderHandle {
        task: tokio::spawn(run(accumulator)),
    }
}

/// Longest the sender sleeps with nothing due (it is woken earlier by new batches).
const IDLE_WAIT_MS: u64 = 100;

async fn run(accumulator: Arc<Accumulator>) {
    let mut brokers: HashMap<i32, Arc<Semaphore>> = HashMap::new();
    let mut write_orders: HashMap<i32, Arc<WriteOrder>> = HashMap::new();
    let lookups = Lookups::default();
    let mut bump_retry_at: Option<Instant> = None;
    loop {
        let wake = accumulator.wake_sender.notified();
        bump_epoch_if_due(&accumulator, &mut bump_retry_at).await;
        let (ready, next) = accumulator.drain(Instant::now());
        let mut by_leader: HashMap<i32, Vec<SealedBatch>> = HashMap::new();
        // Only cached leaders: a topic without one is looked up in the background while
        // its batches wait, so it never holds up the batches of topics whose leaders are
        // known (a lookup waits up to seconds for a topic being created).
        for batch in ready {
            let (topic, partition) = &batch.partition;
            match accumulator.cluster().cached_leader(topic, *partition) {
                Some(leader) => by_leader.entry(leader).or_default().push(batch),
                None => match lookups.start_or_result(&accumulator, topic) {
                    Some(error) => retry_or_fail(&accumulator, batch, error),
                    None => accumulator.defer(batch),
                },
            }
        }
        let request_bytes_max = accumulator.config.max_request_bytes;
        for (leader, batches) in by_leader {
            let limit = accumulator.config.in_flight_per_broker_max;
            let slots = brokers
                .entry(leader)
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone();
            // Order matters only where a partition has several batches in flight; one in
            // flight (the default) is ordered by waiting for its answer.
            let order = (accumulator.config.in_flight_per_partition() > 1)
                .then(|| write_orders.entry(leader).or_default().clone());
            for batches in requests_of(batches, |b| b.bytes.len(), request_bytes_max) {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let accumulator = accumulator.clone();
                let ticket = order.as_ref().map(|order| order.issue());
                tokio::spawn(async move {
                    send_to(&accumulator, leader, batches, ticket).await;
                    drop(permit);
                });
            }
        }
        let idle = Instant::now() + Duration::from_millis(IDLE_WAIT_MS);
        let deadline = [next, bump_retry_at]
            .into_iter()
            .flatten()
            .fold(idle, Instant::min);
        tokio::select! {
            _ = wake => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// An idempotent producer's epoch bump, once one is needed and nothing is in flight (the
/// drain holds numbered batches meanwhile): the next epoch from InitProducerId, then every
/// waiting batch renumbered. A failed request is tried again `retry_backoff_ms` later.
async fn bump_epoch_if_due(accumulator: &Accumulator, retry_at: &mut Option<Instant>) {
    let Some(idempotence) = accumulator.idempotence() else {
        return;
    };
    if !idempotence.bump_requested()
        || accumulator.in_flight_total() > 0
        || retry_at.is_some_and(|at| at > Instant::now())
    {
        return;
    }
    let bump = idempotence.next_identity(accumulator.cluster());
    let timeout = Duration::from_millis(accumulator.config.client.connection.request_timeout_ms);
    match tokio::time::timeout(timeout, bump).await {
        Ok(Ok(identity)) => {
            *retry_at = None;
            accumulator.renumber(identity);
        }
        outcome => {
            let error = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::debug!(%error, "idempotent producer: epoch bump failed; trying again");
            *retry_at =
                Some(Instant::now() + Duration::from_millis(accumulator.config.retry_backoff_ms));
        }
    }
}

/// What the sender knows of its background metadata lookups (one at a time per topic):
/// running, or found the topic not worth waiting for (the code of the broker's answer).
#[derive(Default, Clone)]
struct Lookups(Arc<std::sync::Mutex<HashMap<Arc<str>, Option<i16>>>>);

impl Lookups {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Option<i16>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For a batch of `topic` without a known leader: the error that ends it when the last
    /// lookup found the topic gone (that result is used up), else `None` after starting a
    /// lookup unless one is running. The lookup wakes the sender when done.
    fn start_or_result(&self, accumulator: &Arc<Accumulator>, topic: &Arc<str>) -> Option<Error> {
        let mut map = self.map();
        match map.get(topic) {
            Some(Some(code)) => {
                let code = *code;
                map.remove(topic);
                return Some(match code {
                    codes::UNKNOWN_TOPIC_OR_PARTITION => {
                        Error::UnknownTopicOrPartition(topic.to_string())
                    }
                    code => Error::Broker {
                        code,
                        context: format!("metadata of {topic}"),
                    },
                });
            }
            Some(None) => return None,
            None => map.insert(topic.clone(), None),
        };
        drop(map);
        let (lookups, accumulator, topic) = (self.clone(), accumulator.clone(), topic.clone());
        tokio::spawn(async move {
            let found = match accumulator.cluster().refresh_topic(&topic).await {
                Ok(gone) => gone,
                Err(error) => {
                    tracing::debug!(%topic, %error, "metadata lookup failed; will ask again");
                    None
                }
            };
            match found {
                Some(code) => lookups.map().insert(topic, Some(code)),
                None => lookups.map().remove(&topic),
            };
            accumulator.wake_sender.notify_one();
        });
        None
    }
}

/// Splits one broker's batches, in order, into requests of at most `request_bytes_max`
/// (a larger batch goes alone), as Kafka's producer does (`max.request.size`): the broker
/// answers the first while it reads the next, and no request holds one of its workers for
/// longer than one request's worth of appends.
fn requests_of<B>(
    batches: Vec<B>,
    size_bytes: impl Fn(&B) -> usize,
    request_bytes_max: usize,
) -> Vec<Vec<B>> {
    let mut requests: Vec<Vec<B>> = Vec::new();
    let mut open_bytes = 0usize;
    for batch in batches {
        let batch_bytes = size_bytes(&batch);
        match requests.last_mut() {
            Some(open) if open_bytes.saturating_add(batch_bytes) <= request_bytes_max => {
                open_bytes += batch_bytes;
                open.push(batch);
            }
            _ => {
                open_bytes = batch_bytes;
                requests.push(vec![batch]);
            }
        }
    }
    requests
}

async fn send_to(
    accumulator: &Accumulator,
    leader: i32,
    mut batches: Vec<SealedBatch>,
    ticket: Option<Ticket>,
) {
    let request = produce_request(&accumulator.config, &batches);
    let exchange = exchange(accumulator, leader, &request, ticket);
    let (outcome, expired) = expire_in_flight(accumulator, leader, exchange, &mut batches).await;
    // A batch that expired in flight kept its partition in flight until its request ended
    // (as Java keeps the partition muted): a later batch sent meanwhile could be stored
    // before it, if the broker appends it after all.
    for partition in &expired {
        accumulator.done_in_flight(partition, None);
    }
    let response = match outcome {
        Ok(Some(response)) => response,
        Ok(None) => {
            // acks=0: written is all we will know.
            batches
                .into_iter()
                .for_each(|b| finish(accumulator, b, Ok(-1)));
            return;
        }
        Err(e) => return retry_all(accumulator, batches, &e),
    };
    let mut results: HashMap<(String, i32), (i16, i64)> = HashMap::new();
    for topic in response.responses {
        for partition in topic.partition_responses {
            results.insert(
                (topic.name.0.to_string(), partition.index),
                (partition.error_code, partition.base_offset),
            );
        }
    }
    for batch in batches {
        let key = (batch.partition.0.to_string(), batch.partition.1);
        let result = match results.get(&key) {
            Some((0, base_offset)) => Ok(*base_offset),
            // A retry of a batch stored so long ago the broker no longer has its offset:
            // stored, offset unknown (as Java).
            Some((codes::DUPLICATE_SEQUENCE_NUMBER, _)) if batch.base_sequence >= 0 => Ok(-1),
            Some((code, _)) => Err(Error::Broker {
                code: *code,
                context: format!("produce to {}-{}", key.0, key.1),
            }),
            None => Err(Error::Protocol(format!(
                "no produce result for {}-{}",
                key.0, key.1
            ))),
        };
        finish(accumulator, batch, result);
    }
}

/// One Produce request carrying `batches` (one per partition).
fn produce_request(config: &ProducerConfig, batches: &[SealedBatch]) -> ProduceRequest {
    let mut topics: HashMap<&str, Vec<PartitionProduceData>> = HashMap::new();
    for batch in batches {
        topics.entry(&batch.partition.0).or_default().push(
            PartitionProduceData::default()
                .with_index(batch.partition.1)
                .with_records(Some(batch.bytes.clone())),
        );
    }
    let topic_data = topics
        .into_iter()
        .map(|(topic, partitions)| {
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(partitions)
        })
        .collect();
    ProduceRequest::default()
        .with_acks(config.acks.wire())
        .with_timeout_ms(config.ack_timeout_ms)
        .with_topic_data(topic_data)
}

/// Connects to `leader` and sends `request` (with a ticket: once the requests made before it
/// have been written): its response, or `None` with acks=0.
async fn exchange(
    accumulator: &Accumulator,
    leader: i32,
    request: &ProduceRequest,
    ticket: Option<Ticket>,
) -> Result<Option<ProduceResponse>, Error> {
    let turn = match ticket {
        Some(ticket) => Some(ticket.turn().await),
        None => None,
    };
    let conn = accumulator.cluster().broker(leader).await?;
    if accumulator.config.acks == Acks::None {
        conn.send_no_response(request).await?;
        return Ok(None);
    }
    conn.send_noting_write(request, move || drop(turn))
        .await
        .map(Some)
}

/// The order in which requests to one broker are written: the sender numbers them as it
/// makes them, in drain order, and each request's task writes in its turn. Without it two
/// requests' tasks raced for the connection, so with more than one batch of a partition in
/// flight (`in_flight_per_partition_max`) a later batch could be written, and stored,
/// before an earlier one.
#[derive(Default)]
struct WriteOrder {
    issued: std::sync::atomic::AtomicU64,
    /// The number whose turn it is, and numbers given up ahead of their turn (a task that
    /// ended before its turn came) — at most one per request in flight.
    state: Mutex<(u64, BTreeSet<u64>)>,
    turn_changed: Notify,
}

impl WriteOrder {
    fn issue(self: &Arc<Self>) -> Ticket {
        let number = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ticket {
            order: self.clone(),
            number,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (u64, BTreeSet<u64>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number `number` is done with its turn (or gave it up): the turn moves past it and
    /// past every number already given up.
    fn release(&self, number: u64) {
        let mut state = self.state();
        let (serving, given_up) = &mut *state;
        given_up.insert(number);
        while given_up.remove(serving) {
            *serving += 1;
        }
        drop(state);
        self.turn_changed.notify_waiters();
    }
}

/// A request's place in its broker's [`WriteOrder`]; released when dropped (its turn, once
/// it comes, is skipped).
struct Ticket {
    order: Arc<WriteOrder>,
    number: u64,
}

impl Ticket {
    /// Waits until every request numbered before this one has written (or given up).
    async fn turn(self) -> Ticket {
        let order = self.order.clone();
        loop {
            let changed = order.turn_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if order.state().0 == self.number {
                return self;
            }
            changed.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.order.release(self.number);
    }
}

/// Awaits `exchange` while failing each of `batches` at its delivery deadline (KIP-91: a
/// request in flight does not extend `delivery_timeout_ms`, which would otherwise stretch
/// by up to `request_timeout_ms` for a batch sent, or retried, just before its deadline).
/// Expired batches are completed here and removed from `batches`, so the late response
/// is never applied to them; their partitions are returned, still in flight. One timer per
/// request, no per-record work.
async fn expire_in_flight<T>(
    accumulator: &Accumulator,
    leader: i32,
    exchange: impl std::future::Future<Output = T>,
    batches: &mut Vec<SealedBatch>,
) -> (T, Vec<TopicPartition>) {
    tokio::pin!(exchange);
    let timeout_ms = accumulator.config.delivery_timeout_ms;
    let mut expired = Vec::new();
    // Each pass that wakes at a deadline removes at least the batch it woke for.
    for _pass in 0..=batches.len() {
        let Some(deadline) = batches.iter().map(|b| b.deadline).min() else {
            break;
        };
        tokio::select! {
            biased;
            outcome = &mut exchange => return (outcome, expired),
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        let now = Instant::now();
        let (due, kept): (Vec<_>, Vec<_>) = batches.drain(..).partition(|b| b.deadline <= now);
        *batches = kept;
        for mut batch in due {
            let before = batch.last_error.take();
            batch.last_error = Some(match before {
                Some(before) => format!("still in flight to broker {leader} (before: {before})"),
                None => format!("still in flight to broker {leader}, no answer yet"),
            });
            tracing::debug!(topic = %batch.partition.0, partition = batch.partition.1,
                "batch expired in flight");
            expired.push(batch.partition.clone());
            let error = batch.expired(timeout_ms);
            accumulator.fail(batch, error);
        }
    }
    (exchange.await, expired)
}

fn finish(accumulator: &Accumulator, batch: SealedBatch, result: Result<i64, Error>) {
    let partition = batch.partition.clone();
    match result {
        Ok(base_offset) => {
            let acked_through = batch.last_sequence();
            accumulator.complete(batch, base_offset);
            accumulator.done_in_flight(&partition, acked_through);
        }
        Err(error) => {
            let answer = match &error {
                Error::Broker { code, .. } if batch.base_sequence >= 0 => {
                    sequence_answer(*code, batch.base_sequence, || {
                        accumulator.last_acked_sequence(&partition)
                    })
                }
                _ => SequenceAnswer::Ordinary,
            };
            match answer {
                SequenceAnswer::Ordinary => retry_or_fail(accumulator, batch, error),
                SequenceAnswer::Retry => retry_unless_expired(accumulator, batch, error),
                SequenceAnswer::RetryAfterBump => {
                    if let Some(idempotence) = accumulator.idempotence() {
                        idempotence.request_bump("the broker lost this producer's sequence");
                    }
                    retry_unless_expired(accumulator, batch, error)
                }
            }
        }
    }
}

fn retry_all(accumulator: &Accumulator, batches: Vec<SealedBatch>, error: &Error) {
    for batch in batches {
        retry_or_fail(accumulator, batch, error.clone());
    }
}

/// Requeues `batch` after a retriable `error` while its delivery deadline has not passed
/// (and `retries_max` allows); otherwise fails it — with [`Error::DeliveryTimeout`] when
/// time ran out, so the caller learns which bound ended it.
fn retry_or_fail(accumulator: &Accumulator, batch: SealedBatch, error: Error) {
    if !error.is_retriable() {
        let partition = batch.partition.clone();
        accumulator.fail(batch, error);
        accumulator.done_in_flight(&partition, None);
        return;
    }
    retry_unless_expired(accumulator, batch, error);
}

/// [`retry_or_fail`] for an error known to be worth retrying.
fn retry_unless_expired(accumulator: &Accumulator, mut batch: SealedBatch, error: Error) {
    let partition = batch.partition.clone();
    let config = &accumulator.config;
    if batch.attempts >= config.retries_max {
        accumulator.fail(batch, error);
        accumulator.done_in_flight(&partition, None);
        return;
    }
    batch.last_error = Some(error.to_string());
    if Instant::now() >= batch.deadline {
        let expired = batch.expired(config.delivery_timeout_ms);
        accumulator.fail(batch, expired);
        accumulator.done_in_flight(&partition, None);
        return;
    }
    tracing::debug!(topic = %partition.0, partition = partition.1, %error, "retrying batch");
    if error.invalidates_metadata() {
        accumulator.cluster().request_refresh(&partition.0);
    }
    accumulator.requeue(batch);
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod sender_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{requests_of, Ticket, WriteOrder};

    /// Requests write in the order they were numbered, whichever task gets going first; a
    /// number given up before its turn is skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_write_in_the_order_they_were_made() {
        let order = Arc::new(WriteOrder::default());
        let tickets: Vec<Ticket> = (0..8).map(|_| order.issue()).collect();
        let written = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Started last first; number 3 gives up before its turn.
        for ticket in tickets.into_iter().rev() {
            if ticket.number == 3 {
                drop(ticket);
                continue;
            }
            let written = written.clone();
            tasks.push(tokio::spawn(async move {
                let number = ticket.number;
                let turn = ticket.turn().await;
                tokio::task::yield_now().await; // a write takes a moment
                written.lock().unwrap().push(number);
                drop(turn);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*written.lock().unwrap(), [0, 1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn batches_are_split_into_requests_of_at_most_the_request_size_in_order() {
        let sizes = |batches: Vec<usize>, max| requests_of(batches, |b| *b, max);
        assert_eq!(
            sizes(vec![400, 500, 200, 900], 1000),
            vec![vec![400, 500], vec![200], vec![900]]
        );
        // A batch larger than a request goes alone; nothing is dropped.
        assert_eq!(
            sizes(vec![1500, 10, 1000], 1000),
            vec![vec![1500], vec![10], vec![1000]]
        );
        assert_eq!(sizes(vec![], 1000), Vec::<Vec<usize>>::new());
        assert_eq!(sizes(vec![1, 2, 3], 1000), vec![vec![1, 2, 3]]);
    }
}
