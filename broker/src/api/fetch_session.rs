//! Fetch's side of incremental fetch sessions ([`crate::fetch_sessions`], KIP-227): which
//! partitions a fetch reads (the request's, or its session's), and the answer a session gets
//! (only the partitions that changed) or creates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;
use crate::fetch_sessions::{
    Answered, CachedPartition, FetchSessions, Incremental, PartitionAsk, PartitionKey, TopicKey,
    SESSION_EPOCH_FINAL, SESSION_EPOCH_INITIAL, SESSION_ID_NONE,
};

/// One partition a fetch reads, as the request (or its session) names it.
pub(super) struct Wanted {
    pub key: PartitionKey,
    pub topic_id: uuid::Uuid,
    /// The topic's name, or the error for a topic id no topic has (UNKNOWN_TOPIC_ID).
    pub name: Result<TopicName, i16>,
    pub ask: PartitionAsk,
    /// On an incremental fetch, what the session last answered for the partition: read
    /// again with nothing new and these figures unchanged, it is left out of the answer.
    pub last_answered: Option<Answered>,
}

/// What the fetch does with sessions.
pub(super) enum SessionUse {
    /// A sessionless full fetch (epoch -1, before v7, or a session emptied by this request).
    None,
    /// A full fetch asking for a session (epoch 0): one is created when it is answered.
    Create {
        by_id: bool,
        sessions: Arc<FetchSessions>,
    },
    /// An incremental fetch on a session.
    Incremental(Incremental),
}

/// The partitions `request` reads and what it does with sessions, or the error it is answered
/// with at once (a session error: FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH,
/// FETCH_SESSION_TOPIC_ID_ERROR), as Kafka's `FetchManager.newContext`: a full fetch closes
/// any session it names.
pub(super) fn open(
    ctx: &BrokerContext,
    request: &FetchRequest,
    by_id: bool,
) -> Result<(SessionUse, Vec<Wanted>), i16> {
    let asked = requested(ctx, request, by_id);
    let epoch = request.session_epoch;
    if epoch == SESSION_EPOCH_INITIAL || epoch == SESSION_EPOCH_FINAL {
        ctx.fetch_sessions.close(request.session_id);
        let session = if epoch == SESSION_EPOCH_INITIAL {
            SessionUse::Create {
                by_id,
                sessions: Arc::clone(&ctx.fetch_sessions),
            }
        } else {
            SessionUse::None
        };
        return Ok((session, asked));
    }
    let forgotten: Vec<PartitionKey> = (request.forgotten_topics_data.iter())
        .flat_map(|topic| {
            let key = topic_key(by_id, topic.topic_id, &topic.topic);
            (topic.partitions.iter()).map(move |&partition| PartitionKey {
                topic: key.clone(),
                partition,
            })
        })
        .collect();
    let asks: Vec<(PartitionKey, PartitionAsk)> =
        asked.iter().map(|w| (w.key.clone(), w.ask)).collect();
    let opened = ctx.fetch_sessions.incremental(
        request.session_id,
        epoch,
        by_id,
        &asks,
        &forgotten,
        Instant::now(),
    )?;
    Ok(match opened {
        // The request left the session empty: it is closed, the fetch sessionless.
        None => (SessionUse::None, asked),
        Some(incremental) => {
            let session = incremental.session.lock();
            let wanted = session_wanted(ctx, session.partitions());
            drop(session);
            (SessionUse::Incremental(incremental), wanted)
        }
    })
}

fn topic_key(by_id: bool, topic_id: uuid::Uuid, name: &TopicName) -> TopicKey {
    if by_id {
        TopicKey::Id(topic_id)
    } else {
        TopicKey::Name(name.clone())
    }
}

/// The request's partitions, each once: Kafka reads a fetch's partitions into an ordered map
/// (`FetchRequest.fetchData`, a `LinkedHashMap`), so a partition named twice is read once,
/// where it was first named, as its last entry asks. Topics are named by id from v13
/// (`by_id`): each id is resolved to its name once, UNKNOWN_TOPIC_ID when no topic has it, as
/// Kafka's `KafkaApis.handleFetchRequest` resolves ids through its metadata cache.
fn requested(ctx: &BrokerContext, request: &FetchRequest, by_id: bool) -> Vec<Wanted> {
    let names: Vec<Result<TopicName, i16>> = if by_id {
        let ids: Vec<uuid::Uuid> = request.topics.iter().map(|t| t.topic_id).collect();
        resolve_ids(ctx, &ids)
    } else {
        request.topics.iter().map(|t| Ok(t.topic.clone())).collect()
    };
    let partitions_count: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
    let mut wanted: Vec<Wanted> = Vec::with_capacity(partitions_count);
    let mut placed: HashMap<PartitionKey, usize> = HashMap::with_capacity(partitions_count);
    for (topic, name) in request.topics.iter().zip(names) {
        let topic_key = topic_key(by_id, topic.topic_id, &topic.topic);
        for p in &topic.partitions {
            let key = PartitionKey {
                topic: topic_key.clone(),
                partition: p.partition,
            };
            let ask = PartitionAsk {
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
            };
            match placed.get(&key).and_then(|&at| wanted.get_mut(at)) {
                Some(first) => first.ask = ask,
                None => {
                    placed.insert(key.clone(), wanted.len());
                    wanted.push(Wanted {
                        key,
                        topic_id: topic.topic_id,
                        name: name.clone(),
                        ask,
                        last_answered: None,
                    });
                }
            }
        }
    }
    wanted
}

