//! The fetch pipeline's unit tests: staging, decoding, lanes and leader lookups.

#![allow(clippy::unwrap_used)]

use runnel_protocol::builder::{BatchBuilder, BatchFields, NewRecord};

use super::decode::{decode_next, rewind, Decoded};
use super::*;
use crate::cluster::topic_name;

/// A batch of `count` records at `base_offset`, values `v<offset>`.
pub(super) fn batch(base_offset: i64, count: i64) -> Vec<u8> {
    let fields = BatchFields {
        base_offset,
        ..BatchFields::default()
    };
    let mut builder = BatchBuilder::new(fields, 1 << 20);
    for offset in base_offset..base_offset + count {
        let value = format!("v{offset}");
        let record = NewRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
        };
        builder.push(&record).unwrap();
    }
    builder.finish().unwrap().to_vec()
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn t(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

fn offsets(state: &PartitionState) -> Vec<i64> {
    state.buffered.iter().map(|r| r.offset).collect()
}

/// The session of a request that listed t-0 at `offset` (by name), as the request hands
/// it back with its answer.
fn sent_session(offset: i64) -> FetchSession {
    let mut session = FetchSession::default();
    let want = Wanted {
        topic_id: uuid::Uuid::nil(),
        fetch_offset: offset,
        max_bytes: 1 << 20,
    };
    session.plan_list(vec![(Arc::new(tp()), want)], 12);
    session
}

/// Marks t-0 as taken by a new Fetch on broker 0's lane 0, as `send_fetches` does; its id.
fn take_t0(fetcher: &mut Fetcher) -> u64 {
    let request = fetcher.next_request;
    fetcher.next_request += 1;
    fetcher.partitions.get_mut(&tp()).unwrap().request = request;
    fetcher.busy_lanes.push(((0, 0), request));
    request
}

/// A fetch response from broker 0 carrying `records` for partition t-0, sent at `offset`.
fn arrived(fetcher: &mut Fetcher, offset: i64, records: Vec<u8>) {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    let request = take_t0(fetcher);
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_high_watermark(offset + 10)
        .with_records(Some(Bytes::from(records)));
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic_name("t"))
        .with_partitions(vec![partition])]);
    let result = FetchResult {
        broker: 0,
        lane: 0,
        request,
        session: sent_session(offset),
        response: Ok(response),
    };
    fetcher.results_tx.try_send(result).unwrap();
}

/// A fetch response from broker 0 with error `code` for partition t-0, sent at 0.
fn failed(fetcher: &mut Fetcher, code: i16) -> FetchResult {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_error_code(code);
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic_name("t"))
        .with_partitions(vec![partition])]);
    FetchResult {
        broker: 0,
        lane: 0,
        request: take_t0(fetcher),
        session: sent_session(0),
        response: Ok(response),
    }
}

#[tokio::test]
async fn only_a_stale_leader_error_refreshes_metadata_and_the_leader_stays_cached() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::fake_broker::{self, Script, TopicAnswer};
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let addr = fake_broker::start(Script {
        metadata: Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            TopicAnswer::Leaders(vec![0])
        }),
        ..Script::default()
    })
    .await;
    let cluster = Cluster::connect(crate::ClientConfig::new(&addr))
        .await
        .unwrap();
    cluster.topic("t").await.unwrap();
    let mut fetcher = Fetcher::new(cluster.clone(), ConsumerConfig::new(&addr));
    fetcher.assign(&[tp()]);
    fetcher.seek(&tp(), 0).unwrap();
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(200));
    // CORRUPT_MESSAGE: back off and fetch again from the same leader.
    let failure = failed(&mut fetcher, 2);
    fetcher.receive(failure);
    settle().await;
    assert_eq!(asked.load(Ordering::SeqCst), 1, "no Metadata request");
    assert_eq!(cluster.cached_leader("t", 0), Some(0));
    // NOT_LEADER_OR_FOLLOWER: a refresh in the background; the leader stays usable.
    let failure = failed(&mut fetcher, codes::NOT_LEADER_OR_FOLLOWER);
    fetcher.receive(failure);
    assert_eq!(cluster.cached_leader("t", 0), Some(0));
    settle().await;
    assert_eq!(asked.load(Ordering::SeqCst), 2, "one Metadata request");
}

