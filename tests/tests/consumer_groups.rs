//! Consumer groups over TCP with raw members: FindCoordinator, the MEMBER_ID_REQUIRED round,
//! join/sync/heartbeat/leave with three members, rebalance on leave and on session timeout,
//! static membership, DescribeGroups / ListGroups / DeleteGroups.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::{TestBroker, TestClient};

const JOIN_VERSION: i16 = 9;
/// Session timeout the short-timeout tests use (the broker's minimum is lowered to allow it).
const SHORT_SESSION_MS: i32 = 1_000;
/// Upper bound on polling loops (each step sleeps `POLL_STEP`), so a bug fails, not hangs.
const POLL_STEPS_MAX: usize = 200;
const POLL_STEP: Duration = Duration::from_millis(25);

async fn short_timeouts_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.groups.min_session_timeout_ms = 100;
        c.groups.initial_rebalance_delay_ms = 0;
        c.groups.timer_tick_ms = 10;
    })
    .await
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn join_request(group: &str, member_id: &str, session_ms: i32) -> JoinGroupRequest {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"subscription"));
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol])
}

/// A new member: the MEMBER_ID_REQUIRED round, then the join that waits for the group.
async fn join_new(client: &mut TestClient, group: &str, session_ms: i32) -> JoinGroupResponse {
    let first = client
        .send(join_request(group, "", session_ms), JOIN_VERSION)
        .await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty());
    let id = first.member_id.to_string();
    client
        .send(join_request(group, &id, session_ms), JOIN_VERSION)
        .await
}

async fn rejoin(
    client: &mut TestClient,
    group: &str,
    member_id: &str,
    session_ms: i32,
) -> JoinGroupResponse {
    client
        .send(join_request(group, member_id, session_ms), JOIN_VERSION)
        .await
}

fn sync_request(
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &str)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        )
}

async fn heartbeat(client: &mut TestClient, group: &str, member_id: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id));
    client.send(request, 4).await.error_code
}

async fn describe(client: &mut TestClient, group: &str) -> (String, usize) {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let response = client.send(request, 5).await;
    let described = &response.groups[0];
    (described.group_state.to_string(), described.members.len())
}

#[tokio::test]
async fn find_coordinator_answers_this_broker_at_every_version() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in 0..=3 {
        let response = client
            .send(FindCoordinatorRequest::default().with_key(s("g")), version)
            .await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.node_id, BrokerId(0));
        assert_eq!(response.port, i32::from(broker.addr.port()));
    }
    let request = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")]);
    let response = client.send(request, 4).await;
    assert_eq!(response.coordinators.len(), 2);
    assert!(response
        .coordinators
        .iter()
        .all(|c| c.error_code == 0 && c.host.as_str() == "127.0.0.1"));
    // No transactions: a transaction coordinator lookup fails at once with an error every
    // client treats as fatal (librdkafka retried INVALID_REQUEST until its own timeout).
    let txn = FindCoordinatorRequest::default()
        .with_key(s("t"))
        .with_key_type(1);
    let answer = client.send(txn, 3).await;
    assert_eq!(
        answer.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    let message = answer
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(message.contains("transactions"), "{message}");
    let txn = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s("t")]);
    let answer = client.send(txn, 4).await;
    assert_eq!(
        answer.coordinators[0].error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    // A key type this broker does not know at all stays INVALID_REQUEST.
    let unknown = FindCoordinatorRequest::default()
        .with_key(s("t"))
        .with_key_type(7);
    assert_eq!(
        client.send(unknown, 3).await.error_code,
        ResponseError::InvalidRequest.code()
    );
}

