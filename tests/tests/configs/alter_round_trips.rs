//! AlterConfigs and IncrementalAlterConfigs → DescribeConfigs round trips: replacing
//! overrides, each incremental op, surviving a restart, every advertised version, and
//! concurrent alters of different keys losing nothing.

use kafka_protocol::error::ResponseError;
use runnel_tests::{TestBroker, TestClient};

use super::{
    alter, describe, entry, incremental, topic, APPEND, BROKER, DELETE, SET, SOURCE_DEFAULT,
    SOURCE_DYNAMIC_TOPIC, SUBTRACT, TOPIC,
};

#[tokio::test]
async fn alter_replaces_overrides_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    assert_eq!(
        alter(
            &mut client,
            0,
            "t",
            &[("retention.ms", "1000"), ("segment.ms", "5000")]
        )
        .await,
        0
    );
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("1000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        entry(&result, "segment.ms"),
        ("5000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    // Full replacement: segment.ms goes back to the default.
    assert_eq!(
        alter(&mut client, 2, "t", &[("retention.ms", "2000")]).await,
        0
    );
    let result = describe(&mut client, 1, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("2000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(entry(&result, "segment.ms").1, SOURCE_DEFAULT);
    let bad = alter(
        &mut client,
        2,
        "t",
        &[("retention.ms", "3000"), ("no.such", "1")],
    )
    .await;
    assert_eq!(bad, ResponseError::InvalidConfig.code());
    let missing = alter(&mut client, 2, "missing", &[("retention.ms", "1")]).await;
    assert_eq!(missing, ResponseError::UnknownTopicOrPartition.code());
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(entry(&result, "retention.ms").0, "2000");
}

#[tokio::test]
async fn incremental_ops_at_min_and_max_versions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    let set = [
        ("retention.ms", SET, Some("1000")),
        ("segment.ms", SET, Some("5000")),
    ];
    assert_eq!(incremental(&mut client, 0, TOPIC, "t", &set).await, 0);
    let ops = [
        ("segment.ms", DELETE, None),
        ("cleanup.policy", APPEND, Some("compact")),
    ];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("1000".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(entry(&result, "segment.ms").1, SOURCE_DEFAULT);
    assert_eq!(entry(&result, "cleanup.policy").1, SOURCE_DYNAMIC_TOPIC);
    let subtract = [("cleanup.policy", SUBTRACT, Some("delete"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &subtract).await, 0);
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(entry(&result, "cleanup.policy").0, "compact");

    let not_a_list = [("retention.ms", APPEND, Some("5"))];
    let code = incremental(&mut client, 1, TOPIC, "t", &not_a_list).await;
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let node_id = broker.context().node_id.to_string();
    // A broker config that is not a topic default cannot change at run time.
    let broker_op = [("num.partitions", SET, Some("5"))];
    let code = incremental(&mut client, 1, BROKER, &node_id, &broker_op).await;
    assert_eq!(code, ResponseError::InvalidRequest.code());
}

#[tokio::test]
async fn altered_configs_survive_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    let ops = [("retention.ms", SET, Some("123456"))];
    assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    assert_eq!(
        entry(&result, "retention.ms"),
        ("123456".to_owned(), SOURCE_DYNAMIC_TOPIC)
    );
}

#[tokio::test]
async fn every_advertised_version_round_trips() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    for version in 0..=2 {
        let value = format!("{}", 1_000 + i64::from(version));
        assert_eq!(
            alter(&mut client, version, "t", &[("retention.ms", &value)]).await,
            0
        );
        for describe_version in 1..=4 {
            let result = describe(&mut client, describe_version, TOPIC, "t", true).await;
            assert_eq!(
                entry(&result, "retention.ms"),
                (value.clone(), SOURCE_DYNAMIC_TOPIC)
            );
        }
    }
    for version in 0..=1 {
        let ops = [("retention.ms", DELETE, None)];
        assert_eq!(incremental(&mut client, version, TOPIC, "t", &ops).await, 0);
        let result = describe(&mut client, 4, TOPIC, "t", false).await;
        assert_eq!(entry(&result, "retention.ms").1, SOURCE_DEFAULT);
    }
}

/// Two admins altering different keys of one topic at once must not undo each other: each
/// IncrementalAlterConfigs edits the overrides as they are when it is applied (Kafka's
/// controller serialises them), so the last value each admin set is the one that stays.
/// (Several runtime threads, so the two connections' requests are applied side by side.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_incremental_alters_of_different_keys_lose_nothing() {
    const ROUNDS: u32 = 60;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    topic(&mut client, "t").await;
    let admin = |key: &'static str| {
        let addr = broker.addr;
        tokio::spawn(async move {
            let mut client = TestClient::connect(addr).await;
            for round in 1..=ROUNDS {
                let value = (60_000 + round).to_string();
                let ops = [(key, SET, Some(value.as_str()))];
                assert_eq!(incremental(&mut client, 1, TOPIC, "t", &ops).await, 0);
            }
        })
    };
    let (a, b) = (admin("retention.ms"), admin("segment.ms"));
    a.await.unwrap();
    b.await.unwrap();
    let result = describe(&mut client, 4, TOPIC, "t", false).await;
    let last = (60_000 + ROUNDS).to_string();
    assert_eq!(
        entry(&result, "retention.ms"),
        (last.clone(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(entry(&result, "segment.ms"), (last, SOURCE_DYNAMIC_TOPIC));
}
