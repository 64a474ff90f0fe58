//! Smoke runs of every `runnel-bench` workload against a spawned `runnel-broker`: tiny
//! counts (seconds in CI), asserting the JSON report's structure and that every message sent
//! was acknowledged and, for `consume` (assigned or `--group`), `e2e` and `omb`, read back.
//!
//! Skipped, with a message, when `runnel-broker` has not been built next to the bench binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn broker_binary() -> Option<PathBuf> {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_runnel-bench"));
    let broker = bench
        .parent()?
        .join(format!("runnel-broker{}", std::env::consts::EXE_SUFFIX));
    if broker.is_file() {
        Some(broker)
    } else {
        eprintln!(
            "skipping: {} not found; build it with `cargo build --release -p runnel-broker`",
            broker.display()
        );
        None
    }
}

/// Runs `runnel-bench <args> --spawn-broker --json --quiet` and parses its report.
fn bench(broker: &PathBuf, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_runnel-bench"))
        .args(args)
        .args(["--spawn-broker", "--json", "--quiet", "--broker-bin"])
        .arg(broker)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "runnel-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn assert_produce_section(report: &Value, messages: u64) {
    let produce = &report["produce"];
    assert_eq!(produce["messages_sent"], messages);
    assert_eq!(produce["messages_acked"], messages);
    assert_eq!(produce["messages_failed"], 0);
    assert!(produce["bytes_per_second"].as_f64().unwrap() > 0.0);
    let latency = &produce["publish_latency_us"];
    assert_eq!(latency["count"], messages);
    let order: Vec<u64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|p| latency[*p].as_u64().unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{latency}");
}

/// The report's CPU section: one entry per phase named, in order, each with this process's
/// and the spawned broker's CPU time and both per GB of the phase's bytes.
fn assert_cpu_phases(report: &Value, phases: &[(&str, u64)]) {
    let cpu = report["cpu"].as_array().expect("a cpu section");
    assert_eq!(cpu.len(), phases.len(), "{cpu:?}");
    for (entry, (phase, bytes)) in cpu.iter().zip(phases) {
        assert_eq!(entry["phase"], *phase);
        assert_eq!(entry["bytes"], *bytes);
        let bench = entry["bench_cpu_seconds"].as_f64().unwrap();
        let broker = entry["broker_cpu_seconds"]
            .as_f64()
            .expect("the spawned broker's");
        assert!(bench > 0.0 && broker >= 0.0, "{entry}");
        let per_gb = entry["bench_cpu_seconds_per_gb"].as_f64().unwrap();
        assert!(
            (per_gb - bench * 1e9 / *bytes as f64).abs() <= 1e-6 * per_gb,
            "{entry}"
        );
        assert!(
            entry["broker_cpu_seconds_per_gb"].as_f64().is_some(),
            "{entry}"
        );
    }
}

#[test]
fn produce_acks_1_with_probes_reports_ratios() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "produce",
            "--messages",
            "3000",
            "--producers",
            "2",
            "--partitions",
            "3",
            "--message-bytes",
            "100",
            "--batch-bytes",
            "65536",
            "--probe",
            "--probe-seconds",
            "0.05",
        ],
    );
    assert_eq!(report["workload"], "produce");
    assert_eq!(report["partitions"], 3);
    let producer = &report["producer"];
    assert_eq!(producer["acks"], "1");
    assert_eq!(producer["idempotent"], false);
    assert_eq!(producer["in_flight_per_partition"], 1);
    assert_eq!(producer["batch_bytes"], 65536);
    assert_produce_section(&report, 3000);
    assert_cpu_phases(&report, &[("produce", 3000 * 100)]);
    assert!(
        report["probes"]["file_write_fsync"]["bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    for ratio in ["produce_per_file_write", "produce_per_file_write_fsync"] {
        assert!(report["ratios"][ratio].as_f64().unwrap() > 0.0, "{ratio}");
    }
    assert!(report.get("consume").is_none());
}

