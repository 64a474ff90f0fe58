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
