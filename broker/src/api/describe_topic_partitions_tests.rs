use kafka_protocol::messages::describe_topic_partitions_request::{
    Cursor as RequestCursor, TopicRequest,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest};

use super::super::create_topics::fixture::{broker, header, topic, NODE_ID};
use super::*;

fn request(
    names: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| TopicRequest::default().with_name(topic_name(n)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            RequestCursor::default()
                .with_topic_name(topic_name(t))
                .with_partition_index(p)
        }))
}

/// (topic, error code, partition indexes) in answer order, and the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(response: &DescribeTopicPartitionsResponse) -> Page {
    let topics = response
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (name, t.error_code, partitions)
        })
        .collect();
    let cursor = response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

fn describe(fixture_ctx: &BrokerContext, request: DescribeTopicPartitionsRequest) -> Page {
    page(&handle(fixture_ctx, &header(0), request))
}

fn ok(name: &str, partitions: std::ops::Range<i32>) -> (String, i16, Vec<i32>) {
    (name.to_owned(), 0, partitions.collect())
}

#[test]
fn named_topics_come_sorted_with_partitions_as_metadata_gives_them() {
    let fixture = broker();
    topic(&fixture, "b", 2);
    topic(&fixture, "a", 1);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let invalid = ResponseError::InvalidTopicException.code();
    let response = handle(
        &fixture.ctx,
        &header(0),
        request(&["b", "missing", "a", "b", "bad name"], 2000, None),
    );
    assert_eq!(
        page(&response),
        (
            vec![
                ok("a", 0..1),
                ok("b", 0..2),
                ("bad name".to_owned(), invalid, vec![]),
                ("missing".to_owned(), unknown, vec![]),
            ],
            None
        )
    );
    let metadata = super::super::metadata::handle(
        &fixture.ctx,
        &header(12),
        MetadataRequest::default().with_topics(None),
    );
    for described in response.topics.iter().filter(|t| t.error_code == 0) {
        let listed = metadata
            .topics
            .iter()
            .find(|t| t.name == described.name)
            .unwrap();
        assert_eq!(described.topic_id, listed.topic_id);
        assert!(!described.is_internal);
        assert_eq!(
            described.topic_authorized_operations,
            TOPIC_AUTHORIZED_OPERATIONS
        );
        for (d, m) in described.partitions.iter().zip(&listed.partitions) {
            assert_eq!(d.partition_index, m.partition_index);
            assert_eq!(d.leader_id, BrokerId(NODE_ID));
            assert_eq!(d.leader_id, m.leader_id);
            assert_eq!(d.leader_epoch, m.leader_epoch);
            assert_eq!(d.replica_nodes, m.replica_nodes);
            assert_eq!(d.isr_nodes, m.isr_nodes);
            assert_eq!(d.eligible_leader_replicas, Some(vec![]));
            assert_eq!(d.last_known_elr, Some(vec![]));
            assert!(d.offline_replicas.is_empty());
        }
    }
    let missing = &response.topics[3];
    assert!(missing.topic_id.is_nil());
}

#[test]
fn all_topics_pages_by_the_limit_with_a_cursor() {
    let fixture = broker();
    topic(&fixture, "a", 3);
    topic(&fixture, "b", 2);
    topic(&fixture, "c", 1);
    let ctx = &fixture.ctx;
    // A cut inside a topic points at its first partition left out.
    assert_eq!(
        describe(ctx, request(&[], 4, None)),
        (
            vec![ok("a", 0..3), ok("b", 0..1)],
            Some(("b".to_owned(), 1))
        )
    );
    assert_eq!(
        describe(ctx, request(&[], 4, Some(("b", 1)))),
        (vec![ok("b", 1..2), ok("c", 0..1)], None)
    );
    // Used up exactly at a topic's end: the next topic's partition 0.
    assert_eq!(
        describe(ctx, request(&[], 3, None)),
        (vec![ok("a", 0..3)], Some(("b".to_owned(), 0)))
    );
    // The cursor's partition applies to its topic only; a cursor past the topic's end
    // lists it empty.
    assert_eq!(
        describe(ctx, request(&[], 10, Some(("a", 5)))),
        (vec![ok("a", 3..3), ok("b", 0..2), ok("c", 0..1)], None)
    );
    // A cursor topic that does not exist starts at the next name.
    assert_eq!(
        describe(ctx, request(&[], 10, Some(("bb", 0)))),
        (vec![ok("c", 0..1)], None)
    );
    // A limit of 0 lists nothing and points at the first topic; the limit is capped.
    assert_eq!(
        describe(ctx, request(&[], 0, None)),
        (vec![], Some(("a".to_owned(), 0)))
    );
    assert_eq!(describe(ctx, request(&[], -1, None)), (vec![], None));
}

#[test]
fn the_limit_is_capped_at_kafkas_default_maximum() {
    let fixture = broker();
    topic(&fixture, "big", PARTITIONS_PER_RESPONSE_MAX + 5);
    let (topics, cursor) = describe(&fixture.ctx, request(&["big"], i32::MAX, None));
    assert_eq!(topics, vec![ok("big", 0..PARTITIONS_PER_RESPONSE_MAX)]);
    assert_eq!(
        cursor,
        Some(("big".to_owned(), PARTITIONS_PER_RESPONSE_MAX))
    );
}

#[test]
fn named_topics_need_the_cursor_topic_among_them() {
    let fixture = broker();
    topic(&fixture, "a", 2);
    topic(&fixture, "b", 1);
    let ctx = &fixture.ctx;
    assert_eq!(
        describe(ctx, request(&["a", "b"], 10, Some(("a", 1)))),
        (vec![ok("a", 1..2), ok("b", 0..1)], None)
    );
    // Topics named before the cursor are left out.
    assert_eq!(
        describe(ctx, request(&["a", "b"], 10, Some(("b", 0)))),
        (vec![ok("b", 0..1)], None)
    );
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(
        describe(ctx, request(&["b", "a"], 10, Some(("c", 0)))),
        (
            vec![
                ("b".to_owned(), invalid, vec![]),
                ("a".to_owned(), invalid, vec![])
            ],
            None
        )
    );
}

#[test]
fn internal_topics_listed_and_marked_internal() {
    let fixture = broker();
    topic(&fixture, "t", 1);
    let logs = &fixture.ctx.logs;
    if logs.topic("__consumer_offsets").is_none() {
        logs.create_topic("__consumer_offsets", 2, Default::default(), false)
            .unwrap();
    }
    let offsets_partitions = logs.topic("__consumer_offsets").unwrap().partitions;
    // Listed among all topics, as Metadata lists them (sorted: `_` before `t`).
    let (all, _) = describe(&fixture.ctx, request(&[], 100, None));
    assert_eq!(
        all,
        vec![
            ok("__consumer_offsets", 0..offsets_partitions),
            ok("t", 0..1)
        ]
    );
    let response = handle(
        &fixture.ctx,
        &header(0),
        request(&["__consumer_offsets"], 100, None),
    );
    assert_eq!(
        page(&response).0,
        vec![ok("__consumer_offsets", 0..offsets_partitions)]
    );
    assert!(response.topics[0].is_internal);
}
