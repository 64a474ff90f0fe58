use proptest::prelude::*;

use super::*;

fn id(producer_id: i64, epoch: i16, first_seq: i32, records: i32) -> BatchIdentity {
    BatchIdentity {
        producer_id,
        epoch,
        first_seq,
        last_seq: wrapped_last_seq(first_seq, records - 1),
    }
}

fn check_one_batch(
    state: &PartitionProducers,
    batch: BatchIdentity,
) -> Result<Verdict, SequenceError> {
    state.check(&[Some(batch)])
}

#[test]
fn unknown_producers_are_accepted_at_any_sequence() {
    let state = PartitionProducers::default();
    assert_eq!(check_one_batch(&state, id(1, 0, 0, 1)), Ok(Verdict::Append));
    assert_eq!(
        check_one_batch(&state, id(1, 3, 77, 2)),
        Ok(Verdict::Append)
    );
}

#[test]
fn next_sequence_is_accepted_a_gap_is_not() {
    let mut state = PartitionProducers::default();
    state.record(&id(1, 0, 0, 3), 10, 12, 0);
    assert_eq!(check_one_batch(&state, id(1, 0, 3, 1)), Ok(Verdict::Append));
    assert!(matches!(
        check_one_batch(&state, id(1, 0, 4, 1)),
        Err(SequenceError::OutOfOrder {
            last: 2,
            got: 4,
            ..
        })
    ));
    // Another producer is independent.
    assert_eq!(check_one_batch(&state, id(2, 0, 9, 1)), Ok(Verdict::Append));
}

#[test]
fn a_retry_of_any_of_the_last_five_batches_is_a_duplicate() {
    let mut state = PartitionProducers::default();
    for i in 0..7 {
        let offset = 100 + i64::from(i) * 2;
        state.record(&id(1, 0, i * 2, 2), offset, offset + 1, 0);
    }
    // Batches 2..7 are remembered, 0 and 1 fell out of the window.
    let duplicate = check_one_batch(&state, id(1, 0, 4, 2));
    assert_eq!(
        duplicate,
        Ok(Verdict::Duplicate(BatchMetadata {
            first_seq: 4,
            last_seq: 5,
            base_offset: 104,
            last_offset: 105
        }))
    );
    assert!(matches!(
        check_one_batch(&state, id(1, 0, 0, 2)),
        Err(SequenceError::OutOfOrder { .. })
    ));
    // Same first sequence but a different length is not the same batch.
    assert!(matches!(
        check_one_batch(&state, id(1, 0, 12, 1)),
        Err(SequenceError::OutOfOrder { .. })
    ));
}

#[test]
fn epochs_fence_old_producers_and_restart_sequences() {
    let mut state = PartitionProducers::default();
    state.record(&id(1, 2, 0, 5), 0, 4, 0);
    assert!(matches!(
        check_one_batch(&state, id(1, 1, 5, 1)),
        Err(SequenceError::StaleEpoch {
            epoch: 1,
            current: 2,
            ..
        })
    ));
    assert!(matches!(
        check_one_batch(&state, id(1, 3, 5, 1)),
        Err(SequenceError::OutOfOrder {
            last: -1,
            got: 5,
            ..
        })
    ));
    assert_eq!(check_one_batch(&state, id(1, 3, 0, 1)), Ok(Verdict::Append));
    // A duplicate of the old epoch's batch after the bump is stale, not a duplicate.
    state.record(&id(1, 3, 0, 1), 5, 5, 0);
    assert!(matches!(
        check_one_batch(&state, id(1, 2, 0, 5)),
        Err(SequenceError::StaleEpoch { .. })
    ));
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(wrapped_last_seq(i32::MAX, 0), i32::MAX);
    assert_eq!(wrapped_last_seq(i32::MAX, 1), 0);
    assert_eq!(wrapped_last_seq(i32::MAX - 1, 3), 1);
    let mut state = PartitionProducers::default();
    state.record(&id(1, 0, i32::MAX - 1, 2), 0, 1, 0);
    assert_eq!(check_one_batch(&state, id(1, 0, 0, 1)), Ok(Verdict::Append));
}

#[test]
fn later_batches_of_one_request_follow_earlier_ones() {
    let mut state = PartitionProducers::default();
    state.record(&id(1, 0, 0, 1), 0, 0, 0);
    let ok = [Some(id(1, 0, 1, 2)), None, Some(id(1, 0, 3, 1))];
    assert_eq!(state.check(&ok), Ok(Verdict::Append));
    let gap = [Some(id(1, 0, 1, 2)), Some(id(1, 0, 4, 1))];
    assert!(matches!(
        state.check(&gap),
        Err(SequenceError::OutOfOrder { .. })
    ));
}

