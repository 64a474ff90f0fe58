//! ApiVersions: answers with the one supported-versions table.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use runnel_protocol::versions;

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let _ = (ctx, header, request);
    let mut response = ApiVersionsResponse::default();
    response.api_keys = versions::api_version_entries();
    response
}
