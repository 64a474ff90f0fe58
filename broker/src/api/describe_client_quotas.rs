//! DescribeClientQuotas (v0–1): `kafka-configs.sh --describe --entity-type users/clients`
//! and admin UIs' quota pages. Runnel enforces no quotas, so none is ever configured and a
//! valid filter matches nothing: an empty list. The filter is checked as Kafka checks it,
//! so a tool's malformed filter fails here as it would against Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    DescribeClientQuotasRequest, DescribeClientQuotasResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

/// The entity types a quota can be set for (Kafka's `ClientQuotaEntity`).
const ENTITY_USER: &str = "user";
const ENTITY_CLIENT_ID: &str = "client-id";
const ENTITY_IP: &str = "ip";

/// Filter match types: a named entity, the default entity, any entity with a quota.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    match check_filter(&request.components) {
        Ok(()) => DescribeClientQuotasResponse::default()
            .with_error_code(0)
            .with_error_message(None)
            .with_entries(Some(Vec::new())),
        // Kafka answers a refused filter with no entries at all (null), not an empty list.
        Err((error, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_entries(None),
    }
}

/// The filter's components, checked in Kafka's order: each entity type named once and
/// known, each match type with (exact) or without (default, specified) a match string, and
/// no IP component beside a user or client-id one.
fn check_filter(components: &[ComponentData]) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| Err((ResponseError::InvalidRequest, message));
    let mut seen: Vec<&str> = Vec::with_capacity(components.len());
    for component in components {
        let entity_type = component.entity_type.as_str();
        if entity_type.is_empty() {
            return invalid("a filter component has an empty entity type".to_owned());
        }
        if seen.contains(&entity_type) {
            return invalid(format!("entity type {entity_type} is in the filter twice"));
        }
        if ![ENTITY_USER, ENTITY_CLIENT_ID, ENTITY_IP].contains(&entity_type) {
            // Kafka's answer to an entity type it does not know.
            return Err((
                ResponseError::UnsupportedVersion,
                format!("entity type {entity_type} is not supported"),
            ));
        }
        let has_match = component._match.is_some();
        match component.match_type {
            MATCH_EXACT if !has_match => {
                return invalid(format!("exact match on {entity_type} without a name"));
            }
            MATCH_DEFAULT | MATCH_SPECIFIED if has_match => {
                return invalid(format!(
                    "match type {} on {entity_type} takes no name",
                    component.match_type
                ));
            }
            MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED => {}
            other => return invalid(format!("unknown match type {other}")),
        }
        seen.push(entity_type);
    }
    if seen.contains(&ENTITY_IP)
        && (seen.contains(&ENTITY_USER) || seen.contains(&ENTITY_CLIENT_ID))
    {
        return invalid("an ip filter cannot be combined with user or client-id".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(StrBytes::from_string(entity_type.to_owned()))
            .with_match_type(match_type)
            .with_match(name.map(|n| StrBytes::from_string(n.to_owned())))
    }

    fn describe(components: Vec<ComponentData>) -> DescribeClientQuotasResponse {
        let fixture = broker();
        let request = DescribeClientQuotasRequest::default().with_components(components);
        handle(&fixture.ctx, &header(1), request)
    }

    #[test]
    fn valid_filters_match_no_quotas() {
        for components in [
            vec![],
            vec![component(ENTITY_USER, MATCH_SPECIFIED, None)],
            vec![
                component(ENTITY_USER, MATCH_EXACT, Some("alice")),
                component(ENTITY_CLIENT_ID, MATCH_DEFAULT, None),
            ],
            vec![component(ENTITY_IP, MATCH_EXACT, Some("10.0.0.1"))],
        ] {
            let response = describe(components);
            assert_eq!(response.error_code, 0);
            assert_eq!(response.entries, Some(Vec::new()));
        }
    }

    #[test]
    fn malformed_filters_are_refused_as_kafka_refuses_them() {
        let invalid = ResponseError::InvalidRequest.code();
        for (components, code) in [
            (vec![component("", MATCH_SPECIFIED, None)], invalid),
            (
                vec![
                    component(ENTITY_USER, MATCH_SPECIFIED, None),
                    component(ENTITY_USER, MATCH_DEFAULT, None),
                ],
                invalid,
            ),
            (
                vec![component("group", MATCH_SPECIFIED, None)],
                ResponseError::UnsupportedVersion.code(),
            ),
            (vec![component(ENTITY_USER, MATCH_EXACT, None)], invalid),
            (
                vec![component(ENTITY_USER, MATCH_DEFAULT, Some("a"))],
                invalid,
            ),
            (
                vec![component(ENTITY_USER, MATCH_SPECIFIED, Some("a"))],
                invalid,
            ),
            (vec![component(ENTITY_USER, 3, None)], invalid),
            (
                vec![
                    component(ENTITY_IP, MATCH_SPECIFIED, None),
                    component(ENTITY_CLIENT_ID, MATCH_SPECIFIED, None),
                ],
                invalid,
            ),
        ] {
            let response = describe(components.clone());
            assert_eq!(response.error_code, code, "{components:?}");
            assert!(response.error_message.is_some());
            assert_eq!(response.entries, None);
        }
    }
}
