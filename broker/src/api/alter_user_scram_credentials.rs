//! AlterUserScramCredentials (v0): `kafka-configs.sh --alter --add-config SCRAM-SHA-256=…`.
//! Runnel has no SASL authentication, so it refuses to store credentials nothing would
//! check. Each user gets one result, with Kafka's codes where Kafka's answer is already
//! right for a broker without SCRAM users: the same (user, mechanism) twice is
//! DUPLICATE_RESOURCE; deleting a credential finds none, RESOURCE_NOT_FOUND; adding one is
//! UNSUPPORTED_SASL_MECHANISM, Kafka's answer for a mechanism the broker does not offer
//! (Runnel offers none).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;

/// What a refused upsertion says.
pub const NO_SASL_MESSAGE: &str =
    "Runnel has no SASL authentication: SCRAM credentials cannot be stored";

/// What one user's operations in the request add up to.
struct UserOps<'a> {
    name: &'a StrBytes,
    mechanisms: Vec<i8>,
    repeated: bool,
    upserts: bool,
}

pub fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions = request
        .deletions
        .iter()
        .map(|d| (&d.name, d.mechanism, false));
    let upsertions = request
        .upsertions
        .iter()
        .map(|u| (&u.name, u.mechanism, true));
    let mut users: Vec<UserOps<'_>> = Vec::new();
    for (name, mechanism, upsert) in deletions.chain(upsertions) {
        let index = match users.iter().position(|u| u.name == name) {
            Some(index) => index,
            None => {
                users.push(UserOps {
                    name,
                    mechanisms: Vec::new(),
                    repeated: false,
                    upserts: false,
                });
                users.len() - 1
            }
        };
        let user = &mut users[index];
        user.repeated |= user.mechanisms.contains(&mechanism);
        user.mechanisms.push(mechanism);
        user.upserts |= upsert;
    }
    let results = users.iter().map(result).collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn result(user: &UserOps<'_>) -> AlterUserScramCredentialsResult {
    let name = user.name;
    let (error, message) = if user.repeated {
        (
            ResponseError::DuplicateResource,
            format!("a credential of user {name} is altered twice in the request"),
        )
    } else if user.upserts {
        (
            ResponseError::UnsupportedSaslMechanism,
            NO_SASL_MESSAGE.to_owned(),
        )
    } else {
        (
            ResponseError::ResourceNotFound,
            format!("user {name} has no SCRAM credentials to delete: Runnel has no SASL users"),
        )
    };
    AlterUserScramCredentialsResult::default()
        .with_user(name.clone())
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };

    use super::super::create_topics::fixture::{broker, header};
    use super::*;

    /// SCRAM-SHA-256 and SCRAM-SHA-512 as the request numbers them.
    const SHA_256: i8 = 1;
    const SHA_512: i8 = 2;

    fn name(user: &str) -> StrBytes {
        StrBytes::from_string(user.to_owned())
    }

    fn upsert(user: &str, mechanism: i8) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(name(user))
            .with_mechanism(mechanism)
            .with_iterations(8192)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from_static(b"salted"))
    }

    fn delete(user: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(name(user))
            .with_mechanism(mechanism)
    }

    #[test]
    fn each_user_is_refused_once_with_kafkas_code_for_its_operations() {
        let fixture = broker();
        let request = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![delete("gone", SHA_256), delete("both", SHA_256)])
            .with_upsertions(vec![
                upsert("alice", SHA_256),
                upsert("alice", SHA_512),
                upsert("both", SHA_512),
                upsert("twice", SHA_256),
                upsert("twice", SHA_256),
            ]);
        let response = handle(&fixture.ctx, &header(0), request);
        let got: Vec<(String, i16)> = response
            .results
            .iter()
            .map(|r| {
                assert!(r.error_message.is_some());
                (r.user.to_string(), r.error_code)
            })
            .collect();
        let no_sasl = ResponseError::UnsupportedSaslMechanism.code();
        assert_eq!(
            got,
            vec![
                ("gone".to_owned(), ResponseError::ResourceNotFound.code()),
                ("both".to_owned(), no_sasl),
                ("alice".to_owned(), no_sasl),
                ("twice".to_owned(), ResponseError::DuplicateResource.code()),
            ]
        );
    }
}
