//! `runnel topics list|create|describe|alter|delete`.

use anyhow::{bail, Context};
use clap::Subcommand;
use runnel_client::admin::NewTopic;
use runnel_client::offsets::{EARLIEST, LATEST};
use runnel_client::{Admin, ClientConfig};

use super::{print_table, Output};

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// List topics with their partition counts.
    List {
        /// Include internal topics (__consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Create a topic.
    #[command(
        after_help = "Example:\n  runnel topics create orders -p 3 -c retention.ms=60000 -c cleanup.policy=compact"
    )]
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// Copies of each partition (Runnel is one broker: 1, or -1 for the broker's default).
        #[arg(short, long, default_value_t = 1)]
        replication_factor: i16,
        /// Topic config `key=value` (repeatable).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Partitions (leader, offsets) and non-default configs of a topic.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Set or delete configs, or add partitions.
    #[command(
        after_help = "Example:\n  runnel topics alter orders -c retention.ms=3600000 --delete-config segment.ms --partitions 6"
    )]
    Alter {
        /// Topic name.
        name: String,
        /// Set topic config `key=value` (repeatable).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Remove a topic config override, back to the broker's default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Grow the topic to this many partitions.
        #[arg(long)]
        partitions: Option<i32>,
    },
    /// Delete topics.
    Delete {
        /// Topics to delete.
        #[arg(required = true, value_name = "TOPIC")]
        names: Vec<String>,
    },
}

fn key_value(pair: &str) -> anyhow::Result<(String, String)> {
    match pair.split_once('=') {
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => bail!("{pair:?} is not KEY=VALUE"),
    }
}

pub async fn run(bootstrap: &str, output: Output, command: TopicsCommand) -> anyhow::Result<()> {
    let admin = Admin::new(ClientConfig::new(bootstrap))
        .await
        .context("connecting")?;
    match command {
        TopicsCommand::List { internal } => {
            let topics: Vec<_> = admin
                .list_topics()
                .await?
                .into_iter()
                .filter(|t| internal || !t.internal)
                .collect();
            if output == Output::Json {
                let list: Vec<_> = topics
                    .iter()
                    .map(|t| serde_json::json!({"name": t.name, "partitions": t.partitions.len()}))
                    .collect();
                out!("{}", serde_json::Value::Array(list))?;
            } else {
                let rows: Vec<Vec<String>> = topics
                    .iter()
                    .map(|t| vec![t.name.clone(), t.partitions.len().to_string()])
                    .collect();
                print_table(&["TOPIC", "PARTITIONS"], &rows)?;
            }
        }
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = NewTopic::new(&name, partitions);
            topic.replication_factor = replication_factor;
            for pair in &configs {
                let (k, v) = key_value(pair)?;
                topic = topic.with_config(&k, &v);
            }
            admin.create_topics(&[topic]).await?;
            out!("created topic {name} with {partitions} partitions")?;
        }
        TopicsCommand::Describe { name } => describe(&admin, output, &name).await?,
        TopicsCommand::Alter {
            name,
            configs,
            delete_configs,
            partitions,
        } => {
            let mut changes = Vec::new();
            for pair in &configs {
                let (k, v) = key_value(pair)?;
                changes.push((k, Some(v)));
            }
            changes.extend(delete_configs.into_iter().map(|k| (k, None)));
            if !changes.is_empty() {
                admin.alter_topic_configs(&name, &changes).await?;
            }
            if let Some(count) = partitions {
                admin.create_partitions(&name, count).await?;
            }
            out!("altered topic {name}")?;
        }
        TopicsCommand::Delete { names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            admin.delete_topics(&names).await?;
            out!("deleted {}", names.join(", "))?;
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, output: Output, name: &str) -> anyhow::Result<()> {
    let info = admin.describe_topic(name).await?;
    let partitions = admin.partitions(name).await?;
    let earliest = admin.list_offsets(&partitions, EARLIEST).await?;
    let latest = admin.list_offsets(&partitions, LATEST).await?;
    // Sizes are a convenience: a broker without DescribeLogDirs shows "-" (JSON null).
    let sizes = admin.partition_sizes(name).await.unwrap_or_default();
    let configs: Vec<_> = admin
        .describe_topic_configs(name)
        .await?
        .into_iter()
        .filter(|c| !c.is_default)
        .collect();
    if output == Output::Json {
        let parts: Vec<_> = info
            .partitions
            .iter()
            .zip(&partitions)
            .map(|(p, tp)| {
                serde_json::json!({"partition": p.partition, "leader": p.leader,
                    "earliest": earliest.get(tp), "latest": latest.get(tp),
                    "size_bytes": sizes.get(&p.partition)})
            })
            .collect();
        let configs: serde_json::Map<_, _> = configs
            .iter()
            .map(|c| (c.name.clone(), c.value.clone().into()))
            .collect();
        out!(
            "{}",
            serde_json::json!({"name": name, "partitions": parts, "configs": configs})
        )?;
        return Ok(());
    }
    out!("topic {name}: {} partitions", info.partitions.len())?;
    let rows: Vec<Vec<String>> = info
        .partitions
        .iter()
        .zip(&partitions)
        .map(|(p, tp)| {
            vec![
                p.partition.to_string(),
                p.leader.to_string(),
                earliest.get(tp).map_or("-".into(), i64::to_string),
                latest.get(tp).map_or("-".into(), i64::to_string),
                sizes.get(&p.partition).map_or("-".into(), i64::to_string),
            ]
        })
        .collect();
    print_table(
        &["PARTITION", "LEADER", "EARLIEST", "LATEST", "BYTES"],
        &rows,
    )?;
    if !configs.is_empty() {
        out!()?;
        let rows: Vec<Vec<String>> = configs
            .iter()
            .map(|c| vec![c.name.clone(), c.value.clone().unwrap_or_default()])
            .collect();
        print_table(&["CONFIG", "VALUE"], &rows)?;
    }
    Ok(())
}
