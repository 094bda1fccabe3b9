use std::process::ExitCode;

use clap::Parser;

use edge_load::cli::{Cli, Command};
use edge_load::{fleet, http, limits, mqtt};

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("edge-load: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Mqtt(args)) => {
            let cfg = match args.config() {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let rt = match runtime(args.threads) {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            let report = rt.block_on(mqtt::run(cfg));
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("a report serializes")
                );
            } else {
                print!("{}", report.to_text());
            }
            // Not everything acked: the figure is not a full run's, say so by the exit status.
            if report.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => {
            let args = cli.fleet;
            let (cfg, hub, timeout) = match args.config() {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let uri = match http::ingest_uri(&hub) {
                Ok(u) => u,
                Err(e) => return fail(e),
            };
            let rt = match runtime(args.threads) {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            // A connection per request in flight, plus the runtime's own descriptors.
            let connections = cfg
                .concurrency
                .unwrap_or(cfg.gateways.len())
                .min(cfg.gateways.len());
            if let Err(e) = limits::raise_open_files(connections as u64 + 64) {
                eprintln!("edge-load: warning: {e}");
            }
            let gzip = cfg.gzip_level.is_some();
            let report = rt.block_on(async move {
                let client = http::HubClient::new(uri, timeout, gzip);
                fleet::run(cfg, client).await
            });
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("a report serializes")
                );
            } else {
                print!("{}", report.to_text());
            }
            // Not one batch acknowledged: a wrong URL or tokens, not a measurement.
            if report.ok == 0 {
                eprintln!("edge-load: the hub acknowledged no batch");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}
