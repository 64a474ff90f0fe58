//! DescribeLogDirs (v1–4): the one data directory, with every partition's size in bytes
//! (or those asked for), and from v4 the file system's total and usable bytes — what
//! `kafka-log-dirs.sh` and admin UIs show as topic sizes.
//!
//! As Kafka's `ReplicaManager.describeLogDirs`: partitions are listed only where a log
//! exists (an unknown topic or partition asked for is left out, not an error), topics with
//! no listed partition are left out, and a current log's offset lag is 0. Sizes of
//! partitions not yet opened come from their directories' file lengths: describing ten
//! thousand idle partitions opens none.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::log_error_code;
use super::BrokerContext;

/// The first version with a top-level error code.
const ERROR_CODE_VERSION_MIN: i16 = 3;
/// The first version with the directory's total and usable bytes.
const SPACE_VERSION_MIN: i16 = 4;
/// Kafka's "not known" for total_bytes and usable_bytes.
const UNKNOWN_SPACE_BYTES: i64 = -1;

pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let version = header.request_api_version;
    // `None`: every partition; otherwise the (topic, partition) pairs asked for.
    let wanted: Option<BTreeSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let data_dir = ctx.logs.data_dir();
    let mut error = None;
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (info, logs) in ctx.logs.topic_partitions() {
        for log in logs {
            let key = (info.name.clone(), log.partition());
            if wanted.as_ref().is_some_and(|w| !w.contains(&key)) || log.is_deleted() {
                continue;
            }
            match log.size_on_disk_bytes() {
                Ok(size_bytes) => topics.entry(info.name.clone()).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(log.partition())
                        .with_partition_size(i64::try_from(size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                ),
                // A directory that cannot be read is the log dir's error, as Kafka reports
                // an offline directory; the partitions that could be read are still listed.
                Err(e) => error = Some(log_error_code(&e)),
            }
        }
    }
    let mut result = DescribeLogDirsResult::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_log_dir(StrBytes::from_string(absolute(data_dir)))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    if version >= SPACE_VERSION_MIN {
        let (total_bytes, usable_bytes) =
            space_bytes(data_dir).unwrap_or((UNKNOWN_SPACE_BYTES, UNKNOWN_SPACE_BYTES));
        result = result
            .with_total_bytes(total_bytes)
            .with_usable_bytes(usable_bytes);
    }
    let mut response = DescribeLogDirsResponse::default().with_results(vec![result]);
    if version >= ERROR_CODE_VERSION_MIN {
        response.error_code = 0;
    }
    response
}

/// The directory as an absolute path (Kafka lists `log.dirs` entries as configured, which
/// are absolute in practice); as given when it cannot be resolved.
pub(super) fn absolute(dir: &Path) -> String {
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// The file system's size and the bytes an unprivileged writer may still use
/// (`fstatvfs`: blocks × fragment size, available blocks × fragment size).
fn space_bytes(dir: &Path) -> std::io::Result<(i64, i64)> {
    let file = File::open(dir)?;
    // SAFETY: `stat` is a plain C struct that fstatvfs fills; zeroes are a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the call's duration and `stat` is writable.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fragment_bytes = stat.f_frsize as u128;
    let clamp = |blocks: u64| i64::try_from(blocks as u128 * fragment_bytes).unwrap_or(i64::MAX);
    Ok((clamp(stat.f_blocks), clamp(stat.f_bavail)))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;

    use super::super::create_topics::fixture::{append, broker, header, topic};
    use super::*;

    fn sizes(response: &DescribeLogDirsResponse) -> Vec<(String, i32, i64)> {
        response.results[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
            })
            .collect()
    }

    #[test]
    fn every_partition_with_its_size_and_the_space_from_v4() {
        let fixture = broker();
        topic(&fixture, "sized", 2);
        append(&fixture, "sized", 1, 3);
        let response = handle(
            &fixture.ctx,
            &header(4),
            DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(response.error_code, 0);
        assert_eq!(response.results.len(), 1);
        let dir = &response.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(Path::new(dir.log_dir.as_str()).is_absolute());
        let listed = sizes(&response);
        let sized: Vec<_> = listed.iter().filter(|(t, ..)| t == "sized").collect();
        assert_eq!(sized.len(), 2, "{listed:?}");
        assert_eq!((sized[0].1, sized[0].2), (0, 0));
        assert_eq!(sized[1].1, 1);
        assert!(sized[1].2 > 0, "{listed:?}");
        assert!(dir.total_bytes > 0 && dir.usable_bytes >= 0, "{dir:?}");
        assert!(dir.usable_bytes <= dir.total_bytes);
        for partition in dir.topics.iter().flat_map(|t| &t.partitions) {
            assert_eq!(partition.offset_lag, 0);
            assert!(!partition.is_future_key);
        }
    }

    #[test]
    fn only_the_partitions_asked_for_unknown_ones_left_out() {
        let fixture = broker();
        topic(&fixture, "a", 3);
        topic(&fixture, "b", 1);
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("a")))
                .with_partitions(vec![2, 0, 9]),
            DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("nope")))
                .with_partitions(vec![0]),
        ]));
        let response = handle(&fixture.ctx, &header(1), request);
        assert_eq!(
            sizes(&response),
            vec![("a".to_owned(), 0, 0), ("a".to_owned(), 2, 0)]
        );
        // v1 has neither the space figures nor a top-level error code: left at defaults.
        assert_eq!(response.results[0].total_bytes, UNKNOWN_SPACE_BYTES);
    }

    #[test]
    fn an_unopened_partition_is_sized_from_its_files_without_opening_it() {
        let fixture = broker();
        topic(&fixture, "lazy", 1);
        append(&fixture, "lazy", 0, 5);
        let log = fixture.ctx.logs.partition("lazy", 0).unwrap();
        let loaded_bytes = log.size_on_disk_bytes().unwrap();
        log.close().unwrap();
        assert!(!log.is_loaded());
        assert_eq!(log.size_on_disk_bytes().unwrap(), loaded_bytes);
        let response = handle(
            &fixture.ctx,
            &header(2),
            DescribeLogDirsRequest::default().with_topics(None),
        );
        assert!(sizes(&response).contains(&("lazy".to_owned(), 0, loaded_bytes as i64)));
        assert!(!log.is_loaded());
    }
}
