//! The versions of each API this client can build and read, and the negotiation rule:
//! the highest version inside both the client's range and the broker's.

use kafka_protocol::messages::ApiKey;

/// (API, lowest, highest) version the client's request builders are written for.
/// FindCoordinator stays below v4 (batched keys) on purpose. Fetch goes to v17, but a
/// request naming a topic whose id is unknown goes at v12 (see `consumer::fetch_session`).
const CLIENT_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 1, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::InitProducerId, 0, 4),
];

/// The version to use for `api` given the broker's advertised `(min, max)`, or `None`
/// when the ranges do not overlap (or the broker does not offer the API).
pub fn negotiate(api: ApiKey, broker: Option<(i16, i16)>) -> Option<i16> {
    let (_, client_min, client_max) = CLIENT_APIS.iter().find(|(key, _, _)| *key == api)?;
    let (broker_min, broker_max) = broker?;
    let version = (*client_max).min(broker_max);
    (version >= (*client_min).max(broker_min)).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(negotiate(ApiKey::Fetch, Some((0, 18))), Some(17));
        assert_eq!(negotiate(ApiKey::Fetch, Some((4, 8))), Some(8));
        assert_eq!(negotiate(ApiKey::Produce, Some((0, 2))), None);
        assert_eq!(negotiate(ApiKey::Produce, None), None);
    }

    #[test]
    fn every_range_is_inside_the_message_crate() {
        for (api, min, max) in CLIENT_APIS {
            assert!(min <= max, "{api:?}");
            let range = api.valid_versions();
            assert!(range.min <= *min && *max <= range.max, "{api:?}");
        }
    }
}
