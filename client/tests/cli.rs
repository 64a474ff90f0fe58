//! The `runnel` binary driven as a subprocess against an in-process broker: produce a file,
//! consume it back with `--format` and as JSON, manage topics, describe a group and read
//! its lag, reset its offsets, and fail with a one-line error and a non-zero exit code.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use runnel_tests::TestBroker;

/// How long any CLI run of these tests may take before the test fails instead of hanging.
const CLI_SECONDS_MAX: u64 = 120;

fn runnel(addr: &str, args: &[&str]) -> Output {
    runnel_within(addr, args, CLI_SECONDS_MAX)
}

/// Runs the CLI and returns how it ended; killed, and the test failed, if it has not within
/// `seconds`. Its output is read as it comes: a large one cannot block the child.
fn runnel_within(addr: &str, args: &[&str], seconds: u64) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env("RUNNEL_BOOTSTRAP", addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runnel");
    let pid = child.id().to_string();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || done_tx.send(child.wait_with_output()));
    match done_rx.recv_timeout(std::time::Duration::from_secs(seconds)) {
        Ok(output) => output.expect("runnel output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("runnel {args:?} still running after {seconds} s");
        }
    }
}

fn ok(addr: &str, args: &[&str]) -> String {
    ok_within(addr, args, CLI_SECONDS_MAX)
}

/// [`runnel_within`] that must exit 0; its standard output.
fn ok_within(addr: &str, args: &[&str], seconds: u64) -> String {
    let output = runnel_within(addr, args, seconds);
    assert!(
        output.status.success(),
        "runnel {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the (blocking) CLI off the test runtime so the in-process broker keeps serving.
async fn run_ok(addr: &str, args: &[&str]) -> String {
    run_ok_within(addr, args, CLI_SECONDS_MAX).await
}

/// [`run_ok`] for a run that must end on its own within `seconds`.
async fn run_ok_within(addr: &str, args: &[&str], seconds: u64) -> String {
    let addr = addr.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_within(&addr, &args, seconds)
    })
    .await
    .expect("cli task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_a_file_consume_it_back_and_read_group_lag() {
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 100).await;
    let addr = broker.addr.to_string();
    run_ok(
        &addr,
        &[
            "topics",
            "create",
            "lines",
            "-p",
            "2",
            "-c",
            "retention.ms=600000",
        ],
    )
    .await;
    let listed = run_ok(&addr, &["topics", "list"]).await;
    assert!(listed.contains("lines") && listed.contains('2'), "{listed}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.txt");
    let mut file = std::fs::File::create(&path).expect("create");
    for i in 0..50 {
        writeln!(file, "key{i}:value {i}").expect("write");
    }
    drop(file);
    let path = path.to_string_lossy().into_owned();
    run_ok(
        &addr,
        &[
            "produce",
            "-t",
            "lines",
            "--key-separator",
            ":",
            "-H",
            "src=cli",
            "--compression",
            "lz4",
            "-f",
            &path,
        ],
    )
    .await;

    let printed = run_ok(
        &addr,
        &[
            "consume",
            "-t",
            "lines",
            "--from-beginning",
            "-n",
            "50",
            "--format",
            "%k|%v|%h",
        ],
    )
    .await;
    let mut lines: Vec<&str> = printed.lines().collect();
    lines.sort();
    let mut expected: Vec<String> = (0..50)
        .map(|i| format!("key{i}|value {i}|src=cli"))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);

    let json = run_ok(
        &addr,
        &[
            "consume", "-t", "lines", "--offset", "0", "-n", "1", "--output", "json",
        ],
    )
    .await;
    let record: serde_json::Value = serde_json::from_str(json.trim()).expect("json line");
    assert_eq!(record["offset"], 0);

    // A group reads 30 of the 50 records: lag 20.
    run_ok(
        &addr,
        &[
            "consume",
            "-t",
            "lines",
            "-g",
            "readers",
            "--from-beginning",
            "-n",
            "30",
        ],
    )
    .await;
    let described = run_ok(&addr, &["groups", "describe", "readers"]).await;
    assert!(described.contains("total lag: 20"), "{described}");
    let json = run_ok(
        &addr,
        &["groups", "describe", "readers", "--output", "json"],
    )
    .await;
    let group: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert_eq!(group["total_lag"], 20);
    assert!(run_ok(&addr, &["groups", "list"]).await.contains("readers"));
    // The group's commits live in the internal topic: listed only when asked for.
    let listed = run_ok(&addr, &["topics", "list"]).await;
    assert!(!listed.contains("__consumer_offsets"), "{listed}");
    let listed = run_ok(&addr, &["topics", "list", "--internal"]).await;
    assert!(listed.contains("__consumer_offsets"), "{listed}");

    run_ok(
        &addr,
        &[
            "groups",
            "reset-offsets",
            "readers",
            "-t",
            "lines",
            "--to-earliest",
        ],
    )
    .await;
    let described = run_ok(&addr, &["groups", "describe", "readers"]).await;
    assert!(described.contains("total lag: 50"), "{described}");
    run_ok(&addr, &["groups", "delete", "readers"]).await;

    run_ok(
        &addr,
        &[
            "topics",
            "alter",
            "lines",
            "-c",
            "retention.ms=1000",
            "--partitions",
            "3",
        ],
    )
    .await;
    let described = run_ok(&addr, &["topics", "describe", "lines"]).await;
    assert!(
        described.contains("3 partitions")
            && described.contains("retention.ms")
            && described.contains("BYTES"),
        "{described}"
    );
    let json = run_ok(&addr, &["topics", "describe", "lines", "--output", "json"]).await;
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    let sizes: Vec<i64> = json["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["size_bytes"].as_i64().expect("size_bytes"))
        .collect();
    assert_eq!(sizes.len(), 3, "{json}");
    assert!(sizes[0] > 0, "{json}");
    run_ok(&addr, &["topics", "delete", "lines"]).await;
    assert!(!run_ok(&addr, &["topics", "list"]).await.contains("lines"));
}

