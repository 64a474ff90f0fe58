//! The producer waits for a topic's metadata up to `max_block_ms` (Java's `max.block.ms`),
//! asking again `retry_backoff_ms`..`retry_backoff_max_ms` apart: a send to a topic that
//! is created a moment later succeeds, one to a topic that never appears fails after about
//! the bound with an error naming the topic and the wait.

use std::time::{Duration, Instant};

use runnel_client::admin::NewTopic;
use runnel_client::{Admin, ClientConfig, Error, Producer, ProducerConfig, ProducerRecord};
use runnel_tests::TestBroker;

/// A producer that never auto-creates topics (so a missing topic stays missing).
async fn producer(addr: &str, adjust: impl FnOnce(&mut ProducerConfig)) -> Producer {
    let mut config = ProducerConfig::new(addr);
    config.client.allow_auto_topic_creation = false;
    adjust(&mut config);
    Producer::new(config).await.expect("producer")
}

#[tokio::test]
async fn a_send_to_a_topic_created_a_second_later_succeeds_with_the_default_wait() {
    let broker = TestBroker::start_with(|c| c.auto_create_topics = false).await;
    let addr = broker.addr.to_string();
    let producer = producer(&addr, |_| {}).await;
    let creator = tokio::spawn({
        let addr = addr.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
            admin
                .create_topics(&[NewTopic::new("late", 2)])
                .await
                .expect("create");
        }
    });
    let delivery = producer
        .send(ProducerRecord::new("late", "first"))
        .await
        .expect("send waits for the topic");
    let metadata = delivery.await.expect("delivered");
    assert_eq!(metadata.offset, 0);
    creator.await.expect("creator");
}

#[tokio::test]
async fn a_send_to_a_missing_topic_fails_after_max_block_ms_naming_topic_and_wait() {
    let broker = TestBroker::start_with(|c| c.auto_create_topics = false).await;
    let addr = broker.addr.to_string();
    let producer = producer(&addr, |c| c.max_block_ms = 300).await;
    let started = Instant::now();
    let error = match producer.send(ProducerRecord::new("absent", "v")).await {
        Ok(_) => panic!("a send to a missing topic was accepted"),
        Err(error) => error,
    };
    let waited = started.elapsed();
    // Only an upper bound, and a generous one: machines are noisy.
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert!(
        matches!(error, Error::TopicMetadataTimeout { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("absent"), "{message}");
    assert!(message.contains(" ms"), "{message}");
    let Error::TopicMetadataTimeout { waited_ms, .. } = error else {
        unreachable!()
    };
    assert!(waited_ms >= 300, "{waited_ms}");
}
