//! runnel-client's idempotent producer against an in-process broker: with acks=all it takes
//! a producer id and numbers every partition's batches without a gap, five batches of a
//! partition in flight keep their order; a batch the broker refuses for good bumps the
//! epoch and the batches behind it land once, in order, numbered from 0 again; requests
//! whose answers are lost are retried and answered as duplicates, not stored twice; across
//! a broker restart under load every record is stored exactly once, in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use runnel_client::admin::NewTopic;
use runnel_client::{Admin, ClientConfig, Error, Producer, ProducerConfig, ProducerRecord};
use runnel_protocol::batch::BatchSplitter;
use runnel_tests::proxy::StallingProxy;
use runnel_tests::records::decode_values;
use runnel_tests::requests::fetch;
use runnel_tests::{TestBroker, TestClient};

/// One stored batch: producer id, epoch, base sequence, its offsets and values.
#[derive(Debug)]
struct Stored {
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    base_offset: i64,
    values: Vec<String>,
}

async fn create_topic(addr: &str, topic: NewTopic) {
    let admin = Admin::new(ClientConfig::new(addr)).await.expect("admin");
    admin.create_topics(&[topic]).await.expect("create");
}

/// Every batch of `topic`-`partition`, read with raw Fetches from offset 0 to the end.
async fn stored_batches(client: &mut TestClient, topic: &str, partition: i32) -> Vec<Stored> {
    let mut batches = Vec::new();
    let mut offset = 0i64;
    loop {
        let response = client.send(fetch(topic, partition, offset, 0, 0), 12).await;
        let answer = &response.responses[0].partitions[0];
        assert_eq!(answer.error_code, 0, "fetch at {offset}");
        let records = answer.records.clone().unwrap_or_default();
        let mut read = 0;
        for batch in BatchSplitter::new(records) {
            let Ok(batch) = batch else { break }; // a partial batch at the end of the answer
            batch.verify_crc().expect("CRC");
            offset = batch.next_offset();
            read += 1;
            batches.push(Stored {
                producer_id: batch.producer_id(),
                epoch: batch.producer_epoch(),
                base_sequence: batch.base_sequence(),
                base_offset: batch.base_offset(),
                values: decode_values(batch.as_bytes()),
            });
        }
        if read == 0 || offset >= answer.high_watermark {
            return batches;
        }
    }
}

/// Within each epoch the batches' sequences run on without a gap from 0, and offsets
/// without a gap from 0; one producer id throughout.
fn assert_numbered_without_gaps(batches: &[Stored]) {
    let mut expected_offset = 0i64;
    let mut expected = (batches[0].epoch, 0i32);
    for batch in batches {
        assert_eq!(batch.producer_id, batches[0].producer_id, "{batch:?}");
        assert_eq!(batch.base_offset, expected_offset, "{batch:?}");
        if batch.epoch != expected.0 {
            assert!(batch.epoch > expected.0, "epochs only grow: {batch:?}");
            expected = (batch.epoch, 0);
        }
        assert_eq!(batch.base_sequence, expected.1, "{batch:?}");
        let count = batch.values.len() as i32;
        expected.1 += count;
        expected_offset += i64::from(count);
    }
}

fn values_of(batches: &[Stored]) -> Vec<String> {
    batches.iter().flat_map(|b| b.values.clone()).collect()
}

/// Small batches (2 KiB), no linger: many batches of a partition in flight at once.
fn small_batches(addr: &str) -> ProducerConfig {
    let mut config = ProducerConfig::new(addr);
    config.batch_size_bytes = 2 * 1024;
    config.linger_ms = 0;
    config
}

fn value(i: usize) -> String {
    format!("{i:06}-{}", "x".repeat(100))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_idempotent_by_default_and_five_in_flight_keep_the_order() {
    const RECORDS: usize = 4_000;
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    create_topic(&addr, NewTopic::new("numbered", 2)).await;
    let config = small_batches(&addr);
    assert!(config.idempotent() && config.in_flight_per_partition() == 5);
    let producer = Producer::new(config).await.expect("producer");
    assert!(producer.idempotent());
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new("numbered", value(i)).with_partition((i % 2) as i32);
        deliveries.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let metadata = delivery.await.expect("delivered");
        assert_eq!(metadata.offset, (i / 2) as i64, "record {i}");
    }
    let mut client = broker.client().await;
    for partition in 0..2 {
        let batches = stored_batches(&mut client, "numbered", partition).await;
        assert!(batches.len() > 20, "small batches: {}", batches.len());
        let expected: Vec<String> = (0..RECORDS)
            .filter(|i| i % 2 == partition as usize)
            .map(value)
            .collect();
        assert_eq!(values_of(&batches), expected);
        assert!(batches[0].producer_id >= 0, "a producer id");
        assert_eq!(batches[0].epoch, 0);
        assert_numbered_without_gaps(&batches);
    }
}

