use std::time::{Duration, Instant};

use runnel_protocol::batch::RecordBatch;

use super::*;
use crate::partitioner::partition_for_key;
use crate::producer::{ProducerConfig, ProducerRecord};

fn accumulator(config: impl FnOnce(&mut ProducerConfig)) -> Accumulator {
    let mut producer = ProducerConfig::new("127.0.0.1:1");
    producer.linger_ms = 1_000;
    // These tests drain at made-up times up to an hour ahead: no batch may expire there.
    producer.delivery_timeout_ms = i32::MAX as u64;
    // No producer id here (no broker): one batch per partition in flight by default.
    producer.idempotence = Some(false);
    config(&mut producer);
    Accumulator::new(Cluster::offline(&[("t", 4)]), producer, None)
}

/// An idempotent accumulator holding producer id 7, epoch 0, up to 5 batches of a partition
/// in flight, each record a batch of its own.
fn idempotent_accumulator() -> Accumulator {
    let mut producer = ProducerConfig::new("127.0.0.1:1");
    producer.linger_ms = 0;
    producer.batch_size_bytes = 1;
    producer.delivery_timeout_ms = i32::MAX as u64;
    let identity = Identity {
        producer_id: 7,
        epoch: 0,
    };
    let idempotence = Idempotence::holding(identity);
    Accumulator::new(Cluster::offline(&[("t", 4)]), producer, Some(idempotence))
}

/// (producer id, epoch, base sequence, record count) of a sealed batch, CRC checked.
fn producer_state(batch: &SealedBatch) -> (i64, i16, i32, i32) {
    let parsed = RecordBatch::parse(batch.bytes.clone()).expect("a batch");
    parsed.verify_crc().expect("its CRC holds");
    assert_eq!(parsed.base_sequence(), batch.base_sequence);
    (
        parsed.producer_id(),
        parsed.producer_epoch(),
        parsed.base_sequence(),
        parsed.record_count(),
    )
}

fn record(partition: i32, value_bytes: usize) -> ProducerRecord {
    ProducerRecord::new("t", vec![7u8; value_bytes])
        .with_partition(partition)
        .with_timestamp(1)
}

#[tokio::test]
async fn a_full_batch_is_sealed_and_drained_at_once() {
    let acc = accumulator(|c| c.batch_size_bytes = 4 * 1024);
    for _ in 0..8 {
        acc.append(record(0, 1000)).await.expect("append");
    }
    let (ready, _) = acc.drain(Instant::now());
    assert_eq!(ready.len(), 1, "one sealed batch for partition 0");
    let batch = RecordBatch::parse(ready[0].bytes.clone()).expect("valid batch");
    batch.verify_crc().expect("crc");
    assert!(batch.record_count() >= 3 && batch.size_bytes() <= 5 * 1024);
    let (more, _) = acc.drain(Instant::now());
    assert!(
        more.is_empty(),
        "the next batch waits for the one in flight"
    );
}

#[tokio::test]
async fn lingering_batches_wait_until_due_and_one_per_partition_is_in_flight() {
    let acc = accumulator(|c| c.linger_ms = 50);
    acc.append(record(1, 10)).await.expect("append");
    let now = Instant::now();
    let (ready, next) = acc.drain(now);
    assert!(ready.is_empty());
    let due = next.expect("a deadline");
    // Due half a millisecond early at most (the sender's timer slack), never at once.
    assert!(due > now + Duration::from_millis(40) && due <= now + Duration::from_millis(50));
    let (ready, _) = acc.drain(due);
    assert_eq!(ready.len(), 1);
    acc.append(record(1, 10)).await.expect("append");
    let (ready_again, _) = acc.drain(due + Duration::from_secs(1));
    assert!(
        ready_again.is_empty(),
        "partition 1 still has a batch in flight"
    );
    acc.complete(ready.into_iter().next().expect("batch"), 40);
}

