//! Every end-to-end test of `runnel-tests` in one test binary: one link instead of one per
//! file (38 binaries of ~80 MB each took most of the crate's build). Each file stays a
//! module of its own, named as its file; run one with a filter:
//! `cargo test --release --workspace --test e2e bad_input::` (`--workspace`, not `-p
//! runnel-tests`: the same features as the whole build, so nothing is rebuilt).
//! The suites that assert on the process's own peak memory run in `process_memory.rs`
//! instead, where no other test allocates beside them.

// Shared with the bad-input suites in `process_memory.rs`.
mod bad_input_common;

mod api_versions;
mod bad_input;
mod client_admin;
mod client_fetch_sessions;
mod client_groups;
mod client_idempotence;
mod client_interop;
mod client_produce_consume;
mod client_produce_metadata_wait;
mod client_request_timeouts;
mod compaction;
mod compat_rskafka;
#[path = "configs/main.rs"]
mod configs;
mod consumer_groups;
mod create_delete_topics;
mod create_partitions;
mod delete_records;
mod describe_cluster;
mod disk_full;
mod dynamic_broker_configs;
mod fetch_sessions;
mod fetch_topic_ids;
mod http_api;
mod idempotent_produce;
mod list_offsets;
mod loopback_pacing;
mod metadata;
#[path = "metrics/main.rs"]
mod metrics;
mod offset_commit;
#[path = "produce_fetch/main.rs"]
mod produce_fetch;
mod producer_expiration;
mod shutdown;
mod single_broker_admin;
mod timestamp_bounds;
mod transactions_admin;

/// With `autotests = false` a file added under tests/ is compiled only once a binary root
/// names it: without this check a new suite would silently never run. Every `*.rs` file and
/// every directory with a `main.rs` (or `mod.rs`) must be a `mod` of `e2e.rs` or
/// `process_memory.rs`.
#[test]
fn every_file_under_tests_is_a_module_of_a_test_binary() {
    let roots = [include_str!("e2e.rs"), include_str!("process_memory.rs")];
    let declared = |name: &str| {
        let line = format!("mod {name};");
        roots
            .iter()
            .any(|root| root.lines().any(|l| l.trim() == line))
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/ is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let module = if path.is_dir() {
            path.join("main.rs").exists() || path.join("mod.rs").exists()
        } else {
            path.extension().is_some_and(|e| e == "rs") && !matches!(name, "e2e" | "process_memory")
        };
        if module && !declared(name) {
            missing.push(name.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "not a module of any test binary: {missing:?}"
    );
}
