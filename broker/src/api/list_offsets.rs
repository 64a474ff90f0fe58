//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local (-4,
//! v8+), latest tiered (-5, v9+), or the first offset whose timestamp is at least the one
//! asked for (any other timestamp, -6 and below too, as in Kafka 4.0); v4+ checks the client's leader epoch. Nothing is tiered here, so -4 is the log
//! start offset and -5 answers offset -1, as Kafka does without remote storage; v10's
//! `timeout_ms` bounds remote lookups, which this broker never makes.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use super::errors::log_error_i16;
use super::{leader_epoch, BrokerContext};
use crate::log::{LogError, PartitionLog};

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;
/// The first ListOffsets version that may ask for the max timestamp (KIP-734).
const MAX_TIMESTAMP_VERSION_MIN: i16 = 7;
/// The first ListOffsets version that may ask for the earliest local offset (KIP-405).
const EARLIEST_LOCAL_VERSION_MIN: i16 = 8;
/// The first ListOffsets version that may ask for the latest tiered offset (KIP-1005).
const LATEST_TIERED_VERSION_MIN: i16 = 9;
/// The current leader epoch meaning "no check" (Kafka's `ListOffsetsResponse.UNKNOWN_EPOCH`:
/// only this value, unlike Fetch, where any negative epoch is none).
const NO_LEADER_EPOCH: i32 = -1;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = header.request_api_version;
    let duplicates = duplicate_partitions(&request);
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name;
        for partition in topic.partitions {
            let named_twice = !duplicates.is_empty()
                && duplicates.contains(&(name.clone(), partition.partition_index));
            let answer = if named_twice {
                // Kafka answers each entry so; which one was meant is anyone's guess.
                unknown_offset(&partition, ResponseError::InvalidRequest.code())
            } else {
                list_partition(ctx, &name, &partition, version)
            };
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    response
}

/// Partitions named more than once in `request`, over all its topic entries (Kafka's
/// `ListOffsetsRequest.duplicatePartitions`).
fn duplicate_partitions(request: &ListOffsetsRequest) -> HashSet<(String, i32)> {
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let key = (topic.name.0.as_str(), partition.partition_index);
            if !seen.insert(key) {
                duplicates.insert((key.0.to_owned(), key.1));
            }
        }
    }
    duplicates
}

/// A partition answered with `error_code` and no offset or timestamp (-1), its leader
/// epoch unknown too (-1, the field's default, as Kafka's answers without an offset leave it).
fn unknown_offset(request: &ListOffsetsPartition, error_code: i16) -> ListOffsetsPartitionResponse {
    let mut response = ListOffsetsPartitionResponse::default();
    response.partition_index = request.partition_index;
    response.error_code = error_code;
    response.timestamp = -1;
    response.offset = -1;
    response
}

/// One partition's answer, its checks in Kafka's order (`ReplicaManager.fetchOffset`): the
/// query, the partition, the client's leader epoch, then the lookup.
fn list_partition(
    ctx: &BrokerContext,
    topic: &str,
    request: &ListOffsetsPartition,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let Some(query) = Query::of(request.timestamp, version) else {
        return unknown_offset(request, ResponseError::UnsupportedVersion.code());
    };
    let log = match ctx.logs.partition(topic, request.partition_index) {
        Ok(log) => log,
        Err(e) => return unknown_offset(request, log_error_i16(&e)),
    };
    let client_epoch =
        (request.current_leader_epoch != NO_LEADER_EPOCH).then_some(request.current_leader_epoch);
    if let Err(error) = leader_epoch::check(client_epoch) {
        return unknown_offset(request, error.code());
    }
    let error_code = match query.run(&log) {
        Ok(Some((offset, timestamp))) => {
            let mut response = unknown_offset(request, 0);
            response.offset = offset;
            response.timestamp = timestamp;
            // Leader epochs exist from v4; the encoder refuses a non-default value before.
            if version >= 4 {
                response.leader_epoch = leader_epoch::LEADER_EPOCH;
            }
            return response;
        }
        // No record at or after the timestamp (or nothing tiered): Kafka answers offset -1,
        // timestamp -1 and leader epoch -1.
        Ok(None) => 0,
        Err(e) => log_error_i16(&e),
    };
    unknown_offset(request, error_code)
}

/// What a ListOffsets timestamp asks for.
enum Query {
    Latest,
    Earliest,
    MaxTimestamp,
    /// The first offset still on local disk: the log start offset, as nothing is tiered.
    EarliestLocal,
    /// The last offset in remote storage: none, as nothing is tiered.
    LatestTiered,
    AtOrAfter(i64),
}