/// With `in_flight_per_partition_max` above 1 a partition's next batches go before the
/// first is answered, one per drain (one batch per partition per request), up to the bound;
/// batches that come back for a retry return in the order they were opened, ahead of the
/// batches opened after them, whichever came back first.
#[tokio::test]
async fn up_to_the_bound_of_a_partitions_batches_are_in_flight_and_retries_keep_their_order() {
    let acc = accumulator(|c| {
        c.linger_ms = 0;
        c.in_flight_per_partition_max = Some(3);
    });
    let later = Instant::now() + Duration::from_secs(1);
    let mut sent = Vec::new();
    for _ in 0..4 {
        acc.append(record(1, 10)).await.expect("append");
        let (ready, _) = acc.drain(later);
        sent.extend(ready);
    }
    assert_eq!(
        sent.len(),
        3,
        "three batches of partition 1 in flight, the fourth waits"
    );
    assert!(
        sent.windows(2).all(|w| w[0].seq < w[1].seq),
        "sent in order"
    );
    let (ready, _) = acc.drain(later);
    assert!(ready.is_empty(), "the bound holds");
    // The first and then the second come back for a retry, as the answers to their
    // requests arrive (each returned to the head of the queue, the second would pass the
    // first).
    let third = sent.pop().expect("third");
    let second = sent.pop().expect("second");
    let first = sent.pop().expect("first");
    let (first_seq, second_seq) = (first.seq, second.seq);
    acc.requeue(first);
    acc.requeue(second);
    let retry_due = Instant::now() + Duration::from_secs(60);
    let mut order = Vec::new();
    for _ in 0..3 {
        let (ready, _) = acc.drain(retry_due);
        assert!(ready.len() <= 1, "one batch of a partition per drain");
        order.extend(ready.into_iter().map(|b| b.seq));
    }
    assert_eq!(
        order,
        [first_seq, second_seq],
        "the retries go in the order their batches were opened, then the bound holds"
    );
    acc.complete(third, 0);
    acc.done_in_flight(&(Arc::from("t"), 1), None);
    let (ready, _) = acc.drain(retry_due);
    assert_eq!(ready.len(), 1, "the fourth batch goes once one is answered");
    assert!(ready[0].seq > second_seq);
}

#[tokio::test]
async fn completion_reports_offsets_in_order() {
    let acc = accumulator(|c| c.linger_ms = 0);
    let first = acc.append(record(2, 5)).await.expect("append");
    let second = acc.append(record(2, 5)).await.expect("append");
    let (mut ready, _) = acc.drain(Instant::now() + Duration::from_millis(1));
    acc.complete(ready.remove(0), 100);
    let first = first.await.expect("sent");
    let second = second.await.expect("sent");
    assert_eq!((first.partition, first.offset), (2, 100));
    assert_eq!(second.offset, 101);
}

