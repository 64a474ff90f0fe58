//! One run's report: the workload results, the limit probes of the same run and the ratios
//! between them, printed as a table or as one JSON object (`--json`).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::consume::ConsumeReport;
use crate::cpu::PhaseCpu;
use crate::partitions::PartitionsReport;
use crate::probe::{self, ProbeBounds, ProbeResult};
use crate::produce::ProduceReport;

/// The limit probes of this run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Probes {
    pub chunk_bytes: usize,
    pub loopback_tcp: ProbeResult,
    pub file_write: ProbeResult,
    pub file_write_fsync: ProbeResult,
}

impl Probes {
    /// Runs the three probes, each bounded by `duration` and 4 GiB, in `dir` (the broker's
    /// data dir when the bench spawned it).
    pub fn measure(dir: &Path, chunk_bytes: usize, duration: Duration) -> anyhow::Result<Probes> {
        let bounds = ProbeBounds {
            chunk_bytes,
            total_bytes_max: 4 << 30,
            duration_max: duration,
        };
        let loopback_tcp = probe::loopback_tcp(bounds)?;
        // Each file probe runs twice, alternating, and keeps its best run: on a VM a write
        // into never-touched (or host-reclaimed) memory costs 2-3x one into pages freed a
        // moment ago, so whichever probe runs second would otherwise win. Before each, the
        // dirty pages the workload (or the last probe) left are written back, so no probe
        // competes with writeback. Best-of-two only lowers Runnel's ratios.
        let mut file_write = ProbeResult::default();
        let mut file_write_fsync = ProbeResult::default();
        for _round in 0..2 {
            probe::settle_disk();
            file_write = best(file_write, probe::file_write(dir, bounds)?);
            probe::settle_disk();
            file_write_fsync = best(file_write_fsync, probe::file_write_fsync(dir, bounds)?);
        }
        Ok(Probes {
            chunk_bytes,
            loopback_tcp,
            file_write,
            file_write_fsync,
        })
    }
}

/// The faster of two probe runs.
fn best(a: ProbeResult, b: ProbeResult) -> ProbeResult {
    match a.bytes_per_second() >= b.bytes_per_second() {
        true => a,
        false => b,
    }
}

/// Workload throughput divided by the probe that bounds it (unit-free, comparable across
/// machines). A field is absent when its workload did not run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ratios {
    /// Produce bytes/s ÷ page-cache file write (the bound for acks=0/1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce_per_file_write: Option<f64>,
    /// Produce bytes/s ÷ write+fsync (the bound for acks=all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce_per_file_write_fsync: Option<f64>,
    /// Produce bytes/s ÷ loopback TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce_per_loopback: Option<f64>,
    /// Consume bytes/s ÷ loopback TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_per_loopback: Option<f64>,
}

/// The max-rate run of `e2e --rate-percent-of-max` (producers and consumers together, as
/// fast as they go) and the fixed rate derived from it.
#[derive(Debug, Clone, Serialize)]
pub struct MaxRate {
    pub percent: f64,
    /// The first of the run's own topics.
    pub topic: String,
    pub seconds: f64,
    /// Produce side: messages and bytes acknowledged per second.
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
    /// What the consumers read per second meanwhile.
    pub consumed_bytes_per_second: f64,
    /// `percent` of `messages_per_second`: the rate the timed run sends at.
    pub rate_per_second: f64,
}

impl MaxRate {
    /// The max-rate run's figures; fails if it lost a message or sent nothing.
    pub fn of(
        percent: f64,
        topic: &str,
        produced: &ProduceReport,
        consumed: &ConsumeReport,
    ) -> anyhow::Result<MaxRate> {
        anyhow::ensure!(
            produced.messages_failed == 0 && consumed.complete,
            "the max-rate run lost messages: {} of {} sends failed, read back complete: {} ({})",
            produced.messages_failed,
            produced.messages_sent,
            consumed.complete,
            produced.first_error.as_deref().unwrap_or("no send error")
        );
        let rate_per_second = produced.messages_per_second * percent / 100.0;
        anyhow::ensure!(
            rate_per_second > 0.0,
            "the max-rate run acknowledged nothing"
        );
        Ok(MaxRate {
            percent,
            topic: topic.to_owned(),
            seconds: produced.seconds,
            messages_per_second: produced.messages_per_second,
            bytes_per_second: produced.bytes_per_second,
            consumed_bytes_per_second: consumed.bytes_per_second,
            rate_per_second,
        })
    }
}

