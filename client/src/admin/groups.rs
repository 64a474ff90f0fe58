//! Group administration: list, describe (members with their decoded assignments), delete,
//! committed offsets, lag per partition (log end minus committed) and offset resets.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;

use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
};

use super::{str_bytes, Admin};
use crate::conn::Connection;
use crate::consumer::group::{decode_assignment, find_coordinator};
use crate::consumer::TopicPartition;
use crate::error::{codes, Error, Result};
use crate::offsets::{self, LATEST};
use crate::retry::{Retry, RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_MS};

/// How long an admin call waits for its group's coordinator, and retries retriable errors
/// of the calls made to it (Java's `default.api.timeout.ms` default).
const DEFAULT_API_TIMEOUT_MS: u64 = 60_000;

/// The retry bound of an admin call: [`DEFAULT_API_TIMEOUT_MS`], Kafka's default backoffs.
pub(super) fn api_retry() -> Retry {
    Retry::within(
        DEFAULT_API_TIMEOUT_MS,
        RETRY_BACKOFF_MS,
        RETRY_BACKOFF_MAX_MS,
    )
}

/// How many groups [`Admin::delete_groups_each`] deletes at once: each may wait up to
/// `DEFAULT_API_TIMEOUT_MS` for its coordinator, so one at a time could take that long per
/// group, while a long list must not open a lookup per group all at once.
pub const GROUP_DELETES_IN_FLIGHT_MAX: usize = 16;

/// A group as ListGroups reports it.
///
/// ```no_run
/// # async fn example(admin: runnel_client::Admin) -> runnel_client::Result<()> {
/// let names: Vec<String> = admin.list_groups().await?.into_iter().map(|g| g.group_id).collect();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

/// One member of a described group.
///
/// ```no_run
/// # async fn example(admin: runnel_client::Admin) -> runnel_client::Result<()> {
/// for member in admin.describe_group("billing").await?.members {
///     println!("{} owns {:?}", member.member_id, member.assignment);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub assignment: Vec<TopicPartition>,
}

/// DescribeGroups for one group.
///
/// ```no_run
/// # async fn example(admin: runnel_client::Admin) -> runnel_client::Result<()> {
/// let group = admin.describe_group("billing").await?;
/// println!("{} ({}), {} members", group.group_id, group.state, group.members.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMemberInfo>,
}

/// Committed offset, log end and lag of one partition for one group.
///
/// ```no_run
/// # async fn example(admin: runnel_client::Admin) -> runnel_client::Result<()> {
/// let total: i64 = admin.group_lag("billing").await?.iter().filter_map(|p| p.lag).sum();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: TopicPartition,
    /// `None` when the group has not committed for this partition.
    pub committed: Option<i64>,
    pub log_end: i64,
    /// `log_end - committed`; `None` when nothing is committed (no position to measure
    /// from: kafka-consumer-groups prints `-` there).
    pub lag: Option<i64>,
    /// The member that owns the partition now, if any.
    pub owner: Option<String>,
}

impl Admin {
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let response = self.cluster.send_any(&ListGroupsRequest::default()).await?;
        Error::check(response.error_code, || "list groups".to_owned())?;
        let mut groups: Vec<GroupListing> = response
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// Calls `call` at the group's coordinator as Java's admin does: retriable errors (the
    /// coordinator loading or moved, a lost connection) are retried, the coordinator looked
    /// up again each time, until [`DEFAULT_API_TIMEOUT_MS`]; `what` names the call for the
    /// [`Error::ApiTimeout`] after that.
    async fn at_coordinator<T, Call, Answer>(
        &self,
        group_id: &str,
        what: &str,
        call: Call,
    ) -> Result<T>
    where
        Call: Fn(Arc<Connection>) -> Answer,
        Answer: Future<Output = Result<T>>,
    {
        let mut retry = api_retry();
        loop {
            let error = match find_coordinator(&self.cluster, group_id, retry.deadline).await {
                Ok(coordinator) => match call(coordinator).await {
                    Ok(answer) => return Ok(answer),
                    Err(error) => error,
                },
                Err(error) => error,
            };
            // An unknown partition is final, as in the consumer's offset calls.
            let retriable =
                error.is_retriable() && error.code() != Some(codes::UNKNOWN_TOPIC_OR_PARTITION);
            let what = || format!("{what} of group {group_id}");
            retry.after(error, retriable, what).await?;
        }
    }

