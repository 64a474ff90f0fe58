//! CRC-32C speed: ours (`runnel_protocol::crc`) against the `crc32c` crate it replaced.
//!
//! `cargo bench -p runnel-protocol --bench crc` — 1 MiB chunks (a producer's batch) of a
//! 256 MiB buffer, so most reads miss the CPU caches as a broker's do; prints GB/s for each
//! and their ratio, best of three rounds. Run by `cargo test --all-targets` (no `--bench`),
//! it checks the two agree on a 4 MiB buffer.

use std::time::Instant;

const CHUNK_BYTES: usize = 1 << 20;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let total_bytes: usize = if benching { 256 << 20 } else { 4 << 20 };
    let buffer: Vec<u8> = (0..total_bytes)
        .map(|i| (i.wrapping_mul(131) >> 3) as u8)
        .collect();
    let rate = |f: &dyn Fn(&[u8]) -> u32| -> (f64, u32) {
        let mut best = f64::MAX;
        let mut folded = 0;
        for _ in 0..3 {
            let started = Instant::now();
            folded = buffer.chunks(CHUNK_BYTES).fold(0, |acc, c| acc ^ f(c));
            best = best.min(started.elapsed().as_secs_f64());
        }
        (total_bytes as f64 / best / 1e9, folded)
    };
    let (ours, ours_crc) = rate(&runnel_protocol::crc::crc32c);
    let (reference, reference_crc) = rate(&crc32c::crc32c);
    assert_eq!(
        ours_crc, reference_crc,
        "the two CRC-32C implementations disagree"
    );
    if benching {
        println!("crc32c over {CHUNK_BYTES}-byte chunks of {total_bytes} bytes");
        println!("  runnel_protocol::crc  {ours:6.1} GB/s");
        println!("  crc32c crate          {reference:6.1} GB/s");
        println!("  ratio                 {:6.2}x", ours / reference);
    }
}