/// Five partitions of broker 0 assigned and positioned, fetched over `lanes` lanes.
fn five_partitions(lanes: usize) -> Fetcher {
    let mut config = ConsumerConfig::new("x");
    config.fetch_connections_per_broker = lanes;
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 5)]), config);
    let partitions: Vec<TopicPartition> = (0..5).map(|p| TopicPartition::new("t", p)).collect();
    fetcher.assign(&partitions);
    for tp in &partitions {
        fetcher.seek(tp, 0).unwrap();
    }
    fetcher
}

#[test]
fn take_rotates_so_a_deep_partition_does_not_starve_the_others() {
    let config = ConsumerConfig::new("x");
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 3)]), config);
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
    fetcher.assign(&partitions);
    for tp in &partitions {
        fetcher.seek(tp, 0).unwrap();
        let state = fetcher.partitions.get_mut(tp).unwrap();
        stage_records(state, Bytes::from(batch(0, 10)));
        fetcher.with_data.insert(Arc::new(tp.clone()));
    }
    // Each take of 4 starts after the partition the last one ended in.
    let taken: Vec<Vec<(i32, i64)>> = (0..5)
        .map(|_| {
            let records = fetcher.take(4);
            records.iter().map(|r| (r.partition, r.offset)).collect()
        })
        .collect();
    assert_eq!(taken[0], vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
    assert_eq!(taken[1], vec![(1, 0), (1, 1), (1, 2), (1, 3)]);
    assert_eq!(taken[2], vec![(2, 0), (2, 1), (2, 2), (2, 3)]);
    assert_eq!(taken[3], vec![(0, 4), (0, 5), (0, 6), (0, 7)]);
    assert_eq!(taken[4], vec![(1, 4), (1, 5), (1, 6), (1, 7)]);
    let taken: Vec<(i32, i64)> = fetcher
        .take(5)
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(taken, vec![(2, 4), (2, 5), (2, 6), (2, 7), (2, 8)]);
    // A partition running dry mid-take hands on to the next in the ring; the one the
    // last take ended in comes last.
    let taken: Vec<(i32, i64)> = fetcher
        .take(5)
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(taken, vec![(0, 8), (0, 9), (1, 8), (1, 9), (2, 9)]);
}

#[tokio::test]
async fn zero_fetch_connections_means_one_lane() {
    let mut fetcher = five_partitions(0);
    fetcher.send_fetches();
    let busy: Vec<(i32, usize)> = fetcher.busy_lanes.iter().map(|(l, _)| *l).collect();
    assert_eq!(busy, vec![(0, 0)]);
    assert!(fetcher.partitions.keys().all(|tp| fetcher.in_flight(tp)));
}

#[tokio::test]
async fn each_lane_fetches_its_share_of_a_brokers_partitions() {
    let mut fetcher = five_partitions(2);
    fetcher.send_fetches();
    // Both lanes of broker 0 busy, every partition in flight in one of them.
    let mut busy: Vec<(i32, usize)> = fetcher.busy_lanes.iter().map(|(l, _)| *l).collect();
    busy.sort();
    assert_eq!(busy, vec![(0, 0), (0, 1)]);
    assert!(fetcher.partitions.keys().all(|tp| fetcher.in_flight(tp)));
    // The offline cluster cannot connect: both fetches come back failed, each frees
    // its lane and the partitions it carried (3 + 2).
    let mut carried = Vec::new();
    for _ in 0..2 {
        let result = fetcher.results_rx.recv().await.unwrap();
        assert!(result.response.is_err());
        let states = fetcher.partitions.values();
        carried.push(states.filter(|s| s.request == result.request).count());
        fetcher.receive(result);
    }
    carried.sort();
    assert_eq!(carried, vec![2, 3]);
    assert!(fetcher.busy_lanes.is_empty());
    assert!(fetcher.partitions.keys().all(|tp| !fetcher.in_flight(tp)));
    let backed_off = fetcher.partitions.values();
    assert!(
        backed_off.into_iter().all(|s| s.backoff_until.is_some()),
        "each failed request's partitions back off"
    );
}

