//! CreateAcls (v1–3): every creation SECURITY_DISABLED, as Kafka answers without an
//! authorizer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::errors::NO_AUTHORIZER_MESSAGE;
use super::BrokerContext;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let results = request
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER_MESSAGE)))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_acls_request::AclCreation;

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    #[test]
    fn each_creation_is_refused_as_security_disabled() {
        let fixture = broker();
        let request = CreateAclsRequest::default()
            .with_creations(vec![AclCreation::default(), AclCreation::default()]);
        let response = handle(&fixture.ctx, &header(3), request);
        assert_eq!(response.results.len(), 2);
        for result in &response.results {
            assert_eq!(result.error_code, ResponseError::SecurityDisabled.code());
        }
    }
}
