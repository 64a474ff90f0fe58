//! ListTransactions (v0–1, KIP-664; v1's duration filter from KIP-994):
//! `kafka-transactions.sh list` and admin UIs. Runnel has no transaction coordinator state
//! (no transactional producer is ever admitted), so the list is always empty, as from a
//! Kafka cluster no transactional producer has used.
//!
//! As Kafka's coordinator: a state filter that names no transaction state goes back in
//! `unknown_state_filters` (once, however often it was named; the match is case-sensitive),
//! producer id filters match nothing to filter, and any duration filter is accepted (Kafka
//! reads a negative one as "no filter" and refuses none).

use std::collections::HashSet;

use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, RequestHeader};

use super::BrokerContext;

/// The transaction state names Kafka's coordinator knows (`TransactionState`).
pub const TRANSACTION_STATES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut seen = HashSet::new();
    let unknown = request
        .state_filters
        .into_iter()
        .filter(|state| !TRANSACTION_STATES.contains(&state.as_str()))
        .filter(|state| seen.insert(state.to_string()))
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(Vec::new())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ProducerId;
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    fn names(states: &[&str]) -> Vec<StrBytes> {
        states
            .iter()
            .map(|s| StrBytes::from_string((*s).to_owned()))
            .collect()
    }

    #[test]
    fn no_transactions_and_unknown_state_filters_come_back_once() {
        let fixture = broker();
        for version in [0, 1] {
            let request = ListTransactionsRequest::default()
                .with_state_filters(names(&[
                    "Ongoing", "Bogus", "ongoing", "Bogus", "Empty", "",
                ]))
                .with_producer_id_filters(vec![ProducerId(3)])
                .with_duration_filter(if version == 1 { 60_000 } else { -1 });
            let response = handle(&fixture.ctx, &header(version), request);
            assert_eq!(response.error_code, 0, "v{version}");
            assert!(response.transaction_states.is_empty());
            assert_eq!(
                response.unknown_state_filters,
                names(&["Bogus", "ongoing", ""]),
                "v{version}"
            );
        }
    }

    #[test]
    fn every_kafka_state_is_known_and_any_duration_is_accepted() {
        let fixture = broker();
        for duration_ms in [-1, -5, 0, i64::MAX] {
            let request = ListTransactionsRequest::default()
                .with_state_filters(names(&TRANSACTION_STATES))
                .with_duration_filter(duration_ms);
            let response = handle(&fixture.ctx, &header(1), request);
            assert_eq!(response.error_code, 0, "{duration_ms}");
            assert!(response.unknown_state_filters.is_empty());
            assert!(response.transaction_states.is_empty());
        }
    }
}
