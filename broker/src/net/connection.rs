//! One client connection: read frames, apply them in arrival order, answer in order.
//!
//! The reader reads size-checked frames and hands them, in order, to the applier, which
//! decodes each and calls [`api::dispatch`] (the synchronous apply step) before taking the
//! next, so one producer's appends land in order. The reader reads the next frame while the
//! applier applies the last one: read one after the other, a 1 MiB produce request's copy
//! out of the socket and its append into the page cache took turns on one connection (one
//! producer 545–682 MiB/s, two 689–844). Waiting completions (acks=all, fetch long-poll)
//! run as their own tasks; the writer half awaits them in request order, so responses go
//! out in request order while the waits overlap. A Fetch answer's records left in segment
//! files go out with `sendfile` ([`file_sends`]). At most `inflight_requests_max` requests
//! are applied but unanswered; beyond that the applier stops taking frames and, once
//! `READ_AHEAD_BYTES_MAX` (or `FRAMES_READ_AHEAD_MAX` frames) wait for it, the reader
//! stops reading (TCP back-pressure). Fetch answers hold their room among
//! `FETCH_ANSWERS_BYTES_MAX` from before they are read until they are written, so a client
//! that pipelines fetches and does not read the answers holds that much, not
//! `inflight_requests_max` of them. Across connections, frames read and not yet applied
//! are bounded by `queued_request_bytes_max` ([`request_memory`](super::request_memory)):
//! the reader takes room for a frame there before reading its body. The reader and the
//! applier yield after each hand-over (a frame to the applier, an answer to the writer):
//! tokio runs a task woken by a running one from that worker's next-task slot, which other
//! workers cannot take, so it would wait until the waker ran out of work.
//! A connection that moves no byte either way for `connections_max_idle_ms` is closed, with
//! whatever it has queued ([`idle`](super::idle)).
//! The connection exclusively owns its socket; it shares only the `Arc<BrokerContext>`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};
use runnel_protocol::frame::{
    decode_request, encode_response_chunks, frame_size, DecodedRequest, ErrorAction, FrameError,
    RequestError,
};
use runnel_protocol::loopback::unpace_loopback;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::{self, Answer, BrokerContext, Completion};
use crate::config::BrokerConfig;
use crate::metrics::ConnectionMetrics;
use crate::net::file_sends::{self, Piece, PlaceholderError};
use crate::net::idle::{Activity, Touching};
use crate::net::request_memory::{RequestMemory, RequestRoom};

/// First allocation for a frame body larger than [`FRAME_EAGER_BYTES_MAX`]; it grows as
/// bytes actually arrive, so a client that announces a huge frame and sends nothing holds
/// no more than this.
const FRAME_INITIAL_BUFFER_BYTES: usize = 64 * 1024;
/// Frames up to this size (a producer's usual 1 MiB request and its framing) get their
/// whole buffer at once: growing by doubling copies the body about once more and faults in
/// fresh pages at every step. A client that announces such a frame and stalls holds it
/// until the request timeout — the same bound as one that sends it.
const FRAME_EAGER_BYTES_MAX: usize = 1024 * 1024 + 64 * 1024;
/// Bytes of frames read and not yet applied (a larger frame goes alone): with the one being
/// read, a connection holds at most this plus one frame, or two frames.
/// Room for several of a producer's 1 MiB requests absorbs the millisecond scheduling gaps of
/// a busy 2-core machine: one frame ahead, reading stalled whenever the applier was late and
/// the client's sends stalled behind it (8 partitions, alternating: 952–1 396 MiB/s, mean
/// 1 160, against 1 158–1 342, mean 1 294, with four frames ahead).
const READ_AHEAD_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Frames waiting for the applier, however small (a bound on the queue's slots).
const FRAMES_READ_AHEAD_MAX: usize = 16;
/// Bytes of Fetch answers one connection may hold, from before they are read until they are
/// written: each takes room for as much as its request allows
/// ([`api::fetch::response_bytes_max`], at least [`FETCH_ANSWER_BYTES_MIN`]); one larger than
/// this waits alone. Clients keep one Fetch in flight per connection, and Kafka answers one
/// request per connection at a time; without it, 64 unread answers of up to 55 MiB each
/// stayed in memory.
const FETCH_ANSWERS_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Room a Fetch answer takes at least: a fetch with tiny limits still gets one whole batch
/// (up to `max.message.bytes`, 1 MiB by default).
const FETCH_ANSWER_BYTES_MIN: usize = 1024 * 1024;
/// Bytes buffered before the writer flushes even when more responses are queued.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Per-connection bounds, copied from the broker config, and the room for request frames
/// that all connections share.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_request_bytes: usize,
    pub request_timeout_ms: u64,
    pub connections_max_idle_ms: u64,
    pub inflight_requests_max: usize,
    /// Loopback connections leave a pacing congestion control (`--loopback-unpaced`).
    pub loopback_unpaced: bool,
    pub request_memory: Arc<RequestMemory>,
}

