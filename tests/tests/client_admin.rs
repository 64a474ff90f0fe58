//! runnel-client's admin API against an in-process broker: topics, partitions, configs,
//! offsets, delete records, groups and lag.

use std::collections::BTreeMap;

use runnel_client::admin::NewTopic;
use runnel_client::offsets::{EARLIEST, LATEST};
use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Error, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use runnel_tests::TestBroker;

#[tokio::test]
async fn topics_partitions_and_configs() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(ClientConfig::new(&broker.addr.to_string()))
        .await
        .expect("admin");
    admin
        .create_topics(&[NewTopic::new("a", 2).with_config("retention.ms", "123456")])
        .await
        .expect("create");
    let duplicate = admin
        .create_topics(&[NewTopic::new("a", 2)])
        .await
        .expect_err("exists");
    assert_eq!(duplicate.code(), Some(36), "TOPIC_ALREADY_EXISTS");
    assert!(!duplicate.is_retriable());

    let names: Vec<String> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"a".to_owned()));
    assert_eq!(
        admin
            .describe_topic("a")
            .await
            .expect("describe")
            .partitions
            .len(),
        2
    );
    admin.create_partitions("a", 4).await.expect("grow");
    assert_eq!(
        admin
            .describe_topic("a")
            .await
            .expect("describe")
            .partitions
            .len(),
        4
    );

    let configs = admin.describe_topic_configs("a").await.expect("configs");
    let retention = configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("123456"));
    admin
        .alter_topic_configs("a", &[("retention.ms".into(), Some("999".into()))])
        .await
        .expect("alter");
    let configs = admin.describe_topic_configs("a").await.expect("configs");
    let retention = configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("999"));

    admin.delete_topics(&["a"]).await.expect("delete");
    assert!(matches!(
        admin.describe_topic("a").await,
        Err(Error::UnknownTopicOrPartition(_))
    ));
}

#[tokio::test]
async fn offsets_delete_records_groups_and_lag() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    let admin = Admin::new(ClientConfig::new(&addr)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new("o", 1)])
        .await
        .expect("create");
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new("o", "x")
                    .with_partition(0)
                    .with_timestamp(1_000 + i),
            )
            .await
            .expect("send");
    }
    producer.flush().await.expect("flush");
    let tp = TopicPartition::new("o", 0);
    let tps = [tp.clone()];
    assert_eq!(
        admin.list_offsets(&tps, LATEST).await.expect("latest")[&tp],
        10
    );
    assert_eq!(
        admin.list_offsets(&tps, 1_004).await.expect("by time")[&tp],
        4
    );

    // DescribeLogDirs: the one partition's bytes, at least its ten one-byte values.
    let sizes = admin.partition_sizes("o").await.expect("sizes");
    assert_eq!(sizes.len(), 1, "{sizes:?}");
    assert!(sizes[&0] >= 10, "{sizes:?}");

    let low = admin
        .delete_records(&BTreeMap::from([(tp.clone(), 3)]))
        .await
        .expect("delete records");
    assert_eq!(low[&tp], 3);
    assert_eq!(
        admin.list_offsets(&tps, EARLIEST).await.expect("earliest")[&tp],
        3
    );

    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("lagging".to_owned());
    let mut consumer = Consumer::new(config).await.expect("consumer");
    consumer.assign(&tps).expect("assign");
    consumer
        .commit_offsets(&BTreeMap::from([(tp.clone(), 6)]))
        .await
        .expect("commit");

    assert!(admin
        .list_groups()
        .await
        .expect("groups")
        .iter()
        .any(|g| g.group_id == "lagging"));
    assert_eq!(
        admin.committed_offsets("lagging").await.expect("committed")[&tp],
        6
    );
    let lag = admin.group_lag("lagging").await.expect("lag");
    assert_eq!(lag.len(), 1);
    assert_eq!(
        (lag[0].committed, lag[0].log_end, lag[0].lag),
        (Some(6), 10, Some(4))
    );
    admin
        .reset_group_offsets("lagging", &BTreeMap::from([(tp.clone(), 9)]))
        .await
        .expect("reset");
    assert_eq!(
        admin.group_lag("lagging").await.expect("lag")[0].lag,
        Some(1)
    );
    admin
        .delete_groups(&["lagging"])
        .await
        .expect("delete group");
    assert!(admin
        .committed_offsets("lagging")
        .await
        .expect("committed")
        .is_empty());
}

/// A full metadata refresh replaces the topic cache: a topic another client deleted is
/// forgotten rather than kept (and produced to) forever.
#[tokio::test]
async fn a_full_metadata_refresh_forgets_topics_deleted_elsewhere() {
    let broker = TestBroker::start().await;
    let config = ClientConfig::new(&broker.addr.to_string());
    let admin = Admin::new(config.clone()).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new("doomed", 1), NewTopic::new("kept", 1)])
        .await
        .expect("create");
    let cluster = runnel_client::Cluster::connect(config)
        .await
        .expect("cluster");
    cluster.topic("doomed").await.expect("cached");
    cluster.topic("kept").await.expect("cached");

    // Deleted through another client: this one's cache does not hear of it.
    admin.delete_topics(&["doomed"]).await.expect("delete");
    let names: Vec<String> = cluster
        .topics()
        .await
        .expect("topics")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"kept".to_owned()), "{names:?}");
    assert!(!names.contains(&"doomed".to_owned()), "{names:?}");
    assert!(cluster.cached_topic("doomed").is_none());
}