#[tokio::test]
async fn responses_that_arrived_are_staged_without_waiting_so_the_next_fetch_can_go() {
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 1)]), ConsumerConfig::new("x"));
    fetcher.assign(&[tp()]);
    fetcher.seek(&tp(), 0).unwrap();
    assert!(
        fetcher.stage_arrived().is_empty(),
        "nothing arrived: no wait"
    );
    arrived(&mut fetcher, 0, batch(0, 3));
    assert!(fetcher.stage_arrived().is_empty());
    let state = &fetcher.partitions[&tp()];
    assert_eq!(state.fetch_offset, 3, "the next fetch asks from offset 3");
    assert!(!fetcher.in_flight(&tp()) && fetcher.busy_lanes.is_empty());
    assert_eq!(state.high_watermark, Some(10));
    let offsets: Vec<i64> = fetcher.take(10).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
}

#[test]
fn staging_reads_headers_only_and_decoding_skips_what_precedes_the_fetch_offset() {
    let mut state = PartitionState {
        fetch_offset: 1,
        ..PartitionState::default()
    };
    let (first, second) = (batch(0, 3), batch(3, 2));
    let partial = batch(5, 4);
    let whole_bytes = first.len() + second.len();
    let blob = [first, second, partial[..partial.len() / 2].to_vec()].concat();
    stage_records(&mut state, Bytes::from(blob));
    // The next fetch may go out at once: from the first batch not fully received.
    assert_eq!(state.fetch_offset, 5);
    assert_eq!(state.buffered_bytes, whole_bytes);
    assert!(state.buffered.is_empty(), "nothing decoded yet");
    assert_eq!(decode_next(&tp(), &mut state, 1 << 20), Decoded::Records);
    assert_eq!(offsets(&state), vec![1, 2, 3, 4]);
    let sizes: usize = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
    assert_eq!(state.buffered_bytes, sizes);
    assert_eq!(decode_next(&tp(), &mut state, 1 << 20), Decoded::Nothing);
}

/// Writes `batch`'s CRC again after a test changed bytes inside its span.
fn reseal(batch: &mut [u8]) {
    let crc = runnel_protocol::batch::RecordBatch::parse(Bytes::copy_from_slice(batch))
        .unwrap()
        .compute_crc();
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Stages batches 0–1 and a damaged batch 2–3 as one answer, then batch 4 as the next, and
/// decodes the first: the damaged batch is corrupt, the one before it kept whole.
fn decode_with_a_damaged_second_batch(damage: impl FnOnce(&mut Vec<u8>)) -> PartitionState {
    let mut state = PartitionState::default();
    let mut second = batch(2, 2);
    damage(&mut second);
    stage_records(&mut state, Bytes::from([batch(0, 2), second].concat()));
    stage_records(&mut state, Bytes::from(batch(4, 1)));
    assert_eq!(state.fetch_offset, 5);
    let decoded = decode_next(&tp(), &mut state, 1 << 20);
    assert_eq!(decoded, Decoded::Corrupt { refetch_from: 2 });
    assert_eq!(
        offsets(&state),
        vec![0, 1],
        "the good batch before it is kept"
    );
    let sizes: usize = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
    assert_eq!(state.buffered_bytes - state.undecoded[0].1.len(), sizes);
    state
}

#[test]
fn a_corrupt_batch_keeps_what_precedes_it_and_is_fetched_again() {
    let mut state = decode_with_a_damaged_second_batch(|second| {
        let last = second.len() - 1;
        second[last] ^= 0xff; // a record byte: the CRC no longer matches
    });
    state.request = 3;
    rewind(&mut state, 2, 7);
    assert_eq!(state.fetch_offset, 2);
    assert_eq!(state.request, 0, "a fetch in flight past it is dropped");
    assert_eq!(state.epoch, 7);
    assert!(state.backoff_until.is_some());
    assert!(state.undecoded.is_empty(), "later blobs are dropped too");
    let sizes: usize = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
    assert_eq!(state.buffered_bytes, sizes);
}

/// A batch whose CRC matches but whose records stop decoding partway (a producer's bug)
/// leaves none of its records buffered, nor their bytes counted: it is fetched again from
/// its first offset, as one that fails its CRC (offset 2 is decoded, then taken back).
#[test]
fn a_batch_failing_partway_through_its_records_leaves_none_of_them() {
    decode_with_a_damaged_second_batch(|second| {
        let last = second.len() - 1;
        second[last] = 0x7f; // the last record's header count: 63 headers that are not there
        reseal(second);
    });
}

/// A partition whose leader is not known (its topic missing from the metadata) is skipped
/// and backed off, without waiting for a lookup: the others are fetched at once.
#[tokio::test]
async fn a_partition_without_a_known_leader_does_not_hold_up_the_others() {
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 1)]), ConsumerConfig::new("x"));
    let missing = TopicPartition::new("gone", 0);
    fetcher.assign(&[tp(), missing.clone()]);
    fetcher.seek(&tp(), 0).unwrap();
    fetcher.seek(&missing, 0).unwrap();
    fetcher.send_fetches();
    assert!(fetcher.in_flight(&tp()), "t-0 fetched");
    assert!(!fetcher.in_flight(&missing));
    assert!(fetcher.partitions[&missing].backoff_until.is_some());
    assert_eq!(fetcher.busy_lanes.len(), 1, "one Fetch, to t-0's leader");
}

