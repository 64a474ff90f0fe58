//! What `kafka-transactions.sh` and admin UIs ask a broker that has idempotent producers but
//! no transactions: DescribeProducers lists each partition's producers (also after a
//! restart, rebuilt from the log), ListTransactions lists none and DescribeTransactions
//! finds none; over TCP at every version we advertise.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::{idempotent_batch_at, now_ms};
use runnel_tests::requests::{self, creatable_topic, produce};
use runnel_tests::{TestBroker, TestClient};

async fn create(client: &mut TestClient, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(name, partitions, &[])])
        .with_timeout_ms(5_000);
    let response = client.send(request, 7).await;
    assert_eq!(response.topics[0].error_code, 0, "create {name}");
}

/// (partition, error code, [(producer id, epoch, last sequence, last timestamp)]) of the
/// DescribeProducers answer for `topic`'s `partitions`.
async fn describe_producers(
    client: &mut TestClient,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i16, Vec<(i64, i32, i32, i64)>)> {
    let response = client
        .send(requests::describe_producers(topic, partitions), 0)
        .await;
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.0.as_str(), topic);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let producers = p
                .active_producers
                .iter()
                .map(|s| {
                    assert_eq!(s.coordinator_epoch, -1);
                    assert_eq!(s.current_txn_start_offset, -1);
                    (
                        s.producer_id.0,
                        s.producer_epoch,
                        s.last_sequence,
                        s.last_timestamp,
                    )
                })
                .collect();
            (p.partition_index, p.error_code, producers)
        })
        .collect()
}

/// Each partition shows the producers that wrote to it, with their last sequence and
/// timestamp; an unknown partition is UNKNOWN_TOPIC_OR_PARTITION; after a restart the
/// producers are read back from the log (stamped now: expired ones would not be).
#[tokio::test]
async fn describe_producers_lists_idempotent_producers_also_after_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "p", 2).await;
    let t = now_ms();
    for (records, partition) in [
        (idempotent_batch_at(11, 0, 0, &["a", "b", "c"], t), 0),
        (idempotent_batch_at(11, 0, 3, &["d"], t), 0),
        (idempotent_batch_at(12, 3, 0, &["e", "f"], t), 1),
    ] {
        let response = client.send(produce("p", partition, records, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let expected = vec![
        (0, 0, vec![(11, 0, 3, t)]),
        (1, 0, vec![(12, 3, 1, t + 1)]),
        (2, unknown, vec![]),
    ];
    assert_eq!(
        describe_producers(&mut client, "p", &[0, 1, 2]).await,
        expected
    );
    assert_eq!(
        describe_producers(&mut client, "absent", &[0]).await,
        vec![(0, unknown, vec![])]
    );
    drop(client);

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(
        describe_producers(&mut client, "p", &[0, 1, 2]).await,
        expected
    );
}

/// No transaction is ever listed; state filters Kafka does not know come back as unknown
/// (v0 has no duration filter, v1's is accepted).
#[tokio::test]
async fn list_transactions_lists_none_and_returns_unknown_state_filters() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in 0..=1 {
        let request = ListTransactionsRequest::default()
            .with_state_filters(vec![
                StrBytes::from_static_str("Ongoing"),
                StrBytes::from_static_str("Hanging"),
            ])
            .with_duration_filter(if version == 1 { 1_000 } else { -1 });
        let response = client.send(request, version).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert!(response.transaction_states.is_empty(), "v{version}");
        let unknown: Vec<&str> = response
            .unknown_state_filters
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(unknown, vec!["Hanging"], "v{version}");
    }
}

/// Every transactional id is unknown to a broker without transactions: TRANSACTIONAL_ID_NOT_FOUND,
/// the id kept in the answer.
#[tokio::test]
async fn describe_transactions_finds_no_transactional_id() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(StrBytes::from_static_str("payments")),
        TransactionalId(StrBytes::from_static_str("audit")),
    ]);
    let response = client.send(request, 0).await;
    let not_found = ResponseError::TransactionalIdNotFound.code();
    let answers: Vec<(&str, i16)> = response
        .transaction_states
        .iter()
        .map(|s| (s.transactional_id.0.as_str(), s.error_code))
        .collect();
    assert_eq!(answers, vec![("payments", not_found), ("audit", not_found)]);
}
