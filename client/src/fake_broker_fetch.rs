//! The fake broker's Fetch: what it records of each request ([`SeenFetch`]) and how it
//! answers, and the topic ids its Metadata hands out.

#![allow(clippy::unwrap_used)]

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::{FetchScript, Script};

/// One Fetch as the fake read it. Topics are by name, whether the request named them so
/// or by id (v13+: the fake looks the ids it handed out in Metadata up; an id it never
/// handed out shows as `"?"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenFetch {
    pub version: i16,
    pub session_id: i32,
    pub epoch: i32,
    /// (topic, partition, fetch offset) as listed.
    pub partitions: Vec<(String, i32, i64)>,
    /// (topic, partition) in `forgotten_topics_data`.
    pub forgotten: Vec<(String, i32)>,
}

/// The id Metadata gives `name` when the script says it has one: derived from the name
/// (FNV-1a, 128 bits), so a test's topics keep theirs across requests.
pub(super) fn topic_id(name: &str) -> uuid::Uuid {
    let hash = name
        .bytes()
        .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d_u128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
        });
    uuid::Uuid::from_u128(hash)
}

/// What the fake makes of a Fetch: recorded in `fetches_seen`, then answered as the script
/// says. Only listed partitions are answered (this fake keeps no session of its own: a
/// partition a session implies has nothing new). Also whether it waits `max_wait_ms` first:
/// when nothing (no error, no records) is in it, as a broker with nothing new.
pub(super) fn fetch(
    request: &FetchRequest,
    version: i16,
    answer: &FetchScript,
    script: &Script,
) -> (FetchResponse, bool) {
    let seen = seen_fetch(request, version, script);
    script.fetches_seen.lock().unwrap().push(seen.clone());
    let (error_code, session_id) = (script.fetch_session)(&seen);
    let response = FetchResponse::default()
        .with_error_code(error_code)
        .with_session_id(session_id);
    if error_code != 0 {
        return (response, false);
    }
    let mut listed = seen.partitions.iter();
    let mut wait = true;
    let topics = request.topics.iter().map(|topic| {
        let partitions = topic.partitions.iter().map(|p| {
            let (name, _, _) = listed.next().unwrap();
            let code = answer(p.fetch_offset);
            let records = match code {
                0 => (script.fetch_records)(name, p.partition, p.fetch_offset),
                _ => None,
            };
            wait &= code == 0 && records.is_none();
            let high_watermark = match &records {
                Some(_) => p.fetch_offset + 1_000,
                None if code == 0 => p.fetch_offset,
                None => -1,
            };
            PartitionData::default()
                .with_partition_index(p.partition)
                .with_error_code(code)
                .with_high_watermark(high_watermark)
                .with_records(Some(records.unwrap_or_default()))
        });
        FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id)
            .with_partitions(partitions.collect())
    });
    (response.with_responses(topics.collect()), wait)
}

/// `request` as [`SeenFetch`] records it.
fn seen_fetch(request: &FetchRequest, version: i16, script: &Script) -> SeenFetch {
    let ids = script.topic_ids.lock().unwrap();
    let name = |topic: &TopicName, id: &uuid::Uuid| match version {
        13.. => ids.get(id).cloned().unwrap_or_else(|| "?".to_owned()),
        _ => topic.0.to_string(),
    };
    let partitions = request.topics.iter().flat_map(|t| {
        let topic = name(&t.topic, &t.topic_id);
        t.partitions
            .iter()
            .map(move |p| (topic.clone(), p.partition, p.fetch_offset))
    });
    let forgotten = request.forgotten_topics_data.iter().flat_map(|t| {
        let topic = name(&t.topic, &t.topic_id);
        t.partitions.iter().map(move |p| (topic.clone(), *p))
    });
    SeenFetch {
        version,
        session_id: request.session_id,
        epoch: request.session_epoch,
        partitions: partitions.collect(),
        forgotten: forgotten.collect(),
    }
}
