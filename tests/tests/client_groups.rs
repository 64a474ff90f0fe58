//! Three runnel-client consumers share a group with each assignor: every record is read
//! exactly once (auto-commit off, commit on close), the partitions are split between all
//! three, and cooperative-sticky converges after its follow-up rebalance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_client::admin::{NewTopic, PartitionLag};
use runnel_client::consumer::{Assignor, RebalanceListener};
use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use runnel_tests::TestBroker;

const RECORDS: usize = 300;
const PARTITIONS: i32 = 6;

struct Owned(Arc<Mutex<BTreeSet<TopicPartition>>>);

impl RebalanceListener for Owned {
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        let mut owned = self.0.lock().expect("lock");
        for tp in partitions {
            owned.remove(tp);
        }
    }
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("lock")
            .extend(partitions.iter().cloned());
    }
}

async fn group_of_three(assignor: Assignor) {
    let broker =
        TestBroker::start_with(|config| config.groups.initial_rebalance_delay_ms = 300).await;
    let addr = broker.addr.to_string();
    let topic = format!("group-{}", assignor.name());
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS)])
        .await
        .expect("create");
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..RECORDS {
        producer
            .send(ProducerRecord::new(topic.as_str(), format!("{i}")).with_key(format!("k{i}")))
            .await
            .expect("send");
    }
    producer.flush().await.expect("flush");

    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    let mut owned_sets = Vec::new();
    for _ in 0..3 {
        let mut config = ConsumerConfig::new(&addr);
        config.group_id = Some(format!("g-{}", assignor.name()));
        config.assignors = vec![assignor];
        config.auto_offset_reset = OffsetReset::Earliest;
        config.session_timeout_ms = 10_000;
        config.heartbeat_interval_ms = 200;
        config.fetch_wait_ms_max = 100;
        let owned = Arc::new(Mutex::new(BTreeSet::new()));
        owned_sets.push(owned.clone());
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut consumer = Consumer::new(config).await.expect("consumer");
            consumer.set_rebalance_listener(Box::new(Owned(owned)));
            consumer
                .subscribe(&[topic_name(assignor).as_str()])
                .expect("subscribe");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
            while tokio::time::Instant::now() < deadline {
                let records = consumer
                    .poll(Duration::from_millis(200))
                    .await
                    .expect("poll");
                let mut seen = seen.lock().expect("lock");
                seen.extend(
                    records
                        .iter()
                        .map(|r| format!("{}-{}", r.partition, r.offset)),
                );
                if seen.len() >= RECORDS && consumer.assignment().len() == 2 {
                    break;
                }
            }
            // Keep polling briefly so every member sees the settled generation.
            for _ in 0..5 {
                let records = consumer
                    .poll(Duration::from_millis(100))
                    .await
                    .expect("poll");
                seen.lock().expect("lock").extend(
                    records
                        .iter()
                        .map(|r| format!("{}-{}", r.partition, r.offset)),
                );
            }
            let assignment = consumer.assignment();
            consumer.commit().await.expect("commit");
            (assignment, consumer)
        }));
    }
    let mut consumers = Vec::new();
    let mut all = BTreeSet::new();
    for task in tasks {
        let (assignment, consumer) = task.await.expect("consumer task");
        assert_eq!(
            assignment.len(),
            2,
            "{assignor:?}: 6 partitions over 3 members"
        );
        all.extend(assignment);
        consumers.push(consumer);
    }
    assert_eq!(
        all.len(),
        PARTITIONS as usize,
        "{assignor:?}: every partition owned once"
    );
    for (owned, consumer) in owned_sets.iter().zip(&consumers) {
        let owned: Vec<_> = owned.lock().expect("lock").iter().cloned().collect();
        assert_eq!(
            owned,
            consumer.assignment(),
            "callbacks track the assignment"
        );
    }
    let distinct: BTreeSet<String> = seen.lock().expect("lock").iter().cloned().collect();
    assert_eq!(distinct.len(), RECORDS, "{assignor:?}: every record read");
    let lag = admin
        .group_lag(&format!("g-{}", assignor.name()))
        .await
        .expect("lag");
    assert_eq!(lag.iter().filter_map(|l| l.lag).sum::<i64>(), 0);
    for consumer in consumers {
        consumer.close().await.expect("close");
    }
}

