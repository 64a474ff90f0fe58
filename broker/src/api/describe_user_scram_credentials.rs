//! DescribeUserScramCredentials (v0): `kafka-configs.sh --describe --entity-type users` and
//! admin UIs' user pages. Runnel has no SASL and so no SCRAM users: asking for all users
//! gets an empty list; each named user gets RESOURCE_NOT_FOUND, and a user named twice
//! DUPLICATE_RESOURCE (once), as Kafka answers for users without credentials.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // A null or empty list means every user: there are none.
    let asked = request.users.unwrap_or_default();
    // Each distinct name once, in the order first asked, with whether it was asked again.
    let mut users: Vec<(&StrBytes, bool)> = Vec::with_capacity(asked.len());
    for user in &asked {
        match users.iter_mut().find(|(name, _)| **name == user.name) {
            Some((_, repeated)) => *repeated = true,
            None => users.push((&user.name, false)),
        }
    }
    let results = users
        .into_iter()
        .map(|(name, repeated)| {
            let (error, message) = if repeated {
                (
                    ResponseError::DuplicateResource,
                    format!("user {name} is named more than once in the request"),
                )
            } else {
                (
                    ResponseError::ResourceNotFound,
                    format!("user {name} has no SCRAM credentials: Runnel has no SASL users"),
                )
            };
            DescribeUserScramCredentialsResult::default()
                .with_user(name.clone())
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        })
        .collect();
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(0)
        .with_error_message(None)
        .with_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    fn describe(users: Option<&[&str]>) -> Vec<(String, i16)> {
        let fixture = broker();
        let users = users.map(|names| {
            names
                .iter()
                .map(|n| UserName::default().with_name(StrBytes::from_string((*n).to_owned())))
                .collect()
        });
        let request = DescribeUserScramCredentialsRequest::default().with_users(users);
        let response = handle(&fixture.ctx, &header(0), request);
        assert_eq!(response.error_code, 0);
        response
            .results
            .iter()
            .map(|r| {
                assert!(r.credential_infos.is_empty());
                (r.user.to_string(), r.error_code)
            })
            .collect()
    }

    #[test]
    fn all_users_is_no_users() {
        assert!(describe(None).is_empty());
        assert!(describe(Some(&[])).is_empty());
    }

    #[test]
    fn named_users_are_not_found_and_repeated_ones_duplicate() {
        let not_found = ResponseError::ResourceNotFound.code();
        let duplicate = ResponseError::DuplicateResource.code();
        assert_eq!(
            describe(Some(&["alice", "bob", "alice"])),
            vec![
                ("alice".to_owned(), duplicate),
                ("bob".to_owned(), not_found)
            ]
        );
    }
}
