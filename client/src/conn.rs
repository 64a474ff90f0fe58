//! One TCP connection to one broker, with pipelined requests.
//!
//! Requests are written under a lock by the caller's task; a reader task matches each
//! response to its request by correlation id and wakes the waiting caller, so any number of
//! tasks can have requests in flight at once (up to `in_flight_max`, a semaphore). Every
//! response frame has a size bound (`response_bytes_max`) checked before allocating, and
//! every request one deadline (`request_timeout_ms`) for all of it: its slot, the writer
//! lock, the write and the response. After an I/O error, a request past its deadline, or a
//! write left unfinished (failed, or its caller's future dropped mid-frame: the next frame
//! would follow half a frame) the connection is dead — as the Java client closes a
//! connection whose request timed out: every waiter gets an error, the reader stops, and
//! [`Cluster`](crate::cluster) opens a new connection for the next attempt instead of
//! sending it into the same stalled socket.

use std::any::Any;
use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ProduceRequest, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{decode_budget, Decodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};

use runnel_protocol::chunked;

use crate::error::{Error, Result};
use crate::frame_buffers::FrameBuffers;
use crate::versions;

/// Limits of one connection.
///
/// ```
/// let mut config = runnel_client::ClientConfig::new("127.0.0.1:9092");
/// config.connection.request_timeout_ms = 5_000;
/// config.connection.in_flight_max = 16;
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub client_id: String,
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub response_bytes_max: usize,
    pub in_flight_max: usize,
    /// A connection to a broker on this machine leaves a congestion control that paces its
    /// sends (BBR) for Reno (`runnel_protocol::loopback`); false keeps the system's choice.
    pub loopback_unpaced: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "runnel".to_owned(),
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            response_bytes_max: 128 * 1024 * 1024,
            in_flight_max: 64,
            loopback_unpaced: true,
        }
    }
}

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Result<Bytes>>>>>;

/// A connection to one broker; cheap to share behind an `Arc`.
///
/// ```no_run
/// use runnel_client::conn::{Connection, ConnectionConfig};
/// use runnel_client::kafka::messages::MetadataRequest;
/// # async fn example() -> runnel_client::Result<()> {
/// let connection = Connection::connect("127.0.0.1:9092", &ConnectionConfig::default()).await?;
/// let metadata = connection.send(&MetadataRequest::default().with_topics(None)).await?;
/// println!("{} brokers", metadata.brokers.len());
/// # Ok(()) }
/// ```
pub struct Connection {
    pub addr: String,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_correlation_id: AtomicI32,
    in_flight: Semaphore,
    dead: Arc<AtomicBool>,
    /// The reader task, stopped when the connection is declared dead.
    reader: tokio::task::AbortHandle,
    /// The broker's version range per API key, from ApiVersions.
    broker_versions: HashMap<i16, (i16, i16)>,
    config: ConnectionConfig,
}

