//! The JSON admin API over HTTP: `/v1/broker`, `/v1/topics`, `/v1/topics/{name}`,
//! `/v1/groups`, `/v1/groups/{id}` (members, assignment, offsets, lag), `/healthz`,
//! `/readyz`, the index at `/`, and 404s with a JSON error body for unknown topics, groups
//! and paths.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, GroupId, JoinGroupRequest,
    OffsetCommitRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use runnel_tests::records::values;
use runnel_tests::requests::{produce, topic_name};
use runnel_tests::{TestBroker, TestClient};
use serde_json::Value;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

async fn get_json(broker: &TestBroker, path: &str) -> (u16, Value) {
    let (status, body) = broker.http_get(path).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

async fn ok_json(broker: &TestBroker, path: &str) -> Value {
    let (status, json) = get_json(broker, path).await;
    assert_eq!(status, 200, "{path}: {json}");
    json
}

async fn setup() -> (TestBroker, TestClient) {
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 0).await;
    let mut overrides = BTreeMap::new();
    overrides.insert("retention.ms".to_owned(), "3600000".to_owned());
    broker
        .context()
        .logs
        .create_topic("orders", 2, overrides, false)
        .unwrap();
    let mut client = broker.client().await;
    let records = values(&["a", "b", "c", "d", "e"]);
    let response = client.send(produce("orders", 1, records, 1), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    (broker, client)
}

/// One member joins `group` (consumer protocol), syncs with an assignment of orders-0/1,
/// and commits orders-1 at 2. Returns the member id.
async fn join_sync_commit(client: &mut TestClient, group: &str) -> String {
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0]))])
    };
    let first = client.send(join(""), 9).await;
    let member_id = first.member_id.to_string();
    let joined = if first.error_code == 0 {
        first
    } else {
        client.send(join(&member_id), 9).await
    };
    assert_eq!(joined.error_code, 0);
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        TopicPartition::default()
            .with_topic(topic_name("orders"))
            .with_partitions(vec![0, 1]),
    ]);
    let mut encoded = BytesMut::new();
    encoded.put_i16(0);
    assignment.encode(&mut encoded, 0).unwrap();
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&member_id))
            .with_assignment(encoded.freeze())]);
    assert_eq!(client.send(sync, 5).await.error_code, 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("orders"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(2)])]);
    let response = client.send(commit, 8).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    member_id
}

