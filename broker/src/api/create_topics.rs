//! CreateTopics (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, CreateTopicsRequest, CreateTopicsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let _ = (ctx, header, request);
    CreateTopicsResponse::default()
}
