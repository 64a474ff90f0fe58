//! `runnel produce`: one record per input line.

use std::io::{BufRead, Write};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use runnel_client::{Acks, Compression, Producer, ProducerConfig, ProducerRecord};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to.
    #[arg(short, long)]
    topic: String,
    /// Key for every record.
    #[arg(short, long, conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Header `name=value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Partition (default: by key, or sticky).
    #[arg(short, long)]
    partition: Option<i32>,
    /// Acknowledgement to wait for: none, the leader's append, or on disk (all).
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    acks: AcksArg,
    /// Compress batches with this codec.
    #[arg(long, value_enum, default_value_t = CodecArg::None)]
    compression: CodecArg,
    /// Number each partition's batches so that a batch resent after a lost answer is stored
    /// once (Java's `enable.idempotence`; `true` needs `--acks all`) [default: on with
    /// `--acks all`, when the broker gives producer ids].
    #[arg(long, value_name = "BOOL")]
    idempotence: Option<bool>,
    /// Read lines from this file instead of stdin (shows progress on stderr).
    #[arg(short, long)]
    file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    All,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CodecArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

pub async fn run(bootstrap: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let mut headers = Vec::new();
    for header in &args.headers {
        let Some((name, value)) = header.split_once('=') else {
            bail!("header {header:?} is not NAME=VALUE");
        };
        headers.push((name.to_owned(), value.to_owned()));
    }
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = match args.acks {
        AcksArg::Zero => Acks::None,
        AcksArg::One => Acks::Leader,
        AcksArg::All => Acks::All,
    };
    config.compression = match args.compression {
        CodecArg::None => Compression::None,
        CodecArg::Gzip => Compression::Gzip,
        CodecArg::Snappy => Compression::Snappy,
        CodecArg::Lz4 => Compression::Lz4,
        CodecArg::Zstd => Compression::Zstd,
    };
    config.idempotence = args.idempotence;
    let producer = Producer::new(config).await.context("connecting")?;
    let (reader, total_bytes): (Box<dyn BufRead>, Option<u64>) = match &args.file {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).ok();
            (Box::new(std::io::BufReader::new(file)), size)
        }
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let progress = total_bytes.is_some();
    let started = Instant::now();
    let (mut count, mut read_bytes, mut last_shown) = (0u64, 0u64, Instant::now());
    let mut deliveries = Vec::new();
    for line in reader.lines() {
        let line = line.context("reading input")?;
        read_bytes += line.len() as u64 + 1;
        let (key, value) = match (&args.key_separator, &args.key) {
            (Some(sep), _) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
                None => (None, line),
            },
            (None, key) => (key.clone(), line),
        };
        let mut record = ProducerRecord::new(args.topic.as_str(), value);
        record.key = key.map(Into::into);
        record.partition = args.partition;
        for (name, value) in &headers {
            record = record.with_header(name.as_str(), value.clone());
        }
        deliveries.push(producer.send(record).await?);
        count += 1;
        if deliveries.len() >= 10_000 {
            for delivery in deliveries.drain(..) {
                delivery.await?;
            }
        }
        if let (true, Some(total)) = (progress, total_bytes) {
            if last_shown.elapsed().as_millis() >= 200 {
                last_shown = Instant::now();
                let percent = read_bytes.min(total) * 100 / total.max(1);
                eprint!("\r{percent:>3}%  {count} records");
                let _ = std::io::stderr().flush();
            }
        }
    }
    producer.flush().await?;
    for delivery in deliveries {
        delivery.await?;
    }
    if progress {
        eprint!("\r100%  ");
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-6);
    let idempotent = if producer.idempotent() {
        ", idempotent"
    } else {
        ""
    };
    eprintln!(
        "produced {count} records ({read_bytes} bytes) to {} in {seconds:.2}s ({:.0} records/s{idempotent})",
        args.topic,
        count as f64 / seconds
    );
    Ok(())
}
