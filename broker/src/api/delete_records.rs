//! DeleteRecords (being written): see api/mod.rs for the handler contract.

use kafka_protocol::messages::{RequestHeader, DeleteRecordsRequest, DeleteRecordsResponse};

use super::BrokerContext;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let _ = (ctx, header, request);
    DeleteRecordsResponse::default()
}
