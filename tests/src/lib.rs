//! End-to-end test harness: an in-process broker on `127.0.0.1:0` with a temporary data
//! directory, and a raw-TCP Kafka client that sends any `kafka-protocol` request at any
//! version (or raw bytes, for bad-input tests).
//!
//! Layout:
//! - [`TestBroker`]: start / shutdown / restart a broker on a temp dir.
//! - [`TestClient`]: one TCP connection; typed `send`, pipelined `write_request` /
//!   `read_response`, raw `send_raw` / `read_frame` / `is_closed`.
//! - [`records`]: build and decode record batches.
//! - [`requests`]: short constructors for the requests tests use most.
//! - [`http`]: a minimal HTTP/1.1 GET for the broker's `/metrics` and `/v1/…` endpoints.
//! - [`proxy`]: a TCP proxy whose connections can be stalled, as a paused broker's would.
//! - [`wire`]: requests built and responses read byte by byte.
//!
//! Every read has a timeout ([`IO_TIMEOUT`]) so a broker bug fails a test instead of
//! hanging it. Helpers panic on failure: they are for tests only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use runnel_broker::api::BrokerContext;
use runnel_broker::config::BrokerConfig;
use runnel_broker::net::{Broker, RunningBroker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use kafka_protocol;
pub use runnel_broker;
pub use runnel_protocol;

/// Longest a test waits for any single read from the broker.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response frame the test client accepts.
const RESPONSE_MAX_BYTES: usize = 256 * 1024 * 1024;

/// A broker running in this process on a temporary data directory.
pub struct TestBroker {
    broker: Option<RunningBroker>,
    /// Kafka listener address (127.0.0.1 and a free port).
    pub addr: SocketAddr,
    /// HTTP listener address (`/metrics`, `/v1/…`; 127.0.0.1 and a free port).
    pub http_addr: SocketAddr,
    data_dir: PathBuf,
    /// Owns the directory (deleted on drop) unless the test supplied its own.
    _temp_dir: Option<Arc<tempfile::TempDir>>,
}

impl TestBroker {
    /// The config tests start from: defaults, `127.0.0.1:0`, data in `data_dir`, a short
    /// shutdown bound.
    pub fn config(data_dir: &Path) -> BrokerConfig {
        let mut config = BrokerConfig::new(data_dir, "127.0.0.1:0");
        config.http_listen = "127.0.0.1:0".to_owned();
        config.shutdown_timeout_ms = 5_000;
        config
    }

    /// A broker with default settings on a fresh temp dir.
    pub async fn start() -> TestBroker {
        TestBroker::start_with(|_| {}).await
    }

    /// A broker on a fresh temp dir with `adjust` applied to the test config.
    pub async fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let temp_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = TestBroker::config(temp_dir.path());
        adjust(&mut config);
        TestBroker::start_config(config, Some(temp_dir)).await
    }

    /// A broker on an existing directory (for restart and recovery tests).
    pub async fn start_in(data_dir: &Path, adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let mut config = TestBroker::config(data_dir);
        adjust(&mut config);
        TestBroker::start_config(config, None).await
    }

    async fn start_config(
        config: BrokerConfig,
        temp_dir: Option<Arc<tempfile::TempDir>>,
    ) -> TestBroker {
        let data_dir = config.data_dir.clone();
        let broker = Broker::start(config).await.expect("broker starts");
        TestBroker {
            addr: broker.kafka_addr,
            http_addr: broker.http_addr,
            broker: Some(broker),
            data_dir,
            _temp_dir: temp_dir,
        }
    }

    /// `GET path` on the broker's HTTP server: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http::get(self.http_addr, path).await
    }

    /// A new connection to this broker.
    pub async fn client(&self) -> TestClient {
        TestClient::connect(self.addr).await
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The running broker's shared state (storage engine, identity).
    pub fn context(&self) -> &Arc<BrokerContext> {
        self.running().context()
    }

    pub fn running(&self) -> &RunningBroker {
        self.broker.as_ref().expect("broker is running")
    }

    /// Graceful shutdown; the data directory stays (until this value is dropped).
    pub async fn shutdown(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await.expect("clean shutdown");
        }
    }

    /// Graceful shutdown, then a new broker on the same directory and config.
    pub async fn restart(mut self) -> TestBroker {
        let config = self.running().config.clone();
        self.shutdown().await;
        let temp_dir = self._temp_dir.take();
        TestBroker::start_config(config, temp_dir).await
    }
}

/// One raw TCP connection speaking the Kafka protocol.
pub struct TestClient {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl TestClient {
    pub async fn connect(addr: SocketAddr) -> TestClient {
        let stream = TcpStream::connect(addr).await.expect("connect to broker");
        stream.set_nodelay(true).expect("nodelay");
        TestClient {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sends `request` at `version` and returns the decoded response (checking that the
    /// correlation id matches).
    pub async fn send<R>(&mut self, request: R, version: i16) -> R::Response
    where
        R: Request,
    {
        let correlation_id = self.write_request(&request, version).await;
        let (got, response) = self.read_response::<R::Response>(version).await;
        assert_eq!(got, correlation_id, "correlation id");
        response
    }

    /// Writes one request without waiting; returns its correlation id.
    pub async fn write_request<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = encode_request(request, version, correlation_id);
        self.send_raw(&frame).await;
        correlation_id
    }

    /// Reads one response frame and decodes it as `T` at `version`.
    pub async fn read_response<T>(&mut self, version: i16) -> (i32, T)
    where
        T: Decodable + HeaderVersion,
    {
        let mut frame = self
            .read_frame()
            .await
            .expect("a response, not a closed connection");
        let header = ResponseHeader::decode(&mut frame, T::header_version(version))
            .expect("response header");
        let body = T::decode(&mut frame, version).expect("response body");
        assert!(
            !frame.has_remaining(),
            "{} trailing bytes after the response",
            frame.remaining()
        );
        (header.correlation_id, body)
    }

    /// Writes raw bytes (a whole frame, part of one, or garbage).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to broker");
    }

    /// Closes the sending side (the broker reads end of stream); replies can still arrive.
    pub async fn shutdown_write(&mut self) {
        self.stream
            .shutdown()
            .await
            .expect("shut down the write side");
    }

    /// Writes raw bytes, tolerating a broker that already closed the connection.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// One response frame without its size prefix; `None` when the broker closed the
    /// connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let size = self.stream.read_i32().await.ok()?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= RESPONSE_MAX_BYTES)?;
            let mut frame = vec![0u8; size];
            self.stream.read_exact(&mut frame).await.ok()?;
            Some(Bytes::from(frame))
        };
        tokio::time::timeout(IO_TIMEOUT, read)
            .await
            .expect("broker answered in time")
    }

    /// True when the broker has closed this connection (EOF or reset) within the timeout.
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// True when nothing arrives for `wait` (e.g. after an acks=0 produce).
    pub async fn is_silent_for(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(wait, self.stream.read(&mut byte))
            .await
            .is_err()
    }
}

/// A whole request frame: size prefix, header at the version the API prescribes, body.
pub fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> Bytes {
    let api_key = ApiKey::try_from(R::KEY).expect("known api key");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("runnel-tests")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("encode header");
    request.encode(&mut buf, version).expect("encode request");
    let size = i32::try_from(buf.len() - 4).expect("frame fits i32");
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

pub mod http;
pub mod proxy;
pub mod records;
pub mod requests;
pub mod wire;
