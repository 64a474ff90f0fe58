//! The session state machine alone: what each request lists, and how answers move it on.

#![allow(clippy::unwrap_used)]

use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::TopicName;

use super::*;

const ID_T: Uuid = Uuid::from_u128(0x7);
const ID_U: Uuid = Uuid::from_u128(0x9);

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// `t-0..count` wanted at the given offsets, topic `t` with id `id`.
fn wanted(id: Uuid, offsets: &[(i32, i64)]) -> WantedList {
    offsets
        .iter()
        .map(|&(partition, fetch_offset)| {
            let want = Wanted {
                topic_id: id,
                fetch_offset,
                max_bytes: 1024,
            };
            (Arc::new(tp("t", partition)), want)
        })
        .collect()
}

/// An answer with `session_id` for t's `partitions` (by name and id).
fn answer(session_id: i32, partitions: &[i32]) -> FetchResponse {
    let partitions = partitions
        .iter()
        .map(|p| PartitionData::default().with_partition_index(*p))
        .collect();
    let topic = FetchableTopicResponse::default()
        .with_topic(topic_name("t"))
        .with_topic_id(ID_T)
        .with_partitions(partitions);
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(vec![topic])
}

fn listed(plan: &Plan) -> Vec<(i32, i64)> {
    let listed = plan.to_send.iter();
    listed
        .map(|(tp, w)| (tp.partition, w.fetch_offset))
        .collect()
}

fn data(answer: Answer) -> Vec<TopicPartition> {
    match answer {
        Answer::Data(data) => {
            let mut partitions: Vec<TopicPartition> = data.into_keys().collect();
            partitions.sort();
            partitions
        }
        Answer::Rejected { code, .. } => panic!("rejected with {code}"),
    }
}

/// A session opened by the broker: the next requests list only partitions added or whose
/// fetch offset moved, forget those no longer wanted, and count epochs up from 1.
#[test]
fn an_opened_session_lists_only_what_changed() {
    let mut session = FetchSession::default();
    let first = session.plan_list(wanted(ID_T, &[(0, 0), (1, 0), (2, 0)]), 17);
    assert_eq!((first.session_id, first.epoch, first.version), (0, 0, 17));
    assert_eq!(listed(&first), vec![(0, 0), (1, 0), (2, 0)]);
    assert_eq!(data(session.read_response(answer(7, &[0, 1, 2]))).len(), 3);
    assert_eq!(session.id_and_epoch(), (7, 1));

    // t-1 got records (its offset moved); t-2 is no longer wanted; t-3 is new.
    let second = session.plan_list(wanted(ID_T, &[(0, 0), (1, 5), (3, 0)]), 17);
    assert_eq!((second.session_id, second.epoch), (7, 1));
    assert_eq!(listed(&second), vec![(1, 5), (3, 0)]);
    assert_eq!(second.to_forget, vec![(Arc::new(tp("t", 2)), ID_T)]);
    // The answer names only t-1: the others have nothing new.
    assert_eq!(
        data(session.read_response(answer(7, &[1]))),
        vec![tp("t", 1)]
    );
    assert_eq!(session.id_and_epoch(), (7, 2));

    let third = session.plan_list(wanted(ID_T, &[(0, 0), (1, 5), (3, 0)]), 17);
    assert_eq!((third.epoch, listed(&third)), (2, vec![]));
    assert!(third.to_forget.is_empty());
}

/// Java's INITIAL each time: a broker that answers session id 0 is asked again, in full.
#[test]
fn a_declined_session_keeps_every_fetch_full() {
    let mut session = FetchSession::default();
    for _ in 0..3 {
        let plan = session.plan_list(wanted(ID_T, &[(0, 0), (1, 4)]), 17);
        assert_eq!((plan.session_id, plan.epoch), (0, 0));
        assert_eq!(listed(&plan), vec![(0, 0), (1, 4)]);
        data(session.read_response(answer(0, &[0, 1])));
    }
    // A session closed by the broker mid-way (an incremental answer without an id) too.
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    data(session.read_response(answer(3, &[0])));
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    data(session.read_response(answer(0, &[])));
    assert_eq!(session.id_and_epoch(), (0, 0));
}

