//! Limit probes: what this machine can do without Runnel, measured in the same run as the
//! workloads so that every figure can be read as a ratio ("0.8 × a raw write+fsync loop").
//!
//! - [`loopback_tcp`]: one writer thread and one reader thread over a 127.0.0.1 socket pair,
//!   `chunk_bytes` per `write`, the same socket buffer sizes the OS gives any connection and
//!   the congestion control Runnel's loopback connections get (`runnel_protocol::loopback`:
//!   not BBR's pacing).
//! - [`file_write`]: sequential `write_all` of `chunk_bytes` chunks into a new file in the
//!   directory under test (page cache; no fsync until the end, like the broker's acks=1),
//!   with disk blocks reserved [`RESERVE_AHEAD_BYTES`] ahead as the broker reserves them
//!   for a segment (without, ext4's delayed allocation made the same loop 1.4–1.6 × slower
//!   here, and the broker's appends beat their own "limit"), and pages more than
//!   [`CACHED_TAIL_BYTES`] behind the end written back and dropped, as the broker's default
//!   page-cache budget does (without, every write goes to a newly allocated page, which on
//!   the VMs here made the loop 2–4 × slower than the broker).
//! - [`file_write_fsync`]: the same with `fdatasync` after every chunk (acks=all's floor).
//! - [`memory_copy`] (the `probe` command only): `chunk_bytes` copies cycling through a
//!   buffer of a given size. On the VMs here a large working set was slow at times (28 GB/s
//!   over 16 MiB, 1.4–4.7 GB/s over 1 GiB in some minutes, 14 GB/s in others), as was the
//!   broker with a large page cache; this shows what the machine is doing in a given run.
//!
//! Every probe is bounded by bytes and by time, whichever comes first.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Disk blocks reserved ahead of the file probes' writes: the broker's largest step ahead
/// of a segment being appended to (`PREALLOCATE_AHEAD_BYTES_MAX`).
pub const RESERVE_AHEAD_BYTES: u64 = 8 << 20;

/// Bytes behind the end of the file probes' writes kept in the page cache: the broker's
/// default page-cache budget (`--log-page-cache-bytes`).
pub const CACHED_TAIL_BYTES: u64 = 64 << 20;

/// The file probes' untimed first bytes: two tails, so that pages are being dropped and
/// handed out again before the timing starts.
pub const PROBE_WARMUP_BYTES: u64 = 2 * CACHED_TAIL_BYTES;

/// Starts writeback of `[from, from + len)` without waiting, then advises the kernel to
/// drop the pages of `[from - CACHED_TAIL_BYTES, ..)` that left the tail a tail ago (clean
/// by then unless the disk is behind; dirty pages are kept). Best effort.
#[cfg(target_os = "linux")]
fn write_back_and_drop(file: &std::fs::File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(len))
    else {
        return;
    };
    let drop_from = offset.saturating_sub(CACHED_TAIL_BYTES as libc::off64_t);
    // SAFETY: the descriptor is open for the duration of both calls (borrowed from `file`);
    // neither reads memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        if offset >= CACHED_TAIL_BYTES as libc::off64_t {
            libc::posix_fadvise(file.as_raw_fd(), drop_from, len, libc::POSIX_FADV_DONTNEED);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn write_back_and_drop(_file: &std::fs::File, _from: u64, _len: u64) {}

/// Reserves disk blocks for `[from, from + len)` of `file` without changing its size (best
/// effort: where it fails, blocks are allocated as the writes arrive).
#[cfg(target_os = "linux")]
fn reserve_blocks(file: &std::fs::File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(from), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the duration of the call (borrowed from `file`);
    // fallocate reads no memory of ours.
    unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
}

#[cfg(not(target_os = "linux"))]
fn reserve_blocks(_file: &std::fs::File, _from: u64, _len: u64) {}

/// What one probe moved and how fast.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ProbeResult {
    pub bytes: u64,
    pub seconds: f64,
}

impl ProbeResult {
    /// Throughput in bytes per second (0 when nothing was timed).
    pub fn bytes_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The bounds every probe takes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeBounds {
    /// Size of one `write` (use the workload's request or batch size).
    pub chunk_bytes: usize,
    /// Stop after this many bytes…
    pub total_bytes_max: u64,
    /// …or after this long, whichever comes first.
    pub duration_max: Duration,
}

/// Loopback TCP throughput between two sockets of this process.
pub fn loopback_tcp(bounds: ProbeBounds) -> std::io::Result<ProbeResult> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let chunk_bytes = bounds.chunk_bytes.max(1);
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut socket, _) = listener.accept()?;
        let mut buffer = vec![0u8; chunk_bytes];
        let mut received = 0u64;
        loop {
            let n = socket.read(&mut buffer)?;
            if n == 0 {
                return Ok(received);
            }
            received += n as u64;
        }
    });
    let mut socket = TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    runnel_protocol::loopback::unpace_loopback(&socket)?;
    let chunk = vec![0x5au8; chunk_bytes];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < bounds.total_bytes_max && started.elapsed() < bounds.duration_max {
        socket.write_all(&chunk)?;
        sent += chunk_bytes as u64;
    }
    socket.shutdown(std::net::Shutdown::Write)?;
    let received = reader
        .join()
        .map_err(|_| std::io::Error::other("loopback reader thread panicked"))??;
    let seconds = started.elapsed().as_secs_f64();
    if received != sent {
        return Err(std::io::Error::other(format!(
            "loopback probe sent {sent} bytes but received {received}"
        )));
    }
    Ok(ProbeResult {
        bytes: received,
        seconds,
    })
}

