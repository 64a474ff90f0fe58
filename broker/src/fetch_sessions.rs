//! Incremental fetch sessions (KIP-227), as Kafka's `FetchSessionCache` / `FetchManager`.
//!
//! A consumer fetching many partitions sends them all in every full fetch, and gets every one
//! back, records or not. With a session, the broker remembers the partitions and their fetch
//! offsets: the client's next (incremental) fetch names only the partitions it added or whose
//! offset moved (and those it forgets), and the answer carries only the partitions that have
//! records, an error, or a new high watermark or log start offset.
//!
//! The protocol, by the request's session id and epoch:
//! - epoch 0 (INITIAL): a full fetch asking for a session; any session it names is closed. The
//!   answer carries the new session's id, or 0 when the cache declines (it is full of sessions
//!   nothing may evict, or the partitions would exceed the cache's partition bound).
//! - epoch -1 (FINAL): a full fetch without a session; the session it names is closed.
//! - epoch > 0: incremental, on the session it names, whose epoch must be the one expected
//!   (FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH otherwise; a session created
//!   with topic names used from v13 with topic ids or the other way: FETCH_SESSION_TOPIC_ID_ERROR).
//!   The epoch advances when the request is taken, so a duplicate is refused; the answer is
//!   refused too (INVALID_FETCH_SESSION_EPOCH) if another request advanced it meanwhile.
//!
//! Bounds: `slots_max` sessions (Kafka's `max.incremental.fetch.session.cache.slots`, 1 000)
//! and [`FETCH_SESSION_PARTITIONS_MAX`] partitions cached across them all, which Kafka does not
//! bound: a client could otherwise grow one session without end by naming partitions that do
//! not exist. A new session may evict one unused for [`FETCH_SESSION_EVICTION_MS`] (Kafka's
//! `min.incremental.fetch.session.eviction.ms`), else the smallest one older than that if it
//! has fewer partitions (Kafka's `FetchSessionCache.tryEvict`, without followers' privilege:
//! this broker has none). An incremental fetch that would pass the partition bound closes its
//! session and is answered FETCH_SESSION_ID_NOT_FOUND: the client's next fetch is a full one,
//! which gets a session if one fits, else none.
//!
//! Locks: the cache's, then one session's (never the other way round, as Kafka's).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use parking_lot::Mutex;

/// Kafka's `min.incremental.fetch.session.eviction.ms`: a session unused this long may be
/// evicted by a new one; a newer one only by a larger one.
pub const FETCH_SESSION_EVICTION_MS: u64 = 120_000;
/// Partitions cached across all sessions (some 150 bytes each: ~30 MiB at the bound).
pub const FETCH_SESSION_PARTITIONS_MAX: usize = 200_000;
/// Kafka's default `max.incremental.fetch.session.cache.slots`.
pub const FETCH_SESSION_SLOTS_DEFAULT: usize = 1_000;

/// Session epoch of a full fetch asking for a session.
pub const SESSION_EPOCH_INITIAL: i32 = 0;
/// Session epoch of a full fetch without a session.
pub const SESSION_EPOCH_FINAL: i32 = -1;
/// The session id that names no session.
pub const SESSION_ID_NONE: i32 = 0;

/// The epoch after `epoch`: incremental epochs run 1..=i32::MAX and wrap to 1 (Kafka's
/// `FetchMetadata.nextEpoch`).
pub fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        e if e < 0 => SESSION_EPOCH_FINAL,
        i32::MAX => 1,
        e => e + 1,
    }
}

/// A topic as a session knows it: by name (Fetch below v13) or by id (v13+).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(TopicName),
    Id(uuid::Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What the client asks of one partition (the request's side of a cached partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionAsk {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
}

/// A partition's figures as last answered: a change in them makes it part of the next answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Answered {
    /// Never answered: the first answer includes the partition.
    const NONE: Answered = Answered {
        high_watermark: -1,
        log_start_offset: -1,
    };
}

/// One partition of a session.
#[derive(Debug, Clone)]
pub struct CachedPartition {
    pub key: PartitionKey,
    pub ask: PartitionAsk,
    answered: Answered,
}

impl CachedPartition {
    pub fn new(key: PartitionKey, ask: PartitionAsk, answered: Answered) -> CachedPartition {
        CachedPartition { key, ask, answered }
    }

    /// The figures the partition was last answered with.
    pub fn answered(&self) -> Answered {
        self.answered
    }

    /// Whether a partition answered with `records_bytes`, `error_code` and `now` must be in
    /// the answer, noting what it was answered with (Kafka's
    /// `CachedPartition.maybeUpdateResponseData`): records, an error, a new high watermark or
    /// log start. An error leaves the high watermark unknown, so the partition is answered
    /// again once the error is gone.
    fn must_answer(&mut self, records_bytes: usize, error_code: i16, now: Answered) -> bool {
        let changed = now != self.answered;
        self.answered = now;
        if error_code != 0 {
            self.answered.high_watermark = -1;
        }
        records_bytes > 0 || error_code != 0 || changed
    }
}