    /// DescribeGroups for one group, retried as [`Admin::committed_offsets`] is.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        let describe =
            |coordinator: Arc<Connection>| async move { describe_at(&coordinator, group_id).await };
        self.at_coordinator(group_id, "describe", describe).await
    }

    /// Deletes every group (each at its coordinator, retried as [`Admin::committed_offsets`]
    /// is) and fails, once all were tried, with the first failure in `group_ids`' order, as
    /// Java's `deleteConsumerGroups(..).all()`. [`Admin::delete_groups_each`] says how each
    /// went.
    pub async fn delete_groups(&self, group_ids: &[&str]) -> Result<()> {
        for (_, outcome) in self.delete_groups_each(group_ids).await {
            outcome?;
        }
        Ok(())
    }

    /// Deletes every group in `group_ids` (a repeated id once), one failing not stopping the
    /// others, and gives each group's outcome in their order, as Java's
    /// `deleteConsumerGroups(..).deletedGroups()`. Each is retried at its coordinator as
    /// [`Admin::committed_offsets`] is (DeleteGroups reports a coordinator loading or moved
    /// in the group's result), up to [`GROUP_DELETES_IN_FLIGHT_MAX`] at once.
    pub async fn delete_groups_each(&self, group_ids: &[&str]) -> Vec<(String, Result<()>)> {
        let mut unique: Vec<&str> = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            if !unique.contains(group_id) {
                unique.push(group_id);
            }
        }
        let deletes = unique.into_iter().map(|group_id| async move {
            let delete = |coordinator: Arc<Connection>| async move {
                delete_at(&coordinator, group_id).await
            };
            let outcome = self.at_coordinator(group_id, "delete", delete).await;
            (group_id.to_owned(), outcome)
        });
        // `buffered` keeps the order of `group_ids`.
        futures::stream::iter(deletes)
            .buffered(GROUP_DELETES_IN_FLIGHT_MAX)
            .collect()
            .await
    }

    /// Every committed offset of a group. Retriable errors (COORDINATOR_LOAD_IN_PROGRESS,
    /// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, a lost connection) are retried, the
    /// coordinator looked up again, for up to 60 s (Java's `default.api.timeout.ms`).
    pub async fn committed_offsets(&self, group_id: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        let fetch = |coordinator: Arc<Connection>| async move {
            offsets::committed(&coordinator, group_id, None).await
        };
        self.at_coordinator(group_id, "fetching committed offsets", fetch)
            .await
    }

    /// Lag per partition of every topic the group committed for or is assigned, sorted.
    pub async fn group_lag(&self, group_id: &str) -> Result<Vec<PartitionLag>> {
        Ok(self.describe_group_with_lag(group_id).await?.1)
    }

    /// The group's description and [`group_lag`](Self::group_lag) together (what `runnel
    /// groups describe` shows). Committed offsets and the description are independent, so
    /// both requests go to the coordinator at once (retried together as
    /// [`Admin::committed_offsets`] is); then one ListOffsets per leader broker covers every
    /// partition.
    pub async fn describe_group_with_lag(
        &self,
        group_id: &str,
    ) -> Result<(GroupDescription, Vec<PartitionLag>)> {
        let both = |coordinator: Arc<Connection>| async move {
            tokio::try_join!(
                offsets::committed(&coordinator, group_id, None),
                describe_at(&coordinator, group_id),
            )
        };
        let (committed, description) = self
            .at_coordinator(group_id, "describe with committed offsets", both)
            .await?;
        let mut owners: BTreeMap<TopicPartition, String> = BTreeMap::new();
        for member in &description.members {
            for tp in &member.assignment {
                owners.insert(tp.clone(), member.member_id.clone());
            }
        }
        let mut partitions: Vec<TopicPartition> = committed.keys().cloned().collect();
        partitions.extend(owners.keys().cloned());
        partitions.sort();
        partitions.dedup();
        let ends = offsets::list_offsets(&self.cluster, &partitions, LATEST).await?;
        let lag = partitions
            .into_iter()
            .map(|tp| {
                let log_end = ends.get(&tp).copied().unwrap_or(0);
                let committed = committed.get(&tp).copied();
                PartitionLag {
                    lag: lag_records(committed, log_end),
                    committed,
                    log_end,
                    owner: owners.get(&tp).cloned(),
                    partition: tp,
                }
            })
            .collect();
        Ok((description, lag))
    }

    /// Commits `offsets` for a group that has no active members (Kafka refuses otherwise),
    /// retried as [`Admin::committed_offsets`] is.
    pub async fn reset_group_offsets(
        &self,
        group_id: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let description = self.describe_group(group_id).await?;
        if !description.members.is_empty() {
            return Err(Error::State(format!(
                "group {group_id} has {} active members; stop them first",
                description.members.len()
            )));
        }
        let commit = |coordinator: Arc<Connection>| async move {
            offsets::commit(&coordinator, group_id, -1, "", offsets).await
        };
        self.at_coordinator(group_id, "committing offsets", commit)
            .await
    }
}

/// DeleteGroups for `group_id` at its coordinator.
async fn delete_at(coordinator: &Connection, group_id: &str) -> Result<()> {
    let request =
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group_id))]);
    let response = coordinator.send(&request).await?;
    for result in response.results {
        Error::check(result.error_code, || format!("delete group {group_id}"))?;
    }
    Ok(())
}

/// DescribeGroups for `group_id` at its coordinator.
async fn describe_at(coordinator: &Connection, group_id: &str) -> Result<GroupDescription> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group_id))]);
    let response = coordinator.send(&request).await?;
    let group = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| Error::Protocol("DescribeGroups returned no group".to_owned()))?;
    Error::check(group.error_code, || format!("describe group {group_id}"))?;
    let consumer = group.protocol_type.as_str() == "consumer";
    let members = group
        .members
        .into_iter()
        .map(|m| GroupMemberInfo {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: if consumer {
                decode_assignment(m.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok(GroupDescription {
        group_id: group_id.to_owned(),
        state: group.group_state.to_string(),
        protocol_type: group.protocol_type.to_string(),
        protocol: group.protocol_data.to_string(),
        members,
    })
}

/// Records between a committed offset and the log end; unknown without a commit.
fn lag_records(committed: Option<i64>, log_end: i64) -> Option<i64> {
    committed.map(|committed| (log_end - committed).max(0))
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