#[test]
fn produce_acks_all_compressed_at_a_fixed_rate() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "produce",
            "--messages",
            "500",
            "--acks",
            "all",
            "--compression",
            "lz4",
            "--rate",
            "2000",
        ],
    );
    assert_produce_section(&report, 500);
    let producer = &report["producer"];
    assert_eq!(producer["acks"], "all");
    assert_eq!(
        producer["idempotent"], true,
        "acks=all: idempotent by default"
    );
    assert_eq!(producer["in_flight_per_partition"], 5);
    assert_eq!(producer["compression"], "lz4");
    // 500 messages at 2 000/s cannot finish much faster than 0.25 s.
    assert!(report["produce"]["seconds"].as_f64().unwrap() >= 0.2);
}

#[test]
fn consume_reads_back_every_message_sent() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "consume",
            "--messages",
            "4000",
            "--topics",
            "2",
            "--partitions",
            "5",
            "--consumers",
            "2",
            "--message-bytes",
            "200",
            "--probe",
            "--probe-seconds",
            "0.05",
        ],
    );
    assert_eq!(report["workload"], "consume");
    assert_eq!(report["topics"], 2);
    assert_produce_section(&report, 4000);
    let consume = &report["consume"];
    assert_eq!(consume["messages_expected"], 4000);
    assert_eq!(consume["messages_received"], 4000);
    assert_eq!(consume["bytes_received"], 4000 * 200);
    assert_eq!(consume["complete"], true);
    assert!(report["ratios"]["consume_per_loopback"].as_f64().unwrap() > 0.0);
    let bytes = 4000 * 200;
    assert_cpu_phases(&report, &[("produce", bytes), ("consume", bytes)]);
}

#[test]
fn e2e_counts_every_message_on_both_sides_and_reports_latency() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "e2e",
            "--messages",
            "600",
            "--rate",
            "3000",
            "--partitions",
            "2",
            "--consumers",
            "2",
            "--linger-ms",
            "1",
            "--probe",
            "--probe-seconds",
            "0.05",
        ],
    );
    assert_eq!(report["workload"], "e2e");
    assert_produce_section(&report, 600);
    let consume = &report["consume"];
    assert_eq!(consume["messages_expected"], 600);
    assert_eq!(consume["messages_received"], 600);
    assert_eq!(consume["complete"], true);
    let latency = &consume["end_to_end_latency_us"];
    assert_eq!(latency["count"], 600);
    assert!(latency["p50"].as_u64().unwrap() <= latency["max"].as_u64().unwrap());
    // Producers and consumers together: one phase, counted by the bytes produced.
    assert_cpu_phases(&report, &[("e2e", 600 * 1000)]);
}

#[test]
fn e2e_warmup_leaves_the_first_messages_untimed_but_counted() {
    let Some(broker) = broker_binary() else {
        return;
    };
    // 600 messages at 3 000/s: those due in the first 0.1 s (300) may go untimed, the
    // ones due later never do; all 600 are still sent and read back.
    let report = bench(
        &broker,
        &[
            "e2e",
            "--messages",
            "600",
            "--rate",
            "3000",
            "--partitions",
            "2",
            "--warmup-seconds",
            "0.1",
        ],
    );
    let produce = &report["produce"];
    assert_eq!(produce["messages_acked"], 600);
    assert_eq!(produce["messages_failed"], 0);
    assert_eq!(produce["warmup_seconds"], 0.1);
    assert_eq!(report["consume"]["messages_received"], 600);
    assert_eq!(report["consume"]["complete"], true);
    for timed in [
        &report["produce"]["publish_latency_us"]["count"],
        &report["consume"]["end_to_end_latency_us"]["count"],
    ] {
        let timed = timed.as_u64().unwrap();
        assert!((300..600).contains(&timed), "{timed} of 600 timed");
    }
}

