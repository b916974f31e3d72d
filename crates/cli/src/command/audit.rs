//! `healthcode audit verify`: walk the audit log's hash chain.

use super::{ConfigArgs, runtime};
use crate::Failure;

/// `healthcode audit verify`.
pub fn verify(args: ConfigArgs) -> Result<(), Failure> {
    let config = args.load()?;
    match runtime()?
        .block_on(healthcode_server::ops::verify_audit_now(&config))
        .map_err(anyhow::Error::new)?
    {
        Ok(n) => {
            println!("VALID audit chain: {n} entries");
            Ok(())
        }
        Err(brk) => Err(Failure::Rejected(format!("INVALID: {brk}"))),
    }
}
