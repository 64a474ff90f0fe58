//! Interop with librdkafka (confluent-kafka-python in `.venv`): records produced by
//! runnel-client read back by librdkafka field by field and the reverse (librdkafka's
//! `murmur2_random` partitioner agrees with ours), and a runnel-client consumer sharing a
//! `range` group with a librdkafka consumer. Skipped, with a message, without `.venv`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use runnel_client::admin::NewTopic;
use runnel_client::consumer::Assignor;
use runnel_client::partitioner::partition_for_key;
use runnel_client::{
    Admin, ClientConfig, Compression, Consumer, ConsumerConfig, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use runnel_tests::TestBroker;
use tokio::process::Command;

const RECORDS: usize = 60;

fn python() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} not found (run ./scripts/install-test-deps.sh)",
            path.display()
        );
        None
    }
}

/// Runs a python snippet with `BOOTSTRAP` set; returns stdout lines parsed as JSON.
async fn run_python(
    python: &PathBuf,
    addr: &str,
    script: &str,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let child = Command::new(python)
        .arg("-c")
        .arg(script)
        .env("BOOTSTRAP", addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .expect("python finished in time")
        .expect("python output");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect()
}

const READ_ALL: &str = r#"
import json, os, sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": os.environ["BOOTSTRAP"], "group.id": "py-reader",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([sys.argv[1] if len(sys.argv) > 1 else "from-runnel"])
got, idle = 0, 0
while got < 60 and idle < 40:
    m = c.poll(0.5)
    if m is None:
        idle += 1
        continue
    if m.error():
        raise SystemExit(str(m.error()))
    got += 1
    print(json.dumps({"partition": m.partition(), "offset": m.offset(), "key": m.key().decode(),
        "value": m.value().decode(), "timestamp": m.timestamp()[1],
        "headers": [[k, v.decode()] for k, v in (m.headers() or [])]}))
c.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_reads_what_runnel_client_produced() {
    let Some(python) = python() else { return };
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 100).await;
    let addr = broker.addr.to_string();
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new("from-runnel", 3)])
        .await
        .expect("create");
    let mut config = ProducerConfig::new(&addr);
    config.compression = Compression::Zstd;
    let producer = Producer::new(config).await.expect("producer");
    let mut sent = Vec::new();
    for i in 0..RECORDS {
        let record = ProducerRecord::new("from-runnel", format!("value-{i}"))
            .with_key(format!("key-{i}"))
            .with_header("n", format!("{i}"))
            .with_timestamp(1_700_000_000_000 + i as i64);
        sent.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    let mut expected = Vec::new();
    for (i, delivery) in sent.into_iter().enumerate() {
        let metadata = delivery.await.expect("delivered");
        expected.push(
            serde_json::json!({"partition": metadata.partition, "offset": metadata.offset,
            "key": format!("key-{i}"), "value": format!("value-{i}"),
            "timestamp": 1_700_000_000_000i64 + i as i64, "headers": [["n", format!("{i}")]]}),
        );
    }
    let mut got = run_python(&python, &addr, READ_ALL, Duration::from_secs(60)).await;
    let sort_key = |v: &serde_json::Value| v["key"].as_str().unwrap_or_default().to_owned();
    got.sort_by_key(sort_key);
    expected.sort_by_key(sort_key);
    assert_eq!(got, expected);
}

const PRODUCE: &str = r#"
import json, os
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": os.environ["BOOTSTRAP"], "partitioner": "murmur2_random",
              "compression.type": "gzip", "linger.ms": 5})
for i in range(60):
    p.produce("from-rdkafka", key=f"key-{i}", value=f"value-{i}", headers=[("n", str(i))],
              timestamp=1_700_000_000_000 + i)
