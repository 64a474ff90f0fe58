//! Unit tests of the produce handler over whole requests: answers grouped by topic,
//! partitions named twice, acks, the coordinators' internal topic, the append pool and
//! acks=all writeback.

use runnel_protocol::batch::RawBatchFields;

use super::test_fixture::{batch_of, compressed_keyed, raw, NOW_MS};
use super::*;
use crate::api::Answer;

/// A produce request of `(topic, partition, records)` entries, one topic entry each.
fn produce_request(acks: i16, entries: Vec<(&str, i32, Bytes)>) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::TopicProduceData;
    use kafka_protocol::messages::TopicName;
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 30_000;
    for (topic, partition, records) in entries {
        let mut data = PartitionProduceData::default();
        data.index = partition;
        data.records = Some(records);
        let mut topic_data = TopicProduceData::default();
        topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
        topic_data.partition_data.push(data);
        request.topic_data.push(topic_data);
    }
    request
}

fn produced(completion: Completion) -> Vec<(String, i32, i16, i64)> {
    let Completion::Ready(Answer {
        body: ResponseKind::Produce(response),
        ..
    }) = completion
    else {
        panic!("an acks=1 produce answers at once");
    };
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (t.name.0.to_string(), p.index, p.error_code, p.base_offset))
        })
        .collect()
}

#[test]
fn a_large_request_is_appended_across_partitions_in_parallel_and_answered_per_topic() {
    let fixture = crate::api::create_topics::fixture::broker();
    crate::api::create_topics::fixture::topic(&fixture, "p", 4);
    crate::api::create_topics::fixture::topic(&fixture, "q", 1);
    let big = || batch_of(64, 1000); // 64 KiB a partition: the request is worth the pool
    let entries = vec![
        ("p", 3, big()),
        ("q", 0, big()),
        ("p", 0, big()),
        ("missing", 0, big()),
        ("p", 1, Bytes::from_static(b"not a batch")),
        ("p", 2, big()),
    ];
    let header = crate::api::create_topics::fixture::header(9);
    let twice = |entries: Vec<(&str, i32, Bytes)>| {
        let request = produce_request(1, entries);
        produced(handle(&fixture.ctx, &header, request))
    };
    let first = twice(entries.clone());
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let invalid = ResponseError::InvalidRecord.code();
    // One answer entry per topic (Kafka's `ProduceResponse` groups by topic), topics and
    // their partitions in the order first named.
    assert_eq!(
        first,
        vec![
            ("p".to_owned(), 3, 0, 0),
            ("p".to_owned(), 0, 0, 0),
            ("p".to_owned(), 1, invalid, -1),
            ("p".to_owned(), 2, 0, 0),
            ("q".to_owned(), 0, 0, 0),
            ("missing".to_owned(), 0, unknown, -1),
        ]
    );
    let second = twice(entries);
    let offsets: Vec<i64> = second.iter().map(|(_, _, _, offset)| *offset).collect();
    assert_eq!(offsets, vec![64, 64, -1, 64, 64, -1]);
}

