//! AlterClientQuotas (v0–1): `kafka-configs.sh --alter --entity-type users/clients`.
//! Runnel enforces no quotas, so it refuses to record one rather than accept a limit it
//! would silently ignore. Every entry gets INVALID_REQUEST, the code Kafka's controller gives
//! a quota change it cannot apply (an unknown entity type or quota key); UNSUPPORTED_VERSION
//! would read as a protocol version mismatch, and clients retry or downgrade on it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

/// What every refused entry says.
pub const NO_QUOTAS_MESSAGE: &str =
    "Runnel does not enforce quotas: client quotas cannot be set on this broker";

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let entries = request
        .entries
        .iter()
        .map(|entry| {
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            EntryData::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_static_str(NO_QUOTAS_MESSAGE)))
                .with_entity(entity)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_client_quotas_request::{
        EntityData as AskedEntity, EntryData as AskedEntry, OpData,
    };

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    #[test]
    fn every_entry_is_refused_and_echoes_its_entity() {
        let fixture = broker();
        let entry = |user: &str| {
            AskedEntry::default()
                .with_entity(vec![AskedEntity::default()
                    .with_entity_type(StrBytes::from_static_str("user"))
                    .with_entity_name(Some(StrBytes::from_string(user.to_owned())))])
                .with_ops(vec![OpData::default()
                    .with_key(StrBytes::from_static_str("producer_byte_rate"))
                    .with_value(1024.0)])
        };
        for validate_only in [false, true] {
            let request = AlterClientQuotasRequest::default()
                .with_entries(vec![entry("alice"), entry("bob")])
                .with_validate_only(validate_only);
            let response = handle(&fixture.ctx, &header(1), request);
            let users: Vec<(i16, Option<String>)> = response
                .entries
                .iter()
                .map(|e| {
                    assert_eq!(e.error_message.as_deref(), Some(NO_QUOTAS_MESSAGE));
                    (
                        e.error_code,
                        e.entity[0].entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let invalid = ResponseError::InvalidRequest.code();
            assert_eq!(
                users,
                vec![
                    (invalid, Some("alice".to_owned())),
                    (invalid, Some("bob".to_owned()))
                ]
            );
        }
    }
}