#[test]
fn failures_exit_non_zero_with_one_line() {
    let output = runnel("127.0.0.1:1", &["topics", "list"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let help = ok("127.0.0.1:1", &["produce", "--help"]);
    assert!(help.contains("Examples"));
}

/// `runnel topics delete` / `groups delete` with nothing named printed "deleted " and exited
/// 0; a reset without a target asked the broker first. Each is a usage error now, before any
/// connection (the bootstrap here is a closed port), and every argument has its help line.
#[test]
fn commands_missing_what_they_act_on_are_usage_errors() {
    for args in [
        &["topics", "delete"][..],
        &["groups", "delete"],
        &["groups", "reset-offsets", "g", "-t", "t"],
    ] {
        let output = runnel("127.0.0.1:1", args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("required"), "{args:?}: {stderr}");
    }
    // A switch's value that is not a boolean, likewise before any connection.
    let output = runnel(
        "127.0.0.1:1",
        &["produce", "-t", "t", "--idempotence", "maybe"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid value 'maybe'"), "{stderr}");
    for command in [
        &["topics", "create"][..],
        &["topics", "alter"],
        &["topics", "describe"],
        &["topics", "delete"],
        &["groups", "describe"],
        &["groups", "delete"],
        &["groups", "reset-offsets"],
        &["produce"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = ok("127.0.0.1:1", &args);
        // An argument line (`  -p, --partitions <N>`, `  <NAME>`) has its help after two
        // spaces, or (clap's layout for long flags) on the next, deeper-indented line.
        let lines: Vec<&str> = help.lines().collect();
        let undocumented: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| {
                let item = line.trim_start();
                line.starts_with("  ") && (item.starts_with('-') || item.starts_with('<'))
            })
            .filter(|(i, line)| {
                let inline = line.trim().split("  ").filter(|s| !s.is_empty()).count() >= 2;
                let below = lines
                    .get(i + 1)
                    .is_some_and(|next| next.starts_with("          "));
                !inline && !below
            })
            .map(|(_, line)| *line)
            .collect();
        assert!(
            undocumented.is_empty(),
            "{command:?}: {undocumented:?}\n{help}"
        );
    }
}

/// `runnel consume | head -1`: the reader closes the pipe after one line. The consumer stops,
/// commits what was written and exits 0, where `println!` panicked (exit 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_pipe_ends_consume_cleanly() {
    use std::io::{BufRead, BufReader};
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 100).await;
    let addr = broker.addr.to_string();
    run_ok(&addr, &["topics", "create", "piped", "-p", "1"]).await;
    // More than a pipe holds (64 KiB), so the consumer is still writing when it closes.
    let lines: String = (0..50_000).map(|i| format!("line-{i}\n")).collect();
    let path = std::env::temp_dir().join(format!("runnel-piped-{}.txt", std::process::id()));
    std::fs::write(&path, lines).expect("write the input file");
    let file = path.to_str().expect("utf-8 path").to_owned();
    run_ok(&addr, &["produce", "-t", "piped", "-f", &file]).await;
    let _ = std::fs::remove_file(&path);
    // The idle exit only bounds a failing run: the pipe closes long before.
    let args = [
        "consume",
        "-t",
        "piped",
        "-g",
        "head",
        "--from-beginning",
        "--idle-exit-ms",
        "20000",
    ];
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(args)
            .env("RUNNEL_BOOTSTRAP", &addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run runnel");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read a line");
        assert_eq!(first, "line-0\n");
        // Dropping the reader closes the pipe, as `head -1` exiting does.
        child.wait_with_output().expect("runnel exits")
    })
    .await
    .expect("cli task");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let described = run_ok(&broker.addr.to_string(), &["groups", "describe", "head"]).await;
    assert!(
        described.contains("piped"),
        "the group committed: {described}"
    );
}

