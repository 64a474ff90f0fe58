use super::*;
use kafka_protocol::protocol::StrBytes;

fn key(topic: &'static str, partition: i32) -> PartitionKey {
    PartitionKey {
        topic: TopicKey::Name(TopicName(StrBytes::from_static_str(topic))),
        partition,
    }
}

fn ask(fetch_offset: i64) -> PartitionAsk {
    PartitionAsk {
        fetch_offset,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: -1,
    }
}

fn answered(high_watermark: i64) -> Answered {
    Answered {
        high_watermark,
        log_start_offset: 0,
    }
}

fn cached(topic: &'static str, partitions: i32) -> Vec<CachedPartition> {
    (0..partitions)
        .map(|p| CachedPartition::new(key(topic, p), ask(0), answered(10)))
        .collect()
}

fn order(session: &Arc<Mutex<Session>>) -> Vec<i32> {
    let session = session.lock();
    session
        .partitions()
        .iter()
        .map(|p| p.key.partition)
        .collect()
}

#[test]
fn epochs_run_from_one_and_wrap_to_one() {
    assert_eq!(next_epoch(SESSION_EPOCH_INITIAL), 1);
    assert_eq!(next_epoch(41), 42);
    assert_eq!(next_epoch(i32::MAX), 1);
    assert_eq!(next_epoch(SESSION_EPOCH_FINAL), SESSION_EPOCH_FINAL);
}

#[test]
fn an_incremental_fetch_needs_its_session_and_epoch_and_advances_it() {
    let sessions = FetchSessions::new(10);
    let now = Instant::now();
    let id = sessions.create(false, cached("t", 2), now);
    assert_ne!(id, SESSION_ID_NONE);
    let not_found = sessions.incremental(id ^ 1, 1, false, &[], &[], now);
    assert_eq!(
        not_found.err(),
        Some(ResponseError::FetchSessionIdNotFound.code())
    );
    let wrong_epoch = sessions.incremental(id, 2, false, &[], &[], now);
    assert_eq!(
        wrong_epoch.err(),
        Some(ResponseError::InvalidFetchSessionEpoch.code())
    );
    let by_id = sessions.incremental(id, 1, true, &[], &[], now);
    assert_eq!(
        by_id.err(),
        Some(ResponseError::FetchSessionTopicIdError.code())
    );
    let taken = sessions
        .incremental(id, 1, false, &[], &[], now)
        .unwrap()
        .unwrap();
    assert_eq!(taken.expected_epoch, 2);
    assert!(taken.session.lock().answers_epoch(2));
    // The same request again (a duplicate) is refused: the epoch moved on.
    let again = sessions.incremental(id, 1, false, &[], &[], now);
    assert_eq!(
        again.err(),
        Some(ResponseError::InvalidFetchSessionEpoch.code())
    );
    // A later request on the same session makes the first one's answer stale.
    let next = sessions
        .incremental(id, 2, false, &[], &[], now)
        .unwrap()
        .unwrap();
    assert!(!taken.session.lock().answers_epoch(taken.expected_epoch));
    assert!(next.session.lock().answers_epoch(next.expected_epoch));
    sessions.close(id);
    assert_eq!(sessions.stats().sessions, 0);
}

#[test]
fn requests_add_update_and_forget_partitions_and_an_emptied_session_closes() {
    let sessions = FetchSessions::new(10);
    let now = Instant::now();
    let id = sessions.create(false, cached("t", 2), now);
    let asked = [(key("t", 1), ask(5)), (key("u", 0), ask(7))];
    let taken = (sessions.incremental(id, 1, false, &asked, &[key("t", 0)], now))
        .unwrap()
        .unwrap();
    {
        let session = taken.session.lock();
        let partitions: Vec<(PartitionKey, i64)> = (session.partitions().iter())
            .map(|p| (p.key.clone(), p.ask.fetch_offset))
            .collect();
        assert_eq!(partitions, vec![(key("t", 1), 5), (key("u", 0), 7)]);
    }
    assert_eq!(sessions.stats().partitions, 2);
    // Forgetting what the session does not hold (a topic never added, a partition twice)
    // changes nothing.
    let strangers = [key("nope", 0), key("t", 0), key("t", 0)];
    let same = sessions
        .incremental(id, 2, false, &[], &strangers, now)
        .unwrap()
        .unwrap();
    assert_eq!(same.session.lock().partitions().len(), 2);
    let forget_all = [key("t", 1), key("u", 0)];
    let emptied = sessions
        .incremental(id, 3, false, &[], &forget_all, now)
        .unwrap();
    assert!(emptied.is_none(), "an emptied session is closed");
    assert_eq!(
        sessions.stats(),
        FetchSessionStats {
            sessions: 0,
            partitions: 0,
            evictions: 0,
        }
    );
}

