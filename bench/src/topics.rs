//! Topic setup for every workload: creating many topics / partitions in bounded requests
//! (10 000 partitions take the broker a while, and one request has a 30 s broker-side
//! timeout), and checking which partitions hold records.

use std::collections::HashSet;
use std::time::Instant;

use runnel_client::admin::NewTopic;
use runnel_client::offsets::LATEST;
use runnel_client::{Admin, ClientConfig, TopicPartition};

/// Partitions created (or added) by one CreateTopics / CreatePartitions request.
pub const CREATE_PARTITIONS_PER_REQUEST_MAX: i32 = 1_000;

/// Creates each of `topics` that does not exist yet with `partitions` partitions. Requests
/// carry at most [`CREATE_PARTITIONS_PER_REQUEST_MAX`] partitions: a bigger topic is
/// created with that many and grown by CreatePartitions in steps of the same size. Fails
/// when `deadline` passes before the last request. Returns the number of requests sent.
pub async fn create_topics(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
    deadline: Instant,
) -> anyhow::Result<u64> {
    anyhow::ensure!(partitions > 0, "--partitions must be > 0");
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    let existing: HashSet<String> = admin
        .list_topics()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let missing: Vec<&String> = topics.iter().filter(|t| !existing.contains(*t)).collect();
    let step = CREATE_PARTITIONS_PER_REQUEST_MAX;
    let first = partitions.min(step);
    let mut requests = 0u64;
    // Whole topics, several to a request while they fit.
    let topics_per_request = usize::try_from((step / first).max(1))?;
    for chunk in missing.chunks(topics_per_request) {
        check_deadline(deadline, requests)?;
        let new: Vec<NewTopic> = chunk.iter().map(|t| NewTopic::new(t, first)).collect();
        admin.create_topics(&new).await?;
        requests += 1;
    }
    // Then each topic bigger than one request grows to its size.
    for topic in missing.iter().filter(|_| partitions > first) {
        let mut count = first;
        while count < partitions {
            check_deadline(deadline, requests)?;
            count = count.saturating_add(step).min(partitions);
            admin.create_partitions(topic, count).await?;
            requests += 1;
        }
    }
    Ok(requests)
}

fn check_deadline(deadline: Instant, requests: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        Instant::now() < deadline,
        "creating topics: --create-seconds-max passed after {requests} requests"
    );
    Ok(())
}

/// How many partitions of `topics` (out of how many) hold at least one record.
pub async fn partitions_written(bootstrap: &str, topics: &[String]) -> anyhow::Result<(u64, u64)> {
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    let wanted: HashSet<&str> = topics.iter().map(String::as_str).collect();
    // One metadata request for every topic, rather than one per topic.
    let partitions: Vec<TopicPartition> = admin
        .list_topics()
        .await?
        .iter()
        .filter(|t| wanted.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(&t.name, p.partition))
        })
        .collect();
    let ends = admin.list_offsets(&partitions, LATEST).await?;
    let written = ends.values().filter(|end| **end > 0).count();
    Ok((written as u64, partitions.len() as u64))
}
