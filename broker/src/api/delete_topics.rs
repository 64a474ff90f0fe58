//! DeleteTopics (v1–6): deletes topics and their data, by name (v1–6) or topic id (v6).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::create_topics::{repeated, Refusal};
use super::BrokerContext;

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
) -> DeleteTopicsResponse {
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
    // One pass over the topics resolves every id, instead of one pass per id.
    let names_by_id: BTreeMap<Uuid, String> = if targets.iter().any(|t| matches!(t, Target::Id(_)))
    {
        ctx.logs
            .topics()
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect()
    } else {
        BTreeMap::new()
    };
    let responses = targets
        .iter()
        .map(|target| {
            if duplicates.contains(target) {
                let refusal = Refusal::new(
                    ResponseError::InvalidRequest,
                    "the topic appears more than once in the request",
                );
                return refused(target, &refusal);
            }
            delete_one(ctx, target, &names_by_id)
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete_one(
    ctx: &BrokerContext,
    target: &Target,
    names_by_id: &BTreeMap<Uuid, String>,
) -> DeletableTopicResult {
    let name = match target {
        Target::Name(name) => name.clone(),
        Target::Id(id) => {
            // Check the id again just before deleting: the name may since have been deleted
            // (earlier in this request) or reused by a new topic.
            let current = names_by_id
                .get(id)
                .filter(|name| ctx.logs.topic(name).is_some_and(|topic| topic.id == *id));
            let Some(name) = current else {
                let refusal = Refusal::new(
                    ResponseError::UnknownTopicId,
                    format!("no topic has id {id}"),
                );
                return refused(target, &refusal);
            };
            name.clone()
        }
    };
    if let Err(refusal) = Refusal::unless_client_may("delete", &name) {
        return refused(target, &refusal);
    }
    let deleted = ctx.logs.delete_topic(&name);
    if deleted.is_ok() {
        ctx.groups.remove_offsets_of_deleted_topic(&name);
    }
    match deleted {
        Ok(id) => DeletableTopicResult::default()
            .with_name(Some(topic_name(&name)))
            .with_topic_id(id)
            .with_error_code(0)
            .with_error_message(None),
        Err(error) => refused(&Target::Name(name), &Refusal::from(error)),
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

    use super::super::create_topics::fixture::{broker, header, topic};
    use super::*;

    #[test]
    fn deletes_by_name_before_v6() {
        let fixture = broker();
        topic(&fixture, "a", 2);
        topic(&fixture, "b", 1);
        let id = fixture.ctx.logs.topic("a").unwrap().id;
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name("a"), topic_name("missing")]);
        let responses = handle(&fixture.ctx, &header(1), request).responses;
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
        let responses = handle(&fixture.ctx, &header(6), request).responses;
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
        let codes: Vec<i16> = handle(&fixture.ctx, &header(6), request)
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
        let codes: Vec<i16> = handle(&fixture.ctx, &header(5), request)
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
