//! DeleteRecords (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let _ = (ctx, header, request);
    DeleteRecordsResponse::default()
}
