//! The heartbeat task of one group generation: keeps the member's session alive between
//! polls and tells `poll` when to rejoin. As Java's heartbeat thread, it tells apart what
//! each answer means:
//! - REBALANCE_IN_PROGRESS: rejoin (same member id); heartbeats go on meanwhile, as the
//!   coordinator waits for the member up to the rebalance timeout.
//! - UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID: the membership is gone
//!   (its partitions are lost, not revoked); rejoin afresh.
//! - NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, a lost
//!   connection: the coordinator is unknown. It is looked up again and the same generation
//!   heartbeats on — no rejoin, unless the session expired before an answer came.
//! - anything else: rejoin, and the task ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::HeartbeatRequest;
use tokio::time::Instant;

use super::group::find_coordinator;
use crate::cluster::Cluster;
use crate::conn::Connection;
use crate::error::codes;

/// The group's coordinator connection, shared by the member (joins, commits) and its
/// heartbeat task, so a coordinator either of them finds moved is looked up once for both.
pub(crate) type CoordinatorSlot = Arc<Mutex<Option<Arc<Connection>>>>;

/// The live coordinator connection in `slot`, if any.
pub(crate) fn current(slot: &CoordinatorSlot) -> Option<Arc<Connection>> {
    let slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    slot.as_ref().filter(|c| !c.is_dead()).cloned()
}

pub(crate) fn set(slot: &CoordinatorSlot, conn: Option<Arc<Connection>>) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = conn;
}

/// What one heartbeat task needs; see the module doc.
pub(crate) struct Heartbeat {
    pub cluster: Arc<Cluster>,
    pub group_id: String,
    pub request: HeartbeatRequest,
    pub coordinator: CoordinatorSlot,
    pub interval_ms: u64,
    pub session_timeout_ms: u64,
    /// Pause after a failed heartbeat or coordinator lookup (Java's `retry.backoff.ms`).
    pub retry_backoff_ms: u64,
    pub rejoin_needed: Arc<AtomicBool>,
    pub membership_lost: Arc<AtomicBool>,
}

impl Heartbeat {
    /// Heartbeats until the generation ends (a rejoin is flagged then); each pass sleeps
    /// at least `min(interval_ms, retry_backoff_ms)`, 1 ms at the least.
    pub async fn run(self) {
        let session = Duration::from_millis(self.session_timeout_ms);
        let mut last_answer = Instant::now();
        let mut pause_ms = self.interval_ms;
        loop {
            tokio::time::sleep(Duration::from_millis(pause_ms.max(1))).await;
            if last_answer.elapsed() >= session {
                // The coordinator has surely dropped us by now: rejoin (the join starts
                // afresh if it answers UNKNOWN_MEMBER_ID).
                tracing::debug!(group = %self.group_id, "heartbeat session expired; rejoining");
                self.rejoin_needed.store(true, Ordering::Relaxed);
                return;
            }
            let code = self.beat(last_answer + session).await;
            pause_ms = self.interval_ms;
            match code {
                0 => last_answer = Instant::now(),
                codes::REBALANCE_IN_PROGRESS => {
                    last_answer = Instant::now();
                    self.rejoin_needed.store(true, Ordering::Relaxed);
                }
                codes::UNKNOWN_MEMBER_ID
                | codes::ILLEGAL_GENERATION
                | codes::FENCED_INSTANCE_ID => {
                    tracing::debug!(group = %self.group_id, code, "membership lost; rejoining");
                    self.membership_lost.store(true, Ordering::Relaxed);
                    self.rejoin_needed.store(true, Ordering::Relaxed);
                    return;
                }
                codes::NOT_COORDINATOR
                | codes::COORDINATOR_NOT_AVAILABLE
                | codes::COORDINATOR_LOAD_IN_PROGRESS => {
                    tracing::debug!(group = %self.group_id, code, "coordinator unknown; looking it up");
                    set(&self.coordinator, None);
                    pause_ms = self.retry_backoff_ms;
                }
                code => {
                    tracing::debug!(group = %self.group_id, code, "heartbeat failed; rejoining");
                    self.rejoin_needed.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// One heartbeat: its error code, COORDINATOR_NOT_AVAILABLE when no coordinator was
    /// found by `lookup_deadline` or the connection was lost.
    async fn beat(&self, lookup_deadline: Instant) -> i16 {
        let coordinator = match current(&self.coordinator) {
            Some(conn) => conn,
            None => match find_coordinator(&self.cluster, &self.group_id, lookup_deadline).await {
                Ok(conn) => {
                    set(&self.coordinator, Some(conn.clone()));
                    conn
                }
                Err(error) => return error.code().unwrap_or(codes::COORDINATOR_NOT_AVAILABLE),
            },
        };
        match coordinator.send(&self.request).await {
            Ok(response) => response.error_code,
            Err(error) => error.code().unwrap_or(codes::COORDINATOR_NOT_AVAILABLE),
        }
    }
}