fn topic_name(assignor: Assignor) -> String {
    format!("group-{}", assignor.name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_group_of_three() {
    group_of_three(Assignor::Range).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_group_of_three() {
    group_of_three(Assignor::RoundRobin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_group_of_three() {
    group_of_three(Assignor::CooperativeSticky).await;
}

#[derive(Default)]
struct Events {
    revoked: Vec<TopicPartition>,
    assigned: Vec<TopicPartition>,
    lost: Vec<TopicPartition>,
}

struct Recorder(Arc<Mutex<Events>>);

impl RebalanceListener for Recorder {
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("lock")
            .revoked
            .extend(partitions.iter().cloned());
    }
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("lock")
            .assigned
            .extend(partitions.iter().cloned());
    }
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .expect("lock")
            .lost
            .extend(partitions.iter().cloned());
    }
}

/// A second cooperative member joins: the first gives up only the partitions that move
/// (never everything, as eager protocols do) and keeps the rest without interruption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_revokes_only_what_moves() {
    let (_broker, config) = topic_and_group("coop", Assignor::CooperativeSticky).await;
    let first_events = Arc::new(Mutex::new(Events::default()));
    let first = Consumer::new(config()).await.expect("consumer");
    let first = owning_everything(
        first,
        "coop",
        Some(Box::new(Recorder(first_events.clone()))),
    )
    .await;
    let before: BTreeSet<TopicPartition> = first.assignment().into_iter().collect();

    let mut second = Consumer::new(config()).await.expect("consumer");
    second.subscribe(&["coop"]).expect("subscribe");
    // Each member polls on its own task (a JoinGroup blocks until the other rejoins) until
    // both hold three partitions.
    let balanced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let drive = |mut consumer: Consumer, balanced: Arc<std::sync::atomic::AtomicUsize>| {
        tokio::spawn(async move {
            use std::sync::atomic::Ordering;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let mut counted = false;
            while balanced.load(Ordering::SeqCst) < 2 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the group never balanced"
                );
                consumer
                    .poll(Duration::from_millis(100))
                    .await
                    .expect("poll");
                if !counted && consumer.assignment().len() == 3 {
                    counted = true;
                    balanced.fetch_add(1, Ordering::SeqCst);
                }
            }
            consumer
        })
    };
    let first_task = drive(first, balanced.clone());
    let second_task = drive(second, balanced);
    let first = first_task.await.expect("first member");
    let second = second_task.await.expect("second member");
    let after: BTreeSet<TopicPartition> = first.assignment().into_iter().collect();
    let revoked: BTreeSet<TopicPartition> = first_events
        .lock()
        .expect("lock")
        .revoked
        .iter()
        .cloned()
        .collect();
    assert_eq!(
        revoked.len(),
        3,
        "only the moved partitions are revoked: {revoked:?}"
    );
    assert_eq!(
        revoked,
        before.difference(&after).cloned().collect(),
        "revoked = moved"
    );
    assert!(
        after.is_subset(&before),
        "the first member kept its other partitions"
    );
    let second_set: BTreeSet<TopicPartition> = second.assignment().into_iter().collect();
    assert_eq!(
        second_set, revoked,
        "the second member got exactly what was revoked"
    );
    second.close().await.expect("close");
    first.close().await.expect("close");
}

