use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::fixture::{append, broker, header, topic};
use crate::api::{create_partitions, delete_records, delete_topics, metadata};
use crate::groups::OFFSETS_TOPIC;

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(OFFSETS_TOPIC))
}

#[test]
fn clients_cannot_create_grow_trim_or_delete_the_coordinators_topic() {
    let fixture = broker();
    let ctx = &fixture.ctx;
    let invalid = ResponseError::InvalidTopicException.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    // Before the coordinator made it: neither Metadata nor CreateTopics creates it.
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name())),
    ]));
    let answer = metadata::handle(ctx, &header(4), request);
    assert_eq!(answer.topics[0].error_code, unknown);
    let create = CreatableTopic::default()
        .with_name(name())
        .with_num_partitions(3)
        .with_replication_factor(-1);
    let request = CreateTopicsRequest::default().with_topics(vec![create]);
    assert_eq!(
        super::handle(ctx, &header(5), request).topics[0].error_code,
        invalid
    );
    assert!(ctx.logs.topic(OFFSETS_TOPIC).is_none());
    // Once it exists (as the coordinator creates it), it cannot be grown, trimmed or deleted.
    topic(&fixture, OFFSETS_TOPIC, 1);
    append(&fixture, OFFSETS_TOPIC, 0, 3);
    let grow = CreatePartitionsTopic::default()
        .with_name(name())
        .with_count(4)
        .with_assignments(None);
    let request = CreatePartitionsRequest::default().with_topics(vec![grow]);
    let answer = create_partitions::handle(ctx, &header(3), request);
    assert_eq!(answer.results[0].error_code, invalid);
    let trim = DeleteRecordsTopic::default()
        .with_name(name())
        .with_partitions(vec![DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(2)]);
    let request = DeleteRecordsRequest::default().with_topics(vec![trim]);
    let answer = delete_records::handle(ctx, &header(2), request);
    assert_eq!(answer.topics[0].partitions[0].error_code, invalid);
    let request = DeleteTopicsRequest::default().with_topic_names(vec![name()]);
    let answer = delete_topics::answered(ctx, &header(5), request);
    assert_eq!(answer.responses[0].error_code, invalid);
    let info = ctx.logs.topic(OFFSETS_TOPIC).expect("still there");
    assert_eq!(info.partitions, 1);
    let log = ctx.logs.partition(OFFSETS_TOPIC, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 3));
}