/// FETCH_SESSION_ID_NOT_FOUND starts over without a session; a wrong epoch (or another
/// top-level error, or a failed request) closes the session in the next, full, fetch.
#[test]
fn a_lost_session_is_replaced_by_a_full_fetch() {
    let opened = || {
        let mut session = FetchSession::default();
        session.plan_list(wanted(ID_T, &[(0, 0), (1, 0)]), 17);
        data(session.read_response(answer(7, &[0, 1])));
        session.plan_list(wanted(ID_T, &[(0, 3), (1, 0)]), 17);
        session
    };
    let error = |code| FetchResponse::default().with_error_code(code);
    for (code, next_session_id) in [
        (codes::FETCH_SESSION_ID_NOT_FOUND, 0),
        (codes::INVALID_FETCH_SESSION_EPOCH, 7),
        (codes::FETCH_SESSION_TOPIC_ID_ERROR, 7),
    ] {
        let mut session = opened();
        let rejected = session.read_response(error(code));
        assert!(matches!(
            rejected,
            Answer::Rejected { after_full: false, code: c } if c == code
        ));
        let next = session.plan_list(wanted(ID_T, &[(0, 3), (1, 0)]), 17);
        assert_eq!(
            (next.session_id, next.epoch),
            (next_session_id, 0),
            "{code}"
        );
        assert_eq!(listed(&next), vec![(0, 3), (1, 0)], "every partition again");
    }
    let mut failed = opened();
    failed.fail();
    let next = failed.plan_list(wanted(ID_T, &[(0, 3), (1, 0)]), 17);
    assert_eq!((next.session_id, next.epoch, next.to_send.len()), (7, 0, 2));
}

#[test]
fn the_epoch_wraps_from_the_largest_to_1() {
    let mut session = FetchSession::default();
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    data(session.read_response(answer(7, &[0])));
    session.next_epoch = i32::MAX;
    let plan = session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    assert_eq!(plan.epoch, i32::MAX);
    data(session.read_response(answer(7, &[])));
    assert_eq!(session.id_and_epoch(), (7, 1));
}

/// An answer naming a partition the session does not hold is not used (Java's
/// `verifyIncrementalFetchResponsePartitions`); the next fetch is full.
#[test]
fn an_answer_naming_a_partition_not_asked_for_is_rejected() {
    let mut session = FetchSession::default();
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    data(session.read_response(answer(7, &[0])));
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    let rejected = session.read_response(answer(7, &[0, 5]));
    assert!(matches!(
        rejected,
        Answer::Rejected {
            code: 0,
            after_full: false
        }
    ));
    assert_eq!(session.id_and_epoch(), (7, 0));
}

/// v13+ names topics by id, in the request and the answer; one topic without a known id
/// sends the whole request at v12 by name (Java's `FetchRequest.Builder`), and a switch
/// between the two, or a topic id that changed (recreated), goes through a full fetch.
#[test]
fn topic_ids_from_v13_and_names_when_one_is_missing() {
    let mut session = FetchSession::default();
    let plan = session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    assert_eq!(plan.version, 17);
    let request = plan.request(100, 1 << 20);
    assert_eq!(request.topics[0].topic_id, ID_T);
    // The answer is matched by id: its name is not read.
    let mut by_id = answer(7, &[0]);
    by_id.responses[0].topic = TopicName::default();
    assert_eq!(data(session.read_response(by_id)), vec![tp("t", 0)]);

    // `u` has no known id: v12, and a full fetch (the session used ids).
    let mut mixed = wanted(ID_T, &[(0, 0)]);
    let no_id = Wanted {
        topic_id: Uuid::nil(),
        fetch_offset: 0,
        max_bytes: 1024,
    };
    mixed.push((Arc::new(tp("u", 0)), no_id));
    let plan = session.plan_list(mixed.clone(), 17);
    assert_eq!((plan.version, plan.session_id, plan.epoch), (12, 7, 0));
    data(session.read_response(answer(7, &[0])));
    // Names again while `u` lacks an id: incremental now.
    let plan = session.plan_list(mixed, 17);
    assert_eq!((plan.version, plan.epoch), (12, 1));
    // The broker speaks only v12: names, whatever ids are known.
    assert_eq!(
        FetchSession::default()
            .plan_list(wanted(ID_T, &[]), 12)
            .version,
        12
    );

    // Ids for all again, then `t` recreated under a new id: full fetches both times.
    let mut session = FetchSession::default();
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    data(session.read_response(answer(7, &[])));
    let plan = session.plan_list(wanted(ID_U, &[(0, 0)]), 17);
    assert_eq!((plan.epoch, plan.to_send.len()), (0, 1));
}

/// Forgotten partitions go by name below v13 and by id from it, grouped per topic.
#[test]
fn forgotten_partitions_are_grouped_per_topic() {
    for version in [12, 17] {
        let mut session = FetchSession::default();
        session.plan_list(wanted(ID_T, &[(0, 0), (1, 0), (2, 0)]), version);
        data(session.read_response(answer(7, &[])));
        let plan = session.plan_list(wanted(ID_T, &[(1, 0)]), version);
        let request = plan.request(100, 1 << 20);
        assert!(request.topics.is_empty());
        let forgotten = &request.forgotten_topics_data;
        assert_eq!(forgotten.len(), 1);
        assert_eq!(forgotten[0].partitions, vec![0, 2]);
        assert_eq!(forgotten[0].topic_id, ID_T);
        assert_eq!(forgotten[0].topic.0.as_str(), "t");
        assert_eq!((request.session_id, request.session_epoch), (7, 1));
    }
}

