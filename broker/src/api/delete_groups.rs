//! DeleteGroups (v0–2): only Empty groups; answered once the tombstones are durable.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, GroupId, RequestHeader, ResponseKind,
};

use super::{BrokerContext, Completion};
use crate::groups::coordinator::Reply;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> Completion {
    let ids: Vec<String> = request.groups_names.iter().map(|g| g.to_string()).collect();
    let names = request.groups_names;
    match ctx.groups.delete_groups(&ids) {
        Reply::Ready(results) => {
            Completion::ready(ResponseKind::DeleteGroups(to_response(names, &results)))
        }
        Reply::Pending(results) => Completion::pending(async move {
            ResponseKind::DeleteGroups(to_response(names, &results.await))
        }),
    }
}

fn to_response(names: Vec<GroupId>, results: &[Option<ResponseError>]) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    response.results = names
        .into_iter()
        .zip(results)
        .map(|(group_id, error)| {
            let mut result = DeletableGroupResult::default();
            result.group_id = group_id;
            result.error_code = error.map_or(0, |e| e.code());
            result
        })
        .collect();
    response
}
