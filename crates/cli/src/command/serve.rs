//! `healthcode serve`, `default-config`, `purge` and `audit verify`: the commands that use the
//! server's configuration.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use healthcode_server::{Config, Overrides};

use crate::Failure;

/// Where the configuration comes from: shared by `serve`, `purge` and `audit verify`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML configuration file (`healthcode default-config` prints a documented one).
    #[arg(long, env = "HEALTHCODE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, such as 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (created by the first `serve`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL, instead of the embedded SQLite store.
    #[arg(long)]
    database_url: Option<String>,
}

impl ConfigArgs {
    fn load(self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir,
            database_url: self.database_url,
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// `healthcode serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

impl ServeArgs {
    pub fn run(self) -> Result<(), Failure> {
        let config = self.config.load()?;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .try_init();
        runtime()?.block_on(async {
            let bound = healthcode_server::bind(&config).await.map_err(|e| anyhow!("{e}"))?;
            let addr = bound.local_addr().map(|a| a.to_string()).unwrap_or_default();
            if bound.created {
                eprintln!(
                    "created data directory {} (signing keys, data-encryption keys, database)",
                    bound.data_dir.display()
                );
            }
            let store = if config.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
            eprintln!("healthcode listening on http://{addr} ({store} store, data in {})", bound.data_dir.display());
            eprintln!(
                "  trust list: http://{addr}/api/v1/trust-list   policy: http://{addr}/api/v1/policy   API: http://{addr}/api/openapi.json"
            );
            bound
                .run(async {
                    let _ = tokio::signal::ctrl_c().await;
                    eprintln!("shutting down");
                })
                .await
                .context("server failed")?;
            Ok::<(), anyhow::Error>(())
        })?;
        Ok(())
    }
}

/// Prints the documented sample configuration.
pub fn default_config() -> Result<(), Failure> {
    print!("{}", healthcode_server::config::SAMPLE);
    Ok(())
}

/// `healthcode purge`: delete what is older than the retention period now.
pub fn purge(args: ConfigArgs) -> Result<(), Failure> {
    let config = args.load()?;
    let r = runtime()?
        .block_on(healthcode_server::purge_now(&config))
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "purged {} check-ins, {} declarations, {} reports, {} exposures older than {} days",
        r.checkins, r.declarations, r.reports, r.exposures, config.retention_days
    );
    Ok(())
}

/// `healthcode audit verify`: walk the audit chain.
pub fn audit_verify(args: ConfigArgs) -> Result<(), Failure> {
    let config = args.load()?;
    match runtime()?
        .block_on(healthcode_server::verify_audit_now(&config))
        .map_err(|e| anyhow!("{e}"))?
    {
        Ok(n) => {
            println!("VALID audit chain: {n} entries");
            Ok(())
        }
        Err(brk) => Err(Failure::Rejected(format!("INVALID: {brk}"))),
    }
}