/// Writes every dirty page back (`sync(1)`) so that a file probe starts on a settled disk,
/// as the workload did. Best effort: a missing `sync` binary only costs accuracy.
pub fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// Sequential writes into a new file in `dir`, fsynced once at the end (outside the timing)
/// when `fsync_every_chunk` is false, after every chunk (inside the timing) when true. The
/// first [`PROBE_WARMUP_BYTES`] are not timed: until then nothing has left the cached tail
/// and every write goes to a newly allocated page, which costs what the host takes to hand
/// one over (a start-up cost the broker pays once, not a rate it runs at).
fn file_probe(
    dir: &Path,
    bounds: ProbeBounds,
    fsync_every_chunk: bool,
) -> std::io::Result<ProbeResult> {
    let path = dir.join(format!("runnel-bench-probe-{}.bin", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let chunk = vec![0x5au8; bounds.chunk_bytes.max(1)];
    let mut written = 0u64;
    let mut reserved = 0u64;
    let mut write_chunk = |written: &mut u64| -> std::io::Result<()> {
        let end = *written + chunk.len() as u64;
        if end > reserved {
            let from = reserved.max(*written);
            reserved = end + RESERVE_AHEAD_BYTES;
            reserve_blocks(&file, from, reserved - from);
        }
        file.write_all(&chunk)?;
        if fsync_every_chunk {
            file.sync_data()?;
        }
        *written += chunk.len() as u64;
        if let Some(left_tail) = written.checked_sub(CACHED_TAIL_BYTES) {
            let len = chunk.len() as u64;
            write_back_and_drop(&file, left_tail.saturating_sub(len), len);
        }
        Ok(())
    };
    let warmup_started = Instant::now();
    let mut timed_from = 0u64;
    let mut started = warmup_started;
    let outcome = (|| {
        // Bounded by the warm-up bytes and the probe's own time bound.
        while written < PROBE_WARMUP_BYTES && warmup_started.elapsed() < bounds.duration_max {
            write_chunk(&mut written)?;
        }
        (timed_from, started) = (written, Instant::now());
        while written - timed_from < bounds.total_bytes_max
            && started.elapsed() < bounds.duration_max
        {
            write_chunk(&mut written)?;
        }
        Ok::<_, std::io::Error>(())
    })();
    let seconds = started.elapsed().as_secs_f64();
    let cleanup = std::fs::remove_file(&path);
    outcome?;
    cleanup?;
    Ok(ProbeResult {
        bytes: written - timed_from,
        seconds,
    })
}

/// Copies of `chunk_bytes` cycling through a buffer of `working_set_bytes` (touched once
/// before the timing starts).
pub fn memory_copy(working_set_bytes: usize, bounds: ProbeBounds) -> ProbeResult {
    let chunk = vec![0x5au8; bounds.chunk_bytes.clamp(1, working_set_bytes.max(1))];
    let mut buffer = vec![0u8; working_set_bytes.max(chunk.len())];
    buffer.fill(1);
    let started = Instant::now();
    let mut copied = 0u64;
    while copied < bounds.total_bytes_max && started.elapsed() < bounds.duration_max {
        for window in buffer.chunks_exact_mut(chunk.len()) {
            window.copy_from_slice(&chunk);
            copied += chunk.len() as u64;
        }
        std::hint::black_box(&buffer);
    }
    ProbeResult {
        bytes: copied,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Page-cache write throughput of the directory's disk.
pub fn file_write(dir: &Path, bounds: ProbeBounds) -> std::io::Result<ProbeResult> {
    file_probe(dir, bounds, false)
}

/// Write + `fdatasync` per chunk: the floor for acks=all at this chunk size.
pub fn file_write_fsync(dir: &Path, bounds: ProbeBounds) -> std::io::Result<ProbeResult> {
    file_probe(dir, bounds, true)
}

/// Prints probe results as a table, or one JSON object keyed by probe name.
pub fn print_results(
    results: &[(&str, ProbeResult)],
    chunk_bytes: usize,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let map: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, r)| Ok(((*name).to_owned(), serde_json::to_value(r)?)))
            .collect::<Result<_, serde_json::Error>>()?;
        println!("{}", serde_json::Value::Object(map));
        return Ok(());
    }
    println!("probe (chunk {chunk_bytes} bytes)      MB/s       bytes  seconds");
    for (name, r) in results {
        println!(
            "{name:<28} {:>8.1} {:>11} {:>8.2}",
            r.bytes_per_second() / (1 << 20) as f64,
            r.bytes,
            r.seconds
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small() -> ProbeBounds {
        ProbeBounds {
            chunk_bytes: 64 * 1024,
            total_bytes_max: 4 << 20,
            duration_max: Duration::from_secs(5),
        }
    }

    #[test]
    fn memory_copy_covers_its_working_set() {
        let result = memory_copy(1 << 20, small());
        assert!(result.bytes >= 1 << 20 && result.bytes.is_multiple_of(64 * 1024));
    }

    #[test]
    fn loopback_moves_every_byte_it_sends() {
        let result = loopback_tcp(small()).unwrap();
        assert_eq!(result.bytes, 4 << 20);
        assert!(result.bytes_per_second() > 0.0);
    }

    #[test]
    fn file_probes_write_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        for fsync in [false, true] {
            let result = file_probe(dir.path(), small(), fsync).unwrap();
            assert_eq!(result.bytes, 4 << 20);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_time_bound_stops_a_probe() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = ProbeBounds {
            chunk_bytes: 4096,
            total_bytes_max: u64::MAX,
            duration_max: Duration::from_millis(50),
        };
        let result = file_write(dir.path(), bounds).unwrap();
        assert!(result.seconds < 5.0);
    }
}
