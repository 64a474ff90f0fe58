//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset whose
//! timestamp is at least the one asked for.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use super::errors::log_error_i16;
use super::BrokerContext;
use crate::log::{LogError, PartitionLog};

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name;
        for partition in topic.partitions {
            let mut answer = list_partition(ctx, &name, &partition);
            // Leader epochs exist from v4; the encoder refuses a non-default value before.
            if header.request_api_version >= 4 {
                answer.leader_epoch = 0;
            }
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    response
}

fn list_partition(
    ctx: &BrokerContext,
    topic: &str,
    request: &ListOffsetsPartition,
) -> ListOffsetsPartitionResponse {
    let mut response = ListOffsetsPartitionResponse::default();
    response.partition_index = request.partition_index;
    response.timestamp = -1;
    response.offset = -1;
    let found = ctx
        .logs
        .partition(topic, request.partition_index)
        .map_err(LookupError::from)
        .and_then(|log| lookup(&log, request.timestamp));
    match found {
        Ok(Some((offset, timestamp))) => {
            response.offset = offset;
            response.timestamp = timestamp;
        }
        // No record at or after the timestamp: Kafka answers offset -1, timestamp -1.
        Ok(None) => {}
        Err(LookupError::Log(e)) => response.error_code = log_error_i16(&e),
        Err(LookupError::Unsupported) => {
            response.error_code = ResponseError::UnsupportedVersion.code();
        }
    }
    response
}

enum LookupError {
    Log(LogError),
    /// A special timestamp this broker does not know (e.g. -4 earliest-local, -5 tiered).
    Unsupported,
}

impl From<LogError> for LookupError {
    fn from(e: LogError) -> Self {
        LookupError::Log(e)
    }
}

/// (offset, timestamp) for a ListOffsets timestamp query.
fn lookup(log: &PartitionLog, timestamp: i64) -> Result<Option<(i64, i64)>, LookupError> {
    match timestamp {
        LATEST_TIMESTAMP => Ok(Some((log.log_end_offset(), -1))),
        EARLIEST_TIMESTAMP => Ok(Some((log.log_start_offset(), -1))),
        MAX_TIMESTAMP => {
            let found = log.max_timestamp_record()?;
            Ok(found.map(|f| (f.offset, f.timestamp)))
        }
        t if t >= 0 => {
            let found = log.offset_for_timestamp(t)?;
            Ok(found.map(|f| (f.offset, f.timestamp)))
        }
        _ => Err(LookupError::Unsupported),
    }
}
