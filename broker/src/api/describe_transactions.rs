//! DescribeTransactions (v0, KIP-664): `kafka-transactions.sh describe` and admin UIs. Runnel
//! keeps no transaction state (no transactional producer is ever admitted), so every named
//! transactional id is TRANSACTIONAL_ID_NOT_FOUND, Kafka's answer for an id its coordinator
//! has no state for; an empty id is INVALID_REQUEST, as in Kafka. Each answer keeps its id, in
//! the order asked; the other fields stay at their defaults, as Kafka leaves them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, RequestHeader,
};

use super::BrokerContext;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let error = if id.0.is_empty() {
                ResponseError::InvalidRequest
            } else {
                ResponseError::TransactionalIdNotFound
            };
            TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(error.code())
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TransactionalId;
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    #[test]
    fn every_id_is_not_found_and_an_empty_one_is_invalid() {
        let fixture = broker();
        let ids = ["orders-tx", "", "orders-tx", "other"];
        let request = DescribeTransactionsRequest::default().with_transactional_ids(
            ids.iter()
                .map(|id| TransactionalId(StrBytes::from_string((*id).to_owned())))
                .collect(),
        );
        let response = handle(&fixture.ctx, &header(0), request);
        let not_found = ResponseError::TransactionalIdNotFound.code();
        let invalid = ResponseError::InvalidRequest.code();
        let answers: Vec<(&str, i16)> = response
            .transaction_states
            .iter()
            .map(|s| (s.transactional_id.0.as_str(), s.error_code))
            .collect();
        assert_eq!(
            answers,
            vec![
                ("orders-tx", not_found),
                ("", invalid),
                ("orders-tx", not_found),
                ("other", not_found),
            ]
        );
        for state in &response.transaction_states {
            assert_eq!(
                state.producer_id.0,
                TransactionState::default().producer_id.0
            );
            assert!(state.topics.is_empty());
        }
    }
}
