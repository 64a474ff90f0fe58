//! The `e2e` workload: producers send at a fixed rate while consumers read the same topic;
//! end-to-end latency is the consumer's receive time minus the send time the producer wrote
//! into the value (same host, same clock).
//!
//! The consumers start at the topic's end offsets and are told where to stop only once the
//! producers are done, so every message sent during the run is counted on both sides.
//! `omb` presets (see [`crate::omb`]) run the same way, at max rate unless given `--rate`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use crate::consume::{topic_offsets, ConsumeOptions, ConsumeReport, Offsets, Readers};
use crate::produce::{self, ProduceOptions, ProduceReport};

/// Runs producers and consumers together; `produce.stamp_send_time` is forced on.
pub async fn run(
    bootstrap: &str,
    produce: &ProduceOptions,
    consume: &ConsumeOptions,
) -> anyhow::Result<(ProduceReport, ConsumeReport)> {
    anyhow::ensure!(
        produce.rate_per_second.is_some_and(|rate| rate > 0.0),
        "e2e runs at a fixed rate: give --rate"
    );
    run_at_any_rate(bootstrap, produce, consume).await
}

/// [`run`] without its fixed-rate check: with no `rate_per_second` the producers send as
/// fast as they can (OMB's max-rate runs), so end-to-end latency includes queueing.
pub async fn run_at_any_rate(
    bootstrap: &str,
    produce: &ProduceOptions,
    consume: &ConsumeOptions,
) -> anyhow::Result<(ProduceReport, ConsumeReport)> {
    // Nothing is timed until the producers start (they send nothing before).
    let timed_from_us = Arc::new(AtomicU64::new(u64::MAX));
    let produce = ProduceOptions {
        stamp_send_time: true,
        timed_from_us: Some(timed_from_us.clone()),
        ..produce.clone()
    };
    let (_, starts) = topic_offsets(bootstrap, &consume.topics).await?;
    let (ends_tx, ends_rx) = watch::channel(None);
    let (started_tx, started_rx) = oneshot::channel();
    let readers = {
        let (bootstrap, consume) = (bootstrap.to_owned(), consume.clone());
        std::thread::Builder::new()
            .name("e2e-consumers".into())
            .spawn(move || {
                consume_on_own_runtime(
                    bootstrap,
                    consume,
                    starts,
                    ends_rx,
                    timed_from_us,
                    started_tx,
                )
            })?
    };
    started_rx
        .await
        .map_err(|_| anyhow::anyhow!("the consumers' thread ended before they started"))??;
    let produced = produce::run(bootstrap, &produce).await;
    let (_, ends) = topic_offsets(bootstrap, &consume.topics).await?;
    // `send_replace` rather than `send`: readers that already stopped need no update.
    ends_tx.send_replace(Some(Arc::new(ends)));
    let consumed = tokio::task::spawn_blocking(move || readers.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the consumers' thread panicked"))??;
    let produced = produced?;
    Ok((produced, consumed))
}

/// The consumers run on a runtime of their own, on their own thread: on the producers'
/// runtime a consumer's work delayed the producer's sender and timers (two workers on two
/// vCPUs), and that showed as publish latency.
fn consume_on_own_runtime(
    bootstrap: String,
    consume: ConsumeOptions,
    starts: Offsets,
    ends: watch::Receiver<Option<Arc<Offsets>>>,
    timed_from_us: Arc<AtomicU64>,
    started: oneshot::Sender<anyhow::Result<()>>,
) -> anyhow::Result<ConsumeReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The readers stop on the end offsets; the report needs them too.
    let mut report_ends = ends.clone();
    runtime.block_on(async move {
        let readers =
            match Readers::start(&bootstrap, &consume, starts, ends, Some(timed_from_us)).await {
                Ok(readers) => readers,
                Err(e) => {
                    let error = format!("{e:#}");
                    let _ = started.send(Err(e));
                    anyhow::bail!("starting the consumers failed: {error}");
                }
            };
        let _ = started.send(Ok(()));
        let ends = report_ends
            .wait_for(Option::is_some)
            .await
            .map_err(|_| anyhow::anyhow!("the producers' side ended without end offsets"))?
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no end offsets"))?;
        readers.finish(&ends).await
    })
}
