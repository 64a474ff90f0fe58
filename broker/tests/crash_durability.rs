//! Kill -9 durability: the real broker binary is SIGKILLed at random moments while two
//! acks=all producers, one acks=1 producer and an offset committer are writing, then
//! restarted on the same data directory. After every restart:
//! - every acknowledged record (acks=all and acks=1: a process crash keeps the page cache) is
//!   at the offset it was acknowledged with;
//! - offsets run 0, 1, 2, … with no gap or repeat, and every value was really sent, once;
//! - the group's committed offset is the last acknowledged commit (or the one in flight).
//!
//! An idempotent acks=all producer writes too, with one producer id across all cycles: the
//! batch it had in flight at a kill is sent again after the restart with the same sequence
//! numbers, as a client retries it. If the killed broker had stored it, the restarted one
//! must know it from the log (the producer state is rebuilt after an unclean stop, not
//! loaded from a clean-shutdown snapshot) and answer with its original offset, storing
//! nothing; if not, it is stored now. Either way each value is in the log once.
//!
//! Some cycles kill the broker while it is still starting (recovering) instead.
//!
//! Knobs: `RUNNEL_CRASH_CYCLES` (default 20) and `RUNNEL_CRASH_SEED` (default: the clock;
//! printed, so a failure replays). Long run:
//! `RUNNEL_CRASH_CYCLES=500 cargo test --release -p runnel-broker --test crash_durability -- --nocapture`

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    GroupId, InitProducerIdRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use support::{
    batch, batch_from, metadata, produce, read_all, topic_name, BrokerProcess, Client, Lcg,
    Sequenced,
};

const TOPIC_ALL: &str = "crash-all";
const TOPIC_ONE: &str = "crash-one";
const TOPIC_IDEM: &str = "crash-idem";
const GROUP: &str = "crash-group";
/// Longest a cycle's workload runs before the kill.
const RUN_MS_MAX: u64 = 300;
/// Bound on joining the workload tasks after a kill (their reads fail at once on EOF).
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What one topic's producers were told, across all cycles.
#[derive(Default)]
struct TopicModel {
    /// offset → value, for every acknowledged record.
    acked: BTreeMap<i64, String>,
    /// Every value ever put in a request (acknowledged or not).
    sent: HashSet<String>,
}

#[derive(Clone, Copy)]
struct RetryAnswer {
    base_offset: i64,
    stored: bool,
}

/// The idempotent producer, across all cycles.
struct Idempotent {
    producer_id: i64,
    producer_epoch: i16,
    /// The sequence number of the next batch's first record.
    next_sequence: i32,
    /// The batch sent and not answered when the broker was killed: its first sequence and
    /// values.
    in_flight: Option<(i32, Vec<String>)>,
    /// What the restarted broker must answer its retry with, once `verify` read the log: the
    /// offset the killed broker stored it at, or the log's end (`stored` false).
    retry_answer: Option<RetryAnswer>,
    /// Retries answered as duplicates (the killed broker had stored the batch) and retries
    /// stored fresh.
    retries_duplicate: usize,
    retries_fresh: usize,
}

#[derive(Default)]
struct Model {
    all: TopicModel,
    one: TopicModel,
    idem: TopicModel,
    idempotent: Option<Idempotent>,
    commit_acked: Option<i64>,
    commit_in_flight: Option<i64>,
    commit_next: i64,
    /// Anything a task saw that must never happen (checked after every cycle).
    violations: Vec<String>,
}

impl Model {
    fn topic(&mut self, acks: i16) -> &mut TopicModel {
        if acks == 1 {
            &mut self.one
        } else {
            &mut self.all
        }
    }
}

type Shared = Arc<Mutex<Model>>;

/// A batch's worth (1–5) of values no one sent before: `{tag}-{n}`, `n` counting on from
/// `seq`.
fn next_values(rng: &mut Lcg, seq: &mut u64, tag: &str) -> Vec<String> {
    let count = 1 + rng.below(5);
    (0..count)
        .map(|_| {
            *seq += 1;
            format!("{tag}-{seq}")
        })
        .collect()
}