impl ConnectionLimits {
    /// Limits for every connection of one broker (clones share the request memory).
    pub fn from_config(config: &BrokerConfig, metrics: &ConnectionMetrics) -> ConnectionLimits {
        ConnectionLimits {
            max_request_bytes: config.max_request_bytes,
            request_timeout_ms: config.request_timeout_ms,
            connections_max_idle_ms: config.connections_max_idle_ms,
            inflight_requests_max: config.inflight_requests_max,
            loopback_unpaced: config.loopback_unpaced,
            request_memory: Arc::new(RequestMemory::new(
                config.queued_request_bytes_max,
                metrics.request_queue_bytes.clone(),
                metrics.request_memory_waits.clone(),
            )),
        }
    }
}

/// Why a connection ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("frame ended after {received_bytes} of {size_bytes} bytes")]
    Truncated {
        received_bytes: usize,
        size_bytes: usize,
    },
    #[error("request stalled mid-frame for {0} ms")]
    Timeout(u64),
    #[error("no byte read or written for {0} ms")]
    Idle(u64),
    #[error("bad request: {0}")]
    Request(#[from] RequestError),
    #[error("a request that expects no response failed (acks=0 produce)")]
    FailedWithoutResponse,
    #[error("dispatch: {0}")]
    Dispatch(#[from] api::DispatchError),
    #[error("encoding a response: {0}")]
    Encode(#[from] runnel_protocol::frame::EncodeError),
    #[error("sending records from a file: {0}")]
    FileSend(#[from] PlaceholderError),
}

/// A response slot, queued in request order.
// `Ready` is large, but a slot is moved once into the queue; boxing would cost an
// allocation per response.
#[allow(clippy::large_enum_variant)]
enum Outbound {
    Ready {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        answer: Answer,
    },
    Waiting {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        task: AbortOnDrop<Answer>,
    },
    /// An already-encoded frame (the ApiVersions fallback).
    Raw(Bytes),
}

/// A task that is cancelled when its owner goes away first: a completion whose connection
/// closed, or a writer whose connection task was aborted at the shutdown deadline.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The peer as Kafka names a group member's host: `/` and the IP address (Java's
/// `InetAddress.toString()` of an address without a host name), as DescribeGroups reports it.
/// An IPv4 client of a dual-stack listener is written as IPv4, as Java writes it.
fn client_host(peer: SocketAddr) -> String {
    format!("/{}", peer.ip().to_canonical())
}

/// Serves one connection until the client closes it, it misbehaves, or shutdown.
pub async fn serve(
    stream: TcpStream,
    context: Arc<BrokerContext>,
    limits: ConnectionLimits,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    // Small responses (ApiVersions, acks=1 produce) must not wait for Nagle.
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    // Sends to a client on this machine are not paced (`runnel_protocol::loopback`).
    if limits.loopback_unpaced {
        if let Err(error) = unpace_loopback(&stream) {
            tracing::debug!(%peer, %error, "loopback connection left on the system's congestion control");
        }
    }
    let client_host = client_host(peer);
    let activity = Activity::new();
    let (reader, writer) = stream.into_split();
    let reader = Touching::new(reader, Arc::clone(&activity));
    let writer = Touching::new(writer, Arc::clone(&activity));
    let (queue_tx, queue_rx) = mpsc::channel(limits.inflight_requests_max);
    let mut writer_task = AbortOnDrop(tokio::spawn(write_responses(writer, queue_rx)));
    let (frames_tx, frames_rx) = mpsc::channel(FRAMES_READ_AHEAD_MAX);
    let mut applier_task = AbortOnDrop(tokio::spawn(apply_requests(
        context,
        client_host,
        frames_rx,
        queue_tx,
    )));
    let run = async {
        let read_result = read_requests(reader, &limits, shutdown, frames_tx).await;
        // The reader dropped its sender: the applier applies every frame read, then ends and
        // drops its sender; the writer answers everything queued, then ends.
        let apply_result = (&mut applier_task.0).await.map_err(std::io::Error::other)?;
        let write_result = (&mut writer_task.0).await.map_err(std::io::Error::other)?;
        read_result.and(apply_result).and(write_result)
    };
    let idle_ms = limits.connections_max_idle_ms;
    tokio::select! {
        result = run => result,
        // Dropping the tasks aborts them: the socket closes, queued answers go.
        () = activity.idle_for(Duration::from_millis(idle_ms)) => Err(ConnectionError::Idle(idle_ms)),
    }
}

/// Applies frames in arrival order, queueing their answers, until the reader stops or a
/// frame fails so that the connection must close.
async fn apply_requests(
    context: Arc<BrokerContext>,
    client_host: String,
    mut frames: mpsc::Receiver<ReadFrame>,
    queue: mpsc::Sender<Queued>,
) -> Result<(), ConnectionError> {
    let fetch_answers = RequestMemory::unmetered(FETCH_ANSWERS_BYTES_MAX);
    // Each frame's room is given back once it is applied.
    while let Some((frame, _room)) = frames.recv().await {
        let request = match decode_request(frame) {
            Ok(request) => request,
            Err(error) => match error.action() {
                ErrorAction::Reply(frame) => {
                    if !hand_over(&queue, (Outbound::Raw(frame), None)).await {
                        return Ok(());
                    }
                    continue;
                }
                ErrorAction::Close => return Err(error.into()),
            },
        };
        // Room for a Fetch's answer before it reads anything: waits while earlier answers
        // are unwritten (the client does not read them).
        let answer_room = match &request.body {
            RequestKind::Fetch(fetch) => {
                let bytes = api::fetch::response_bytes_max(fetch).max(FETCH_ANSWER_BYTES_MIN);
                fetch_answers.reserve(bytes).await
            }
            _ => None,
        };
        let Some(outbound) = apply(&context, &client_host, request)? else {
            continue;
        };
        if !hand_over(&queue, (outbound, answer_room)).await {
            // The writer failed (client gone); its error is reported by `serve`.
            return Ok(());
        }
    }
    Ok(())
}

/// A response slot and the room its answer holds until written (Fetch answers only).
type Queued = (Outbound, Option<RequestRoom>);

/// Hands `item` to the next half of the connection, then yields (module docs): else that
/// half waits until this task runs out of work — the applier until the reader has read the
/// next frame too, the writer until the applier has gone through the frames read ahead.
/// False when that half is gone.
async fn hand_over<T>(to: &mpsc::Sender<T>, item: T) -> bool {
    if to.send(item).await.is_err() {
        return false;
    }
    tokio::task::yield_now().await;
    true
}

/// A frame for the applier, with the room it holds until it is applied: among this
/// connection's frames read ahead, and among all connections' frames.
type ReadFrame = (Bytes, (RequestRoom, RequestRoom));

/// Reads frames for the applier until EOF, an error, shutdown, or the applier's end.
async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    limits: &ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
    frames: mpsc::Sender<ReadFrame>,
) -> Result<(), ConnectionError> {
    let read_ahead = RequestMemory::unmetered(READ_AHEAD_BYTES_MAX);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let mut prefix = [0u8; 4];
        // Idle between requests has no timeout; only a half-received frame does.
        let first_bytes = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            // The applier failed or the writer did: `serve` reports why.
            _ = frames.closed() => return Ok(()),
            read = reader.read(&mut prefix) => read?,
        };
        if first_bytes == 0 {
            return Ok(());
        }
        let timeout = Duration::from_millis(limits.request_timeout_ms);
        let timed_out = |_| ConnectionError::Timeout(limits.request_timeout_ms);
        let size_bytes = tokio::time::timeout(
            timeout,
            read_frame_size(&mut reader, prefix, first_bytes, limits),
        )
        .await
        .map_err(timed_out)??;
        // Room for all of it among every connection's frames before reading the body; the
        // wait is not the client's stall, so the request timeout starts after it.
        let shared_room = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = frames.closed() => return Ok(()),
            room = limits.request_memory.reserve(size_bytes) => room,
        };
        let Some(shared_room) = shared_room else {
            return Ok(());
        };
        let frame = tokio::time::timeout(timeout, read_frame_body(&mut reader, size_bytes))
            .await
            .map_err(timed_out)??;
        // Room for it among this connection's frames waiting (all of it, for a frame larger
        // than the bound).
        let Some(room) = read_ahead.reserve(frame.len()).await else {
            return Ok(());
        };
        if !hand_over(&frames, (frame, (room, shared_room))).await {
            return Ok(());
        }
    }
}

