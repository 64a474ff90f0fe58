//! The broker's HTTP server (axum) on `http_listen`: `GET /metrics` (Prometheus text),
//! the JSON admin API under `/v1/` ([`admin`]), and `/healthz` / `/readyz`.
//!
//! It shares the Kafka server's `Arc<BrokerContext>` and its shutdown signal: started by
//! [`crate::net::Broker::start`] after storage is open, stopped (gracefully, in-flight
//! requests finish within `shutdown_timeout_ms`) before storage is flushed. [`server`]
//! bounds connections, slow clients and the shutdown drain. Every handler that reads many partitions or
//! groups runs on the blocking pool, so a scrape of 10 000 partitions never stalls the
//! async workers serving Kafka clients.

pub mod admin;
pub mod server;

pub use server::{HttpLimits, HTTP_CONNECTIONS_MAX};

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::BrokerContext;
use crate::config::BrokerConfig;

/// What every handler sees.
#[derive(Clone)]
pub struct HttpState {
    pub ctx: Arc<BrokerContext>,
    pub config: Arc<BrokerConfig>,
    /// True once the broker is shutting down: `/readyz` then answers 503.
    pub shutdown: watch::Receiver<bool>,
}

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn not_found(what: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            message: what.into(),
        }
    }

    pub fn bad_request(what: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            message: what.into(),
        }
    }

    fn internal(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "status": self.status.as_u16() });
        (self.status, Json(body)).into_response()
    }
}

/// Binds `addr` (`host:port`; port 0 picks a free one).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The endpoints, each with what it answers: the routes, and what `/` lists.
fn endpoints() -> Vec<(&'static str, &'static str, MethodRouter<HttpState>)> {
    vec![
        (
            "/metrics",
            "Prometheus metrics, consumer lag included",
            get(metrics),
        ),
        ("/healthz", "liveness", get(healthz)),
        (
            "/readyz",
            "readiness (503 while shutting down)",
            get(readyz),
        ),
        (
            "/v1/broker",
            "version, uptime, configuration, dynamic broker configs",
            get(admin::broker),
        ),
        ("/v1/topics", "topics", get(admin::topics)),
        (
            "/v1/topics/{name}",
            "one topic's partitions, offsets, sizes, segments and configs",
            get(admin::topic),
        ),
        (
            "/v1/groups",
            "consumer groups with their lag, paged (?limit=, ?after=)",
            get(admin::groups),
        ),
        (
            "/v1/groups/{id}",
            "one group's state, members, assignment, offsets and lag",
            get(admin::group),
        ),
    ]
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    let mut listed = vec![("/", "this list")];
    let mut router = Router::new();
    for (path, about, handler) in endpoints() {
        listed.push((path, about));
        router = router.route(path, handler);
    }
    let index = index(&listed);
    router
        .route("/", get(move || std::future::ready(index.clone())))
        // A `{id}` segment is never empty: the empty group id has its own route.
        .route("/v1/groups/", get(admin::empty_group))
        // Every endpoint is read-only: another method gets a JSON 405 (with `Allow`).
        .method_not_allowed_fallback(|| async {
            HttpError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed: the endpoints answer GET and HEAD".to_owned(),
            }
        })
        .fallback(|| async { HttpError::not_found("no such endpoint") })
        .with_state(state)
}

/// Serves until `shutdown` turns true, then lets in-flight requests finish within the
/// broker's `shutdown_timeout_ms`.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let limits = HttpLimits::new(state.config.shutdown_timeout_ms);
    let shutdown = state.shutdown.clone();
    server::serve(listener, router(state), shutdown, limits).await;
}

/// Runs `work` on the blocking pool (it reads many partitions or groups).
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HttpError::internal(e.to_string()))
}

async fn metrics(State(state): State<HttpState>) -> Result<Response, HttpError> {
    let ctx = Arc::clone(&state.ctx);
    let page = blocking(move || crate::metrics::scrape::render(&ctx, crate::log::now_ms())).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    )
        .into_response())
}

/// `/`'s answer: the endpoints `listed`, for someone who points a browser or `curl` at the
/// port.
fn index(listed: &[(&str, &str)]) -> Json<serde_json::Value> {
    let endpoints: Vec<serde_json::Value> = (listed.iter())
        .map(|(path, about)| serde_json::json!({ "path": path, "about": about }))
        .collect();
    Json(serde_json::json!({
        "service": "runnel",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": endpoints,
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready while serving: storage is open and the Kafka listener accepts (both happen before
/// this server starts); not ready once shutdown has begun.
async fn readyz(State(state): State<HttpState>) -> Response {
    if *state.shutdown.borrow() {
        let body = serde_json::json!({ "status": "shutting down" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(serde_json::json!({ "status": "ready" })).into_response()
}