async fn produce_loop(addr: SocketAddr, model: Shared, acks: i16, tag: String, seed: u64) {
    let Ok(mut client) = Client::connect(addr).await else {
        return;
    };
    let topic = if acks == 1 { TOPIC_ONE } else { TOPIC_ALL };
    let mut rng = Lcg(seed);
    let mut seq = 0u64;
    loop {
        if acks == 1 {
            // acks=1 needs no fsync and would otherwise outrun everything; pace it so a
            // 500-cycle run's log stays small enough to re-read after every restart.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let values = next_values(&mut rng, &mut seq, &tag);
        model
            .lock()
            .unwrap()
            .topic(acks)
            .sent
            .extend(values.iter().cloned());
        let Ok(response) = client.send(&produce(topic, batch(&values), acks), 9).await else {
            return; // the broker died under us
        };
        let partition = &response.responses[0].partition_responses[0];
        let mut model = model.lock().unwrap();
        if partition.error_code != 0 {
            let code = partition.error_code;
            model
                .violations
                .push(format!("{tag}: produce error {code}"));
            return;
        }
        let Model {
            all,
            one,
            violations,
            ..
        } = &mut *model;
        let acked = if acks == 1 { one } else { all };
        acknowledge(acked, topic, partition.base_offset, values, violations);
    }
}

impl Idempotent {
    /// This producer's batch whose first sequence is `first_sequence`.
    fn at(&self, first_sequence: i32) -> Sequenced {
        Sequenced {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            first_sequence,
        }
    }
}

/// Sends `values` as an idempotent batch (acks=all): the error code and base offset, or why
/// there is no answer.
async fn send_sequenced(
    client: &mut Client,
    sequenced: Sequenced,
    values: &[String],
) -> std::io::Result<(i16, i64)> {
    let request = produce(TOPIC_IDEM, batch_from(values, Some(sequenced)), -1);
    let response = client.send(&request, 9).await?;
    let partition = &response.responses[0].partition_responses[0];
    Ok((partition.error_code, partition.base_offset))
}

/// The idempotent producer's loop: batches of 1–5 values until the broker dies; the batch
/// unanswered then stays `in_flight` for the next cycle to retry.
async fn idempotent_loop(addr: SocketAddr, model: Shared, tag: String, seed: u64) {
    let Ok(mut client) = Client::connect(addr).await else {
        return;
    };
    let mut rng = Lcg(seed);
    let mut seq = 0u64;
    loop {
        let values = next_values(&mut rng, &mut seq, &tag);
        let sequenced = {
            let mut model = model.lock().unwrap();
            model.idem.sent.extend(values.iter().cloned());
            let producer = model.idempotent.as_mut().unwrap();
            producer.in_flight = Some((producer.next_sequence, values.clone()));
            producer.at(producer.next_sequence)
        };
        let Ok((code, base_offset)) = send_sequenced(&mut client, sequenced, &values).await else {
            return; // the broker died under us: the batch stays in flight
        };
        let mut model = model.lock().unwrap();
        if code != 0 {
            model
                .violations
                .push(format!("{tag}: idempotent produce error {code}"));
            return;
        }
        let sent = values.len() as i32;
        let Model {
            idem, violations, ..
        } = &mut *model;
        acknowledge(idem, TOPIC_IDEM, base_offset, values, violations);
        let producer = model.idempotent.as_mut().unwrap();
        producer.in_flight = None;
        producer.next_sequence += sent;
    }
}

/// Notes `values` as acknowledged at `base_offset..`; an offset acknowledged twice is a
/// violation.
fn acknowledge(
    model: &mut TopicModel,
    topic: &str,
    base_offset: i64,
    values: Vec<String>,
    violations: &mut Vec<String>,
) {
    for (i, value) in values.into_iter().enumerate() {
        let offset = base_offset + i as i64;
        if let Some(old) = model.acked.insert(offset, value.clone()) {
            violations.push(format!(
                "{topic}@{offset} acknowledged twice: {old} then {value}"
            ));
        }
    }
}

/// The idempotent producer's id (once), then its batch left in flight by the last kill,
/// sent again: answered with the offset the restarted broker has it at, or stored now.
async fn idempotent_start(addr: SocketAddr, model: &Shared) {
    let mut client = Client::connect(addr).await.unwrap();
    if model.lock().unwrap().idempotent.is_none() {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let response = client.send(&request, 4).await.unwrap();
        assert_eq!(response.error_code, 0, "InitProducerId");
        model.lock().unwrap().idempotent = Some(Idempotent {
            producer_id: response.producer_id.0,
            producer_epoch: response.producer_epoch,
            next_sequence: 0,
            in_flight: None,
            retry_answer: None,
            retries_duplicate: 0,
            retries_fresh: 0,
        });
    }
    let retry = {
        let model = model.lock().unwrap();
        let producer = model.idempotent.as_ref().unwrap();
        let batch = producer.in_flight.clone();
        batch.map(|(first, values)| (producer.at(first), values, producer.retry_answer))
    };
    let Some((sequenced, values, expected)) = retry else {
        return;
    };
    let expected = expected.expect("verify located the batch left in flight");
    let (code, base_offset) = send_sequenced(&mut client, sequenced, &values)
        .await
        .unwrap();
    let first = sequenced.first_sequence;
    assert_eq!(code, 0, "the retried batch {first}.. was refused");
    assert_eq!(
        base_offset, expected.base_offset,
        "a retry goes where the killed broker stored its batch (stored: {}), else at the end",
        expected.stored
    );
    let mut model = model.lock().unwrap();
    let mut violations = Vec::new();
    acknowledge(
        &mut model.idem,
        TOPIC_IDEM,
        base_offset,
        values.clone(),
        &mut violations,
    );
    assert!(violations.is_empty(), "{violations:?}");
    let producer = model.idempotent.as_mut().unwrap();
    producer.in_flight = None;
    producer.retry_answer = None;
    producer.next_sequence = first + values.len() as i32;
    match expected.stored {
        true => producer.retries_duplicate += 1,
        false => producer.retries_fresh += 1,
    }
}

fn commit_request(offset: i64) -> OffsetCommitRequest {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset);
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC_ALL))
            .with_partitions(vec![partition])])
}

