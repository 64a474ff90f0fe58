//! DescribeCluster (v0–1): this single broker is the whole cluster and its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_AUTHORIZED_OPERATIONS};
use super::BrokerContext;

/// `endpoint_type` values (v1+): the brokers' listeners, or the controllers'.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    // v0 has no endpoint_type on the wire; it means brokers.
    let endpoint_type = if header.request_api_version >= 1 {
        request.endpoint_type
    } else {
        ENDPOINT_BROKERS
    };
    if endpoint_type != ENDPOINT_BROKERS {
        return wrong_endpoint_type(endpoint_type);
    }
    let this_broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(ctx.node_id))
        .with_host(StrBytes::from_string(ctx.advertised_host.clone()))
        .with_port(ctx.advertised_port)
        .with_rack(None);
    let operations = if request.include_cluster_authorized_operations {
        CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_error_message(None)
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(ctx.cluster_id.clone()))
        .with_controller_id(BrokerId(ctx.node_id))
        .with_brokers(vec![this_broker])
        .with_cluster_authorized_operations(operations)
}

/// The answer to a request for another endpoint type, as Kafka's
/// `AuthHelper.computeDescribeClusterResponse` gives it on a broker listener: asking a broker
/// for the controllers is MISMATCHED_ENDPOINT_TYPE (a known type sent to the wrong listener),
/// any other value UNSUPPORTED_ENDPOINT_TYPE. The response's own `endpoint_type` keeps its
/// default (brokers), as Kafka's error response does.
fn wrong_endpoint_type(endpoint_type: i8) -> DescribeClusterResponse {
    let (error, message) = if endpoint_type == ENDPOINT_CONTROLLERS {
        (
            ResponseError::MismatchedEndpointType,
            "this is a broker listener; controllers are described by a controller listener"
                .to_owned(),
        )
    } else {
        (
            ResponseError::UnsupportedEndpointType,
            format!("endpoint type {endpoint_type} is unknown"),
        )
    };
    DescribeClusterResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

#[cfg(test)]
mod tests {
    use super::super::create_topics::fixture::{broker, header, NODE_ID};
    use super::*;

    #[test]
    fn this_broker_is_the_cluster_and_its_controller() {
        let fixture = broker();
        for version in [0, 1] {
            let response = handle(
                &fixture.ctx,
                &header(version),
                DescribeClusterRequest::default(),
            );
            assert_eq!(response.error_code, 0);
            assert_eq!(response.cluster_id.as_str(), "runnel-test-cluster");
            assert_eq!(response.controller_id, BrokerId(NODE_ID));
            assert_eq!(response.endpoint_type, ENDPOINT_BROKERS);
            assert_eq!(response.brokers.len(), 1);
            let broker = &response.brokers[0];
            assert_eq!(broker.broker_id, BrokerId(NODE_ID));
            assert_eq!(broker.host.as_str(), "127.0.0.1");
            assert_eq!(broker.port, 19092);
            assert_eq!(
                response.cluster_authorized_operations,
                AUTHORIZED_OPERATIONS_OMITTED
            );
        }
    }

    #[test]
    fn authorized_operations_when_asked() {
        let fixture = broker();
        let request =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let response = handle(&fixture.ctx, &header(1), request);
        assert_eq!(response.cluster_authorized_operations & (1 << 8), 1 << 8);
    }

    #[test]
    fn controller_endpoints_are_a_mismatch_and_unknown_types_unsupported() {
        let fixture = broker();
        for (endpoint_type, error) in [
            (ENDPOINT_CONTROLLERS, ResponseError::MismatchedEndpointType),
            (3, ResponseError::UnsupportedEndpointType),
            (0, ResponseError::UnsupportedEndpointType),
        ] {
            let request = DescribeClusterRequest::default().with_endpoint_type(endpoint_type);
            let response = handle(&fixture.ctx, &header(1), request);
            assert_eq!(response.error_code, error.code(), "type {endpoint_type}");
            assert_eq!(response.endpoint_type, ENDPOINT_BROKERS);
            assert!(response.brokers.is_empty());
        }
    }
}
