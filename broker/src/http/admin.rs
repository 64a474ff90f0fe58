//! The JSON admin API: `GET /v1/broker`, `/v1/topics`, `/v1/topics/{name}`, `/v1/groups`,
//! `/v1/groups/{id}`. Read-only views of the broker's own structures; an unknown topic or
//! group is a 404 with `{"error": …}`, a name that does not percent-decode to UTF-8 a 400.
//! A topic's configs carry their source as DescribeConfigs reports it (Kafka's
//! `ConfigSource` names); `/v1/broker` lists the dynamic broker configs set.
//!
//! Group ids are any string, the empty one included (Kafka accepts it from old clients), so
//! `/v1/groups` gives each group's `path`, percent-encoded: `/v1/groups/` is the empty id
//! (a `{id}` segment never matches empty), `/v1/groups/a%2Fb` is `a/b`.
//!
//! `/v1/groups` is paged (`?limit=` groups, default [`GROUPS_PER_PAGE_DEFAULT`], at most
//! [`GROUPS_PER_PAGE_MAX`]; `?after=` the last id seen; the answer's `next` is the next
//! page's path): each group on a page costs its lag, and a broker may hold 100 000 groups.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{decode_budget, Decodable};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use runnel_protocol::frame::DECODED_COLLECTIONS_BYTES_MAX;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, HttpError, HttpState};
use crate::api::describe_configs::{config_source, source_name};
use crate::api::BrokerContext;
use crate::groups::admin::{GroupOverview, MemberDescription};
use crate::log::{now_ms, PartitionLog, TopicInfo};
use crate::metrics::lag::group_lag;

type JsonResult = Result<Json<Value>, HttpError>;

pub async fn broker(State(state): State<HttpState>) -> JsonResult {
    let c = &state.config;
    let metrics = &state.ctx.metrics;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "node_id": c.node_id,
        "cluster_id": c.cluster_id,
        "uptime_seconds": metrics.started.elapsed().as_secs_f64(),
        "advertised": format!("{}:{}", state.ctx.advertised_host, state.ctx.advertised_port),
        "config": {
            "data_dir": c.data_dir.display().to_string(),
            "listen": c.listen,
            "advertise": c.advertise,
            "http_listen": c.http_listen,
            "max_connections": c.max_connections,
            "max_request_bytes": c.max_request_bytes,
            "queued_request_bytes_max": c.queued_request_bytes_max,
            "inflight_requests_max": c.inflight_requests_max,
            "auto_create_topics": c.auto_create_topics,
            "loopback_unpaced": c.loopback_unpaced,
            "num_partitions": c.num_partitions,
            "request_timeout_ms": c.request_timeout_ms,
            "connections_max_idle_ms": c.connections_max_idle_ms,
            "shutdown_timeout_ms": c.shutdown_timeout_ms,
            "metrics_partition_series_max": c.metrics_partition_series_max,
            "metrics_group_partition_series_max": c.metrics_group_partition_series_max,
            "metrics_group_series_max": c.metrics_group_series_max,
            "topic_defaults": c.topic_defaults,
        },
        "dynamic_configs": dynamic_configs(&state.ctx),
    })))
}

/// The dynamic broker configs set (KIP-226), under the keys storage keeps them by (the
/// topic config a default is for, `retention.ms` for `log.retention.ms`;
/// `producer.id.expiration.ms` under its own): `cluster` is the resource ""
/// (DYNAMIC_DEFAULT_BROKER_CONFIG), `this_broker` this node's own (DYNAMIC_BROKER_CONFIG).
/// `config.topic_defaults` stays the static ones.
fn dynamic_configs(ctx: &BrokerContext) -> Value {
    let dynamic = ctx.logs.broker_defaults();
    json!({ "cluster": dynamic.cluster, "this_broker": dynamic.this_broker })
}

