//! Command-line arguments and dispatch: one file per command group.

/// `println!` for command output: `Ok(false)` once stdout is a closed pipe (`runnel consume |
/// head -1`) instead of the panic `println!` gives; other write errors are errors.
macro_rules! out {
    () => {
        $crate::cli::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

mod consume;
mod groups;
mod produce;
mod topics;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "runnel",
    version,
    about = "Produce, consume and administer a Kafka-compatible broker (Runnel or Kafka)",
    after_help = "Examples:
  echo hello | runnel produce -t events
  runnel produce -t events --key-separator : -f lines.txt
  runnel consume -t events --from-beginning -n 10 --format '%k %v'
  runnel topics create orders -p 3 -c retention.ms=60000
  runnel groups describe billing"
)]
pub struct Cli {
    /// Broker(s) to bootstrap from, comma-separated.
    #[arg(
        short,
        long,
        global = true,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// Output style for listings and records.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send stdin lines (or a file's lines) as records.
    #[command(after_help = "Examples:
  echo hello | runnel produce -t events
  runnel produce -t events -k user-1 -H source=cli < lines.txt
  runnel produce -t events --key-separator : -f keyed.txt --compression zstd --acks all")]
    Produce(produce::ProduceArgs),
    /// Print records.
    #[command(after_help = "Examples:
  runnel consume -t events --from-beginning -n 100
  runnel consume -t events -g readers --format '%t/%p@%o %k=%v'
  runnel consume -t events --timestamp 1700000000000 --output json")]
    Consume(consume::ConsumeArgs),
    /// List, create, describe, alter or delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// List, describe, delete consumer groups, or reset their offsets.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Produce(args) => produce::run(&cli.bootstrap, args).await,
        Command::Consume(args) => consume::run(&cli.bootstrap, cli.output, args).await,
        Command::Topics(command) => topics::run(&cli.bootstrap, cli.output, command).await,
        Command::Groups(command) => groups::run(&cli.bootstrap, cli.output, command).await,
    }
}

/// Writes one line to stdout (see `out!`): false when whoever read it has closed the pipe,
/// which ends a command normally — the reader wanted no more.
pub fn print_line(line: std::fmt::Arguments<'_>) -> anyhow::Result<bool> {
    use std::io::Write;
    match writeln!(std::io::stdout(), "{line}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Prints rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out!("{}", padded.join("  ").trim_end())
    };
    if !line(header.to_vec())? {
        return Ok(());
    }
    for row in rows {
        if !line(row.iter().map(String::as_str).collect())? {
            break;
        }
    }
    Ok(())
}
