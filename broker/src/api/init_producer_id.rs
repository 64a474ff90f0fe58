//! InitProducerId: hands an idempotent producer its id and epoch.
//!
//! Runnel has no transactions, so only the non-transactional form is served. Transactional
//! producers are normally stopped earlier, at their transaction-coordinator lookup (see
//! `find_coordinator`); one that sends InitProducerId with a `transactional_id` anyway gets
//! INVALID_REQUEST: non-retriable, so it fails at once, where COORDINATOR_NOT_AVAILABLE would
//! make it retry forever and UNSUPPORTED_VERSION would claim the version, not the feature, is
//! the problem. Kafka itself answers INVALID_REQUEST to an empty transactional id, so clients
//! already treat the code as "this producer's configuration cannot work here".
//!
//! Producer ids come from the persisted block in [`crate::producers::id_block`]; a v3+
//! request naming an id this broker issued gets the next epoch (KIP-360) without fencing
//! checks (nothing tracks the latest epoch per id across restarts; Produce still refuses
//! older epochs per partition).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, RequestHeader};

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return failed(ResponseError::InvalidRequest);
    }
    // v3+ (KIP-360) lets a producer ask to bump the epoch of the id it holds; -1/-1 is "new".
    let existing = (header.request_api_version >= 3 && request.producer_id.0 >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    match ctx.producers.init_producer_id(existing) {
        Ok((producer_id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(producer_id.into())
            .with_producer_epoch(epoch),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            failed(ResponseError::UnknownServerError)
        }
    }
}
