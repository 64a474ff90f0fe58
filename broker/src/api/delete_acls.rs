//! DeleteAcls (v1–3): every filter SECURITY_DISABLED, as Kafka answers without an
//! authorizer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::errors::NO_AUTHORIZER_MESSAGE;
use super::BrokerContext;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let results = request
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER_MESSAGE)))
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    #[test]
    fn each_filter_is_refused_as_security_disabled() {
        let fixture = broker();
        let request = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()]);
        let response = handle(&fixture.ctx, &header(3), request);
        assert_eq!(response.filter_results.len(), 1);
        let result = &response.filter_results[0];
        assert_eq!(result.error_code, ResponseError::SecurityDisabled.code());
        assert!(result.matching_acls.is_empty());
    }
}