/// A partition that stays without a leader backs off longer each time it is looked at
/// (100, 200, 400, 800 ms, then 1 s: `retry_backoff_ms` doubling to `retry_backoff_max_ms`),
/// and a successful fetch would start it over.
#[tokio::test]
async fn a_partition_that_stays_leaderless_backs_off_doubling() {
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 1)]), ConsumerConfig::new("x"));
    let missing = TopicPartition::new("gone", 0);
    fetcher.assign(std::slice::from_ref(&missing));
    fetcher.seek(&missing, 0).unwrap();
    for expected_ms in [100, 200, 400, 800, 1_000, 1_000] {
        let before = tokio::time::Instant::now();
        fetcher.send_fetches();
        let state = fetcher.partitions.get_mut(&missing).unwrap();
        let until = state.backoff_until.take().expect("backed off");
        let pause = until.duration_since(before);
        let expected = std::time::Duration::from_millis(expected_ms);
        // Only the lower bound and a generous upper one: the pause is computed from the
        // clock a moment after `before`.
        assert!(
            pause >= expected && pause < expected + std::time::Duration::from_millis(500),
            "pause {pause:?}, expected {expected:?}"
        );
    }
}

/// `needing_position` stops walking the assignment once every partition has a position,
/// and starts again for what can take a position away: an out-of-range answer, and an
/// assignment with new partitions.
#[test]
fn a_partition_that_loses_its_position_is_reported_again() {
    let mut fetcher = five_partitions(1);
    assert_eq!(fetcher.needing_position(), (vec![], vec![]));
    assert_eq!(fetcher.needing_position(), (vec![], vec![]));
    let failure = failed(&mut fetcher, codes::OFFSET_OUT_OF_RANGE);
    let reset = fetcher.receive(failure);
    assert_eq!(reset, vec![tp()]);
    assert_eq!(fetcher.needing_position(), (vec![], vec![tp()]));
    fetcher.seek(&tp(), 3).unwrap();
    assert_eq!(fetcher.needing_position(), (vec![], vec![]));
    let mut more: Vec<TopicPartition> = fetcher.partitions.keys().cloned().collect();
    more.push(TopicPartition::new("u", 0));
    fetcher.assign(&more);
    assert_eq!(
        fetcher.needing_position(),
        (vec![TopicPartition::new("u", 0)], vec![])
    );
}

/// `take` visits the partitions with data only: one enters when a response stages its
/// records and leaves once `take` finds it empty (run dry, seeked) or it is unassigned; a
/// paused one keeps its records, and its place, until resumed.
#[tokio::test]
async fn take_visits_a_partition_while_it_has_data() {
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 1)]), ConsumerConfig::new("x"));
    let take = |fetcher: &mut Fetcher, max| -> Vec<i64> {
        fetcher.take(max).iter().map(|r| r.offset).collect()
    };
    fetcher.assign(&[tp()]);
    fetcher.seek(&tp(), 0).unwrap();
    assert!(fetcher.with_data.is_empty());
    arrived(&mut fetcher, 0, batch(0, 3));
    fetcher.stage_arrived();
    assert!(fetcher.with_data.contains(&tp()));
    assert_eq!(take(&mut fetcher, 2), vec![0, 1]);
    assert!(fetcher.with_data.contains(&tp()), "one record left");
    assert_eq!(take(&mut fetcher, 10), vec![2]);
    assert!(fetcher.with_data.is_empty(), "run dry");

    arrived(&mut fetcher, 3, batch(3, 2));
    fetcher.stage_arrived();
    fetcher.partitions.get_mut(&tp()).unwrap().paused = true;
    assert!(take(&mut fetcher, 10).is_empty());
    assert!(
        fetcher.with_data.contains(&tp()),
        "paused, its records kept"
    );
    fetcher.partitions.get_mut(&tp()).unwrap().paused = false;
    assert_eq!(take(&mut fetcher, 10), vec![3, 4]);

    arrived(&mut fetcher, 5, batch(5, 2));
    fetcher.stage_arrived();
    fetcher.seek(&tp(), 0).unwrap();
    assert!(
        take(&mut fetcher, 10).is_empty(),
        "a seek drops what was fetched"
    );
    assert!(fetcher.with_data.is_empty());

    arrived(&mut fetcher, 0, batch(0, 1));
    fetcher.stage_arrived();
    assert!(fetcher.with_data.contains(&tp()));
    fetcher.assign(&[]);
    assert!(fetcher.with_data.is_empty(), "revoked");
    assert!(fetcher.take(10).is_empty());
}

