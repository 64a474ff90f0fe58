//! Consumer lag on `/metrics`: in records and seconds, exact at scrape time and 0 once
//! caught up; across restarts, recreated topics and compaction; none (not 0) when the age
//! or position is unknown.

use std::collections::BTreeMap;

use runnel_tests::records::batch_at;
use runnel_tests::requests::{produce, topic_name};
use runnel_tests::TestBroker;

use super::{
    commit, commit_at, create_compacted, lag, must, now_ms, produce_hundred, scrape, value, AGE_MS,
    TOPIC,
};

#[tokio::test]
async fn consumer_lag_in_records_and_seconds_is_exact_at_scrape_time() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let (t0, _) = produce_hundred(&broker, &mut client).await;
    commit(&mut client, "at-40", 40).await;
    // 45 is inside the batch starting at 40: its own record's timestamp counts.
    commit(&mut client, "at-45", 45).await;
    commit(&mut client, "done", 100).await;

    let before = now_ms();
    let page = scrape(&broker).await;
    let after = now_ms();
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        60.0
    );
    assert_eq!(
        lag(&page, "runnel_consumer_group_committed_offset", "at-40"),
        40.0
    );
    // Record 40 is the first of batch 4: stamped t0 + 40 s.
    let expected = |ts: i64| ((before - ts) as f64 / 1000.0, (after - ts) as f64 / 1000.0);
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-40");
    let (low, high) = expected(t0 + 40_000);
    assert!(
        seconds > 0.0 && (low..=high).contains(&seconds),
        "{seconds} not in {low}..={high}"
    );
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-45");
    let (low, high) = expected(t0 + 40_005);
    assert!(
        (low..=high).contains(&seconds),
        "{seconds} not in {low}..={high}"
    );
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-45"),
        55.0
    );
    assert_eq!(lag(&page, "runnel_consumer_group_lag_records", "done"), 0.0);
    assert_eq!(lag(&page, "runnel_consumer_group_lag_seconds", "done"), 0.0);
    let topic_lag =
        format!("runnel_consumer_group_topic_lag_records{{group=\"at-40\",topic=\"{TOPIC}\"}}");
    assert_eq!(must(&page, &topic_lag), 60.0);

    // Simple groups commit without members: Empty, no members, no rebalance.
    assert_eq!(
        must(
            &page,
            "runnel_consumer_group_state{group=\"at-40\",state=\"Empty\"}"
        ),
        1.0
    );
    assert_eq!(
        must(
            &page,
            "runnel_consumer_group_state{group=\"at-40\",state=\"Stable\"}"
        ),
        0.0
    );
    assert_eq!(
        must(&page, "runnel_consumer_group_members{group=\"at-40\"}"),
        0.0
    );
    assert_eq!(
        must(
            &page,
            "runnel_consumer_group_rebalances_total{group=\"at-40\"}"
        ),
        0.0
    );
    assert_eq!(must(&page, "runnel_consumer_groups{state=\"Empty\"}"), 3.0);

    // Consuming to the end: lag 0 on the next scrape (no staleness).
    commit(&mut client, "at-40", 100).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        0.0
    );
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_seconds", "at-40"),
        0.0
    );
    // New records: lag again, at once.
    let batch = batch_at(&[(None, Some(b"late"))], now_ms() - 5_000);
    client.send(produce(TOPIC, 0, batch, 1), 9).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        1.0
    );
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-40");
    assert!((4.0..60.0).contains(&seconds), "{seconds}");
}

/// After a restart, partitions open lazily; the lag of a group on a partition nobody has
/// touched since must still be measured against its real log end, not against an unopened
/// (empty-looking) log.
#[tokio::test]
async fn consumer_lag_after_a_restart_counts_partitions_not_yet_opened() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "at-40", 40).await;
    drop(client);
    let broker = broker.restart().await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "at-40"),
        60.0
    );
    let seconds = lag(&page, "runnel_consumer_group_lag_seconds", "at-40");
    assert!(
        seconds >= 160.0,
        "record 40 was stamped ≥ 160 s ago: {seconds}"
    );
}