/// Each id's topic name, UNKNOWN_TOPIC_ID where no topic has it.
fn resolve_ids(ctx: &BrokerContext, ids: &[uuid::Uuid]) -> Vec<Result<TopicName, i16>> {
    let unknown = ResponseError::UnknownTopicId.code();
    (ctx.logs.topic_names_by_id(ids).into_iter())
        .map(|name| {
            name.map(|n| TopicName(StrBytes::from_string(n)))
                .ok_or(unknown)
        })
        .collect()
}

/// A session's partitions to read, in its order; ids resolved again on every fetch (a topic
/// may have been deleted, or created, since).
fn session_wanted(ctx: &BrokerContext, partitions: &[CachedPartition]) -> Vec<Wanted> {
    let mut ids: Vec<uuid::Uuid> = Vec::new();
    let mut id_slot: HashMap<uuid::Uuid, usize> = HashMap::new();
    for p in partitions {
        if let TopicKey::Id(id) = p.key.topic {
            id_slot.entry(id).or_insert_with(|| {
                ids.push(id);
                ids.len() - 1
            });
        }
    }
    let names = resolve_ids(ctx, &ids);
    partitions
        .iter()
        .map(|p| {
            let (topic_id, name) = match &p.key.topic {
                TopicKey::Name(name) => (uuid::Uuid::nil(), Ok(name.clone())),
                TopicKey::Id(id) => {
                    let name = id_slot.get(id).and_then(|&at| names.get(at)).cloned();
                    let unknown = Err(ResponseError::UnknownTopicId.code());
                    (*id, name.unwrap_or(unknown))
                }
            };
            Wanted {
                key: p.key.clone(),
                topic_id,
                name,
                ask: p.ask,
                last_answered: Some(p.answered()),
            }
        })
        .collect()
}

/// Gives `response` its session: none (id 0); a new one holding every partition answered
/// (`keys`, in answer order, beside the response's partitions), whose id it carries (0 if the
/// cache declined); or, on an incremental fetch, only the partitions that must be answered.
/// `Err` back: the session moved on to another request's epoch meanwhile (a duplicate
/// request), and the answer is INVALID_FETCH_SESSION_EPOCH instead (Kafka's
/// `IncrementalFetchContext.updateAndGenerateResponseData`).
pub(super) fn answer<'a>(
    session: &SessionUse,
    keys: impl Iterator<Item = (&'a PartitionKey, PartitionAsk)>,
    response: &mut FetchResponse,
) -> Result<(), FetchResponse> {
    let answered = |data: &kafka_protocol::messages::fetch_response::PartitionData| Answered {
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
    };
    match session {
        SessionUse::None => {
            response.session_id = SESSION_ID_NONE;
            Ok(())
        }
        SessionUse::Create { by_id, sessions } => {
            let data = response.responses.iter().flat_map(|t| &t.partitions);
            let cached = (keys.zip(data))
                .map(|((key, ask), data)| CachedPartition::new(key.clone(), ask, answered(data)))
                .collect();
            response.session_id = sessions.create(*by_id, cached, Instant::now());
            Ok(())
        }
        SessionUse::Incremental(incremental) => {
            let mut session = incremental.session.lock();
            if !session.answers_epoch(incremental.expected_epoch) {
                let mut refused = FetchResponse::default();
                refused.error_code = ResponseError::InvalidFetchSessionEpoch.code();
                refused.session_id = session.id();
                return Err(refused);
            }
            let data = response.responses.iter().flat_map(|t| &t.partitions);
            let answers: Vec<(PartitionKey, usize, i16, Answered)> = (keys.zip(data))
                .map(|((key, _), data)| {
                    let records_bytes = data.records.as_ref().map_or(0, |r| r.len());
                    (key.clone(), records_bytes, data.error_code, answered(data))
                })
                .collect();
            let keep = session.select(&answers);
            let mut keep = keep.into_iter();
            for topic in &mut response.responses {
                topic.partitions.retain(|_| keep.next().unwrap_or(true));
            }
            response.responses.retain(|t| !t.partitions.is_empty());
            response.session_id = session.id();
            Ok(())
        }
    }
}