#[tokio::test]
async fn a_full_buffer_blocks_send_until_memory_is_released() {
    let acc = Arc::new(accumulator(|c| {
        c.batch_size_bytes = 1024;
        c.max_request_bytes = 2048;
        c.buffer_memory_bytes = 4096;
        c.max_block_ms = 2_000;
    }));
    let mut appended = 0;
    while acc.memory.available_permits() > 1100 {
        acc.append(record(3, 1000)).await.expect("append");
        appended += 1;
    }
    assert!(appended >= 2);
    let blocked = {
        let acc = acc.clone();
        tokio::spawn(async move { acc.append(record(3, 1000)).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!blocked.is_finished(), "send waits for buffer room");
    let (ready, _) = acc.drain(Instant::now());
    acc.complete(ready.into_iter().next().expect("a sealed batch"), 0);
    let result = tokio::time::timeout(Duration::from_secs(2), blocked).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "released memory unblocks send"
    );
}

#[tokio::test]
async fn a_full_buffer_fails_after_max_block() {
    let acc = accumulator(|c| {
        c.batch_size_bytes = 1024;
        c.max_request_bytes = 2048;
        c.buffer_memory_bytes = 2048;
        c.max_block_ms = 50;
    });
    acc.append(record(0, 1500)).await.expect("append");
    let error = acc.append(record(0, 1500)).await.expect_err("buffer full");
    assert!(matches!(error, Error::BufferFull { .. }));
}

/// The partitions of the batches `drain` hands out once every open batch is due, with
/// their record counts; they are completed, so the partitions are free again.
fn drained_partitions(acc: &Accumulator) -> Vec<(i32, usize)> {
    let (ready, _) = acc.drain(Instant::now() + Duration::from_secs(3_600));
    let mut partitions = Vec::new();
    for batch in ready {
        partitions.push((batch.partition.1, batch.records));
        let partition = batch.partition.clone();
        acc.complete(batch, 0);
        acc.done_in_flight(&partition, None);
    }
    partitions.sort();
    partitions
}

#[tokio::test]
async fn keyed_records_follow_murmur2_and_unkeyed_stick_until_sealed() {
    let acc = accumulator(|c| c.batch_size_bytes = 2048);
    let keyed = ProducerRecord::new("t", "v").with_key("21");
    acc.append(keyed).await.expect("append");
    assert_eq!(
        drained_partitions(&acc),
        vec![(partition_for_key(b"21", 4), 1)]
    );
    // Unkeyed: three 600-byte records fill one batch (a fourth would take it past 2 048
    // bytes, so it is sealed), then the sticky partition moves on to the next.
    three_fill_one_batch_the_fourth_goes_to_the_next(&acc, 600).await;
}

/// A record that would take the open batch past `batch_size_bytes` goes in a batch of its
/// own, as Java's: the small records before it do not share its fate.
#[tokio::test]
async fn a_record_larger_than_the_room_left_starts_a_new_batch() {
    let acc = accumulator(|c| c.batch_size_bytes = 16 * 1024);
    for _ in 0..3 {
        acc.append(record(1, 100)).await.expect("append");
    }
    acc.append(record(1, 64 * 1024)).await.expect("append");
    acc.append(record(1, 100)).await.expect("append");
    assert_eq!(drained_partitions(&acc), vec![(1, 3)], "the small ones");
    assert_eq!(
        drained_partitions(&acc),
        vec![(1, 1)],
        "the large one alone"
    );
    assert_eq!(
        drained_partitions(&acc),
        vec![(1, 1)],
        "the next in a new batch"
    );
}

/// Appends four unkeyed records of `value_bytes`: the first three fill a batch, and the
/// fourth lands alone on the next sticky partition.
async fn three_fill_one_batch_the_fourth_goes_to_the_next(acc: &Accumulator, value_bytes: usize) {
    let unkeyed = ProducerRecord::new("t", vec![0u8; value_bytes]);
    for _ in 0..4 {
        acc.append(unkeyed.clone()).await.expect("append");
    }
    let drained = drained_partitions(acc);
    let holding = |records: usize| drained.iter().find(|d| d.1 == records).map(|d| d.0);
    let (Some(full), Some(next), 2) = (holding(3), holding(1), drained.len()) else {
        panic!("three records fill a batch, the fourth opens one elsewhere: {drained:?}");
    };
    assert_eq!(next, (full + 1) % 4, "{drained:?}");
}

#[tokio::test]
async fn an_unkeyed_record_that_does_not_fit_starts_the_next_sticky_partition() {
    // Batches as large as requests: a record that would cross the size has no room.
    let acc = accumulator(|c| {
        c.batch_size_bytes = 4096;
        c.max_request_bytes = 4096;
    });
    three_fill_one_batch_the_fourth_goes_to_the_next(&acc, 1000).await;
    // A record addressed to a partition stays there, behind its full batch.
    for _ in 0..4 {
        acc.append(record(2, 1000)).await.expect("append");
    }
    assert_eq!(drained_partitions(&acc), vec![(2, 3)]);
    assert_eq!(drained_partitions(&acc), vec![(2, 1)]);
}

#[tokio::test]
async fn the_partition_count_is_kept_until_topic_metadata_changes() {
    // The offline cluster's lookup is retried up to max_block_ms: keep that short.
    let acc = accumulator(|config| config.max_block_ms = 200);
    acc.append(record(3, 10)).await.expect("append");
    // The cluster loses the topic without a metadata change being announced: the producer
    // goes on with the count it kept (asking the offline cluster would fail).
    acc.cluster().drop_topic_quietly("t");
    acc.append(record(2, 10))
        .await
        .expect("append from the kept count");
    // Metadata changed: the next record asks the cluster again, which cannot answer.
    acc.cluster().forget_topic("t");
    acc.append(record(2, 10))
        .await
        .expect_err("the forgotten topic is looked up again");
}

/// A flush waits for the batches opened before it, not for a producer (another clone)
/// that goes on sending meanwhile.
#[tokio::test]
async fn flush_waits_only_for_batches_opened_before_it() {
    let acc = Arc::new(accumulator(|_| {}));
    acc.append(record(0, 10)).await.expect("append");
    let flush = {
        let acc = acc.clone();
        tokio::spawn(async move { acc.flush().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Flushing: the open batch goes out without lingering.
    let (ready, _) = acc.drain(Instant::now());
    assert_eq!(ready.len(), 1);
    // Records sent after the flush began, still unacknowledged when it should end.
    acc.append(record(1, 10)).await.expect("append");
    acc.append(record(0, 10)).await.expect("append");
    assert!(
        !flush.is_finished(),
        "the first batch is not acknowledged yet"
    );
    acc.complete(ready.into_iter().next().expect("batch"), 0);
    let flushed = tokio::time::timeout(Duration::from_secs(2), flush).await;
    assert!(matches!(flushed, Ok(Ok(Ok(())))), "{flushed:?}");
    assert_eq!(acc.flushing.load(Ordering::Relaxed), 0);
}

/// A `send` dropped while it yields (its record already in a batch) leaves that record
/// counted: completing the batch lets `flush` end instead of wrapping a counter.
#[tokio::test]
async fn a_send_dropped_after_its_record_was_batched_does_not_break_flush() {
    let acc = accumulator(|_| {});
    // Opening a batch wakes the sender, and `append` yields once after: polled once, it
    // gets that far and is dropped there.
    let dropped = futures::FutureExt::now_or_never(acc.append(record(0, 10)));
    assert!(dropped.is_none(), "append was dropped in its yield");
    let (ready, _) = acc.drain(Instant::now() + Duration::from_secs(3_600));
    let batch = ready.into_iter().next().expect("the record was batched");
    assert_eq!(batch.records, 1);
    acc.complete(batch, 0);
    let flushed = tokio::time::timeout(Duration::from_secs(2), acc.flush()).await;
    assert!(matches!(flushed, Ok(Ok(()))), "{flushed:?}");
}

/// The partitions of topic "t" the drain would look at.
fn pending(acc: &Accumulator) -> Vec<usize> {
    let queues = acc.queues();
    let topic = queues.get("t").expect("topic queues");
    (0..4)
        .filter(|&index| topic.pending.contains(index))
        .collect()
}

#[tokio::test]
async fn a_partition_is_pending_while_it_holds_a_batch_even_in_flight() {
    let acc = accumulator(|_| {});
    let start = Instant::now();
    acc.append(record(1, 10)).await.expect("append");
    assert_eq!(pending(&acc), vec![1]);
    let (ready, _) = acc.drain(start);
    assert!(ready.is_empty(), "lingering");
    assert_eq!(pending(&acc), vec![1], "a lingering batch keeps it pending");
    let (mut ready, _) = acc.drain(start + Duration::from_secs(2));
    assert_eq!(ready.len(), 1);
    assert!(pending(&acc).is_empty(), "in flight with nothing queued");
    acc.append(record(1, 10)).await.expect("append");
    assert_eq!(pending(&acc), vec![1]);
    let (more, _) = acc.drain(start + Duration::from_secs(3_600));
    assert!(more.is_empty(), "one batch in flight per partition");
    assert_eq!(
        pending(&acc),
        vec![1],
        "its open batch waits for the one in flight"
    );
    let batch = ready.remove(0);
    let partition = batch.partition.clone();
    acc.complete(batch, 0);
    acc.done_in_flight(&partition, None);
    let (ready, _) = acc.drain(start + Duration::from_secs(3_600));
    assert_eq!(ready.len(), 1, "the batch behind the completed one goes");
    assert!(pending(&acc).is_empty());
}

#[tokio::test]
async fn a_requeued_batch_makes_its_partition_pending_again() {
    let acc = accumulator(|c| c.retry_backoff_ms = 100);
    acc.append(record(2, 10)).await.expect("append");
    let (mut ready, _) = acc.drain(Instant::now() + Duration::from_secs(2));
    assert!(pending(&acc).is_empty());
    acc.requeue(ready.remove(0));
    assert_eq!(pending(&acc), vec![2]);
    let (early, next) = acc.drain(Instant::now());
    assert!(early.is_empty(), "backing off");
    assert!(next.is_some(), "the sender looks again at the retry");
    assert_eq!(pending(&acc), vec![2]);
    let (again, _) = acc.drain(Instant::now() + Duration::from_secs(1));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert!(pending(&acc).is_empty());
}

#[tokio::test]
async fn a_drain_takes_pending_partitions_in_ascending_order() {
    let acc = accumulator(|_| {});
    for partition in [3, 0, 2] {
        acc.append(record(partition, 10)).await.expect("append");
    }
    assert_eq!(pending(&acc), vec![0, 2, 3]);
    let (ready, _) = acc.drain(Instant::now() + Duration::from_secs(2));
    let order: Vec<i32> = ready.iter().map(|b| b.partition.1).collect();
    assert_eq!(order, vec![0, 2, 3]);
}

/// An idempotent producer numbers each partition's batches as they are sealed; a batch that
/// fails holds every numbered batch back until the epoch is bumped, and the bump numbers the
/// waiting batches again from 0 under the new epoch (their CRCs rewritten).
#[tokio::test]
async fn idempotent_batches_are_numbered_per_partition_and_renumbered_after_a_bump() {
    let acc = idempotent_accumulator();
    for partition in [0, 0, 1, 0] {
        acc.append(record(partition, 10)).await.expect("append");
    }
    let later = Instant::now() + Duration::from_secs(1);
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.extend(acc.drain(later).0);
    }
    let states: Vec<_> = sent.iter().map(producer_state).collect();
    assert_eq!(
        states,
        [(7, 0, 0, 1), (7, 0, 0, 1), (7, 0, 1, 1), (7, 0, 2, 1)],
        "partition 0, then 1, then 0 again: each counts its own records"
    );
    assert_eq!(acc.in_flight_total(), 4);
    // Partition 0's first batch is acknowledged; its second fails for good.
    let mut sent = sent.into_iter();
    let first = sent.next().expect("p0 seq 0");
    let partition_0 = first.partition.clone();
    acc.complete(first, 0);
    acc.done_in_flight(&partition_0, Some(0));
    assert_eq!(acc.last_acked_sequence(&partition_0), Some(0));
    let partition_1_batch = sent.next().expect("p1 seq 0");
    let failing = sent.next().expect("p0 seq 1");
    acc.fail(failing, Error::Protocol("refused".to_owned()));
    acc.done_in_flight(&partition_0, None);
    let idempotence = acc.idempotence().expect("idempotent");
    assert!(idempotence.bump_requested());
    // The third comes back for a retry, a new record arrives: neither goes before the bump.
    let third = sent.next().expect("p0 seq 2");
    acc.requeue(third);
    acc.append(record(0, 10)).await.expect("append");
    let retry_due = Instant::now() + Duration::from_secs(60);
    assert!(acc.drain(retry_due).0.is_empty(), "held for the bump");
    let partition_1 = partition_1_batch.partition.clone();
    acc.complete(partition_1_batch, 0);
    acc.done_in_flight(&partition_1, Some(0));
    assert_eq!(acc.in_flight_total(), 0, "the bump may go");
    acc.renumber(Identity {
        producer_id: 7,
        epoch: 1,
    });
    assert!(!idempotence.bump_requested());
    assert_eq!(acc.last_acked_sequence(&partition_0), None);
    let mut after = Vec::new();
    for _ in 0..2 {
        after.extend(acc.drain(retry_due).0);
    }
    let states: Vec<_> = after.iter().map(producer_state).collect();
    assert_eq!(
        states,
        [(7, 1, 0, 1), (7, 1, 1, 1)],
        "the retried batch, then the new one: from 0 in epoch 1"
    );
    acc.append(record(1, 10)).await.expect("append");
    let next_1 = acc.drain(retry_due).0;
    assert_eq!(
        next_1.iter().map(producer_state).collect::<Vec<_>>(),
        [(7, 1, 0, 1)],
        "every partition starts again at 0 in the new epoch"
    );
}
