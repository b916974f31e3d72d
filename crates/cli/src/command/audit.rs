//! `healthcode audit verify`: walk the audit log's hash chain and check the kept tree heads;
//! `healthcode audit witness`: hold a running server to its transparency log.

use std::path::PathBuf;

use clap::Args;
use healthcode_server::ops::witness::WitnessError;

use super::trust_list::{ROOT_ENV, load_root};
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
            println!("VALID audit chain: {n} entries, and every kept tree head matches them");
            Ok(())
        }
        Err(brk) => Err(Failure::Rejected(format!("INVALID: {brk}"))),
    }
}

/// What `healthcode audit witness` is given.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// The server's base URL, such as https://healthcode.example.
    #[arg(long)]
    server: String,
    /// Where the last consistent tree head is kept between runs (made on the first run).
    #[arg(long)]
    state: PathBuf,
    /// The trust list's root public key (base64url) or a file holding it: the audit-log key is
    /// taken from the trust list it signs.
    #[arg(long, env = ROOT_ENV)]
    root_key: String,
}

/// `healthcode audit witness`: exit 0 when consistent, 1 on a rewrite or a head that does not
/// verify, 2 on bad input or an unreachable server.
pub fn witness(args: WitnessArgs) -> Result<(), Failure> {
    let root = load_root(&args.root_key)?;
    let found = runtime()?.block_on(healthcode_server::ops::witness::witness(
        &args.server,
        &args.state,
        &root,
    ));
    match found {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(WitnessError::Rejected(line)) => Err(Failure::Rejected(line)),
        Err(WitnessError::Failed(line)) => Err(Failure::Error(anyhow::anyhow!(line))),
    }
}
