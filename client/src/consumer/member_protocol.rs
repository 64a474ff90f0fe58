//! Kafka's ConsumerProtocol encoding of the subscription a member sends in JoinGroup and
//! the assignment it gets in SyncGroup (a version `i16`, then the message), so Java,
//! librdkafka and this client can share a group.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::assignor::MemberSubscription;
use super::TopicPartition;
use crate::cluster::topic_name;
use crate::error::{Error, Result};

/// ConsumerProtocolSubscription v1 (topics, owned partitions), version-prefixed.
pub fn encode_subscription(topics: &[String], owned: &[TopicPartition], generation: i32) -> Bytes {
    let _ = generation; // v2 carries it; v1 is what every client in the wild decodes
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(group_by_topic(owned, |topic, partitions| {
            OwnedTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        }));
    encode_versioned(&subscription, 1)
}

/// Decodes any subscription version (later versions only add trailing fields).
pub fn decode_subscription(mut bytes: Bytes) -> Result<MemberSubscription> {
    let version = read_version(&mut bytes)?;
    let subscription = ConsumerProtocolSubscription::decode(&mut bytes, version.min(3))
        .map_err(|e| Error::Protocol(format!("subscription: {e}")))?;
    Ok(MemberSubscription {
        member_id: String::new(),
        topics: subscription.topics.iter().map(|t| t.to_string()).collect(),
        owned: subscription
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.as_str(), *p))
            })
            .collect(),
        generation: subscription.generation_id,
    })
}

pub fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        group_by_topic(partitions, |topic, partitions| {
            AssignedTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        }),
    );
    encode_versioned(&assignment, 0)
}

/// An empty assignment (a member that got nothing) may be zero bytes on the wire.
pub fn decode_assignment(mut bytes: Bytes) -> Result<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let version = read_version(&mut bytes)?;
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version.min(3))
        .map_err(|e| Error::Protocol(format!("assignment: {e}")))?;
    let mut partitions: Vec<TopicPartition> = assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.as_str(), *p))
        })
        .collect();
    partitions.sort();
    Ok(partitions)
}

fn read_version(bytes: &mut Bytes) -> Result<i16> {
    if bytes.remaining() < 2 {
        return Err(Error::Protocol(
            "consumer protocol bytes without a version".to_owned(),
        ));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(Error::Protocol(format!(
            "consumer protocol version {version}"
        )));
    }
    Ok(version)
}

fn encode_versioned<M: Encodable>(message: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Encoding our own well-formed message at a version it supports cannot fail; an empty
    // body would be rejected by the leader and surface there.
    if message.encode(&mut buf, version).is_err() {
        tracing::error!("consumer protocol encoding failed");
    }
    buf.freeze()
}

fn group_by_topic<T>(partitions: &[TopicPartition], make: impl Fn(&str, Vec<i32>) -> T) -> Vec<T> {
    let mut topics: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    topics.into_iter().map(|(t, p)| make(t, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let owned = vec![TopicPartition::new("a", 1), TopicPartition::new("b", 0)];
        let bytes = encode_subscription(&["a".to_owned(), "b".to_owned()], &owned, 3);
        let decoded = decode_subscription(bytes).expect("decodes");
        assert_eq!(decoded.topics, vec!["a", "b"]);
        assert_eq!(decoded.owned, owned);
        let bytes = encode_assignment(&owned);
        assert_eq!(decode_assignment(bytes).expect("decodes"), owned);
        assert_eq!(decode_assignment(Bytes::new()).expect("empty"), vec![]);
        assert!(decode_assignment(Bytes::from_static(&[0])).is_err());
    }
}