#[test]
fn the_table_forgets_the_least_recently_used_producer_when_full() {
    let mut state = PartitionProducers::default();
    let count = i64::try_from(PRODUCERS_PER_PARTITION_MAX).unwrap();
    for producer in 0..count {
        state.record(&id(producer, 0, 0, 1), producer, producer, 0);
    }
    // Producer 0 appends again, so producer 1 is the oldest when 'count' arrives.
    state.record(&id(0, 0, 1, 1), count, count, 0);
    state.record(&id(count, 0, 0, 1), count + 1, count + 1, 0);
    assert_eq!(state.producer_count(), PRODUCERS_PER_PARTITION_MAX);
    assert_eq!(
        check_one_batch(&state, id(1, 0, 50, 1)),
        Ok(Verdict::Append)
    );
    assert!(check_one_batch(&state, id(0, 0, 50, 1)).is_err());
}

/// Expiry by a given "now": a producer whose last batch is `expiration_ms` old or older is
/// forgotten (Kafka's `>=`), a younger one kept; a forgotten producer's next batch is
/// accepted at any sequence, as an unknown producer's.
#[test]
fn producers_idle_for_the_expiration_are_forgotten() {
    let mut state = PartitionProducers::default();
    state.record(&id(1, 0, 0, 1), 0, 0, 1_000);
    state.record(&id(2, 0, 0, 1), 1, 1, 1_500);
    // Producer 1's last batch counts, not its first.
    state.record(&id(3, 0, 0, 1), 2, 2, 0);
    state.record(&id(3, 0, 1, 1), 3, 3, 1_200);
    assert_eq!(state.remove_expired(1_999, 1_000), 0, "999 ms idle at most");
    assert_eq!(
        state.remove_expired(2_000, 1_000),
        1,
        "1 000 ms idle expires"
    );
    assert_eq!(state.producer_count(), 2);
    assert_eq!(
        check_one_batch(&state, id(1, 0, 40, 1)),
        Ok(Verdict::Append)
    );
    assert!(check_one_batch(&state, id(2, 0, 40, 1)).is_err());
    assert!(check_one_batch(&state, id(3, 0, 40, 1)).is_err());
    let active: Vec<i64> = state
        .active_producers()
        .iter()
        .map(|p| p.producer_id)
        .collect();
    assert_eq!(active, vec![2, 3]);
    assert_eq!(state.remove_expired(i64::MAX, 1), 2);
    assert_eq!(state.producer_count(), 0);
}

/// A timestamp ahead of "now" (a producer's clock ahead of the broker's) never expires
/// early, and far-apart values do not overflow.
#[test]
fn expiry_saturates_at_extreme_timestamps() {
    let mut state = PartitionProducers::default();
    state.record(&id(1, 0, 0, 1), 0, 0, i64::MAX);
    state.record(&id(2, 0, 0, 1), 1, 1, i64::MIN);
    assert_eq!(state.remove_expired(0, 1), 1);
    assert_eq!(state.active_producers()[0].producer_id, 1);
}

/// Expiry frees room below the memory backstop; the backstop still holds when every
/// producer is young.
#[test]
fn the_bound_holds_beside_expiry() {
    let mut state = PartitionProducers::default();
    let count = i64::try_from(PRODUCERS_PER_PARTITION_MAX).unwrap();
    for producer in 0..count {
        state.record(&id(producer, 0, 0, 1), producer, producer, producer);
    }
    state.record(&id(count, 0, 0, 1), count, count, count);
    assert_eq!(state.producer_count(), PRODUCERS_PER_PARTITION_MAX);
    // Producers 1..=100 are 100 000 ms or more idle at 100 100 (0 was evicted).
    assert_eq!(state.remove_expired(100_100, 100_000), 100);
    assert_eq!(state.producer_count(), PRODUCERS_PER_PARTITION_MAX - 100);
    assert!(check_one_batch(&state, id(101, 0, 50, 1)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Appending in-sequence batches and then retrying any of the last five always finds
    /// the original offsets; any other batch with the current epoch is checked, never a
    /// false duplicate.
    #[test]
    fn retries_of_recent_batches_find_their_offsets(
        sizes in proptest::collection::vec(1i32..20, 1..30),
        start_seq in prop_oneof![Just(0i32), Just(i32::MAX - 40), 0i32..1000],
        retry_back in 0usize..5,
    ) {
        let mut state = PartitionProducers::default();
        let mut seq = start_seq;
        let mut offset = 0i64;
        let mut appended = Vec::new();
        for size in &sizes {
            let batch = id(7, 0, seq, *size);
            prop_assert_eq!(state.check(&[Some(batch)]), Ok(Verdict::Append));
            state.record(&batch, offset, offset + i64::from(*size) - 1, 0);
            appended.push((batch, offset));
            offset += i64::from(*size);
            seq = if batch.last_seq == i32::MAX { 0 } else { batch.last_seq + 1 };
        }
        let back = retry_back.min(appended.len() - 1);
        let (batch, base_offset) = appended[appended.len() - 1 - back];
        match state.check(&[Some(batch)]) {
            Ok(Verdict::Duplicate(found)) => prop_assert_eq!(found.base_offset, base_offset),
            other => prop_assert!(false, "expected a duplicate, got {:?}", other),
        }
    }
}