/// Reads the rest of the size prefix and checks the size it announces.
async fn read_frame_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    mut prefix: [u8; 4],
    prefix_bytes_read: usize,
    limits: &ConnectionLimits,
) -> Result<usize, ConnectionError> {
    if let Some(rest) = prefix.get_mut(prefix_bytes_read..) {
        reader.read_exact(rest).await?;
    }
    Ok(frame_size(prefix, limits.max_request_bytes)?)
}

/// Reads a frame body of `size_bytes`.
async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size_bytes: usize,
) -> Result<Bytes, ConnectionError> {
    if size_bytes <= FRAME_EAGER_BYTES_MAX {
        // Straight into a buffer of the frame's size. (`read_to_end` into an exactly sized
        // buffer reallocates — copies — it once it is full, to probe for the end: that was
        // 5-10 % of the broker's produce CPU.)
        let mut body = BytesMut::with_capacity(size_bytes);
        while body.len() < size_bytes {
            let rest = (size_bytes - body.len()) as u64;
            if reader.take(rest).read_buf(&mut body).await? == 0 {
                return Err(ConnectionError::Truncated {
                    received_bytes: body.len(),
                    size_bytes,
                });
            }
        }
        return Ok(body.freeze());
    }
    let mut body = Vec::with_capacity(FRAME_INITIAL_BUFFER_BYTES);
    let limit = u64::try_from(size_bytes).unwrap_or(u64::MAX);
    reader.take(limit).read_to_end(&mut body).await?;
    if body.len() != size_bytes {
        return Err(ConnectionError::Truncated {
            received_bytes: body.len(),
            size_bytes,
        });
    }
    Ok(Bytes::from(body))
}

