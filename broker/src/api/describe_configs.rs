//! DescribeConfigs (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, DescribeConfigsRequest, DescribeConfigsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let _ = (ctx, header, request);
    DescribeConfigsResponse::default()
}
