//! CreatePartitions (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let _ = (ctx, header, request);
    CreatePartitionsResponse::default()
}