async fn commit_loop(addr: SocketAddr, model: Shared) {
    let Ok(mut client) = Client::connect(addr).await else {
        return;
    };
    loop {
        let offset = {
            let mut model = model.lock().unwrap();
            model.commit_next += 1;
            model.commit_in_flight = Some(model.commit_next);
            model.commit_next
        };
        let Ok(response) = client.send(&commit_request(offset), 8).await else {
            return;
        };
        let code = response.topics[0].partitions[0].error_code;
        let mut model = model.lock().unwrap();
        if code != 0 {
            model.violations.push(format!("commit error {code}"));
            return;
        }
        model.commit_acked = Some(offset);
        model.commit_in_flight = None;
    }
}

async fn committed_offset(client: &mut Client) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC_ALL))
            .with_partition_indexes(vec![0])]));
    let response = client.send(&request, 7).await.unwrap();
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions[0].committed_offset
}

/// Checks one topic's log against what its producers were told. Returns its length.
fn check_topic(name: &str, log: &[(i64, String)], model: &TopicModel) -> usize {
    let mut seen = HashSet::new();
    for (i, (offset, value)) in log.iter().enumerate() {
        assert_eq!(*offset, i as i64, "{name}: offsets must be gap-free from 0");
        assert!(
            model.sent.contains(value),
            "{name}@{offset}: {value} was never sent"
        );
        assert!(seen.insert(value), "{name}@{offset}: {value} appears twice");
    }
    for (offset, value) in &model.acked {
        let found = log.get(*offset as usize).map(|(_, v)| v.as_str());
        assert_eq!(
            found,
            Some(value.as_str()),
            "{name}: acknowledged record lost or moved at offset {offset}"
        );
    }
    log.len()
}

