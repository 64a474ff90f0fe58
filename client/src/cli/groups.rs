//! `runnel groups list|describe|delete|reset-offsets`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::Subcommand;
use runnel_client::admin::PartitionLag;
use runnel_client::offsets::{EARLIEST, LATEST};
use runnel_client::Result as ClientResult;
use runnel_client::{Admin, ClientConfig, TopicPartition};

use super::{print_table, Output};

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List consumer groups.
    List,
    /// Members, assignments, committed offsets and lag per partition.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete groups (they must have no members).
    Delete {
        /// Group ids to delete.
        #[arg(required = true, value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Move a stopped group's committed offsets for a topic.
    #[command(
        after_help = "Examples:\n  runnel groups reset-offsets billing -t orders --to-earliest\n  runnel groups reset-offsets billing -t orders --to-offset 42",
        group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_timestamp"]))
    )]
    ResetOffsets {
        /// Group id (the group must have no members).
        group: String,
        /// Topic whose partitions' offsets move.
        #[arg(short, long)]
        topic: String,
        /// Each partition's earliest offset (its log start).
        #[arg(long)]
        to_earliest: bool,
        /// Each partition's end (skip everything not yet read).
        #[arg(long)]
        to_latest: bool,
        /// This offset in every partition.
        #[arg(long)]
        to_offset: Option<i64>,
        /// First offset at or after this timestamp (ms).
        #[arg(long)]
        to_timestamp: Option<i64>,
    },
}

pub async fn run(bootstrap: &str, output: Output, command: GroupsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(ClientConfig::new(bootstrap))
        .await
        .context("connecting")?;
    match command {
        GroupsCommand::List => {
            let groups = admin.list_groups().await?;
            if output == Output::Json {
                let list: Vec<_> = groups
                    .iter()
                    .map(|g| serde_json::json!({"group": g.group_id, "state": g.state, "type": g.protocol_type}))
                    .collect();
                out!("{}", serde_json::Value::Array(list))?;
            } else {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                    .collect();
                print_table(&["GROUP", "STATE", "TYPE"], &rows)?;
            }
        }
        GroupsCommand::Describe { group } => describe(&admin, output, &group).await?,
        GroupsCommand::Delete { groups } => {
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            let outcomes = admin.delete_groups_each(&names).await;
            let (deleted, failed) = split_deletions(&outcomes);
            if !deleted.is_empty() {
                out!("deleted {}", deleted.join(", "))?;
            }
            if !failed.is_empty() {
                bail!("could not delete {}", failed.join("; "));
            }
        }
        GroupsCommand::ResetOffsets {
            group,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            to_timestamp,
        } => {
            let partitions = admin.partitions(&topic).await?;
            let offsets: BTreeMap<TopicPartition, i64> =
                match (to_earliest, to_latest, to_offset, to_timestamp) {
                    (true, _, _, _) => admin.list_offsets(&partitions, EARLIEST).await?,
                    (_, true, _, _) => admin.list_offsets(&partitions, LATEST).await?,
                    (_, _, Some(offset), _) => {
                        partitions.iter().map(|tp| (tp.clone(), offset)).collect()
                    }
                    (_, _, _, Some(ts)) => {
                        let found = admin.list_offsets(&partitions, ts).await?;
                        let end = admin.list_offsets(&partitions, LATEST).await?;
                        found
                            .into_iter()
                            .map(|(tp, o)| {
                                let o = if o < 0 {
                                    end.get(&tp).copied().unwrap_or(0)
                                } else {
                                    o
                                };
                                (tp, o)
                            })
                            .collect()
                    }
                    _ => bail!(
                        "say where to: --to-earliest, --to-latest, --to-offset or --to-timestamp"
                    ),
                };
            admin.reset_group_offsets(&group, &offsets).await?;
            for (tp, offset) in &offsets {
                out!("{tp} -> {offset}")?;
            }
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, output: Output, group: &str) -> anyhow::Result<()> {
    let (description, lag) = admin.describe_group_with_lag(group).await?;
    if output == Output::Json {
        let members: Vec<_> = description
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<String> = m.assignment.iter().map(ToString::to_string).collect();
                serde_json::json!({"member": m.member_id, "client": m.client_id, "host": m.client_host, "assignment": assignment})
            })
            .collect();
        let partitions: Vec<_> = lag
            .iter()
            .map(|l| {
                serde_json::json!({"topic": l.partition.topic, "partition": l.partition.partition,
                    "committed": l.committed, "log_end": l.log_end, "lag": l.lag, "owner": l.owner})
            })
            .collect();
        out!(
            "{}",
            serde_json::json!({"group": group, "state": description.state, "protocol": description.protocol,
                "members": members, "partitions": partitions, "total_lag": total_lag(&lag)})
        )?;
        return Ok(());
    }
    out!(
        "group {group}: state {}, protocol {}, {} members",
        description.state,
        if description.protocol.is_empty() {
            "-"
        } else {
            &description.protocol
        },
        description.members.len()
    )?;
    if !description.members.is_empty() {
        let rows: Vec<Vec<String>> = description
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<String> =
                    m.assignment.iter().map(ToString::to_string).collect();
                vec![
                    m.member_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    assignment.join(","),
                ]
            })
            .collect();
        out!()?;
        print_table(&["MEMBER", "CLIENT", "HOST", "ASSIGNMENT"], &rows)?;
    }
    out!()?;
    let rows: Vec<Vec<String>> = lag
        .iter()
        .map(|l| {
            vec![
                l.partition.topic.clone(),
                l.partition.partition.to_string(),
                l.committed.map_or("-".into(), |c| c.to_string()),
                l.log_end.to_string(),
                l.lag.map_or("-".into(), |lag| lag.to_string()),
                l.owner.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(
        &["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "OWNER"],
        &rows,
    )?;
    out!("total lag: {}", total_lag(&lag))?;
    Ok(())
}

/// Lag summed over the partitions whose lag is known (committed ones).
fn total_lag(lag: &[PartitionLag]) -> i64 {
    lag.iter().filter_map(|l| l.lag).sum()
}

/// The groups deleted, and each failure as `group: error` (every group is tried, so the
/// user learns of all of them at once).
fn split_deletions(outcomes: &[(String, ClientResult<()>)]) -> (Vec<&str>, Vec<String>) {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for (group, outcome) in outcomes {
        match outcome {
            Ok(()) => deleted.push(group.as_str()),
            Err(error) => failed.push(format!("{group}: {error}")),
        }
    }
    (deleted, failed)
}

#[cfg(test)]
mod tests {
    use super::split_deletions;
    use runnel_client::Error;

    /// `groups delete a b c` names what was deleted and every group that was not.
    #[test]
    fn a_delete_names_each_deleted_and_each_failed_group() {
        let not_found = |group: &str| Error::Broker {
            code: 69,
            context: format!("delete group {group}"),
        };
        let outcomes = vec![
            ("a".to_owned(), Err(not_found("a"))),
            ("b".to_owned(), Ok(())),
            ("c".to_owned(), Err(not_found("c"))),
        ];
        let (deleted, failed) = split_deletions(&outcomes);
        assert_eq!(deleted, ["b"]);
        assert_eq!(failed.len(), 2);
        assert!(failed[0].starts_with("a: ") && failed[0].contains("delete group a"));
        assert!(failed[1].starts_with("c: ") && failed[1].contains("delete group c"));
    }
}
