//! The rebalance half of [`Group`]: entering PreparingRebalance, completing the join phase
//! (new generation, protocol, leader), removing members, and the timers (session expiry,
//! rebalance timeout, initial delay, pending-sync timeout) driven by [`Group::tick`].

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::state::{Effects, Group, GroupState, JoinResponse, RebalanceTimer, SyncResponse};
use super::GroupConfig;

impl Group {
    /// Enters PreparingRebalance: parked syncs learn of it, the join phase timer starts.
    pub(super) fn prepare_rebalance(
        &mut self,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if std::mem::take(&mut member.awaiting_sync) {
                    let answer = SyncResponse::error(ResponseError::RebalanceInProgress);
                    effects.syncs.push((member.member_id.clone(), answer));
                }
            }
        }
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        let from_empty = self.state == GroupState::Empty;
        let delay_ms = if from_empty {
            i64::from(config.initial_rebalance_delay_ms).min(rebalance_timeout_ms)
        } else {
            0
        };
        self.sync_deadline_ms = None;
        self.rebalance = Some(RebalanceTimer {
            started_ms: now_ms,
            earliest_complete_ms: now_ms + delay_ms,
            deadline_ms: now_ms + rebalance_timeout_ms,
            initial_delay: from_empty && delay_ms > 0,
            new_member_added: false,
        });
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    /// Rebalances if the group is settled (Stable / CompletingRebalance); a rebalance already
    /// preparing just keeps going.
    pub(super) fn maybe_prepare_rebalance(
        &mut self,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now_ms, config, effects);
        }
    }

    /// A new member joined during the initial delay: the window is extended when it ends
    /// ([`Group::extend_initial_delay_window`]).
    pub(super) fn note_new_member_in_initial_delay(&mut self) {
        if let Some(timer) = self.rebalance.as_mut().filter(|t| t.initial_delay) {
            timer.new_member_added = true;
        }
    }

    /// The initial delay window ended: if someone joined during it, wait one more window for
    /// others, but never past the rebalance timeout (Kafka's DelayedInitialRebalance). Once
    /// per window, not per member, so N consumers starting together wait about two windows.
    fn extend_initial_delay_window(&mut self, now_ms: i64, config: &GroupConfig) {
        let Some(timer) = self.rebalance.as_mut() else {
            return;
        };
        let window_over = timer.initial_delay && now_ms >= timer.earliest_complete_ms;
        if !window_over || !std::mem::take(&mut timer.new_member_added) {
            return;
        }
        let limit_ms = timer.deadline_ms.max(timer.started_ms);
        timer.earliest_complete_ms = timer
            .earliest_complete_ms
            .saturating_add(i64::from(config.initial_rebalance_delay_ms))
            .min(limit_ms);
    }

    /// Completes the join phase when every member (and every id handed out) has rejoined and
    /// the initial delay is over, or when the rebalance timeout has passed.
    pub(super) fn try_complete_join(
        &mut self,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        self.extend_initial_delay_window(now_ms, config);
        let Some(timer) = self.rebalance else {
            debug_assert!(false, "PreparingRebalance without a rebalance timer");
            return;
        };
        let all_joined =
            self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join);
        let ready =
            (all_joined && now_ms >= timer.earliest_complete_ms) || now_ms >= timer.deadline_ms;
        if ready {
            self.complete_join(now_ms, effects);
        }
    }

    /// The group's rebalance timeout: the largest its members asked for.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Drops dynamic members that did not rejoin, opens the next generation and answers every
    /// parked join (the leader gets the member list). If nobody rejoined but static members
    /// remain, waits another rebalance timeout instead, as Kafka does: static members leave
    /// only by LeaveGroup or their session timeout (KIP-345).
    fn complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        let dropped: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in dropped {
            self.remove_member_entry(&member_id, effects);
        }
        let nobody_joined = !self.members.values().any(|m| m.awaiting_join);
        if nobody_joined && !self.members.is_empty() {
            let deadline_ms = now_ms.saturating_add(self.rebalance_timeout_ms());
            if let Some(timer) = self.rebalance.as_mut() {
                timer.deadline_ms = deadline_ms;
                timer.initial_delay = false;
            }
            return;
        }
        let leader_joined = self
            .leader_id
            .as_ref()
            .and_then(|id| self.members.get(id))
            .is_some_and(|m| m.awaiting_join);
        if !leader_joined {
            self.leader_id = self
                .members
                .values()
                .find(|m| m.awaiting_join)
                .map(|m| m.member_id.clone());
        }
        self.rebalance = None;
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
            effects.persist = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now_ms);
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        let joined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join)
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in joined {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.awaiting_join = false;
                member.is_new = false;
                member.last_heartbeat_ms = now_ms;
            }
            effects
                .joins
                .push((member_id.clone(), self.current_join_response(&member_id)));
        }
    }

    /// Removes a member and answers its parked calls with UNKNOWN_MEMBER_ID; picks another
    /// leader if it led. Does not rebalance (see [`Group::remove_member_and_rebalance`]).
    pub(super) fn remove_member_entry(&mut self, member_id: &str, effects: &mut Effects) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if member.awaiting_join {
            effects.joins.push((
                member_id.to_owned(),
                JoinResponse::error(ResponseError::UnknownMemberId, member_id),
            ));
        }
        if member.awaiting_sync {
            effects.syncs.push((
                member_id.to_owned(),
                SyncResponse::error(ResponseError::UnknownMemberId),
            ));
        }
        if self.leader_id.as_deref() == Some(member_id) {
            let next = self
                .members
                .values()
                .find(|m| m.awaiting_join)
                .or_else(|| self.members.values().next());
            self.leader_id = next.map(|m| m.member_id.clone());
        }
    }

    /// Leave or session expiry: remove, then rebalance (or finish the one in progress).
    pub(super) fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        self.remove_member_entry(member_id, effects);
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now_ms, config, effects);
        }
        // The last member leaving completes the (now empty) join phase at once.
        self.try_complete_join(now_ms, config, effects);
    }

    /// Timer work: expires members and unused pending ids, completes a join phase whose time
    /// is up. Call at least every `timer_tick_ms`.
    pub fn tick(&mut self, now_ms: i64, config: &GroupConfig) -> Effects {
        let mut effects = Effects::default();
        if self.state == GroupState::Dead {
            return effects;
        }
        self.pending_members
            .retain(|_, expires_ms| now_ms < *expires_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.is_expired(now_ms, config))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            self.remove_member_and_rebalance(&member_id, now_ms, config, &mut effects);
        }
        self.expire_pending_syncs(now_ms, config, &mut effects);
        self.try_complete_join(now_ms, config, &mut effects);
        self.debug_check_invariants();
        effects
    }

    /// CompletingRebalance past its sync deadline: whoever has not sent SyncGroup (the leader
    /// included) is removed and the rest rebalance.
    fn expire_pending_syncs(&mut self, now_ms: i64, config: &GroupConfig, effects: &mut Effects) {
        let overdue = self.state == GroupState::CompletingRebalance
            && self
                .sync_deadline_ms
                .is_some_and(|deadline_ms| now_ms >= deadline_ms);
        if !overdue {
            return;
        }
        let silent: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_sync)
            .map(|m| m.member_id.clone())
            .collect();
        debug_assert!(
            !silent.is_empty(),
            "everyone synced yet the group is not Stable"
        );
        for member_id in silent {
            self.remove_member_and_rebalance(&member_id, now_ms, config, effects);
        }
    }
}
