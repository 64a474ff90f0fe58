//! `runnel-broker`: parse the configuration, start, wait for SIGINT/SIGTERM, shut down.

use runnel_broker::config::BrokerConfig;
use runnel_broker::net::Broker;

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match BrokerConfig::from_env_and_args() {
        Ok(config) => config,
        Err(runnel_broker::config::ConfigError::Args(e)) => e.exit(),
        Err(e) => return Err(e.into()),
    };
    let broker = Broker::start(config).await?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    broker.shutdown().await?;
    Ok(())
}

/// Malloc's free memory stays in the process instead of going back to the kernel.
///
/// By default glibc serves each 1 MiB request frame and fetch buffer from a fresh mapping
/// (or trims the freed heap top) and the next one faults its pages in again: ~45 000 page
/// faults in a 5-second produce run, at ~15 µs each on a VM whose freed pages go back to
/// the host. With mmap only above 32 MiB (glibc's largest dynamic threshold) and trimming
/// only above 256 MiB free at the heap top, the same run faults ~7 000 times. The cost is
/// that RSS stays at its high-water mark, which the broker's request and fetch bounds
/// already limit.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD_BYTES: libc::c_int = 32 * 1024 * 1024;
        const TRIM_THRESHOLD_BYTES: libc::c_int = 256 * 1024 * 1024;
        // SAFETY: mallopt only sets allocator parameters; called before any other thread
        // exists. A refusal (returns 0) leaves glibc's defaults, which are correct too.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (container stop).
async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
