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
        r.report.checkins, r.report.declarations, r.report.reports, r.report.exposures, config.retention_days
    );
    println!(
        "purged {} test results older than {} days, {} appeals decided over {} days ago; erased {} holders inactive for over {} days",
        r.personal.tests,
        config.retention.test_result_days,
        r.personal.appeals,
        config.retention.decided_appeal_days,
        r.personal.holders,
        config.retention.holder_inactive_days
    );
    Ok(())
}