#[tokio::test]
async fn three_members_join_sync_heartbeat_and_rebalance_on_leave() {
    let broker = short_timeouts_broker().await;
    let (mut a, mut b, mut c) = (
        broker.client().await,
        broker.client().await,
        broker.client().await,
    );
    let session = 10_000;
    let first = join_new(&mut a, "g3", session).await;
    assert_eq!((first.error_code, first.generation_id), (0, 1));
    assert_eq!(first.leader, first.member_id, "the first member leads");
    let a_id = first.member_id.to_string();
    // B and C join; A learns of the rebalance through its heartbeat and rejoins.
    let (b_join, c_join, a_join) = tokio::join!(
        join_new(&mut b, "g3", session),
        join_new(&mut c, "g3", session),
        async {
            for _ in 0..POLL_STEPS_MAX {
                if heartbeat(&mut a, "g3", &a_id, 1).await
                    == ResponseError::RebalanceInProgress.code()
                {
                    return rejoin(&mut a, "g3", &a_id, session).await;
                }
                tokio::time::sleep(POLL_STEP).await;
            }
            panic!("the leader never saw the rebalance");
        }
    );
    for join in [&a_join, &b_join, &c_join] {
        assert_eq!((join.error_code, join.generation_id), (0, 2));
        assert_eq!(join.leader.as_str(), a_id);
        assert_eq!(join.protocol_name.as_deref(), Some("range"));
    }
    assert_eq!(a_join.members.len(), 3, "the leader sees every member");
    assert!(b_join.members.is_empty() && c_join.members.is_empty());
    let (b_id, c_id) = (b_join.member_id.to_string(), c_join.member_id.to_string());
    let plan = [
        (a_id.as_str(), "to-a"),
        (b_id.as_str(), "to-b"),
        (c_id.as_str(), "to-c"),
    ];
    let (a_sync, b_sync, c_sync) = tokio::join!(
        a.send(sync_request("g3", &a_id, 2, &plan), 5),
        b.send(sync_request("g3", &b_id, 2, &[]), 5),
        c.send(sync_request("g3", &c_id, 2, &[]), 5),
    );
    assert_eq!(
        (a_sync.error_code, a_sync.assignment),
        (0, Bytes::from_static(b"to-a"))
    );
    assert_eq!(
        (b_sync.error_code, b_sync.assignment),
        (0, Bytes::from_static(b"to-b"))
    );
    assert_eq!(
        (c_sync.error_code, c_sync.assignment),
        (0, Bytes::from_static(b"to-c"))
    );
    assert_eq!(describe(&mut a, "g3").await, ("Stable".to_owned(), 3));
    assert_eq!(heartbeat(&mut b, "g3", &b_id, 2).await, 0);
    assert_eq!(
        heartbeat(&mut b, "g3", &b_id, 1).await,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut b, "g3", "nobody", 2).await,
        ResponseError::UnknownMemberId.code()
    );
    // C leaves (batched form): the others rebalance to generation 3 without it.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g3")))
        .with_members(vec![MemberIdentity::default().with_member_id(s(&c_id))]);
    let left = c.send(leave, 5).await;
    assert_eq!((left.error_code, left.members[0].error_code), (0, 0));
    assert_eq!(
        heartbeat(&mut a, "g3", &a_id, 2).await,
        ResponseError::RebalanceInProgress.code()
    );
    let (a3, b3) = tokio::join!(
        rejoin(&mut a, "g3", &a_id, session),
        rejoin(&mut b, "g3", &b_id, session)
    );
    assert_eq!(
        (a3.generation_id, b3.generation_id, a3.members.len()),
        (3, 3, 2)
    );
    let list = a
        .send(
            ListGroupsRequest::default().with_states_filter(vec![s("completingrebalance")]),
            4,
        )
        .await;
    assert_eq!(list.groups.len(), 1);
    assert_eq!(list.groups[0].group_state.as_str(), "CompletingRebalance");
}

