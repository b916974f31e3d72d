//! One subcommand a file (`admin` and `audit` hold their one subcommand each); what several
//! share is here: the configuration arguments, the runtime, time formats.

pub mod admin;
pub mod audit;
pub mod backup;
pub mod code;
pub mod default_config;
pub mod demo;
pub mod keys;
pub mod loadgen;
pub mod purge;
pub mod serve;
pub mod simulate;
pub mod trace;
pub mod trust_list;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use healthcode_server::{Config, Overrides};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where the configuration comes from: shared by every command that opens the store.
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
    pub(crate) fn load(self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir,
            database_url: self.database_url,
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

/// A multi-threaded runtime for a command's async work.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// The current time in whole seconds.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Formats a time as RFC 3339.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 time given on the command line.
pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-29T08:00:00Z: {e}"))
}

/// Reads a whole text file with the path in the error.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