pub async fn topics(State(state): State<HttpState>) -> JsonResult {
    let ctx = Arc::clone(&state.ctx);
    let topics = blocking(move || {
        ctx.logs
            .topic_partitions()
            .iter()
            .map(|(info, logs)| {
                let open: Vec<&Arc<PartitionLog>> = logs.iter().filter(|l| l.is_loaded()).collect();
                json!({
                    "name": info.name,
                    "id": info.id.to_string(),
                    "internal": crate::groups::is_internal_topic(&info.name),
                    "partitions": info.partitions,
                    "open_partitions": open.len(),
                    "size_bytes": open.iter().map(|l| l.size_bytes()).sum::<u64>(),
                    "overrides": info.overrides,
                })
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Json(json!({ "topics": topics })))
}

/// A `{name}` or `{id}` path segment, percent-decoded; one that is not UTF-8 once decoded
/// is a JSON 400 (axum's own rejection is plain text).
fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, HttpError> {
    path.map(|Path(segment)| segment)
        .map_err(|rejection| HttpError::bad_request(rejection.body_text()))
}

pub async fn topic(
    State(state): State<HttpState>,
    name: Result<Path<String>, PathRejection>,
) -> JsonResult {
    let name = segment(name)?;
    let ctx = Arc::clone(&state.ctx);
    blocking(move || topic_detail(&ctx, &name)).await?.map(Json)
}

/// One topic with every partition opened (an admin asking about a topic wants real offsets).
fn topic_detail(ctx: &BrokerContext, name: &str) -> Result<Value, HttpError> {
    let info: TopicInfo = ctx
        .logs
        .topic(name)
        .ok_or_else(|| HttpError::not_found(format!("unknown topic {name:?}")))?;
    let partitions: Vec<Value> = (0..info.partitions)
        .map(|p| match ctx.logs.partition(name, p) {
            Ok(log) => {
                let traffic = log.traffic.get();
                json!({
                    "partition": p,
                    "log_start_offset": log.log_start_offset(),
                    "log_end_offset": log.log_end_offset(),
                    "size_bytes": log.size_bytes(),
                    "segments": log.segment_count(),
                    "bytes_in": traffic.bytes_in,
                    "records_in": traffic.records_in,
                    "bytes_out": traffic.bytes_out,
                    "records_out": traffic.records_out,
                })
            }
            Err(e) => json!({ "partition": p, "error": e.to_string() }),
        })
        .collect();
    let configs: serde_json::Map<String, Value> = info
        .config
        .describe(&info.overrides)
        .into_iter()
        .map(|entry| {
            let source = source_name(config_source(ctx, &entry));
            let value = json!({
                "value": entry.value,
                "is_override": entry.is_override,
                "source": source,
            });
            (entry.name.to_owned(), value)
        })
        .collect();
    Ok(json!({
        "name": info.name,
        "id": info.id.to_string(),
        "internal": crate::groups::is_internal_topic(&info.name),
        "partitions": partitions,
        "configs": configs,
    }))
}

/// Groups `GET /v1/groups` gives when no `limit` is asked.
pub const GROUPS_PER_PAGE_DEFAULT: usize = 100;
/// Largest `limit` accepted: each group on a page costs its lag (a batch read per lagging
/// partition not cached yet).
pub const GROUPS_PER_PAGE_MAX: usize = 1_000;

/// `GET /v1/groups?limit=&after=`: one page of groups in id order.
#[derive(Debug, Default, Deserialize)]
pub struct GroupsPage {
    /// Groups on the page, 1 to `GROUPS_PER_PAGE_MAX`.
    limit: Option<usize>,
    /// Only groups whose id sorts after this one (the last id of the previous page).
    after: Option<String>,
}

pub async fn groups(
    State(state): State<HttpState>,
    page: Result<Query<GroupsPage>, QueryRejection>,
) -> JsonResult {
    let Query(page) = page.map_err(|rejection| HttpError::bad_request(rejection.body_text()))?;
    let limit = page.limit.unwrap_or(GROUPS_PER_PAGE_DEFAULT);
    if !(1..=GROUPS_PER_PAGE_MAX).contains(&limit) {
        return Err(HttpError::bad_request(format!(
            "limit must be 1 to {GROUPS_PER_PAGE_MAX} groups, not {limit}"
        )));
    }
    let ctx = Arc::clone(&state.ctx);
    let (groups, next) = blocking(move || groups_page(&ctx, limit, page.after.as_deref())).await?;
    Ok(Json(json!({ "groups": groups, "next": next })))
}

/// Up to `limit` groups after `after` with their lag, and the path of the next page (`None`
/// on the last). Every group is listed (id and state only, cheap); only the page's groups
/// are read whole and get their lag computed.
fn groups_page(
    ctx: &BrokerContext,
    limit: usize,
    after: Option<&str>,
) -> (Vec<Value>, Option<String>) {
    let listing = ctx.groups.list_groups(None);
    // The admin path prunes the lag cache too: groups no longer listed lose their entries.
    ctx.metrics.lag_cache.retain_groups(|id| {
        listing
            .binary_search_by(|g| g.group_id.as_str().cmp(id))
            .is_ok()
    });
    let start = after.map_or(0, |after| {
        listing.partition_point(|g| g.group_id.as_str() <= after)
    });
    let end = listing.len().min(start.saturating_add(limit));
    let next = listing[..end]
        .last()
        .filter(|_| end < listing.len())
        .map(|last| {
            let after = utf8_percent_encode(&last.group_id, GROUP_PATH_KEPT);
            format!("/v1/groups?after={after}&limit={limit}")
        });
    let now = now_ms();
    let groups = listing[start..end]
        .iter()
        .filter_map(|g| ctx.groups.group_overview(&g.group_id))
        .map(|g| {
            let lag = group_lag(&ctx.logs, &g, &ctx.metrics.lag_cache, now);
            json!({
                "group_id": g.group_id,
                "path": group_path(&g.group_id),
                "state": g.state.name(),
                "protocol_type": g.protocol_type,
                "members": g.members.len(),
                "generation_id": g.generation_id,
                "lag_records": lag.iter().filter_map(|l| l.lag_records).sum::<i64>(),
                "lag_seconds": lag.iter().filter_map(|l| l.lag_seconds).fold(0.0, f64::max),
            })
        })
        .collect();
    (groups, next)
}

pub async fn group(
    State(state): State<HttpState>,
    id: Result<Path<String>, PathRejection>,
) -> JsonResult {
    let id = segment(id)?;
    let ctx = Arc::clone(&state.ctx);
    blocking(move || group_view(&ctx, &id)).await?.map(Json)
}

/// `GET /v1/groups/`: the group whose id is empty.
pub async fn empty_group(State(state): State<HttpState>) -> JsonResult {
    let ctx = Arc::clone(&state.ctx);
    blocking(move || group_view(&ctx, "")).await?.map(Json)
}

/// Bytes a group id keeps in its path: RFC 3986's unreserved characters.
const GROUP_PATH_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path of one group's detail. A `.` or `..` id is encoded whole, as clients resolve
/// those segments away before sending.
pub fn group_path(id: &str) -> String {
    let kept = if id == "." || id == ".." {
        NON_ALPHANUMERIC
    } else {
        GROUP_PATH_KEPT
    };
    format!("/v1/groups/{}", utf8_percent_encode(id, kept))
}

/// One group's detail, or a 404: asks the coordinator for that group only.
fn group_view(ctx: &BrokerContext, id: &str) -> Result<Value, HttpError> {
    let group = ctx
        .groups
        .group_overview(id)
        .ok_or_else(|| HttpError::not_found(format!("unknown group {id:?}")))?;
    Ok(group_detail(ctx, &group))
}

fn group_detail(ctx: &BrokerContext, group: &GroupOverview) -> Value {
    let lag = group_lag(&ctx.logs, group, &ctx.metrics.lag_cache, now_ms());
    let offsets: Vec<Value> = lag
        .iter()
        .map(|l| {
            json!({
                "topic": l.topic,
                "partition": l.partition,
                "committed_offset": l.committed_offset,
                "log_start_offset": l.log_start_offset,
                "log_end_offset": l.log_end_offset,
                "lag_records": l.lag_records,
                "lag_seconds": l.lag_seconds,
            })
        })
        .collect();
    let consumer = group.protocol_type == "consumer";
    let members: Vec<Value> = group.members.iter().map(|m| member(m, consumer)).collect();
    json!({
        "group_id": group.group_id,
        "state": group.state.name(),
        "protocol_type": group.protocol_type,
        "protocol": group.protocol_name,
        "generation_id": group.generation_id,
        "leader_id": group.leader_id,
        "members": members,
        "offsets": offsets,
        "lag_records": lag.iter().filter_map(|l| l.lag_records).sum::<i64>(),
        "lag_seconds": lag.iter().filter_map(|l| l.lag_seconds).fold(0.0, f64::max),
    })
}

fn member(m: &MemberDescription, consumer: bool) -> Value {
    let assignment = if consumer {
        decode_assignment(&m.assignment)
    } else {
        Value::Null
    };
    json!({
        "member_id": m.member_id,
        "group_instance_id": m.group_instance_id,
        "client_id": m.client_id,
        "client_host": m.client_host,
        "assignment": assignment,
        "assignment_bytes": m.assignment.len(),
    })
}

/// A consumer-protocol assignment as `{topic: [partitions]}`; `null` when it does not
/// decode (another protocol, or none yet).
fn decode_assignment(bytes: &Bytes) -> Value {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Value::Null;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let mut body = buf.split_off(2);
    // Client-written bytes: decoded within the same collections budget as a request.
    let decoded = decode_budget::with_limit(DECODED_COLLECTIONS_BYTES_MAX, || {
        ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3))
    });
    let Ok(assignment) = decoded else {
        return Value::Null;
    };
    let topics: serde_json::Map<String, Value> = assignment
        .assigned_partitions
        .iter()
        .map(|tp| (tp.topic.0.to_string(), json!(tp.partitions)))
        .collect();
    Value::Object(topics)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;
    use crate::api::create_topics::fixture;
    use crate::groups::commits::{CommitEntry, Committer};

    fn commit(ctx: &BrokerContext, group: &str, offset: i64) {
        let who = Committer {
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            retention_time_ms: -1,
        };
        let entry = CommitEntry {
            topic: "t".to_owned(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        };
        let reply = ctx.groups.commit_offsets(group, &who, &[entry]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let errors = runtime.block_on(reply.wait());
        assert_eq!(errors, vec![None]);
    }

    /// `GET /v1/groups/{id}` reads that one group: it answers while another group is busy
    /// (its lock held), where building every group's view would wait for it.
    #[test]
    fn one_groups_view_does_not_wait_on_other_groups() {
        let fixture = fixture::broker();
        let ctx = &fixture.ctx;
        fixture::topic(&fixture, "t", 1);
        commit(ctx, "asked", 0);
        commit(ctx, "busy", 0);
        std::thread::scope(|scope| {
            let (answer_tx, answer_rx) = mpsc::channel();
            let answered = ctx.groups.with_group_locked("busy", || {
                scope.spawn(move || {
                    let _ = answer_tx.send(group_view(ctx, "asked"));
                });
                answer_rx.recv_timeout(Duration::from_secs(5))
            });
            let view = answered.expect("answered while another group was locked");
            assert_eq!(view.unwrap()["group_id"], "asked");
        });
        let unknown = group_view(ctx, "nobody").unwrap_err();
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn group_paths_percent_encode_the_id() {
        assert_eq!(group_path(""), "/v1/groups/");
        assert_eq!(
            group_path("billing.v2_x-y~z"),
            "/v1/groups/billing.v2_x-y~z"
        );
        assert_eq!(
            group_path("a/b?c#d%e f"),
            "/v1/groups/a%2Fb%3Fc%23d%25e%20f"
        );
        assert_eq!(group_path("é"), "/v1/groups/%C3%A9");
        assert_eq!(group_path("."), "/v1/groups/%2E");
        assert_eq!(group_path(".."), "/v1/groups/%2E%2E");
    }
}
