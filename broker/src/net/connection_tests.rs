use super::*;
use tokio::io::AsyncWriteExt;

/// The reader stops once [`READ_AHEAD_BYTES_MAX`] of frames wait to be applied (a
/// larger frame waits alone), and goes on when one of them is.
#[tokio::test]
async fn reading_stops_at_the_read_ahead_bound() {
    const MIB: usize = 1024 * 1024;
    let larger = READ_AHEAD_BYTES_MAX + MIB;
    for (frame_bytes, fitting) in [(MIB, READ_AHEAD_BYTES_MAX / MIB), (larger, 1)] {
        let limits = limits(2 * larger, 4 * larger);
        let mut frames = [spawn_reader(
            client_sending(frame_bytes, fitting + 3),
            limits,
        )];
        // All that fit arrive; the one after them is read but waits for room.
        waiting_settles_at(&frames, fitting).await;
        // Applying one frame (dropping its room) lets exactly one more through.
        apply_one(&mut frames[0], frame_bytes).await;
        waiting_settles_at(&frames, fitting).await;
    }
}

/// Across connections, frames read and not applied stay within the shared room; a
/// frame larger than it is read alone; applying one lets one more through.
#[tokio::test]
async fn reading_stops_at_the_broker_wide_bound() {
    const SMALL: usize = 256 * 1024;
    let shared_bytes = 3 * SMALL;
    let large = shared_bytes + 1024;
    let limits = limits(8 * shared_bytes, shared_bytes);
    let reader =
        |frame_bytes, count| spawn_reader(client_sending(frame_bytes, count), limits.clone());
    // Enough small frames that some are still unread whenever the large one gets its turn.
    let mut frames = vec![reader(SMALL, 16), reader(SMALL, 16)];
    // Three small frames fit, wherever they came from; nothing else is read.
    waiting_settles_at(&frames, 3).await;
    assert_eq!(limits.request_memory.available_bytes(), 0);
    frames.push(reader(large, 1));
    // Apply small frames as they come until the large one gets its turn: then it is
    // read alone, and the small ones after it wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames[2].is_empty() {
        assert!(Instant::now() < deadline, "the large frame never got room");
        for connection in &mut frames[..2] {
            if !connection.is_empty() {
                apply_one(connection, SMALL).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    waiting_settles_at(&frames, 1).await;
    apply_one(&mut frames[2], large).await;
    waiting_settles_at(&frames, 3).await;
}

/// A reader waiting for shared room is not stuck there: shutdown ends it, and so does
/// the applier's end (the connection failing elsewhere).
#[tokio::test]
async fn a_reader_waiting_for_room_ends_on_shutdown_or_when_the_applier_goes() {
    for stop_by_shutdown in [true, false] {
        let limits = limits(1 << 20, 1024);
        let memory = Arc::clone(&limits.request_memory);
        let held = memory.reserve(1024).await.expect("room");
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (frames_tx, frames_rx) = mpsc::channel(FRAMES_READ_AHEAD_MAX);
        let server = client_sending(512, 1);
        let reader =
            tokio::spawn(async move { read_requests(server, &limits, shutdown, frames_tx).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!reader.is_finished(), "the reader waits for room");
        match stop_by_shutdown {
            true => shutdown_tx.send(true).expect("reader listening"),
            false => drop(frames_rx),
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the reader ended")
            .expect("reader task");
        assert!(ended.is_ok());
        drop(held);
        assert_eq!(memory.available_bytes(), 1024, "nothing left held");
    }
}

fn limits(max_request_bytes: usize, shared_bytes: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_request_bytes,
        request_timeout_ms: 30_000,
        connections_max_idle_ms: 600_000,
        inflight_requests_max: 64,
        loopback_unpaced: true,
        request_memory: Arc::new(RequestMemory::unmetered(shared_bytes)),
    }
}

/// The server end of a connection whose client sends `count` frames of `frame_bytes`
/// and then stays open.
fn client_sending(frame_bytes: usize, count: usize) -> tokio::io::DuplexStream {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let body = vec![7u8; frame_bytes];
        for _ in 0..count {
            client
                .write_all(&(frame_bytes as u32).to_be_bytes())
                .await?;
            client.write_all(&body).await?;
        }
        // Keep the connection open while the reader waits.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    server
}

/// Runs a reader on `server`; the frames it hands over wait in the receiver.
fn spawn_reader(
    server: tokio::io::DuplexStream,
    limits: ConnectionLimits,
) -> mpsc::Receiver<ReadFrame> {
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (frames_tx, frames_rx) = mpsc::channel(FRAMES_READ_AHEAD_MAX);
    tokio::spawn(async move {
        let _shutdown_tx = shutdown_tx;
        read_requests(server, &limits, shutdown, frames_tx).await
    });
    frames_rx
}

/// Takes the next waiting frame and drops it with its room, as the applier does.
async fn apply_one(frames: &mut mpsc::Receiver<ReadFrame>, frame_bytes: usize) {
    let (frame, room) = frames.recv().await.expect("a frame");
    assert_eq!(frame.len(), frame_bytes);
    drop(room);
}

/// Waits (at most 10 s) until `count` frames wait in all of `frames` together, then
/// checks no more come.
async fn waiting_settles_at(frames: &[mpsc::Receiver<ReadFrame>], count: usize) {
    let waiting = || frames.iter().map(mpsc::Receiver::len).sum::<usize>();
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting() < count {
        assert!(Instant::now() < deadline, "{count} frames never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(waiting(), count, "read past the bound");
}

/// A member's host is `/ip`, an IPv4-mapped IPv6 peer written as the IPv4 address.
#[test]
fn client_host_is_written_as_kafka_writes_it() {
    let host = |addr: &str| client_host(addr.parse().unwrap());
    assert_eq!(host("127.0.0.1:5000"), "/127.0.0.1");
    assert_eq!(host("[::ffff:10.1.2.3]:5000"), "/10.1.2.3");
    assert_eq!(host("[::1]:5000"), "/::1");
}
