//! `runnel-broker`: parse the configuration, start, wait for SIGINT/SIGTERM, shut down.

use runnel_broker::config::BrokerConfig;
use runnel_broker::net::Broker;
use tokio::signal::unix::{signal, Signal, SignalKind};

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
    // Handlers first: a SIGTERM that arrives while the broker starts (recovery, or the first
    // requests already being served) is then a clean shutdown once it has started, not the
    // default action's kill.
    let mut signals = Signals::install()?;
    let broker = Broker::start(config).await?;
    signals.wait().await;
    tracing::info!("shutting down");
    broker.shutdown().await?;
    Ok(())
}

/// SIGINT (Ctrl-C) and SIGTERM (container stop), caught from the moment they are installed.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first of them (at once if one came before).
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
