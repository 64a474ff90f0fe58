//! DeleteTopics (v1–6): deletes topics and their data, by name (v1–6) or topic id (v6), and
//! answers once the tombstones of the topics' committed offsets are durable.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::create_topics::{repeated, Refusal};
use super::{BrokerContext, Completion};
use crate::groups::offsets::Durable;

/// One topic a request asks to delete, as the client named it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Name(String),
    Id(Uuid),
}

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> Completion {
    let _ = header;
    // v1–5 list names in `topic_names`; v6 lists `topics`, each by name or (name null) by id.
    let by_name = request
        .topic_names
        .iter()
        .map(|name| Target::Name(name.0.to_string()));
    let by_state = request.topics.iter().map(|state| match &state.name {
        Some(name) => Target::Name(name.0.to_string()),
        None => Target::Id(state.topic_id),
    });
    let targets: Vec<Target> = by_name.chain(by_state).collect();
    let duplicates = repeated(targets.iter());
    let mut responses = Vec::with_capacity(targets.len());
    let mut tombstones: Vec<(usize, Durable)> = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        if duplicates.contains(target) {
            let refusal = Refusal::new(
                ResponseError::InvalidRequest,
                "the topic appears more than once in the request",
            );
            responses.push(refused(target, &refusal));
            continue;
        }
        let (result, durable) = delete_one(ctx, target);
        responses.push(result);
        tombstones.extend(durable.map(|durable| (index, durable)));
    }
    if tombstones.is_empty() {
        return Completion::ready(answer(responses));
    }
    Completion::pending(async move {
        for (index, durable) in tombstones {
            let Err(error) = durable.await else { continue };
            // The topic is gone, but a crash could bring its offsets back onto a topic
            // recreated under the name: the client must not be told all went well.
            let refusal = Refusal::new(
                ResponseError::KafkaStorageError,
                format!("topic deleted, but removing its committed offsets failed: {error}"),
            );
            if let Some(result) = responses.get_mut(index) {
                result.error_code = refusal.code;
                result.error_message = refusal.message_field();
            }
        }
        answer(responses)
    })
}

fn answer(responses: Vec<DeletableTopicResult>) -> ResponseKind {
    ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
}

/// The answer to `request`, waited for (unit tests).
#[cfg(test)]
pub(crate) fn answered(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let body = match handle(ctx, header, request) {
        Completion::Ready(answer) => answer.body,
        Completion::Pending(answer) => futures::executor::block_on(answer).body,
        Completion::NoResponse | Completion::CloseConnection => panic!("DeleteTopics answers"),
    };
    match body {
        ResponseKind::DeleteTopics(response) => response,
        _ => panic!("not a DeleteTopics response"),
    }
}

/// Deletes one topic: its result, and the [`Durable`] of its offsets' tombstones if any.
fn delete_one(ctx: &BrokerContext, target: &Target) -> (DeletableTopicResult, Option<Durable>) {
    let name = match target {
        Target::Name(name) => name.clone(),
        Target::Id(id) => {
            // Resolved just before deleting: a topic deleted earlier in this request, or
            // re-created under its name (a new id), no longer has it.
            let Some(topic) = ctx.logs.topic_by_id(id) else {
                let refusal = Refusal::new(
                    ResponseError::UnknownTopicId,
                    format!("no topic has id {id}"),
                );
                return (refused(target, &refusal), None);
            };
            topic.name
        }
    };
    if let Err(refusal) = Refusal::unless_client_may("delete", &name) {
        return (refused(target, &refusal), None);
    }
    match ctx.logs.delete_topic(&name) {
        Ok(id) => {
            let (removed, durable) = ctx.groups.remove_offsets_of_deleted_topic(&name);
            let result = DeletableTopicResult::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(id)
                .with_error_code(0)
                .with_error_message(None);
            (result, (removed > 0).then_some(durable))
        }
        Err(error) => (refused(&Target::Name(name), &Refusal::from(error)), None),
    }
}

