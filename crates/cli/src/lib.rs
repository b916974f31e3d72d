//! The `healthcode` command line: one subcommand a file under `command/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod command;

/// healthcode: signed three-colour health codes that gates verify offline.
#[derive(Debug, Parser)]
#[command(name = "healthcode", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate, rotate, list and retire signing keys.
    #[command(subcommand)]
    Keys(command::keys::KeysCommand),
    /// Export and check the signed list of public keys that verifiers trust.
    #[command(subcommand, name = "trust-list")]
    TrustList(command::trust_list::TrustListCommand),
    /// Issue, render and verify holder codes.
    #[command(subcommand)]
    Code(command::code::CodeCommand),
    /// Run the HTTP API (SQLite in the data directory by default).
    Serve(command::serve::ServeArgs),
    /// Start a demo: a fresh data directory with venues, devices, staff and 100 holders in all
    /// three colours, served until Ctrl-C.
    Demo(command::demo::DemoArgs),
    /// Staff accounts.
    #[command(subcommand)]
    Admin(command::admin::AdminCommand),
    /// Drive code-opens or scans against a running server and report throughput and latency.
    Loadgen(command::loadgen::LoadgenArgs),
    /// Build a synthetic city (holders, venues, days of check-ins, cases) into the store.
    Simulate(command::simulate::SimulateArgs),
    /// Trace cases (given, or all of a day's) and record their contacts' exposures.
    Trace(command::trace::TraceArgs),
    /// Print the documented sample configuration.
    DefaultConfig,
    /// Delete check-ins, declarations, reports and exposures older than the retention period now
    /// (the server also does it every hour).
    Purge(command::ConfigArgs),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Copy the data directory (keys and SQLite database) into a new directory, also while a
    /// server runs on it.
    Backup(command::backup::BackupArgs),
    /// Put a backup into a new data directory (`--data-dir`), checking it first.
    Restore(command::backup::RestoreArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain, name the first broken entry, and check the tree heads kept in the
    /// store against the rows.
    Verify(command::ConfigArgs),
    /// Hold a server to its transparency log: check its newest signed tree head and that it
    /// extends the one kept in a state file (exit 1 on a rewrite).
    Witness(command::audit::WitnessArgs),
}

/// What a command reports when it fails: one line for the user, and the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The input or environment was wrong (exit 2).
    Error(anyhow::Error),
    /// A code or list was checked and found invalid (exit 1): the verdict line.
    Rejected(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

impl Cli {
    /// Runs the command, printing results to standard output and failures as one line to standard
    /// error: exit 0 on success, 1 when a code or trust list is rejected, 2 on bad input.
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Keys(c) => c.run(),
            Command::TrustList(c) => c.run(),
            Command::Code(c) => c.run(),
            Command::Serve(c) => c.run(),
            Command::Demo(c) => c.run(),
            Command::Admin(c) => c.run(),
            Command::Loadgen(c) => c.run(),
            Command::Simulate(c) => c.run(),
            Command::Trace(c) => c.run(),
            Command::DefaultConfig => command::default_config::default_config(),
            Command::Purge(c) => command::purge::run(c),
            Command::Audit(AuditCommand::Verify(c)) => command::audit::verify(c),
            Command::Audit(AuditCommand::Witness(c)) => command::audit::witness(c),
            Command::Backup(c) => c.run(),
            Command::Restore(c) => c.run(),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Rejected(line)) => {
                println!("{line}");
                ExitCode::from(1)
            }
            Err(Failure::Error(e)) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    }
}