/// The producer settings the run's producers used, as the client resolved them from the
/// options (idempotence and batches in flight follow acks unless given).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProducerSettings {
    /// `0`, `1` or `all`.
    pub acks: &'static str,
    /// Asked of the broker; a broker without InitProducerId gets a plain producer (logged).
    pub idempotent: bool,
    pub in_flight_per_partition: usize,
    pub batch_bytes: usize,
    pub linger_ms: u64,
    pub compression: String,
}

impl ProducerSettings {
    pub fn of(config: &runnel_client::ProducerConfig) -> ProducerSettings {
        ProducerSettings {
            acks: match config.acks {
                runnel_client::Acks::None => "0",
                runnel_client::Acks::Leader => "1",
                runnel_client::Acks::All => "all",
            },
            idempotent: config.idempotent(),
            in_flight_per_partition: config.in_flight_per_partition(),
            batch_bytes: config.batch_size_bytes,
            linger_ms: config.linger_ms,
            compression: format!("{:?}", config.compression).to_lowercase(),
        }
    }
}

/// Everything one `runnel-bench` invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    /// `omb` only: the preset's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<&'static str>,
    pub bootstrap: String,
    /// The first topic (several topics share one name with `-0`, `-1`, … appended).
    pub topic: String,
    pub topics: usize,
    pub partitions: i32,
    pub message_bytes: usize,
    pub producer: ProducerSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce: Option<ProduceReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume: Option<ConsumeReport>,
    /// `partitions` only: the baseline, the touch and the broker's RSS (`produce` is the
    /// fan-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fan_in: Option<PartitionsReport>,
    /// `e2e --rate-percent-of-max` only: the max-rate run the fixed rate was derived from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<MaxRate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<Probes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratios: Option<Ratios>,
    /// CPU time per phase (not for `partitions`), this process's and the broker's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpu: Vec<PhaseCpu>,
}

impl Report {
    /// Fills `ratios` from the workload results and `probes`.
    pub fn compute_ratios(&mut self) {
        let Some(probes) = self.probes else {
            return;
        };
        let ratio = |rate: f64, limit: &ProbeResult| {
            let limit = limit.bytes_per_second();
            (limit > 0.0).then(|| rate / limit)
        };
        let mut ratios = Ratios::default();
        if let Some(produce) = &self.produce {
            ratios.produce_per_file_write = ratio(produce.bytes_per_second, &probes.file_write);
            ratios.produce_per_file_write_fsync =
                ratio(produce.bytes_per_second, &probes.file_write_fsync);
            ratios.produce_per_loopback = ratio(produce.bytes_per_second, &probes.loopback_tcp);
        }
        if let Some(consume) = &self.consume {
            ratios.consume_per_loopback = ratio(consume.bytes_per_second, &probes.loopback_tcp);
        }
        self.ratios = Some(ratios);
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        println!(
            "workload {}{}  topic {} ({} topics × {} partitions, {} B messages)  bootstrap {}",
            self.workload,
            self.preset.map(|p| format!(" {p}")).unwrap_or_default(),
            self.topic,
            self.topics,
            self.partitions,
            self.message_bytes,
            self.bootstrap
        );
        let p = &self.producer;
        println!(
            "producer acks {}{}, {} batch(es) of a partition in flight, {} B batches, linger {} ms, \
             compression {}",
            p.acks,
            if p.idempotent { ", idempotent" } else { "" },
            p.in_flight_per_partition,
            p.batch_bytes,
            p.linger_ms,
            p.compression
        );
        if let Some(m) = &self.max_rate {
            println!(
                "max-rate run ({}, {:.2} s): produce {:.0} msgs/s {:.1} MiB/s, consume {:.1} MiB/s \
                 -> the run below sends at {} % of it: {:.0} msgs/s",
                m.topic,
                m.seconds,
                m.messages_per_second,
                mib(m.bytes_per_second),
                mib(m.consumed_bytes_per_second),
                m.percent,
                m.rate_per_second
            );
        }
        println!(
            "{:<10} {:>10} {:>12} {:>10} {:>8}  {:>8} {:>8} {:>8} {:>8} {:>8}",
            "phase",
            "messages",
            "msgs/s",
            "MiB/s",
            "seconds",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9 us",
            "max us"
        );
        if let Some(f) = &self.fan_in {
            print_produce_row("baseline", &f.baseline);
        }
        if let Some(p) = &self.produce {
            print_produce_row("produce", p);
        }
        if let Some(c) = &self.consume {
            print_consume_rows(c);
        }
        if let Some(f) = &self.fan_in {
            print_fan_in(f);
        }
        if let Some(p) = self.produce.as_ref().filter(|p| p.warmup_seconds > 0.0) {
            println!(
                "latencies leave out messages sent in the first {:.1} s (warm-up); counts include them",
                p.warmup_seconds
            );
        }
        self.print_cpu();
        self.print_probes();
        Ok(())
    }