impl Query {
    /// `None` for a special timestamp sent below the version that brought it (Kafka 4.0's
    /// `ReplicaManager.timestampMinSupportedVersion`, KAFKA-17331, which checks only the
    /// timestamps it names).
    fn of(timestamp: i64, version: i16) -> Option<Query> {
        match timestamp {
            LATEST_TIMESTAMP => Some(Query::Latest),
            EARLIEST_TIMESTAMP => Some(Query::Earliest),
            MAX_TIMESTAMP if version < MAX_TIMESTAMP_VERSION_MIN => None,
            MAX_TIMESTAMP => Some(Query::MaxTimestamp),
            EARLIEST_LOCAL_TIMESTAMP if version < EARLIEST_LOCAL_VERSION_MIN => None,
            EARLIEST_LOCAL_TIMESTAMP => Some(Query::EarliestLocal),
            LATEST_TIERED_TIMESTAMP if version < LATEST_TIERED_VERSION_MIN => None,
            LATEST_TIERED_TIMESTAMP => Some(Query::LatestTiered),
            // Kafka 4.0 reserves only the values above; any other, negative too, is searched
            // for (`UnifiedLog.fetchOffsetByTimestamp`): below -5, the first record kept.
            t => Some(Query::AtOrAfter(t)),
        }
    }

    /// (offset, timestamp) in `log`, or `None` when no record is at or after the timestamp.
    fn run(&self, log: &PartitionLog) -> Result<Option<(i64, i64)>, LogError> {
        match *self {
            Query::Latest => Ok(Some((log.log_end_offset(), -1))),
            Query::Earliest | Query::EarliestLocal => Ok(Some((log.log_start_offset(), -1))),
            // Kafka's `UnifiedLog.fetchOffsetByTimestamp` without remote storage.
            Query::LatestTiered => Ok(None),
            Query::MaxTimestamp => {
                let found = log.max_timestamp_record()?;
                Ok(found.map(|f| (f.offset, f.timestamp)))
            }
            Query::AtOrAfter(timestamp_ms) => {
                let found = log.offset_for_timestamp(timestamp_ms)?;
                Ok(found.map(|f| (f.offset, f.timestamp)))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::messages::list_offsets_request::ListOffsetsTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::api::create_topics::fixture;

    /// (error code, offset, timestamp, leader epoch) for `timestamp` at `version`.
    fn ask(fixture: &fixture::Fixture, timestamp: i64, version: i16) -> (i16, i64, i64, i32) {
        let partition = ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(timestamp);
        let topic = ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition]);
        let request = ListOffsetsRequest::default().with_topics(vec![topic]);
        let response = handle(&fixture.ctx, &fixture::header(version), request);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp, p.leader_epoch)
    }

    /// Nothing is tiered: -4 (v8+) is the log start offset, -5 (v9+) offset -1 with leader
    /// epoch -1 (Kafka's `UnifiedLog.fetchOffsetByTimestamp` without remote storage); below
    /// those versions each is UNSUPPORTED_VERSION.
    #[test]
    fn earliest_local_and_latest_tiered_without_tiered_storage() {
        let fixture = fixture::broker();
        fixture::topic(&fixture, "t", 1);
        fixture::append(&fixture, "t", 0, 5);
        let log = fixture.ctx.logs.partition("t", 0).unwrap();
        log.delete_records_before(2).unwrap();
        let unsupported = ResponseError::UnsupportedVersion.code();
        for version in 1..=7 {
            assert_eq!(ask(&fixture, -4, version), (unsupported, -1, -1, -1));
        }
        for version in 1..=8 {
            assert_eq!(ask(&fixture, -5, version), (unsupported, -1, -1, -1));
        }
        for version in 8..=10 {
            let epoch = leader_epoch::LEADER_EPOCH;
            assert_eq!(ask(&fixture, -4, version), (0, 2, -1, epoch), "v{version}");
            assert_eq!(ask(&fixture, -2, version), (0, 2, -1, epoch), "v{version}");
        }
        for version in 9..=10 {
            assert_eq!(ask(&fixture, -5, version), (0, -1, -1, -1), "v{version}");
        }
    }

    /// Kafka 4.0 reserves -1 to -5 only (`ReplicaManager.timestampMinSupportedVersion`, checked
    /// for those alone); any lower timestamp is searched for like any other
    /// (`UnifiedLog.fetchOffsetByTimestamp`), which finds the first record kept, or none.
    #[test]
    fn timestamps_below_the_reserved_ones_find_the_first_record() {
        let fixture = fixture::broker();
        fixture::topic(&fixture, "t", 1);
        for version in [1, 7, 10] {
            assert_eq!(
                ask(&fixture, -6, version),
                (0, -1, -1, -1),
                "empty, v{version}"
            );
        }
        fixture::append(&fixture, "t", 0, 5);
        let log = fixture.ctx.logs.partition("t", 0).unwrap();
        log.delete_records_before(2).unwrap();
        // `fixture::append` stamps record i at 1_700_000_000_000 + i.
        let first_kept = (0, 2, 1_700_000_000_002, leader_epoch::LEADER_EPOCH);
        for timestamp in [-6, -1_000, i64::MIN] {
            for version in [4, 7, 10] {
                let asked = ask(&fixture, timestamp, version);
                assert_eq!(asked, first_kept, "{timestamp} at v{version}");
            }
        }
    }
}
