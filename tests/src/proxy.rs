//! A TCP proxy in front of a broker whose connections can be stalled one by one: a stalled
//! connection's proxy stops reading from both sides, as a broker that was SIGSTOPped would
//! (the kernel still accepts, the socket buffers fill, nothing is answered). Used to prove
//! the client's request deadlines and its handling of stalled connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How often a stalled direction looks whether it may go on.
const STALL_CHECK_MS: u64 = 10;
/// Bytes copied per read in each direction.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// A proxy on `127.0.0.1:0` forwarding every accepted connection to `target`.
pub struct StallingProxy {
    pub addr: SocketAddr,
    /// One stall switch per accepted connection, in accept order.
    connections: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    /// Whether connections accepted from now on start stalled.
    stall_new: Arc<AtomicBool>,
    /// Per accepted connection, a switch that stalls its broker → client direction only.
    answers: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    pub async fn start(target: SocketAddr) -> StallingProxy {
        StallingProxy::start_on("127.0.0.1:0", target).await
    }

    /// A proxy listening on `listen` (a broker may advertise it, so that clients reach the
    /// broker only through the proxy).
    pub async fn start_on(listen: &str, target: SocketAddr) -> StallingProxy {
        let listener = TcpListener::bind(listen).await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let connections: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let answers: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let (accepted, answer_switches) = (connections.clone(), answers.clone());
        let stall_new = Arc::new(AtomicBool::new(false));
        let stall_accepted = stall_new.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(broker) = TcpStream::connect(target).await else {
                    continue;
                };
                let stalled = Arc::new(AtomicBool::new(stall_accepted.load(Ordering::SeqCst)));
                let answers_stalled = Arc::new(AtomicBool::new(false));
                accepted.lock().expect("lock").push(stalled.clone());
                answer_switches
                    .lock()
                    .expect("lock")
                    .push(answers_stalled.clone());
                let (client_read, client_write) = client.into_split();
                let (broker_read, broker_write) = broker.into_split();
                tokio::spawn(copy(client_read, broker_write, vec![stalled.clone()]));
                tokio::spawn(copy(
                    broker_read,
                    client_write,
                    vec![stalled, answers_stalled],
                ));
            }
        });
        StallingProxy {
            addr,
            connections,
            stall_new,
            answers,
            accept_task,
        }
    }

    /// Stops (or resumes) forwarding the broker's answers on every connection accepted so
    /// far, while requests still reach it: requests are served and their answers lost.
    pub fn stall_answers(&self, stalled: bool) {
        for switch in self.answers.lock().expect("lock").iter() {
            switch.store(stalled, Ordering::SeqCst);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.connections.lock().expect("lock").len()
    }

    /// Stops (or, with `false`, resumes) forwarding on every connection accepted so far;
    /// later connections are not stalled.
    pub fn stall_all(&self, stalled: bool) {
        for switch in self.connections.lock().expect("lock").iter() {
            switch.store(stalled, Ordering::SeqCst);
        }
    }

    /// Whether connections accepted from now on start stalled (those accepted so far keep
    /// their state): a connect then hangs in the client's first request.
    pub fn stall_new(&self, stalled: bool) {
        self.stall_new.store(stalled, Ordering::SeqCst);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Copies `from` → `to` until either side closes, not reading while any of `stalls` is on.
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalls: Vec<Arc<AtomicBool>>,
) {
    let stalled = || stalls.iter().any(|stall| stall.load(Ordering::SeqCst));
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        while stalled() {
            tokio::time::sleep(Duration::from_millis(STALL_CHECK_MS)).await;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        // A stall that began while this read waited holds what it read, too.
        while stalled() {
            tokio::time::sleep(Duration::from_millis(STALL_CHECK_MS)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
