//! `runnel consume`: print records with a `--format` template or as JSON lines.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use runnel_client::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition};

use super::Output;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(short, long)]
    topic: String,
    /// Join this consumer group (commits offsets); without it, read every partition.
    #[arg(short, long)]
    group: Option<String>,
    /// Start at the earliest offset when there is no committed one.
    #[arg(long, conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,
    /// Start every partition at this offset (no group).
    #[arg(long, conflicts_with = "group")]
    offset: Option<i64>,
    /// Start at the first record at or after this timestamp (ms; no group).
    #[arg(long, conflicts_with = "group")]
    timestamp: Option<i64>,
    /// Stop after COUNT records.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Template: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp, %h headers.
    #[arg(long, default_value = "%v")]
    format: String,
    /// Exit after this many ms without a record (default: wait forever).
    #[arg(long)]
    idle_exit_ms: Option<u64>,
    /// Exit once every partition read (with --group: assigned to this member) has been read
    /// to its end as the last fetch saw it (kcat's -e): records produced meanwhile may be
    /// left for the next run.
    #[arg(short = 'e', long)]
    exit_at_end: bool,
}

pub async fn run(bootstrap: &str, output: Output, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::new(bootstrap);
    config.group_id = args.group.clone();
    config.auto_offset_reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    config.fetch_wait_ms_max = 200;
    config.auto_commit = false;
    config.client.allow_auto_topic_creation = false;
    let mut consumer = Consumer::new(config).await.context("connecting")?;
    if args.group.is_some() {
        consumer.subscribe(&[args.topic.as_str()])?;
    } else {
        let info = consumer.cluster().topic(&args.topic).await?;
        let partitions: Vec<TopicPartition> = info
            .partitions
            .iter()
            .map(|p| TopicPartition::new(&args.topic, p.partition))
            .collect();
        consumer.assign(&partitions)?;
        if let Some(offset) = args.offset {
            for tp in &partitions {
                consumer.seek(tp, offset)?;
            }
        } else if let Some(timestamp) = args.timestamp {
            consumer.seek_to_timestamp(&partitions, timestamp).await?;
        }
    }
    let mut printed = 0u64;
    let mut printed_up_to = std::collections::BTreeMap::new();
    let mut last_record = Instant::now();
    'consume: while args.count.is_none_or(|n| printed < n) {
        if args
            .idle_exit_ms
            .is_some_and(|ms| last_record.elapsed() >= Duration::from_millis(ms))
        {
            break;
        }
        if args.exit_at_end && at_end(&consumer) {
            // Everything returned was printed: commit the positions, which also pass the
            // offsets compaction removed from the end of a batch.
            for tp in consumer.assignment() {
                if let Some(position) = consumer.position(&tp) {
                    printed_up_to.insert(tp, position);
                }
            }
            break;
        }
        for record in consumer.poll(Duration::from_millis(200)).await? {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            last_record = Instant::now();
            let open = match output {
                Output::Json => out!("{}", to_json(&record))?,
                Output::Table => out!("{}", render(&args.format, &record))?,
            };
            if !open {
                // The reader is gone (`| head`): stop, commit what it was given, leave.
                break 'consume;
            }
            printed += 1;
            let tp = TopicPartition::new(&record.topic, record.partition);
            printed_up_to.insert(tp, record.offset + 1);
        }
    }
    if args.group.is_some() && !printed_up_to.is_empty() {
        // Commit what was printed, not what was fetched: `-n` may stop mid-batch.
        consumer
            .commit_offsets(&printed_up_to)
            .await
            .context("committing")?;
    }
    consumer.close().await?;
    Ok(())
}

/// Whether the consumer has partitions and has returned every record of each up to the high
/// watermark its last fetch answer gave (a partition not fetched yet is not at its end).
fn at_end(consumer: &Consumer) -> bool {
    let assigned = consumer.assignment();
    !assigned.is_empty() && (assigned.iter()).all(|tp| consumer.current_lag(tp) == Some(0))
}

fn text(bytes: Option<&bytes::Bytes>) -> String {
    bytes
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn render(format: &str, record: &ConsumerRecord) -> String {
    let mut out = String::with_capacity(format.len() + 32);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            if c == '\\' {
                match chars.next() {
                    Some('t') => out.push('\t'),
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
                continue;
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push_str(&record.topic),
            Some('p') => out.push_str(&record.partition.to_string()),
            Some('o') => out.push_str(&record.offset.to_string()),
            Some('k') => out.push_str(&text(record.key.as_ref())),
            Some('v') => out.push_str(&text(record.value.as_ref())),
            Some('T') => out.push_str(&record.timestamp_ms.to_string()),
            Some('h') => {
                let headers: Vec<String> = record
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={}", text(v.as_ref())))
                    .collect();
                out.push_str(&headers.join(","));
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn to_json(record: &ConsumerRecord) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = record
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_ref()
                    .map_or(serde_json::Value::Null, |v| text(Some(v)).into()),
            )
        })
        .collect();
    serde_json::json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": record.key.as_ref().map(|k| text(Some(k))),
        "value": record.value.as_ref().map(|v| text(Some(v))),
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_every_field() {
        let record = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 9,
            timestamp_ms: 5,
            key: Some("k".into()),
            value: Some("v".into()),
            headers: vec![("h".into(), Some("x".into()))],
        };
        assert_eq!(
            render("%t/%p@%o %k=%v %T %h 100%%\\t.", &record),
            "t/2@9 k=v 5 h=x 100%\t."
        );
        assert_eq!(to_json(&record)["key"], "k");
    }
}
