//! Admin APIs whose answers follow from Runnel being one broker with no quotas and no SASL:
//! leader elections, partition reassignments, client quotas and SCRAM credentials, over TCP
//! at every version we advertise.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{CreateTopicsRequest, ElectLeadersRequest};
use runnel_tests::requests::{creatable_topic, topic_name};
use runnel_tests::{TestBroker, TestClient};

async fn create(client: &mut TestClient, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable_topic(name, partitions, &[])])
        .with_timeout_ms(5_000);
    let response = client.send(request, 7).await;
    assert_eq!(response.topics[0].error_code, 0, "create {name}");
}

/// Every existing partition already has its only replica as leader: ELECTION_NOT_NEEDED;
/// asking for all partitions lists the topics with no partition results, as Kafka leaves
/// out partitions whose election was not needed.
#[tokio::test]
async fn leader_elections_are_never_needed() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "elect", 2).await;
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for version in 0..=2 {
        let request = ElectLeadersRequest::default()
            .with_election_type(if version == 0 { 0 } else { 1 })
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic_name("elect"))
                    .with_partitions(vec![0, 1, 5]),
                TopicPartitions::default()
                    .with_topic(topic_name("absent"))
                    .with_partitions(vec![0]),
            ]));
        let response = client.send(request, version).await;
        assert_eq!(response.error_code, 0, "v{version}");
        let codes: Vec<(&str, i32, i16)> = response
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.as_str(), p.partition_id, p.error_code))
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("elect", 0, not_needed),
                ("elect", 1, not_needed),
                ("elect", 5, unknown),
                ("absent", 0, unknown),
            ],
            "v{version}"
        );
        let all = ElectLeadersRequest::default().with_topic_partitions(None);
        let response = client.send(all, version).await;
        assert_eq!(response.error_code, 0, "v{version}");
        let elect = response
            .replica_election_results
            .iter()
            .find(|t| t.topic.0.as_str() == "elect")
            .expect("every topic is listed");
        assert!(elect.partition_result.is_empty(), "v{version}");
    }
}

/// No partition is ever being moved; the only replica set a partition can have is this
/// broker alone, which it already has; anything else is refused; cancelling finds nothing.
#[tokio::test]
async fn partition_reassignments_have_nowhere_to_go() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    };

    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "moves", 2).await;
    let node = broker.context().node_id;
    let target = |partition: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(partition)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(topic_name("moves"))
            .with_partitions(vec![
                target(0, Some(vec![node])),
                target(1, Some(vec![node, node + 1])),
                target(1, None),
                target(9, Some(vec![node])),
            ]),
    ]);
    let response = client.send(request, 0).await;
    assert_eq!(response.error_code, 0);
    let codes: Vec<i16> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![
            0,
            ResponseError::InvalidReplicaAssignment.code(),
            ResponseError::NoReassignmentInProgress.code(),
            ResponseError::UnknownTopicOrPartition.code(),
        ]
    );
    let refusal = response.responses[0].partitions[1]
        .error_message
        .as_ref()
        .unwrap();
    assert!(refusal.contains("one broker"), "{refusal}");
    let named = Some(vec![ListPartitionReassignmentsTopics::default()
        .with_name(topic_name("moves"))
        .with_partition_indexes(vec![0, 1, 9])]);
    for topics in [None, named] {
        let request = ListPartitionReassignmentsRequest::default().with_topics(topics);
        let response = client.send(request, 0).await;
        assert_eq!(response.error_code, 0);
        assert!(response.topics.is_empty());
    }
}

/// No quota is configured, so a valid filter finds none and a malformed one is refused as
/// Kafka refuses it; setting a quota is refused with the reason.
#[tokio::test]
async fn client_quotas_are_never_configured() {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
    use kafka_protocol::protocol::StrBytes;

    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let users = ComponentData::default()
        .with_entity_type(StrBytes::from_static_str("user"))
        .with_match_type(2)
        .with_match(None);
    let malformed = users
        .clone()
        .with_match(Some(StrBytes::from_static_str("alice")));
    for version in 0..=1 {
        let request = DescribeClientQuotasRequest::default().with_components(vec![users.clone()]);
        let response = client.send(request, version).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.entries, Some(Vec::new()), "v{version}");
        let request =
            DescribeClientQuotasRequest::default().with_components(vec![malformed.clone()]);
        let response = client.send(request, version).await;
        assert_eq!(
            response.error_code,
            ResponseError::InvalidRequest.code(),
            "v{version}"
        );
        assert_eq!(response.entries, None, "v{version}");

        let entry = EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(StrBytes::from_static_str("client-id"))
                .with_entity_name(Some(StrBytes::from_static_str("app")))])
            .with_ops(vec![OpData::default()
                .with_key(StrBytes::from_static_str("consumer_byte_rate"))
                .with_value(1e6)]);
        let request = AlterClientQuotasRequest::default().with_entries(vec![entry]);
        let response = client.send(request, version).await;
        assert_eq!(response.entries.len(), 1, "v{version}");
        let refused = &response.entries[0];
        assert_eq!(refused.error_code, ResponseError::InvalidRequest.code());
        assert!(refused
            .error_message
            .as_ref()
            .unwrap()
            .contains("does not enforce quotas"));
        assert_eq!(refused.entity[0].entity_name.as_deref(), Some("app"));
    }
}

/// No SASL, so no SCRAM users: all users is none, a named one is not found, and storing a
/// credential is refused per user.
#[tokio::test]
async fn scram_credentials_do_not_exist() {
    use bytes::Bytes;
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let all = DescribeUserScramCredentialsRequest::default().with_users(None);
    let response = client.send(all, 0).await;
    assert_eq!(response.error_code, 0);
    assert!(response.results.is_empty());
    let alice = StrBytes::from_static_str("alice");
    let named = DescribeUserScramCredentialsRequest::default()
        .with_users(Some(vec![UserName::default().with_name(alice.clone())]));
    let response = client.send(named, 0).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].user, alice);
    assert_eq!(
        response.results[0].error_code,
        ResponseError::ResourceNotFound.code()
    );

    let upsert = ScramCredentialUpsertion::default()
        .with_name(alice.clone())
        .with_mechanism(1)
        .with_iterations(8192)
        .with_salt(Bytes::from_static(b"salt"))
        .with_salted_password(Bytes::from_static(b"salted password"));
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert]);
    let response = client.send(request, 0).await;
    assert_eq!(response.results.len(), 1);
    let refused = &response.results[0];
    assert_eq!(refused.user, alice);
    assert_eq!(
        refused.error_code,
        ResponseError::UnsupportedSaslMechanism.code()
    );
    assert!(refused.error_message.as_ref().unwrap().contains("no SASL"));
}
