//! DescribeCluster (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, RequestHeader};

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let _ = (ctx, header, request);
    DescribeClusterResponse::default()
}
