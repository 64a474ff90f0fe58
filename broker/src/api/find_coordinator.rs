//! FindCoordinator (v0–4): this broker coordinates every group. Transaction coordinators are
//! not offered (no transactions yet), so other key types are INVALID_REQUEST.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

/// `key_type` of a group coordinator lookup.
const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let found = if request.key_type == KEY_TYPE_GROUP {
        Ok(())
    } else {
        Err(ResponseError::InvalidRequest)
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
        found.as_ref().err().map(|_| {
            StrBytes::from_static_str("only group coordinators (key type 0) are supported")
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
