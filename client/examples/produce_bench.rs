//! Producer throughput: N 1 KiB messages to an 8-partition topic as fast as possible
//! (acks=1, linger 5 ms, ~1 MB batches), the same workload as
//! `tests/compat/python/bench_produce_consume.py` runs with librdkafka.
//!
//! ```sh
//! cargo run --release -p runnel-client --example produce_bench -- 127.0.0.1:9092 200000
//! ```

use std::time::Instant;

use runnel_client::admin::NewTopic;
use runnel_client::{Acks, Admin, ClientConfig, Producer, ProducerConfig, ProducerRecord};

const PARTITIONS: i32 = 8;
const MESSAGE_BYTES: usize = 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let messages: usize = args.next().map_or(Ok(200_000), |n| n.parse())?;
    let topic = format!("produce-bench-{}", std::process::id());
    let admin = Admin::new(ClientConfig::new(&bootstrap)).await?;
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS)])
        .await?;

    let mut config = ProducerConfig::new(&bootstrap);
    config.acks = Acks::Leader;
    config.linger_ms = 5;
    config.batch_size_bytes = 1_000_000;
    config.max_request_bytes = 1_048_576;
    config.buffer_memory_bytes = 64 * 1024 * 1024;
    let producer = Producer::new(config).await?;
    let payload = bytes::Bytes::from(vec![b'x'; MESSAGE_BYTES]);

    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(50_000);
    let mut failed = 0usize;
    for i in 0..messages {
        let record =
            ProducerRecord::new(topic.as_str(), payload.clone()).with_partition((i % 8) as i32);
        deliveries.push(producer.send(record).await?);
        if deliveries.len() == deliveries.capacity() {
            for delivery in deliveries.drain(..) {
                failed += usize::from(delivery.await.is_err());
            }
        }
    }
    producer.flush().await?;
    for delivery in deliveries {
        failed += usize::from(delivery.await.is_err());
    }
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(failed == 0, "{failed} deliveries failed");
    println!(
        "runnel-client produce: {messages} msgs in {seconds:.2} s = {:.0} msgs/s, {:.1} MB/s",
        messages as f64 / seconds,
        (messages * MESSAGE_BYTES) as f64 / 1e6 / seconds
    );
    admin.delete_topics(&[&topic]).await?;
    Ok(())
}
