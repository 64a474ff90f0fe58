//! Idempotent producers expire by time, as in Kafka: a broker started with a short
//! `producer.id.expiration.ms` and check interval stops listing an idle producer in
//! DescribeProducers once its last batch is that old, and then accepts the producer's next
//! batch at any sequence; a restart does not read back a producer already expired; the
//! broker resource's DescribeConfigs shows both settings as static broker configs; and
//! `producer.id.expiration.ms` set as a dynamic broker config (KIP-854) applies without a
//! restart and survives one.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{CreateTopicsRequest, DescribeConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::{idempotent_batch_at, now_ms};
use runnel_tests::requests::{
    creatable_topic, describe_configs, describe_producers, incremental_alter_configs, produce,
};
use runnel_tests::runnel_broker::config::BrokerConfig;
use runnel_tests::{TestBroker, TestClient};

const PRODUCER_ID: i64 = 42;
/// Long enough that a loaded machine lists the producer before it expires.
const EXPIRATION_MS: i32 = 3_000;
const CHECK_INTERVAL_MS: i32 = 100;
/// Longest a test waits for the sweep to act after the producer expired.
const SWEEP_WAIT_MS_MAX: i64 = 10_000;
/// Kafka's `ConfigSource`s.
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// The BROKER config resource type.
const BROKER: i8 = 4;

fn short_expiration(check_interval_ms: i32) -> impl FnOnce(&mut BrokerConfig) {
    move |config| {
        config.producers.producer_id_expiration_ms = Some(EXPIRATION_MS);
        config.producers.producer_id_expiration_check_interval_ms = Some(check_interval_ms);
    }
}

async fn create_topic(client: &mut TestClient) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic("t", 1, &[])])
        .with_timeout_ms(5_000);
    assert_eq!(client.send(request, 7).await.topics[0].error_code, 0);
}

/// (error code, base offset) of producing `records` to t-0.
async fn send(client: &mut TestClient, records: Bytes) -> (i16, i64) {
    let response = client.send(produce("t", 0, records, -1), 9).await;
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

/// (producer id, last sequence, last timestamp) of each producer t-0 lists.
async fn producers(client: &mut TestClient) -> Vec<(i64, i32, i64)> {
    let response = client.send(describe_producers("t", &[0]), 0).await;
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition
        .active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.last_sequence, p.last_timestamp))
        .collect()
}

/// The producer is listed until the periodic check finds it `producer.id.expiration.ms`
/// idle, never before; then its batch at sequence 5 (a gap before) is accepted.
#[tokio::test]
async fn an_idle_producer_expires_and_may_then_continue_at_any_sequence() {
    let broker = TestBroker::start_with(short_expiration(CHECK_INTERVAL_MS)).await;
    let mut client = broker.client().await;
    create_topic(&mut client).await;
    let stamped_ms = now_ms();
    let first = idempotent_batch_at(PRODUCER_ID, 0, 0, &["a", "b"], stamped_ms);
    assert_eq!(send(&mut client, first).await, (0, 0));
    let last_timestamp_ms = stamped_ms + 1;
    assert_eq!(
        producers(&mut client).await,
        vec![(PRODUCER_ID, 1, last_timestamp_ms)]
    );
    let gap = || idempotent_batch_at(PRODUCER_ID, 0, 5, &["f"], now_ms());
    let refused = ResponseError::OutOfOrderSequenceNumber.code();
    assert_eq!(send(&mut client, gap()).await.0, refused);

    loop {
        let listed = !producers(&mut client).await.is_empty();
        let idle_ms = now_ms() - last_timestamp_ms;
        if !listed {
            assert!(
                idle_ms >= i64::from(EXPIRATION_MS),
                "gone after {idle_ms} ms"
            );
            break;
        }
        assert!(idle_ms < i64::from(EXPIRATION_MS) + SWEEP_WAIT_MS_MAX);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(send(&mut client, gap()).await, (0, 2));
    let listed = producers(&mut client).await;
    assert_eq!(
        (listed.len(), listed[0].0, listed[0].1),
        (1, PRODUCER_ID, 5)
    );
}

/// With no periodic check due, a restart alone forgets a producer idle for the expiration:
/// the state rebuilt from the log leaves it out.
#[tokio::test]
async fn a_restart_does_not_read_back_an_expired_producer() {
    let hour_ms = 3_600_000;
    let broker = TestBroker::start_with(short_expiration(hour_ms)).await;
    let mut client = broker.client().await;
    create_topic(&mut client).await;
    let stamped_ms = now_ms();
    let first = idempotent_batch_at(PRODUCER_ID, 0, 0, &["a"], stamped_ms);
    assert_eq!(send(&mut client, first).await, (0, 0));
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let expired_in_ms = stamped_ms + i64::from(EXPIRATION_MS) - now_ms();
    let wait_ms = u64::try_from(expired_in_ms.max(0)).unwrap();
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    assert_eq!(producers(&mut client).await, vec![]);
    let gap = idempotent_batch_at(PRODUCER_ID, 0, 5, &["f"], now_ms());
    assert_eq!(send(&mut client, gap).await, (0, 1));
}

/// DescribeConfigs of the broker lists both settings with the values given, as static
/// broker configs.
#[tokio::test]
async fn describe_configs_shows_the_expiration_settings() {
    let broker = TestBroker::start_with(short_expiration(CHECK_INTERVAL_MS)).await;
    let mut client = broker.client().await;
    let node_id = broker.running().config.node_id.to_string();
    let resource = DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_string(node_id));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let result = client.send(request, 4).await.results.remove(0);
    assert_eq!(result.error_code, 0);
    let row = |key: &str| {
        let config = result.configs.iter().find(|c| c.name.as_str() == key);
        let config = config.unwrap_or_else(|| panic!("{key} not described"));
        let value = config.value.as_ref().map(|v| v.to_string());
        (value, config.config_source)
    };
    assert_eq!(
        row("producer.id.expiration.ms"),
        (Some(EXPIRATION_MS.to_string()), SOURCE_STATIC_BROKER)
    );
    assert_eq!(
        row("producer.id.expiration.check.interval.ms"),
        (Some(CHECK_INTERVAL_MS.to_string()), SOURCE_STATIC_BROKER)
    );
}

