//! The end-to-end suites whose assertions read this process's peak memory (`VmHWM`,
//! `VmPeak`) while a hostile request is decoded or a slow client holds memory: a binary of
//! their own, since any other test allocating in the same process would count against them
//! (they take `PEAK_RSS_MEASUREMENT` among themselves). Run one with a filter:
//! `cargo test --release --workspace --test process_memory slow_clients::`.

mod bad_input_common;

mod bad_input_batches;
mod bad_input_decoding;
mod slow_clients;
