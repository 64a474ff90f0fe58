//! DescribeProducers (v0, KIP-664): per named partition, the idempotent producers the
//! broker tracks (`kafka-transactions.sh describe-producers`): producer id, epoch, last
//! sequence and last timestamp. There are no transactions here, so the coordinator epoch
//! and the open transaction's first offset are always -1, as Kafka shows a producer with no
//! transaction in progress.
//!
//! A partition not yet opened since the start is opened only when its segments hold bytes
//! (its producers must then be read from the log tail); see
//! [`crate::producers::ProducerRegistry::active_producers`].

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, RequestHeader,
};

use super::errors::log_error_i16;
use super::BrokerContext;
use crate::producers::ActiveProducer;

/// Kafka's "no coordinator epoch" and "no open transaction" (`-1`).
const NO_TRANSACTION: i64 = -1;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&partition| describe_partition(ctx, name, partition))
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn describe_partition(ctx: &BrokerContext, topic: &str, partition: i32) -> PartitionResponse {
    let answer = PartitionResponse::default().with_partition_index(partition);
    let log = match ctx.logs.partition_unopened(topic, partition) {
        Ok(log) => log,
        Err(e) => return answer.with_error_code(log_error_i16(&e)),
    };
    match ctx.producers.active_producers(&log) {
        Ok(producers) => answer.with_active_producers(producers.iter().map(state).collect()),
        Err(e) => answer.with_error_code(log_error_i16(&e)),
    }
}

