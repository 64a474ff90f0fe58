//! DeleteTopics (v1–6): deletes topics and their data, by name (v1–6) or topic id (v6).

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
            delete_one(ctx, target)
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete_one(ctx: &BrokerContext, target: &Target) -> DeletableTopicResult {
    let name = match target {
        Target::Name(name) => name.clone(),
        Target::Id(id) => {
            let found = ctx.logs.topics().into_iter().find(|topic| topic.id == *id);
            match found {
                Some(topic) => topic.name,
                None => {
                    let refusal = Refusal::new(
                        ResponseError::UnknownTopicId,
                        format!("no topic has id {id}"),
                    );
                    return refused(target, &refusal);
                }
            }
        }
    };
    match ctx.logs.delete_topic(&name) {
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
