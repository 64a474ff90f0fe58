//! Pipelined requests end to end: answered in order, small requests behind large ones see
//! them applied, and a waiting fetch does not hold up later requests on its connection.

use kafka_protocol::messages::{FetchResponse, ProduceRequest, ProduceResponse};
use runnel_tests::records::values;
use runnel_tests::requests::{fetch, produce};
use runnel_tests::TestBroker;

use super::{create, fetched, partition_error};

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "pipe").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let acks = if i % 2 == 0 { -1 } else { 1 };
        let request: ProduceRequest = produce("pipe", 0, values(&[&i.to_string()]), acks);
        ids.push(client.write_request(&request, 9).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let (got, response) = client.read_response::<ProduceResponse>(9).await;
        assert_eq!(got, id);
        assert_eq!(
            response.responses[0].partition_responses[0].base_offset,
            i as i64
        );
    }
    let response = client.send(fetch("pipe", 0, 0, 0, 0), 12).await;
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(fetched(&response), expected);
}

#[tokio::test]
async fn small_requests_pipelined_behind_large_ones_see_them_applied() {
    // The reader reads ahead of the applier: a Fetch or a small produce written right
    // behind a large produce must still be applied after it, and answered after it.
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "order").await;
    let big = "b".repeat(200 * 1024);
    let mut ids = Vec::new();
    for round in 0..10i64 {
        let large: ProduceRequest = produce("order", 0, values(&[&big]), 1);
        ids.push(client.write_request(&large, 9).await);
        let small: ProduceRequest = produce("order", 0, values(&[&round.to_string()]), 1);
        ids.push(client.write_request(&small, 9).await);
        let this_round = fetch("order", 0, 2 * round, 0, 0);
        ids.push(client.write_request(&this_round, 12).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let round = (i / 3) as i64;
        if i % 3 == 2 {
            let (got, response) = client.read_response::<FetchResponse>(12).await;
            assert_eq!(got, id);
            // Both records this round produced before the fetch are there.
            assert_eq!(fetched(&response), vec![big.clone(), round.to_string()]);
        } else {
            let (got, response) = client.read_response::<ProduceResponse>(9).await;
            assert_eq!(got, id);
            let offset = response.responses[0].partition_responses[0].base_offset;
            assert_eq!(offset, 2 * round + (i % 3) as i64, "request {i}");
        }
    }
}

#[tokio::test]
async fn a_waiting_fetch_does_not_block_later_requests_on_its_connection() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "same-conn").await;
    // The fetch waits for data; the produce behind it on the same connection is applied
    // anyway, wakes the fetch, and the answers still come back in request order.
    let fetch_id = client
        .write_request(&fetch("same-conn", 0, 0, 10_000, 1), 12)
        .await;
    let produce_id = client
        .write_request(&produce("same-conn", 0, values(&["x"]), 1), 9)
        .await;
    let (got, fetched_response) = client.read_response::<FetchResponse>(12).await;
    assert_eq!(got, fetch_id);
    assert_eq!(fetched(&fetched_response), ["x"]);
    let (got, produced) = client.read_response::<ProduceResponse>(9).await;
    assert_eq!(got, produce_id);
    assert_eq!(partition_error(&produced), 0);
}
