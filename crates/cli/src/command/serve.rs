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
        runtime()?.block_on(serve_until_ctrl_c(&config, |_| {}))?;
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

/// Binds, says where, calls `ready` with the address, and serves until Ctrl-C.
pub(crate) async fn serve_until_ctrl_c(config: &Config, ready: impl FnOnce(&str)) -> anyhow::Result<()> {
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
    bound
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down");
        })
        .await
        .context("server failed")?;
    Ok(())
}
