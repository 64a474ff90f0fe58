use super::*;

#[test]
fn byte_limits_are_clamped() {
    assert_eq!(clamp_bytes(-5), 0);
    assert_eq!(clamp_bytes(i32::MAX), FETCH_RESPONSE_MAX_BYTES);
    assert_eq!(clamp_bytes(1024), 1024);
}

/// Small appends wake a long poll whose `min_bytes` they cannot reach without making it
/// re-read the partition each time (it read once per append: a fetch with a large
/// `min_bytes` copied its growing data hundreds of times); once they can, it answers
/// before its deadline with at least `min_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_rereads_only_when_min_bytes_is_reachable() {
    use super::super::create_topics::fixture::{append, broker, topic};
    let fixture = broker();
    topic(&fixture, "trickle", 1);
    append(&fixture, "trickle", 0, 1);
    let batch_bytes = fixture
        .ctx
        .logs
        .partition("trickle", 0)
        .unwrap()
        .size_bytes();
    let request = |fetch_offset: i64, min_bytes: u64| {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        let partition = FetchPartition::default()
            .with_fetch_offset(fetch_offset)
            .with_partition_max_bytes(1 << 20);
        let topic = FetchTopic::default()
            .with_topic(TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("trickle"),
            ))
            .with_partitions(vec![partition]);
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_min_bytes(i32::try_from(min_bytes).unwrap())
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic])
    };
    for (min_batches, appends, answers_early) in [(1_000u64, 100i64, false), (40, 100, true)] {
        let end = fixture
            .ctx
            .logs
            .partition("trickle", 0)
            .unwrap()
            .log_end_offset();
        let min_bytes = min_batches * batch_bytes;
        let request = request(end, min_bytes);
        let (session, wanted) = fetch_session::open(&fixture.ctx, &request, false).unwrap();
        let plan = FetchPlan::new(&fixture.ctx, &request, wanted, session, None);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(1_500);
        let poll = long_poll(&plan, deadline);
        let appends_done = async {
            for _ in 0..appends {
                append(&fixture, "trickle", 0, 1);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let (answer, ()) = tokio::join!(poll, appends_done);
        let reads = plan.reads.load(std::sync::atomic::Ordering::Relaxed);
        let ResponseKind::Fetch(response) = answer.body else {
            panic!("a fetch answer")
        };
        let records = response.responses[0].partitions[0].records.clone().unwrap();
        eprintln!(
            "min {min_batches} batches: {reads} reads, {} bytes",
            records.len()
        );
        assert!(reads <= 4, "{reads} reads for {appends} appends");
        if answers_early {
            assert!(records.len() as u64 >= min_bytes);
            assert!(Instant::now() < deadline, "answered at the deadline");
        } else {
            assert!(!records.is_empty());
        }
    }
}

/// A v13+ fetch resolves a topic id to its name, then finds the partition by name: a
/// topic deleted and created again in between is answered INCONSISTENT_TOPIC_ID, not read
/// under the old id (Kafka's ReplicaManager compares the partition's topic id).
#[test]
fn a_topic_recreated_after_its_id_was_resolved_is_inconsistent_topic_id() {
    use super::super::create_topics::fixture::{append, broker, topic};
    use crate::fetch_sessions::TopicKey;
    let fixture = broker();
    topic(&fixture, "again", 1);
    let old_id = fixture.ctx.logs.topic("again").unwrap().id;
    fixture.ctx.logs.delete_topic("again").unwrap();
    topic(&fixture, "again", 1);
    append(&fixture, "again", 0, 1);
    let wanted = |topic_id| Wanted {
        key: PartitionKey {
            topic: TopicKey::Id(topic_id),
            partition: 0,
        },
        topic_id,
        name: Ok(TopicName(
            kafka_protocol::protocol::StrBytes::from_static_str("again"),
        )),
        ask: PartitionAsk {
            fetch_offset: 0,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        },
        last_answered: None,
    };
    let new_id = fixture.ctx.logs.topic("again").unwrap().id;
    for (topic_id, code) in [
        (old_id, ResponseError::InconsistentTopicId.code()),
        (new_id, 0),
    ] {
        let request = FetchRequest::default().with_max_bytes(1 << 20);
        let plan = FetchPlan::new(
            &fixture.ctx,
            &request,
            vec![wanted(topic_id)],
            SessionUse::None,
            None,
        );
        let pass = plan.read();
        let partition = &pass.response.responses[0].partitions[0];
        assert_eq!(partition.error_code, code);
    }
}

#[test]
fn response_bound_is_the_smaller_of_the_request_and_partition_limits() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let partition = |bytes| FetchPartition::default().with_partition_max_bytes(bytes);
    let topic = FetchTopic::default().with_partitions(vec![partition(1000), partition(-7)]);
    let request = |max_bytes| {
        FetchRequest::default()
            .with_max_bytes(max_bytes)
            .with_topics(vec![topic.clone(), topic.clone()])
    };
    assert_eq!(response_bytes_max(&request(i32::MAX)), 2000);
    assert_eq!(response_bytes_max(&request(1500)), 1500);
    assert_eq!(response_bytes_max(&request(-1)), 0);
    let huge = FetchTopic::default().with_partitions(vec![partition(i32::MAX); 4]);
    let request = FetchRequest::default()
        .with_max_bytes(i32::MAX)
        .with_topics(vec![huge]);
    assert_eq!(response_bytes_max(&request), FETCH_RESPONSE_MAX_BYTES);
}

