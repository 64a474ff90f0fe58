//! IncrementalAlterConfigs (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let _ = (ctx, header, request);
    IncrementalAlterConfigsResponse::default()
}
