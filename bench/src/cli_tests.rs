//! `runnel-bench`'s command-line parsing: presets, flags, defaults.

use super::*;

fn omb(args: &[&str]) -> anyhow::Result<(ProduceArgs, ConsumeArgs)> {
    let argv = ["runnel-bench", "omb"].iter().chain(args);
    let matches = Cli::command().try_get_matches_from(argv)?;
    let Command::Omb {
        preset,
        produce,
        consume,
        ..
    } = Cli::from_arg_matches(&matches)?.command
    else {
        anyhow::bail!("not omb");
    };
    let given = matches
        .subcommand_matches("omb")
        .map_or(Vec::new(), given_on_command_line);
    apply_preset(preset, &given, &produce, &consume)
}

#[test]
fn seconds_flags_never_panic_a_duration() {
    assert_eq!(seconds_arg(1.5), Duration::from_millis(1500));
    assert_eq!(seconds_arg(-3.0), Duration::ZERO);
    assert_eq!(seconds_arg(f64::NAN), Duration::ZERO);
    assert_eq!(seconds_arg(f64::INFINITY), Duration::from_secs(86_400));
}

#[test]
fn omb_presets_set_the_shape_and_one_client_per_topic() {
    let (produce, consume) = omb(&["10-topics-10-partitions-1kb"]).unwrap();
    assert_eq!((produce.topics, produce.partitions), (10, 10));
    assert_eq!(produce.message_bytes, 1024);
    assert_eq!((produce.producers, consume.consumers), (10, 10));
    assert_eq!(produce.seconds, Some(OMB_SECONDS_DEFAULT));
    assert_eq!(produce.rate, None);
}

#[test]
fn omb_keeps_the_flags_given_and_refuses_a_different_shape() {
    let (produce, consume) = omb(&[
        "1-topic-100-partitions-1kb",
        "--messages",
        "500",
        "--rate",
        "1000",
        "--consumers",
        "2",
    ])
    .unwrap();
    assert_eq!((produce.topics, produce.partitions), (1, 100));
    assert_eq!((produce.producers, consume.consumers), (1, 2));
    assert_eq!((produce.messages, produce.seconds), (Some(500), None));
    assert_eq!(produce.rate, Some(1000.0));
    assert!(omb(&["1-topic-1-partition-1kb", "--partitions", "3"]).is_err());
    assert!(omb(&["1-topic-1-partition-1kb", "--message-bytes", "10"]).is_err());
    assert!(omb(&["no-such-preset"]).is_err());
}

#[test]
fn a_percentage_of_max_is_above_0_and_at_most_100() {
    assert_eq!(percent("50"), Ok(50.0));
    assert_eq!(percent("100"), Ok(100.0));
    for bad in ["0", "-5", "100.5", "NaN", "inf", "half", ""] {
        assert!(percent(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn rate_and_rate_percent_of_max_exclude_each_other() {
    let parsed = Cli::try_parse_from([
        "runnel-bench",
        "e2e",
        "--rate",
        "1000",
        "--rate-percent-of-max",
        "50",
    ]);
    assert!(parsed.is_err());
    assert!(Cli::try_parse_from(["runnel-bench", "e2e", "--rate-percent-of-max", "50"]).is_ok());
}

#[test]
fn the_producer_buffer_is_eight_requests_unless_told() {
    let config = |args: &[&str]| {
        let argv = ["runnel-bench", "produce"].iter().chain(args);
        let Command::Produce { produce, .. } = Cli::try_parse_from(argv).unwrap().command else {
            panic!("produce")
        };
        let options = produce.options(&["t".to_owned()], false);
        crate::produce::producer_config("127.0.0.1:9092", &options)
    };
    assert_eq!(config(&[]).buffer_memory_bytes, 8 << 20);
    let big = config(&["--batch-bytes", "4194304"]);
    assert_eq!(
        (big.max_request_bytes, big.buffer_memory_bytes),
        (4 << 20, 32 << 20)
    );
    let given = config(&["--buffer-bytes", "3000000"]);
    assert_eq!(given.buffer_memory_bytes, 3_000_000);
    assert_eq!(config(&[]).in_flight_per_partition_max, None);
    assert_eq!(
        config(&[]).in_flight_per_partition(),
        1,
        "acks=1: not idempotent"
    );
    let pipelined = config(&["--in-flight-per-partition", "5"]);
    assert_eq!(pipelined.in_flight_per_partition_max, Some(5));
    let all = config(&["--acks", "all"]);
    assert!(all.idempotent() && all.in_flight_per_partition() == 5);
    let plain = config(&["--acks", "all", "--idempotence", "false"]);
    assert!(!plain.idempotent() && plain.in_flight_per_partition() == 1);
    assert!(
        Cli::try_parse_from(["runnel-bench", "produce", "--in-flight-per-partition", "0"]).is_err()
    );
    assert!(Cli::try_parse_from(["runnel-bench", "produce", "--buffer-bytes", "0"]).is_err());
    // Less than one request: the producer refuses it before connecting, naming the bound.
    let small = config(&["--buffer-bytes", "1000"]);
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(runnel_client::Producer::new(small));
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("buffer_memory_bytes"), "{error}");
}

#[test]
fn the_runtime_has_a_worker_per_client_up_to_the_cpus_unless_told() {
    assert_eq!(runtime_threads(None, 1, 2), 1);
    assert_eq!(runtime_threads(None, 10, 2), 2);
    assert_eq!(runtime_threads(None, 0, 2), 1);
    assert_eq!(runtime_threads(None, 3, 0), 1);
    assert_eq!(runtime_threads(Some(4), 1, 2), 4);
    let parse = |threads: &str| {
        Cli::try_parse_from(["runnel-bench", "produce", "--threads", threads]).is_ok()
    };
    assert!(parse("1") && !parse("0") && !parse("-1"));
}

/// e2e and omb read while they send: `--consume-seconds-max` bounds the read after the send's
/// own bound, so a 590 s run is not cut at 120 s (a soak's e2e reported `complete false`).
#[test]
fn a_read_alongside_the_send_is_bounded_after_the_send() {
    let bound = |args: &[&str]| {
        let argv = ["runnel-bench", "e2e"].iter().chain(args);
        let Command::E2e {
            produce, consume, ..
        } = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("e2e")
        };
        let topics = ["t".to_owned()];
        let options = crate::run::alongside(
            consume.options(&topics, false),
            &produce.options(&topics, false),
        );
        options.duration_max
    };
    assert_eq!(bound(&["--seconds", "590"]), Duration::from_secs(590 + 120));
    assert_eq!(
        bound(&["--seconds", "30", "--consume-seconds-max", "5"]),
        Duration::from_secs(35)
    );
    // A message count sends for at most --seconds-max.
    assert_eq!(
        bound(&["--messages", "1000", "--seconds-max", "60"]),
        Duration::from_secs(180)
    );
}
