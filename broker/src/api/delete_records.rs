//! DeleteRecords (v0–2): moves partitions' log start offsets forward.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::create_topics::Refusal;
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
    Refusal::unless_client_may("delete records of", topic).map_err(|refusal| refusal.code)?;
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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_records_request::DeleteRecordsTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use proptest::prelude::*;

    use super::super::create_topics::fixture::{append, broker, header, topic, Fixture};
    use super::*;

    fn delete(fixture: &Fixture, name: &str, partitions: &[(i32, i64)]) -> Vec<(i64, i16)> {
        let partitions = partitions
            .iter()
            .map(|(index, offset)| {
                DeleteRecordsPartition::default()
                    .with_partition_index(*index)
                    .with_offset(*offset)
            })
            .collect();
        let topic = DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
            .with_partitions(partitions);
        let request = DeleteRecordsRequest::default().with_topics(vec![topic]);
        let mut response = handle(&fixture.ctx, &header(2), request);
        assert_eq!(response.topics.len(), 1);
        let topic = response.topics.remove(0);
        assert_eq!(topic.name.0.as_str(), name);
        topic
            .partitions
            .iter()
            .map(|p| (p.low_watermark, p.error_code))
            .collect()
    }

    #[test]
    fn moves_the_log_start_offset() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        append(&fixture, "t", 0, 10);
        append(&fixture, "t", 1, 4);
        assert_eq!(
            delete(&fixture, "t", &[(0, 6), (1, OFFSET_HIGH_WATERMARK)]),
            vec![(6, 0), (4, 0)]
        );
        let log = fixture.ctx.logs.partition("t", 0).unwrap();
        assert_eq!(log.log_start_offset(), 6);
        let below = log
            .read(5, 1 << 20)
            .map(|_| ())
            .map_err(|e| log_error_i16(&e));
        assert_eq!(below, Err(ResponseError::OffsetOutOfRange.code()));
        assert_eq!(
            fixture
                .ctx
                .logs
                .partition("t", 1)
                .unwrap()
                .log_start_offset(),
            4
        );
    }

    #[test]
    fn offsets_outside_the_log_are_out_of_range() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        append(&fixture, "t", 0, 3);
        let out_of_range = ResponseError::OffsetOutOfRange.code();
        let results = delete(
            &fixture,
            "t",
            &[(0, 4), (0, -2), (0, i64::MIN), (0, i64::MAX)],
        );
        assert_eq!(results, vec![(-1, out_of_range); 4]);
        assert_eq!(
            fixture
                .ctx
                .logs
                .partition("t", 0)
                .unwrap()
                .log_start_offset(),
            0
        );
    }

    #[test]
    fn unknown_topics_and_partitions() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            delete(&fixture, "t", &[(1, 0), (-1, 0)]),
            vec![(-1, unknown); 2]
        );
        assert_eq!(delete(&fixture, "missing", &[(0, 0)]), vec![(-1, unknown)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of deletes: success exactly for a known partition and an offset in
        /// [0, high watermark] (or -1), and the log start offset never moves backwards.
        #[test]
        fn log_start_only_moves_forward(
            requests in proptest::collection::vec(
                (-1i32..3, prop_oneof![-3i64..8, any::<i64>()]),
                1..8,
            ),
        ) {
            let fixture = broker();
            topic(&fixture, "t", 2);
            append(&fixture, "t", 0, 5);
            let mut starts = [0i64, 0];
            for (partition, offset) in requests {
                let (low_watermark, code) = delete(&fixture, "t", &[(partition, offset)])[0];
                let Some(start) = usize::try_from(partition).ok().and_then(|p| starts.get_mut(p))
                else {
                    prop_assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
                    continue;
                };
                let high_watermark = if partition == 0 { 5 } else { 0 };
                let valid = offset == -1 || (0..=high_watermark).contains(&offset);
                prop_assert_eq!(code == 0, valid);
                if valid {
                    prop_assert!(low_watermark >= *start);
                    *start = low_watermark;
                }
            }
        }
    }
}
