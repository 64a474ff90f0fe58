//! Fetch: whole batches from each requested partition, long-polling until `min_bytes` are
//! available or `max_wait_ms` (capped) passes. A fetch may open an incremental fetch session
//! (KIP-227): later fetches then name only what changed, and are answered only what changed
//! (`fetch_session`, [`crate::fetch_sessions`]).
//!
//! The request (or its session) is turned into an owned `FetchPlan` (partition logs
//! resolved once) so the long poll can re-read from a `'static` future that wakes on any
//! partition's end offset.
//!
//! Large batches in the cached tail stay in their segment file: the response carries a
//! placeholder for them and the connection sends them with `sendfile`
//! ([`crate::net::file_sends`]).
//!
//! From v13 the request and response name topics by id (KIP-516): each id is resolved to its
//! name once, when the request is planned; an id no topic has is answered UNKNOWN_TOPIC_ID.
//!
//! Every version gets the batches as stored, zstd ones too: Kafka 4.0 dropped its check
//! that refused Fetch below v10 (KIP-110) a partition of a `compression.type=zstd` topic
//! (KAFKA-18269), since it never covered zstd batches a producer compressed itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, RequestHeader, ResponseKind, TopicName,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::errors::log_error_i16;
use super::fetch_session::{self, SessionUse, Wanted};
use super::{leader_epoch, Answer, BrokerContext, Completion};
use crate::fetch_sessions::{Answered, PartitionAsk, PartitionKey, SESSION_EPOCH_INITIAL};
use crate::log::{FetchRecords, PartitionLog};
use crate::metrics::traffic::count_records;
use crate::net::file_sends::FileSends;

/// Cap on a fetch's `max_wait_ms` (Kafka clients default to 500 ms).
pub const FETCH_MAX_WAIT_MS_MAX: u64 = 30_000;
/// Cap on a whole response's bytes (Kafka's `fetch.max.bytes` default, 55 MiB).
pub const FETCH_RESPONSE_MAX_BYTES: usize = 55 * 1024 * 1024;
/// Cap on the long-poll's wake-ups that find its own partitions grown (or one failing), so
/// a hot partition cannot spin one fetch forever. A topic-wide wait's wake-ups for the
/// topic's other partitions do not count: the deadline bounds those.
const FETCH_WAKEUPS_MAX: usize = 10_000;
/// Partitions of one topic a long poll waits on one by one; with more it waits on the topic.
const PARTITION_WAITS_MAX: usize = 8;
/// The first version naming topics by id instead of by name (KIP-516).
const TOPIC_IDS_VERSION_MIN: i16 = 13;

/// One partition of a fetch, its log resolved (or the error to answer with).
struct PartitionPlan {
    key: PartitionKey,
    ask: PartitionAsk,
    log: Result<Arc<PartitionLog>, i16>,
    /// See [`Wanted::last_answered`].
    last_answered: Option<Answered>,
}

impl PartitionPlan {
    /// Whether the partition exists (Kafka's metadata cache has it): only known partitions
    /// are read and can end a long poll. Only a partition the logs do not have is answered
    /// UNKNOWN_TOPIC_OR_PARTITION ([`partition_log`]), or UNKNOWN_TOPIC_ID (v13+: no topic
    /// has the id).
    fn known(&self) -> bool {
        let unknown = [
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::UnknownTopicId.code(),
        ];
        !matches!(self.log, Err(code) if unknown.contains(&code))
    }

    /// Whether an incremental fetch's read would find nothing new for the partition: no
    /// records (asked at the log end), no error, and the figures its session last answered
    /// — exactly what the session leaves out of the answer (`CachedPartition::must_answer`).
    /// Checked without a read, so a fetch's cost follows the partitions that changed, not
    /// all those of its session.
    fn unchanged(&self) -> bool {
        let (Some(last), Ok(log)) = (self.last_answered, &self.log) else {
            return false;
        };
        log.read_at_end(self.ask.fetch_offset).is_some_and(|read| {
            let now = Answered {
                high_watermark: read.high_watermark,
                log_start_offset: read.log_start_offset,
            };
            now == last
        })
    }
}

struct TopicPlan {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionPlan>,
}

/// Everything a fetch needs, owned, so the long poll can re-run it.
struct FetchPlan {
    max_bytes: usize,
    min_bytes: usize,
    topics: Vec<TopicPlan>,
    session: SessionUse,
    /// Read passes made (what the long poll's tests count).
    #[cfg(test)]
    reads: std::sync::atomic::AtomicUsize,
}