/// A record the topic refuses (MESSAGE_TOO_LARGE, not retriable) fails its batch and leaves a
/// gap in the partition's sequence: the batches sent behind it are refused as out of order,
/// the producer bumps its epoch and sends them again numbered from 0 — each stored once, in
/// the order sent. Without the bump they would fail at their delivery deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_bumps_the_epoch_and_the_batches_behind_it_land_once_in_order() {
    const BEFORE: usize = 300;
    const AFTER: usize = 300;
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    let topic = NewTopic::new("gap", 1).with_config("max.message.bytes", "16384");
    create_topic(&addr, topic).await;
    let mut config = small_batches(&addr);
    config.client.connection.request_timeout_ms = 10_000;
    config.delivery_timeout_ms = 20_000;
    let producer = Producer::new(config).await.expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..BEFORE {
        deliveries.push(
            producer
                .send(ProducerRecord::new("gap", value(i)))
                .await
                .expect("send"),
        );
    }
    let refused = ProducerRecord::new("gap", Bytes::from(vec![b'z'; 64 * 1024]));
    let refused = producer.send(refused).await.expect("send");
    for i in BEFORE..BEFORE + AFTER {
        deliveries.push(
            producer
                .send(ProducerRecord::new("gap", value(i)))
                .await
                .expect("send"),
        );
    }
    let flushed = tokio::time::timeout(Duration::from_secs(15), producer.flush()).await;
    flushed
        .expect("flushed well before the delivery deadline")
        .expect("flush");
    match refused.await {
        Err(Error::Broker { code: 10, .. }) => {} // MESSAGE_TOO_LARGE
        other => panic!("the large record is refused: {other:?}"),
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let metadata = delivery.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!(metadata.offset, i as i64, "record {i}");
    }
    let mut client = broker.client().await;
    let batches = stored_batches(&mut client, "gap", 0).await;
    let expected: Vec<String> = (0..BEFORE + AFTER).map(value).collect();
    assert_eq!(values_of(&batches), expected, "each record once, in order");
    assert_numbered_without_gaps(&batches);
    let last = batches.last().expect("batches");
    assert!(last.epoch >= 1, "the epoch was bumped: {last:?}");
}

/// A broker stopped (gracefully) and started again on the same port while an idempotent
/// producer streams into it: the producer reconnects and goes on; every record is stored
/// exactly once and in order, numbered without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_a_restart_every_record_is_stored_once_in_order() {
    const RECORDS: usize = 20_000;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut broker = TestBroker::start_with(|c| c.listen = listen.clone()).await;
    let addr = broker.addr.to_string();
    create_topic(&addr, NewTopic::new("restart", 1)).await;
    let mut config = small_batches(&addr);
    config.retry_backoff_ms = 20;
    config.retry_backoff_max_ms = 200;
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = stream(config, "restart", RECORDS, sent.clone());
    while sent.load(Ordering::Relaxed) < RECORDS / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!sending.is_finished(), "the broker stops mid-stream");
    let data_dir = broker.data_dir().to_path_buf();
    broker.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restarted = TestBroker::start_in(&data_dir, |c| c.listen = listen.clone()).await;
    let deliveries = tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("the producer finishes")
        .expect("joined");
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let metadata = delivery.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!(metadata.offset, i as i64, "record {i}");
    }
    let mut client = restarted.client().await;
    let batches = stored_batches(&mut client, "restart", 0).await;
    let expected: Vec<String> = (0..RECORDS).map(value).collect();
    assert_eq!(values_of(&batches), expected, "each record once, in order");
    assert_numbered_without_gaps(&batches);
    drop(broker);
}

/// A free port on 127.0.0.1 (bound and let go).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("address").port()
}

/// A broker that clients reach only through a proxy (it advertises the proxy's address),
/// a one-partition `topic`, and small-batch producer settings through the proxy with a 1 s
/// request timeout and short retry pauses.
async fn behind_proxy(topic: &str) -> (TestBroker, StallingProxy, ProducerConfig) {
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let broker = TestBroker::start_with(|c| c.advertise = Some(proxy_addr.clone())).await;
    let proxy = StallingProxy::start_on(&proxy_addr, broker.addr).await;
    create_topic(&proxy_addr, NewTopic::new(topic, 1)).await;
    let mut config = small_batches(&proxy_addr);
    config.client.connection.request_timeout_ms = 1_000;
    config.retry_backoff_ms = 20;
    config.retry_backoff_max_ms = 200;
    (broker, proxy, config)
}

