//! `healthcode purge`: delete what is older than the retention period now.

use super::{ConfigArgs, runtime};
use crate::Failure;

/// `healthcode purge`.
pub fn run(args: ConfigArgs) -> Result<(), Failure> {
    let config = args.load()?;
    let r = runtime()?
        .block_on(healthcode_server::ops::purge_now(&config))
        .map_err(anyhow::Error::new)?;
    println!(
        "purged {} check-ins, {} declarations, {} reports, {} exposures older than {} days",
        r.checkins, r.declarations, r.reports, r.exposures, config.retention_days
    );
    Ok(())
}
