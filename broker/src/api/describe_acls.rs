//! DescribeAcls (v1–3): SECURITY_DISABLED, as Kafka answers without an authorizer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::errors::NO_AUTHORIZER_MESSAGE;
use super::BrokerContext;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    _request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER_MESSAGE)))
}

#[cfg(test)]
mod tests {
    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    #[test]
    fn security_is_disabled() {
        let fixture = broker();
        let response = handle(&fixture.ctx, &header(3), DescribeAclsRequest::default());
        assert_eq!(response.error_code, ResponseError::SecurityDisabled.code());
        assert!(response.resources.is_empty());
    }
}
