//! AlterConfigs (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, AlterConfigsRequest, AlterConfigsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let _ = (ctx, header, request);
    AlterConfigsResponse::default()
}
