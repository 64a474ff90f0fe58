//! DeleteTopics (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, DeleteTopicsRequest, DeleteTopicsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let _ = (ctx, header, request);
    DeleteTopicsResponse::default()
}