#[tokio::test]
async fn session_timeout_removes_a_silent_member() {
    let broker = short_timeouts_broker().await;
    let (mut a, mut b) = (broker.client().await, broker.client().await);
    let first = join_new(&mut a, "gs", SHORT_SESSION_MS).await;
    let a_id = first.member_id.to_string();
    let (b_join, a_join) = tokio::join!(join_new(&mut b, "gs", SHORT_SESSION_MS), async {
        for _ in 0..POLL_STEPS_MAX {
            if heartbeat(&mut a, "gs", &a_id, 1).await == ResponseError::RebalanceInProgress.code()
            {
                return rejoin(&mut a, "gs", &a_id, SHORT_SESSION_MS).await;
            }
            tokio::time::sleep(POLL_STEP).await;
        }
        panic!("no rebalance");
    });
    assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
    let b_id = b_join.member_id.to_string();
    let (a_sync, _) = tokio::join!(
        a.send(sync_request("gs", &a_id, 2, &[]), 5),
        b.send(sync_request("gs", &b_id, 2, &[]), 5)
    );
    assert_eq!(a_sync.error_code, 0);
    // B goes silent; A keeps heartbeating until told to rejoin.
    let mut told = false;
    for _ in 0..POLL_STEPS_MAX {
        let code = heartbeat(&mut a, "gs", &a_id, 2).await;
        if code == ResponseError::RebalanceInProgress.code() {
            told = true;
            break;
        }
        assert_eq!(code, 0);
        tokio::time::sleep(POLL_STEP).await;
    }
    assert!(told, "B's session never expired");
    let again = rejoin(&mut a, "gs", &a_id, SHORT_SESSION_MS).await;
    assert_eq!((again.generation_id, again.members.len()), (3, 1));
    assert_eq!(
        heartbeat(&mut b, "gs", &b_id, 2).await,
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
    let broker = short_timeouts_broker().await;
    let mut client = broker.client().await;
    let join = |member_id: &str| {
        join_request("gstatic", member_id, 10_000).with_group_instance_id(Some(s("host-1")))
    };
    // Static members skip the MEMBER_ID_REQUIRED round.
    let first = client.send(join(""), 5).await;
    assert_eq!((first.error_code, first.generation_id), (0, 1));
    let old_id = first.member_id.to_string();
    let sync = sync_request("gstatic", &old_id, 1, &[(&old_id, "p0")])
        .with_group_instance_id(Some(s("host-1")));
    assert_eq!(
        client.send(sync, 5).await.assignment,
        Bytes::from_static(b"p0")
    );
    // The same instance restarts: new member id, same generation, no rebalance.
    let mut restarted = broker.client().await;
    let second = restarted.send(join(""), 5).await;
    assert_eq!((second.error_code, second.generation_id), (0, 1));
    assert_ne!(second.member_id.as_str(), old_id);
    let fenced = HeartbeatRequest::default()
        .with_group_id(GroupId(s("gstatic")))
        .with_generation_id(1)
        .with_member_id(s(&old_id))
        .with_group_instance_id(Some(s("host-1")));
    assert_eq!(
        client.send(fenced, 4).await.error_code,
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        describe(&mut client, "gstatic").await,
        ("Stable".to_owned(), 1)
    );
}

#[tokio::test]
async fn join_errors_and_delete_groups() {
    let broker = short_timeouts_broker().await;
    let mut client = broker.client().await;
    let bad_session = client.send(join_request("ge", "", 10), JOIN_VERSION).await;
    assert_eq!(
        bad_session.error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    let no_group = client
        .send(join_request("", "", 10_000), JOIN_VERSION)
        .await;
    assert_eq!(no_group.error_code, ResponseError::InvalidGroupId.code());
    let unknown = client
        .send(join_request("ge", "ghost", 10_000), JOIN_VERSION)
        .await;
    assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
    // v3 has no MEMBER_ID_REQUIRED round: the first join completes at once.
    let joined = client.send(join_request("ge", "", 10_000), 3).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let other = join_request("ge", "", 10_000).with_protocol_type(s("connect"));
    let mut second = broker.client().await;
    assert_eq!(
        second.send(other, 3).await.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let delete = |names: &[&str]| {
        DeleteGroupsRequest::default()
            .with_groups_names(names.iter().map(|n| GroupId(s(n))).collect())
    };
    let response = client.send(delete(&["ge", "missing"]), 2).await;
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::NonEmptyGroup.code(),
            ResponseError::GroupIdNotFound.code()
        ]
    );
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("ge")))
        .with_member_id(joined.member_id.clone());
    assert_eq!(client.send(leave, 1).await.error_code, 0);
    assert_eq!(describe(&mut client, "ge").await, ("Empty".to_owned(), 0));
    let response = client.send(delete(&["ge"]), 2).await;
    assert_eq!(response.results[0].error_code, 0);
    assert_eq!(describe(&mut client, "ge").await, ("Dead".to_owned(), 0));
}

