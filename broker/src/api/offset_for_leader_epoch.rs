//! OffsetForLeaderEpoch (v2–4): where a leader epoch ends, which consumers ask to check a
//! position after a leader change (KIP-320) and after reading a committed offset that
//! carries an epoch.
//!
//! Every partition has had one epoch, [`LEADER_EPOCH`], since it was created, so Kafka's
//! lookup (`LeaderEpochFileCache.endOffsetFor`) comes down to: the current epoch ends at
//! the log end offset; an epoch above it, and the undefined epoch (-1), are unknown (-1,
//! -1); an epoch below it (none ever existed) is answered with the first offset of the
//! next epoch there is — the current one, which starts at the log start offset. The
//! client's current leader epoch is checked first, as in Fetch.

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};

use super::errors::log_error_i16;
use super::leader_epoch::{self, LEADER_EPOCH};
use super::BrokerContext;

/// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// The current leader epoch meaning "no check".
const NO_CHECK_EPOCH: i32 = -1;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| end_offset(ctx, topic.topic.0.as_str(), p))
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// One partition's answer, checks in Kafka's order: the partition, the client's current
/// leader epoch (-1 asks for no check: Kafka's `NO_PARTITION_LEADER_EPOCH`), then the
/// lookup.
fn end_offset(
    ctx: &BrokerContext,
    topic: &str,
    request: &OffsetForLeaderPartition,
) -> EpochEndOffset {
    let answer = |error_code: i16, epoch: i32, offset: i64| {
        EpochEndOffset::default()
            .with_partition(request.partition)
            .with_error_code(error_code)
            .with_leader_epoch(epoch)
            .with_end_offset(offset)
    };
    let log = match ctx.logs.partition(topic, request.partition) {
        Ok(log) => log,
        Err(e) => return answer(log_error_i16(&e), UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
    };
    let client_epoch =
        (request.current_leader_epoch != NO_CHECK_EPOCH).then_some(request.current_leader_epoch);
    if let Err(error) = leader_epoch::check(client_epoch) {
        return answer(error.code(), UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
    }
    let ok = 0;
    match request.leader_epoch {
        LEADER_EPOCH => answer(ok, LEADER_EPOCH, log.log_end_offset()),
        UNDEFINED_EPOCH => answer(ok, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
        epoch if epoch > LEADER_EPOCH => answer(ok, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
        epoch => answer(ok, epoch, log.log_start_offset()),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{append, broker, header, topic};
    use super::*;

    fn ask(
        ctx: &BrokerContext,
        name: &str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> (i16, i32, i64) {
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_leader_epoch(leader_epoch)]),
        ]);
        let response = handle(ctx, &header(4), request);
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.partition, partition);
        (p.error_code, p.leader_epoch, p.end_offset)
    }

    #[test]
    fn the_current_epoch_ends_at_the_log_end() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        append(&fixture, "t", 0, 4);
        assert_eq!(ask(&fixture.ctx, "t", 0, -1, 0), (0, 0, 4));
        assert_eq!(ask(&fixture.ctx, "t", 0, 0, 0), (0, 0, 4));
    }

    #[test]
    fn later_and_undefined_epochs_are_unknown_earlier_ones_start_at_the_log_start() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        append(&fixture, "t", 0, 2);
        assert_eq!(ask(&fixture.ctx, "t", 0, -1, 3), (0, -1, -1));
        assert_eq!(ask(&fixture.ctx, "t", 0, -1, -1), (0, -1, -1));
        assert_eq!(ask(&fixture.ctx, "t", 0, -1, -7), (0, -7, 0));
    }

    #[test]
    fn unknown_partitions_and_stale_or_future_current_epochs_are_errors() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(ask(&fixture.ctx, "t", 5, -1, 0), (unknown, -1, -1));
        assert_eq!(ask(&fixture.ctx, "nope", 0, -1, 0), (unknown, -1, -1));
        let future = ResponseError::UnknownLeaderEpoch.code();
        assert_eq!(ask(&fixture.ctx, "t", 0, 1, 0), (future, -1, -1));
        let stale = ResponseError::FencedLeaderEpoch.code();
        assert_eq!(ask(&fixture.ctx, "t", 0, -2, 0), (stale, -1, -1));
    }
}