/// A batch whose last records were removed by compaction keeps its header's last offset:
/// once its records are taken, the position is past the whole batch (as Java's), so the lag
/// is 0 at the end and a commit does not stop short of it. Not while records wait. The same
/// past a transaction marker ending the log.
#[test]
fn a_drained_partition_is_positioned_past_removed_records_and_markers() {
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 1)]), ConsumerConfig::new("x"));
    fetcher.assign(&[tp()]);
    fetcher.seek(&tp(), 10).unwrap();
    // Offsets 10 and 11 kept; the header says the batch ran to 14.
    let mut gapped = batch(10, 2);
    gapped[23..27].copy_from_slice(&4i32.to_be_bytes());
    reseal(&mut gapped);
    let state = fetcher.partitions.get_mut(&tp()).unwrap();
    stage_records(state, Bytes::from(gapped));
    assert_eq!(state.fetch_offset, 15);
    fetcher.with_data.insert(Arc::new(tp()));
    let taken: Vec<i64> = fetcher.take(1).iter().map(|r| r.offset).collect();
    assert_eq!(taken, vec![10]);
    assert_eq!(
        fetcher.partitions[&tp()].position,
        Some(11),
        "offset 11 still waits"
    );
    let taken: Vec<i64> = fetcher.take(10).iter().map(|r| r.offset).collect();
    assert_eq!(taken, vec![11]);
    assert_eq!(fetcher.partitions[&tp()].position, Some(15));

    // A transaction's marker (a control batch, never handed out) at the end of the log, as
    // a Kafka broker writes one after a transactional producer's records: passed too.
    let fields = BatchFields {
        base_offset: 16,
        transactional: true,
        control: true,
        ..BatchFields::default()
    };
    let mut marker = BatchBuilder::new(fields, 1 << 10);
    let commit_marker = [0u8, 0, 0, 1]; // version 0, type 1 (commit)
    let record = NewRecord {
        timestamp: 1_700_000_000_000,
        key: Some(&commit_marker),
        value: Some(&[0, 0, 0, 0, 0, 0]),
        headers: &[],
    };
    marker.push(&record).unwrap();
    let blob = [batch(15, 1), marker.finish().unwrap().to_vec()].concat();
    let state = fetcher.partitions.get_mut(&tp()).unwrap();
    stage_records(state, Bytes::from(blob));
    fetcher.with_data.insert(Arc::new(tp()));
    let taken: Vec<i64> = fetcher.take(10).iter().map(|r| r.offset).collect();
    assert_eq!(taken, vec![15], "the marker is not a record");
    assert_eq!(fetcher.partitions[&tp()].position, Some(17));

    // A corrupt batch rewinds the fetch offset to it: once what preceded it is taken, the
    // position is that batch's first offset, never past a record not handed out.
    fetcher.seek(&tp(), 20).unwrap();
    let mut damaged = batch(22, 2);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let state = fetcher.partitions.get_mut(&tp()).unwrap();
    stage_records(state, Bytes::from([batch(20, 2), damaged].concat()));
    fetcher.with_data.insert(Arc::new(tp()));
    let mut taken: Vec<i64> = fetcher.take(10).iter().map(|r| r.offset).collect();
    taken.extend(fetcher.take(10).iter().map(|r| r.offset));
    assert_eq!(taken, vec![20, 21]);
    assert_eq!(fetcher.partitions[&tp()].position, Some(22));
}

