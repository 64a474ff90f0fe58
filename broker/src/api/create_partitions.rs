//! CreatePartitions (v0–3): grows topics to a larger partition count (never shrinks).
//!
//! Also owns `PartitionBudget`, the cap on partitions one request (this or CreateTopics)
//! may add.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};

use super::create_topics::{repeated, Refusal};
use super::BrokerContext;

/// How many partitions one CreateTopics or CreatePartitions request may add in total, so a
/// single request cannot fill the disk with partition directories (storage separately caps
/// each topic).
pub(super) const NEW_PARTITIONS_PER_REQUEST_MAX: i64 = 100_000;

/// What is left of one request's new-partition allowance.
#[derive(Debug)]
pub(super) struct PartitionBudget {
    remaining: i64,
}

impl PartitionBudget {
    pub(super) fn new() -> PartitionBudget {
        PartitionBudget {
            remaining: NEW_PARTITIONS_PER_REQUEST_MAX,
        }
    }

    /// Takes `count` new partitions from the allowance, or refuses and takes nothing.
    pub(super) fn take(&mut self, count: i64) -> Result<(), Refusal> {
        debug_assert!(count >= 0, "a partition budget only grows topics");
        if count > self.remaining {
            return Err(Refusal::new(
                ResponseError::PolicyViolation,
                format!(
                    "one request may add at most {NEW_PARTITIONS_PER_REQUEST_MAX} partitions; \
                     split it into several requests"
                ),
            ));
        }
        self.remaining -= count;
        Ok(())
    }
}

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let _ = header;
    let duplicates = repeated(request.topics.iter().map(|topic| topic.name.0.as_str()));
    let mut budget = PartitionBudget::new();
    let results = request
        .topics
        .iter()
        .map(|topic| {
            let outcome = if duplicates.contains(topic.name.0.as_str()) {
                Err(Refusal::new(
                    ResponseError::InvalidRequest,
                    "the topic appears more than once in the request",
                ))
            } else {
                grow(ctx, topic, request.validate_only, &mut budget)
            };
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            match outcome {
                Ok(()) => result.with_error_code(0).with_error_message(None),
                Err(refusal) => result
                    .with_error_code(refusal.code)
                    .with_error_message(refusal.message_field()),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn grow(
    ctx: &BrokerContext,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
    budget: &mut PartitionBudget,
) -> Result<(), Refusal> {
    let name = topic.name.0.as_str();
    if topic
        .assignments
        .as_ref()
        .is_some_and(|assignments| !assignments.is_empty())
    {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            "manual replica assignments are not supported: give only the new count",
        ));
    }
    Refusal::unless_client_may("add partitions to", name)?;
    let info = ctx
        .logs
        .topic(name)
        .ok_or_else(|| Refusal::unknown_topic(name))?;
    if topic.count <= info.partitions {
        return Err(Refusal::new(
            ResponseError::InvalidPartitions,
            format!(
                "topic {name:?} has {} partitions; the new count {} must be larger",
                info.partitions, topic.count
            ),
        ));
    }
    // Storage validates first, so a budget refusal only ever hits an otherwise valid count.
    ctx.logs.create_partitions(name, topic.count, true)?;
    budget.take(i64::from(topic.count) - i64::from(info.partitions))?;
    if !validate_only {
        ctx.logs.create_partitions(name, topic.count, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{broker, header, topic, Fixture};
    use super::*;

    fn grow_to(name: &str, count: i32) -> CreatePartitionsTopic {
        CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
            .with_count(count)
            .with_assignments(None)
    }

    fn request(
        fixture: &Fixture,
        validate_only: bool,
        topics: Vec<CreatePartitionsTopic>,
    ) -> Vec<i16> {
        let request = CreatePartitionsRequest::default()
            .with_topics(topics)
            .with_validate_only(validate_only);
        handle(&fixture.ctx, &header(3), request)
            .results
            .iter()
            .map(|r| r.error_code)
            .collect()
    }

    fn partitions(fixture: &Fixture, name: &str) -> i32 {
        fixture.ctx.logs.topic(name).unwrap().partitions
    }

    #[test]
    fn grows_and_new_partitions_are_usable() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        assert_eq!(request(&fixture, false, vec![grow_to("t", 4)]), vec![0]);
        assert_eq!(partitions(&fixture, "t"), 4);
        let log = fixture.ctx.logs.partition("t", 3).unwrap();
        assert_eq!(log.log_end_offset(), 0);
    }

    #[test]
    fn validate_only_grows_nothing() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        assert_eq!(request(&fixture, true, vec![grow_to("t", 5)]), vec![0]);
        assert_eq!(partitions(&fixture, "t"), 2);
    }

    #[test]
    fn refusals() {
        let fixture = broker();
        for name in ["same", "fewer", "manual", "dup"] {
            topic(&fixture, name, 2);
        }
        let assignment = CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(7)]);
        let codes = request(
            &fixture,
            false,
            vec![
                grow_to("missing", 3),
                grow_to("same", 2),
                grow_to("fewer", 1),
                grow_to("fewer", -3).with_name(TopicName(StrBytes::from_static_str("negative"))),
                grow_to("manual", 3).with_assignments(Some(vec![assignment])),
                grow_to("dup", 3),
                grow_to("dup", 4),
            ],
        );
        let partitions_code = ResponseError::InvalidPartitions.code();
        let request_code = ResponseError::InvalidRequest.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            codes,
            vec![
                unknown,
                partitions_code,
                partitions_code,
                unknown,
                request_code,
                request_code,
                request_code
            ]
        );
        for name in ["same", "fewer", "manual", "dup"] {
            assert_eq!(partitions(&fixture, name), 2);
        }
    }

    #[test]
    fn one_request_may_add_only_so_many_partitions() {
        let fixture = broker();
        topic(&fixture, "a", 1);
        topic(&fixture, "b", 1);
        let half = (NEW_PARTITIONS_PER_REQUEST_MAX / 2 + 2) as i32;
        let codes = request(&fixture, true, vec![grow_to("a", half), grow_to("b", half)]);
        assert_eq!(codes, vec![0, ResponseError::PolicyViolation.code()]);
        let mut budget = PartitionBudget::new();
        assert!(budget.take(NEW_PARTITIONS_PER_REQUEST_MAX).is_ok());
        assert!(budget.take(1).is_err());
        assert!(budget.take(0).is_ok());
    }

    #[test]
    fn negative_count_on_existing_topic_is_invalid_partitions() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        let codes = request(&fixture, false, vec![grow_to("t", i32::MIN)]);
        assert_eq!(codes, vec![ResponseError::InvalidPartitions.code()]);
    }
}
