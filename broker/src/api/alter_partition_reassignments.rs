//! AlterPartitionReassignments (v0–1): `kafka-reassign-partitions.sh --execute` / `--cancel`.
//! On one broker the only valid replica set is this node alone, which every partition
//! already has: asking for it changes nothing (NONE, as Kafka answers a reassignment to the
//! current replicas). Any other set names a broker that does not exist, or this one twice,
//! or none: INVALID_REPLICA_ASSIGNMENT, as Kafka's controller checks a manual assignment.
//! Cancelling (no replica list) finds no reassignment to cancel: NO_REASSIGNMENT_IN_PROGRESS.
//! v1 (KIP-860) adds `allow_replication_factor_change`; refused, a change of replication factor
//! answers INVALID_REPLICATION_FACTOR, which Kafka's controller checks only after the target
//! passed the manual-assignment checks (ReplicationControlManager.changePartitionReassignment).
//! Here the one target that passes them is this node alone, the partition's current set, so
//! the flag never changes an answer; the response echoes it, as Kafka's does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::replicas::partition_exists;
use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let responses = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let (code, message) = reassign(ctx, topic.name.0.as_str(), partition);
                    ReassignablePartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_error_code(0)
        .with_error_message(None)
        .with_responses(responses)
}

/// One partition's error code and message.
fn reassign(
    ctx: &BrokerContext,
    topic: &str,
    partition: &ReassignablePartition,
) -> (i16, Option<StrBytes>) {
    if !partition_exists(ctx, topic, partition.partition_index) {
        let message = format!("no partition {topic}-{}", partition.partition_index);
        return (
            ResponseError::UnknownTopicOrPartition.code(),
            Some(StrBytes::from_string(message)),
        );
    }
    match &partition.replicas {
        None => (
            ResponseError::NoReassignmentInProgress.code(),
            Some(StrBytes::from_static_str(
                "no reassignment is in progress: Runnel never moves partitions",
            )),
        ),
        Some(replicas) if replicas.len() == 1 && replicas[0].0 == ctx.node_id => (0, None),
        Some(replicas) => {
            let asked: Vec<i32> = replicas.iter().map(|r| r.0).collect();
            let message = format!(
                "replicas {asked:?} cannot be assigned: Runnel has one broker (node {node}), \
                 so the only replica set is [{node}]",
                node = ctx.node_id
            );
            (
                ResponseError::InvalidReplicaAssignment.code(),
                Some(StrBytes::from_string(message)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_partition_reassignments_request::ReassignableTopic;
    use kafka_protocol::messages::{BrokerId, TopicName};

    use super::super::create_topics::fixture::{broker, header, topic, NODE_ID};
    use super::*;

    fn target(partition: i32, replicas: Option<&[i32]>) -> ReassignablePartition {
        ReassignablePartition::default()
            .with_partition_index(partition)
            .with_replicas(replicas.map(|r| r.iter().map(|&id| BrokerId(id)).collect()))
    }

    fn codes(fixture_topic: &str, partitions: Vec<ReassignablePartition>) -> Vec<i16> {
        let fixture = broker();
        topic(&fixture, "t", 2);
        let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
            ReassignableTopic::default()
                .with_name(TopicName(StrBytes::from_string(fixture_topic.to_owned())))
                .with_partitions(partitions),
        ]);
        let response = handle(&fixture.ctx, &header(0), request);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.responses.len(), 1);
        response.responses[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect()
    }

    #[test]
    fn the_current_replica_set_is_nothing_to_do_and_any_other_is_invalid() {
        let invalid = ResponseError::InvalidReplicaAssignment.code();
        let got = codes(
            "t",
            vec![
                target(0, Some(&[NODE_ID])),
                target(1, Some(&[NODE_ID + 1])),
                target(1, Some(&[NODE_ID, NODE_ID + 1])),
                target(1, Some(&[NODE_ID, NODE_ID])),
                target(1, Some(&[])),
            ],
        );
        assert_eq!(got, vec![0, invalid, invalid, invalid, invalid]);
    }

    #[test]
    fn cancelling_finds_no_reassignment_and_unknown_partitions_are_unknown() {
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            codes("t", vec![target(0, None), target(2, Some(&[NODE_ID]))]),
            vec![ResponseError::NoReassignmentInProgress.code(), unknown]
        );
        assert_eq!(codes("missing", vec![target(0, None)]), vec![unknown]);
    }

    #[test]
    fn refusing_a_replication_factor_change_is_echoed_and_changes_no_answer() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        let partitions = vec![
            target(0, Some(&[NODE_ID])),
            target(0, Some(&[NODE_ID, NODE_ID + 1])),
        ];
        for allow in [true, false] {
            let request = AlterPartitionReassignmentsRequest::default()
                .with_allow_replication_factor_change(allow)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(partitions.clone())]);
            let response = handle(&fixture.ctx, &header(1), request);
            assert_eq!(response.allow_replication_factor_change, allow);
            let got: Vec<i16> = response.responses[0]
                .partitions
                .iter()
                .map(|p| p.error_code)
                .collect();
            let invalid = ResponseError::InvalidReplicaAssignment.code();
            assert_eq!(got, vec![0, invalid], "allow = {allow}");
        }
    }
}