/// `send_fetches` walks the assignment only once something can have made a partition want
/// a Fetch: a resume, a `take` that brings a full buffer below `prefetch_bytes_max` (and an
/// answer, an assignment or a seek); each is fetched at the next poll after its change.
#[tokio::test]
async fn a_partition_that_starts_wanting_a_fetch_is_fetched_at_the_next_poll() {
    let mut config = ConsumerConfig::new("x");
    config.fetch_connections_per_broker = 3; // a lane per partition: none waits on another
    config.prefetch_bytes_max = 1;
    let mut fetcher = Fetcher::new(Cluster::offline(&[("t", 3)]), config);
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
    fetcher.assign(&partitions);
    for tp in &partitions {
        fetcher.seek(tp, 0).unwrap();
    }
    let in_flight = |fetcher: &Fetcher| -> Vec<i32> {
        let assigned = fetcher.partitions.keys();
        assigned
            .filter(|tp| fetcher.in_flight(tp))
            .map(|tp| tp.partition)
            .collect()
    };
    fetcher.partitions.get_mut(&partitions[1]).unwrap().paused = true;
    let full = fetcher.partitions.get_mut(&partitions[2]).unwrap();
    stage_records(full, Bytes::from(batch(0, 2)));
    fetcher.with_data.insert(Arc::new(partitions[2].clone()));
    fetcher.send_fetches();
    assert_eq!(in_flight(&fetcher), vec![0]);
    assert!(
        !fetcher.may_fetch,
        "the others wait for a resume and a take"
    );
    fetcher.send_fetches();
    assert_eq!(in_flight(&fetcher), vec![0]);

    fetcher.resume(&partitions[1]);
    assert!(fetcher.may_fetch);
    fetcher.send_fetches();
    assert_eq!(in_flight(&fetcher), vec![0, 1]);

    assert_eq!(fetcher.take(1).len(), 1);
    assert!(
        !fetcher.may_fetch,
        "one record left: still at least 1 byte buffered"
    );
    assert_eq!(fetcher.take(10).len(), 1);
    assert!(fetcher.may_fetch, "room to prefetch again");
    fetcher.send_fetches();
    assert_eq!(in_flight(&fetcher), vec![0, 1, 2]);
    assert!(!fetcher.may_fetch);
}

/// An answer frees every partition its request took by freeing its lane, and is read only
/// for the partitions it names: records of one seeked meanwhile, or taken by the other
/// lane's request, are dropped; the other lane's partitions stay in flight.
#[test]
fn an_answer_uses_only_what_its_own_request_took() {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    let mut fetcher = five_partitions(2);
    let (first, second) = (fetcher.next_request, fetcher.next_request + 1);
    fetcher.next_request += 2;
    for (partition, request) in [(0, first), (1, first), (2, first), (3, second)] {
        let state = fetcher.partitions.get_mut(&t(partition)).unwrap();
        state.request = request;
    }
    fetcher.busy_lanes = vec![((0, 0), first), ((0, 1), second)];
    fetcher.seek(&t(1), 0).unwrap();
    let mut session = FetchSession::default();
    let want = Wanted {
        topic_id: uuid::Uuid::nil(),
        fetch_offset: 0,
        max_bytes: 1 << 20,
    };
    let listed = (0..4).map(|p| (Arc::new(t(p)), want)).collect();
    session.plan_list(listed, 12);
    let answered = (0..4).map(|p| {
        PartitionData::default()
            .with_partition_index(p)
            .with_high_watermark(2)
            .with_records(Some(Bytes::from(batch(0, 2))))
    });
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic_name("t"))
        .with_partitions(answered.collect())]);
    let result = FetchResult {
        broker: 0,
        lane: 0,
        request: first,
        session,
        response: Ok(response),
    };
    assert!(fetcher.receive(result).is_empty());
    let fetch_offsets: Vec<i64> = (0..5)
        .map(|p| fetcher.partitions[&t(p)].fetch_offset)
        .collect();
    assert_eq!(
        fetch_offsets,
        vec![2, 0, 2, 0, 0],
        "t-1 seeked, t-3 not this request's"
    );
    let with_data: Vec<i32> = fetcher.with_data.iter().map(|tp| tp.partition).collect();
    assert_eq!(with_data, vec![0, 2]);
    let in_flight: Vec<i32> = (0..5).filter(|p| fetcher.in_flight(&t(*p))).collect();
    assert_eq!(in_flight, vec![3], "the other lane's request still waits");
    assert_eq!(fetcher.busy_lanes, vec![((0, 1), second)]);
}
