//! The idempotent producer end to end: InitProducerId hands out distinct ids (also across a
//! restart), a retried batch is answered with its original offset and stored once (also
//! after a restart), a sequence gap and an old epoch are refused.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, ProduceResponse, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::records::{decode_values, idempotent_batch_at, now_ms};
use runnel_tests::requests::{fetch, metadata, produce};
use runnel_tests::{TestBroker, TestClient};

/// The producer a batch comes from and its first sequence.
#[derive(Clone, Copy)]
struct Producer {
    id: i64,
    epoch: i16,
}

/// One idempotent batch of `values` with sequences `first_seq..`, stamped now: a producer
/// idle for `producer.id.expiration.ms` is not read back after a restart.
fn batch(producer: Producer, first_seq: i32, values: &[&str]) -> Bytes {
    idempotent_batch_at(producer.id, producer.epoch, first_seq, values, now_ms())
}

async fn init_producer_id(client: &mut TestClient, version: i16) -> Producer {
    // Clients send a null transactional id (the crate's default is an empty string).
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let response = client.send(request, version).await;
    assert_eq!(response.error_code, 0);
    assert!(response.producer_id.0 >= 0);
    Producer {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
    }
}

/// (error code, base offset) of a one-partition produce.
fn outcome(response: &ProduceResponse) -> (i16, i64) {
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

async fn send(client: &mut TestClient, records: Bytes) -> (i16, i64) {
    outcome(&client.send(produce("t", 0, records, -1), 9).await)
}

async fn stored(client: &mut TestClient) -> Vec<String> {
    let response = client.send(fetch("t", 0, 0, 0, 0), 12).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    decode_values(partition.records.as_ref().unwrap())
}

async fn create(client: &mut TestClient) {
    let response = client.send(metadata(Some(&["t"])), 12).await;
    assert_eq!(response.topics[0].error_code, 0);
}

#[tokio::test]
async fn init_producer_id_gives_distinct_ids_also_across_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let mut ids = Vec::new();
    for version in 0..=4 {
        let producer = init_producer_id(&mut client, version).await;
        assert_eq!(producer.epoch, 0, "v{version}");
        ids.push(producer.id);
    }
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    ids.push(init_producer_id(&mut client, 4).await.id);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(ids[5] > ids[4], "a restart skips ahead: {ids:?}");
}

#[tokio::test]
async fn init_producer_id_bumps_the_epoch_of_a_known_producer_and_refuses_transactions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let producer = init_producer_id(&mut client, 4).await;
    let bump = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(producer.id.into())
        .with_producer_epoch(producer.epoch);
    let response = client.send(bump, 4).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.producer_id.0, producer.id);
    assert_eq!(response.producer_epoch, producer.epoch + 1);
    let transactional = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let response = client.send(transactional, 4).await;
    assert_eq!(response.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(response.producer_id.0, -1);
}

#[tokio::test]
async fn a_retried_batch_gets_its_original_offset_and_is_stored_once() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client).await;
    let producer = init_producer_id(&mut client, 4).await;
    let other = init_producer_id(&mut client, 4).await;
    assert_eq!(
        send(&mut client, batch(producer, 0, &["a", "b"])).await,
        (0, 0)
    );
    assert_eq!(send(&mut client, batch(other, 0, &["x"])).await, (0, 2));
    assert_eq!(send(&mut client, batch(producer, 2, &["c"])).await, (0, 3));
    // Retries of both of its batches: answered as the originals, nothing appended.
    assert_eq!(
        send(&mut client, batch(producer, 0, &["a", "b"])).await,
        (0, 0)
    );
    assert_eq!(send(&mut client, batch(producer, 2, &["c"])).await, (0, 3));
    assert_eq!(send(&mut client, batch(producer, 3, &["d"])).await, (0, 4));
    assert_eq!(stored(&mut client).await, ["a", "b", "x", "c", "d"]);
    // A plain (non-idempotent) batch is never checked.
    let plain = runnel_tests::records::values(&["p"]);
    assert_eq!(send(&mut client, plain.clone()).await, (0, 5));
    assert_eq!(send(&mut client, plain).await, (0, 6));
}

#[tokio::test]
async fn a_retry_after_a_restart_is_still_a_duplicate() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client).await;
    let producer = init_producer_id(&mut client, 4).await;
    for (seq, value) in ["a", "b", "c"].iter().enumerate() {
        let seq = i32::try_from(seq).unwrap();
        let expected = (0, i64::from(seq));
        assert_eq!(
            send(&mut client, batch(producer, seq, &[value])).await,
            expected
        );
    }
    drop(client);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    assert_eq!(send(&mut client, batch(producer, 1, &["b"])).await, (0, 1));
    assert_eq!(send(&mut client, batch(producer, 2, &["c"])).await, (0, 2));
    let gap = send(&mut client, batch(producer, 5, &["f"])).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(send(&mut client, batch(producer, 3, &["d"])).await, (0, 3));
    assert_eq!(stored(&mut client).await, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn a_sequence_gap_is_out_of_order_and_stores_nothing() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client).await;
    let producer = init_producer_id(&mut client, 4).await;
    assert_eq!(send(&mut client, batch(producer, 0, &["a"])).await, (0, 0));
    let (error, base_offset) = send(&mut client, batch(producer, 2, &["c"])).await;
    assert_eq!(error, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(base_offset, -1);
    // A producer id in the batch but no sequence is not a valid idempotent batch.
    let (error, _) = send(&mut client, batch(producer, -1, &["z"])).await;
    assert_eq!(error, ResponseError::InvalidRecord.code());
    assert_eq!(send(&mut client, batch(producer, 1, &["b"])).await, (0, 1));
    assert_eq!(stored(&mut client).await, ["a", "b"]);
}

#[tokio::test]
async fn an_old_epoch_is_fenced_and_a_new_epoch_restarts_at_zero() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client).await;
    let old = init_producer_id(&mut client, 4).await;
    assert_eq!(send(&mut client, batch(old, 0, &["a"])).await, (0, 0));
    let bump = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(old.id.into())
        .with_producer_epoch(old.epoch);
    let response = client.send(bump, 4).await;
    let new = Producer {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
    };
    assert_eq!((new.id, new.epoch), (old.id, old.epoch + 1));
    let (error, _) = send(&mut client, batch(new, 1, &["x"])).await;
    assert_eq!(error, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(send(&mut client, batch(new, 0, &["b"])).await, (0, 1));
    let (error, _) = send(&mut client, batch(old, 1, &["late"])).await;
    assert_eq!(error, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(stored(&mut client).await, ["a", "b"]);
}

#[tokio::test]
async fn concurrent_retries_on_two_connections_are_stored_once() {
    let broker = TestBroker::start().await;
    let mut first = broker.client().await;
    let mut second = broker.client().await;
    create(&mut first).await;
    let producer = init_producer_id(&mut first, 4).await;
    for seq in 0..20 {
        let value = seq.to_string();
        let request = produce("t", 0, batch(producer, seq, &[value.as_str()]), -1);
        first.write_request(&request, 9).await;
        second.write_request(&request, 9).await;
        let (_, a) = first.read_response::<ProduceResponse>(9).await;
        let (_, b) = second.read_response::<ProduceResponse>(9).await;
        assert_eq!(outcome(&a), (0, i64::from(seq)));
        assert_eq!(outcome(&b), (0, i64::from(seq)));
    }
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(stored(&mut first).await, expected);
}
