//! AlterReplicaLogDirs (v1–2): `kafka-reassign-partitions.sh` with `log_dirs` in its
//! reassignment file moves replicas between a broker's log directories. Runnel has one data
//! directory, so the only destination is where every partition already is: nothing to move
//! (NONE). As Kafka's `ReplicaManager.alterReplicaLogDirs`, per partition:
//! - a destination that is not a log directory of this broker: LOG_DIR_NOT_FOUND (checked
//!   first, even for an unknown partition);
//! - a partition this broker does not host: REPLICA_NOT_AVAILABLE (what Kafka keeps
//!   answering for compatibility instead of NOT_LEADER_OR_FOLLOWER);
//! - otherwise NONE.
//!
//! The request is read as Kafka's `AlterReplicaLogDirsRequest.partitionDirs`: one
//! destination per partition, a partition named under two directories taking the last.
//! Results are grouped by topic. The destination is compared with the directory as
//! DescribeLogDirs reports it (resolved, absolute) and as configured, made absolute.
//! Not done: Kafka refuses a topic whose "future" directory name would exceed 255 bytes
//! (INVALID_TOPIC_EXCEPTION) before anything else; Runnel never creates one.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, RequestHeader, TopicName,
};

use super::describe_log_dirs::absolute;
use super::replicas::partition_exists;
use super::BrokerContext;

pub fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    // (topic, partition) → destination, the last one named winning.
    let mut destinations: BTreeMap<(TopicName, i32), &str> = BTreeMap::new();
    for dir in &request.dirs {
        for topic in &dir.topics {
            for &partition in &topic.partitions {
                destinations.insert((topic.name.clone(), partition), dir.path.as_str());
            }
        }
    }
    let data_dir = ctx.logs.data_dir();
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for ((topic, partition), destination) in destinations {
        let code = error_code(ctx, data_dir, &topic, partition, destination);
        let result = AlterReplicaLogDirPartitionResult::default()
            .with_partition_index(partition)
            .with_error_code(code);
        match results.last_mut() {
            Some(last) if last.topic_name == topic => last.partitions.push(result),
            _ => results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic)
                    .with_partitions(vec![result]),
            ),
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}

fn error_code(
    ctx: &BrokerContext,
    data_dir: &Path,
    topic: &TopicName,
    partition: i32,
    destination: &str,
) -> i16 {
    if !is_data_dir(data_dir, destination) {
        return ResponseError::LogDirNotFound.code();
    }
    if !partition_exists(ctx, topic.0.as_str(), partition) {
        return ResponseError::ReplicaNotAvailable.code();
    }
    0
}

/// Whether `destination` names the data directory, as DescribeLogDirs reports it or as
/// configured (made absolute, as Kafka compares `getAbsolutePath`).
fn is_data_dir(data_dir: &Path, destination: &str) -> bool {
    let configured = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    destination == absolute(data_dir) || Path::new(destination) == configured
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::super::create_topics::fixture::{broker, header, topic};
    use super::*;

    fn dir(path: &str, topics: &[(&str, &[i32])]) -> AlterReplicaLogDir {
        AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(path.to_owned()))
            .with_topics(
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        AlterReplicaLogDirTopic::default()
                            .with_name(TopicName(StrBytes::from_string((*name).to_owned())))
                            .with_partitions(partitions.to_vec())
                    })
                    .collect(),
            )
    }

    fn codes(response: &AlterReplicaLogDirsResponse) -> Vec<(String, i32, i16)> {
        response
            .results
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect()
    }

    #[test]
    fn the_data_directory_is_where_every_partition_already_is() {
        let fixture = broker();
        topic(&fixture, "t", 2);
        let here = absolute(fixture.ctx.logs.data_dir());
        let request = AlterReplicaLogDirsRequest::default().with_dirs(vec![
            dir(&here, &[("t", &[0, 1, 5]), ("gone", &[0])]),
            dir("/nowhere", &[("t", &[0]), ("u", &[0])]),
        ]);
        let response = handle(&fixture.ctx, &header(2), request);
        let not_found = ResponseError::LogDirNotFound.code();
        let unavailable = ResponseError::ReplicaNotAvailable.code();
        // Grouped by topic; t-0 named twice takes the last directory; an unknown directory
        // is checked before the partition.
        assert_eq!(
            codes(&response),
            vec![
                ("gone".to_owned(), 0, unavailable),
                ("t".to_owned(), 0, not_found),
                ("t".to_owned(), 1, 0),
                ("t".to_owned(), 5, unavailable),
                ("u".to_owned(), 0, not_found),
            ]
        );
        assert_eq!(response.results.len(), 3, "one result per topic");
    }

    /// A data directory configured through a symbolic link is named both ways: as
    /// configured and as resolved (what DescribeLogDirs reports); nothing else is.
    #[test]
    fn the_configured_path_names_the_data_directory_too() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let resolved = absolute(&link);
        assert_ne!(
            resolved,
            link.to_string_lossy(),
            "the link must resolve elsewhere"
        );
        assert!(is_data_dir(&link, &link.to_string_lossy()));
        assert!(is_data_dir(&link, &resolved));
        assert!(!is_data_dir(&link, &link.join("t-0").to_string_lossy()));
        assert!(!is_data_dir(&link, &format!("{}/..", link.display())));
        assert!(!is_data_dir(&link, ""));
    }
}