/// A fetch session: its partitions in answer order, each once.
#[derive(Debug)]
pub struct Session {
    id: i32,
    /// The epoch the next incremental fetch must carry.
    epoch: i32,
    /// Created by a fetch naming topics by id (v13+).
    by_id: bool,
    partitions: Vec<CachedPartition>,
    index: HashMap<PartitionKey, usize>,
}

impl Session {
    fn new(id: i32, by_id: bool, partitions: Vec<CachedPartition>) -> Session {
        let mut session = Session {
            id,
            epoch: next_epoch(SESSION_EPOCH_INITIAL),
            by_id,
            partitions,
            index: HashMap::new(),
        };
        session.reindex();
        session
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    /// The session's partitions, in the order their answers go.
    pub fn partitions(&self) -> &[CachedPartition] {
        &self.partitions
    }

    fn reindex(&mut self) {
        self.index = (self.partitions.iter().enumerate())
            .map(|(at, p)| (p.key.clone(), at))
            .collect();
    }

    /// The index after a reorder (same keys, new places): updated in place, no key cloned and
    /// nothing allocated, as an answer reorders its session on every fetch.
    fn renumber(&mut self) {
        for (at, p) in self.partitions.iter().enumerate() {
            if let Some(slot) = self.index.get_mut(&p.key) {
                *slot = at;
            }
        }
    }

    /// Adds the partitions asked that the session lacks (at the end, in request order),
    /// updates what is asked of the others, then drops the forgotten ones (Kafka's
    /// `FetchSession.update`).
    fn update(&mut self, asked: &[(PartitionKey, PartitionAsk)], forgotten: &[PartitionKey]) {
        for (key, ask) in asked {
            match self
                .index
                .get(key)
                .and_then(|&at| self.partitions.get_mut(at))
            {
                Some(cached) => cached.ask = *ask,
                None => {
                    self.index.insert(key.clone(), self.partitions.len());
                    let cached = CachedPartition::new(key.clone(), *ask, Answered::NONE);
                    self.partitions.push(cached);
                }
            }
        }
        let held: std::collections::HashSet<&PartitionKey> = (forgotten.iter())
            .filter(|key| self.index.contains_key(*key))
            .collect();
        if !held.is_empty() {
            self.partitions.retain(|p| !held.contains(&p.key));
            self.reindex();
        }
    }

    /// Keeps, of an answer's partitions (key, record bytes, error, figures), those that must be
    /// answered, and moves them to the end of the session's order, so partitions left out of
    /// a size-limited answer come first next time (KIP-227's fairness; Kafka re-adds each
    /// answered partition at the end). Returns, per partition given, whether it stays.
    pub fn select(&mut self, answers: &[(PartitionKey, usize, i16, Answered)]) -> Vec<bool> {
        let keep: Vec<bool> = answers
            .iter()
            .map(|(key, records_bytes, error_code, now)| {
                let at = self.index.get(key).copied();
                match at.and_then(|at| self.partitions.get_mut(at)) {
                    Some(cached) => cached.must_answer(*records_bytes, *error_code, *now),
                    // Not the session's (cannot happen while the epoch matched): answer it.
                    None => true,
                }
            })
            .collect();
        let answered: Vec<&PartitionKey> = (answers.iter().zip(&keep))
            .filter(|(_, &kept)| kept)
            .map(|((key, ..), _)| key)
            .collect();
        if !answered.is_empty() {
            let mut moved: Vec<Option<CachedPartition>> = vec![None; answered.len()];
            let position: HashMap<&PartitionKey, usize> =
                answered.iter().enumerate().map(|(i, k)| (*k, i)).collect();
            let mut rest = Vec::with_capacity(self.partitions.len());
            for cached in self.partitions.drain(..) {
                match position.get(&cached.key).and_then(|&i| moved.get_mut(i)) {
                    Some(slot) => *slot = Some(cached),
                    None => rest.push(cached),
                }
            }
            rest.extend(moved.into_iter().flatten());
            self.partitions = rest;
            self.renumber();
        }
        keep
    }

    /// Whether an answer made now belongs to the request that expected `epoch` next.
    pub fn answers_epoch(&self, epoch: i32) -> bool {
        self.epoch == epoch
    }
}

/// What an incremental fetch got: its session (epoch advanced) and the epoch its answer must
/// still find, or, when the request left the session empty, nothing (the session is closed
/// and the fetch is sessionless, as Kafka's).
pub struct Incremental {
    pub session: Arc<Mutex<Session>>,
    pub expected_epoch: i32,
}

struct Entry {
    session: Arc<Mutex<Session>>,
    partitions: usize,
    created: Instant,
    last_used: Instant,
}

#[derive(Default)]
struct Cache {
    sessions: HashMap<i32, Entry>,
    partitions: usize,
}

impl Cache {
    fn remove(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(entry) => {
                self.partitions = self.partitions.saturating_sub(entry.partitions);
                true
            }
            None => false,
        }
    }