/// Everything the broker serves after a restart agrees with the model.
async fn verify(addr: SocketAddr, model: &Shared) -> (usize, usize) {
    let mut client = Client::connect(addr).await.unwrap();
    let all = read_all(&mut client, TOPIC_ALL).await;
    let one = read_all(&mut client, TOPIC_ONE).await;
    let idem = read_all(&mut client, TOPIC_IDEM).await;
    let committed = committed_offset(&mut client).await;
    let mut model = model.lock().unwrap();
    assert!(model.violations.is_empty(), "{:?}", model.violations);
    let lengths = (
        check_topic(TOPIC_ALL, &all, &model.all),
        check_topic(TOPIC_ONE, &one, &model.one),
    );
    check_topic(TOPIC_IDEM, &idem, &model.idem);
    if let Some(producer) = model.idempotent.as_mut() {
        // Where the batch left in flight is, if the killed broker stored it: whole (its
        // values in a row) or not at all.
        if let Some((_, values)) = &producer.in_flight {
            let at = idem.iter().position(|(_, v)| *v == values[0]);
            if let Some(at) = at {
                let stored: Vec<&String> = idem[at..]
                    .iter()
                    .map(|(_, v)| v)
                    .take(values.len())
                    .collect();
                assert_eq!(
                    stored,
                    values.iter().collect::<Vec<_>>(),
                    "a batch stored in part"
                );
            } else {
                assert!(
                    !idem.iter().any(|(_, v)| values.contains(v)),
                    "a batch stored in part"
                );
            }
            producer.retry_answer = Some(RetryAnswer {
                base_offset: at.unwrap_or(idem.len()) as i64,
                stored: at.is_some(),
            });
        }
    }
    let acked = model.commit_acked.unwrap_or(-1);
    assert!(
        committed == acked || Some(committed) == model.commit_in_flight,
        "committed offset {committed}: last acknowledged {acked}, in flight {:?}",
        model.commit_in_flight
    );
    if committed >= 0 {
        model.commit_acked = Some(committed);
    }
    model.commit_in_flight = None;
    lengths
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let cycles = env_u64("RUNNEL_CRASH_CYCLES", 20);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = env_u64("RUNNEL_CRASH_SEED", clock);
    eprintln!("crash_durability: {cycles} cycles, RUNNEL_CRASH_SEED={seed}");
    let mut rng = Lcg(seed);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("broker.log");
    let model: Shared = Arc::default();
    let started = Instant::now();
    let mut kills_in_start = 0;
    for cycle in 0..cycles {
        let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
        if cycle % 5 == 4 {
            // Killed while starting: possibly mid-recovery.
            tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
            broker.kill9();
            kills_in_start += 1;
            continue;
        }
        broker.wait_ready().await;
        if cycle == 0 {
            let mut client = Client::connect(broker.addr).await.unwrap();
            client
                .send(&metadata(&[TOPIC_ALL, TOPIC_ONE, TOPIC_IDEM]), 12)
                .await
                .unwrap();
        }
        verify(broker.addr, &model).await;
        idempotent_start(broker.addr, &model).await;
        let tasks = vec![
            tokio::spawn(produce_loop(
                broker.addr,
                model.clone(),
                -1,
                format!("c{cycle}-a"),
                rng.next(),
            )),
            tokio::spawn(produce_loop(
                broker.addr,
                model.clone(),
                -1,
                format!("c{cycle}-b"),
                rng.next(),
            )),
            tokio::spawn(produce_loop(
                broker.addr,
                model.clone(),
                1,
                format!("c{cycle}-o"),
                rng.next(),
            )),
            tokio::spawn(commit_loop(broker.addr, model.clone())),
            tokio::spawn(idempotent_loop(
                broker.addr,
                model.clone(),
                format!("c{cycle}-i"),
                rng.next(),
            )),
        ];
        tokio::time::sleep(Duration::from_millis(1 + rng.below(RUN_MS_MAX))).await;
        broker.kill9();
        for task in tasks {
            tokio::time::timeout(JOIN_TIMEOUT, task)
                .await
                .unwrap()
                .unwrap();
        }
    }
    let mut broker = BrokerProcess::spawn(&data_dir, &log_path, &[]);
    broker.wait_ready().await;
    let (all, one) = verify(broker.addr, &model).await;
    assert!(
        broker.sigterm_and_wait(Duration::from_secs(30)),
        "clean exit on SIGTERM"
    );
    let model = model.lock().unwrap();
    eprintln!(
        "crash_durability: {cycles} cycles ({kills_in_start} killed while starting) in {:.1} s; \
         acks=all: {} acknowledged of {all} stored; acks=1: {} acknowledged of {one} stored; \
         last committed offset {:?}; idempotent: {} acknowledged, retries after a kill \
         {} answered as duplicates, {} stored fresh; acknowledged records lost: 0",
        started.elapsed().as_secs_f64(),
        model.all.acked.len(),
        model.one.acked.len(),
        model.commit_acked,
        model.idem.acked.len(),
        model.idempotent.as_ref().map_or(0, |p| p.retries_duplicate),
        model.idempotent.as_ref().map_or(0, |p| p.retries_fresh),
    );
    assert!(
        !model.all.acked.is_empty(),
        "the workload acknowledged nothing"
    );
}
