//! The `runnel` CLI: a thin shell over the `runnel-client` library (see `cli/`).

mod cli;

use clap::Parser;

fn main() {
    runnel_protocol::memory::keep_freed_memory();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(cli::run(args)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
