//! Admin APIs whose answers follow from Runnel being one broker with no quotas and no SASL:
//! leader elections, partition reassignments, client quotas and SCRAM credentials, and
//! DescribeTopicPartitions (topics as Metadata shows them, paged), over TCP at every version
//! we advertise.

#![allow(clippy::unwrap_used)]

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    ElectLeadersRequest,
};
use runnel_tests::requests::{creatable_topic, metadata, topic_name};
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

/// (topic, error code, partitions) and the next cursor of a DescribeTopicPartitions answer.
type TopicPage = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn topic_page(response: &DescribeTopicPartitionsResponse) -> TopicPage {
    let topics = response
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().unwrap().0.to_string();
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (name, t.error_code, partitions)
        })
        .collect();
    let cursor = response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

/// As `kafka-topics.sh --describe` (3.8+) pages through topics: sorted by name, cut at the
/// partition limit with a cursor to go on from; topic ids and leaders as Metadata gives
/// them; an unknown topic UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn describe_topic_partitions_pages_topics_as_metadata_shows_them() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create(&mut client, "dtp-b", 2).await;
    create(&mut client, "dtp-a", 3).await;
    let named = |names: &[&str], limit: i32, cursor: Option<(&str, i32)>| {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(topic_name(n)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(topic_name(t))
                    .with_partition_index(p)
            }))
    };
    let first = client
        .send(named(&["dtp-b", "dtp-a", "dtp-none"], 4, None), 0)
        .await;
    assert_eq!(
        topic_page(&first),
        (
            vec![
                ("dtp-a".to_owned(), 0, vec![0, 1, 2]),
                ("dtp-b".to_owned(), 0, vec![0]),
            ],
            Some(("dtp-b".to_owned(), 1))
        )
    );
    let next = client
        .send(
            named(&["dtp-b", "dtp-a", "dtp-none"], 4, Some(("dtp-b", 1))),
            0,
        )
        .await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        topic_page(&next),
        (
            vec![
                ("dtp-b".to_owned(), 0, vec![1]),
                ("dtp-none".to_owned(), unknown, vec![]),
            ],
            None
        )
    );
    // Every topic (an empty list): the same ids and leaders as Metadata.
    let all = client.send(named(&[], 2000, None), 0).await;
    let listed = client.send(metadata(None), 12).await;
    assert_eq!(all.topics.len(), listed.topics.len());
    for (described, shown) in all.topics.iter().zip(&listed.topics) {
        assert_eq!(described.name, shown.name);
        assert_eq!(described.topic_id, shown.topic_id);
        assert_eq!(described.partitions.len(), shown.partitions.len());
        for (d, m) in described.partitions.iter().zip(&shown.partitions) {
            assert_eq!(
                (d.partition_index, d.leader_id, d.leader_epoch),
                (m.partition_index, m.leader_id, m.leader_epoch)
            );
            assert_eq!(
                (&d.replica_nodes, &d.isr_nodes),
                (&m.replica_nodes, &m.isr_nodes)
            );
        }
    }
}