/// `poll` keeps to its timeout while the group rebalances: the coordinator holds a new
/// member's JoinGroup until the old member rejoins (here: until it polls again, up to the
/// 30 s rebalance timeout), and the join runs on meanwhile, ending in a later `poll`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_keeps_to_its_timeout_while_a_join_waits_for_the_group() {
    let (_broker, config) = topic_and_group("waits", Assignor::Range).await;
    let config = || {
        let mut config = config();
        config.rebalance_timeout_ms = 30_000;
        config
    };
    let first = Consumer::new(config()).await.expect("consumer");
    let mut first = owning_everything(first, "waits", None).await;

    let mut second = Consumer::new(config()).await.expect("consumer");
    second.subscribe(&["waits"]).expect("subscribe");
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let records = second.poll(Duration::from_millis(300)).await.expect("poll");
        assert!(records.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "poll waited {:?} for the join, past its 300 ms",
            started.elapsed()
        );
        assert!(second.assignment().is_empty(), "not joined yet");
    }
    // Once the first member polls (and rejoins), both end up with half.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while first.assignment().len() != 3 || second.assignment().len() != 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never balanced"
        );
        let (a, b) = tokio::join!(
            first.poll(Duration::from_millis(100)),
            second.poll(Duration::from_millis(100))
        );
        a.expect("poll");
        b.expect("poll");
    }
    first.close().await.expect("close");
    second.close().await.expect("close");
}

/// A cooperative member that stops polling past the rebalance timeout is fenced and another
/// member takes its partitions over and commits. When it polls again its partitions are
/// lost, not revoked: it commits none of its stale positions over the new owner's commits
/// (auto-commit on) and reads from the group's offsets again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_cooperative_member_loses_its_partitions_without_committing() {
    let (broker, config) = topic_and_group("fenced", Assignor::CooperativeSticky).await;
    let config = |auto_commit: bool| {
        let mut config = config();
        config.rebalance_timeout_ms = 1_000;
        config.auto_commit = auto_commit;
        config.auto_commit_interval_ms = 600_000; // commits only on revocation and close
        config.auto_offset_reset = OffsetReset::Earliest;
        config
    };
    let events = Arc::new(Mutex::new(Events::default()));
    let first = Consumer::new(config(true)).await.expect("consumer");
    let mut first =
        owning_everything(first, "fenced", Some(Box::new(Recorder(events.clone())))).await;
    let producer = Producer::new(ProducerConfig::new(&broker.addr.to_string()))
        .await
        .expect("producer");
    for i in 0..60 {
        let record = ProducerRecord::new("fenced", format!("{i}")).with_partition(i % PARTITIONS);
        producer.send(record).await.expect("send");
    }
    producer.flush().await.expect("flush");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut read = 0;
    while read < 60 {
        assert!(tokio::time::Instant::now() < deadline, "read {read} of 60");
        read += first
            .poll(Duration::from_millis(100))
            .await
            .expect("poll")
            .len();
    }
    // The first member stays away: the rebalance the second one starts drops it after 1 s.
    let mut second = Consumer::new(config(false)).await.expect("consumer");
    second.subscribe(&["fenced"]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while second.assignment().len() < PARTITIONS as usize {
        assert!(tokio::time::Instant::now() < deadline, "never took over");
        second.poll(Duration::from_millis(100)).await.expect("poll");
    }
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("fenced", p))
        .collect();
    let taken_over: std::collections::BTreeMap<TopicPartition, i64> =
        all.iter().map(|tp| (tp.clone(), 3)).collect();
    second.commit_offsets(&taken_over).await.expect("commit");
    // Its heartbeat (every 100 ms) learns it was fenced; then it polls and rejoins.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while first.assignment().is_empty() || events.lock().expect("lock").lost.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never rejoined");
        let (a, b) = tokio::join!(
            first.poll(Duration::from_millis(100)),
            second.poll(Duration::from_millis(100))
        );
        a.expect("poll");
        b.expect("poll");
    }
    let events = std::mem::take(&mut *events.lock().expect("lock"));
    let lost: BTreeSet<TopicPartition> = events.lost.into_iter().collect();
    assert_eq!(lost, all.iter().cloned().collect(), "all of it was lost");
    assert!(events.revoked.is_empty(), "revoked {:?}", events.revoked);
    let committed = second.committed(&all).await.expect("committed");
    assert_eq!(
        committed, taken_over,
        "nothing committed over the new owner"
    );
}

