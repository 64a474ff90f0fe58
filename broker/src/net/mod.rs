//! The Kafka TCP server: listeners, the connection bound, graceful shutdown.
//!
//! [`Broker::start`] opens the storage engine, binds the listeners and spawns one accept
//! loop per listener; each accepted socket gets a task running [`connection::serve`]. A
//! semaphore bounds open connections (excess ones are accepted and closed at once). A
//! `watch` channel carries the shutdown signal: accept loops stop, connections stop reading
//! and answer what they already applied (bounded by `shutdown_timeout_ms`), then the
//! storage engine flushes and writes its clean-shutdown marker.

pub mod connection;
pub mod file_sends;
pub mod idle;
pub mod request_memory;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::api::BrokerContext;
use crate::budget::DecompressionBudget;
use crate::config::{split_host_port, BrokerConfig};
use crate::log::{LogError, LogManager, LogManagerConfig, TopicConfig};
use crate::metrics::{BrokerMetrics, MetricsConfig};
use crate::producers::{ProducerIdError, ProducerRegistry};
use connection::ConnectionLimits;

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid address {addr:?}: {detail}")]
    Address { addr: String, detail: String },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Log(#[from] LogError),
    #[error("producer ids: {0}")]
    ProducerIds(#[from] ProducerIdError),
    #[error("consumer groups: {0}")]
    Groups(#[from] crate::groups::GroupError),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Entry point: `Broker::start(config)`.
pub struct Broker;

/// A broker serving on its listeners until [`RunningBroker::shutdown`].
pub struct RunningBroker {
    /// The first Kafka listener's bound address (the real port when configured with 0).
    pub kafka_addr: SocketAddr,
    /// Every bound Kafka listener (two for `localhost`: IPv4 and IPv6).
    pub kafka_addrs: Vec<SocketAddr>,
    /// The HTTP server's bound address (`/metrics`, `/v1/…`).
    pub http_addr: SocketAddr,
    pub config: BrokerConfig,
    context: Arc<BrokerContext>,
    shutdown_tx: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<()>,
}

impl Broker {
    /// Opens storage, binds, and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
        // Bind first: a taken port then fails before storage threads exist. Nothing is
        // accepted until the accept loops start, after storage is open.
        let listeners = bind_listeners(&config.listen).await?;
        let kafka_addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let Some(&kafka_addr) = kafka_addrs.first() else {
            return Err(BrokerError::Address {
                addr: config.listen.clone(),
                detail: "no listener bound".into(),
            });
        };
        let (advertised_host, advertised_port) = advertised(&config, kafka_addr)?;
        let http_listener = crate::http::bind(&config.http_listen)
            .await
            .map_err(|source| BrokerError::Bind {
                addr: config.http_listen.clone(),
                source,
            })?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| BrokerError::Bind {
                addr: config.http_listen.clone(),
                source,
            })?;
        let metrics = Arc::new(BrokerMetrics::new(MetricsConfig {
            partition_series_max: config.metrics_partition_series_max,
            group_partition_series_max: config.metrics_group_partition_series_max,
            group_series_max: config.metrics_group_series_max,
        }));
        let logs = open_logs(&config).await?;
        logs.set_fsync_histogram(metrics.fsync_seconds.clone());
        let (data_dir, producer_config) = (config.data_dir.clone(), config.producers);
        let dynamic_expiration = logs.dynamic_producer_expiration();
        let producers = tokio::task::spawn_blocking(move || {
            ProducerRegistry::open(&data_dir, producer_config, dynamic_expiration)
        })
        .await??;
        let producers = Arc::new(producers);
        producers.start_expiration_timer();
        let groups = open_groups(&config, &logs).await?;
        let context = Arc::new(BrokerContext {
            logs,
            node_id: config.node_id,
            advertised_host,
            advertised_port,
            cluster_id: config.cluster_id.clone(),
            auto_create_topics: config.auto_create_topics,
            default_partitions: config.num_partitions,
            static_config_keys: (config.topic_defaults.keys().cloned())
                .chain(config.set_broker_keys.iter().map(|&k| k.to_owned()))
                .collect(),
            static_unit_configs: config.static_unit_configs.clone(),
            producers,
            groups,
            metrics,
            decompression_budget: DecompressionBudget::new(config.decompression_bytes_max as u64),
            append_pool: crate::append_pool::AppendPool::new(),
            fetch_sessions: Arc::new(crate::fetch_sessions::FetchSessions::new(
                config.fetch_session_cache_slots,
            )),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(serve(
            listeners,
            Arc::clone(&context),
            config.clone(),
            shutdown_rx.clone(),
        ));
        let http = tokio::spawn(crate::http::serve(
            http_listener,
            crate::http::HttpState {
                ctx: Arc::clone(&context),
                config: Arc::new(config.clone()),
                shutdown: shutdown_rx,
            },
        ));
        tracing::info!(%kafka_addr, %http_addr, "runnel broker listening");
        Ok(RunningBroker {
            kafka_addr,
            kafka_addrs,
            http_addr,
            config,
            context,
            shutdown_tx,
            server,
            http,
        })
    }
}

impl RunningBroker {
    /// The storage engine and broker identity handlers see.
    pub fn context(&self) -> &Arc<BrokerContext> {
        &self.context
    }

    /// Stops accepting, lets connections answer what they applied (bounded by
    /// `shutdown_timeout_ms`), then flushes storage and writes the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown_tx.send(true);
        self.server.await?;
        self.http.await?;
        let logs = Arc::clone(&self.context.logs);
        tokio::task::spawn_blocking(move || logs.shutdown()).await??;
        tracing::info!("runnel broker stopped");
        Ok(())
    }
}

async fn open_logs(config: &BrokerConfig) -> Result<Arc<LogManager>, BrokerError> {
    let topic_defaults =
        TopicConfig::with_overrides(&TopicConfig::default(), &config.topic_defaults)?;
    let log_config = LogManagerConfig {
        data_dir: config.data_dir.clone(),
        topic_defaults,
        node_id: config.node_id,
        retention_check_interval_ms: config.retention_check_interval_ms,
        open_segments_max: config.open_segments_max,
        page_cache_bytes: config.page_cache_bytes,
    };
    // Recovery after an unclean stop reads whole segments: keep it off the async workers.
    Ok(tokio::task::spawn_blocking(move || LogManager::open(log_config)).await??)
}

/// Replays `__consumer_offsets` (blocking reads, off the async workers) and starts the
/// coordinator's timers.
async fn open_groups(
    config: &BrokerConfig,
    logs: &Arc<LogManager>,
) -> Result<Arc<crate::groups::GroupCoordinator>, BrokerError> {
    let (logs, group_config) = (Arc::clone(logs), config.groups.clone());
    let clock = Arc::new(crate::groups::SystemClock);
    let groups = tokio::task::spawn_blocking(move || {
        crate::groups::GroupCoordinator::open(logs, group_config, clock)
    })
    .await??;
    groups.start_timers();
    Ok(groups)
}

/// Binds `host:port`; `localhost` binds both 127.0.0.1 and [::1] on the same port.
async fn bind_listeners(listen: &str) -> Result<Vec<TcpListener>, BrokerError> {
    let (host, port) = split_host_port(listen).map_err(|detail| BrokerError::Address {
        addr: listen.to_owned(),
        detail,
    })?;
    let bind = |addr: String| async move {
        TcpListener::bind(&addr)
            .await
            .map_err(|source| BrokerError::Bind { addr, source })
    };
    if host != "localhost" {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        return Ok(vec![bind(addr).await?]);
    }
    let v4 = bind(format!("127.0.0.1:{port}")).await?;
    let bound_port = v4.local_addr().map_or(port, |a| a.port());
    let mut listeners = vec![v4];
    // IPv6 may be disabled on the host; IPv4 alone still serves `localhost` clients.
    match bind(format!("[::1]:{bound_port}")).await {
        Ok(v6) => listeners.push(v6),
        Err(e) => tracing::warn!(error = %e, "no IPv6 localhost listener"),
    }
    Ok(listeners)
}

/// The host and port clients are told to use: `--advertise`, else the listen host with
/// the bound port. A wildcard listen address (`0.0.0.0`, `::`) is not reachable as such,
/// so without `--advertise` it is advertised as `localhost`.
fn advertised(config: &BrokerConfig, bound: SocketAddr) -> Result<(String, i32), BrokerError> {
    if let Some(addr) = &config.advertise {
        let (host, port) = split_host_port(addr).map_err(|detail| BrokerError::Address {
            addr: addr.clone(),
            detail,
        })?;
        return Ok((host, i32::from(port)));
    }
    let (host, _) = split_host_port(&config.listen).map_err(|detail| BrokerError::Address {
        addr: config.listen.clone(),
        detail,
    })?;
    let wildcard = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if wildcard {
        tracing::warn!(listen = %config.listen, "no --advertise: advertising localhost");
        return Ok(("localhost".to_owned(), i32::from(bound.port())));
    }
    Ok((host, i32::from(bound.port())))
}

/// Runs every accept loop until shutdown, then drains connections within the bound.
async fn serve(
    listeners: Vec<TcpListener>,
    context: Arc<BrokerContext>,
    config: BrokerConfig,
    shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let limits = ConnectionLimits::from_config(&config, &context.metrics.connections);
    let mut accept_loops = JoinSet::new();
    for listener in listeners {
        let acceptor = Acceptor {
            listener,
            context: Arc::clone(&context),
            permits: Arc::clone(&permits),
            limits: limits.clone(),
            shutdown: shutdown.clone(),
        };
        accept_loops.spawn(acceptor.run(config.shutdown_timeout_ms));
    }
    while accept_loops.join_next().await.is_some() {}
}

/// One listener's accept loop and the connections it spawned.
struct Acceptor {
    listener: TcpListener,
    context: Arc<BrokerContext>,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
    shutdown: watch::Receiver<bool>,
}

impl Acceptor {
    async fn run(mut self, shutdown_timeout_ms: u64) {
        let mut connections = JoinSet::new();
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = self.shutdown.changed() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.admit(&mut connections, stream, peer),
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // Reap finished connections so the set stays as small as the open count.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        let drain = async { while connections.join_next().await.is_some() {} };
        let grace = Duration::from_millis(shutdown_timeout_ms);
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                open = connections.len(),
                "closing connections still busy at shutdown"
            );
            connections.shutdown().await;
        }
    }

    fn admit(&self, connections: &mut JoinSet<()>, stream: TcpStream, peer: SocketAddr) {
        let connections_metrics = &self.context.metrics.connections;
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            connections_metrics.rejected.increment(1);
            tracing::warn!(%peer, "connection limit reached; closing");
            drop(stream);
            return;
        };
        connections_metrics.accepted.increment(1);
        connections_metrics.open.increment(1.0);
        let context = Arc::clone(&self.context);
        let limits = self.limits.clone();
        let shutdown = self.shutdown.clone();
        connections.spawn(async move {
            let metrics = Arc::clone(&context.metrics);
            match connection::serve(stream, context, limits, shutdown).await {
                Ok(()) => {}
                // A response we cannot encode is our bug, not the client's.
                Err(e @ connection::ConnectionError::Encode(_)) => {
                    tracing::error!(%peer, error = %e, "connection closed");
                }
                Err(e) => tracing::debug!(%peer, error = %e, "connection closed"),
            }
            metrics.connections.closed.increment(1);
            metrics.connections.open.decrement(1.0);
            drop(permit);
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bound(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn advertised_address_follows_flags_then_listen_then_localhost() {
        let mut config = BrokerConfig::new("/tmp/unused", "127.0.0.1:0");
        assert_eq!(
            advertised(&config, bound(4000)).unwrap(),
            ("127.0.0.1".into(), 4000)
        );
        config.listen = "0.0.0.0:9092".into();
        assert_eq!(
            advertised(&config, bound(9092)).unwrap(),
            ("localhost".into(), 9092)
        );
        config.listen = "[::]:9092".into();
        assert_eq!(
            advertised(&config, bound(9092)).unwrap(),
            ("localhost".into(), 9092)
        );
        config.advertise = Some("broker.example:19092".into());
        assert_eq!(
            advertised(&config, bound(9092)).unwrap(),
            ("broker.example".into(), 19092)
        );
    }
}