/// An incremental fetch reads only the partitions with news for it (records, a new high
/// watermark or log start, an error) and answers the same as when it read them all and left
/// the rest out: the unchanged partition is neither read nor answered.
#[test]
fn an_incremental_fetch_skips_the_partitions_without_news() {
    use super::super::create_topics::fixture::{append, broker, topic};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let fixture = broker();
    topic(&fixture, "tail", 3);
    for partition in 0..3 {
        append(&fixture, "tail", partition, 1);
    }
    let log = |p: i32| fixture.ctx.logs.partition("tail", p).unwrap();
    let request = |session_id: i32, epoch: i32| {
        let partitions = (0..3)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(log(p).log_end_offset())
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        let topic = FetchTopic::default()
            .with_topic(TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("tail"),
            ))
            .with_partitions(partitions);
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_session_id(session_id)
            .with_session_epoch(epoch)
            .with_topics(vec![topic])
    };
    let fetch = |request: &FetchRequest| {
        let (session, wanted) = fetch_session::open(&fixture.ctx, request, false).unwrap();
        let plan = FetchPlan::new(&fixture.ctx, request, wanted, session, None);
        let pass = plan.read();
        let included = pass.included.clone();
        let ResponseKind::Fetch(response) = plan.answer(pass).body else {
            panic!("a fetch answer")
        };
        (included, response)
    };
    let (included, created) = fetch(&request(0, 0));
    assert_eq!(included, [true; 3], "a full fetch reads every partition");
    assert_ne!(created.session_id, 0);
    // The session's figures now match every partition: nothing to read or answer.
    let (included, quiet) = fetch(&request(created.session_id, 1));
    assert_eq!(included, [false; 3]);
    assert!(quiet.responses.is_empty());
    append(&fixture, "tail", 1, 1);
    log(2)
        .delete_records_before(log(2).log_end_offset())
        .unwrap();
    let (included, news) = fetch(&request(created.session_id, 2));
    assert_eq!(included, [false, true, true]);
    let answered: Vec<(i32, i64, i64)> = (news.responses.iter())
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.high_watermark, p.log_start_offset))
        .collect();
    assert_eq!(
        answered,
        [
            (1, log(1).log_end_offset(), 0),
            (2, log(2).log_end_offset(), log(2).log_end_offset())
        ]
    );
}

/// A long poll on many partitions of a topic waits on the topic: appends to the topic's
/// other partitions wake it without a re-read or an answer; an append to one of its own
/// answers it before the deadline, with that partition's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_many_partitions_answers_only_for_its_own() {
    use super::super::create_topics::fixture::{append, broker};
    let fixture = broker();
    let request = wide_fetch(&fixture);
    let (session, wanted) = fetch_session::open(&fixture.ctx, &request, false).unwrap();
    let plan = FetchPlan::new(&fixture.ctx, &request, wanted, session, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let poll = long_poll(&plan, deadline);
    let appends = async {
        for other in 20..30 {
            append(&fixture, "wide", other, 1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(plan.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
        append(&fixture, "wide", 17, 1);
    };
    let (answer, ()) = tokio::join!(poll, appends);
    assert!(Instant::now() < deadline, "answered at the deadline");
    let ResponseKind::Fetch(response) = answer.body else {
        panic!("a fetch answer")
    };
    let with_records: Vec<i32> = (response.responses.iter())
        .flat_map(|t| &t.partitions)
        .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(with_records, [17]);
}

/// A topic "wide" of 30 partitions and a fetch of its first 20 from offset 0, min_bytes 1:
/// more than [`PARTITION_WAITS_MAX`], so its long poll waits on the topic.
fn wide_fetch(fixture: &super::super::create_topics::fixture::Fixture) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    super::super::create_topics::fixture::topic(fixture, "wide", 30);
    let mine: Vec<i32> = (0..20).collect();
    assert!(mine.len() > PARTITION_WAITS_MAX);
    let partitions = (mine.iter())
        .map(|&p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("wide"),
            ))
            .with_partitions(partitions)])
}

/// The wake-up cap counts only wake-ups that find the fetch's own partitions grown: a
/// topic-wide wait woken by appends to the topic's other partitions keeps waiting to its
/// deadline (it was answered, empty, once the others had taken the cap's worth of appends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_counts_only_its_own_partitions_wake_ups() {
    use super::super::create_topics::fixture::{append, broker};
    let fixture = broker();
    let request = wide_fetch(&fixture);
    let (session, wanted) = fetch_session::open(&fixture.ctx, &request, false).unwrap();
    let plan = FetchPlan::new(&fixture.ctx, &request, wanted, session, None);
    let deadline = Instant::now() + Duration::from_millis(600);
    let poll = long_poll_waking(&plan, deadline, 3);
    let appends = async {
        for other in (20..30).cycle().take(20) {
            append(&fixture, "wide", other, 1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (answer, ()) = tokio::join!(poll, appends);
    assert!(Instant::now() >= deadline, "answered before the deadline");
    assert_eq!(plan.reads.load(std::sync::atomic::Ordering::Relaxed), 2);
    let ResponseKind::Fetch(response) = answer.body else {
        panic!("a fetch answer")
    };
    assert!((response.responses.iter())
        .flat_map(|t| &t.partitions)
        .all(|p| p.records.as_ref().is_none_or(|r| r.is_empty())));
}