    /// Evicts the session a new one of `partitions` may replace (Kafka's `tryEvict`): the
    /// least recently used if unused for `eviction`, else the smallest (then lowest id) of
    /// those created before `eviction`, if smaller than the new one.
    fn try_evict(&mut self, partitions: usize, now: Instant, eviction: Duration) -> bool {
        let stale = (self.sessions.iter())
            .min_by_key(|(&id, e)| (e.last_used, id))
            .filter(|(_, e)| now.saturating_duration_since(e.last_used) > eviction)
            .map(|(&id, _)| id);
        let victim = stale.or_else(|| {
            (self.sessions.iter())
                .filter(|(_, e)| now.saturating_duration_since(e.created) > eviction)
                .min_by_key(|(&id, e)| (e.partitions, id))
                .filter(|(_, e)| e.partitions < partitions)
                .map(|(&id, _)| id)
        });
        victim.is_some_and(|id| self.remove(id))
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSessionStats {
    pub sessions: usize,
    pub partitions: usize,
    pub evictions: u64,
}

/// The broker's fetch sessions.
pub struct FetchSessions {
    cache: Mutex<Cache>,
    slots_max: usize,
    partitions_max: usize,
    eviction: Duration,
    evictions: AtomicU64,
}

impl FetchSessions {
    pub fn new(slots_max: usize) -> FetchSessions {
        FetchSessions::with_bounds(
            slots_max,
            FETCH_SESSION_PARTITIONS_MAX,
            Duration::from_millis(FETCH_SESSION_EVICTION_MS),
        )
    }

    pub fn with_bounds(slots_max: usize, partitions_max: usize, eviction: Duration) -> Self {
        FetchSessions {
            cache: Mutex::new(Cache::default()),
            slots_max,
            partitions_max,
            eviction,
            evictions: AtomicU64::new(0),
        }
    }

    /// Sessions kept at most.
    pub fn slots_max(&self) -> usize {
        self.slots_max
    }

    /// Closes session `id` if there is one (a full fetch naming it).
    pub fn close(&self, id: i32) {
        if id != SESSION_ID_NONE {
            self.cache.lock().remove(id);
        }
    }

    /// A new session holding `partitions`, its id; or [`SESSION_ID_NONE`] when the cache has no
    /// room and may evict nothing for it (Kafka's `maybeCreateSession`).
    pub fn create(&self, by_id: bool, partitions: Vec<CachedPartition>, now: Instant) -> i32 {
        let size = partitions.len();
        let mut cache = self.cache.lock();
        if size > self.partitions_max || self.slots_max == 0 {
            return SESSION_ID_NONE;
        }
        while cache.sessions.len() >= self.slots_max
            || cache.partitions + size > self.partitions_max
        {
            if !cache.try_evict(size, now, self.eviction) {
                return SESSION_ID_NONE;
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        // Random and positive, as Kafka's (a client cannot guess another's session); a
        // version-4 uuid's random bits are the broker's one source of randomness.
        let id = loop {
            let bits = uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff;
            let id = i32::try_from(bits).unwrap_or(0);
            if id != SESSION_ID_NONE && !cache.sessions.contains_key(&id) {
                break id;
            }
        };
        let entry = Entry {
            session: Arc::new(Mutex::new(Session::new(id, by_id, partitions))),
            partitions: size,
            created: now,
            last_used: now,
        };
        cache.sessions.insert(id, entry);
        cache.partitions += size;
        id
    }

    /// Takes an incremental fetch on session `id` at `epoch`: adds or updates the partitions
    /// `asked`, drops the `forgotten`, advances the epoch. `Ok(None)`: the session is now
    /// empty and closed (the fetch is sessionless). Errors are the answer's error code.
    pub fn incremental(
        &self,
        id: i32,
        epoch: i32,
        by_id: bool,
        asked: &[(PartitionKey, PartitionAsk)],
        forgotten: &[PartitionKey],
        now: Instant,
    ) -> Result<Option<Incremental>, i16> {
        let mut cache = self.cache.lock();
        let Some(entry) = cache.sessions.get_mut(&id) else {
            return Err(ResponseError::FetchSessionIdNotFound.code());
        };
        let session_arc = Arc::clone(&entry.session);
        let mut session = session_arc.lock();
        if session.epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        if session.by_id != by_id {
            return Err(ResponseError::FetchSessionTopicIdError.code());
        }
        session.update(asked, forgotten);
        let size = session.partitions.len();
        let old_size = entry.partitions;
        entry.partitions = size;
        entry.last_used = now;
        cache.partitions = cache.partitions.saturating_sub(old_size) + size;
        if size == 0 || cache.partitions > self.partitions_max {
            cache.remove(id);
            return if size == 0 {
                Ok(None)
            } else {
                Err(ResponseError::FetchSessionIdNotFound.code())
            };
        }
        session.epoch = next_epoch(session.epoch);
        let expected_epoch = session.epoch;
        drop(session);
        Ok(Some(Incremental {
            session: session_arc,
            expected_epoch,
        }))
    }

    pub fn stats(&self) -> FetchSessionStats {
        let cache = self.cache.lock();
        FetchSessionStats {
            sessions: cache.sessions.len(),
            partitions: cache.partitions,
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[path = "fetch_sessions_tests.rs"]
mod tests;
