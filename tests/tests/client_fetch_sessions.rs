//! runnel-client's consumer fetching many partitions of which only a few get records between
//! polls — the traffic KIP-227 fetch sessions are for: incremental fetches list only the
//! partitions whose offset moved, and answers only those with records. Every record must
//! arrive exactly once and in order per partition, through pauses (partitions leave the
//! session and come back) and a seek back (an offset that moves backwards), whether the
//! broker opens sessions or declines them (answers session id 0: every fetch is full).

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_client::admin::NewTopic;
use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use runnel_tests::TestBroker;

const TOPIC: &str = "sparse";
const PARTITIONS: i32 = 50;
const ROUNDS: i32 = 8;
/// Upper bound on one round's records arriving (no speed is asserted).
const ROUND_WAIT: Duration = Duration::from_secs(20);
/// Partitions paused from round 2 to round 5 (they still get records meanwhile).
const PAUSED: std::ops::Range<i32> = 10..15;
/// The partition seeked back to its start in round 6.
const SEEKED: i32 = 0;

/// The consumer's records so far, per partition: (offset, value) in arrival order.
#[derive(Default)]
struct Received(BTreeMap<i32, Vec<(i64, String)>>);

impl Received {
    /// Takes one poll's records, each of which must be the next of its partition.
    fn take(&mut self, records: Vec<runnel_client::ConsumerRecord>) {
        for record in records {
            let got = self.0.entry(record.partition).or_default();
            let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
            assert_eq!(
                record.offset,
                got.len() as i64,
                "partition {}: a record twice or out of order ({value})",
                record.partition
            );
            got.push((record.offset, value.into_owned()));
        }
    }

    fn count(&self, partition: i32) -> usize {
        self.0.get(&partition).map_or(0, Vec::len)
    }
}

/// The partitions that get records in `round`: a handful, different each round, one of
/// them paused while the pause lasts.
fn chosen(round: i32) -> Vec<i32> {
    let mut chosen: Vec<i32> = (0..PARTITIONS)
        .filter(|p| (p * 7 + round * 3) % 11 == 0)
        .collect();
    chosen.push(PAUSED.start + round % PAUSED.len() as i32);
    chosen.push(SEEKED);
    chosen.sort();
    chosen.dedup();
    chosen
}

/// A gauge's value on the broker's metrics page.
async fn gauge(broker: &TestBroker, name: &str) -> f64 {
    let (status, page) = broker.http_get("/metrics").await;
    assert_eq!(status, 200);
    let line = page.lines().find(|l| l.split(' ').next() == Some(name));
    let value = line.and_then(|l| l.split(' ').nth(1));
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {page}"))
}

/// Whether the broker answered any Fetch with an error (a session error included).
async fn any_fetch_error(broker: &TestBroker) -> bool {
    let (_, page) = broker.http_get("/metrics").await;
    page.contains("runnel_request_errors_total{api=\"Fetch\"")
}

/// Sessions opened (one per fetch lane: two) and used without a single Fetch error;
/// closing the consumer closes them (FINAL fetches).
#[tokio::test]
async fn with_sessions_every_record_arrives_once_in_order() {
    let broker = TestBroker::start().await;
    let consumer = consume_sparse_rounds(&broker).await;
    assert_eq!(gauge(&broker, "runnel_fetch_sessions").await, 2.0);
    assert!(!any_fetch_error(&broker).await, "a session went wrong");
    consumer.close().await.expect("close");
    assert_eq!(gauge(&broker, "runnel_fetch_sessions").await, 0.0);
}

/// A broker without session slots answers session id 0: every fetch stays full.
#[tokio::test]
async fn without_sessions_every_record_arrives_once_in_order() {
    let broker = TestBroker::start_with(|c| c.fetch_session_cache_slots = 0).await;
    let consumer = consume_sparse_rounds(&broker).await;
    assert_eq!(gauge(&broker, "runnel_fetch_sessions").await, 0.0);
    assert!(!any_fetch_error(&broker).await);
    consumer.close().await.expect("close");
}

/// Runs the rounds (see the module doc) against `broker`; the consumer stays open.
async fn consume_sparse_rounds(broker: &TestBroker) -> Consumer {
    let addr = broker.addr.to_string();
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new(TOPIC, PARTITIONS)])
        .await
        .expect("create");
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    let mut config = ConsumerConfig::new(&addr);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.fetch_wait_ms_max = 100;
    let mut consumer = Consumer::new(config).await.expect("consumer");
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    consumer.assign(&all).expect("assign");
    let paused: Vec<TopicPartition> = PAUSED.map(|p| TopicPartition::new(TOPIC, p)).collect();

    let mut produced: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut received = Received::default();
    for round in 0..ROUNDS {
        match round {
            2 => consumer.pause(&paused),
            5 => consumer.resume(&paused),
            6 => {
                consumer
                    .seek(&TopicPartition::new(TOPIC, SEEKED), 0)
                    .expect("seek");
                received.0.remove(&SEEKED);
            }
            _ => {}
        }
        for partition in chosen(round) {
            let values = produced.entry(partition).or_default();
            for _ in 0..1 + round % 3 {
                let value = format!("{partition}-{}", values.len());
                let record = ProducerRecord::new(TOPIC, value.clone()).with_partition(partition);
                producer.send(record).await.expect("send");
                values.push(value);
            }
        }
        producer.flush().await.expect("flush");
        let is_paused = |p: i32| (2..5).contains(&round) && PAUSED.contains(&p);
        let held_back: BTreeMap<i32, usize> = PAUSED
            .filter(|p| is_paused(*p))
            .map(|p| (p, received.count(p)))
            .collect();
        // Until every partition not paused has all of its records.
        let deadline = tokio::time::Instant::now() + ROUND_WAIT;
        while produced
            .iter()
            .any(|(p, values)| !is_paused(*p) && received.count(*p) < values.len())
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: records missing"
            );
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll");
            received.take(records);
        }
        // A poll more: nothing arrives twice, nothing from a paused partition.
        let records = consumer
            .poll(Duration::from_millis(150))
            .await
            .expect("poll");
        assert!(
            records.is_empty(),
            "round {round}: {} extra records",
            records.len()
        );
        for (p, count) in held_back {
            assert_eq!(
                received.count(p),
                count,
                "round {round}: paused {p} delivered"
            );
        }
    }
    for (partition, values) in &produced {
        let got: Vec<&String> = received.0[partition].iter().map(|(_, v)| v).collect();
        assert_eq!(
            got,
            values.iter().collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
    assert!(
        produced.len() > 10,
        "records went to {} partitions",
        produced.len()
    );
    // Fetch v13+ named the topic by id (the consumer knew it).
    assert!(consumer.cluster().cached_topic_id(TOPIC).is_some());
    consumer
}