#[tokio::test]
async fn a_stable_group_survives_a_broker_restart() {
    let broker = short_timeouts_broker().await;
    let mut client = broker.client().await;
    let joined = join_new(&mut client, "gr", 10_000).await;
    let id = joined.member_id.to_string();
    let sync = client
        .send(sync_request("gr", &id, 1, &[(&id, "p0-p1")]), 5)
        .await;
    assert_eq!(sync.error_code, 0);
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    // The member, its generation and its assignment were replayed from __consumer_offsets.
    assert_eq!(heartbeat(&mut client, "gr", &id, 1).await, 0);
    assert_eq!(describe(&mut client, "gr").await, ("Stable".to_owned(), 1));
    let again = client.send(sync_request("gr", &id, 1, &[]), 5).await;
    assert_eq!(
        (again.error_code, again.assignment),
        (0, Bytes::from_static(b"p0-p1"))
    );
}

#[tokio::test]
async fn every_version_of_the_membership_apis_round_trips() {
    let broker = short_timeouts_broker().await;
    let mut client = broker.client().await;
    for version in 0..=9i16 {
        let group = format!("gv{version}");
        let mut joined = client.send(join_request(&group, "", 10_000), version).await;
        if version >= 4 {
            assert_eq!(
                joined.error_code,
                ResponseError::MemberIdRequired.code(),
                "v{version}"
            );
            let id = joined.member_id.to_string();
            joined = client
                .send(join_request(&group, &id, 10_000), version)
                .await;
        }
        assert_eq!(
            (joined.error_code, joined.generation_id),
            (0, 1),
            "join v{version}"
        );
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        let id = joined.member_id.to_string();
        let sync_version = version.min(5);
        let mut sync = sync_request(&group, &id, 1, &[(&id, "mine")]);
        if sync_version < 5 {
            sync = sync.with_protocol_type(None).with_protocol_name(None);
        }
        let synced = client.send(sync, sync_version).await;
        assert_eq!(
            (synced.error_code, synced.assignment),
            (0, Bytes::from_static(b"mine")),
            "sync v{sync_version}"
        );
        let beat = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(s(&id));
        assert_eq!(
            client.send(beat, version.min(4)).await.error_code,
            0,
            "heartbeat v{}",
            version.min(4)
        );
        let leave_version = version.min(5);
        let leave = if leave_version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&id))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(s(&id))
        };
        let left = client.send(leave, leave_version).await;
        assert_eq!(left.error_code, 0, "leave v{leave_version}");
    }
    for version in 0..=5 {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("gv9")), GroupId(s("none"))]);
        let response = client.send(request, version).await;
        let states: Vec<&str> = response
            .groups
            .iter()
            .map(|g| g.group_state.as_str())
            .collect();
        assert_eq!(states, vec!["Empty", "Dead"], "describe v{version}");
    }
    for version in 0..=4 {
        let response = client.send(ListGroupsRequest::default(), version).await;
        assert_eq!(response.groups.len(), 10, "list v{version}");
    }
    for version in 0..=2 {
        let name = format!("gv{version}");
        let response = client
            .send(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&name))]),
                version,
            )
            .await;
        assert_eq!(response.results[0].error_code, 0, "delete v{version}");
    }
}

/// DescribeGroups reports each member's client id and host as Kafka does: the host is the
/// address the member joined from, written `/ip` (Java's `InetAddress.toString()`), which
/// `kafka-consumer-groups.sh --describe` and admin clients show in their HOST column.
#[tokio::test]
async fn describe_groups_shows_the_members_client_host() {
    let broker = short_timeouts_broker().await;
    let mut client = broker.client().await;
    let joined = join_new(&mut client, "ghost", 10_000).await;
    assert_eq!(joined.error_code, 0);
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("ghost"))]);
    let response = client.send(request, 5).await;
    let members = &response.groups[0].members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_host.as_str(), "/127.0.0.1");
}
