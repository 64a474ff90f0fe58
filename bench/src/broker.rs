//! Where the workloads send: a `--bootstrap` address, or a `runnel-broker` child process
//! spawned for the run (`--spawn-broker`) on free loopback ports with a temp data dir.
//!
//! The bench does not link the broker crate (DESIGN: bench depends on client and protocol
//! only), so it runs the binary. The child is killed and its data dir removed on drop.
//! [`rss_bytes`] reads a broker process's resident memory (Linux `/proc`), for the
//! `partitions` workload's idle-RSS check.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a spawned broker may take to accept connections.
const STARTUP_WAIT_MS_MAX: u64 = 15_000;

/// A broker child process owned by this run.
pub struct SpawnedBroker {
    child: Child,
    data_dir: tempfile::TempDir,
    bootstrap: String,
}

impl SpawnedBroker {
    /// Starts `binary` (see [`default_broker_binary`]) with `extra_args` after the bench's
    /// own flags, and waits until it accepts Kafka connections.
    pub fn start(binary: &Path, extra_args: &[String]) -> anyhow::Result<SpawnedBroker> {
        let data_dir = tempfile::Builder::new()
            .prefix("runnel-bench-")
            .tempdir()
            .context("creating the broker's temp data dir")?;
        let kafka_port = free_port()?;
        let http_port = free_port()?;
        let bootstrap = format!("127.0.0.1:{kafka_port}");
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--listen")
            .arg(&bootstrap)
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            // The bench creates its topics; the offsets topic needs no more than 1 partition.
            .arg("--offsets-topic-num-partitions")
            .arg("1")
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let mut broker = SpawnedBroker {
            child,
            data_dir,
            bootstrap,
        };
        broker.wait_until_listening()?;
        Ok(broker)
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The child's process id (for [`rss_bytes`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(STARTUP_WAIT_MS_MAX) {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("runnel-broker exited during startup: {status}");
            }
            if TcpStream::connect(&self.bootstrap).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "runnel-broker did not listen on {} within {STARTUP_WAIT_MS_MAX} ms",
            self.bootstrap
        )
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        // Nothing to save in a bench broker: kill, then reap so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the OS says is free now. Racy by nature (another process may take it before the
/// broker binds), which is acceptable for a bench; startup then fails loudly.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `runnel-broker` next to the current executable (also one level up, for test binaries in
/// `target/release/deps`), else the bare name so that `PATH` decides.
pub fn default_broker_binary() -> PathBuf {
    let name = format!("runnel-broker{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}

/// The resident set size of process `pid` in bytes: the `VmRSS` line of
/// `/proc/<pid>/status` (Linux only; elsewhere an error).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss_bytes(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// `VmRSS:   123456 kB` → bytes.
fn parse_vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    // The kernel always prints kB here; anything else is a format we do not know.
    (words.next() == Some("kB")).then(|| kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\trunnel-broker\nVmPeak:\t  900 kB\nVmRSS:\t   2048 kB\nThreads: 9\n";
        assert_eq!(parse_vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss_bytes("VmRSS: 12 MB\n"), None);
        assert_eq!(parse_vm_rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes(std::process::id()).unwrap_or(0) > 0);
        }
    }
}