/// Waits (bounded) until t-0 lists no producer.
async fn wait_until_forgotten(client: &mut TestClient, wait_ms_max: i64) {
    let deadline_ms = now_ms() + wait_ms_max;
    while !producers(client).await.is_empty() {
        assert!(
            now_ms() < deadline_ms,
            "still listed after {wait_ms_max} ms"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (value, source, synonyms as (value, source)) of `producer.id.expiration.ms` as this
/// broker describes it.
async fn described_expiration(
    broker: &TestBroker,
    client: &mut TestClient,
) -> (String, i8, Vec<(String, i8)>) {
    let node_id = broker.running().config.node_id.to_string();
    let request = describe_configs(BROKER, &node_id, true);
    let result = client.send(request, 4).await.results.remove(0);
    assert_eq!(result.error_code, 0);
    let key = "producer.id.expiration.ms";
    let config = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap();
    let text = |value: &Option<StrBytes>| value.as_ref().unwrap().to_string();
    let synonyms = config.synonyms.iter().map(|s| (text(&s.value), s.source));
    (
        text(&config.value),
        config.config_source,
        synonyms.collect(),
    )
}

/// A broker started with an hour's `producer.id.expiration.ms` forgets an idle producer
/// once the cluster-wide dynamic value is set to a second, with no restart; DescribeConfigs
/// shows the dynamic value over the static one and the default, in Kafka's order; after a
/// restart the value is still in force, and still applied to a new producer.
#[tokio::test]
async fn a_dynamic_expiration_applies_without_a_restart_and_survives_one() {
    let hour_ms = 3_600_000;
    let broker = TestBroker::start_with(move |config| {
        config.producers.producer_id_expiration_ms = Some(hour_ms);
        config.producers.producer_id_expiration_check_interval_ms = Some(CHECK_INTERVAL_MS);
    })
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client).await;
    let first = idempotent_batch_at(PRODUCER_ID, 0, 0, &["a"], now_ms());
    assert_eq!(send(&mut client, first).await, (0, 0));
    // Sweeps run under the static hour and keep the producer.
    let sweeps_ms = u64::try_from(CHECK_INTERVAL_MS * 3).unwrap();
    tokio::time::sleep(Duration::from_millis(sweeps_ms)).await;
    assert_eq!(producers(&mut client).await.len(), 1);

    let dynamic_ms = "1000";
    let ops = [("producer.id.expiration.ms", 0, Some(dynamic_ms))];
    let request = incremental_alter_configs(BROKER, "", &ops);
    assert_eq!(client.send(request, 1).await.responses[0].error_code, 0);
    wait_until_forgotten(&mut client, SWEEP_WAIT_MS_MAX).await;
    let expected = (
        dynamic_ms.to_owned(),
        SOURCE_DYNAMIC_DEFAULT_BROKER,
        vec![
            (dynamic_ms.to_owned(), SOURCE_DYNAMIC_DEFAULT_BROKER),
            (hour_ms.to_string(), SOURCE_STATIC_BROKER),
            ("86400000".to_owned(), SOURCE_DEFAULT),
        ],
    );
    assert_eq!(described_expiration(&broker, &mut client).await, expected);
    drop(client);

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(described_expiration(&broker, &mut client).await, expected);
    let next = idempotent_batch_at(PRODUCER_ID + 1, 0, 0, &["b"], now_ms());
    assert_eq!(send(&mut client, next).await, (0, 1));
    assert_eq!(producers(&mut client).await.len(), 1);
    wait_until_forgotten(&mut client, SWEEP_WAIT_MS_MAX).await;
}