/// One read pass: the response, which of the plan's partitions it holds (in plan order; an
/// incremental fetch leaves out those without news), the records in it left in files (with
/// their record counts in partition order: the others are counted from their bytes), bytes
/// of records in it, and whether a known partition errored.
struct ReadPass {
    response: FetchResponse,
    included: Vec<bool>,
    sends: FileSends,
    sent_record_counts: Vec<Option<u64>>,
    records_bytes: usize,
    any_error: bool,
}

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, request: FetchRequest) -> Completion {
    // Only other brokers fetch with a replica id; this single node has no followers.
    let replica_error = (request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0)
        .then_some(ResponseError::NotLeaderOrFollower.code());
    let max_wait_ms = u64::try_from(request.max_wait_ms)
        .unwrap_or(0)
        .min(FETCH_MAX_WAIT_MS_MAX);
    let by_id = header.request_api_version >= TOPIC_IDS_VERSION_MIN;
    // Before v7 the session fields do not exist and decode as id 0, epoch -1: sessionless.
    let (session, wanted) = match fetch_session::open(ctx, &request, by_id) {
        Ok(opened) => opened,
        Err(code) => {
            // Kafka's `SessionErrorContext`: no partitions, no session.
            let mut response = FetchResponse::default();
            response.error_code = code;
            return Completion::ready(ResponseKind::Fetch(response));
        }
    };
    let plan = FetchPlan::new(ctx, &request, wanted, session, replica_error);
    let first = plan.read();
    // Kafka sets the unknown partitions aside (`KafkaApis.handleFetchRequest`'s `erroneous`)
    // and long-polls only the others: with none left it answers at once; an unknown one
    // beside them neither ends nor shortens the wait (`ReplicaManager.fetchMessages` and
    // `DelayedFetch.tryComplete` never see it). Errors of known partitions end it.
    if max_wait_ms == 0
        || !plan.any_known()
        || first.any_error
        || first.records_bytes >= plan.min_bytes
    {
        return Completion::Ready(plan.answer(first));
    }
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
    Completion::Pending(async move { long_poll(&plan, deadline).await }.boxed())
}

/// Re-reads when a partition's end offset moves, until `min_bytes` or the deadline (or a
/// partition's read would fail: its log deleted, or its start moved past the offset); but only
/// once the logs have grown enough since the last read that it could reach `min_bytes`: a
/// read copies up to `max_bytes`, and re-reading on every small append made a fetch with a
/// large `min_bytes` copy its growing data once per append.
///
/// The waits ([`waits`]) are set up once and kept across wake-ups, so a wake-up costs what
/// moved, not every wait (a consumer tailing 1 000 partitions re-armed 1 000 waits per
/// append).
async fn long_poll(plan: &FetchPlan, deadline: Instant) -> Answer {
    long_poll_waking(plan, deadline, FETCH_WAKEUPS_MAX).await
}

/// [`long_poll`] answering after `wakeups_max` wake-ups that moved its own partitions.
async fn long_poll_waking(plan: &FetchPlan, deadline: Instant, wakeups_max: usize) -> Answer {
    let waiting: Vec<(&Arc<PartitionLog>, i64)> = plan
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.log.as_ref().ok().map(|log| (log, p.ask.fetch_offset)))
        .collect();
    let logs: Vec<&Arc<PartitionLog>> = waiting.iter().map(|(log, _)| *log).collect();
    let mut moves: FuturesUnordered<_> = waits(plan).into_iter().map(moved).collect();
    // Waits and the appended count are taken before each read, so an append racing it still
    // wakes the wait below and counts as growth. One count per wake-up serves both the read
    // that may follow and the next wake-up's comparison.
    let mut appended = appended_bytes(&logs);
    let mut read_appended = appended;
    let mut read_bytes = 0usize;
    let mut read_now = true;
    let mut wakeups = 0usize;
    while wakeups < wakeups_max {
        if read_now {
            read_appended = appended;
            let pass = plan.read();
            if pass.any_error || pass.records_bytes >= plan.min_bytes {
                return plan.answer(pass);
            }
            read_bytes = pass.records_bytes;
        }
        if moves.is_empty() {
            tokio::time::sleep_until(deadline).await;
            break;
        }
        match tokio::time::timeout_at(deadline, moves.next()).await {
            Ok(Some(Some(wait))) => moves.push(moved(wait)),
            // Deadline passed, or a log was closed (shutdown).
            Err(_) | Ok(Some(None)) | Ok(None) => break,
        }
        // Appends grow a log by what they add; retention and compaction only shrink it, so
        // a read now returns at most `read_bytes` plus what was appended since.
        let now_appended = appended_bytes(&logs);
        let grown_bytes = now_appended.saturating_sub(read_appended);
        let reachable_bytes = u64::try_from(read_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(grown_bytes);
        // A deleted log, or a fetch offset now below its log start (retention, DeleteRecords:
        // both wake the watches), reads as an error, which ends the wait: read it at once.
        let any_error = waiting
            .iter()
            .any(|(log, offset)| log.is_deleted() || *offset < log.log_start_offset());
        read_now = any_error || reachable_bytes >= plan.min_bytes as u64;
        if any_error || now_appended != appended {
            wakeups += 1;
        }
        appended = now_appended;
    }
    plan.answer(plan.read())
}

