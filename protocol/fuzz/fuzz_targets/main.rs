//! `runnel-fuzz`: every fuzz target in one libFuzzer binary.
//!
//! One binary instead of one per target: the instrumented build and link happen once (the
//! expensive part on a 2-core CI machine), and each target still keeps its own corpus
//! directory, time bound and crash artifacts. The target is picked per process by the
//! environment variable `RUNNEL_FUZZ_TARGET` (see [`TARGETS`]), so a crash reproduces with
//!   RUNNEL_FUZZ_TARGET=batch_parse runnel-fuzz artifacts/batch_parse/crash-…
//! Selecting by environment rather than by a leading input byte keeps the committed seed
//! corpora byte-for-byte the inputs the targets see.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

mod batch_parse;
mod records_decompress;
mod request_decode;
#[cfg(feature = "broker")]
mod segment_recovery;

/// Environment variable naming the target this process fuzzes.
const TARGET_ENV: &str = "RUNNEL_FUZZ_TARGET";

type Target = fn(&[u8]);

/// Every target this build holds, by name.
const TARGETS: &[(&str, Target)] = &[
    ("batch_parse", batch_parse::run),
    ("records_decompress", records_decompress::run),
    ("request_decode", request_decode::run),
    #[cfg(feature = "broker")]
    ("segment_recovery", segment_recovery::run),
];

/// The target named by [`TARGET_ENV`]; exits with status 2 (not a crash) when it names none.
fn selected() -> Target {
    static SELECTED: OnceLock<Target> = OnceLock::new();
    *SELECTED.get_or_init(|| {
        let name = std::env::var(TARGET_ENV).unwrap_or_default();
        match TARGETS.iter().find(|(known, _)| *known == name) {
            Some((_, target)) => *target,
            None => {
                let known: Vec<&str> = TARGETS.iter().map(|(known, _)| *known).collect();
                eprintln!("{TARGET_ENV}={name:?}: expected one of {known:?}");
                std::process::exit(2);
            }
        }
    })
}

fuzz_target!(
    // Before libFuzzer runs anything: a bad name then is a usage error, not a "crash".
    init: {
        selected();
    },
    |data: &[u8]| {
        selected()(data);
    }
);
