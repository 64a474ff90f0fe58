//! `runnel-bench` command line. Today: `runnel-bench probe` (the machine's limits).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use runnel_bench::probe::{self, ProbeBounds, ProbeResult};

#[derive(Debug, Parser)]
#[command(
    name = "runnel-bench",
    version,
    about = "Runnel benchmark and machine-limit probes"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine's limits: loopback TCP, file write (page cache), write + fsync.
    ///
    /// Example: runnel-bench probe --dir ./data --chunk-bytes 1048576 --seconds 3
    Probe {
        /// Directory on the disk under test (the broker's data directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Bytes per write (use the workload's request or batch size).
        #[arg(long, default_value_t = 1 << 20)]
        chunk_bytes: usize,
        /// Upper bound on each probe's bytes.
        #[arg(long, default_value_t = 4 << 30)]
        total_bytes_max: u64,
        /// Upper bound on each probe's time, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Probe {
            dir,
            chunk_bytes,
            total_bytes_max,
            seconds,
            json,
        } => {
            let bounds = ProbeBounds {
                chunk_bytes,
                total_bytes_max,
                duration_max: Duration::from_secs_f64(seconds.max(0.01)),
            };
            let results = [
                ("loopback_tcp", probe::loopback_tcp(bounds)?),
                ("file_write", probe::file_write(&dir, bounds)?),
                ("file_write_fsync", probe::file_write_fsync(&dir, bounds)?),
            ];
            print_results(&results, chunk_bytes, json)?;
        }
    }
    Ok(())
}

fn print_results(
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