#[tokio::test]
async fn broker_and_health_endpoints() {
    let (broker, _client) = setup().await;
    let info = ok_json(&broker, "/v1/broker").await;
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["node_id"], 0);
    assert!(info["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(info["config"]["http_listen"], "127.0.0.1:0");
    assert_eq!(ok_json(&broker, "/healthz").await["status"], "ok");
    assert_eq!(ok_json(&broker, "/readyz").await["status"], "ready");
}

/// `/` lists the endpoints, and each one it lists answers (a `{…}` segment filled in).
#[tokio::test]
async fn the_root_lists_every_endpoint() {
    let (broker, mut client) = setup().await;
    join_sync_commit(&mut client, "listed").await;
    let index = ok_json(&broker, "/").await;
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
    let paths: Vec<&str> = (index["endpoints"].as_array().unwrap().iter())
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for path in [
        "/metrics",
        "/v1/topics/{name}",
        "/v1/groups/{id}",
        "/healthz",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    for path in paths {
        let filled = path.replace("{name}", "orders").replace("{id}", "listed");
        let (status, body) = broker.http_get(&filled).await;
        assert_eq!(status, 200, "{filled}: {body}");
    }
}

#[tokio::test]
async fn topics_list_and_detail() {
    let (broker, _client) = setup().await;
    let list = ok_json(&broker, "/v1/topics").await;
    let topics = list["topics"].as_array().unwrap();
    let orders = topics.iter().find(|t| t["name"] == "orders").unwrap();
    assert_eq!(orders["partitions"], 2);
    assert_eq!(orders["internal"], false);
    assert_eq!(orders["overrides"]["retention.ms"], "3600000");

    let detail = ok_json(&broker, "/v1/topics/orders").await;
    let partitions = detail["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    assert_eq!(partitions[0]["log_end_offset"], 0);
    assert_eq!(partitions[1]["log_start_offset"], 0);
    assert_eq!(partitions[1]["log_end_offset"], 5);
    assert_eq!(partitions[1]["records_in"], 5);
    assert!(partitions[1]["size_bytes"].as_u64().unwrap() > 61);
    assert_eq!(partitions[1]["segments"], 1);
    assert_eq!(detail["configs"]["retention.ms"]["value"], "3600000");
    assert_eq!(detail["configs"]["retention.ms"]["is_override"], true);
    assert_eq!(detail["configs"]["cleanup.policy"]["is_override"], false);
}

#[tokio::test]
async fn groups_list_and_detail_with_members_assignment_and_lag() {
    let (broker, mut client) = setup().await;
    let member_id = join_sync_commit(&mut client, "billing").await;
    let list = ok_json(&broker, "/v1/groups").await;
    let groups = list["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["group_id"], "billing");
    assert_eq!(groups[0]["state"], "Stable");
    assert_eq!(groups[0]["members"], 1);
    assert_eq!(groups[0]["lag_records"], 3);

    let detail = ok_json(&broker, "/v1/groups/billing").await;
    assert_eq!(detail["state"], "Stable");
    assert_eq!(detail["protocol_type"], "consumer");
    assert_eq!(detail["protocol"], "range");
    assert_eq!(detail["generation_id"], 1);
    assert_eq!(detail["leader_id"], member_id.as_str());
    let members = detail["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["member_id"], member_id.as_str());
    assert_eq!(
        members[0]["assignment"]["orders"],
        serde_json::json!([0, 1])
    );
    let offsets = detail["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 1);
    assert_eq!(offsets[0]["topic"], "orders");
    assert_eq!(offsets[0]["partition"], 1);
    assert_eq!(offsets[0]["committed_offset"], 2);
    assert_eq!(offsets[0]["log_end_offset"], 5);
    assert_eq!(offsets[0]["lag_records"], 3);
    // `values` stamps records from 1970: a large, positive age.
    assert!(offsets[0]["lag_seconds"].as_f64().unwrap() > 1.0e6);
}

/// A simple client's commit of orders-1 at `offset` for `group` (no members).
async fn commit_simple(client: &mut TestClient, group: &str, offset: i64) {
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("orders"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(offset)])]);
    let response = client.send(commit, 8).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

/// `/v1/groups` is paged: at most 100 groups by default, `?limit=` up to 1000, `?after=`
/// the last id seen, and `next` the next page's path (null on the last page); each group on
/// a page costs its lag, so a request never walks every group's partitions.
#[tokio::test]
async fn the_groups_list_is_paged() {
    let (broker, mut client) = setup().await;
    let ids: Vec<String> = (0..101).map(|i| format!("g{i:03}")).collect();
    for id in ids.iter().rev() {
        commit_simple(&mut client, id, 1).await;
    }
    let listed = |page: &Value| -> Vec<String> {
        let groups = page["groups"].as_array().unwrap();
        groups
            .iter()
            .map(|g| g["group_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = ok_json(&broker, "/v1/groups").await;
    assert_eq!(listed(&first), ids[..100]);
    assert_eq!(first["groups"][0]["lag_records"], 4);
    assert_eq!(first["next"], "/v1/groups?after=g099&limit=100");
    let last = ok_json(&broker, first["next"].as_str().unwrap()).await;
    assert_eq!(listed(&last), ids[100..]);
    assert_eq!(last["next"], Value::Null);

    let mut walked = Vec::new();
    let mut path = "/v1/groups?limit=40".to_owned();
    loop {
        let page = ok_json(&broker, &path).await;
        assert!(listed(&page).len() <= 40);
        walked.extend(listed(&page));
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(walked, ids);
    let after = ok_json(&broker, "/v1/groups?after=g049&limit=2").await;
    assert_eq!(listed(&after), ["g050", "g051"]);
    let beyond = ok_json(&broker, "/v1/groups?after=zzz").await;
    assert_eq!((listed(&beyond).len(), &beyond["next"]), (0, &Value::Null));

    for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten"] {
        let (status, json) = get_json(&broker, &format!("/v1/groups?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {json}");
        assert!(json["error"].is_string(), "{bad}: {json}");
    }
}

/// The lag cache holds one entry per committed (group, partition) on the admin path as on
/// the scrape path: a new commit replaces the group's old entry, and a deleted group's
/// entries go at the next list (not only when the cache reaches its whole-cache bound).
#[tokio::test]
async fn the_admin_api_keeps_the_lag_cache_to_live_commits() {
    let (broker, mut client) = setup().await;
    let cache = &broker.context().metrics.lag_cache;
    for offset in [1, 2, 3] {
        commit_simple(&mut client, "g", offset).await;
        ok_json(&broker, "/v1/groups/g").await;
        assert_eq!(cache.len(), 1, "after a commit at {offset}");
    }
    commit_simple(&mut client, "g", 4).await;
    ok_json(&broker, "/v1/groups").await;
    assert_eq!(cache.len(), 1);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    assert_eq!(client.send(delete, 2).await.results[0].error_code, 0);
    ok_json(&broker, "/v1/groups").await;
    assert_eq!(cache.len(), 0);
}

/// Every group id is reachable, the empty one (which Kafka accepts from old clients)
/// included: the list gives each group's percent-encoded path, and that path answers with
/// that group.
#[tokio::test]
async fn every_group_id_has_a_path_the_empty_one_too() {
    let (broker, mut client) = setup().await;
    let (status, json) = get_json(&broker, "/v1/groups/").await;
    assert_eq!(status, 404, "{json}");
    assert_eq!(json["status"], 404);
    let ids = ["", "a/b c?d#e%f", "..", "billing.v2"];
    for (offset, id) in ids.iter().enumerate() {
        commit_simple(&mut client, id, offset as i64).await;
    }
    let list = ok_json(&broker, "/v1/groups").await;
    let groups = list["groups"].as_array().unwrap();
    assert_eq!(groups.len(), ids.len(), "{list}");
    for (offset, id) in ids.iter().enumerate() {
        let row = groups.iter().find(|g| g["group_id"] == *id).unwrap();
        let path = row["path"].as_str().unwrap();
        let detail = ok_json(&broker, path).await;
        assert_eq!(detail["group_id"], *id, "{path}");
        assert_eq!(detail["offsets"][0]["committed_offset"], offset, "{path}");
    }
    let empty = groups.iter().find(|g| g["group_id"] == "").unwrap();
    assert_eq!(empty["path"], "/v1/groups/");
    let dots = groups.iter().find(|g| g["group_id"] == "..").unwrap();
    assert_eq!(dots["path"], "/v1/groups/%2E%2E");
}

#[tokio::test]
async fn unknown_names_are_json_404s() {
    let (broker, _client) = setup().await;
    for path in [
        "/v1/topics/nope",
        "/v1/groups/nobody",
        "/v1/nothing-here",
        "/metricz",
    ] {
        let (status, json) = get_json(&broker, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {json}"
        );
        assert_eq!(json["status"], 404);
    }
}

#[tokio::test]
async fn wrong_methods_and_undecodable_names_are_json_errors() {
    let (broker, _client) = setup().await;
    // %FF decodes to no UTF-8: a 400, in JSON like every other error.
    for path in ["/v1/topics/%FF", "/v1/groups/%FF%FE"] {
        let (status, json) = get_json(&broker, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(json["status"], 400);
    }
    for (method, path) in [
        ("POST", "/v1/topics"),
        ("DELETE", "/v1/topics/orders"),
        ("PUT", "/v1/groups/billing"),
        ("POST", "/metrics"),
    ] {
        let (status, head, body) =
            runnel_tests::http::request(broker.http_addr, method, path).await;
        assert_eq!(status, 405, "{method} {path}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("allow: get,head"), "{method} {path}: {head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], 405, "{method} {path}: {json}");
    }
}

#[tokio::test]
async fn the_http_server_stops_on_shutdown() {
    let (mut broker, client) = setup().await;
    drop(client);
    let http_addr = broker.http_addr;
    broker.shutdown().await;
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(http_addr),
    )
    .await
    .unwrap();
    assert!(refused.is_err(), "HTTP still accepting after shutdown");
}

/// Reads until the peer closes (`true`) or `within` passes (`false`).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = [0u8; 4096];
    let drained = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, drained).await.is_ok()
}

#[tokio::test]
async fn a_client_stalled_mid_request_does_not_hold_shutdown() {
    use tokio::io::AsyncWriteExt;
    let (mut broker, client) = setup().await;
    drop(client);
    // Half a request head: the server waits for the rest, which never comes.
    let mut stalled = tokio::net::TcpStream::connect(broker.http_addr)
        .await
        .unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The test config bounds the drain at 5 s; before the fix shutdown waited for ever.
    let stopped = tokio::time::timeout(Duration::from_secs(15), broker.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited for a stalled HTTP client");
    assert!(closed_within(&mut stalled, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn http_connections_beyond_the_bound_are_closed_at_once() {
    let (broker, _client) = setup().await;
    let max = runnel_tests::runnel_broker::http::HTTP_CONNECTIONS_MAX;
    let mut held = Vec::with_capacity(max);
    for _ in 0..max {
        held.push(
            tokio::net::TcpStream::connect(broker.http_addr)
                .await
                .unwrap(),
        );
    }
    let mut excess = tokio::net::TcpStream::connect(broker.http_addr)
        .await
        .unwrap();
    assert!(
        closed_within(&mut excess, Duration::from_secs(5)).await,
        "connection {} stayed open",
        max + 1
    );
    // Once one goes, a new client is served again.
    drop(held.pop());
    let served = async {
        loop {
            let mut stream = tokio::net::TcpStream::connect(broker.http_addr)
                .await
                .unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            if stream.write_all(request).await.is_err() {
                continue;
            }
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("served once a connection was freed");
}
