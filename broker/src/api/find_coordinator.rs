//! FindCoordinator (v0–4): this broker coordinates every group.
//!
//! Runnel has no transactions, so a transaction coordinator (key type 1) is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED and a message saying why — Kafka's own answer when a
//! transactional id may not be used, and the one code every client treats as fatal at this
//! step: librdkafka retried INVALID_REQUEST until `init_transactions` timed out (then told the
//! caller to retry), while Java, KafkaJS and librdkafka all stop at once on this one. Other
//! key types are INVALID_REQUEST.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

/// `key_type` of a group coordinator lookup.
const KEY_TYPE_GROUP: i8 = 0;
/// `key_type` of a transaction coordinator lookup.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Why the lookup is refused, for the response's error message.
const NO_TRANSACTIONS_MESSAGE: &str = "Runnel does not support transactions: a producer with a \
     transactional.id cannot be used here (an idempotent producer can)";
const UNKNOWN_KEY_TYPE_MESSAGE: &str = "only group coordinators (key type 0) are supported";

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let found = match request.key_type {
        KEY_TYPE_GROUP => Ok(()),
        KEY_TYPE_TRANSACTION => Err(ResponseError::TransactionalIdAuthorizationFailed),
        _ => Err(ResponseError::InvalidRequest),
    };
    let node = |found: &Result<(), ResponseError>| match found {
        Ok(()) => (
            BrokerId(ctx.node_id),
            StrBytes::from_string(ctx.advertised_host.clone()),
            ctx.advertised_port,
        ),
        Err(_) => (BrokerId(-1), StrBytes::default(), -1),
    };
    let message = |found: &Result<(), ResponseError>| {
        found.as_ref().err().map(|error| {
            StrBytes::from_static_str(match error {
                ResponseError::TransactionalIdAuthorizationFailed => NO_TRANSACTIONS_MESSAGE,
                _ => UNKNOWN_KEY_TYPE_MESSAGE,
            })
        })
    };
    let mut response = FindCoordinatorResponse::default();
    if header.request_api_version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (node_id, host, port) = node(&found);
                let mut coordinator = Coordinator::default();
                coordinator.key = key;
                coordinator.node_id = node_id;
                coordinator.host = host;
                coordinator.port = port;
                coordinator.error_code = found.err().map_or(0, |e| e.code());
                coordinator.error_message = message(&found);
                coordinator
            })
            .collect();
    } else {
        let (node_id, host, port) = node(&found);
        response.node_id = node_id;
        response.host = host;
        response.port = port;
        response.error_code = found.err().map_or(0, |e| e.code());
        response.error_message = message(&found);
    }
    response
}
