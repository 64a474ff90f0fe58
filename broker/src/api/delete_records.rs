//! DeleteRecords (v0–2): moves partitions' log start offsets forward.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::errors::log_error_i16;
use super::BrokerContext;
use crate::log::LogError;

/// The request's "up to the high watermark" offset.
const OFFSET_HIGH_WATERMARK: i64 = -1;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let _ = header;
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index);
                    match delete_before(ctx, name, partition) {
                        Ok(low_watermark) => {
                            result.with_low_watermark(low_watermark).with_error_code(0)
                        }
                        Err(code) => result.with_low_watermark(-1).with_error_code(code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Deletes one partition's records below the requested offset; the new low watermark, or
/// the error code.
fn delete_before(
    ctx: &BrokerContext,
    topic: &str,
    request: &DeleteRecordsPartition,
) -> Result<i64, i16> {
    let log = ctx
        .logs
        .partition(topic, request.partition_index)
        .map_err(|e| log_error_i16(&e))?;
    let high_watermark = log.high_watermark();
    let offset = match request.offset {
        OFFSET_HIGH_WATERMARK => high_watermark,
        offset if (0..=high_watermark).contains(&offset) => offset,
        _ => return Err(ResponseError::OffsetOutOfRange.code()),
    };
    log.delete_records_before(offset)
        .map_err(|error: LogError| log_error_i16(&error))
}