impl Connection {
    /// Connects, starts the reader task and negotiates API versions.
    pub async fn connect(addr: &str, config: &ConnectionConfig) -> Result<Connection> {
        let connect = TcpStream::connect(addr);
        let stream =
            tokio::time::timeout(Duration::from_millis(config.connect_timeout_ms), connect)
                .await
                .map_err(|_| Error::Timeout {
                    what: format!("connect to {addr}"),
                    timeout_ms: config.connect_timeout_ms,
                })?
                .map_err(|source| Error::Io {
                    addr: addr.to_owned(),
                    source: source.into(),
                })?;
        stream.set_nodelay(true).map_err(|source| Error::Io {
            addr: addr.to_owned(),
            source: source.into(),
        })?;
        // Sends to a broker on this machine are not paced unless told
        // (`runnel_protocol::loopback`); a failure leaves the socket as it is.
        if config.loopback_unpaced {
            if let Err(error) = runnel_protocol::loopback::unpace_loopback(&stream) {
                tracing::debug!(%addr, %error, "loopback connection left on the system's congestion control");
            }
        }
        let (read, write) = stream.into_split();
        let pending: Pending = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_loop(
            read,
            pending.clone(),
            dead.clone(),
            addr.to_owned(),
            config.response_bytes_max,
        ))
        .abort_handle();
        let mut connection = Connection {
            addr: addr.to_owned(),
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_correlation_id: AtomicI32::new(1),
            in_flight: Semaphore::new(config.in_flight_max.max(1)),
            dead,
            reader,
            broker_versions: HashMap::new(),
            config: config.clone(),
        };
        connection.broker_versions = connection.negotiate().await?;
        Ok(connection)
    }

    /// ApiVersions at v3 (flexible); a broker that only knows v0 answers v0 with
    /// UNSUPPORTED_VERSION and its list, which v0 decoding reads.
    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("runnel-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.send_at(&request, 3).await?;
        if response.error_code == 35 {
            response = self.send_at(&ApiVersionsRequest::default(), 0).await?;
        }
        Error::check(response.error_code, || "ApiVersions".to_owned())?;
        Ok(response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect())
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Declares the connection unusable: no request is written on it again, the reader
    /// stops (dropping the read half) and every request waiting for a response fails now
    /// rather than at its own deadline.
    fn kill(&self, why: &str) {
        if !self.dead.swap(true, Ordering::SeqCst) {
            tracing::debug!(addr = %self.addr, why, "closing connection");
        }
        self.reader.abort();
        fail_waiters(&self.pending, &self.addr);
    }

    /// The highest version of `R` both sides support.
    pub fn version_of<R: Request + 'static>(&self) -> Result<i16> {
        let api = ApiKey::try_from(R::KEY)
            .map_err(|_| Error::Protocol(format!("unknown api key {}", R::KEY)))?;
        let broker = self.broker_versions.get(&R::KEY).copied();
        versions::negotiate(api, broker).ok_or_else(|| Error::UnsupportedVersion {
            api: format!("{api:?}"),
        })
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn send<R: Request + 'static>(&self, request: &R) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send_at(request, version).await
    }

    /// Sends `request` built for the negotiated version.
    pub async fn send_with<R: Request + 'static>(
        &self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send_at(&build(version), version).await
    }

    /// Sends `request` at `version` and waits for the response.
    pub async fn send_at<R: Request + 'static>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response> {
        self.send_within(request, version, self.config.request_timeout_ms, || {})
            .await
    }

    /// [`send`](Self::send) that calls `written` once the request is written (or writing
    /// it failed), before waiting for the response: a caller that sends requests from
    /// several tasks in a fixed order lets the next one write then (the producer keeps a
    /// partition's batches in order so).
    pub async fn send_noting_write<R: Request + 'static>(
        &self,
        request: &R,
        written: impl FnOnce(),
    ) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send_within(request, version, self.config.request_timeout_ms, written)
            .await
    }

    /// Sends a request the broker may legitimately hold longer than `request_timeout_ms`
    /// (JoinGroup waits for the whole group, up to the rebalance timeout).
    pub async fn send_long<R: Request + 'static>(
        &self,
        request: &R,
        timeout_ms: u64,
    ) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        let timeout_ms = timeout_ms.max(self.config.request_timeout_ms);
        self.send_within(request, version, timeout_ms, || {}).await
    }

    /// The whole exchange — slot, write, response — within `timeout_ms`; past it the
    /// connection is killed (see the module doc). `written` runs after the write.
    async fn send_within<R: Request + 'static>(
        &self,
        request: &R,
        version: i16,
        timeout_ms: u64,
        written: impl FnOnce(),
    ) -> Result<R::Response> {
        let exchange = async {
            let _permit = self.in_flight.acquire().await.map_err(|_| Error::Closed)?;
            let write = self.write(request, version, true).await;
            written();
            let (correlation_id, receiver) = write?;
            // A caller that gives up (drops this future) leaves no waiter behind.
            let _forget = Forget(self, correlation_id);
            let frame = receiver.await.map_err(|_| Error::Disconnected {
                addr: self.addr.clone(),
            })??;
            decode_response::<R::Response>(frame, version)
        };
        self.within(R::KEY, timeout_ms, exchange).await
    }

    /// Sends a request that gets no response (Produce with acks=0), its slot and write
    /// within `request_timeout_ms`.
    pub async fn send_no_response<R: Request + 'static>(&self, request: &R) -> Result<()> {
        let version = self.version_of::<R>()?;
        let write = async {
            let _permit = self.in_flight.acquire().await.map_err(|_| Error::Closed)?;
            self.write(request, version, false).await.map(|_| ())
        };
        let timeout_ms = self.config.request_timeout_ms;
        self.within(R::KEY, timeout_ms, write).await
    }

    /// Runs `step` (a request of API `api_key`) under a `timeout_ms` deadline; a request
    /// that misses it kills the connection: whatever holds it up (a stalled broker, a full
    /// socket) would hold up the retry too.
    async fn within<T>(
        &self,
        api_key: i16,
        timeout_ms: u64,
        step: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(Duration::from_millis(timeout_ms), step).await {
            Ok(result) => result,
            Err(_) => {
                let api = match ApiKey::try_from(api_key) {
                    Ok(key) => format!("{key:?}"),
                    Err(_) => format!("API key {api_key}"),
                };
                let what = format!("{api} to {}", self.addr);
                self.kill(&format!("{what} timed out"));
                Err(Error::Timeout { what, timeout_ms })
            }
        }
    }

    async fn write<R: Request + 'static>(
        &self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes>>)> {
        if self.is_dead() {
            return Err(Error::Disconnected {
                addr: self.addr.clone(),
            });
        }
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(request, version, correlation_id, &self.config.client_id)?;
        let (sender, receiver) = oneshot::channel();
        let mut writer = self.writer.lock().await;
        if expect_response {
            if let Ok(mut pending) = self.pending.lock() {
                pending.insert(correlation_id, sender);
            }
        }
        // Checked after the waiter is in place: a `kill` since (the lock may have been held
        // by a write that failed) either shows here or drains that waiter.
        if self.is_dead() {
            self.forget(correlation_id);
            return Err(Error::Disconnected {
                addr: self.addr.clone(),
            });
        }
        let unfinished = UnfinishedWrite(self);
        let written = write_chunks(&mut *writer, &frame).await;
        std::mem::forget(unfinished);
        if let Err(source) = written {
            self.kill("write failed");
            return Err(Error::Io {
                addr: self.addr.clone(),
                source: source.into(),
            });
        }
        Ok((correlation_id, receiver))
    }

    fn forget(&self, correlation_id: i32) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&correlation_id);
        }
    }
}

