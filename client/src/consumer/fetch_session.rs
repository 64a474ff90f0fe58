//! KIP-227 incremental fetch sessions, client side (as Java's `FetchSessionHandler`): per
//! broker lane, which partitions the broker holds in the lane's session and at what fetch
//! offset, so that each Fetch after the first lists only what changed — partitions added,
//! or whose fetch offset or max bytes moved — and forgets those no longer wanted. The
//! broker answers only the partitions with something new; one left out has no new data.
//!
//! A session is (id, epoch of the next request):
//! - (0, 0): a full fetch asking the broker to open a session (Java's INITIAL);
//! - (id, 0): a full fetch closing session `id` and asking for a new one, after an error;
//! - (id, n ≥ 1): the n-th incremental fetch of session `id`;
//! - (id, -1): closes session `id` ([`FetchSession::close`], when the consumer closes).
//!
//! A broker that declines (session id 0 in its answer) gets full fetches, each asking
//! again. FETCH_SESSION_ID_NOT_FOUND starts over at (0, 0); any other top-level error,
//! a malformed answer or a failed request at (id, 0) (Java's `handleResponse` and
//! `handleError`).
//!
//! From Fetch v13 topics go by id (KIP-516). A request with any topic whose id the client
//! does not know goes at v12 with names, as Java's `FetchRequest.Builder` does. Where Java
//! keeps a session through a switch between ids and names (the broker then answers
//! FETCH_SESSION_TOPIC_ID_ERROR) or a topic id change (its "replaced" partitions), this
//! client sends a full fetch instead: the same end, without a round trip that must fail.
//!
//! A session belongs to the one Fetch in flight on its lane (moved into the request's task
//! and handed back with the answer), so its epochs go out strictly one after another.
//!
//! The fetcher gives a request's partitions one by one ([`FetchSession::begin`],
//! [`FetchSession::want`]) while it walks its assignment, and the session updates the list
//! it holds in place, noting what changed; [`FetchSession::plan`] then makes the request.
//! A tailing lane wants the same partitions request after request, so the list is neither
//! rebuilt nor its partitions' `Arc`s cloned per request (an atomic count on a cache line
//! per partition: those clones and their drops in the request's task, on the other
//! runtime thread, were most of the fetcher's cost per request with 1 000 partitions).

use std::collections::{BTreeMap, HashMap};
use std::iter::Peekable;
use std::sync::Arc;
use std::vec;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use uuid::Uuid;

use super::TopicPartition;
use crate::cluster::topic_name;
use crate::error::codes;

/// In a request: no session to continue; in a response: the broker opened none.
const SESSION_ID_NONE: i32 = 0;
/// The epoch of a full fetch that asks for a session.
const EPOCH_INITIAL: i32 = 0;
/// The epoch that closes a session.
const EPOCH_FINAL: i32 = -1;
/// The first Fetch version with sessions (KIP-227).
const VERSION_SESSIONS_MIN: i16 = 7;
/// The last Fetch version that names topics; from v13 they go by id (KIP-516).
pub(super) const VERSION_NAMES_MAX: i16 = 12;

/// A partition as the fetcher shares it with its sessions and requests: each Fetch
/// planned names every partition of its lane, and a `String` copy of each per request
/// (with its free when the next replaced it) was a tailing consumer's main allocation.
pub(super) type SharedPartition = Arc<TopicPartition>;

/// What a lane fetches, sorted by partition, each once: the fetcher gives it in its sorted
/// walk of the assignment. As a `BTreeMap`, built per request from the sorted list and
/// dropped at the next, its node allocations, sort check and frees were 5 % of a bench
/// tailing 1 000 partitions, for a map only ever walked in order (and searched only to
/// check an answer).
pub(super) type WantedList = Vec<(SharedPartition, Wanted)>;

/// What the broker keeps of a partition in a session: a change to any of it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wanted {
    /// Nil when the client's metadata has no id for the topic.
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
}

/// One lane's session; see the module doc.
#[derive(Debug, Default)]
pub(super) struct FetchSession {
    id: i32,
    /// The epoch of the next request, and so of the one in flight (it moves on answers).
    next_epoch: i32,
    /// What the broker holds, as of the last request planned; while a request is being
    /// given ([`Self::want`]), partly the next request's.
    partitions: WantedList,
    /// The request being given, from [`Self::begin`] to [`Self::plan`].
    next: NextRequest,
    /// The session's topics by id, to read answers at v13+ (empty while names are used).
    names_by_id: HashMap<Uuid, String>,
    /// The last request named topics by id (v13+).
    uses_topic_ids: bool,
}

