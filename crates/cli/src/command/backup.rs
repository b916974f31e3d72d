//! `healthcode backup DEST` and `healthcode restore FROM`: the embedded store's data directory
//! copied while a server runs on it, and put back into a fresh directory.

use std::path::PathBuf;

use clap::Args;

use super::ConfigArgs;
use crate::Failure;

/// `healthcode backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new directory to write the backup into.
    dest: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
}

/// `healthcode restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `healthcode backup`.
    from: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
}

impl BackupArgs {
    /// Runs it.
    pub fn run(self) -> Result<(), Failure> {
        let config = self.config.load()?;
        let c =
            healthcode_server::ops::backup::backup_now(&config, &self.dest).map_err(anyhow::Error::new)?;
        println!(
            "backed up {} into {}: {} files, {} bytes",
            config.data_dir.display(),
            c.dir.display(),
            c.files,
            c.bytes
        );
        Ok(())
    }
}

impl RestoreArgs {
    /// Runs it.
    pub fn run(self) -> Result<(), Failure> {
        let config = self.config.load()?;
        let c =
            healthcode_server::ops::backup::restore_now(&config, &self.from).map_err(anyhow::Error::new)?;
        println!(
            "restored {} into {}: {} files, {} bytes; start the server on it with --data-dir {}",
            self.from.display(),
            c.dir.display(),
            c.files,
            c.bytes,
            c.dir.display()
        );
        Ok(())
    }
}
