//! A connection's idle clock (Kafka's `connections.max.idle.ms`): the time since the
//! connection last read or wrote a byte. Whatever a connection waits for — a client's next
//! request, or a client reading the answers it asked for — it is closed once that time
//! passes the bound, so a client that goes quiet, or stops reading, cannot hold its
//! connection slot and its queued answers forever.
//!
//! Thread-safe: the reader and writer halves touch it from their tasks, the connection
//! task waits on it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection last moved a byte, in ms since it opened.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Bytes moved now.
    pub fn touch(&self) {
        let now_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`. Each pass either returns or sleeps until
    /// a deadline later than the last one, so it ends `idle` after the last touch.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.opened + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket half that touches its connection's [`Activity`] whenever bytes move.
pub struct Touching<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Touching<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Touching<T> {
        Touching { inner, activity }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    pub fn activity(&self) -> &Activity {
        &self.activity
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Touching<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Touching<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `idle_for` ends `idle` after the last byte read or written, not before.
    #[tokio::test]
    async fn the_clock_runs_from_the_last_byte_moved() {
        let activity = Activity::new();
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = Touching::new(server, Arc::clone(&activity));
        let idle = Duration::from_millis(300);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"ping").await.unwrap_or_default();
        let mut read = [0u8; 4];
        server.read_exact(&mut read).await.unwrap_or_default();
        assert_eq!(&read, b"ping");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written_at = started.elapsed();
        server.write_all(b"pong").await.unwrap_or_default();
        activity.idle_for(idle).await;
        let ended = started.elapsed();
        assert!(
            ended >= written_at + idle,
            "{ended:?} is before {written_at:?} + {idle:?}"
        );
        assert!(
            ended < written_at + idle + Duration::from_secs(2),
            "{ended:?}"
        );
    }
}