/// What a long poll waits on: one partition's end, or any of a topic's partitions.
enum Wait {
    Log(watch::Receiver<i64>),
    Topic(watch::Receiver<u64>),
}

/// The long poll's waits: one per partition where the fetch has few of a topic, one for the
/// topic where it has more than [`PARTITION_WAITS_MAX`] (a wait costs a registration when set
/// up and when dropped; a topic's wait also wakes for its other partitions, which a check of
/// the fetch's own growth then sets aside).
fn waits(plan: &FetchPlan) -> Vec<Wait> {
    let mut waits = Vec::new();
    for topic in &plan.topics {
        let logs: Vec<&Arc<PartitionLog>> = (topic.partitions.iter())
            .filter_map(|p| p.log.as_ref().ok())
            .collect();
        match logs.first() {
            Some(first) if logs.len() > PARTITION_WAITS_MAX => {
                waits.push(Wait::Topic(first.topic_moves()))
            }
            _ => waits.extend(logs.iter().map(|log| Wait::Log(log.end_offset_watch()))),
        }
    }
    waits
}

/// Resolves when `wait`'s log (or topic) moves: an append, a new log start, a deletion; with
/// the wait to wait on again, `None` when it was closed.
async fn moved(mut wait: Wait) -> Option<Wait> {
    let changed = match &mut wait {
        Wait::Log(watch) => watch.changed().await,
        Wait::Topic(watch) => watch.changed().await,
    };
    changed.ok().map(|()| wait)
}

/// The fetched partitions' logs, in order, or the errors they are answered with: an unknown
/// partition (UNKNOWN_TOPIC_OR_PARTITION, and only then), then a replica's fetch, then the
/// client's leader epoch (v9+; a negative one asks for no check, as Kafka's
/// `FetchRequest.optionalEpoch` reads it). A topic named by id (v13+, `topic_id` not nil)
/// must still have that id: INCONSISTENT_TOPIC_ID when it was deleted and created again
/// since the id was resolved to its name. Each run of partitions of one topic is looked up
/// together ([`crate::log::LogManager::partitions_of`]).
fn partition_logs(
    ctx: &BrokerContext,
    wanted: &[Wanted],
    replica_error: Option<i16>,
) -> Vec<Result<Arc<PartitionLog>, i16>> {
    let mut logs = Vec::with_capacity(wanted.len());
    for run in wanted.chunk_by(|a, b| a.name == b.name && a.topic_id == b.topic_id) {
        let Some(first) = run.first() else {
            continue;
        };
        // A run shares its name, or its error (UNKNOWN_TOPIC_ID).
        let name = match &first.name {
            Ok(name) => name,
            Err(code) => {
                logs.extend(run.iter().map(|_| Err(*code)));
                continue;
            }
        };
        let partitions: Vec<i32> = run.iter().map(|w| w.key.partition).collect();
        let id = (!first.topic_id.is_nil()).then_some(first.topic_id);
        let found = ctx.logs.partitions_of(name.0.as_str(), id, &partitions);
        logs.extend(run.iter().zip(found).map(|(w, log)| {
            let log = log.map_err(|e| log_error_i16(&e))?;
            if let Some(code) = replica_error {
                return Err(code);
            }
            let epoch = w.ask.current_leader_epoch;
            leader_epoch::check((epoch >= 0).then_some(epoch)).map_err(|e| e.code())?;
            Ok(log)
        }));
    }
    logs
}