impl Drop for Connection {
    /// The reader holds the read half: stopping it closes the socket with the write half.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Kills the connection if dropped: alive only while a frame is being written, so it fires
/// when the writing future is dropped mid-frame (a caller's timeout or `select!`); the
/// bytes already sent would make the broker read the next frame from the middle of this one.
struct UnfinishedWrite<'a>(&'a Connection);

impl Drop for UnfinishedWrite<'_> {
    fn drop(&mut self) {
        self.0.kill("a write was cancelled mid-frame");
    }
}

/// Removes a request's waiter when its caller stops waiting (a no-op once answered).
struct Forget<'a>(&'a Connection, i32);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

/// Fails every request waiting on a dead connection.
fn fail_waiters(pending: &Pending, addr: &str) {
    let waiters: Vec<_> = match pending.lock() {
        Ok(mut p) => p.drain().map(|(_, w)| w).collect(),
        Err(_) => Vec::new(),
    };
    for waiter in waiters {
        let _ = waiter.send(Err(Error::Disconnected {
            addr: addr.to_owned(),
        }));
    }
}

/// A whole request frame — size prefix, header at the version the API prescribes, body —
/// as chunks: a Produce request references its record batches instead of copying them
/// (see [`runnel_protocol::chunked`]); any other request is one chunk.
fn encode_request<R: Request + 'static>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Vec<Bytes>> {
    let api_key =
        ApiKey::try_from(R::KEY).map_err(|_| Error::Protocol(format!("api key {}", R::KEY)))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = api_key.request_header_version(version);
    let encode = |shares| {
        chunked::encode_frame(&header, header_version, request, version, shares)
            .map_err(|e| Error::Protocol(format!("encode {api_key:?} v{version}: {e}")))
    };
    match encode(record_batches(request))? {
        Some(chunks) => Ok(chunks),
        // The encoder patched across a batch: encode again with every byte copied.
        None => encode(Vec::new())?.ok_or_else(|| {
            Error::Protocol(format!("encode {api_key:?} v{version}: unpatchable frame"))
        }),
    }
}

