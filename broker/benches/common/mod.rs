//! What the storage benches share: how much data a run moves.
//!
//! `cargo bench` passes `--bench` to a `harness = false` bench; `cargo test --all-targets`
//! (the CI command) runs the same binary without it. Without `--bench` a bench is a smoke
//! test: it moves [`SMOKE_BYTES`] so that every code path runs in well under a second.

/// Data per phase when the bench runs as a test (`cargo test --all-targets`).
pub const SMOKE_BYTES: u64 = 4 << 20;

/// True when run by `cargo bench` (full size), false when run by `cargo test` (smoke).
pub fn is_bench_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Bytes per phase: `RUNNEL_BENCH_BYTES` (`256M`, `2G`, `64K`, plain bytes) when set and
/// valid, else `default_bytes`; [`SMOKE_BYTES`] when not run by `cargo bench`.
pub fn bench_bytes(default_bytes: u64) -> u64 {
    if !is_bench_run() {
        return SMOKE_BYTES;
    }
    std::env::var("RUNNEL_BENCH_BYTES")
        .ok()
        .and_then(|text| parse_size_bytes(&text))
        .unwrap_or(default_bytes)
}

/// `"256M"` → 268435456; `None` for anything that is not a number with an optional K/M/G.
pub fn parse_size_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_uppercase();
    let (digits, unit) = match text.chars().last()? {
        'K' => (&text[..text.len() - 1], 1u64 << 10),
        'M' => (&text[..text.len() - 1], 1 << 20),
        'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (&text[..], 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}