#[test]
fn e2e_at_a_percentage_of_max_measures_the_max_rate_first() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "e2e",
            "--rate-percent-of-max",
            "50",
            "--max-seconds",
            "0.5",
            "--seconds",
            "0.5",
            "--partitions",
            "2",
        ],
    );
    let max = &report["max_rate"];
    assert_eq!(max["percent"], 50.0);
    let max_rate = max["messages_per_second"].as_f64().unwrap();
    let rate = max["rate_per_second"].as_f64().unwrap();
    assert!(max_rate > 0.0, "{max}");
    assert!((rate - max_rate / 2.0).abs() <= max_rate * 1e-9, "{max}");
    assert!(max["topic"].as_str().unwrap().ends_with("-max"));
    // The timed run is paced at that rate: it cannot send faster.
    let produce = &report["produce"];
    assert!(
        produce["messages_per_second"].as_f64().unwrap() <= rate * 1.05,
        "{produce}"
    );
    assert_eq!(produce["messages_failed"], 0);
    assert_eq!(report["consume"]["complete"], true);
    assert!(
        report["consume"]["end_to_end_latency_us"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn consume_group_counts_each_offset_once_and_times_the_join() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "consume",
            "--group",
            "--messages",
            "4000",
            "--topics",
            "2",
            "--partitions",
            "5",
            "--consumers",
            "2",
            "--message-bytes",
            "200",
            // Kafka's 3 s initial rebalance delay (longer for each member joining during it)
            // would make this the slowest smoke test.
            "--broker-arg=--group-initial-rebalance-delay-ms=300",
        ],
    );
    assert_eq!(report["workload"], "consume");
    assert_produce_section(&report, 4000);
    let consume = &report["consume"];
    assert_eq!(consume["messages_expected"], 4000);
    assert_eq!(consume["messages_received"], 4000);
    assert_eq!(consume["bytes_received"], 4000 * 200);
    assert_eq!(consume["complete"], true);
    let group = &consume["group"];
    assert!(group["group_id"]
        .as_str()
        .unwrap()
        .starts_with("runnel-bench-group"));
    let first_record = group["first_record_seconds"].as_f64().unwrap();
    assert!(first_record > 0.0 && first_record <= group["total_seconds"].as_f64().unwrap());
    assert!(group["duplicates"].is_u64(), "{group}");
    let members = group["members_receiving"].as_u64().unwrap();
    assert!((1..=2).contains(&members), "{group}");
    assert!(group["joins"].as_u64().unwrap() >= members, "{group}");
}

#[test]
fn partitions_reports_fan_in_against_a_baseline_and_idle_rss() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "partitions",
            "--topics",
            "2",
            "--partitions",
            "10",
            "--messages",
            "2000",
            "--message-bytes",
            "100",
            "--idle-seconds",
            "0.2",
        ],
    );
    assert_eq!(report["workload"], "partitions");
    assert_eq!(
        (report["topics"].clone(), report["partitions"].clone()),
        (2.into(), 10.into())
    );
    assert_produce_section(&report, 2000);
    let fan_in = &report["fan_in"];
    assert_eq!(fan_in["partitions_total"], 20);
    assert_eq!(fan_in["partitions_written"], 20);
    assert!(fan_in["create_requests"].as_u64().unwrap() >= 1);
    assert_eq!(fan_in["baseline_partitions"], 8);
    assert_eq!(fan_in["baseline"]["messages_acked"], 2000);
    assert_eq!(fan_in["baseline"]["messages_failed"], 0);
    assert!(fan_in["ratio_to_baseline"].as_f64().unwrap() > 0.0);
    let rss = &fan_in["broker_rss"];
    for field in ["start_mib", "idle_mib", "after_produce_mib"] {
        assert!(rss[field].as_f64().unwrap() > 0.0, "{rss}");
    }
    assert!(rss["idle_seconds"].as_f64().unwrap() >= 0.2);
    assert!(report["cpu"].is_null(), "partitions reports no CPU phases");
}

#[test]
fn omb_preset_runs_its_shape_end_to_end() {
    let Some(broker) = broker_binary() else {
        return;
    };
    let report = bench(
        &broker,
        &[
            "omb",
            "10-topics-10-partitions-1kb",
            "--messages",
            "1000",
            "--rate",
            "10000",
            "--linger-ms",
            "1",
        ],
    );
    assert_eq!(report["workload"], "omb");
    assert_eq!(report["preset"], "10-topics-10-partitions-1kb");
    assert_eq!(report["topics"], 10);
    assert_eq!(report["partitions"], 10);
    assert_eq!(report["message_bytes"], 1024);
    assert_produce_section(&report, 1000);
    let consume = &report["consume"];
    assert_eq!(consume["messages_expected"], 1000);
    assert_eq!(consume["messages_received"], 1000);
    assert_eq!(consume["complete"], true);
    assert_eq!(consume["end_to_end_latency_us"]["count"], 1000);
}