/// The record batches a request carries (a Produce request's), to send uncopied.
fn record_batches<R: Request + 'static>(request: &R) -> Vec<Bytes> {
    let request: &dyn Any = request;
    let Some(produce) = request.downcast_ref::<ProduceRequest>() else {
        return Vec::new();
    };
    produce
        .topic_data
        .iter()
        .flat_map(|topic| &topic.partition_data)
        .filter_map(|partition| partition.records.clone())
        .collect()
}

/// Writes `chunks` in order with vectored writes (a few syscalls for a whole request).
async fn write_chunks<W: AsyncWrite + Unpin>(
    writer: &mut W,
    chunks: &[Bytes],
) -> std::io::Result<()> {
    /// Slices per `writev` (Linux takes up to 1024).
    const IO_SLICES_MAX: usize = 64;
    let (mut index, mut offset) = (0usize, 0usize);
    // Each pass writes ≥ 1 byte or fails, so this ends.
    while index < chunks.len() {
        let first = chunks
            .get(index)
            .and_then(|c| c.get(offset..))
            .unwrap_or_default();
        let rest = chunks.iter().skip(index + 1).map(|c| &c[..]);
        let slices: Vec<IoSlice<'_>> = std::iter::once(first)
            .chain(rest)
            .take(IO_SLICES_MAX)
            .map(IoSlice::new)
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 && slices.iter().any(|s| !s.is_empty()) {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while index < chunks.len() {
            let left = chunks[index].len() - offset;
            if written < left {
                offset += written;
                break;
            }
            written -= left;
            index += 1;
            offset = 0;
        }
    }
    Ok(())
}

/// Memory one response's decode may spend on arrays and unknown tagged fields (see
/// `runnel_protocol::frame::DECODED_COLLECTIONS_BYTES_MAX` for the broker's side): a
/// response of two-byte elements would otherwise decode to ~50 times `response_bytes_max`.
/// 128 MiB is a Metadata answer for about a million partitions.
pub const RESPONSE_COLLECTIONS_BYTES_MAX: usize = 128 << 20;

/// Decodes a response frame (after the size prefix); the header was read by the reader.
fn decode_response<T: Decodable + HeaderVersion>(mut frame: Bytes, version: i16) -> Result<T> {
    ResponseHeader::decode(&mut frame, T::header_version(version))
        .map_err(|e| Error::Protocol(format!("response header: {e}")))?;
    let body = decode_budget::with_limit(RESPONSE_COLLECTIONS_BYTES_MAX, || {
        T::decode(&mut frame, version)
    })
    .map_err(|e| Error::Protocol(format!("response body v{version}: {e}")))?;
    if frame.has_remaining() {
        return Err(Error::Protocol(format!(
            "{} trailing bytes after a v{version} response",
            frame.remaining()
        )));
    }
    Ok(body)
}

/// Reads frames until the connection fails, routing each by its correlation id (the first
/// four bytes of every response header version).
async fn read_loop(
    mut read: OwnedReadHalf,
    pending: Pending,
    dead: Arc<AtomicBool>,
    addr: String,
    response_bytes_max: usize,
) {
    let mut buffers = FrameBuffers::default();
    let failure = loop {
        let size = match read.read_i32().await {
            Ok(size) => size,
            Err(source) => {
                break Error::Io {
                    addr: addr.clone(),
                    source: source.into(),
                }
            }
        };
        let size_bytes = match usize::try_from(size) {
            Ok(size_bytes) if (4..=response_bytes_max).contains(&size_bytes) => size_bytes,
            _ => {
                break Error::ResponseTooLarge {
                    size_bytes: usize::try_from(size).unwrap_or(0),
                    max_bytes: response_bytes_max,
                }
            }
        };
        let frame = match buffers.read_body(&mut read, size_bytes).await {
            Ok(frame) => frame,
            Err(source) => {
                break Error::Io {
                    addr: addr.clone(),
                    source: source.into(),
                }
            }
        };
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let waiter = pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&correlation_id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(frame));
        }
    };
    dead.store(true, Ordering::SeqCst);
    tracing::debug!(%addr, error = %failure, "connection closed");
    fail_waiters(&pending, &addr);
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
