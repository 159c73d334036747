//! `weir dead-letter`: lists and replays what durable queues kept aside because their upstream refused
//! it for good.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetterCommand {
    /// Files, requests and items kept per exporter.
    List {
        /// weir's state_dir.
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Send an exporter's dead letters to an OTLP/HTTP endpoint (weir's own receiver, to go through the
    /// pipeline again, or the upstream); each file is deleted once all of its requests were accepted.
    Replay {
        /// weir's state_dir.
        #[arg(long)]
        state_dir: PathBuf,
        /// The exporter whose dead letters to send.
        #[arg(long)]
        exporter: String,
        /// Where: http(s)://HOST:PORT (requests go to /v1/<signal>).
        #[arg(long)]
        to: String,
        /// A header to send, `NAME: VALUE` (repeatable), e.g. an Authorization the receiver needs.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The header each request's stored tenant is sent in: the exporter's `tenant_header` (replay
        /// does not read the configuration). Only requests kept with a tenant (an exporter with
        /// `tenant_header`) send it; it replaces a --header of the same name.
        #[arg(long, default_value = "X-Scope-OrgID")]
        tenant_header: String,
    },
}

/// Exits with 1, saying why, when the command fails.
pub(crate) fn main(cmd: DeadLetterCommand) -> ExitCode {
    match dead_letter_command(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir dead-letter: {}", super::report(&e));
            ExitCode::FAILURE
        }
    }
}

fn dead_letter_command(cmd: DeadLetterCommand) -> anyhow::Result<()> {
    match cmd {
        DeadLetterCommand::List { state_dir } => {
            let all = weir::dead_letter::list(&state_dir)?;
            if all.is_empty() {
                println!("no dead letters under {}", state_dir.display());
            }
            for e in all {
                let requests: usize = e.batches.iter().map(|b| b.requests.len()).sum();
                let items: u64 = e
                    .batches
                    .iter()
                    .flat_map(|b| &b.requests)
                    .map(|r| u64::from(r.items))
                    .sum();
                println!(
                    "{}: {} file(s), {requests} request(s), {items} item(s)",
                    e.exporter,
                    e.batches.len()
                );
                for b in &e.batches {
                    println!("  {} ({} request(s))", b.path.display(), b.requests.len());
                }
            }
            Ok(())
        }
        DeadLetterCommand::Replay {
            state_dir,
            exporter,
            to,
            headers,
            tenant_header,
        } => {
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .with_context(|| format!("--header `{h}`: use `NAME: VALUE`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (files, requests, items) = runtime.block_on(weir::dead_letter::replay(
                &state_dir,
                &exporter,
                &to,
                &headers,
                &tenant_header,
                |b| {
                    println!(
                        "replayed {} ({} request(s))",
                        b.path.display(),
                        b.requests.len()
                    )
                },
            ))?;
            println!(
                "{exporter}: {files} file(s), {requests} request(s), {items} item(s) replayed to {to}"
            );
            Ok(())
        }
    }
}