#[test]
fn an_answer_keeps_only_what_changed_and_moves_it_to_the_end() {
    let sessions = FetchSessions::new(10);
    let now = Instant::now();
    let id = sessions.create(false, cached("t", 4), now);
    let taken = sessions
        .incremental(id, 1, false, &[], &[], now)
        .unwrap()
        .unwrap();
    let answers = [
        (key("t", 0), 0, 0, answered(10)),   // nothing new
        (key("t", 1), 100, 0, answered(10)), // records
        (key("t", 2), 0, 0, answered(11)),   // high watermark moved
        (key("t", 3), 0, 3, answered(-1)),   // error
    ];
    let keep = taken.session.lock().select(&answers);
    assert_eq!(keep, vec![false, true, true, true]);
    assert_eq!(order(&taken.session), vec![0, 1, 2, 3]);
    // Next time: partition 3's error is gone but its high watermark was reset, so it is
    // answered again; partition 2's new watermark is known now.
    let answers = [
        (key("t", 0), 0, 0, answered(10)),
        (key("t", 1), 0, 0, answered(10)),
        (key("t", 2), 0, 0, answered(11)),
        (key("t", 3), 0, 0, answered(10)),
    ];
    let keep = taken.session.lock().select(&answers);
    assert_eq!(keep, vec![false, false, false, true]);
    // A size-limited answer: partition 0 got records and goes last, so 1 comes first.
    let answers = [
        (key("t", 0), 50, 0, answered(12)),
        (key("t", 1), 0, 0, answered(10)),
        (key("t", 2), 0, 0, answered(11)),
        (key("t", 3), 0, 0, answered(10)),
    ];
    let keep = taken.session.lock().select(&answers);
    assert_eq!(keep, vec![true, false, false, false]);
    assert_eq!(order(&taken.session), vec![1, 2, 3, 0]);
}

#[test]
fn a_full_cache_evicts_a_stale_session_else_a_smaller_old_one_else_declines() {
    let eviction = Duration::from_millis(1_000);
    let sessions = FetchSessions::with_bounds(2, 100, eviction);
    let t0 = Instant::now();
    let small = sessions.create(false, cached("a", 2), t0);
    let large = sessions.create(false, cached("b", 5), t0);
    // Both are new: nothing may be evicted.
    assert_eq!(sessions.create(false, cached("c", 9), t0), SESSION_ID_NONE);
    // Once old enough (but in use), the smaller one gives way to a larger newcomer only.
    let t1 = t0 + eviction + Duration::from_millis(1);
    sessions.incremental(small, 1, false, &[], &[], t1).unwrap();
    sessions.incremental(large, 1, false, &[], &[], t1).unwrap();
    assert_eq!(sessions.create(false, cached("c", 2), t1), SESSION_ID_NONE);
    let newcomer = sessions.create(false, cached("c", 3), t1);
    assert_ne!(newcomer, SESSION_ID_NONE);
    let gone = sessions.incremental(small, 2, false, &[], &[], t1);
    assert_eq!(
        gone.err(),
        Some(ResponseError::FetchSessionIdNotFound.code())
    );
    // Unused for longer than the eviction time: the least recently used goes, whatever
    // its size.
    let t2 = t1 + eviction + Duration::from_millis(1);
    sessions
        .incremental(newcomer, 1, false, &[], &[], t2)
        .unwrap();
    let tiny = sessions.create(false, cached("d", 1), t2);
    assert_ne!(tiny, SESSION_ID_NONE);
    let gone = sessions.incremental(large, 2, false, &[], &[], t2);
    assert_eq!(
        gone.err(),
        Some(ResponseError::FetchSessionIdNotFound.code())
    );
    assert_eq!(sessions.stats().evictions, 2);
    assert_eq!(sessions.stats().partitions, 4);
}

#[test]
fn the_partition_bound_declines_sessions_and_closes_one_that_grows_past_it() {
    let sessions = FetchSessions::with_bounds(10, 5, Duration::from_millis(1_000));
    let now = Instant::now();
    assert_eq!(sessions.create(false, cached("a", 6), now), SESSION_ID_NONE);
    let id = sessions.create(false, cached("a", 4), now);
    assert_ne!(id, SESSION_ID_NONE);
    let asked: Vec<(PartitionKey, PartitionAsk)> =
        (10..12).map(|p| (key("a", p), ask(0))).collect();
    let grown = sessions.incremental(id, 1, false, &asked, &[], now);
    assert_eq!(
        grown.err(),
        Some(ResponseError::FetchSessionIdNotFound.code())
    );
    assert_eq!(sessions.stats().sessions, 0);
    assert_eq!(sessions.stats().partitions, 0);
}

#[test]
fn no_slots_means_no_sessions() {
    let sessions = FetchSessions::new(0);
    assert_eq!(
        sessions.create(false, cached("a", 1), Instant::now()),
        SESSION_ID_NONE
    );
}