/// Partitions a session no longer holds, with their topic's id.
type Forgotten = Vec<(SharedPartition, Uuid)>;

/// The held entries a rebuild has not passed yet, in order.
type HeldRest = Peekable<vec::IntoIter<(SharedPartition, Wanted)>>;

/// What [`FetchSession::want`] has noted of the request being given.
#[derive(Debug)]
struct NextRequest {
    /// Between [`FetchSession::begin`] and the end of the giving.
    giving: bool,
    /// While every partition given so far was held, in the same order: the held entries
    /// before this one are the ones given (updated in place).
    cursor: usize,
    /// Once a partition was added or left out: the new list so far, and the held entries
    /// not yet passed (`partitions` is empty meanwhile).
    rebuilt: Option<(WantedList, HeldRest)>,
    /// Added, or held with another fetch offset, max bytes or topic id.
    changed: WantedList,
    forgotten: Forgotten,
    /// A held partition's topic id changed.
    topic_id_changed: bool,
    /// Every partition given has a topic id.
    topic_ids_known: bool,
    /// A partition was added or left out (set when the giving ends).
    membership_changed: bool,
}

impl Default for NextRequest {
    fn default() -> NextRequest {
        NextRequest {
            giving: false,
            cursor: 0,
            rebuilt: None,
            changed: Vec::new(),
            forgotten: Vec::new(),
            topic_id_changed: false,
            topic_ids_known: true,
            membership_changed: false,
        }
    }
}

impl NextRequest {
    /// A held partition wanted again: listed as changed if it was held otherwise.
    fn note(&mut self, tp: &SharedPartition, was: Wanted, want: Wanted) {
        if was != want {
            self.topic_id_changed |= was.topic_id != want.topic_id;
            self.changed.push((tp.clone(), want));
        }
    }
}

/// One Fetch, as its session plans it.
#[derive(Debug)]
pub(super) struct Plan {
    pub version: i16,
    pub session_id: i32,
    pub epoch: i32,
    /// Listed in the request: every wanted partition in a full fetch, the changed ones in
    /// an incremental one (sorted, so each topic's partitions are together).
    pub to_send: Vec<(SharedPartition, Wanted)>,
    /// Left out of the session from now on (incremental only).
    pub to_forget: Forgotten,
}

/// What an answer comes to.
#[derive(Debug)]
pub(super) enum Answer {
    /// The partitions answered; an incremental answer leaves out those with nothing new.
    /// Sorted, as the fetcher walks it beside the partitions it sent.
    Data(BTreeMap<TopicPartition, PartitionData>),
    /// Nothing of the answer is used and the next fetch is full. `code` is its top-level
    /// error (0: the answer named partitions the session does not hold); `after_full`: the
    /// request was already full, so a full fetch at once would change nothing.
    Rejected { code: i16, after_full: bool },
}

impl FetchSession {
    /// Starts giving the next request's partitions: [`Self::want`] each, then [`Self::plan`].
    /// A request given but never planned (its connection failed, which failed the session:
    /// the next fetch is full) is ended first; what it noted is dropped.
    pub fn begin(&mut self) {
        self.end_giving();
        self.next.giving = true;
    }

    /// `tp` is wanted at `want` by the request being given; partitions come sorted, each
    /// once. A partition held as it was costs a comparison: no copy, no `Arc` clone.
    pub fn want(&mut self, tp: &SharedPartition, want: Wanted) {
        let next = &mut self.next;
        debug_assert!(next.giving, "want before begin");
        next.topic_ids_known &= !want.topic_id.is_nil();
        if next.rebuilt.is_none() {
            match self.partitions.get_mut(next.cursor) {
                Some((held, was)) if held == tp => {
                    next.note(tp, *was, want);
                    *was = want;
                    next.cursor += 1;
                    return;
                }
                // Added or some left out: the rest is merged into a new list.
                _ => {
                    let mut kept = std::mem::take(&mut self.partitions);
                    let rest = kept.split_off(next.cursor);
                    next.rebuilt = Some((kept, rest.into_iter().peekable()));
                }
            }
        }
        let Some((list, rest)) = next.rebuilt.as_mut() else {
            return;
        };
        debug_assert!(
            list.last().is_none_or(|(last, _)| last < tp),
            "want out of order"
        );
        // Bounded by the session's size: each held partition is passed once.
        while let Some((gone, was)) = rest.next_if(|(held, _)| held < tp) {
            next.forgotten.push((gone, was.topic_id));
        }
        let held = rest.next_if(|(held, _)| held == tp);
        let was = held.as_ref().map(|&(_, was)| was);
        list.push((held.map_or_else(|| tp.clone(), |(held, _)| held), want));
        match was {
            Some(was) => next.note(tp, was, want),
            None => next.changed.push((tp.clone(), want)),
        }
    }