/// A commit of -1 (Kafka's "no offset", which some clients send) is no position: no lag
/// series and no share of the topic aggregate, `null` lag in the admin API, as
/// kafka-consumer-groups shows `-` — not "the whole log and one more" records.
#[tokio::test]
async fn a_negative_committed_offset_has_no_lag() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "unset", -1).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_committed_offset", "unset"),
        -1.0
    );
    for name in [
        "runnel_consumer_group_lag_records",
        "runnel_consumer_group_lag_seconds",
    ] {
        let series = format!("{name}{{group=\"unset\",topic=\"{TOPIC}\",partition=\"0\"}}");
        assert_eq!(value(&page, &series), None, "{series}");
    }
    for name in [
        "runnel_consumer_group_topic_lag_records",
        "runnel_consumer_group_topic_lag_seconds",
    ] {
        let series = format!("{name}{{group=\"unset\",topic=\"{TOPIC}\"}}");
        assert_eq!(value(&page, &series), None, "{series}");
    }
    let (status, body) = broker.http_get("/v1/groups/unset").await;
    assert_eq!(status, 200);
    let group: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(group["offsets"][0]["committed_offset"], -1);
    assert!(group["offsets"][0]["lag_records"].is_null(), "{group}");
    assert!(group["offsets"][0]["lag_seconds"].is_null(), "{group}");
    assert_eq!(group["lag_records"], 0);
}

/// A topic deleted and created again under the same name is a new log: a group that
/// commits the same offset on it is measured against the new records' timestamps, not the
/// deleted topic's (the lag cache is keyed by offset, and its entry survived the delete).
#[tokio::test]
async fn lag_seconds_after_a_topic_is_recreated_come_from_the_new_records() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "again", 40).await;
    let page = scrape(&broker).await;
    let old = lag(&page, "runnel_consumer_group_lag_seconds", "again");
    assert!(old >= 160.0, "record 40 was stamped ≥ 160 s ago: {old}");

    let delete = kafka_protocol::messages::DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name(TOPIC)])
        .with_timeout_ms(30_000);
    assert_eq!(client.send(delete, 5).await.responses[0].error_code, 0);
    broker
        .context()
        .logs
        .create_topic(TOPIC, 3, BTreeMap::new(), false)
        .unwrap();
    let values: Vec<String> = (0..100).map(|i| format!("fresh-{i}")).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    let response = client
        .send(produce(TOPIC, 0, batch_at(&records, now_ms()), -1), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    commit(&mut client, "again", 40).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "again"),
        60.0
    );
    let fresh = lag(&page, "runnel_consumer_group_lag_seconds", "again");
    assert!(fresh < 60.0, "record 40 of the new topic is new: {fresh} s");
}

/// Records produced without a timestamp (-1, Kafka's NO_TIMESTAMP, which produce accepts)
/// have no age: the lag in seconds of a group behind them is unknown — no series, `null`
/// in the admin API — not "now minus -1 ms" (56 years); the lag in records stays exact.
#[tokio::test]
async fn records_without_a_timestamp_give_no_lag_in_seconds() {
    let broker = TestBroker::start().await;
    broker
        .context()
        .logs
        .create_topic(TOPIC, 1, BTreeMap::new(), false)
        .unwrap();
    let mut client = broker.client().await;
    for i in 0..10 {
        let value = format!("untimed-{i}");
        let batch = batch_at(&[(None, Some(value.as_bytes()))], -1);
        let response = client.send(produce(TOPIC, 0, batch, -1), 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    commit(&mut client, "untimed", 3).await;
    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "untimed"),
        7.0
    );
    let series = format!(
        "runnel_consumer_group_lag_seconds{{group=\"untimed\",topic=\"{TOPIC}\",partition=\"0\"}}"
    );
    assert_eq!(value(&page, &series), None, "{page}");
    let topic = format!("{{group=\"untimed\",topic=\"{TOPIC}\"}}");
    let records = format!("runnel_consumer_group_topic_lag_records{topic}");
    assert_eq!(must(&page, &records), 7.0);
    let seconds = format!("runnel_consumer_group_topic_lag_seconds{topic}");
    assert_eq!(value(&page, &seconds), None);
    let (status, body) = broker.http_get("/v1/groups/untimed").await;
    assert_eq!(status, 200);
    let group: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(group["offsets"][0]["lag_records"], 7);
    assert!(group["offsets"][0]["lag_seconds"].is_null(), "{group}");
}

