//! `anomaly-detector` binary: CLI, bind, serve, graceful shutdown.

use std::io::Write;
use std::process::ExitCode;

use anomaly_detector::{app, Config, DEFAULT_BODY_LIMIT_BYTES};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Anomaly detection over HTTP (z-score / MAD).
#[derive(Debug, Parser)]
#[command(name = "anomaly-detector", version, about)]
struct Cli {
    /// Address to listen on (`host:port`; port 0 picks a free port).
    #[arg(
        long,
        env = "ANOMALY_DETECTOR_LISTEN",
        default_value = "127.0.0.1:3001"
    )]
    listen: String,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ANOMALY_DETECTOR_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BODY_LIMIT_BYTES)]
    body_limit_bytes: usize,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received, draining connections");
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let listener = match tokio::net::TcpListener::bind(&cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %cli.listen, error = %e, "cannot bind");
            eprintln!("anomaly-detector: cannot bind {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("anomaly-detector: cannot read local address: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Machine-readable line for supervisors and tests (port 0 => the real port).
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, body_limit_bytes = cli.body_limit_bytes, "listening on {addr}");

    let router = app(Config {
        body_limit_bytes: cli.body_limit_bytes,
    });
    match axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server error");
            ExitCode::FAILURE
        }
    }
}
