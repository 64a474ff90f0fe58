//! `runnel-broker`: parse the configuration, start, wait for SIGINT/SIGTERM, shut down.

use runnel_broker::config::BrokerConfig;
use runnel_broker::net::Broker;

fn main() -> anyhow::Result<()> {
    runnel_protocol::memory::keep_freed_memory();
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (container stop).
async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