#[test]
fn the_coordinators_internal_topic_refuses_client_records() {
    let fixture = crate::api::create_topics::fixture::broker();
    let offsets = crate::groups::OFFSETS_TOPIC;
    crate::api::create_topics::fixture::topic(&fixture, offsets, 1);
    let header = crate::api::create_topics::fixture::header(9);
    let request = produce_request(1, vec![(offsets, 0, batch_of(1, 10))]);
    let answers = produced(handle(&fixture.ctx, &header, request));
    let invalid_topic = ResponseError::InvalidTopicException.code();
    assert_eq!(answers, vec![(offsets.to_owned(), 0, invalid_topic, -1)]);
    let log = fixture.ctx.logs.partition(offsets, 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

/// Kafka refuses an internal topic only when it appends (`ReplicaManager.appendToLocalLog`),
/// after `KafkaApis.handleProduceRequest` has answered partitions its metadata does not know
/// and batches `ProduceRequest.validateRecords` refuses: those answers win, on an internal
/// topic as on any other, whether or not the topic exists yet; a partition named twice keeps
/// its failed entry's error.
#[test]
fn the_internal_topic_check_comes_after_the_partition_and_format_checks() {
    let fixture = crate::api::create_topics::fixture::broker();
    let offsets = crate::groups::OFFSETS_TOPIC;
    let header = crate::api::create_topics::fixture::header(9);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let invalid_record = ResponseError::InvalidRecord.code();
    let invalid_topic = ResponseError::InvalidTopicException.code();
    let not_yet = produce_request(1, vec![(offsets, 0, batch_of(1, 10))]);
    let answers = produced(handle(&fixture.ctx, &header, not_yet));
    assert_eq!(answers, vec![(offsets.to_owned(), 0, unknown, -1)]);
    crate::api::create_topics::fixture::topic(&fixture, offsets, 2);
    let garbage = || Bytes::from_static(b"not a batch");
    let entries = vec![
        (offsets, 0, garbage()),
        (offsets, 1, batch_of(1, 10)),
        (offsets, 2, batch_of(1, 10)),
        (offsets, 1, garbage()),
    ];
    let answers = produced(handle(&fixture.ctx, &header, produce_request(1, entries)));
    assert_eq!(
        answers,
        vec![
            (offsets.to_owned(), 0, invalid_record, -1),
            (offsets.to_owned(), 1, invalid_record, -1),
            (offsets.to_owned(), 2, unknown, -1),
        ]
    );
    let zstd = produce_request(1, vec![(offsets, 0, compressed_keyed(1))]);
    let header_v6 = crate::api::create_topics::fixture::header(6);
    let answers = produced(handle(&fixture.ctx, &header_v6, zstd));
    let unsupported = ResponseError::UnsupportedCompressionType.code();
    assert_eq!(answers, vec![(offsets.to_owned(), 0, unsupported, -1)]);
    let valid = produce_request(1, vec![(offsets, 1, batch_of(1, 10))]);
    let answers = produced(handle(&fixture.ctx, &header, valid));
    assert_eq!(answers, vec![(offsets.to_owned(), 1, invalid_topic, -1)]);
    for partition in 0..2 {
        let log = fixture.ctx.logs.partition(offsets, partition).unwrap();
        assert_eq!(log.log_end_offset(), 0, "nothing appended to {partition}");
    }
}

/// Kafka reads a Produce into a map keyed by topic-partition: a partition named twice is
/// appended once, with its last entry, and answered once (here where it was first named);
/// a topic named in several entries gets one answer entry. Bad acks are answered the same
/// way.
#[test]
fn a_partition_named_twice_is_appended_once_as_last_asked() {
    let fixture = crate::api::create_topics::fixture::broker();
    crate::api::create_topics::fixture::topic(&fixture, "d", 2);
    let entries = vec![
        ("d", 0, batch_of(100, 1000)),
        ("d", 1, batch_of(100, 1000)),
        ("d", 0, batch_of(3, 1000)),
    ];
    let header = crate::api::create_topics::fixture::header(9);
    let request = produce_request(1, entries.clone());
    let completion = handle(&fixture.ctx, &header, request);
    let Completion::Ready(Answer {
        body: ResponseKind::Produce(response),
        ..
    }) = &completion
    else {
        panic!("an acks=1 produce answers at once");
    };
    assert_eq!(response.responses.len(), 1, "one entry for topic d");
    assert_eq!(
        produced(completion),
        vec![("d".to_owned(), 0, 0, 0), ("d".to_owned(), 1, 0, 0)]
    );
    let log = fixture.ctx.logs.partition("d", 0).unwrap();
    assert_eq!(log.log_end_offset(), 3, "only the last entry appended");
    let answers = produced(handle(&fixture.ctx, &header, produce_request(2, entries)));
    let bad_acks = ResponseError::InvalidRequiredAcks.code();
    assert_eq!(
        answers,
        vec![
            ("d".to_owned(), 0, bad_acks, -1),
            ("d".to_owned(), 1, bad_acks, -1)
        ]
    );
}

/// Kafka checks the format of every entry of a partition named twice
/// (`KafkaApis.handleProduceRequest` validates each entry, keeps the last that passes for the
/// append, and merges a failed entry's error over the append's answer): the last entry that
/// passes is appended, and the partition is answered with the failed entry's error, whether
/// that entry came first or last.
#[test]
fn every_entry_of_a_partition_named_twice_is_checked() {
    let fixture = crate::api::create_topics::fixture::broker();
    crate::api::create_topics::fixture::topic(&fixture, "f", 3);
    let garbage = || Bytes::from_static(b"not a batch");
    let entries = vec![
        ("f", 0, garbage()),
        ("f", 1, batch_of(5, 10)),
        ("f", 2, garbage()),
        ("f", 0, batch_of(3, 10)),
        ("f", 1, garbage()),
        ("f", 2, garbage()),
    ];
    let header = crate::api::create_topics::fixture::header(9);
    let answers = produced(handle(&fixture.ctx, &header, produce_request(1, entries)));
    let invalid = ResponseError::InvalidRecord.code();
    assert_eq!(
        answers,
        vec![
            ("f".to_owned(), 0, invalid, -1),
            ("f".to_owned(), 1, invalid, -1),
            ("f".to_owned(), 2, invalid, -1),
        ]
    );
    let end_offset = |partition| {
        let log = fixture.ctx.logs.partition("f", partition).unwrap();
        log.log_end_offset()
    };
    assert_eq!(end_offset(0), 3, "the later, valid entry is appended");
    assert_eq!(end_offset(1), 5, "the earlier, valid entry is appended");
    assert_eq!(end_offset(2), 0, "no valid entry: nothing appended");
}

/// Kafka refuses bad acks in `ReplicaManager.appendRecords` before its internal-topic check,
/// so an existing internal topic's partition gets INVALID_REQUIRED_ACKS, as any other does;
/// a partition past the topic's count is unknown.
#[test]
fn invalid_acks_come_before_the_internal_topic_check() {
    let fixture = crate::api::create_topics::fixture::broker();
    let offsets = crate::groups::OFFSETS_TOPIC;
    crate::api::create_topics::fixture::topic(&fixture, offsets, 1);
    let entries = vec![(offsets, 0, batch_of(1, 10)), (offsets, 1, batch_of(1, 10))];
    let header = crate::api::create_topics::fixture::header(9);
    let answers = produced(handle(&fixture.ctx, &header, produce_request(3, entries)));
    let bad_acks = ResponseError::InvalidRequiredAcks.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        answers,
        vec![
            (offsets.to_owned(), 0, bad_acks, -1),
            (offsets.to_owned(), 1, unknown, -1)
        ]
    );
    let log = fixture.ctx.logs.partition(offsets, 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn only_large_requests_of_large_partitions_go_to_the_append_pool() {
    let items = |partitions: i32, records: i32| -> Vec<Item> {
        (0..partitions)
            .map(|partition| {
                let mut data = PartitionProduceData::default();
                data.index = partition;
                data.records = Some(batch_of(records, 1000));
                let earlier = Vec::new();
                Item {
                    topic_index: 0,
                    topic: Arc::from("d"),
                    entries: Entries { data, earlier },
                }
            })
            .collect()
    };
    assert!(worth_parallel(&items(2, 100)));
    assert!(!worth_parallel(&items(1, 200)), "one partition");
    // Many small partitions: each hand-off would carry too little to pay for its wake-up.
    assert!(
        !worth_parallel(&items(8, 32)),
        "8 partitions of ~32 KiB stay sequential"
    );
}

/// An acks=all append's whole pages are handed to writeback by the handler itself, before
/// the answer's task queues the fsync (the flusher's tick would start them up to 50 ms
/// later, and the fsync would otherwise write them itself).
#[test]
fn acks_all_starts_the_appended_pages_writeback_at_once() {
    use kafka_protocol::messages::produce_request::TopicProduceData;
    use kafka_protocol::messages::TopicName;

    let fixture = super::super::create_topics::fixture::broker();
    super::super::create_topics::fixture::topic(&fixture, "wb", 1);
    let log = fixture.ctx.logs.partition("wb", 0).unwrap();
    let payload = vec![7u8; 40_000];
    let records = raw(RawBatchFields {
        records: &payload,
        base_timestamp: NOW_MS,
        max_timestamp: NOW_MS,
        ..RawBatchFields::default()
    });
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("wb")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.clone()))])]);
    let header = RequestHeader::default().with_request_api_version(9);
    let completion = handle(&fixture.ctx, &header, request);
    let mark = *log.writeback_mark.lock();
    assert!(matches!(completion, Completion::Pending(_)));
    let whole_pages = records.len() as u64 / 4096 * 4096;
    assert_eq!(
        mark.position, whole_pages,
        "writeback started for the whole pages"
    );
}