assert p.flush(30) == 0
print(json.dumps({"done": 60}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnel_client_reads_what_librdkafka_produced() {
    let Some(python) = python() else { return };
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new("from-rdkafka", 4)])
        .await
        .expect("create");
    run_python(&python, &addr, PRODUCE, Duration::from_secs(60)).await;
    let mut config = ConsumerConfig::new(&addr);
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(config).await.expect("consumer");
    consumer
        .assign(
            &(0..4)
                .map(|p| TopicPartition::new("from-rdkafka", p))
                .collect::<Vec<_>>(),
        )
        .expect("assign");
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.len() < RECORDS && tokio::time::Instant::now() < deadline {
        records.extend(
            consumer
                .poll(Duration::from_millis(300))
                .await
                .expect("poll"),
        );
    }
    assert_eq!(records.len(), RECORDS);
    for record in records {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let i: i64 = key.trim_start_matches("key-").parse().expect("number");
        assert_eq!(
            record.partition,
            partition_for_key(key.as_bytes(), 4),
            "same partitioner"
        );
        assert_eq!(
            record.value.as_deref(),
            Some(format!("value-{i}").as_bytes())
        );
        assert_eq!(record.timestamp_ms, 1_700_000_000_000 + i);
        assert_eq!(
            record.headers,
            vec![("n".to_owned(), Some(format!("{i}").into()))]
        );
    }
}

const GROUP_MEMBER: &str = r#"
import json, os, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": os.environ["BOOTSTRAP"], "group.id": "mixed",
              "auto.offset.reset": "earliest", "partition.assignment.strategy": "range",
              "session.timeout.ms": 10000, "heartbeat.interval.ms": 300})
c.subscribe(["shared"])
seen, assignment = [], []
deadline = time.time() + 25
quiet_since = time.time()
while time.time() < deadline:
    m = c.poll(0.2)
    assignment = sorted(tp.partition for tp in c.assignment())
    if m is None:
        if len(assignment) == 2 and time.time() - quiet_since > 4:
            break
        continue
    if m.error():
        raise SystemExit(str(m.error()))
    quiet_since = time.time()
    seen.append([m.partition(), m.offset()])
try:
    c.commit(asynchronous=False)
except Exception:
    pass  # nothing consumed since the last commit (the runnel member may have read it all)
print(json.dumps({"assignment": assignment, "seen": seen}))
c.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnel_client_and_librdkafka_share_a_range_group() {
    let Some(python) = python() else { return };
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 1_000).await;
    let addr = broker.addr.to_string();
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new("shared", 4)])
        .await
        .expect("create");
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..RECORDS {
        producer
            .send(ProducerRecord::new("shared", format!("{i}")).with_key(format!("k{i}")))
            .await
            .expect("send");
    }
    producer.flush().await.expect("flush");

    let python_member = {
        let addr = addr.clone();
        tokio::spawn(async move {
            run_python(&python, &addr, GROUP_MEMBER, Duration::from_secs(60)).await
        })
    };
    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("mixed".to_owned());
    config.assignors = vec![Assignor::Range];
    config.auto_offset_reset = OffsetReset::Earliest;
    config.session_timeout_ms = 10_000;
    config.heartbeat_interval_ms = 300;
    let mut consumer = Consumer::new(config).await.expect("consumer");
    consumer.subscribe(&["shared"]).expect("subscribe");
    let mut seen = Vec::new();
    // The assignment while both were members: once the other member leaves (its close
    // comes before its process ends) a prompt heartbeat starts a rebalance that revokes
    // ours, possibly before this loop sees the process end.
    let mut ours = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !python_member.is_finished() && tokio::time::Instant::now() < deadline {
        for record in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll")
        {
            seen.push((record.partition, record.offset));
        }
        if consumer.assignment().len() == 2 {
            ours = consumer.assignment();
        }
    }
    consumer.commit().await.expect("commit");
    consumer.close().await.expect("close");
    let theirs = python_member.await.expect("python task");
    let theirs = &theirs[0];
    assert_eq!(ours.len(), 2, "range splits 4 partitions 2/2: {ours:?}");
    assert_eq!(
        theirs["assignment"].as_array().map(Vec::len),
        Some(2),
        "{theirs}"
    );
    for tp in &ours {
        assert!(!theirs["assignment"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p == tp.partition));
    }
    for pair in theirs["seen"].as_array().into_iter().flatten() {
        let p = pair[0].as_i64().unwrap_or(-1) as i32;
        seen.push((p, pair[1].as_i64().unwrap_or(-1)));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), RECORDS, "together they read every record");
}
