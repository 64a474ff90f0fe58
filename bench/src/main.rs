//! `runnel-bench` binary: a thin wrapper over [`runnel_bench::cli`].

fn main() -> anyhow::Result<()> {
    runnel_protocol::memory::keep_freed_memory();
    runnel_bench::cli::main()
}