/// A partition a member owns but the group never committed has no position to measure lag
/// from: `groups describe` prints `-` for its committed offset and lag (as
/// kafka-consumer-groups does) and JSON `null`, and the total counts only committed
/// partitions — not 0, nor the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_no_lag_for_an_owned_partition_without_a_commit() {
    use runnel_client::{
        Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
    };
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 0).await;
    let addr = broker.addr.to_string();
    run_ok(&addr, &["topics", "create", "owned", "-p", "2"]).await;
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for partition in 0..2 {
        for _ in 0..5 {
            let record = ProducerRecord::new("owned", "x").with_partition(partition);
            producer.send(record).await.expect("send");
        }
    }
    producer.flush().await.expect("flush");

    let mut config = ConsumerConfig::new(&addr);
    config.group_id = Some("half".to_owned());
    config.auto_commit = false;
    let mut consumer = Consumer::new(config).await.expect("consumer");
    consumer.subscribe(&["owned"]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer.assignment().len() < 2 {
        assert!(Instant::now() < deadline, "no assignment");
        consumer
            .poll(Duration::from_millis(100))
            .await
            .expect("poll");
    }
    let committed = BTreeMap::from([(TopicPartition::new("owned", 0), 2)]);
    consumer.commit_offsets(&committed).await.expect("commit");

    let table = run_ok(&addr, &["groups", "describe", "half"]).await;
    let row = |partition: &str| -> Vec<String> {
        table
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find(|cells| cells.len() >= 5 && cells[0] == "owned" && cells[1] == partition)
            .unwrap_or_else(|| panic!("no row for owned-{partition}: {table}"))
    };
    assert_eq!(row("0")[2..5], ["2", "5", "3"], "{table}");
    assert_eq!(row("1")[2..5], ["-", "5", "-"], "{table}");
    assert!(table.contains("total lag: 3"), "{table}");

    let json = run_ok(&addr, &["groups", "describe", "half", "--output", "json"]).await;
    let group: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    let partitions = group["partitions"].as_array().expect("partitions");
    assert_eq!(partitions[0]["lag"], 3, "{group}");
    assert!(partitions[1]["committed"].is_null(), "{group}");
    assert!(partitions[1]["lag"].is_null(), "{group}");
    assert_eq!(group["total_lag"], 3);
    consumer.close().await.expect("close");
}

