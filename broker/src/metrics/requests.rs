//! Per-API request metrics: `runnel_requests_total{api}`,
//! `runnel_request_duration_seconds{api}` (histogram) and
//! `runnel_request_errors_total{api,error_code,error}`.
//!
//! Handles for every supported API are registered when the broker starts, into a table
//! indexed by API key, so counting a request is an index and an atomic add. Error counters
//! are registered on an error code's first occurrence (a short lock, on the error path only).
//! Latency runs from the moment the request was decoded until its response is ready (after
//! the fsync of an acks=all produce, after a fetch's long poll), excluding the wait behind
//! earlier responses of the same connection.

use std::collections::HashMap;
use std::time::Instant;

use ::metrics::{Counter, Histogram, Key, Label, Recorder, Unit};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use metrics_exporter_prometheus::PrometheusRecorder;
use parking_lot::Mutex;
use runnel_protocol::versions::SUPPORTED_APIS;

use super::{describe, metadata};

/// API keys below this get a slot in the table (Kafka's keys stay below 100).
const API_KEYS_MAX: usize = 128;

struct ApiHandles {
    name: &'static str,
    requests: Counter,
    duration_seconds: Histogram,
}

/// The per-API handles and the lazily registered error counters.
pub struct RequestMetrics {
    apis: Vec<Option<ApiHandles>>,
    errors: Mutex<HashMap<(i16, i16), Counter>>,
}

impl RequestMetrics {
    pub(crate) fn register(recorder: &PrometheusRecorder) -> RequestMetrics {
        describe(
            recorder,
            "runnel_requests_total",
            Unit::Count,
            "Kafka requests by API",
        );
        describe(
            recorder,
            "runnel_request_duration_seconds",
            Unit::Seconds,
            "Time from a request's arrival until its response is ready",
        );
        describe(
            recorder,
            "runnel_request_errors_total",
            Unit::Count,
            "Error codes in responses (top-level and per partition), by API and code",
        );
        let mut apis: Vec<Option<ApiHandles>> = (0..API_KEYS_MAX).map(|_| None).collect();
        for supported in SUPPORTED_APIS {
            let key = supported.api_key as i16;
            let Some(slot) = usize::try_from(key).ok().and_then(|k| apis.get_mut(k)) else {
                continue;
            };
            let name = api_name(supported.api_key);
            let labels = vec![Label::new("api", name)];
            *slot = Some(ApiHandles {
                name,
                requests: recorder.register_counter(
                    &Key::from_parts("runnel_requests_total", labels.clone()),
                    metadata(),
                ),
                duration_seconds: recorder.register_histogram(
                    &Key::from_parts("runnel_request_duration_seconds", labels),
                    metadata(),
                ),
            });
        }
        RequestMetrics {
            apis,
            errors: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one answered request of `api_key` (its response, when it has one).
    pub(crate) fn observe(
        &self,
        recorder: &PrometheusRecorder,
        api_key: i16,
        started: Instant,
        response: Option<&ResponseKind>,
    ) {
        let Some(api) = usize::try_from(api_key)
            .ok()
            .and_then(|k| self.apis.get(k))
            .and_then(Option::as_ref)
        else {
            return;
        };
        api.requests.increment(1);
        api.duration_seconds.record(started.elapsed().as_secs_f64());
        if let Some(response) = response {
            error_codes(response, &mut |code| {
                if code != 0 {
                    self.count_error(recorder, api_key, api.name, code);
                }
            });
        }
    }

    fn count_error(
        &self,
        recorder: &PrometheusRecorder,
        api_key: i16,
        api: &'static str,
        code: i16,
    ) {
        let mut errors = self.errors.lock();
        let counter = errors.entry((api_key, code)).or_insert_with(|| {
            let error = ResponseError::try_from_code(code)
                .map_or_else(|| "UNKNOWN".to_owned(), |e| format!("{e:?}"));
            let labels = vec![
                Label::new("api", api),
                Label::new("error_code", code.to_string()),
                Label::new("error", error),
            ];
            recorder.register_counter(
                &Key::from_parts("runnel_request_errors_total", labels),
                metadata(),
            )
        });
        counter.increment(1);
    }
}

/// The `api` label: the API's name as Kafka spells it (`Produce`, `OffsetCommit`).
fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeAcls => "DescribeAcls",
        ApiKey::CreateAcls => "CreateAcls",
        ApiKey::DeleteAcls => "DeleteAcls",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::AlterReplicaLogDirs => "AlterReplicaLogDirs",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::DescribeClientQuotas => "DescribeClientQuotas",
        ApiKey::AlterClientQuotas => "AlterClientQuotas",
        ApiKey::DescribeUserScramCredentials => "DescribeUserScramCredentials",
        ApiKey::AlterUserScramCredentials => "AlterUserScramCredentials",
        ApiKey::DescribeProducers => "DescribeProducers",
        ApiKey::ListTransactions => "ListTransactions",
        ApiKey::DescribeTransactions => "DescribeTransactions",
        ApiKey::DescribeTopicPartitions => "DescribeTopicPartitions",
        _ => "Other",
    }
}