/// Bytes appended to `logs`, all together ([`PartitionLog::appended_bytes`]).
fn appended_bytes(logs: &[&Arc<PartitionLog>]) -> u64 {
    (logs.iter())
        .map(|log| log.appended_bytes())
        .fold(0u64, u64::saturating_add)
}

impl FetchPlan {
    /// Kafka answers the partitions it knows first and the unknown ones after them
    /// (`KafkaApis.handleFetchRequest` puts its `erroneous` list after the partitions read),
    /// each group in the order wanted; and it puts consecutive partitions of one topic in one
    /// topic entry (`FetchResponse.toMessage`).
    fn new(
        ctx: &BrokerContext,
        request: &FetchRequest,
        wanted: Vec<Wanted>,
        session: SessionUse,
        replica_error: Option<i16>,
    ) -> FetchPlan {
        let logs = partition_logs(ctx, &wanted, replica_error);
        let planned = wanted.into_iter().zip(logs).map(|(w, log)| {
            let plan = PartitionPlan {
                key: w.key,
                ask: w.ask,
                log,
                last_answered: w.last_answered,
            };
            (w.name.unwrap_or_default(), w.topic_id, plan)
        });
        let (known, unknown): (Vec<_>, Vec<_>) = planned.partition(|(_, _, plan)| plan.known());
        let mut topics: Vec<TopicPlan> = Vec::with_capacity(request.topics.len());
        for (name, topic_id, plan) in known.into_iter().chain(unknown) {
            match topics.last_mut() {
                Some(last) if last.name == name && last.topic_id == topic_id => {
                    last.partitions.push(plan)
                }
                _ => topics.push(TopicPlan {
                    name,
                    topic_id,
                    partitions: vec![plan],
                }),
            }
        }
        FetchPlan {
            max_bytes: clamp_bytes(request.max_bytes),
            min_bytes: usize::try_from(request.min_bytes).unwrap_or(0),
            topics,
            session,
            #[cfg(test)]
            reads: Default::default(),
        }
    }

    /// Whether any partition named exists (Kafka's `interesting` set is not empty).
    fn any_known(&self) -> bool {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(PartitionPlan::known)
    }

    /// The response of the pass that is sent, with its traffic counted per partition (here,
    /// not per pass: a long poll reads several times but answers once), given its session
    /// (created, or filtered to what changed).
    fn answer(&self, pass: ReadPass) -> Answer {
        let plans = self.included(&pass.included);
        let sent = pass
            .response
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions);
        for ((partition, data), counted) in plans.zip(sent).zip(&pass.sent_record_counts) {
            let (Ok(log), Some(records)) = (&partition.log, &data.records) else {
                continue;
            };
            let record_count = counted.unwrap_or_else(|| count_records(records));
            log.traffic.add_out(records.len() as u64, record_count);
        }
        let keys = (self.included(&pass.included)).map(|partition| (&partition.key, partition.ask));
        let mut response = pass.response;
        match fetch_session::answer(&self.session, keys, &mut response) {
            Ok(()) => Answer {
                body: ResponseKind::Fetch(response),
                sends: pass.sends,
            },
            Err(refused) => Answer {
                body: ResponseKind::Fetch(refused),
                sends: FileSends::default(),
            },
        }
    }

    /// The plan's partitions a pass's response holds, in order.
    fn included<'a>(&'a self, included: &'a [bool]) -> impl Iterator<Item = &'a PartitionPlan> {
        (self.topics.iter().flat_map(|topic| &topic.partitions))
            .zip(included)
            .filter_map(|(partition, &held)| held.then_some(partition))
    }

    /// Reads every partition once, within the response and partition byte limits; an
    /// incremental fetch skips those with nothing new ([`PartitionPlan::unchanged`]).
    fn read(&self) -> ReadPass {
        #[cfg(test)]
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = FetchResponse::default();
        let mut included = Vec::new();
        let mut sends = FileSends::default();
        let mut sent_record_counts = Vec::new();
        let mut records_bytes = 0usize;
        let mut any_error = false;
        for topic in &self.topics {
            let mut topic_response = FetchableTopicResponse::default();
            topic_response.topic = topic.name.clone();
            topic_response.topic_id = topic.topic_id;
            for partition in &topic.partitions {
                let unchanged = partition.unchanged();
                included.push(!unchanged);
                if unchanged {
                    continue;
                }
                let budget_bytes = self.max_bytes.saturating_sub(records_bytes);
                let limits = ReadLimits {
                    budget_bytes,
                    first_with_data: records_bytes == 0,
                };
                let (data, sent_record_count) = read_partition(partition, limits, &mut sends);
                sent_record_counts.push(sent_record_count);
                any_error |= partition.known() && data.error_code != 0;
                records_bytes += data.records.as_ref().map_or(0, Bytes::len);
                topic_response.partitions.push(data);
            }
            if !topic_response.partitions.is_empty() {
                response.responses.push(topic_response);
            }
        }
        ReadPass {
            response,
            included,
            sends,
            sent_record_counts,
            records_bytes,
            any_error,
        }
    }
}