    fn print_cpu(&self) {
        // A figure that could not be read (the broker's without its pid) shows as "-".
        let shown = |seconds: Option<f64>, digits: usize| {
            seconds.map_or_else(|| "-".to_owned(), |s| format!("{s:.digits$}"))
        };
        for cpu in &self.cpu {
            println!(
                "cpu {:<8} bench {:.2} s ({} CPU-s/GB), broker {} s ({} CPU-s/GB)",
                cpu.phase,
                cpu.bench_cpu_seconds,
                shown(cpu.bench_cpu_seconds_per_gb, 3),
                shown(cpu.broker_cpu_seconds, 2),
                shown(cpu.broker_cpu_seconds_per_gb, 3),
            );
        }
    }

    fn print_probes(&self) {
        let (Some(probes), Some(ratios)) = (&self.probes, &self.ratios) else {
            return;
        };
        println!("limit probes (chunk {} bytes):", probes.chunk_bytes);
        for (name, result) in [
            ("loopback_tcp", &probes.loopback_tcp),
            ("file_write", &probes.file_write),
            ("file_write_fsync", &probes.file_write_fsync),
        ] {
            println!(
                "  {name:<18} {:>10.1} MiB/s",
                mib(result.bytes_per_second())
            );
        }
        for (name, value) in [
            ("produce / file_write", ratios.produce_per_file_write),
            (
                "produce / file_write_fsync",
                ratios.produce_per_file_write_fsync,
            ),
            ("produce / loopback_tcp", ratios.produce_per_loopback),
            ("consume / loopback_tcp", ratios.consume_per_loopback),
        ] {
            if let Some(value) = value {
                println!("  {name:<28} {value:>6.3}x");
            }
        }
    }
}

fn print_produce_row(label: &str, p: &ProduceReport) {
    let l = &p.publish_latency_us;
    println!(
        "{label:<10} {:>10} {:>12.0} {:>10.1} {:>8.2}  {:>8} {:>8} {:>8} {:>8} {:>8}",
        p.messages_acked,
        p.messages_per_second,
        mib(p.bytes_per_second),
        p.seconds,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max
    );
    if p.messages_failed > 0 {
        println!(
            "  {} of {} sends failed; first: {}",
            p.messages_failed,
            p.messages_sent,
            p.first_error.as_deref().unwrap_or("?")
        );
    }
}

fn print_consume_rows(c: &ConsumeReport) {
    println!(
        "{:<10} {:>10} {:>12.0} {:>10.1} {:>8.2}  (expected {}, complete {})",
        "consume",
        c.messages_received,
        c.messages_per_second,
        mib(c.bytes_per_second),
        c.seconds,
        c.messages_expected,
        c.complete
    );
    if let Some(l) = &c.end_to_end_latency_us {
        println!(
            "{:<10} {:>10} {:>12} {:>10} {:>8}  {:>8} {:>8} {:>8} {:>8} {:>8}",
            "e2e", l.count, "", "", "", l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    if let Some(g) = &c.group {
        let first = g.first_record_seconds.map_or("no record".to_owned(), |s| {
            format!("first record after {s:.2} s")
        });
        println!(
            "  group {}: {first} (join; the read is timed from there), {:.2} s in all, \
             {} duplicates, {} joins, {} members received records",
            g.group_id, g.total_seconds, g.duplicates, g.joins, g.members_receiving
        );
    }
}

fn print_fan_in(f: &PartitionsReport) {
    if let Some(error) = &f.fan_in_error {
        println!("  fan-in FAILED: {error}");
    }
    let ratio = f
        .ratio_to_baseline
        .map_or("n/a".to_owned(), |r| format!("{r:.3}x"));
    println!(
        "  fan-in over {} partitions: {ratio} the {}-partition baseline's MiB/s",
        f.partitions_total, f.baseline_partitions
    );
    println!(
        "  created in {:.2} s ({} requests); one message to each in {:.2} s, {} of {} hold a record",
        f.create_seconds,
        f.create_requests,
        f.touch_seconds,
        f.partitions_written,
        f.partitions_total
    );
    match &f.broker_rss {
        Some(r) => println!(
            "  broker RSS (pid {}): {:.1} MiB at start, {:.1} MiB idle with every partition open \
             ({:.1} s idle), {:.1} MiB after the fan-in",
            r.pid, r.start_mib, r.idle_mib, r.idle_seconds, r.after_produce_mib
        ),
        None => println!("  broker RSS: not measured (needs --spawn-broker or --broker-pid)"),
    }
}

fn mib(bytes_per_second: f64) -> f64 {
    bytes_per_second / (1 << 20) as f64
}
