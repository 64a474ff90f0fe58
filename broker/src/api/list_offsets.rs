//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset whose
//! timestamp is at least the one asked for; v4+ checks the client's leader epoch.

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
/// The first ListOffsets version that may ask for the max timestamp (KIP-734).
const MAX_TIMESTAMP_VERSION_MIN: i16 = 7;
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
        // No record at or after the timestamp: Kafka answers offset -1, timestamp -1.
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
    AtOrAfter(i64),
}

impl Query {
    /// `None` for a special timestamp this broker does not know (e.g. -4 earliest-local, -5
    /// tiered), or one sent below the version that brought it (Kafka, KAFKA-17331).
    fn of(timestamp: i64, version: i16) -> Option<Query> {
        match timestamp {
            LATEST_TIMESTAMP => Some(Query::Latest),
            EARLIEST_TIMESTAMP => Some(Query::Earliest),
            MAX_TIMESTAMP if version < MAX_TIMESTAMP_VERSION_MIN => None,
            MAX_TIMESTAMP => Some(Query::MaxTimestamp),
            t if t >= 0 => Some(Query::AtOrAfter(t)),
            _ => None,
        }
    }

    /// (offset, timestamp) in `log`, or `None` when no record is at or after the timestamp.
    fn run(&self, log: &PartitionLog) -> Result<Option<(i64, i64)>, LogError> {
        match *self {
            Query::Latest => Ok(Some((log.log_end_offset(), -1))),
            Query::Earliest => Ok(Some((log.log_start_offset(), -1))),
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
