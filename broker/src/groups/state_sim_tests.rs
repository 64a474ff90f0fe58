//! A deterministic simulation of one group: random joins, rejoins, syncs, heartbeats, leaves
//! and clock jumps. The state machine checks its own invariants after every call (debug
//! builds); this adds the protocol-level ones: an answer only ever goes to a parked call, a
//! parked call is answered at most once, and once clients go silent every parked call is
//! answered and the group ends Empty.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;

use super::membership::SyncRequest;
use super::state::{Effects, Group, GroupState, JoinRequest, MemberProtocol, Outcome};
use super::GroupConfig;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;

#[derive(Debug, Clone)]
enum Op {
    JoinNew {
        protocols: u8,
        require_known: bool,
        instance: Option<u8>,
    },
    Rejoin {
        who: usize,
        protocols: u8,
    },
    /// A SyncGroup; if it is the leader's, writing its assignment fails when `store_fails`.
    Sync {
        who: usize,
        stale: bool,
        store_fails: bool,
    },
    /// The current leader syncs (so Stable is reached often).
    LeaderSync {
        store_fails: bool,
    },
    Heartbeat {
        who: usize,
    },
    Leave {
        who: usize,
    },
    Tick {
        advance_ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..3, any::<bool>(), proptest::option::of(0u8..3)).prop_map(
            |(protocols, require_known, instance)| Op::JoinNew {
                protocols,
                require_known,
                instance
            }
        ),
        1 => (any::<usize>(), 0u8..3).prop_map(|(who, protocols)| Op::Rejoin { who, protocols }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(who, stale)| Op::Sync {
            who,
            stale,
            store_fails: false
        }),
        2 => proptest::bool::weighted(0.2).prop_map(|store_fails| Op::LeaderSync { store_fails }),
        1 => any::<usize>().prop_map(|who| Op::Heartbeat { who }),
        1 => any::<usize>().prop_map(|who| Op::Leave { who }),
        1 => (0i64..15_000).prop_map(|advance_ms| Op::Tick { advance_ms }),
    ]
}

fn protocols(variant: u8) -> Vec<MemberProtocol> {
    let names: &[&str] = match variant {
        0 => &["range"],
        1 => &["range", "roundrobin"],
        _ => &["roundrobin"],
    };
    names
        .iter()
        .map(|n| MemberProtocol {
            name: (*n).into(),
            metadata: Bytes::from_static(b"m"),
        })
        .collect()
}

fn request(member_id: &str, variant: u8, require_known: bool, instance: Option<u8>) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: instance.map(|i| format!("instance-{i}")),
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(variant),
        require_known_member_id: require_known,
        supports_skip_assignment: true,
    }
}

/// The clients' side: who has a call parked, and every id ever handed out.
#[derive(Default)]
struct Clients {
    parked_joins: BTreeSet<String>,
    parked_syncs: BTreeSet<String>,
    ids: Vec<String>,
    instances: BTreeMap<String, Option<u8>>,
}

impl Clients {
    fn absorb(&mut self, effects: Effects) {
        for (member_id, _) in effects.joins {
            assert!(
                self.parked_joins.remove(&member_id),
                "join answer for {member_id} who was not waiting"
            );
        }
        for (member_id, _) in effects.syncs {
            assert!(
                self.parked_syncs.remove(&member_id),
                "sync answer for {member_id} who was not waiting"
            );
        }
    }
    fn pick(&self, who: usize) -> Option<String> {
        (!self.ids.is_empty()).then(|| self.ids[who % self.ids.len()].clone())
    }
    fn park_join(&mut self, outcome: Outcome<super::state::JoinResponse>) {
        match outcome {
            Outcome::Wait { member_id } => {
                // A second parked join from the same member replaces the first (the
                // coordinator drops the older waiter).
                self.parked_joins.insert(member_id.clone());
                if !self.ids.contains(&member_id) {
                    self.ids.push(member_id);
                }
            }
            Outcome::Done(answer)
                if !answer.member_id.is_empty() && !self.ids.contains(&answer.member_id) =>
            {
                self.ids.push(answer.member_id);
            }
            Outcome::Done(_) => {}
        }
    }
}