fn refused(target: &Target, refusal: &Refusal) -> DeletableTopicResult {
    let result = DeletableTopicResult::default()
        .with_error_code(refusal.code)
        .with_error_message(refusal.message_field());
    match target {
        Target::Name(name) => result.with_name(Some(topic_name(name))),
        Target::Id(id) => result.with_name(None).with_topic_id(*id),
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::DeleteTopicsRequest;

    use super::super::create_topics::fixture::{broker, header, topic, Fixture};
    use super::*;
    use crate::groups::commits::{CommitEntry, Committer};
    use crate::groups::OFFSETS_TOPIC;

    /// Commits offset 5 for every partition of `topic` as a simple (assign-mode) client.
    fn commit(fixture: &Fixture, group: &str, topic: &str, partitions: i32) {
        let who = Committer {
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            retention_time_ms: -1,
        };
        let entries: Vec<CommitEntry> = (0..partitions)
            .map(|partition| CommitEntry {
                topic: topic.to_owned(),
                partition,
                offset: 5,
                leader_epoch: -1,
                metadata: None,
            })
            .collect();
        let reply = fixture.ctx.groups.commit_offsets(group, &who, &entries);
        let errors = futures::executor::block_on(reply.wait());
        assert!(errors.iter().all(Option::is_none), "{errors:?}");
    }

    /// (log end, durable offset) of each `__consumer_offsets` partition.
    fn offsets_topic_ends(fixture: &Fixture) -> Vec<(i64, i64)> {
        let partitions = fixture.ctx.logs.topic(OFFSETS_TOPIC).unwrap().partitions;
        (0..partitions)
            .map(|partition| {
                let log = fixture
                    .ctx
                    .logs
                    .partition(OFFSETS_TOPIC, partition)
                    .unwrap();
                (log.log_end_offset(), log.durable_offset())
            })
            .collect()
    }

    #[test]
    fn answers_once_the_committed_offsets_tombstones_are_durable() {
        let fixture = broker();
        topic(&fixture, "t", 3);
        commit(&fixture, "g", "t", 3);
        let before = offsets_topic_ends(&fixture);
        let request = DeleteTopicsRequest::default().with_topic_names(vec![topic_name("t")]);
        let response = answered(&fixture.ctx, &header(5), request);
        assert_eq!(response.responses[0].error_code, 0);
        let after = offsets_topic_ends(&fixture);
        // The tombstones were written, and everything written is fsynced.
        assert_ne!(before, after);
        for (end, durable) in after {
            assert_eq!(durable, end);
        }
    }

    #[test]
    fn tombstones_that_cannot_be_made_durable_fail_the_topic() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        topic(&fixture, "quiet", 1);
        commit(&fixture, "g", "t", 2);
        fixture.ctx.logs.fail_fsyncs();
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name("t"), topic_name("quiet")]);
        let response = answered(&fixture.ctx, &header(5), request);
        assert_eq!(
            response.responses[0].error_code,
            ResponseError::KafkaStorageError.code()
        );
        // A topic without committed offsets writes nothing and has nothing to wait for.
        assert_eq!(response.responses[1].error_code, 0);
        assert!(fixture.ctx.logs.topic("t").is_none());
    }

    #[test]
    fn deletes_by_name_before_v6() {
        let fixture = broker();
        topic(&fixture, "a", 2);
        topic(&fixture, "b", 1);
        let id = fixture.ctx.logs.topic("a").unwrap().id;
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name("a"), topic_name("missing")]);
        let responses = answered(&fixture.ctx, &header(1), request).responses;
        assert_eq!(responses[0].error_code, 0);
        assert_eq!(responses[0].topic_id, id);
        assert_eq!(responses[0].name, Some(topic_name("a")));
        assert_eq!(
            responses[1].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert!(fixture.ctx.logs.topic("a").is_none());
        assert!(fixture.ctx.logs.topic("b").is_some());
    }

    #[test]
    fn deletes_by_id_and_name_in_v6() {
        let fixture = broker();
        topic(&fixture, "by-id", 1);
        topic(&fixture, "by-name", 1);
        let id = fixture.ctx.logs.topic("by-id").unwrap().id;
        let unknown_id = Uuid::from_u128(42);
        let request = DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(id),
            DeleteTopicState::default().with_name(Some(topic_name("by-name"))),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(unknown_id),
        ]);
        let responses = answered(&fixture.ctx, &header(6), request).responses;
        assert_eq!(responses[0].error_code, 0);
        assert_eq!(responses[0].name, Some(topic_name("by-id")));
        assert_eq!(responses[1].error_code, 0);
        assert_eq!(
            responses[2].error_code,
            ResponseError::UnknownTopicId.code()
        );
        assert_eq!(responses[2].topic_id, unknown_id);
        assert!(fixture.ctx.logs.topics().is_empty());
    }

    #[test]
    fn by_name_then_by_id_of_the_same_topic() {
        let fixture = broker();
        topic(&fixture, "once", 1);
        let id = fixture.ctx.logs.topic("once").unwrap().id;
        let request = DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("once"))),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(id),
        ]);
        let codes: Vec<i16> = answered(&fixture.ctx, &header(6), request)
            .responses
            .iter()
            .map(|r| r.error_code)
            .collect();
        assert_eq!(codes, vec![0, ResponseError::UnknownTopicId.code()]);
    }

    #[test]
    fn duplicates_and_garbage_names_are_refused() {
        let fixture = broker();
        topic(&fixture, "twice", 1);
        let request = DeleteTopicsRequest::default().with_topic_names(vec![
            topic_name("twice"),
            topic_name("twice"),
            topic_name(""),
            topic_name("../../etc"),
        ]);
        let codes: Vec<i16> = answered(&fixture.ctx, &header(5), request)
            .responses
            .iter()
            .map(|r| r.error_code)
            .collect();
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(codes[..2], [invalid, invalid]);
        assert!(codes[2..].iter().all(|code| *code != 0));
        assert!(fixture.ctx.logs.topic("twice").is_some());
    }
}