fn state(producer: &ActiveProducer) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(producer.producer_id))
        .with_producer_epoch(i32::from(producer.epoch))
        .with_last_sequence(producer.last_seq)
        .with_last_timestamp(producer.last_timestamp_ms)
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(NO_TRANSACTION)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use runnel_protocol::batch::RecordBatch;

    use super::super::create_topics::fixture::{append, broker, header, topic, Fixture};
    use super::*;

    const UNKNOWN: i16 = kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code();

    /// One idempotent batch of `records` records from `producer_id` at `epoch`, its first
    /// sequence `first_seq`, its records stamped from `timestamp_ms` on.
    fn idempotent_batch(
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        records: i32,
        timestamp_ms: i64,
    ) -> RecordBatch {
        let records: Vec<Record> = (0..records)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: first_seq + i,
                timestamp: timestamp_ms + i64::from(i),
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
        RecordBatch::parse(buf.freeze()).unwrap()
    }

    fn produce(fixture: &Fixture, name: &str, partition: i32, batch: RecordBatch) {
        let log: Arc<_> = fixture.ctx.logs.partition(name, partition).unwrap();
        fixture.ctx.producers.append(&log, &[batch]).unwrap();
    }

    fn request(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
        DescribeProducersRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    TopicRequest::default()
                        .with_name(TopicName(StrBytes::from_string((*name).to_owned())))
                        .with_partition_indexes(partitions.to_vec())
                })
                .collect(),
        )
    }

    /// (topic, partition, error code, [(producer id, epoch, last sequence, last timestamp)]).
    type Described = Vec<(String, i32, i16, Vec<(i64, i32, i32, i64)>)>;

    fn described(response: &DescribeProducersResponse) -> Described {
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    for s in &p.active_producers {
                        assert_eq!((s.coordinator_epoch, s.current_txn_start_offset), (-1, -1));
                    }
                    let producers = p
                        .active_producers
                        .iter()
                        .map(|s| {
                            (
                                s.producer_id.0,
                                s.producer_epoch,
                                s.last_sequence,
                                s.last_timestamp,
                            )
                        })
                        .collect();
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.error_code,
                        producers,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn each_partition_lists_its_idempotent_producers_and_unknown_ones_are_unknown() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        produce(&fixture, "t", 0, idempotent_batch(5, 0, 0, 3, 1_000));
        produce(&fixture, "t", 0, idempotent_batch(5, 0, 3, 2, 2_000));
        produce(&fixture, "t", 0, idempotent_batch(4, 2, 0, 1, 3_000));
        // Batches without a producer id are not a producer's.
        append(&fixture, "t", 1, 2);
        let response = handle(
            &fixture.ctx,
            &header(0),
            request(&[("t", &[0, 1, 2, -1]), ("missing", &[0])]),
        );
        assert_eq!(
            described(&response),
            vec![
                (
                    "t".to_owned(),
                    0,
                    0,
                    vec![(4, 2, 0, 3_000), (5, 0, 4, 2_001)]
                ),
                ("t".to_owned(), 1, 0, vec![]),
                ("t".to_owned(), 2, UNKNOWN, vec![]),
                ("t".to_owned(), -1, UNKNOWN, vec![]),
                ("missing".to_owned(), 0, UNKNOWN, vec![]),
            ]
        );
    }

    /// The registry's sweep drops, from every loaded partition, the producers idle for
    /// `producer.id.expiration.ms` (1 day by default), and only those; an expired producer
    /// may then continue at any sequence.
    #[test]
    fn the_expiration_sweep_forgets_idle_producers_in_every_partition() {
        const DAY_MS: i64 = 86_400_000;
        let fixture = broker();
        topic(&fixture, "t", 2);
        produce(&fixture, "t", 0, idempotent_batch(5, 0, 0, 1, 1_000));
        produce(&fixture, "t", 0, idempotent_batch(6, 0, 0, 1, 2_000));
        produce(&fixture, "t", 1, idempotent_batch(7, 0, 0, 1, 1_000));
        let producers = &fixture.ctx.producers;
        assert_eq!(producers.remove_expired_producers(1_000 + DAY_MS - 1), 0);
        assert_eq!(producers.remove_expired_producers(1_000 + DAY_MS), 2);
        let response = handle(&fixture.ctx, &header(0), request(&[("t", &[0, 1])]));
        assert_eq!(
            described(&response),
            vec![
                ("t".to_owned(), 0, 0, vec![(6, 0, 0, 2_000)]),
                ("t".to_owned(), 1, 0, vec![]),
            ]
        );
        // Producer 5 is unknown: sequence 9 starts it again; producer 6 still needs 1.
        produce(&fixture, "t", 0, idempotent_batch(5, 0, 9, 1, 3_000));
        let log = fixture.ctx.logs.partition("t", 0).unwrap();
        let gap = idempotent_batch(6, 0, 9, 1, 3_000);
        assert!(fixture.ctx.producers.append(&log, &[gap]).is_err());
    }

    /// The sweep reads `producer.id.expiration.ms` as it is at each pass: set dynamically
    /// (KIP-854), it applies to the next pass with no restart, and deleting it restores the
    /// static value.
    #[test]
    fn the_sweep_applies_a_dynamic_expiration_at_once() {
        use crate::log::{BrokerScope, LogError, PRODUCER_ID_EXPIRATION_MS};
        let fixture = broker();
        topic(&fixture, "t", 1);
        produce(&fixture, "t", 0, idempotent_batch(5, 0, 0, 1, 1_000));
        produce(&fixture, "t", 0, idempotent_batch(6, 0, 0, 1, 8_000));
        let (logs, producers) = (&fixture.ctx.logs, &fixture.ctx.producers);
        let set_expiration = |value: Option<&str>| {
            let set = value.map(|v| (PRODUCER_ID_EXPIRATION_MS.to_owned(), v.to_owned()));
            let edit = |_: &_| Ok::<_, LogError>(set.into_iter().collect());
            logs.edit_broker_overrides(BrokerScope::Cluster, false, edit)
                .unwrap();
        };
        assert_eq!(producers.remove_expired_producers(10_000), 0);
        set_expiration(Some("5000"));
        assert_eq!(producers.expiration_ms(), 5_000);
        assert_eq!(producers.remove_expired_producers(10_000), 1);
        set_expiration(None);
        assert_eq!(producers.remove_expired_producers(12_999), 0);
        set_expiration(Some("5000"));
        assert_eq!(producers.remove_expired_producers(12_999), 0);
        assert_eq!(producers.remove_expired_producers(13_000), 1);
    }

    #[test]
    fn a_bumped_epoch_shows_the_new_epoch_and_its_sequence() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        produce(&fixture, "t", 0, idempotent_batch(9, 0, 0, 5, 1_000));
        produce(&fixture, "t", 0, idempotent_batch(9, 1, 0, 2, 5_000));
        let response = handle(&fixture.ctx, &header(0), request(&[("t", &[0])]));
        assert_eq!(
            described(&response),
            vec![("t".to_owned(), 0, 0, vec![(9, 1, 1, 5_001)])]
        );
    }

    #[test]
    fn a_log_append_time_topic_shows_the_append_time() {
        let fixture = broker();
        let overrides = [(
            "message.timestamp.type".to_owned(),
            "LogAppendTime".to_owned(),
        )]
        .into_iter()
        .collect();
        fixture
            .ctx
            .logs
            .create_topic("stamped", 1, overrides, false)
            .unwrap();
        let before_ms = now_ms();
        produce(&fixture, "stamped", 0, idempotent_batch(3, 0, 0, 2, 1_000));
        let response = handle(&fixture.ctx, &header(0), request(&[("stamped", &[0])]));
        let described = described(&response);
        let (_, _, code, producers) = &described[0];
        assert_eq!((*code, producers.len()), (0, 1));
        let (id, epoch, last_seq, last_timestamp_ms) = producers[0];
        assert_eq!((id, epoch, last_seq), (3, 0, 1));
        assert!(
            last_timestamp_ms >= before_ms,
            "{last_timestamp_ms} < {before_ms}"
        );
    }

    fn now_ms() -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(now.as_millis()).unwrap()
    }

    #[test]
    fn an_empty_partition_not_yet_opened_stays_closed() {
        let fixture = broker();
        topic(&fixture, "t", 1);
        let log = fixture.ctx.logs.partition_unopened("t", 0).unwrap();
        assert!(!log.is_loaded());
        let response = handle(&fixture.ctx, &header(0), request(&[("t", &[0])]));
        assert_eq!(described(&response), vec![("t".to_owned(), 0, 0, vec![])]);
        assert!(!log.is_loaded(), "describing an empty partition opened it");
    }
}
