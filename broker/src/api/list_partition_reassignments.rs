//! ListPartitionReassignments (v0): `kafka-reassign-partitions.sh --verify` and admin UIs ask
//! which partitions are moving. One broker has nowhere to move a partition to, so none ever
//! is: the answer is always an empty list. Named partitions that do not exist are left out
//! without an error, as Kafka's controller lists only partitions with a reassignment.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader,
};

use super::BrokerContext;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    _request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
        .with_error_code(0)
        .with_error_message(None)
        .with_topics(Vec::new())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{broker, header, topic};
    use super::*;

    #[test]
    fn nothing_is_ever_being_reassigned() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        let named = Some(vec![ListPartitionReassignmentsTopics::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_indexes(vec![0, 1, 7])]);
        for topics in [None, named] {
            let request = ListPartitionReassignmentsRequest::default().with_topics(topics);
            let response = handle(&fixture.ctx, &header(0), request);
            assert_eq!(response.error_code, 0);
            assert!(response.topics.is_empty());
        }
    }
}