/// Calls `each` with every error code in `response`: the top-level one and those per topic,
/// partition or group. Per request and per partition, never per record.
fn error_codes(response: &ResponseKind, each: &mut impl FnMut(i16)) {
    use ResponseKind as R;
    match response {
        R::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| each(p.error_code)),
        R::Fetch(r) => {
            each(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        R::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        R::Metadata(r) => r.topics.iter().for_each(|t| each(t.error_code)),
        R::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        R::OffsetFetch(r) => {
            each(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
            r.groups.iter().for_each(|g| each(g.error_code));
        }
        R::FindCoordinator(r) => {
            each(r.error_code);
            r.coordinators.iter().for_each(|c| each(c.error_code));
        }
        R::JoinGroup(r) => each(r.error_code),
        R::Heartbeat(r) => each(r.error_code),
        R::LeaveGroup(r) => each(r.error_code),
        R::SyncGroup(r) => each(r.error_code),
        R::DescribeGroups(r) => r.groups.iter().for_each(|g| each(g.error_code)),
        R::ListGroups(r) => each(r.error_code),
        R::ApiVersions(r) => each(r.error_code),
        R::CreateTopics(r) => r.topics.iter().for_each(|t| each(t.error_code)),
        R::DeleteTopics(r) => r.responses.iter().for_each(|t| each(t.error_code)),
        R::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        R::InitProducerId(r) => each(r.error_code),
        R::DescribeConfigs(r) => r.results.iter().for_each(|x| each(x.error_code)),
        R::AlterConfigs(r) => r.responses.iter().for_each(|x| each(x.error_code)),
        R::IncrementalAlterConfigs(r) => r.responses.iter().for_each(|x| each(x.error_code)),
        R::CreatePartitions(r) => r.results.iter().for_each(|x| each(x.error_code)),
        R::DeleteGroups(r) => r.results.iter().for_each(|x| each(x.error_code)),
        R::OffsetDelete(r) => {
            each(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        R::DescribeCluster(r) => each(r.error_code),
        R::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        R::DescribeAcls(r) => each(r.error_code),
        R::CreateAcls(r) => r.results.iter().for_each(|x| each(x.error_code)),
        R::DeleteAcls(r) => r.filter_results.iter().for_each(|x| each(x.error_code)),
        R::DescribeLogDirs(r) => {
            each(r.error_code);
            r.results.iter().for_each(|x| each(x.error_code));
        }
        R::ElectLeaders(r) => {
            each(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| each(p.error_code));
        }
        R::AlterPartitionReassignments(r) => {
            each(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        R::AlterReplicaLogDirs(r) => r
            .results
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        R::ListPartitionReassignments(r) => each(r.error_code),
        R::DescribeClientQuotas(r) => each(r.error_code),
        R::AlterClientQuotas(r) => r.entries.iter().for_each(|x| each(x.error_code)),
        R::DescribeUserScramCredentials(r) => {
            each(r.error_code);
            r.results.iter().for_each(|x| each(x.error_code));
        }
        R::AlterUserScramCredentials(r) => r.results.iter().for_each(|x| each(x.error_code)),
        R::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        R::ListTransactions(r) => each(r.error_code),
        R::DescribeTopicPartitions(r) => r.topics.iter().for_each(|t| {
            each(t.error_code);
            t.partitions.iter().for_each(|p| each(p.error_code));
        }),
        R::DescribeTransactions(r) => r.transaction_states.iter().for_each(|x| each(x.error_code)),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metrics::{BrokerMetrics, MetricsConfig};
    use kafka_protocol::messages::HeartbeatResponse;

    #[test]
    fn counts_requests_and_errors_by_code() {
        let metrics = BrokerMetrics::new(MetricsConfig::default());
        let mut failed = HeartbeatResponse::default();
        failed.error_code = ResponseError::RebalanceInProgress.code();
        metrics.record_request(
            ApiKey::Heartbeat as i16,
            Instant::now(),
            Some(&ResponseKind::Heartbeat(failed)),
        );
        let ok = HeartbeatResponse::default();
        metrics.record_request(
            ApiKey::Heartbeat as i16,
            Instant::now(),
            Some(&ResponseKind::Heartbeat(ok)),
        );
        metrics.record_request(ApiKey::Produce as i16, Instant::now(), None);
        let page = metrics.render_events();
        assert!(
            page.contains("runnel_requests_total{api=\"Heartbeat\"} 2"),
            "{page}"
        );
        assert!(
            page.contains("runnel_requests_total{api=\"Produce\"} 1"),
            "{page}"
        );
        assert!(page.contains(
            "runnel_request_errors_total{api=\"Heartbeat\",error_code=\"27\",error=\"RebalanceInProgress\"} 1"
        ), "{page}");
        assert!(
            page.contains("runnel_request_duration_seconds_count{api=\"Heartbeat\"} 2"),
            "{page}"
        );
    }
}
