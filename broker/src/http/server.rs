//! The HTTP listener's accept loop and its bounds, which keep a slow, stuck or flooding
//! HTTP client from holding the broker:
//!
//! - at most `connections_max` connections; more are closed as soon as they are accepted
//!   (an HTTP flood must not use up the file descriptors the Kafka listener needs);
//! - a request head must arrive within `header_read_ms` of the connection (or of the
//!   previous response, for a kept-alive one): a client that stalls mid-request is dropped;
//! - a response write may make no progress for at most `write_stall_ms`: a client that
//!   stops reading is dropped with the page it was sent;
//! - at shutdown, connections get `shutdown_timeout_ms` to finish, then are closed, so the
//!   broker always goes on to flush storage.
//!
//! HTTP/1.1 only (hyper's http1 server): what Prometheus, curl and browsers speak.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Sleep;

/// HTTP connections open at once; more are closed as soon as they are accepted.
pub const HTTP_CONNECTIONS_MAX: usize = 128;
/// Longest wait for a request head (also how long a kept-alive connection may idle).
pub const HTTP_HEADER_READ_MS: u64 = 30_000;
/// Longest a response write may make no progress.
pub const HTTP_WRITE_STALL_MS: u64 = 30_000;

/// The bounds one server enforces (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub connections_max: usize,
    pub header_read_ms: u64,
    pub write_stall_ms: u64,
    pub shutdown_timeout_ms: u64,
}

impl HttpLimits {
    /// The broker's bounds, with its Kafka listener's shutdown bound.
    pub fn new(shutdown_timeout_ms: u64) -> HttpLimits {
        HttpLimits {
            connections_max: HTTP_CONNECTIONS_MAX,
            header_read_ms: HTTP_HEADER_READ_MS,
            write_stall_ms: HTTP_WRITE_STALL_MS,
            shutdown_timeout_ms,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true (or its sender goes), then
/// lets connections finish within `limits.shutdown_timeout_ms` and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
) {
    assert!(
        limits.connections_max > 0,
        "an HTTP server that serves no one"
    );
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let mut connections = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            () = shutdown_signalled(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!(%peer, limit = limits.connections_max, "HTTP connection limit reached; closing");
                        continue;
                    };
                    let (router, shutdown) = (router.clone(), shutdown.clone());
                    connections.spawn(connection(stream, router, shutdown, limits, permit));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set stays as small as the open count.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    let grace = Duration::from_millis(limits.shutdown_timeout_ms);
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "closing HTTP connections still busy at shutdown"
        );
        connections.shutdown().await;
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One connection: requests until the client closes, a bound trips, or shutdown (which
/// lets the request in progress finish; the server's drain bound covers the rest).
async fn connection(
    stream: TcpStream,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
    _permit: OwnedSemaphorePermit,
) {
    let io = TokioIo::new(StallBounded::new(
        stream,
        Duration::from_millis(limits.write_stall_ms),
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_ms));
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(router)));
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
            return;
        }
        () = shutdown_signalled(&mut shutdown) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended at shutdown");
    }
}

/// A TCP stream whose writes fail with `TimedOut` once one has made no progress for
/// `stall`: a client that stops reading its response is dropped instead of holding the
/// connection, and the rendered page, for ever.
struct StallBounded {
    stream: TcpStream,
    stall: Duration,
    /// Set while a write is pending; cleared by any progress.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl StallBounded {
    fn new(stream: TcpStream, stall: Duration) -> StallBounded {
        StallBounded {
            stream,
            stall,
            deadline: None,
        }
    }

    /// Passes a write-side result through, failing a pending one whose stall ran out.
    fn bound<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.deadline = None;
            return poll;
        }
        let stall = self.stall;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StallBounded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallBounded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.bound(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.bound(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.bound(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.bound(cx, poll)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes of the `/big` answer: far more than the socket buffers hold.
    const BIG_BYTES: usize = 64 << 20;

    /// A server allowing one connection at a time, with short bounds.
    async fn one_connection_server(
        limits: HttpLimits,
    ) -> (std::net::SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/small", get(|| async { "ok" }))
            .route("/big", get(|| async { vec![b'x'; BIG_BYTES] }));
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve(listener, router, stop_rx, limits));
        (addr, stop_tx)
    }

    fn short_limits() -> HttpLimits {
        HttpLimits {
            connections_max: 1,
            header_read_ms: 300,
            write_stall_ms: 300,
            shutdown_timeout_ms: 300,
        }
    }

    /// Whether a new client gets `/small` answered within 5 s (retrying while the one
    /// connection slot is taken).
    async fn served_again(addr: std::net::SocketAddr) -> bool {
        let attempt = async {
            loop {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let request = b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                if stream.write_all(request).await.is_ok() {
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer).await;
                    if answer.starts_with(b"HTTP/1.1 200") {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_client_stalled_mid_head_is_dropped() {
        let (addr, _stop) = one_connection_server(short_limits()).await;
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /small HTTP/1.1\r\nHo")
            .await
            .unwrap();
        assert!(served_again(addr).await, "the stalled client kept the slot");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped() {
        let (addr, _stop) = one_connection_server(short_limits()).await;
        let mut reader_gone = TcpStream::connect(addr).await.unwrap();
        reader_gone
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(
            served_again(addr).await,
            "the non-reading client kept the slot"
        );
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_gets_everything() {
        let limits = HttpLimits {
            write_stall_ms: 2_000,
            ..short_limits()
        };
        let (addr, _stop) = one_connection_server(limits).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // Pauses shorter than the stall bound, many times over.
        let mut received = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            received += stream.read(&mut buf).await.unwrap();
        }
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            received += n;
        }
        assert!(received > BIG_BYTES, "{received} bytes");
    }

    #[tokio::test]
    async fn shutdown_closes_connections_still_busy_after_the_grace() {
        let (addr, stop) = one_connection_server(HttpLimits {
            header_read_ms: 60_000,
            ..short_limits()
        })
        .await;
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /small HTTP/1.1\r\nHo")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(true).unwrap();
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut sink));
        assert!(closed.await.is_ok(), "still open after the shutdown grace");
    }
}