#[test]
fn closing_sends_the_final_epoch_only_for_an_open_session() {
    assert!(FetchSession::default().close().is_none());
    let mut session = FetchSession::default();
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    data(session.read_response(answer(7, &[0])));
    let request = session.close().unwrap();
    assert_eq!((request.session_id, request.session_epoch), (7, -1));
    assert!(request.topics.is_empty() && request.max_wait_ms == 0);
    assert_eq!(session.id_and_epoch(), (0, 0), "forgotten");
}

/// The fetcher hands the session the same `Arc`s from one request to the next (found equal
/// without comparing names): only what changed is listed, and a partition dropped between
/// two kept ones is forgotten.
#[test]
fn a_plan_with_the_same_shared_partitions_lists_only_what_changed() {
    let mut session = FetchSession::default();
    let first = wanted(ID_T, &[(0, 0), (1, 0), (2, 0)]);
    session.plan_list(first.clone(), 17);
    data(session.read_response(answer(7, &[])));
    let mut next: WantedList = vec![first[0].clone(), first[2].clone()];
    next[1].1.fetch_offset = 9;
    let plan = session.plan_list(next, 17);
    assert_eq!(plan.epoch, 1, "incremental");
    assert_eq!(listed(&plan), vec![(2, 9)]);
    let forgotten: Vec<i32> = plan.to_forget.iter().map(|(tp, _)| tp.partition).collect();
    assert_eq!(forgotten, vec![1]);
}

/// A request given but never planned (its connection failed; the fetcher then fails the
/// session) leaves the session to plan, in full, exactly what is given next — whether the
/// giving stopped while the held list was updated in place or while it was rebuilt.
#[test]
fn a_request_given_but_never_planned_leaves_the_next_one_whole() {
    for given in [&[(0, 0)][..], &[(0, 0), (3, 0)][..]] {
        let mut session = FetchSession::default();
        let held = wanted(ID_T, &[(0, 0), (1, 0), (2, 0)]);
        session.plan_list(held.clone(), 17);
        data(session.read_response(answer(7, &[])));
        session.begin();
        for (tp, want) in wanted(ID_T, given) {
            session.want(&tp, want);
        }
        session.fail();
        let plan = session.plan_list(held, 17);
        assert_eq!((plan.session_id, plan.epoch), (7, 0), "full");
        assert_eq!(listed(&plan), vec![(0, 0), (1, 0), (2, 0)]);
        assert!(plan.to_forget.is_empty());
        data(session.read_response(answer(7, &[])));
        let plan = session.plan_list(wanted(ID_T, &[(0, 0), (1, 0), (2, 0)]), 17);
        assert_eq!((plan.epoch, listed(&plan)), (1, vec![]));
    }
}

/// Answers by topic id are read through the session's topics by id, kept from one request
/// to the next while its partitions and their ids stay, and made again when a topic joins
/// or a topic's id changes.
#[test]
fn answers_by_id_are_read_as_the_session_topics_change() {
    let by_id = |topic_id: Uuid, partition: i32| {
        let topic = FetchableTopicResponse::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![
                PartitionData::default().with_partition_index(partition)
            ]);
        FetchResponse::default()
            .with_session_id(7)
            .with_responses(vec![topic])
    };
    let mut session = FetchSession::default();
    session.plan_list(wanted(ID_T, &[(0, 0)]), 17);
    assert_eq!(
        data(session.read_response(by_id(ID_T, 0))),
        vec![tp("t", 0)]
    );
    session.plan_list(wanted(ID_T, &[(0, 3)]), 17);
    assert_eq!(
        data(session.read_response(by_id(ID_T, 0))),
        vec![tp("t", 0)]
    );

    let mut joined = wanted(ID_T, &[(0, 3)]);
    let u_want = Wanted {
        topic_id: ID_U,
        fetch_offset: 0,
        max_bytes: 1024,
    };
    joined.push((Arc::new(tp("u", 0)), u_want));
    let plan = session.plan_list(joined, 17);
    assert_eq!((plan.epoch, plan.to_send.len()), (2, 1), "u-0 added");
    assert_eq!(
        data(session.read_response(by_id(ID_U, 0))),
        vec![tp("u", 0)]
    );

    // `t` recreated under a new id: a full fetch, and answers by the new id.
    let new_t = Uuid::from_u128(0x11);
    let mut renamed = wanted(new_t, &[(0, 3)]);
    renamed.push((Arc::new(tp("u", 0)), u_want));
    let plan = session.plan_list(renamed, 17);
    assert_eq!(plan.epoch, 0);
    assert_eq!(
        data(session.read_response(by_id(new_t, 0))),
        vec![tp("t", 0)]
    );
    let stale = session.read_response(by_id(ID_T, 0));
    assert!(
        matches!(stale, Answer::Rejected { code: 0, .. }),
        "old id unknown"
    );
}
