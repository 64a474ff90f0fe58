//! DescribeCluster (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, DescribeClusterRequest, DescribeClusterResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let _ = (ctx, header, request);
    DescribeClusterResponse::default()
}
