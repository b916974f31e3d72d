//! `healthcode keys`: the issuer's signing keys.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use healthcode_token::Issuer;
use healthcode_token::keystore::{DEFAULT_ROTATION_GRACE, KeyState, Keystore};
use time::Duration;

use super::{now, rfc3339};
use crate::Failure;

#[derive(Debug, Args)]
pub struct DirArg {
    /// The key directory.
    #[arg(long, env = "HEALTHCODE_KEY_DIR")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key directory: a root key for trust lists and a first signing key.
    Generate {
        #[command(flatten)]
        dir: DirArg,
        /// The issuing region (ISO 3166: CN, CN-ZJ).
        #[arg(long, default_value = "CN-ZJ", value_parser = parse_issuer)]
        issuer: Issuer,
        /// Days the signing key is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u16).range(1..=3650))]
        validity_days: u16,
    },
    /// Make a new signing key active; the old one verifies until its end date or the grace period ends.
    Rotate {
        #[command(flatten)]
        dir: DirArg,
        /// Days the new key is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u16).range(1..=3650))]
        validity_days: u16,
        /// Days the replaced key keeps verifying (at least as long as any code it signed lives).
        #[arg(long, default_value_t = DEFAULT_ROTATION_GRACE.whole_days() as u16, value_parser = clap::value_parser!(u16).range(7..=3650))]
        grace_days: u16,
        /// Hours until the new key starts signing: long enough for verifiers to fetch a trust list
        /// naming it (the old key signs until then). 0 starts it now.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u16).range(0..=24 * 30))]
        activate_after_hours: u16,
    },
    /// List the signing keys and their validity.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
    /// End a key's validity now, for a key that may be compromised.
    Retire {
        #[command(flatten)]
        dir: DirArg,
        /// The key id (16 hex digits, from `keys list`).
        kid: String,
    },
}

fn parse_issuer(s: &str) -> Result<Issuer, String> {
    Issuer::parse(s).map_err(|e| e.to_string())
}

impl KeysCommand {
    pub fn run(self) -> Result<(), Failure> {
        match self {
            KeysCommand::Generate {
                dir,
                issuer,
                validity_days,
            } => {
                let store = Keystore::generate(&dir.dir, issuer, Duration::days(validity_days.into()), now())
                    .map_err(anyhow::Error::from)?;
                let key = &store.keys()[0];
                println!(
                    "created key directory {} for issuer {}",
                    dir.dir.display(),
                    store.issuer()
                );
                println!("signing key {} valid until {}", key.kid, rfc3339(key.not_after));
                println!(
                    "root public key (configure verifiers with it): {}",
                    store.root_public()
                );
                println!("also written to {}", store.root_public_path().display());
                Ok(())
            }
            KeysCommand::Rotate {
                dir,
                validity_days,
                grace_days,
                activate_after_hours,
            } => {
                let mut store = Keystore::open(&dir.dir).map_err(anyhow::Error::from)?;
                let t = now();
                let kid = store
                    .rotate(
                        t,
                        Duration::days(validity_days.into()),
                        Duration::days(grace_days.into()),
                        Duration::hours(activate_after_hours.into()),
                    )
                    .map_err(anyhow::Error::from)?;
                let start = t + Duration::hours(activate_after_hours.into());
                println!(
                    "new signing key {kid} signs from {}; export a trust list now so verifiers learn it before then",
                    rfc3339(start)
                );
                Ok(())
            }
            KeysCommand::List { dir } => {
                let store = Keystore::open(&dir.dir).map_err(anyhow::Error::from)?;
                let t = now();
                println!("issuer {}  root {}", store.issuer(), store.root_public());
                println!(
                    "{:<16}  {:<8}  {:<20}  {:<20}",
                    "kid", "state", "not before", "not after"
                );
                let signer = store.signing_key(t).ok().map(|k| k.kid.clone());
                for k in store.keys() {
                    let state = match k.state {
                        _ if k.not_after <= t || k.state == KeyState::Retired => "retired",
                        _ if signer.as_deref() == Some(k.kid.as_str()) => "signing",
                        _ if k.not_before > t => "pending",
                        _ => "verifying",
                    };
                    println!(
                        "{:<16}  {:<8}  {}  {}",
                        k.kid,
                        state,
                        rfc3339(k.not_before),
                        rfc3339(k.not_after)
                    );
                }
                Ok(())
            }
            KeysCommand::Retire { dir, kid } => {
                let mut store = Keystore::open(&dir.dir).map_err(anyhow::Error::from)?;
                store.retire(&kid, now()).map_err(anyhow::Error::from)?;
                println!("key {kid} retired; export a new trust list so verifiers learn it");
                Ok(())
            }
        }
    }
}
