//! The once-a-second progress line on stderr, read from a workload's shared counters
//! (`acked` is "received" for consumers).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::produce::Counters;

/// Prints progress until dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(label: &'static str, counters: Arc<Counters>) -> Progress {
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await; // the first tick is immediate
            let (mut last_acked, mut last_bytes) = (0u64, 0u64);
            loop {
                ticker.tick().await;
                let acked = counters.acked.load(Ordering::Relaxed);
                let bytes = counters.bytes_acked.load(Ordering::Relaxed);
                // Only producers have a "sent but not yet acknowledged" count and failures.
                let sends = match label {
                    "produce" => format!(
                        " sent {} failed {}",
                        counters.sent.load(Ordering::Relaxed),
                        counters.failed.load(Ordering::Relaxed)
                    ),
                    _ => String::new(),
                };
                eprintln!(
                    "[{label} {:>4.0}s] {:>10} msgs/s {:>9.1} MiB/s  total {acked}{sends}",
                    started.elapsed().as_secs_f64(),
                    acked - last_acked,
                    (bytes - last_bytes) as f64 / (1 << 20) as f64,
                );
                (last_acked, last_bytes) = (acked, bytes);
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}