/// Applies one decoded request; `None` when nothing is to be answered.
fn apply(
    context: &BrokerContext,
    client_host: &str,
    request: DecodedRequest,
) -> Result<Option<Outbound>, ConnectionError> {
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let started = Instant::now();
    let metrics = &context.metrics;
    let outbound = match api::dispatch(context, &request.header, client_host, request.body)? {
        Completion::Ready(answer) => {
            metrics.record_request(api_key as i16, started, Some(&answer.body));
            Outbound::Ready {
                api_key,
                version,
                correlation_id,
                answer,
            }
        }
        Completion::Pending(future) => {
            let metrics = Arc::clone(metrics);
            let task = AbortOnDrop(tokio::spawn(async move {
                let answer = future.await;
                metrics.record_request(api_key as i16, started, Some(&answer.body));
                answer
            }));
            Outbound::Waiting {
                api_key,
                version,
                correlation_id,
                task,
            }
        }
        Completion::NoResponse => {
            metrics.record_request(api_key as i16, started, None);
            return Ok(None);
        }
        Completion::CloseConnection => {
            metrics.record_request(api_key as i16, started, None);
            return Err(ConnectionError::FailedWithoutResponse);
        }
    };
    Ok(Some(outbound))
}

/// The frame of `answer`: encoded chunks, its records left in files as file pieces.
fn encode_answer(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    answer: Answer,
) -> Result<Vec<Piece>, ConnectionError> {
    let chunks = encode_response_chunks(api_key, version, correlation_id, &answer.body)?;
    Ok(file_sends::pieces(chunks, answer.sends)?)
}

/// Writes responses in request order, flushing whenever the queue runs dry.
async fn write_responses(
    writer: Touching<OwnedWriteHalf>,
    mut queue: mpsc::Receiver<Queued>,
) -> Result<(), ConnectionError> {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer);
    // An answer's room is given back once it is written (or the writer fails).
    while let Some((outbound, _answer_room)) = queue.recv().await {
        let pieces = match outbound {
            Outbound::Raw(frame) => vec![Piece::Bytes(frame)],
            Outbound::Ready {
                api_key,
                version,
                correlation_id,
                answer,
            } => encode_answer(api_key, version, correlation_id, answer)?,
            Outbound::Waiting {
                api_key,
                version,
                correlation_id,
                mut task,
            } => {
                let answer = (&mut task.0).await.map_err(std::io::Error::other)?;
                encode_answer(api_key, version, correlation_id, answer)?
            }
        };
        // Small chunks gather in the buffer; a record batch at least its size goes to the
        // socket straight from the segment read, uncopied, and one left in its file is sent
        // from the page cache.
        for piece in &pieces {
            match piece {
                Piece::Bytes(chunk) => writer.write_all(chunk).await?,
                Piece::File(slice) => {
                    writer.flush().await?;
                    let socket = writer.get_ref();
                    let on_progress = || socket.activity().touch();
                    file_sends::send_file(socket.get_ref().as_ref(), slice, on_progress).await?;
                }
            }
        }
        if queue.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    writer.into_inner().shutdown().await?;
    Ok(())
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
