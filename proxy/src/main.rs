//! The `weir` command: parses the command line and hands it to the subcommand's module under `cmd/`.
//! Everything else lives in the library. A bad configuration exits with 64 (EX_USAGE).

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weir: a WebAssembly-extensible OpenTelemetry edge proxy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy. Flags override the configuration file; without either, weir listens on
    /// 127.0.0.1:4317 (gRPC) and :4318 (HTTP) and prints what it receives (the `debug` exporter).
    Run(cmd::run::RunArgs),
    /// Check a configuration file without binding any port.
    Validate {
        /// The YAML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage the Wasm filters of a running weir (through its admin API), or test one offline.
    #[command(subcommand)]
    Filter(cmd::filter::FilterCommand),
    /// What durable queues kept aside because their upstream refused it for good.
    #[command(subcommand)]
    DeadLetter(cmd::dead_letter::DeadLetterCommand),
    /// Make an ed25519 key pair for signing filter modules: PREFIX.key (private, PKCS#8 PEM, readable
    /// by you only) and PREFIX.pub (public, PEM: list it in `module_signing.trusted_keys`).
    Keygen {
        /// Path prefix of the two files, e.g. `keys/ops` (signs as `ops`).
        prefix: PathBuf,
    },
    /// Internal: compiles the module on stdin into a compile cache, for a running weir that keeps the
    /// compiler out of its own memory.
    #[command(hide = true)]
    CompileHelper {
        #[arg(long)]
        cache_dir: PathBuf,
        #[arg(long)]
        instances: u32,
        #[arg(long)]
        memory: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => cmd::run::main(&args),
        Command::Validate { config } => cmd::validate::main(&config),
        Command::Filter(cmd) => cmd::filter::main(cmd),
        Command::DeadLetter(cmd) => cmd::dead_letter::main(cmd),
        Command::Keygen { prefix } => cmd::keygen::main(&prefix),
        Command::CompileHelper {
            cache_dir,
            instances,
            memory,
        } => cmd::compile_helper::main(&cache_dir, instances, memory),
    }
}