/// Produces `RECORDS` small records to `topic` with `config` from a task, counting sends in
/// `sent`; the deliveries once flushed.
fn stream(
    config: ProducerConfig,
    topic: &'static str,
    records: usize,
    sent: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<runnel_client::DeliveryFuture>> {
    tokio::spawn(async move {
        let producer = Producer::new(config).await.expect("producer");
        let mut deliveries = Vec::with_capacity(records);
        for i in 0..records {
            let record = ProducerRecord::new(topic, value(i));
            deliveries.push(producer.send(record).await.expect("send"));
            sent.store(i + 1, Ordering::Relaxed);
        }
        producer.flush().await.expect("flush");
        deliveries
    })
}

/// The broker stores what it is sent but its answers are lost (a proxy stops passing them
/// on): the producer's requests time out, it reconnects and sends the same batches again
/// with the same sequences, and the broker answers those it has as duplicates, with their
/// original offsets. Every record is stored once, in order. (With idempotence off the same
/// run stores the retried batches twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_whose_answers_were_lost_are_answered_as_duplicates_not_stored_twice() {
    const RECORDS: usize = 20_000;
    let (broker, proxy, config) = behind_proxy("lost").await;
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = stream(config, "lost", RECORDS, sent.clone());
    while sent.load(Ordering::Relaxed) < RECORDS / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connections = proxy.accepted();
    // Requests keep reaching the broker; their answers stop until the client gives up on
    // the connection (its request timeout) and opens another.
    proxy.stall_answers(true);
    let deliveries = tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("the producer finishes")
        .expect("joined");
    assert!(proxy.accepted() > connections, "the producer reconnected");
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let metadata = delivery.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!(metadata.offset, i as i64, "record {i}");
    }
    let mut client = broker.client().await;
    let batches = stored_batches(&mut client, "lost", 0).await;
    let expected: Vec<String> = (0..RECORDS).map(value).collect();
    assert_eq!(values_of(&batches), expected, "each record once, in order");
    assert_numbered_without_gaps(&batches);
    assert_eq!(
        batches[0].epoch,
        batches.last().expect("batches").epoch,
        "no bump was needed"
    );
}

/// Batches that reach their delivery deadline while the broker cannot be reached fail with
/// `DeliveryTimeout`, their fate unknown to the producer; it bumps its epoch before sending
/// on, and what it sends once the broker answers again is stored once, in order, numbered
/// from 0 in the new epoch. (Here the expired batches never reached the broker; one that had
/// would stay stored though its records failed, as with Java.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_expired_while_the_broker_was_unreachable_bump_the_epoch_and_the_rest_go_on() {
    const EACH: usize = 200;
    let (broker, proxy, mut config) = behind_proxy("expired").await;
    config.delivery_timeout_ms = 2_000;
    let producer = Producer::new(config).await.expect("producer");
    producer
        .send(ProducerRecord::new("expired", value(0)))
        .await
        .expect("send")
        .await
        .expect("the first record goes through");
    // Nothing gets through now, on the connections there are or new ones.
    proxy.stall_new(true);
    proxy.stall_all(true);
    let mut lost = Vec::new();
    for i in 1..=EACH {
        lost.push(
            producer
                .send(ProducerRecord::new("expired", value(i)))
                .await
                .expect("send"),
        );
    }
    for delivery in lost {
        match tokio::time::timeout(Duration::from_secs(20), delivery).await {
            Ok(Err(Error::DeliveryTimeout { .. })) => {}
            other => panic!("expected a delivery timeout: {other:?}"),
        }
    }
    proxy.stall_new(false);
    let mut deliveries = Vec::new();
    for i in EACH + 1..=2 * EACH {
        let record = ProducerRecord::new("expired", value(i));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    let mut offsets = Vec::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let metadata = delivery.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        offsets.push(metadata.offset);
    }
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
    let mut client = broker.client().await;
    let batches = stored_batches(&mut client, "expired", 0).await;
    // The stalled connections never pass on what they hold: the expired batches never
    // reached the broker.
    let expected: Vec<String> = std::iter::once(0)
        .chain(EACH + 1..=2 * EACH)
        .map(value)
        .collect();
    assert_eq!(
        values_of(&batches),
        expected,
        "the records after the stall, once, in order"
    );
    assert_numbered_without_gaps(&batches);
    let last = batches.last().expect("batches");
    assert!(
        last.epoch > batches[0].epoch,
        "the epoch was bumped: {last:?}"
    );
    assert_eq!(last.producer_id, batches[0].producer_id);
}