/// What one partition's read may return.
#[derive(Debug, Clone, Copy)]
struct ReadLimits {
    /// Response bytes left.
    budget_bytes: usize,
    /// No partition before this one returned records.
    first_with_data: bool,
}

/// One partition's answer. The first partition with data gets at least one whole batch even
/// when it exceeds the limits (so a large batch can never stall a consumer); later ones only
/// whole batches that fit. Records left in a file get a placeholder from `sends`, and their
/// record count (from their headers) comes back beside the answer.
fn read_partition(
    plan: &PartitionPlan,
    limits: ReadLimits,
    sends: &mut FileSends,
) -> (PartitionData, Option<u64>) {
    let mut data = PartitionData::default();
    data.partition_index = plan.key.partition;
    data.high_watermark = -1;
    data.last_stable_offset = -1;
    data.log_start_offset = -1;
    data.records = Some(Bytes::new());
    let log = match &plan.log {
        Ok(log) => log,
        Err(code) => {
            data.error_code = *code;
            return (data, None);
        }
    };
    let mut sent_record_count = None;
    let limit_bytes = clamp_bytes(plan.ask.partition_max_bytes).min(limits.budget_bytes);
    let read = log
        .fetch_read(plan.ask.fetch_offset, limit_bytes, limits.first_with_data)
        .and_then(|read| {
            let records = match read.records {
                FetchRecords::Copied(bytes) => bytes,
                FetchRecords::InFile(slice) => {
                    let record_count = slice.record_count;
                    match sends.placeholder(slice) {
                        Ok(placeholder) => {
                            sent_record_count = Some(record_count);
                            placeholder
                        }
                        Err(slice) => slice.read_bytes()?,
                    }
                }
            };
            Ok((read.high_watermark, read.log_start_offset, records))
        });
    match read {
        Ok((high_watermark, log_start_offset, records)) => {
            data.high_watermark = high_watermark;
            data.last_stable_offset = high_watermark;
            data.log_start_offset = log_start_offset;
            data.records = Some(records);
        }
        // Kafka answers a failed read (OFFSET_OUT_OF_RANGE too) with every offset unknown
        // (-1, as set above); clients find where to resume with ListOffsets.
        Err(e) => data.error_code = log_error_i16(&e),
    }
    (data, sent_record_count)
}

/// Most record bytes `request` may be answered with (beyond the one batch larger than the
/// limits that the first partition with data may get): the smaller of its `max_bytes` and
/// the sum of its partition limits, each as this handler caps them. The connection holds
/// that much room for the answer until it is written.
pub fn response_bytes_max(request: &FetchRequest) -> usize {
    // An incremental fetch also reads its session's partitions, which the request does not
    // name: only its `max_bytes` bounds the answer.
    if request.session_epoch > SESSION_EPOCH_INITIAL {
        return clamp_bytes(request.max_bytes);
    }
    let partitions_bytes = request
        .topics
        .iter()
        .flat_map(|topic| &topic.partitions)
        .map(|partition| clamp_bytes(partition.partition_max_bytes))
        .fold(0usize, usize::saturating_add);
    clamp_bytes(request.max_bytes).min(partitions_bytes)
}

/// A wire byte limit as a usize, negative as 0, capped at the response bound.
fn clamp_bytes(limit: i32) -> usize {
    usize::try_from(limit)
        .unwrap_or(0)
        .min(FETCH_RESPONSE_MAX_BYTES)
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