/// A broker with topic `name` of [`PARTITIONS`], and the config of a member of group `name`
/// with `assignor`.
async fn topic_and_group(
    name: &str,
    assignor: Assignor,
) -> (TestBroker, impl Fn() -> ConsumerConfig) {
    let broker =
        TestBroker::start_with(|config| config.groups.initial_rebalance_delay_ms = 100).await;
    let addr = broker.addr.to_string();
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new(name, PARTITIONS)])
        .await
        .expect("create");
    let name = name.to_owned();
    let config = move || {
        let mut config = ConsumerConfig::new(&addr);
        config.group_id = Some(name.clone());
        config.assignors = vec![assignor];
        config.session_timeout_ms = 10_000;
        config.heartbeat_interval_ms = 100;
        config.fetch_wait_ms_max = 50;
        config
    };
    (broker, config)
}

/// `consumer` subscribed to `topic` and polled until it owns every partition.
async fn owning_everything(
    mut consumer: Consumer,
    topic: &str,
    listener: Option<Box<dyn RebalanceListener>>,
) -> Consumer {
    if let Some(listener) = listener {
        consumer.set_rebalance_listener(listener);
    }
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while consumer.assignment().len() < PARTITIONS as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first member never got every partition"
        );
        consumer
            .poll(Duration::from_millis(100))
            .await
            .expect("poll");
    }
    consumer
}

/// How many requests of `api` the broker has counted.
async fn requests_of(broker: &TestBroker, api: &str) -> f64 {
    let (status, page) = broker.http_get("/metrics").await;
    assert_eq!(status, 200);
    let series = format!("runnel_requests_total{{api=\"{api}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `group_lag` of a live group — partitions committed or not, all owned — gives the same
/// answer as before from one request of each kind: one FindCoordinator, OffsetFetch and
/// DescribeGroups side by side, then one ListOffsets per broker for every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_answers_from_one_request_of_each_kind() {
    let (broker, config) = topic_and_group("lag-of", Assignor::Range).await;
    let addr = broker.addr.to_string();
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    // Partition p holds p + 1 records.
    for partition in 0..PARTITIONS {
        for _ in 0..=partition {
            let record = ProducerRecord::new("lag-of", "x").with_partition(partition);
            producer.send(record).await.expect("send");
        }
    }
    producer.flush().await.expect("flush");
    let mut member_config = config();
    member_config.auto_commit = false;
    let consumer = Consumer::new(member_config).await.expect("consumer");
    let mut consumer = owning_everything(consumer, "lag-of", None).await;
    let tp = |partition| TopicPartition::new("lag-of", partition);
    let committed = BTreeMap::from([(tp(0), 1), (tp(2), 2), (tp(5), 4)]);
    consumer.commit_offsets(&committed).await.expect("commit");
    let described = Admin::new(ClientConfig::new(&addr))
        .await
        .expect("admin")
        .describe_group("lag-of")
        .await
        .expect("describe");
    let member = described.members[0].member_id.clone();

    // A new admin: nothing cached, as for `runnel groups describe`.
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    let apis = [
        "FindCoordinator",
        "OffsetFetch",
        "DescribeGroups",
        "ListOffsets",
    ];
    let mut before = Vec::new();
    for api in apis {
        before.push(requests_of(&broker, api).await);
    }
    let lag = admin.group_lag("lag-of").await.expect("lag");
    for (api, before) in apis.into_iter().zip(before) {
        let sent = requests_of(&broker, api).await - before;
        assert_eq!(sent, 1.0, "{api} requests");
    }
    let expected: Vec<PartitionLag> = (0..PARTITIONS)
        .map(|partition| {
            let log_end = i64::from(partition) + 1;
            let committed = committed.get(&tp(partition)).copied();
            PartitionLag {
                partition: tp(partition),
                committed,
                log_end,
                lag: committed.map(|c| log_end - c),
                owner: Some(member.clone()),
            }
        })
        .collect();
    assert_eq!(lag, expected);
    consumer.close().await.expect("close");
}