/// Compaction may remove the record at a group's committed offset: the first record not
/// yet consumed is then a later, younger one, and the lag in seconds must follow it, not
/// keep the removed record's age (the lag cache is keyed by offset).
#[tokio::test]
async fn lag_seconds_follow_compaction_removing_the_committed_record() {
    let broker = TestBroker::start().await;
    create_compacted(&broker);
    let logs = &broker.context().logs;
    let mut client = broker.client().await;
    let value = "v".repeat(100);
    let send = |key: String, timestamp_ms: i64| {
        let batch = batch_at(
            &[(Some(key.as_bytes()), Some(value.as_bytes()))],
            timestamp_ms,
        );
        produce("compacted", 0, batch, -1)
    };
    // Offset 0: key "stale", 200 s old; superseded at offset 41, then enough records to
    // seal the segment holding 41, so the cleaner removes offset 0.
    let recent = now_ms() - 5_000;
    let mut requests = vec![send("stale".to_owned(), now_ms() - AGE_MS)];
    requests.extend((1..41).map(|i| send(format!("k{i}"), recent)));
    requests.push(send("stale".to_owned(), recent));
    requests.extend((42..70).map(|i| send(format!("k{i}"), recent)));
    for request in requests {
        let response = client.send(request, 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    commit_at(&mut client, "behind", "compacted", 0, 0).await;
    let series =
        "runnel_consumer_group_lag_seconds{group=\"behind\",topic=\"compacted\",partition=\"0\"}";
    let before = must(&scrape(&broker).await, series);
    assert!(before >= 190.0, "record 0 was stamped 200 s ago: {before}");

    logs.clean_now("compacted", 0).unwrap();
    let first = logs.partition("compacted", 0).unwrap().read(0, 1).unwrap();
    let first_offset = i64::from_be_bytes(first.records[..8].try_into().unwrap());
    assert!(first_offset > 0, "the cleaner kept offset 0");
    let after = must(&scrape(&broker).await, series);
    assert!(after < 60.0, "record 1 onwards are 5 s old: {after}");
}

/// A first uncommitted record whose batch cannot be read (here: its length field ruined on
/// disk) has an unknown age: lag in seconds is left out, not reported as 0 ("caught up"),
/// which would hide the read error behind a healthy-looking panel.
#[tokio::test]
async fn an_unreadable_record_gives_no_lag_in_seconds_not_zero() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    produce_hundred(&broker, &mut client).await;
    commit(&mut client, "blind", 10).await;
    // Batch by batch (base offset, length) to the one starting at offset 10; its length
    // becomes larger than the file.
    let path = broker
        .data_dir()
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.log");
    let mut file = std::fs::read(&path).unwrap();
    let mut position = 0;
    while i64::from_be_bytes(file[position..position + 8].try_into().unwrap()) < 10 {
        let length = i32::from_be_bytes(file[position + 8..position + 12].try_into().unwrap());
        position += 12 + length as usize;
    }
    file[position + 8..position + 12].copy_from_slice(&i32::MAX.to_be_bytes());
    std::fs::write(&path, &file).unwrap();

    let page = scrape(&broker).await;
    assert_eq!(
        lag(&page, "runnel_consumer_group_lag_records", "blind"),
        90.0
    );
    let series = "runnel_consumer_group_lag_seconds";
    assert_eq!(
        value(
            &page,
            &format!("{series}{{group=\"blind\",topic=\"{TOPIC}\",partition=\"0\"}}")
        ),
        None,
        "{page}"
    );
}
