//! ElectLeaders (v0–2): `kafka-leader-election.sh` and admin UIs ask for preferred or unclean
//! elections. This node already leads every partition as its preferred and only replica, so
//! each named partition that exists answers ELECTION_NOT_NEEDED, as Kafka's controller does
//! for a partition already led by its preferred replica (preferred) or led at all (unclean).
//!
//! v0 carries no election type (it is always a preferred election) and its response has no
//! top-level error code; the per-partition answers are the same at every version.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::replicas::partition_exists;
use super::BrokerContext;

/// The election types the request may carry (KIP-460): 0 preferred, 1 unclean.
const ELECTION_TYPES: [i8; 2] = [0, 1];

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    // v0 has no election type on the wire: it decodes as 0, a preferred election.
    if header.request_api_version >= 1 && !ELECTION_TYPES.contains(&request.election_type) {
        return refused(
            &request,
            ResponseError::InvalidRequest,
            "unknown election type",
        );
    }
    let results = match &request.topic_partitions {
        // "All partitions": Kafka lists every topic but leaves out the partitions whose
        // election was not needed, which here is all of them.
        None => ctx
            .logs
            .topics()
            .into_iter()
            .map(|info| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(info.name)))
            })
            .collect(),
        Some(topics) => topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|&partition| election_result(ctx, topic.topic.0.as_str(), partition))
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partition_result(partitions)
            })
            .collect(),
    };
    ElectLeadersResponse::default().with_replica_election_results(results)
}

fn election_result(ctx: &BrokerContext, topic: &str, partition: i32) -> PartitionResult {
    let (error, message) = if partition_exists(ctx, topic, partition) {
        (
            ResponseError::ElectionNotNeeded,
            "this broker already leads the partition as its only replica",
        )
    } else {
        (
            ResponseError::UnknownTopicOrPartition,
            "no such topic or partition",
        )
    };
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_static_str(message)))
}

/// The whole request refused, as Kafka answers a request it cannot run: the top-level code
/// (v1+) and the same code on every named partition.
fn refused(
    request: &ElectLeadersRequest,
    error: ResponseError,
    message: &'static str,
) -> ElectLeadersResponse {
    let results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&partition| {
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_static_str(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic.clone())
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(error.code())
        .with_replica_election_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;

    use super::super::create_topics::fixture::{broker, header, topic};
    use super::*;

    fn named(topics: &[(&str, &[i32])]) -> Option<Vec<TopicPartitions>> {
        Some(
            topics
                .iter()
                .map(|(name, partitions)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string((*name).to_owned())))
                        .with_partitions(partitions.to_vec())
                })
                .collect(),
        )
    }

    fn codes(response: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
        response
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect()
    }

    #[test]
    fn named_partitions_need_no_election_and_unknown_ones_are_unknown() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        let not_needed = ResponseError::ElectionNotNeeded.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        for (version, election_type) in [(0, 0), (1, 0), (1, 1), (2, 1)] {
            let request = ElectLeadersRequest::default()
                .with_election_type(election_type)
                .with_topic_partitions(named(&[("t", &[0, 1, 2]), ("missing", &[0])]));
            let response = handle(&fixture.ctx, &header(version), request);
            assert_eq!(response.error_code, 0, "v{version}");
            assert_eq!(
                codes(&response),
                vec![
                    ("t".to_owned(), 0, not_needed),
                    ("t".to_owned(), 1, not_needed),
                    ("t".to_owned(), 2, unknown),
                    ("missing".to_owned(), 0, unknown),
                ],
                "v{version} type {election_type}"
            );
        }
    }

    #[test]
    fn all_partitions_lists_every_topic_without_partitions() {
        let fixture = broker();
        topic(&fixture, "b", 2);
        topic(&fixture, "a", 1);
        let response = handle(
            &fixture.ctx,
            &header(2),
            ElectLeadersRequest::default().with_topic_partitions(None),
        );
        assert_eq!(response.error_code, 0);
        let topics: Vec<&str> = response
            .replica_election_results
            .iter()
            .map(|t| t.topic.0.as_str())
            .collect();
        assert_eq!(topics, vec!["a", "b"]);
        assert!(codes(&response).is_empty());
    }

    #[test]
    fn an_unknown_election_type_is_an_invalid_request() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        let request = ElectLeadersRequest::default()
            .with_election_type(2)
            .with_topic_partitions(named(&[("t", &[0])]));
        let response = handle(&fixture.ctx, &header(1), request);
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(response.error_code, invalid);
        assert_eq!(codes(&response), vec![("t".to_owned(), 0, invalid)]);
    }
}