    /// Ends the request being given: the session then holds exactly what was given, and
    /// the rest is forgotten. Returns what was noted.
    fn end_giving(&mut self) -> NextRequest {
        let mut next = std::mem::take(&mut self.next);
        if !next.giving {
            // Nothing given since the last end: the session holds what it held.
            return next;
        }
        next.membership_changed = next.rebuilt.is_some();
        match next.rebuilt.take() {
            Some((list, rest)) => {
                debug_assert!(self.partitions.is_empty());
                let gone = rest.map(|(gone, was)| (gone, was.topic_id));
                next.forgotten.extend(gone);
                self.partitions = list;
            }
            None => {
                let gone = self.partitions.drain(next.cursor..);
                next.forgotten
                    .extend(gone.map(|(gone, was)| (gone, was.topic_id)));
            }
        }
        next.membership_changed |= !next.forgotten.is_empty();
        next
    }

    /// The request for the partitions given since [`Self::begin`], at most at `version_max`
    /// (the version the connection negotiated). The session then holds exactly those, as
    /// the broker will once it has the request.
    pub fn plan(&mut self, version_max: i16) -> Plan {
        debug_assert!(self.next.giving, "plan without begin");
        let next = self.end_giving();
        let use_ids = version_max > VERSION_NAMES_MAX && next.topic_ids_known;
        let version = match use_ids {
            true => version_max,
            false => version_max.min(VERSION_NAMES_MAX),
        };
        // A topic id change while topics go by id makes a full fetch (see the module doc).
        let incremental = self.id != SESSION_ID_NONE
            && self.next_epoch > EPOCH_INITIAL
            && version >= VERSION_SESSIONS_MIN
            && use_ids == self.uses_topic_ids
            && !(use_ids && next.topic_id_changed);
        let (to_send, to_forget) = match incremental {
            true => (next.changed, next.forgotten),
            false => {
                self.next_epoch = EPOCH_INITIAL;
                (self.partitions.clone(), Vec::new())
            }
        };
        // The session's topics by id change only with its partitions or their ids.
        let names_stale = next.membership_changed || next.topic_id_changed || !self.uses_topic_ids;
        if !use_ids {
            self.names_by_id.clear();
        } else if names_stale {
            self.names_by_id.clear();
            // Once per topic, not per partition: the list is sorted, so a topic's
            // partitions come together.
            let mut last_topic: Option<&str> = None;
            for (tp, want) in &self.partitions {
                if last_topic != Some(tp.topic.as_str()) {
                    last_topic = Some(tp.topic.as_str());
                    self.names_by_id
                        .entry(want.topic_id)
                        .or_insert_with(|| tp.topic.clone());
                }
            }
        }
        self.uses_topic_ids = use_ids;
        debug_assert!(incremental || to_forget.is_empty());
        Plan {
            version,
            session_id: self.id,
            epoch: self.next_epoch,
            to_send,
            to_forget,
        }
    }

    /// [`Self::begin`], [`Self::want`] each of `wanted`, then [`Self::plan`].
    #[cfg(test)]
    pub fn plan_list(&mut self, wanted: WantedList, version_max: i16) -> Plan {
        self.begin();
        for (tp, want) in &wanted {
            self.want(tp, *want);
        }
        self.plan(version_max)
    }

