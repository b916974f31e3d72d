//! `healthcode serve`: the HTTP API until Ctrl-C.

use anyhow::Context;
use clap::Args;
use healthcode_server::Config;

use super::{ConfigArgs, runtime};
use crate::Failure;

/// `healthcode serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

impl ServeArgs {
    pub fn run(self) -> Result<(), Failure> {
        let config = self.config.load()?;
        init_logging();
        runtime()?.block_on(serve_until_signal(&config, |_| {}))?;
        Ok(())
    }
}

pub(crate) fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Binds, says where, calls `ready` with the address, and serves until SIGTERM or SIGINT
/// (Ctrl-C), then drains within the configured grace period.
pub(crate) async fn serve_until_signal(config: &Config, ready: impl FnOnce(&str)) -> anyhow::Result<()> {
    let bound = healthcode_server::bind(config)
        .await
        .map_err(anyhow::Error::new)?;
    let addr = bound.local_addr().map(|a| a.to_string()).unwrap_or_default();
    if bound.created {
        eprintln!(
            "created data directory {} (signing keys, data-encryption keys, database)",
            bound.data_dir.display()
        );
    }
    let store = if config.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!(
        "healthcode listening on http://{addr} ({store} store, data in {})",
        bound.data_dir.display()
    );
    eprintln!(
        "  trust list: http://{addr}/api/v1/trust-list   policy: http://{addr}/api/v1/policy   API: http://{addr}/api/openapi.json"
    );
    ready(&addr);
    let grace = config.shutdown_grace_seconds;
    let stop = stop_signal()?;
    bound
        .run(async move {
            let which = stop.await;
            eprintln!(
                "{which}: shutting down (requests in flight finish, for at most {} s)",
                grace
            );
        })
        .await
        .context("server failed")?;
    eprintln!("stopped");
    Ok(())
}

/// Resolves with the signal's name on the first SIGTERM (what service managers send) or SIGINT.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}