/// `runnel produce` is idempotent with `--acks all` (the default) when the broker gives
/// producer ids, plain with `--idempotence false` or `--acks 1`, and refuses
/// `--idempotence true` with `--acks 1` before sending anything. The summary line says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_says_whether_it_was_idempotent_and_refuses_it_without_acks_all() {
    let broker = TestBroker::start().await;
    let addr = broker.addr.to_string();
    run_ok(&addr, &["topics", "create", "numbered", "-p", "1"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.txt");
    std::fs::write(&path, "a\nb\nc\n").expect("write");
    let path = path.to_string_lossy().into_owned();
    let summary = |args: Vec<String>| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            runnel(&addr, &args)
        })
    };
    let produce = |extra: &[&str]| {
        let mut args: Vec<String> = ["produce", "-t", "numbered", "-f", &path]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        summary(args)
    };
    for (extra, idempotent) in [
        (&[][..], true),
        (&["--idempotence", "false"], false),
        (&["--acks", "1"], false),
        (&["--idempotence", "true", "--acks", "all"], true),
    ] {
        let output = produce(extra).await.expect("cli task");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{extra:?}: {stderr}");
        assert!(stderr.contains("produced 3 records"), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.contains("idempotent"),
            idempotent,
            "{extra:?}: {stderr}"
        );
    }
    let output = produce(&["--idempotence", "true", "--acks", "1"])
        .await
        .expect("cli task");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("idempotence requires acks"), "{stderr}");
    let printed = run_ok(
        &addr,
        &["consume", "-t", "numbered", "--from-beginning", "-n", "12"],
    )
    .await;
    assert_eq!(printed.lines().count(), 12, "{printed}");
}

/// `consume -e` (kcat's -e) stops once every partition is read to its end: empty
/// partitions and an empty topic count as read, and with a group the member stops once its
/// assigned partitions are, having committed up to their ends (lag 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_exit_at_end_stops_once_every_partition_is_read() {
    let broker = TestBroker::start_with(|c| c.groups.initial_rebalance_delay_ms = 100).await;
    let addr = broker.addr.to_string();
    run_ok(&addr, &["topics", "create", "ends", "-p", "3"]).await;
    run_ok(&addr, &["topics", "create", "nothing", "-p", "2"]).await;
    let lines: String = (0..12).map(|i| format!("key-{i}:value-{i}\n")).collect();
    let path = std::env::temp_dir().join(format!("runnel-ends-{}.txt", std::process::id()));
    std::fs::write(&path, lines).expect("write the input file");
    let file = path.to_str().expect("utf-8 path").to_owned();
    run_ok(
        &addr,
        &["produce", "-t", "ends", "--key-separator", ":", "-f", &file],
    )
    .await;
    let _ = std::fs::remove_file(&path);
    let described = run_ok(&addr, &["topics", "describe", "ends"]).await;
    let mut expected: Vec<String> = (0..12).map(|i| format!("value-{i}")).collect();
    expected.sort();
    let sorted = |out: String| {
        let mut got: Vec<String> = out.lines().map(str::to_owned).collect();
        got.sort();
        got
    };

    let empty = ["consume", "-t", "nothing", "--from-beginning", "-e"];
    assert_eq!(run_ok_within(&addr, &empty, 30).await, "");
    let all = ["consume", "-t", "ends", "--from-beginning", "-e"];
    assert_eq!(
        sorted(run_ok_within(&addr, &all, 30).await),
        expected,
        "{described}"
    );
    let from_latest = ["consume", "-t", "ends", "--exit-at-end"];
    assert_eq!(run_ok_within(&addr, &from_latest, 30).await, "");

    let group = [
        "consume",
        "-t",
        "ends",
        "-g",
        "dump",
        "--from-beginning",
        "-e",
    ];
    assert_eq!(sorted(run_ok_within(&addr, &group, 30).await), expected);
    let lag = run_ok(&addr, &["groups", "describe", "dump"]).await;
    assert!(lag.contains("total lag: 0"), "{lag}");
    // Nothing new: the member's second run stops at once with nothing.
    assert_eq!(run_ok_within(&addr, &group, 30).await, "");
}