    /// Reads the answer to the last planned request and moves the session on: a full
    /// fetch answered with a session id opens it at epoch 1, an incremental one moves to
    /// the next epoch (after `i32::MAX` comes 1), and an answer without a session id (the
    /// broker declined or closed it) leaves the next fetch full.
    pub fn read_response(&mut self, response: FetchResponse) -> Answer {
        let after_full = self.next_epoch == EPOCH_INITIAL;
        if response.error_code != 0 {
            if response.error_code == codes::FETCH_SESSION_ID_NOT_FOUND {
                self.id = SESSION_ID_NONE;
            }
            self.next_epoch = EPOCH_INITIAL;
            return Answer::Rejected {
                code: response.error_code,
                after_full,
            };
        }
        let same_session =
            after_full || response.session_id == SESSION_ID_NONE || response.session_id == self.id;
        let data = match self.resolve(response.responses) {
            Some(data) if same_session => data,
            _ => {
                tracing::info!(
                    session = self.id,
                    answered = response.session_id,
                    "fetch answer names partitions or a session not asked for; fetching in full"
                );
                self.next_epoch = EPOCH_INITIAL;
                return Answer::Rejected {
                    code: 0,
                    after_full,
                };
            }
        };
        (self.id, self.next_epoch) = match (response.session_id, after_full) {
            (SESSION_ID_NONE, _) => (SESSION_ID_NONE, EPOCH_INITIAL),
            (id, true) => (id, 1),
            (id, false) => (id, self.next_epoch.checked_add(1).unwrap_or(1)),
        };
        Answer::Data(data)
    }

    /// The answer's partitions by name, or `None` if it names one the session does not
    /// hold (Java's `verifyFullFetchResponsePartitions` and its incremental twin; a full
    /// answer that leaves a partition out is read as "nothing new" here, not rejected).
    fn resolve(
        &self,
        topics: Vec<FetchableTopicResponse>,
    ) -> Option<BTreeMap<TopicPartition, PartitionData>> {
        let mut data = BTreeMap::new();
        for topic in topics {
            let name = match self.uses_topic_ids {
                true => self.names_by_id.get(&topic.topic_id)?.clone(),
                false => topic.topic.0.to_string(),
            };
            for partition in topic.partitions {
                let tp = TopicPartition::new(&name, partition.partition_index);
                let held = self
                    .partitions
                    .binary_search_by(|(held, _)| (**held).cmp(&tp));
                if held.is_err() {
                    return None;
                }
                data.insert(tp, partition);
            }
        }
        Some(data)
    }

    /// The broker holds this session (as far as the client knows).
    pub fn is_open(&self) -> bool {
        self.id != SESSION_ID_NONE
    }

    /// The request failed (no connection, a timeout): whatever the broker made of it, the
    /// next fetch is full and replaces the session (Java's `handleError`).
    pub fn fail(&mut self) {
        self.next_epoch = EPOCH_INITIAL;
    }

    /// The request that closes the session (epoch -1, no partitions, no wait), if there is
    /// one; the session is forgotten either way.
    pub fn close(&mut self) -> Option<FetchRequest> {
        let id = std::mem::take(self).id;
        (id != SESSION_ID_NONE).then(|| {
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_session_id(id)
                .with_session_epoch(EPOCH_FINAL)
        })
    }

    #[cfg(test)]
    pub fn id_and_epoch(&self) -> (i32, i32) {
        (self.id, self.next_epoch)
    }
}

impl Plan {
    /// The Fetch request: topics carry both name and id, and the encoder writes the one
    /// `version` has.
    pub fn request(&self, max_wait_ms: i32, max_bytes: i32) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (tp, want) in &self.to_send {
            let partition = FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(want.fetch_offset)
                .with_partition_max_bytes(want.max_bytes);
            match topics.last_mut() {
                Some(last) if last.topic.0.as_str() == tp.topic => last.partitions.push(partition),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(topic_name(&tp.topic))
                        .with_topic_id(want.topic_id)
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        for (tp, topic_id) in &self.to_forget {
            match forgotten.last_mut() {
                Some(last) if last.topic.0.as_str() == tp.topic => {
                    last.partitions.push(tp.partition)
                }
                _ => forgotten.push(
                    ForgottenTopic::default()
                        .with_topic(topic_name(&tp.topic))
                        .with_topic_id(*topic_id)
                        .with_partitions(vec![tp.partition]),
                ),
            }
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_session_id(self.session_id)
            .with_session_epoch(self.epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten)
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
