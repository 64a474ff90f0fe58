//! CreatePartitions (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, CreatePartitionsRequest, CreatePartitionsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let _ = (ctx, header, request);
    CreatePartitionsResponse::default()
}
