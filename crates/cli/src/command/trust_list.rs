//! `healthcode trust-list`: the signed list of issuer keys that verifiers cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use healthcode_token::TrustList;
use healthcode_token::keys::VerifyingKey;
use healthcode_token::keys::public_key_from_text;
use healthcode_token::keystore::{DEFAULT_TRUST_LIST_VALIDITY, Keystore};
use healthcode_token::trust_list::describe_duration;
use time::Duration;

use super::{now, read_text, rfc3339};
use crate::Failure;

/// Where verifiers get the trust-list root key from when no flag gives it.
pub const ROOT_ENV: &str = "HEALTHCODE_TRUST_ROOT";

#[derive(Debug, Subcommand)]
pub enum TrustListCommand {
    /// Sign a trust list of the key directory's public keys.
    Export {
        /// The key directory.
        #[arg(long, env = "HEALTHCODE_KEY_DIR")]
        dir: PathBuf,
        /// Write the list to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Hours until verifiers should fetch a fresher list.
        #[arg(long, default_value_t = DEFAULT_TRUST_LIST_VALIDITY.whole_hours() as u32, value_parser = clap::value_parser!(u32).range(1..=24 * 90))]
        valid_hours: u32,
    },
    /// Check a trust list's signature against the root public key and show its keys.
    Verify {
        /// The trust list file.
        file: PathBuf,
        /// The root public key (base64url) or a file holding it, such as DIR/root.pub.
        #[arg(long, env = ROOT_ENV)]
        root: String,
    },
}

/// Reads a root public key given as base64url text or as a path to a file holding it.
pub(crate) fn load_root(arg: &str) -> anyhow::Result<VerifyingKey> {
    if let Some(key) = public_key_from_text(arg) {
        return Ok(key);
    }
    let path = Path::new(arg);
    if path.exists() {
        let text = read_text(path)?;
        return public_key_from_text(&text).ok_or_else(|| {
            anyhow!(
                "{} does not hold an Ed25519 public key in base64url",
                path.display()
            )
        });
    }
    Err(anyhow!(
        "root key {arg:?} is neither a base64url Ed25519 public key nor a readable file"
    ))
}

/// Loads and checks a trust list file.
pub(crate) fn load_trust_list(file: &Path, root: &str) -> anyhow::Result<TrustList> {
    let root = load_root(root)?;
    let text = read_text(file)?;
    TrustList::from_text(&text, &root).with_context(|| format!("{}", file.display()))
}

impl TrustListCommand {
    pub fn run(self) -> Result<(), Failure> {
        match self {
            TrustListCommand::Export {
                dir,
                out,
                valid_hours,
            } => {
                let store = Keystore::open(&dir).map_err(anyhow::Error::from)?;
                let text = store
                    .export_trust_list(now(), Duration::hours(valid_hours.into()))
                    .map_err(anyhow::Error::from)?;
                match out {
                    Some(path) => {
                        std::fs::write(&path, format!("{text}\n"))
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!(
                            "trust list of {} keys written to {}",
                            store.trusted_keys(now()).len(),
                            path.display()
                        );
                    }
                    None => println!("{text}"),
                }
                Ok(())
            }
            TrustListCommand::Verify { file, root } => {
                let root_key = load_root(&root)?;
                let text = read_text(&file)?;
                let list = TrustList::from_text(&text, &root_key)
                    .map_err(|e| Failure::Rejected(format!("INVALID trust list {}: {e}", file.display())))?;
                let t = now();
                let freshness = if list.is_stale(t) {
                    "STALE: fetch a fresh copy"
                } else {
                    "current"
                };
                println!(
                    "VALID trust list issued {} ({} ago), next update {} ({freshness})",
                    rfc3339(list.issued_at()),
                    describe_duration(list.age(t)),
                    rfc3339(list.next_update()),
                );
                for k in list.keys() {
                    let state = if k.not_after <= t { "retired" } else { "valid" };
                    println!(
                        "  key {} issuer {} {} from {} until {}",
                        k.kid,
                        k.issuer,
                        state,
                        rfc3339(k.not_before),
                        rfc3339(k.not_after)
                    );
                }
                Ok(())
            }
        }
    }
}