fn apply(
    group: &mut Group,
    clients: &mut Clients,
    op: Op,
    now_ms: &mut i64,
    fresh: &mut u32,
    cfg: &GroupConfig,
) {
    match op {
        Op::JoinNew {
            protocols,
            require_known,
            instance,
        } => {
            *fresh += 1;
            let (outcome, effects) = group.join(
                request("", protocols, require_known, instance),
                format!("m{fresh}"),
                *now_ms,
                cfg,
            );
            clients.instances.insert(format!("m{fresh}"), instance);
            clients.park_join(outcome);
            clients.absorb(effects);
        }
        Op::Rejoin { who, protocols } => {
            let Some(id) = clients.pick(who) else { return };
            let instance = clients.instances.get(&id).copied().flatten();
            let (outcome, effects) = group.join(
                request(&id, protocols, true, instance),
                "unused".into(),
                *now_ms,
                cfg,
            );
            clients.park_join(outcome);
            clients.absorb(effects);
        }
        Op::Sync {
            who,
            stale,
            store_fails,
        } => {
            let Some(id) = clients.pick(who) else { return };
            let generation_id = group.generation_id() - i32::from(stale);
            let assignments = group
                .members()
                .map(|m| (m.member_id.clone(), Bytes::from_static(b"a")))
                .collect();
            let instance = clients
                .instances
                .get(&id)
                .copied()
                .flatten()
                .map(|i| format!("instance-{i}"));
            let request = SyncRequest {
                member_id: id.clone(),
                group_instance_id: instance,
                generation_id,
                protocol_type: None,
                protocol_name: None,
                assignments,
            };
            if clients.parked_syncs.contains(&id) {
                return; // a real client does not send a second SyncGroup while one is parked
            }
            let (outcome, mut effects) = group.sync(request, *now_ms);
            group.debug_check_invariants();
            if let Outcome::Wait { member_id } = outcome {
                clients.parked_syncs.insert(member_id);
            }
            let store_assignment = effects.store_assignment.take();
            clients.absorb(effects);
            // The coordinator's write of the assignment finishes at once here.
            if let Some(generation_id) = store_assignment {
                let stored = if store_fails {
                    Err(kafka_protocol::error::ResponseError::CoordinatorNotAvailable)
                } else {
                    Ok(())
                };
                let effects = group.assignment_stored(generation_id, stored, *now_ms, cfg);
                clients.absorb(effects);
            }
        }
        Op::LeaderSync { store_fails } => {
            let Some(leader) = group.leader_id().map(str::to_owned) else {
                return;
            };
            let Some(who) = clients.ids.iter().position(|id| *id == leader) else {
                return;
            };
            apply(
                group,
                clients,
                Op::Sync {
                    who,
                    stale: false,
                    store_fails,
                },
                now_ms,
                fresh,
                cfg,
            );
        }
        Op::Heartbeat { who } => {
            let Some(id) = clients.pick(who) else { return };
            let generation_id = group.generation_id();
            let _ = group.heartbeat(&id, None, generation_id, *now_ms);
        }
        Op::Leave { who } => {
            let Some(id) = clients.pick(who) else { return };
            let mut effects = Effects::default();
            let _ = group.leave(&id, None, *now_ms, cfg, &mut effects);
            clients.absorb(effects);
        }
        Op::Tick { advance_ms } => {
            *now_ms += advance_ms;
            let effects = group.tick(*now_ms, cfg);
            clients.absorb(effects);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn parked_calls_are_answered_once_and_silence_empties_the_group(
        ops in proptest::collection::vec(op(), 1..60),
        initial_delay in prop_oneof![Just(0), Just(3_000)],
    ) {
        let cfg = GroupConfig { initial_rebalance_delay_ms: initial_delay, ..GroupConfig::default() };
        let mut group = Group::new("sim", 0);
        let mut clients = Clients::default();
        let (mut now_ms, mut fresh) = (0i64, 0u32);
        for op in ops {
            apply(&mut group, &mut clients, op, &mut now_ms, &mut fresh, &cfg);
        }
        // Everyone goes silent: within a few rebalance + session timeouts all is answered.
        for _ in 0..8 {
            now_ms += i64::from(REBALANCE_MS + SESSION_MS);
            let effects = group.tick(now_ms, &cfg);
            clients.absorb(effects);
        }
        prop_assert!(clients.parked_joins.is_empty(), "unanswered joins: {:?}", clients.parked_joins);
        prop_assert!(clients.parked_syncs.is_empty(), "unanswered syncs: {:?}", clients.parked_syncs);
        prop_assert_eq!(group.state(), GroupState::Empty);
        prop_assert_eq!(group.members().count(), 0);
    }
}
